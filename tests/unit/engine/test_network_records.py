"""engine/networks.py without root: records, subnets, IPAM leases, modes, filters, the
container's plan, /etc/hosts and resolv.conf rewriting."""

from __future__ import annotations

import os

import pytest

from rongqi.engine import networks as nw
from rongqi.engine.options import ContainerOptions


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("RONGQI_NETWORK_RUNDIR", str(tmp_path / "run"))
    monkeypatch.setattr(nw, "host_routes", lambda: [])
    monkeypatch.setattr(nw, "_host_links", lambda: {"lo", "eth0", "podman1"})
    return nw.NetworkStore(str(tmp_path / "root"))


def test_default_network_is_podmans_and_made_on_first_look(store):
    assert not os.path.exists(store.dir)
    net = store.get("podman")
    assert net["id"] == nw.DEFAULT_ID and net["network_interface"] == "rongqi0"
    assert net["subnets"] == [{"subnet": "10.87.0.0/16", "gateway": "10.87.0.1"}]
    assert [n["name"] for n in store.list()] == ["podman"]
    assert store.get("028f80")["name"] == "podman"


def test_the_default_network_is_not_podmans_own_and_old_records_move(store):
    # podman's bridge, subnet and id: two IPAMs on one subnet, one set of chains for two
    import json
    net = store.get("podman")
    assert net["id"] != nw.PODMAN_DEFAULT_ID and net["network_interface"] != "podman0"
    assert not any(s["subnet"] == "10.88.0.0/16" for s in net["subnets"])
    # a root made before: moved to rongqi's own while nothing holds an address on it...
    old = dict(net, id=nw.PODMAN_DEFAULT_ID, network_interface="podman0",
               subnets=[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}])
    with open(os.path.join(store.dir, "podman.json"), "w") as f:
        json.dump(old, f)
    assert store.get("podman")["id"] == nw.DEFAULT_ID
    # ...and kept while a container does
    with open(os.path.join(store.dir, "podman.json"), "w") as f:
        json.dump(old, f)
    nw._write_leases(old, {"10.88.0.2": {"id": "c" * 64, "root": "/x"}})
    assert store.get("podman")["id"] == nw.PODMAN_DEFAULT_ID


def test_create_picks_a_free_subnet_and_bridge_and_refuses_overlaps(store):
    a = store.create("a")
    assert a["subnets"] == [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}]
    assert a["network_interface"] == "podman2"   # podman1 exists on the host
    b = store.create("b", subnets=["10.89.1.0/24"], gateways=["10.89.1.254"],
                     ip_ranges=["10.89.1.128/25"], labels={"k": "v"}, internal=True)
    assert b["subnets"][0]["gateway"] == "10.89.1.254"
    assert b["subnets"][0]["lease_range"] == {"start_ip": "10.89.1.129",
                                              "end_ip": "10.89.1.254"}
    assert store.create("c")["subnets"][0]["subnet"] == "10.89.2.0/24"
    with pytest.raises(nw.NetworkError, match="subnet 10.89.1.0/25 is already used"):
        store.create("d", subnets=["10.89.1.0/25"])
    with pytest.raises(nw.NetworkError, match="network name a already used"):
        store.create("a")
    assert store.create("a", ignore=True)["id"] == a["id"]
    with pytest.raises(nw.NetworkError, match="gateway 10.1.0.1 not in subnet"):
        store.create("e", subnets=["10.90.0.0/24"], gateways=["10.1.0.1"])
    with pytest.raises(nw.NetworkError, match="unsupported driver macvlan"):
        store.create("f", driver="macvlan")
    with pytest.raises(nw.NetworkError, match="names must match"):
        store.create("-bad")
    v6 = store.create("g", ipv6=True)
    assert [s["subnet"] for s in v6["subnets"]] == ["10.89.3.0/24", "fd00:89::/64"]
    assert v6["ipv6_enabled"] is True
    with pytest.raises(nw.NoSuchNetwork, match="unable to find network with name or ID zz"):
        store.get("zz")


