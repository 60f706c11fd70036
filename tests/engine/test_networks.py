"""Networks with real containers (netavark, aardvark-dns): published ports answering on the
host's loopback and from other containers, names and aliases on a user network, none/host/
container:NAME, internal networks, connect/disconnect, cleanup after rm, kills and network rm,
and bad input. Packets stay on loopback and the test's own bridges; aardvark's upstream is
127.0.0.1 (nothing there), so no name ever leaves the machine."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from rq import rq  # noqa: F401 - the fixture
from support.net import free_port, http_get
from support.plugin import SESSION_TAG

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.access("/usr/lib/podman/netavark", os.X_OK),
                                 reason="netavark is not installed")]

# Subnets and bridge names of this session: derived from its tag, so sessions running at
# once (and the host's own podman) never share one.
_H = int(hashlib.sha256(SESSION_TAG.encode()).hexdigest(), 16)
_n = itertools.count(1)


def _net(rq, *extra: str, internal: bool = False) -> tuple[str, str]:
    """A user network of this session: (name, subnet)."""
    i = next(_n)
    subnet = f"10.{200 + _H % 50}.{(_H >> 8) % 200 + i}.0/24"
    name = f"{SESSION_TAG}-n{i}"
    bridge = f"rq{(_H >> 16) % 0xFFFFFF:06x}{i}"
    args = ["network", "create", "--subnet", subnet, "--interface-name", bridge,
            "--dns", "127.0.0.1", *extra]
    if internal:
        args.append("--internal")
    rq(*args, name, check=True)
    return name, subnet






def _httpd(rq, *args: str) -> str:
    """A busybox httpd serving /etc (so /hostname names the container)."""
    return rq("run", "-d", *args, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc",
              check=True).stdout.strip()


def _rules(word: str) -> list[str]:
    out = []
    for cmd in ("iptables-save", "ip6tables-save"):
        r = subprocess.run([cmd], capture_output=True, text=True)
        out += [ln for ln in r.stdout.splitlines() if word in ln]
    return out


def _leases(cid: str) -> list[str]:
    from rongqi.engine import networks
    return networks.leases_of(cid)


# -- ports -----------------------------------------------------------------------------------------
def test_published_port_answers_on_loopback_and_from_other_containers(rq):
    port = free_port()
    cid = _httpd(rq, "--name", "web", "-p", f"{port}:80")
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    assert rq("port", "web", check=True).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    # Another container reaches it through the host (the default network's gateway).
    gw = rq("inspect", "web", "--format", "{{.NetworkSettings.Gateway}}", check=True).stdout.strip()
    r = rq("run", "--rm", "busybox", "timeout", "5", "wget", "-q", "-O", "-",
           f"http://{gw}:{port}/hostname", check=True)
    assert r.stdout.strip() == cid[:12]


def test_publish_on_one_host_ip_a_range_and_a_random_port(rq):
    p1, p2 = free_port(), free_port()
    lo = free_port()
    while True:  # two consecutive free ports for the range
        try:
            socket.create_server(("127.0.0.1", lo + 1)).close()
            break
        except OSError:
            lo = free_port()
    cid = rq("run", "-d", "--name", "multi", "-p", f"127.0.0.1:{p1}:80", "-p", "81",
             "-p", f"{lo}-{lo + 1}:90-91", "busybox", "sh", "-c",
             "httpd -p 80 -h /etc; httpd -p 81 -h /etc; httpd -p 90 -h /etc; "
             "httpd -p 91 -h /etc; sleep 600", check=True).stdout.strip()
    assert http_get(f"http://127.0.0.1:{p1}/hostname").strip() == cid[:12]
    random_port = int(rq("port", "multi", "81", check=True).stdout.strip().rsplit(":", 1)[1])
    assert random_port > 0
    assert http_get(f"http://127.0.0.1:{random_port}/hostname").strip() == cid[:12]
    for p in (lo, lo + 1):
        assert http_get(f"http://127.0.0.1:{p}/hostname").strip() == cid[:12]
    del p2


def test_publish_all_uses_the_images_exposed_ports(rq):
    rq("run", "--name", "base", "busybox", "true", check=True)
    rq("commit", "-c", "EXPOSE 80", "base", "exposed-web", check=True)
    _httpd_image = rq("run", "-d", "--name", "pw", "-P", "exposed-web", "httpd", "-f", "-p",
                      "80", "-h", "/etc", check=True).stdout.strip()
    line = rq("port", "pw", check=True).stdout.strip()
    m = re.fullmatch(r"80/tcp -> 0\.0\.0\.0:(\d+)", line)
    assert m, line
    assert http_get(f"http://127.0.0.1:{m.group(1)}/hostname").strip() == _httpd_image[:12]
    ports = json.loads(rq("inspect", "pw", "--format", "{{json .NetworkSettings.Ports}}",
                          check=True).stdout)
    assert ports == {"80/tcp": [{"HostIp": "", "HostPort": m.group(1)}]}


# -- names -----------------------------------------------------------------------------------------
def test_containers_on_a_user_network_reach_each_other_by_name_and_alias(rq):
    net, _ = _net(rq)
    cid = _httpd(rq, "--name", "srv", "--network", net, "--network-alias", "www")
    for name in ("srv", "www", "srv.dns.podman"):
        r = rq("run", "--rm", "--network", net, "busybox", "timeout", "5", "wget", "-q", "-O",
               "-", f"http://{name}/hostname", check=True)
        assert r.stdout.strip() == cid[:12], name
    resolv = rq("run", "--rm", "--network", net, "busybox", "cat", "/etc/resolv.conf",
                check=True).stdout
    gw = json.loads(rq("network", "inspect", net, check=True).stdout)[0]["subnets"][0]["gateway"]
    assert f"nameserver {gw}" in resolv and "search dns.podman" in resolv


def test_hosts_file_names_the_containers_own_address(rq):
    net, subnet = _net(rq)
    ip = subnet.replace("0/24", "77")
    out = rq("run", "--rm", "--name", "me", "--hostname", "box", "--network", net, "--ip", ip,
             "--mac-address", "92:d0:c6:0a:29:33", "--add-host", "extra:10.1.2.3", "busybox",
             "sh", "-c", "cat /etc/hosts; cat /sys/class/net/eth0/address", check=True).stdout
    assert f"{ip}\tbox me" in out
    assert "10.1.2.3\textra" in out
    assert "92:d0:c6:0a:29:33" in out


def test_connect_and_disconnect_change_what_a_running_container_reaches(rq):
    a, _ = _net(rq)
    b, _ = _net(rq)
    cid = _httpd(rq, "--name", "target", "--network", a)
    rq("run", "-d", "--name", "client", "--network", b, "busybox", "sleep", "600", check=True)

    def fetch() -> subprocess.CompletedProcess:
        return rq("exec", "client", "timeout", "5", "wget", "-q", "-O", "-",
                  "http://target/hostname")

    assert fetch().returncode != 0
    rq("network", "connect", "--alias", "cl", a, "client", check=True)
    r = fetch()
    assert r.returncode == 0 and r.stdout.strip() == cid[:12]
    # The new name is known on the network at once.
    r = rq("exec", "target", "nslookup", "cl")
    assert r.returncode == 0 and "Address" in r.stdout.split("Name:")[-1]
    rq("network", "disconnect", a, "client", check=True)
    assert fetch().returncode != 0
    assert rq("exec", "client", "cat", "/sys/class/net/eth1/address").returncode != 0
    insp = rq("inspect", "client", "--format", "{{json .NetworkSettings.Networks}}",
              check=True).stdout
    assert a not in insp and b in insp


def test_a_container_in_a_user_namespace_joins_a_user_network(rq):
    """Its netns is the runtime's (one made on the host cannot be joined from a new user
    namespace): the monitor plugs it in between create and start."""
    net, _ = _net(rq)
    cid = _httpd(rq, "--name", "plain", "--network", net)
    r = rq("run", "--rm", "--uidmap", "0:300000:65536", "--network", net, "busybox", "sh",
           "-c", "cat /proc/self/uid_map; timeout 5 wget -q -O - http://plain/hostname",
           check=True)
    assert "300000" in r.stdout and r.stdout.strip().endswith(cid[:12])


# -- modes -----------------------------------------------------------------------------------------
def test_network_none_has_only_lo(rq):
    out = rq("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net",
             check=True).stdout.split()
    assert out == ["lo"]


def test_default_network_is_a_bridge_with_an_address_and_a_route_out(rq):
    out = rq("run", "--rm", "busybox", "sh", "-c", "ls /sys/class/net; ip route",
             check=True).stdout
    assert "eth0" in out.split() and "default via 10.87.0.1" in out


def test_internal_network_has_no_default_route(rq):
    net, subnet = _net(rq, internal=True)
    out = rq("run", "--rm", "--network", net, "busybox", "ip", "route", check=True).stdout
    assert "default" not in out
    assert subnet in out


def test_container_network_shares_the_stack(rq):
    net, _ = _net(rq)
    rq("run", "-d", "--name", "owner", "--network", net, "busybox", "sleep", "600", check=True)
    mac = rq("exec", "owner", "cat", "/sys/class/net/eth0/address", check=True).stdout
    out = rq("run", "--rm", "--network", "container:owner", "busybox", "cat",
             "/sys/class/net/eth0/address", check=True).stdout
    assert out == mac


def test_ipv6_network_gives_a_global_address(rq):
    if not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("the host has no IPv6")
    i = next(_n)
    name = f"{SESSION_TAG}-v6{i}"
    sub6 = f"fd{_H % 0xff:02x}:{(_H >> 8) % 0xffff:x}:{i:x}::/64"
    rq("network", "create", "--ipv6", "--subnet", f"10.{200 + _H % 50}.{(_H >> 8) % 200 + i}"
       ".0/24", "--subnet", sub6, "--dns", "127.0.0.1", "--interface-name",
       f"rq6{(_H >> 16) % 0xFFFFF:05x}{i}", name, check=True)
    out = rq("run", "--rm", "--network", name, "busybox", "ip", "-6", "addr", "show", "eth0",
             check=True).stdout
    assert sub6.split("::")[0] in out


def test_stats_counts_the_network_traffic(rq):
    port = free_port()
    _httpd(rq, "--name", "st", "-p", f"127.0.0.1:{port}:80")
    for _ in range(3):
        http_get(f"http://127.0.0.1:{port}/passwd")
    row = json.loads(rq("stats", "--no-stream", "--format", "json", "st", check=True).stdout)[0]
    rx, tx = row["net_io"].split(" / ")
    assert rx != "0B" and tx != "0B", row["net_io"]


# -- cleanup -----------------------------------------------------------------------------------
def test_nothing_is_left_after_rm_and_network_rm(rq):
    net, subnet = _net(rq)
    port = free_port()
    cid = _httpd(rq, "--name", "gone", "--network", net, "-p", f"{port}:80")
    bridge = json.loads(rq("network", "inspect", net, check=True).stdout)[0]["network_interface"]
    assert os.path.exists(f"/run/netns/rongqi-{cid}")
    assert _leases(cid) and _rules(net) and os.path.exists(f"/sys/class/net/{bridge}")
    rq("rm", "-f", "-t", "0", "gone", check=True)
    assert not os.path.exists(f"/run/netns/rongqi-{cid}")
    assert _leases(cid) == [] and _rules(net) == [] and _rules(subnet) == []
    assert not os.path.exists(f"/sys/class/net/{bridge}")
    rq("network", "rm", net, check=True)
    assert rq("network", "exists", net).returncode == 1


def test_stop_tears_down_and_start_sets_up_again(rq):
    net, _ = _net(rq)
    cid = rq("run", "-d", "--name", "again", "--network", net, "busybox", "sleep", "600",
             check=True).stdout.strip()
    first = _leases(cid)
    rq("stop", "-t", "0", "again", check=True)
    assert _leases(cid) == [] and not os.path.exists(f"/run/netns/rongqi-{cid}")
    rq("start", "again", check=True)
    assert _leases(cid) == first
    assert rq("exec", "again", "cat", "/sys/class/net/eth0/address").returncode == 0


def test_a_killed_monitor_and_container_are_cleaned_up_by_the_next_command(rq):
    net, _ = _net(rq)
    cid = rq("run", "-d", "--name", "victim", "--network", net, "-p", f"{free_port()}:80",
             "busybox", "sleep", "600", check=True).stdout.strip()
    st = rq.state(cid)
    os.kill(st["monitor_pid"], signal.SIGKILL)
    os.kill(st["pid"], signal.SIGKILL)
    rq.wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}/stat") or
                open(f"/proc/{st['pid']}/stat").read().split()[2] == "Z", what="the kill")
    assert os.path.exists(f"/run/netns/rongqi-{cid}")  # nobody cleaned up yet
    assert "Exited" in rq("ps", "-a", "--format", "{{.Status}}", check=True).stdout
    assert not os.path.exists(f"/run/netns/rongqi-{cid}")
    assert _leases(cid) == [] and _rules(cid) == []


def test_run_rm_on_a_user_network_leaves_nothing(rq):
    net, _ = _net(rq)
    rq("run", "--rm", "--name", "brief", "--network", net, "busybox", "true", check=True)
    assert not [n for n in os.listdir("/run/netns") if n.startswith("rongqi-")
                and os.path.isdir(os.path.join(rq.root, "containers", n[7:]))]
    assert _rules(net) == []


# -- bad input ---------------------------------------------------------------------------------
def _one_error(r: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], r.stderr


def test_an_overlapping_subnet_is_refused(rq):
    net, subnet = _net(rq)
    half = subnet.replace("0/24", "128/25")
    r = rq("network", "create", "--subnet", half, f"{SESSION_TAG}-overlap")
    _one_error(r, 125, f"subnet {half} is already used on the host or by another config")
    assert rq("network", "exists", f"{SESSION_TAG}-overlap").returncode == 1


def test_a_port_in_use_on_the_host_is_refused_and_nothing_is_left(rq):
    holder = socket.create_server(("0.0.0.0", 0))
    port = holder.getsockname()[1]
    try:
        r = rq("run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox", "sleep", "600")
        # podman 4.3.1 as root: exit 126, the container could not start (030-run "failed --rm")
        _one_error(r, 126, f"{port}: bind: address already in use")
    finally:
        holder.close()
    ids = [c for c in os.listdir(os.path.join(rq.root, "containers")) if len(c) == 64]
    for cid in ids:
        assert rq.state(cid)["status"] != "running"
        assert not os.path.exists(f"/run/netns/rongqi-{cid}") and _leases(cid) == []


def test_a_port_another_container_publishes_is_refused(rq):
    port = free_port()
    _httpd(rq, "--name", "first", "-p", f"{port}:80")
    r = rq("run", "--rm", "-p", f"{port}:80", "busybox", "true")
    _one_error(r, 126, "address already in use")  # podman 4.3.1's code for it, as root


def test_an_unknown_network_is_refused_at_create(rq):
    r = rq("create", "--network", "nosuchnet", "busybox", "true")
    _one_error(r, 125, "unable to find network with name or ID nosuchnet: network not found")
    assert not [c for c in os.listdir(os.path.join(rq.root, "containers")) if len(c) == 64]


def test_rm_of_a_network_in_use_is_refused_and_rm_f_removes_its_containers(rq):
    net, _ = _net(rq)
    rq("run", "-d", "--name", "user", "--network", net, "busybox", "sleep", "600", check=True)
    r = rq("network", "rm", net)
    _one_error(r, 2, f'"{net}" has associated containers with it')
    rq("network", "rm", "-f", net, check=True)
    assert rq("container", "exists", "user").returncode == 1
    _one_error(rq("network", "rm", net), 1, "network not found")


# -- the commands' shapes --------------------------------------------------------------------------
def test_network_ls_inspect_exists_and_prune(rq):
    net, subnet = _net(rq, "--label", "team=a")
    out = rq("network", "ls", check=True).stdout.splitlines()
    assert re.fullmatch(r"NETWORK ID\s+NAME\s+DRIVER", out[0])
    assert any(re.fullmatch(r"028f80341b7f\s+podman\s+bridge", ln) for ln in out)
    assert net in rq("network", "ls", "-q", check=True).stdout.split()
    assert rq("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}",
              check=True).stdout == net + "\n"
    doc = json.loads(rq("network", "inspect", net, check=True).stdout)[0]
    assert doc["subnets"] == [{"subnet": subnet, "gateway": subnet.replace("0/24", "1")}]
    assert doc["driver"] == "bridge" and doc["dns_enabled"] is True
    assert doc["labels"] == {"team": "a"} and len(doc["id"]) == 64
    assert rq("network", "inspect", "-f", "{{.Name}} {{.Driver}}", net,
              check=True).stdout == f"{net} bridge\n"
    assert rq("network", "exists", net).returncode == 0
    # dangling: no container on it (the default network is never dangling)
    cid = rq("create", "--network", net, "busybox", "true", check=True).stdout.strip()
    assert rq("network", "ls", "--filter", "dangling=true", "-q", check=True).stdout == ""
    assert rq("network", "ls", "--filter", "dangling=false", "--format", "{{.Name}}",
              check=True).stdout.split() == sorted([net, "podman"])
    assert rq("network", "prune", "-f", check=True).stdout == ""
    rq("rm", cid, check=True)
    assert rq("network", "ls", "--filter", "dangling=true", "-q", check=True).stdout == net + "\n"
    assert rq("network", "prune", "-f", check=True).stdout == net + "\n"
    assert rq("network", "exists", net).returncode == 1
    assert rq("network", "exists", "podman").returncode == 0


def test_a_monitor_past_its_slim_re_exec_tears_the_network_down(rq):
    # The container outlives the monitor's re-exec (1 s), then ends by itself: its monitor,
    # not a later command, undoes the network (no rongqi command runs meanwhile).
    net, _ = _net(rq)
    cid = rq("run", "-d", "--network", net, "busybox", "sleep", "3",
             check=True).stdout.strip()
    assert _leases(cid)
    rq.wait_for(lambda: not _leases(cid) and not os.path.exists(f"/run/netns/rongqi-{cid}"),
                timeout=30, what="the monitor's teardown")
    assert not _rules(cid)


def test_network_reload_puts_flushed_firewall_rules_back(rq):
    net, _ = _net(rq)
    port = free_port()
    cid = _httpd(rq, "--name", "web", "--network", net, "-p", f"127.0.0.1:{port}:80")
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    mac = rq("exec", "web", "cat", "/sys/class/net/eth0/address", check=True).stdout
    ip = rq("inspect", "web", "--format", "{{.NetworkSettings.IPAddress}}",
            check=True).stdout.strip()
    # what a firewall reload does to netavark's rules: this container's port rules go
    # (only ours: the lines naming its port and id)
    mine = [ln for ln in subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                                        text=True, check=True).stdout.splitlines()
            if ln.startswith("-A ") and (f"--dport {port} " in ln or cid in ln)]
    assert mine
    for ln in mine:
        subprocess.run(["iptables", "-t", "nat", "-D", *shlex.split(ln)[1:]], check=True)
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}/hostname", timeout=1)

    assert rq("network", "reload", "web", check=True).stdout == cid + "\n"
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    # the same address and MAC, the name still answers on the network
    assert rq("exec", "web", "cat", "/sys/class/net/eth0/address", check=True).stdout == mac
    assert rq("inspect", "web", "--format", "{{.NetworkSettings.IPAddress}}",
              check=True).stdout.strip() == ip
    r = rq("run", "--rm", "--network", net, "busybox", "timeout", "5", "wget", "-q", "-O", "-",
           "http://web/hostname", check=True)
    assert r.stdout.strip() == cid[:12]
    assert rq("network", "reload", "--all", check=True).stdout == cid + "\n"

    # bad input: one Error: line each, exit 125
    other = rq("create", "--network", net, "busybox", "true", check=True).stdout.strip()
    r = rq("network", "reload", other, "nope")
    assert r.returncode == 125 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"Error: container {other} network is not configured, refusing to reload",
        "Error: no container with name or ID \"nope\" found: no such container"]
    r = rq("network", "reload")
    assert r.returncode == 125 and r.stderr.startswith("Error: ")
    rq("rm", "-f", "-t", "0", "web", other, check=True)
    assert not _rules(cid)


def test_system_prune_removes_the_networks_no_container_uses(rq):
    used, _ = _net(rq, "--label", "k=v")
    unused, _ = _net(rq, "--label", "k=v")
    labelled_other, _ = _net(rq)
    rq("create", "--name", "holder", "--network", used, "busybox", "true", check=True)
    rq("run", "-d", "--name", "runner", "--network", used, "busybox", "sleep", "600",
       check=True)
    out = rq("system", "prune", "-f", "--filter", "label=k=v", check=True).stdout
    # the stopped container goes first (it is not labelled: the filter keeps it), so only
    # the unused, labelled network goes; the default one never
    assert "Deleted Networks\n" + unused + "\n" in out, out
    names = rq("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    assert sorted(names) == sorted(["podman", used, labelled_other])
    out = rq("system", "prune", "-f", check=True).stdout
    assert out.startswith("Deleted Containers\n"), out
    assert "Deleted Networks\n" + labelled_other + "\n" in out, out
    assert used in rq("network", "ls", "-q", check=True).stdout.split()  # runner is on it


# -- slirp4netns (rootless networking) ---------------------------------------------------------
def test_slirp4netns_forwards_a_published_port(rq):
    """The rootless stack, driven as root here: the container's own netns on a tap device,
    the port forwarded by slirp4netns' API (add_hostfwd), gone with the container."""
    port = free_port()
    cid = _httpd(rq, "--name", "sl", "--network", "slirp4netns", "-p", f"{port}:80")
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    # still there once the monitor re-exec'd into its slim self (after 1 s): slirp4netns
    # ends when its exit fd closes, so the new image must hold it
    time.sleep(2)
    assert http_get(f"http://127.0.0.1:{port}/hostname", timeout=5).strip() == cid[:12]
    out = rq("exec", "sl", "ip", "route", check=True).stdout
    assert "default via 10.0.2.2 dev tap0" in out
    assert rq("port", "sl", check=True).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    rq("rm", "-f", "-t", "0", "sl", check=True)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2)


