"""rongqi build's RUN steps on networks: a step reaching a container on its network by name
and the host through the bridge's gateway, none/host/default per step (RUN --network), the
default network as buildah's default, the cache key (the build's --network is not in it, a
step's own flag is), bad values, and a build SIGKILLed inside a networked RUN leaving nothing
after the next command (netns, veth, firewall rules, leases, the host-wide record).

Packets stay on loopback and this test's own bridges: the user networks have session-derived
subnets and bridges and aardvark's upstream is 127.0.0.1; the one default-network build only
lists its interfaces."""

from __future__ import annotations

import hashlib
import http.server
import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from rq import rq  # noqa: F401 - the fixture
from support.plugin import SESSION_TAG
from test_networks_rootless import rl, user  # noqa: F401 - the ordinary user's fixtures

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.access("/usr/lib/podman/netavark", os.X_OK),
                                 reason="netavark is not installed")]

# Subnets and bridges of this session (10.150-199.x: test_networks.py takes 10.200-249.x).
_H = int(hashlib.sha256(SESSION_TAG.encode()).hexdigest(), 16)
_n = itertools.count(1)
RUNDIR = "/run/rongqi/networks"


def _net(rq) -> tuple[str, str, str]:
    """A user network of this session with DNS: (name, subnet, bridge)."""
    i = next(_n)
    subnet = f"10.{150 + _H % 50}.{(_H >> 8) % 200 + i}.0/24"
    name = f"{SESSION_TAG}-b{i}"
    bridge = f"rb{(_H >> 16) % 0xFFFFFF:06x}{i}"
    rq("network", "create", "--subnet", subnet, "--interface-name", bridge,
       "--dns", "127.0.0.1", name, check=True)
    return name, subnet, bridge


def _ctx(tmp_path, text: str, name: str = "ctx"):
    d = tmp_path / name
    d.mkdir()
    (d / "Containerfile").write_text(text)
    return d


def _build(rq, ctx, *flags, check=True):
    return rq("build", *flags, str(ctx), timeout=180, check=check)


def _steps_left(rq, build_id: str = "") -> dict[str, list[str]]:
    """What build steps of this test's engine (of build `build_id`) hold on this host: the
    host-wide records and IPAM leases (their root is a step's dir under the engine's
    runroot: other sessions build at the same time), and with a build id, the netns named
    after it."""
    want = "build-" + build_id
    steps = os.path.join(rq.runroot, "build") + "/"
    out: dict[str, list[str]] = {"netns": [], "active": [], "leases": []}
    if build_id and os.path.isdir("/run/netns"):
        out["netns"] = [n for n in os.listdir("/run/netns") if n.startswith("rongqi-" + want)]
    for kind, d in (("active", "active"), ("leases", "ipam")):
        path = os.path.join(RUNDIR, d)
        for f in os.listdir(path) if os.path.isdir(path) else []:
            try:
                with open(os.path.join(path, f)) as fh:
                    doc = json.load(fh)
            except (OSError, ValueError):
                continue
            recs = {f: doc} if kind == "active" else doc
            out[kind] += [k for k, v in recs.items() if str(v.get("root")).startswith(steps)
                          and str(v.get("id", "")).startswith(want)]
    return out


NOTHING = {"netns": [], "active": [], "leases": []}


def _bridge_ports(bridge: str) -> list[str]:
    r = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                       text=True)
    return [ln.split(":")[1].strip() for ln in r.stdout.splitlines() if ":" in ln]


def _rules(text: str) -> list[str]:
    out = []
    for cmd in ("iptables-save", "ip6tables-save"):
        r = subprocess.run([cmd], capture_output=True, text=True)
        out += [ln for ln in r.stdout.splitlines() if text in ln]
    return out