def test_leases_are_first_free_static_and_released(store, tmp_path):
    net = store.create("n", subnets=["10.91.0.0/29"])
    root = str(tmp_path / "root")
    for cid in ("a" * 64, "b" * 64, "c" * 64):
        os.makedirs(os.path.join(root, "containers", cid))
    with nw.host_lock():
        assert nw._allocate(net, "a" * 64, root, []) == ["10.91.0.2"]
        assert nw._allocate(net, "b" * 64, root, ["10.91.0.5"]) == ["10.91.0.5"]
        with pytest.raises(nw.NetworkError, match="10.91.0.5 is already allocated"):
            nw._allocate(net, "c" * 64, root, ["10.91.0.5"])
        assert nw._allocate(net, "c" * 64, root, []) == ["10.91.0.3"]
        nw._release(net, "a" * 64)
    assert sorted(nw.leases_of("b" * 64)) == ["10.91.0.5"] and nw.leases_of("a" * 64) == []
    # A lease of a container whose record is gone (its root deleted) is stale: reused.
    os.rmdir(os.path.join(root, "containers", "c" * 64))
    os.makedirs(os.path.join(root, "containers", "d" * 64))
    with nw.host_lock():
        assert nw._allocate(net, "d" * 64, root, []) == ["10.91.0.2"]
        os.makedirs(os.path.join(root, "containers", "e" * 64))
        assert nw._allocate(net, "e" * 64, root, []) == ["10.91.0.3"]
        os.makedirs(os.path.join(root, "containers", "f" * 64))
        assert nw._allocate(net, "f" * 64, root, []) == ["10.91.0.4"]
        os.makedirs(os.path.join(root, "containers", "9" * 64))
        assert nw._allocate(net, "9" * 64, root, []) == ["10.91.0.6"]
        os.makedirs(os.path.join(root, "containers", "8" * 64))
        with pytest.raises(nw.NetworkError, match="failed to find free IP"):
            nw._allocate(net, "8" * 64, root, [])


def test_modes():
    assert nw.mode_of("", False) == ("bridge", ["podman"])
    assert nw.mode_of("", True) == ("slirp4netns", [])
    assert nw.mode_of("bridge", False) == ("bridge", ["podman"])
    assert nw.mode_of("a,b,a", False) == ("bridge", ["a", "b"])
    assert nw.mode_of("none", False) == ("none", [])
    assert nw.mode_of("container:x", False) == ("container:x", [])


def test_plan_checks_networks_and_addresses(store, tmp_path):
    store.create("u", subnets=["10.92.0.0/24"])
    root = os.path.dirname(store.dir)
    opts = ContainerOptions(image="i", network="u", ip="10.92.0.9", network_aliases=["x"],
                            publish=["8080:80", "53/udp"], publish_all=True)
    p = nw.plan(None, root, "c" * 64, "n", opts, False, ["80/tcp", "443/tcp"])
    assert p["networks"] == {"u": {"interface_name": "eth0", "aliases": ["x"],
                                   "static_ips": ["10.92.0.9"], "static_mac": ""}}
    assert p["netns"] == "/run/netns/rongqi-" + "c" * 64
    assert [(m["container_port"], m["host_port"], m["protocol"]) for m in p["ports"]] == \
        [(80, 8080, "tcp"), (53, 0, "udp"), (443, 0, "tcp")]
    with pytest.raises(nw.NetworkError, match="not in any subnet on network u"):
        nw.plan(None, root, "c" * 64, "n", ContainerOptions(image="i", network="u",
                                                              ip="10.1.1.1"), False, [])
    with pytest.raises(nw.NetworkError, match="10.92.0.1 is not free"):
        nw.plan(None, root, "c" * 64, "n", ContainerOptions(image="i", network="u",
                                                              ip="10.92.0.1"), False, [])
    with pytest.raises(nw.NoSuchNetwork):
        nw.plan(None, root, "c" * 64, "n", ContainerOptions(image="i", network="u,v"),
                False, [])
    with pytest.raises(nw.NetworkError, match="Bridge mode"):
        nw.plan(None, root, "c" * 64, "n", ContainerOptions(image="i", network="none",
                                                              network_aliases=["a"]), False, [])
    assert nw.plan(None, root, "c" * 64, "n", ContainerOptions(image="i", network="host"),
                   False, []) is None


def test_filters():
    nets = [{"name": "podman", "id": nw.DEFAULT_ID, "driver": "bridge"},
            {"name": "web", "id": "ab" * 32, "driver": "bridge", "labels": {"t": "1"}}]
    pick = lambda fs: [n["name"] for n in nets if nw.compile_filters(fs)(n)]  # noqa: E731
    assert pick(["name=we"]) == ["web"]
    assert pick(["label=t=1"]) == ["web"] and pick(["label=t=2"]) == []
    assert pick(["label!=t"]) == ["podman"]
    assert pick(["type=builtin"]) == ["podman"]
    assert pick(["id=abab", "id=028f"]) == ["podman", "web"]
    with pytest.raises(Exception, match="invalid filter"):
        nw.compile_filters(["bogus=1"])