@pytest.mark.skipif(shutil.which("pasta") is None, reason="pasta is not installed (passt)")
def test_slirp4netns_and_pasta_plug_into_a_user_namespaced_containers_netns(rq):
    """Root with --uidmap: the init's root is another host id, which cannot reach root's run
    dir, so the runtime makes the namespaces and the stack joins them by the init's pid
    (root may open them); both ports answer and the helpers end with the containers."""
    for net in ("slirp4netns", "pasta"):
        port = free_port()
        cid = _httpd(rq, "--name", f"u-{net}", "--uidmap", "0:100000:65536", "--gidmap",
                     "0:100000:65536", "--network", net, "-p", f"{port}:80")
        assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
        assert rq("exec", f"u-{net}", "cat", "/proc/self/uid_map",
                  check=True).stdout.split() == ["0", "100000", "65536"]
        rq("rm", "-f", "-t", "0", f"u-{net}", check=True)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2)


# The rootless case (an ordinary user, a 0666 tun in a private mount namespace):
# tests/engine/test_networks_rootless.py.


def test_a_setup_whose_record_is_gone_is_undone_by_the_next_setup(rq):
    """The container's record deleted under it (its root removed by hand, or rm giving up on
    a monitor that still waits for the network lock): the host-wide copy of what was set up
    lets the next setup undo it."""
    import shutil
    net, _ = _net(rq)
    cid = rq("run", "-d", "--name", "orphan", "--network", net, "busybox", "sleep", "600",
             check=True).stdout.strip()
    st = rq.state(cid)
    os.kill(st["monitor_pid"], signal.SIGKILL)
    os.kill(st["pid"], signal.SIGKILL)
    rq.wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}/stat") or
                open(f"/proc/{st['pid']}/stat").read().split()[2] == "Z", what="the kill")
    eng = rq.engine()
    eng.runtime.delete(cid, force=True)          # the runtime's state and the cgroup
    eng.storage.remove_snapshot(cid)
    shutil.rmtree(os.path.join(rq.root, "containers", cid))
    assert os.path.exists(f"/run/netns/rongqi-{cid}")
    rq("run", "--rm", "busybox", "true", check=True)
    assert not os.path.exists(f"/run/netns/rongqi-{cid}")
    assert _leases(cid) == [] and _rules(net) == []