def test_run_reaches_a_container_by_name_and_the_host_through_the_gateway(rq, tmp_path):
    net, subnet, _ = _net(rq)
    web = rq("run", "-d", "--name", "web", "--network", net, "busybox", "httpd", "-f", "-p",
             "80", "-h", "/etc", check=True).stdout.strip()
    # The host's side: a server on the bridge's own address (the bridge is up while web runs),
    # which a step reaches as host.containers.internal.
    gw = str(ipaddress.ip_network(subnet).network_address + 1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b"from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((gw, 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        port = server.server_address[1]
        ctx = _ctx(tmp_path, "FROM busybox\n"
                   "RUN timeout 20 wget -q -O /from-web http://web/hostname && "
                   f"timeout 20 wget -q -O /from-host http://host.containers.internal:{port}/"
                   "\nCMD cat /from-web /from-host\n")
        _build(rq, ctx, "--network", net, "-t", "fetched")
    finally:
        server.shutdown()
        server.server_close()
    out = rq("run", "--rm", "--network", "none", "fetched", check=True).stdout
    assert out == f"{web[:12]}\nfrom the host\n"
    assert _steps_left(rq) == NOTHING


def test_network_of_each_step_none_host_and_the_build_s(rq, tmp_path):
    net, subnet, bridge = _net(rq)
    rq("run", "-d", "--name", "keep", "--network", net, "busybox", "sleep", "600", check=True)
    names = "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort"
    ctx = _ctx(tmp_path, "FROM busybox\n"
               f"RUN {names} > /build && ip -4 -o addr show eth0 | awk '{{print $4}}' > /addr\n"
               f"RUN --network=none {names} > /none\n"
               f"RUN --network=host {names} > /host\n"
               f"RUN --network=default {names} > /default\n"
               "CMD cat /build /addr /none /default; grep -c . /host\n")
    _build(rq, ctx, "--network", net, "-t", "modes")
    got = rq("run", "--rm", "--network", "none", "modes", "cat", "/build", "/addr", "/none",
             "/default", check=True).stdout.split("\n")
    assert got[:2] == ["eth0", "lo"]
    assert ipaddress.ip_interface(got[2]).ip in ipaddress.ip_network(subnet)
    assert got[3:6] == ["lo", "eth0", "lo"]
    host = rq("run", "--rm", "--network", "none", "modes", "cat", "/host",
              check=True).stdout.split()
    assert bridge in host and "lo" in host   # the host's own links, the test bridge among them
    # --network none: the step has only lo.
    ctx2 = _ctx(tmp_path, f"FROM busybox\nRUN {names} > /none\n", name="none")
    _build(rq, ctx2, "--network", "none", "-t", "isolated")
    assert rq("run", "--rm", "--network", "none", "isolated", "cat", "/none",
              check=True).stdout == "lo\n"
    assert _steps_left(rq) == NOTHING


def test_default_is_the_default_network_as_buildah_as_root(rq, tmp_path):
    """buildah's default (`private`) plugs a root build's steps into the default network."""
    ctx = _ctx(tmp_path, "FROM busybox\nRUN ip -4 -o addr show eth0 | awk '{print $4}' > /a\n")
    _build(rq, ctx, "-t", "dflt")
    addr = rq("run", "--rm", "--network", "none", "dflt", "cat", "/a", check=True).stdout
    net = json.loads(rq("network", "inspect", "podman", check=True).stdout)[0]
    assert ipaddress.ip_interface(addr.strip()).ip in \
        ipaddress.ip_network(net["subnets"][0]["subnet"])
    assert _steps_left(rq) == NOTHING


def test_the_build_network_is_not_in_the_cache_key_a_step_s_own_flag_is(rq, tmp_path):
    net, _, _ = _net(rq)
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo a > /a\n")
    _build(rq, ctx, "--network", "none")
    r = _build(rq, ctx, "--network", net)   # buildah: the build's --network is not in the key
    assert "--> Using cache" in r.stdout
    flagged = _ctx(tmp_path, "FROM busybox\nRUN --network=none echo a > /a\n", name="flagged")
    r = _build(rq, flagged, "--network", "none")   # the instruction differs: a miss
    assert "--> Using cache" not in r.stdout
    r = _build(rq, flagged, "--network", net)
    assert "--> Using cache" in r.stdout


def test_bad_network_and_security_values_are_one_line_and_leave_nothing(rq, tmp_path):
    rq("image", "inspect", "busybox", check=True)   # the built-in, made here: no pull
    ctx = _ctx(tmp_path, "FROM busybox\nRUN true\n")
    r = _build(rq, ctx, "--network", "nope", check=False)
    assert (r.returncode, r.stderr) == (
        125, "Error: unable to find network with name or ID nope: network not found\n")
    r = _build(rq, ctx, "--network", "container:web", check=False)
    assert r.returncode == 125 and r.stderr.startswith(
        'Error: invalid value for --network: "container:web"') and len(
        r.stderr.splitlines()) == 1
    bad = _ctx(tmp_path, "FROM busybox\nRUN --network=bridge true\n", name="bad")
    r = _build(rq, bad, check=False)
    assert (r.returncode, r.stderr) == (125, 'Error: building at STEP "RUN --network=bridge '
                                        'true": unsupported value "bridge" for "RUN '
                                        '--network", must be either "host" or "none"\n')
    # RUN --security: sandbox is every step's; insecure is refused, never run unprivileged.
    ok = _ctx(tmp_path, "FROM busybox\nRUN --security=sandbox true\n", name="sandbox")
    assert _build(rq, ok, "--network", "none", "-t", "sandboxed", check=False).returncode == 0
    insecure = _ctx(tmp_path, "FROM busybox\nRUN --security=insecure true\n", name="insec")
    r = _build(rq, insecure, "--network", "none", check=False)
    assert (r.returncode, r.stderr) == (125, 'Error: building at STEP "RUN --security=insecure '
                                        'true": RUN --security=insecure is not allowed: rongqi '
                                        'build grants no entitlement security.insecure (the '
                                        'step would run privileged)\n')
    assert rq("images", "-q", "--filter", "dangling=true").stdout == ""
    assert _steps_left(rq) == NOTHING


def _killed_mid_run(rq, tmp_path, net: str) -> tuple[str, dict[str, list[str]]]:
    """A build on `net` SIGKILLed while its RUN sleeps: (its id, what its step holds)."""
    rq("image", "inspect", "busybox", check=True)   # the built-in, made here: no pull
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo started; sleep 120\n", name="killed")
    p = rq.popen("build", "--network", net, str(ctx), stdout=subprocess.PIPE,
                 stderr=subprocess.DEVNULL)
    try:
        line = b""
        deadline = time.monotonic() + 90
        while line != b"started\n" and time.monotonic() < deadline:
            line = p.stdout.readline()
        assert line == b"started\n"
        build_id = [n for n in os.listdir(os.path.join(rq.runroot, "build"))
                    if n.endswith(".lock")][0][len("build-"):-len(".lock")]
        left = _steps_left(rq, build_id)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    return build_id, left


def _build_dirs_empty(rq) -> bool:
    rt = rq.engine().runtime.root
    return not os.listdir(os.path.join(rq.runroot, "build")) and not (
        os.path.isdir(rt) and [n for n in os.listdir(rt) if n.startswith("build-")])


def test_a_build_killed_in_a_networked_run_leaves_nothing_after_the_next_command(rq, tmp_path):
    net, subnet, bridge = _net(rq)
    build_id, left = _killed_mid_run(rq, tmp_path, net)
    assert len(left["netns"]) == len(left["active"]) == len(left["leases"]) == 1, left
    # Killed: the step's network outlives it (nobody tore it down) ...
    assert _steps_left(rq, build_id) == left
    assert _bridge_ports(bridge)   # the step's veth, on the test's bridge
    # ... until the next command that sets up a network: its sweep finds the build's lock
    # free (and keeps the live container's own) ...
    rq("run", "--rm", "--network", net, "busybox", "true", check=True)
    assert _steps_left(rq, build_id) == NOTHING
    # ... and the next build removes the killed step's container and snapshot as well; with
    # nothing else on the network its bridge and firewall rules are gone.
    _build(rq, _ctx(tmp_path, "FROM busybox\nCMD true\n", name="next"))
    assert _build_dirs_empty(rq)
    assert _bridge_ports(bridge) == []
    assert _rules(subnet) == []


def test_a_killed_build_is_reaped_by_the_next_build_alone(rq, tmp_path):
    """Without a network setup in between, the next build's sweep undoes the step's network
    (after it has removed the step's container)."""
    net, subnet, bridge = _net(rq)
    build_id, left = _killed_mid_run(rq, tmp_path, net)
    assert left["netns"] and _steps_left(rq, build_id) == left
    _build(rq, _ctx(tmp_path, "FROM busybox\nCMD true\n", name="next"), "--network", "none")
    assert _steps_left(rq, build_id) == NOTHING
    assert _build_dirs_empty(rq)
    assert _bridge_ports(bridge) == []
    assert _rules(subnet) == []


@pytest.mark.skipif(not all(shutil.which(t) for t in ("useradd", "slirp4netns", "unshare")),
                    reason="an ordinary user's build needs useradd, slirp4netns and unshare")
def test_an_ordinary_user_s_steps_get_slirp4netns_by_default(rl):  # noqa: F811 - the fixture
    """buildah's default for an ordinary user: each step on a slirp4netns of its own, its
    namespaces held through the runtime's create as for a container, nothing left after."""
    ctx = rl.home / "ctx"
    ctx.mkdir()
    names = "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort"
    (ctx / "Containerfile").write_text(f"FROM busybox\nRUN {names} > /n\n"
                                       f"RUN --network=none {names} > /none\n")
    for p in (ctx, ctx / "Containerfile"):
        os.chown(p, rl.pw.pw_uid, rl.pw.pw_gid)
    rl("image", "inspect", "busybox", check=True)
    rl("build", "-t", "rlb", str(ctx), check=True, timeout=180)
    out = rl("run", "--rm", "--network", "none", "rlb", "cat", "/n", "/none", check=True)
    assert out.stdout == "lo\ntap0\nlo\n"
    run = rl.home / "xdg" / "rongqi" / "engine"
    assert [n for n in os.listdir(run) if n.startswith("build-")] == []
    assert os.listdir(run / "build") == []
    left = subprocess.run(["ps", "-u", str(rl.pw.pw_uid), "-o", "comm="], capture_output=True,
                          text=True, check=False).stdout.split()
    assert "slirp4netns" not in left