def test_create_from_dockers_fields(store):
    from rongqi.engine.networks import NetworkExists, PredefinedNetwork, create_docker_style
    net, warnings = create_docker_style(
        store, "front", options={"com.docker.network.driver.mtu": "1400",
                                 "com.docker.network.bridge.name": "rqunit0", "foo": "bar"},
        ipam={"Driver": "default", "Config": [
            {"Subnet": "10.99.3.0/24", "IPRange": "10.99.3.128/25"},
            {"Subnet": "10.99.4.0/24", "Gateway": "10.99.4.254"}]},
        labels={"k": "v"}, internal=True)
    assert net["network_interface"] == "rqunit0" and net["options"] == {"mtu": "1400"}
    assert net["subnets"] == [
        {"subnet": "10.99.3.0/24", "gateway": "10.99.3.1",
         "lease_range": {"start_ip": "10.99.3.129", "end_ip": "10.99.3.254"}},
        {"subnet": "10.99.4.0/24", "gateway": "10.99.4.254"}]
    assert net["internal"] and net["labels"] == {"k": "v"} and net["dns_enabled"]
    assert warnings == ['"foo: bar" is not a recognized option']
    assert net["docker_options"] == {"com.docker.network.driver.mtu": "1400",
                                     "com.docker.network.bridge.name": "rqunit0", "foo": "bar"}
    with pytest.raises(NetworkExists):
        create_docker_style(store, "front")
    with pytest.raises(PredefinedNetwork, match="predefined host network"):
        create_docker_style(store, "host")
    from rongqi.engine.networks import NetworkError
    with pytest.raises(NetworkError, match="IPAM driver"):
        create_docker_style(store, "other", ipam={"Driver": "dhcp"})
    # compose's lower-case keys
    net, _ = create_docker_style(store, "lower", ipam={"driver": "default", "config": [
        {"subnet": "10.99.5.0/24", "gateway": "10.99.5.9"}]})
    assert net["subnets"] == [{"subnet": "10.99.5.0/24", "gateway": "10.99.5.9"}]


def test_network_filters_dangling_type_and_bad_values(store):
    from rongqi.engine.networks import compile_filters
    from rongqi.errors import UsageError
    a = store.create("a", subnets=["10.99.6.0/24"], labels={"k": "v"})
    b = store.create("b", subnets=["10.99.7.0/24"])
    used = {"a"}
    match = compile_filters({"dangling": ["true"]}, used=lambda: used)
    assert [n["name"] for n in (a, b) if match(n)] == ["b"]
    match = compile_filters(["dangling=false"], used=lambda: used)
    assert [n["name"] for n in (a, b) if match(n)] == ["a"]
    match = compile_filters({"label": ["k=v"], "type": ["custom"]})
    assert [n["name"] for n in (a, b) if match(n)] == ["a"]
    for bad in ({"dangling": ["maybe"]}, {"type": ["odd"]}, {"name": ["("]}, {"nope": ["1"]}):
        with pytest.raises(UsageError):
            compile_filters(bad)


def test_network_dns_servers_default_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("RONGQI_NETWORK_DNS", "127.0.0.1, ::1")
    assert store.create("d")["network_dns_servers"] == ["127.0.0.1", "::1"]
    assert store.create("e", dns_servers=["10.1.1.1"])["network_dns_servers"] == ["10.1.1.1"]
    assert "network_dns_servers" not in store.create("f", disable_dns=True)


def test_hosts_and_resolv_conf_are_rewritten_in_place(tmp_path):
    ud = tmp_path / "userdata"
    ud.mkdir()
    (ud / "hostname").write_text("box\n")
    (ud / "hosts").write_text("10.1.2.3\textra\n127.0.0.1\tlocalhost\n127.0.0.1\tbox web\n")
    (ud / "resolv.conf").write_text("search example.org\nnameserver 10.255.255.53\n"
                                    "options ndots:2\n")
    inode = os.stat(ud / "hosts").st_ino

    class C:
        userdata = str(ud)
        name = "web"
        config = {"options": {}}
    status = {"u": {"interfaces": {"eth0": {"subnets": [{"ipnet": "10.92.0.2/24",
                                                         "gateway": "10.92.0.1"}]}},
                    "dns_server_ips": ["10.92.0.1"], "dns_search_domains": ["dns.podman"]}}
    att = {"networks": {"u": {"interface_name": "eth0"}}, "status": status}
    nw.write_etc(C(), att)
    assert (ud / "hosts").read_text() == ("10.1.2.3\textra\n127.0.0.1\tlocalhost\n"
                                          "10.92.0.2\tbox web\n"
                                          "10.92.0.1\thost.containers.internal\n")
    assert os.stat(ud / "hosts").st_ino == inode
    assert (ud / "resolv.conf").read_text() == ("search dns.podman example.org\n"
                                                "nameserver 10.92.0.1\noptions ndots:2\n")
    nw.write_etc(C(), att)  # idempotent
    assert (ud / "hosts").read_text().count("10.92.0.2") == 1