def _gone(cid: str, subnet: str) -> bool:
    from rongqi.engine import networks
    return (not os.path.exists(f"/run/netns/rongqi-{cid}") and _leases(cid) == []
            and _rules(subnet) == [] and not os.path.exists(networks._active_path(cid)))


def test_the_slim_monitor_tears_down_at_the_end_of_a_long_run(rq):
    """A container that ran past SLIM_AFTER ends under the re-exec'd monitor, whose stand-in
    container record must still find the network to undo (it once found none: the netns,
    veth, rules and lease stayed until some later command synced the container)."""
    net, subnet = _net(rq)
    cid = rq("run", "-d", "--name", "long", "--network", net, "busybox", "sleep", "600",
             check=True).stdout.strip()
    st = rq.state(cid)
    rq.wait_for(lambda: b"resume(" in open(f"/proc/{st['monitor_pid']}/cmdline", "rb").read(),
                what="the monitor's re-exec")
    os.kill(st["pid"], signal.SIGKILL)  # no CLI involved: the monitor alone sees the end
    rq.wait_for(lambda: not os.path.exists(f"/proc/{st['monitor_pid']}/stat") or
                open(f"/proc/{st['monitor_pid']}/stat").read().split()[2] == "Z",
                what="the monitor's end")
    assert _gone(cid, subnet)


