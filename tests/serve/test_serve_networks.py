"""Docker's /networks and /volumes through rongqi serve: the translation to Docker's JSON (unit
tests, no root), then real clients against the `serve` fixture: Debian's docker CLI (network
create/ls/inspect/connect/disconnect/rm/prune, volume create/ls/inspect/rm/prune) and docker-py.

Networks get this session's subnets and bridge names (support.serving.session_network), and
aardvark's upstream is 127.0.0.1 (RONGQI_NETWORK_DNS): no name ever leaves the machine.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from support.serving import session_network

NETAVARK = os.access("/usr/lib/podman/netavark", os.X_OK)


def needs_net(fn):
    """Bridge networks: root and netavark."""
    fn = pytest.mark.skipif(not NETAVARK, reason="netavark is not installed")(fn)
    fn = pytest.mark.skipif(os.geteuid() != 0, reason="bridge networks need root")(fn)
    return pytest.mark.root(fn)


@pytest.fixture(autouse=True)
def _local_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by the service the `serve` fixture starts (it inherits the environment).
    monkeypatch.setenv("RONGQI_NETWORK_DNS", "127.0.0.1")


# -- translation (no service, no root) ----------------------------------------------------------
def _record(**kw: object) -> dict:
    rec = {"name": "front", "id": "a" * 64, "driver": "bridge", "network_interface": "rq1",
           "created": "2026-12-01T11:00:00.123456789Z",
           "subnets": [{"subnet": "10.99.1.0/24", "gateway": "10.99.1.1",
                        "lease_range": {"start_ip": "10.99.1.129", "end_ip": "10.99.1.254"}}],
           "ipv6_enabled": False, "internal": True, "dns_enabled": True,
           "labels": {"k": "v"}, "options": {"isolate": "true", "mtu": "1400"},
           "ipam_options": {"driver": "host-local"}}
    rec.update(kw)
    return rec


def test_docker_network_json_from_a_record():
    from rongqi.serve.networks import docker_network
    eps = {"c" * 64: {"Name": "web", "EndpointID": "e" * 64, "MacAddress": "aa:bb:cc:dd:ee:ff",
                      "IPv4Address": "10.99.1.130/24", "IPv6Address": ""}}
    d = docker_network(_record(), eps)
    assert d == {
        "Name": "front", "Id": "a" * 64, "Created": "2026-12-01T11:00:00.123456789Z",
        "Scope": "local", "Driver": "bridge", "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": "10.99.1.0/24", "Gateway": "10.99.1.1",
                             "IPRange": "10.99.1.128/25"}]},
        "Internal": True, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": eps,
        "Options": {"mtu": "1400"}, "Labels": {"k": "v"}}
    # no range: no IPRange key (compose compares it with None)
    d = docker_network(_record(subnets=[{"subnet": "10.99.2.0/24", "gateway": "10.99.2.1"}],
                               labels=None, options=None))
    assert d["IPAM"]["Config"] == [{"Subnet": "10.99.2.0/24", "Gateway": "10.99.2.1"}]
    assert d["Labels"] == {} and d["Options"] == {} and d["Containers"] == {}


def test_the_default_network_is_dockers_bridge():
    from rongqi.engine.networks import DEFAULT_NAME, default_network
    from rongqi.serve.networks import docker_network, engine_ref
    assert engine_ref("bridge") == DEFAULT_NAME and engine_ref("front") == "front"
    assert docker_network(default_network())["Name"] == "bridge"


@pytest.mark.parametrize("cidr", ["10.99.1.128/25", "10.99.0.0/16", "10.99.1.4/30",
                                  "fd00:99::/64", "fd00:99::80/121"])
def test_an_ip_range_comes_back_as_the_cidr_it_was_made_from(cidr):
    from rongqi.engine.networks import _parse_subnets
    from rongqi.serve.networks import ip_range_cidr
    subnet = "10.99.0.0/16" if "." in cidr else "fd00:99::/64"
    (s,) = _parse_subnets([subnet], [""], [cidr])
    assert ip_range_cidr(s["lease_range"]) == cidr


def test_options_are_shown_back_as_a_docker_client_gave_them(tmp_path, monkeypatch):
    from rongqi.engine import networks as nw
    from rongqi.serve.networks import docker_network
    monkeypatch.setenv("RONGQI_NETWORK_RUNDIR", str(tmp_path / "run"))
    monkeypatch.setattr(nw, "host_routes", lambda: [])
    store = nw.NetworkStore(str(tmp_path / "root"))
    opts = {"com.docker.network.driver.mtu": "1400",
            "com.docker.network.bridge.name": "rqunit0", "foo": "bar"}
    net, _ = nw.create_docker_style(store, "front", options=opts)
    # compose compares them with its driver_opts on every `up`
    assert docker_network(net)["Options"] == opts
    # rongqi's CLI's networks show their own options, less podman's isolate
    net = store.create("cli", options={"mtu": "1300", "isolate": "true"})
    assert docker_network(net)["Options"] == {"mtu": "1300"}


def test_volume_json_and_disk_usage(tmp_path):
    from rongqi.engine.volumes import VolumeStore
    from rongqi.serve.volumes import created_at, disk_usage, docker_volume
    vol = VolumeStore(str(tmp_path)).create("data", labels={"k": "v"}, options={"o": "size=1m"})
    d = docker_volume(vol)
    assert d == {"CreatedAt": created_at(vol.created), "Driver": "local", "Labels": {"k": "v"},
                 "Mountpoint": os.path.join(str(tmp_path), "volumes", "data", "_data"),
                 "Name": "data", "Options": {"o": "size=1m"}, "Scope": "local"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["CreatedAt"])
    with open(os.path.join(vol.mountpoint, "f"), "wb") as f:
        f.write(b"x" * 1000)
    os.link(os.path.join(vol.mountpoint, "f"), os.path.join(vol.mountpoint, "g"))
    os.symlink("/etc/passwd", os.path.join(vol.mountpoint, "l"))
    assert disk_usage(vol.mountpoint) == 1000


# -- the docker CLI ----------------------------------------------------------------------------
def _inspect(serve, kind: str, name: str) -> dict:
    (doc,) = json.loads(serve.docker(kind, "inspect", name).stdout)
    return doc


def _run_on(serve, net: str, name: str) -> str:
    """A running container on network `net`, made with rongqi's CLI on the service's engine
    (so these tests need none of the containers endpoints)."""
    return serve.rongqi("run", "-d", "--name", name, "--network", net, "busybox",
                        "sleep", "600", check=True).stdout.strip()


def _addresses(serve, cid: str) -> str:
    return serve.rongqi("exec", cid, "ip", "-o", "-4", "addr", check=True).stdout


@needs_net
def test_docker_cli_network_lifecycle(serve):
    name, subnet, bridge = session_network(1)
    p = serve.docker("network", "create", "--subnet", subnet, "--ip-range",
                     subnet.replace(".0/24", ".128/25"), "-o",
                     f"com.docker.network.bridge.name={bridge}", "--label", "app=serve-net",
                     name)
    nid = p.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", nid), p.stdout

    ls = serve.docker("network", "ls").stdout
    assert re.search(rf"^{nid[:12]}\s+{name}\s+bridge\s+local\s*$", ls, re.M), ls
    assert re.search(r"^[0-9a-f]{12}\s+bridge\s+bridge\s+local\s*$", ls, re.M), ls
    q = serve.docker("network", "ls", "-q", "--filter", "label=app=serve-net").stdout.split()
    assert q == [nid[:12]]
    assert serve.docker("network", "ls", "--filter", "type=builtin",
                        "--format", "{{.Name}}").stdout.split() == ["bridge"]
    assert name in serve.docker("network", "ls", "--filter", "dangling=true",
                                "--format", "{{.Name}}").stdout.split()

    doc = _inspect(serve, "network", name)
    assert doc["Id"] == nid and doc["Name"] == name and doc["Scope"] == "local"
    assert doc["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": subnet.replace(".0/24", ".1"),
                                      "IPRange": subnet.replace(".0/24", ".128/25")}]
    assert doc["Labels"] == {"app": "serve-net"} and doc["Containers"] == {}
    assert _inspect(serve, "network", nid[:12])["Name"] == name

    # bad input: Docker's words after "Error response from daemon: "
    p = serve.docker("network", "create", "--subnet", subnet, name, check=False)
    assert p.returncode == 1
    assert f"Error response from daemon: network with name {name} already exists" in p.stderr
    p = serve.docker("network", "inspect", "nope-" + name, check=False)
    assert p.returncode == 1 and "No such network: nope-" in p.stderr, p.stderr
    p = serve.docker("network", "rm", "bridge", check=False)
    assert p.returncode == 1
    assert "bridge is a pre-defined network and cannot be removed" in p.stderr, p.stderr
    p = serve.docker("network", "create", "host", check=False)
    assert "operation is not permitted on predefined host network" in p.stderr, p.stderr

    # connect and disconnect a running container (made with rongqi's CLI: no containers
    # endpoints needed), static address from EndpointConfig.IPAMConfig
    name2, subnet2, bridge2 = session_network(2)
    serve.docker("network", "create", "--subnet", subnet2, "-o",
                 f"com.docker.network.bridge.name={bridge2}", name2)
    cid = _run_on(serve, name2, "c1-" + name)
    assert f"{subnet2.rsplit('.', 2)[0]}." in _addresses(serve, cid)
    ip = subnet.replace(".0/24", ".200")
    serve.docker("network", "connect", "--ip", ip, "--alias", "web", name, "c1-" + name)
    assert f"inet {ip}/24" in _addresses(serve, cid)
    doc = _inspect(serve, "network", name)
    ep = doc["Containers"][cid]
    assert ep["Name"] == "c1-" + name and ep["IPv4Address"] == f"{ip}/24"
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", ep["MacAddress"])
    assert re.fullmatch(r"[0-9a-f]{64}", ep["EndpointID"])
    p = serve.docker("network", "connect", name, cid, check=False)
    assert p.returncode == 1 and "already exists in network" in p.stderr, p.stderr
    p = serve.docker("network", "rm", name, check=False)
    assert p.returncode == 1 and "has active endpoints" in p.stderr, p.stderr
    assert name not in serve.docker("network", "ls", "--filter", "dangling=true",
                                    "--format", "{{.Name}}").stdout.split()

    serve.docker("network", "disconnect", name, "c1-" + name)
    assert f"inet {ip}/" not in _addresses(serve, cid)
    assert _inspect(serve, "network", name)["Containers"] == {}
    p = serve.docker("network", "disconnect", name, cid, check=False)
    assert p.returncode == 1 and "is not connected to network" in p.stderr, p.stderr

    # prune: the network in use (name2) stays, the unused one goes; then rm
    out = serve.docker("network", "prune", "-f", "--filter", "label=app=serve-net").stdout
    assert name in out.split() and name2 not in out.split()
    serve.rongqi("rm", "-f", "-t", "0", cid, check=True)
    serve.docker("network", "rm", name2)
    assert serve.docker("network", "ls", "--format", "{{.Name}}").stdout.split() == ["bridge"]


@needs_net
def test_connect_and_disconnect_a_created_container_take_effect_at_start(serve):
    # compose's order: create, connect (with aliases), then start
    name, subnet, bridge = session_network(4)
    serve.docker("network", "create", "--subnet", subnet, "-o",
                 f"com.docker.network.bridge.name={bridge}", name)
    cid = serve.rongqi("create", "--name", "late-" + name, "busybox", "sleep", "600",
                       check=True).stdout.strip()
    serve.docker("network", "connect", "--alias", "latecomer", name, cid)
    serve.docker("network", "disconnect", "bridge", cid)
    assert _inspect(serve, "network", name)["Containers"] == {}  # no endpoint until start
    serve.rongqi("start", cid, check=True)
    eps = _inspect(serve, "network", name)["Containers"]
    assert list(eps) == [cid] and eps[cid]["IPv4Address"].startswith(subnet.rsplit(".", 1)[0])
    assert _inspect(serve, "network", "bridge")["Containers"] == {}
    addrs = _addresses(serve, cid)
    assert subnet.rsplit(".", 1)[0] + "." in addrs and "10.87." not in addrs, addrs
    r = serve.rongqi("run", "--rm", "--network", name, "busybox", "nslookup", "latecomer")
    assert r.returncode == 0 and eps[cid]["IPv4Address"].split("/")[0] in r.stdout, r.stdout
    serve.rongqi("rm", "-f", "-t", "0", cid, check=True)
    serve.docker("network", "rm", name)


@needs_net
def test_docker_cli_run_on_a_network_with_a_volume(serve):
    # all through the Docker API: run -d on a user network with a named volume, the names on
    # the network, rm of what is in use refused, then rm -f and the network and volume go
    name, subnet, bridge = session_network(5)
    serve.docker("network", "create", "--subnet", subnet, "-o",
                 f"com.docker.network.bridge.name={bridge}", name)
    serve.docker("run", "-d", "--name", "srv-" + name, "--network", name,
                 "--network-alias", "srv", "-v", "vol-" + name + ":/data", "busybox",
                 "sh", "-c", "echo hi > /data/f; exec httpd -f -p 80 -h /data")
    eps = _inspect(serve, "network", name)["Containers"]
    assert [e["Name"] for e in eps.values()] == ["srv-" + name]
    out = serve.docker("run", "--rm", "--network", name, "busybox", "wget", "-q", "-O", "-",
                       "http://srv/f").stdout
    assert out == "hi\n"
    p = serve.docker("network", "rm", name, check=False)
    assert p.returncode == 1 and "has active endpoints" in p.stderr, p.stderr
    p = serve.docker("volume", "rm", "vol-" + name, check=False)
    assert p.returncode == 1 and "volume is in use" in p.stderr, p.stderr
    serve.docker("rm", "-f", "srv-" + name)
    serve.docker("network", "rm", name)
    serve.docker("volume", "rm", "vol-" + name)
    assert serve.docker("volume", "ls", "-q").stdout.split() == []


@pytest.mark.root
def test_docker_cli_volumes(serve):
    p = serve.docker("volume", "create", "--label", "app=serve-net", "data-1")
    assert p.stdout.strip() == "data-1"
    assert serve.docker("volume", "create", "data-1").stdout.strip() == "data-1"  # Docker's
    anon = serve.docker("volume", "create").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anon)
    doc = _inspect(serve, "volume", "data-1")
    assert doc["Name"] == "data-1" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"app": "serve-net"} and os.path.isdir(doc["Mountpoint"])
    ls = serve.docker("volume", "ls").stdout
    assert re.search(r"^local\s+data-1\s*$", ls, re.M), ls
    assert serve.docker("volume", "ls", "-q", "--filter", "label=app=serve-net"
                        ).stdout.split() == ["data-1"]
    assert sorted(serve.docker("volume", "ls", "-q", "--filter", "dangling=true"
                               ).stdout.split()) == sorted(["data-1", anon])

    # in use by a container (any status): 409 with Docker's words; force does not change that
    cid = serve.rongqi("create", "-v", "data-1:/data", "busybox", "true",
                       check=True).stdout.strip()
    assert serve.docker("volume", "ls", "-q", "--filter", "dangling=false"
                        ).stdout.split() == ["data-1"]
    p = serve.docker("volume", "rm", "-f", "data-1", check=False)
    assert p.returncode == 1
    assert f"remove data-1: volume is in use - [{cid}]" in p.stderr, p.stderr
    p = serve.docker("volume", "rm", "nope-vol", check=False)
    assert p.returncode == 1 and "No such volume: nope-vol" in p.stderr, p.stderr
    assert serve.docker("volume", "rm", "-f", "nope-vol").returncode == 0  # Docker's force
    p = serve.docker("volume", "create", "a/b", check=False)
    assert p.returncode == 1 and "includes invalid characters" in p.stderr, p.stderr
    p = serve.docker("volume", "create", "-d", "nfsplugin", "x1", check=False)
    assert p.returncode == 1 and 'plugin "nfsplugin" not found' in p.stderr, p.stderr

    # prune: the unused one goes with its bytes counted, the used one stays
    with open(os.path.join(_inspect(serve, "volume", anon)["Mountpoint"], "f"), "wb") as f:
        f.write(b"x" * 4096)
    out = serve.docker("volume", "prune", "-f").stdout
    assert anon in out and "data-1" not in out.split() and "4.096kB" in out, out
    serve.rongqi("rm", cid, check=True)
    serve.docker("volume", "rm", "data-1")
    assert serve.docker("volume", "ls", "-q").stdout.split() == []


# -- docker-py -----------------------------------------------------------------------------------
@needs_net
def test_docker_py_networks(serve):
    import docker
    from docker.types import IPAMConfig, IPAMPool
    client = serve.client()
    name, subnet, bridge = session_network(3)
    net = client.networks.create(
        name, driver="bridge", check_duplicate=True, labels={"app": "serve-net"},
        options={"com.docker.network.bridge.name": bridge},
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]))
    assert net.name == name and re.fullmatch(r"[0-9a-f]{64}", net.id)
    assert client.networks.get(name).attrs["IPAM"]["Config"][0]["Subnet"] == subnet
    assert [n.name for n in client.networks.list(names=[name])] == [name]
    assert [n.id for n in client.networks.list(filters={"label": "app=serve-net"})] == [net.id]
    assert client.networks.get("bridge").name == "bridge"
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("nope-" + name)
    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create(name)
    assert err.value.status_code == 409

    cid = _run_on(serve, name, "py-" + name)
    net.reload()
    assert list(net.attrs["Containers"]) == [cid]
    assert [c.id for c in net.containers] == [cid]  # through GET /containers/{id}/json
    # connect to the default network (Docker's "bridge") and back
    client.networks.get("bridge").connect(cid)
    assert cid in client.networks.get("bridge").attrs["Containers"]
    client.networks.get("bridge").disconnect(cid)
    assert cid not in client.networks.get("bridge").attrs["Containers"]
    with pytest.raises(docker.errors.APIError) as err:
        net.remove()
    assert err.value.status_code == 403
    assert client.networks.prune(filters={"label": "app=serve-net"}) == {"NetworksDeleted": []}
    serve.rongqi("rm", "-f", "-t", "0", cid, check=True)
    assert client.networks.prune(filters={"label": "app=serve-net"}) == {
        "NetworksDeleted": [name]}
    assert [n.name for n in client.networks.list()] == ["bridge"]


@pytest.mark.root
def test_docker_py_volumes(serve):
    import docker
    client = serve.client()
    vol = client.volumes.create("pyvol", driver="local", labels={"app": "serve-net"},
                                driver_opts={"type": "tmpfs", "device": "tmpfs",
                                             "o": "size=1m"})
    assert vol.name == "pyvol" and vol.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs",
                                                            "o": "size=1m"}
    assert client.volumes.get("pyvol").attrs["Labels"] == {"app": "serve-net"}
    assert [v.name for v in client.volumes.list(filters={"label": "app=serve-net"})] == ["pyvol"]
    assert [v.name for v in client.volumes.list(filters={"name": "^py"})] == ["pyvol"]
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("nope")
    with pytest.raises(docker.errors.APIError) as err:
        client.volumes.create("x", driver="local", driver_opts={"bogus": "1"})
    assert err.value.status_code == 400
    keep = client.volumes.create("pykeep", labels={"keep": "1"})
    res = client.volumes.prune(filters={"label!": "keep"})
    assert res == {"VolumesDeleted": ["pyvol"], "SpaceReclaimed": 0}
    keep.remove()
    assert client.volumes.list() == []


@pytest.mark.root
def test_bad_requests_answer_dockers_json(serve):
    r = serve.http.post("/v1.41/networks/create", content=b"{nope")
    assert r.status_code == 400 and "message" in r.json()
    r = serve.http.post("/v1.41/networks/create", json={"Name": ""})
    assert r.status_code == 400 and r.json() == {"message": "network name is required"}
    r = serve.http.get("/v1.41/networks", params={"filters": json.dumps({"color": ["red"]})})
    assert r.status_code == 400 and r.json() == {"message": "invalid filter 'color'"}
    r = serve.http.get("/v1.41/volumes", params={"filters": json.dumps({"dangling": ["x"]})})
    assert r.status_code == 400
    r = serve.http.get("/v1.41/networks/bridge", params={"scope": "swarm"})
    assert r.status_code == 404
    r = serve.http.post("/v1.41/networks/bridge/connect", json={"Container": "nope"})
    assert r.status_code == 404
    r = serve.http.delete("/v1.41/networks/nope")
    assert r.status_code == 404 and r.json() == {"message": "network nope not found"}
    r = serve.http.get("/v1.41/volumes")
    assert r.status_code == 200 and r.json() == {"Volumes": [], "Warnings": []}