def test_rm_tears_down_while_a_monitor_is_still_finishing(rq):
    """rm of an exited container whose monitor still holds its lock (it wrote its exit
    record, its own teardown failed or was cut short): the record is about to go, so rm
    undoes the network itself rather than leave it to a monitor that is past doing so."""
    net, subnet = _net(rq)
    cid = rq("run", "-d", "--name", "finishing", "--network", net, "busybox", "sleep", "600",
             check=True).stdout.strip()
    st = rq.state(cid)
    os.kill(st["monitor_pid"], signal.SIGKILL)  # the monitor goes before its teardown
    os.kill(st["pid"], signal.SIGKILL)
    rq.wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}/stat") or
                open(f"/proc/{st['pid']}/stat").read().split()[2] == "Z", what="the kill")
    rq.engine().runtime.delete(cid, force=True)  # as the monitor does before its record
    run_dir = os.path.join(rq.runroot, cid)
    from rongqi.locking import Lock
    with Lock(os.path.join(run_dir, "monitor.lock")):  # as the finishing monitor holds it
        with open(os.path.join(run_dir, "exit.json"), "w") as f:
            json.dump({"pid": st["pid"], "exit_code": 137, "cleaned": True}, f)
        assert os.path.exists(f"/run/netns/rongqi-{cid}")
        rq("rm", "-f", "-t", "0", "finishing", check=True)
        assert _gone(cid, subnet)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_cli_killed_while_netavark_sets_up_leaves_nothing_after_rm(rq, tmp_path, when):
    """The CLI SIGKILLed while netavark works (its lease taken, the netns made, the veth and
    rules made or not yet): netavark goes with it (it takes no lock of its own, ours went
    with the CLI), and the host-wide record, written before anything was made, lets rm undo
    it all."""
    from rongqi.engine import networks
    net, subnet = _net(rq)
    marker = tmp_path / "netavark-ran"
    wrapper = tmp_path / "netavark"
    real = f'{networks.netavark_binary()} "$@"' if when == "after" else ""
    wrapper.write_text(f"#!/bin/sh\n{real}\ntouch {marker}\nexec sleep 600\n")
    wrapper.chmod(0o755)
    cid = rq("create", "--name", "cut", "--network", net, "busybox", "sleep", "600",
             check=True).stdout.strip()
    env = {**rq.env, "RONGQI_NETAVARK": str(wrapper)}
    p = subprocess.Popen(rq.argv("start", "cut"), env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rq.wait_for(marker.exists, timeout=60, what="netavark's setup")
    finally:
        p.kill()
        p.wait()
    assert os.path.exists(f"/run/netns/rongqi-{cid}") and _leases(cid)
    assert bool(_rules(subnet)) == (when == "after")
    rq.wait_for(lambda: not [pid for pid in os.listdir("/proc") if pid.isdigit()
                             and str(wrapper).encode() in _cmdline(pid)],
                what="netavark killed with its CLI")
    rows = rq("ps", "-a", "--format", "{{.Names}} {{.State}}", check=True).stdout.split()
    assert rows in (["cut", "created"], ["cut", "exited"])
    assert _gone(cid, subnet)  # the next command that touched it cleaned up
    rq("rm", "-f", "-t", "0", "cut", check=True)
    assert _gone(cid, subnet)


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
