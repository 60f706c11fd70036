"""Tests of the suite's leak check: a test that leaks fails, and the leak is cleaned up.

Each case runs a throw-away pytest session (a subprocess using tests/support/plugin.py) whose
tests leak on purpose, then checks the verdicts and that nothing was left on the machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.leaks import _unescape, read_cgroups, read_mounts, read_procs

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

root = pytest.mark.root


@contextlib.contextmanager
def _others_held_off() -> Iterator[None]:
    """The host network lock of /run/rongqi/networks held: a session starting meanwhile waits
    with its start-sweep (it runs under that lock) so it cannot take a fake dead session's
    leftovers (a rongqi-test cgroup of a dead pid is anyone's to reap) before the inner
    session, whose own network run dir (RONGQI_NETWORK_RUNDIR) has a lock of its own."""
    from rongqi.locking import Lock
    os.makedirs("/run/rongqi/networks", 0o700, exist_ok=True)
    with Lock("/run/rongqi/networks/lock"):
        yield


def _run_inner(tmp_path: Path, body: str) -> tuple[int, str]:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nfrom support.plugin import *\n"
    )
    (inner / "test_inner.py").write_text(textwrap.dedent(body))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-o", "addopts=",
         "--rootdir", str(inner), "-c", os.devnull, "--basetemp", str(tmp_path / "bt"), str(inner)],
        capture_output=True, text=True, timeout=120, cwd=inner,
    )
    return r.returncode, r.stdout + r.stderr


def test_mountinfo_octal_escapes_are_decoded():
    assert _unescape(r"/tmp/a\040b\011c\134d") == "/tmp/a b\tc\\d"
    assert _unescape("/plain") == "/plain"


@root
def test_clean_test_passes_and_leaking_mount_fails_and_is_unmounted(tmp_path):
    code, out = _run_inner(tmp_path, """
        import subprocess

        def test_clean(tmp_path):
            (tmp_path / "m").mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "t", str(tmp_path / "m")], check=True)
            subprocess.run(["umount", str(tmp_path / "m")], check=True)

        def test_leaky(tmp_path):
            (tmp_path / "m").mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "rqleak", str(tmp_path / "m")], check=True)

        def test_after_leak_starts_clean():
            pass
    """)
    assert code == 1, out
    assert "PASSED test_inner.py::test_clean" in out
    assert "ERROR test_inner.py::test_leaky" in out
    assert "leaked" in out and "test_leaky0/m (tmpfs from rqleak)" in out
    assert "PASSED test_inner.py::test_after_leak_starts_clean" in out
    assert not [m for m in read_mounts() if m.mountpoint.startswith(str(tmp_path))]


@root
def test_orphaned_process_is_caught_through_subreaper_and_killed(tmp_path):
    marker = f"98{secrets.randbelow(10**6)}.5"
    code, out = _run_inner(tmp_path, f"""
        import subprocess

        def test_leaves_an_orphan():
            # The shell exits at once; its background sleep is reparented, not to PID 1, but
            # to the pytest process (a child subreaper), so it is still "ours".
            subprocess.run(["sh", "-c", "sleep {marker} </dev/null >/dev/null 2>&1 &"], check=True)
    """)
    assert code == 1, out
    assert "ERROR test_inner.py::test_leaves_an_orphan" in out
    assert f"sleep {marker}" in out
    assert not [p for p in read_procs().values() if marker in p.cmdline]


@root
def test_leaked_cgroup_and_netns_fail_the_test_and_are_removed(tmp_path):
    code, out = _run_inner(tmp_path, """
        import os, subprocess
        from support.plugin import SESSION_TAG

        def test_leaves_a_cgroup():
            os.makedirs(f"/sys/fs/cgroup/pids/rongqi-test/{SESSION_TAG}-leak")

        def test_leaves_a_netns():
            subprocess.run(["ip", "netns", "add", f"rongqi-{SESSION_TAG}-n"], check=True)
    """)
    assert code == 1, out
    assert "ERROR test_inner.py::test_leaves_a_cgroup" in out
    assert "cgroup pids/rongqi-test/" in out
    assert "ERROR test_inner.py::test_leaves_a_netns" in out
    assert not [c for c in read_cgroups() if c.endswith("-leak")]
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert not [n for n in netns if n.startswith("rongqi-p") and n.endswith("-n")]


def test_root_marker_skips_with_a_reason_when_not_root(tmp_path):
    code, out = _run_inner(tmp_path, """
        import os, pytest
        import support.plugin as plugin

        plugin.IS_ROOT = False  # as an unprivileged user would see it

        @pytest.mark.root
        def test_needs_root():
            raise AssertionError("must not run")
    """)
    assert code == 0, out
    assert "SKIPPED" in out and "needs root" in out


@root
def test_an_engine_containers_cgroup_is_this_sessions_leak(tmp_path):
    # The engine's cgroups are /rongqi/<id> (no session tag): the ids its test engines'
    # events logs name make them attributable, so they fail the test even beside others.
    cid = secrets.token_hex(32)
    code, out = _run_inner(tmp_path, f"""
        import json, os
        from support import leaks

        def test_leaves_an_engine_cgroup(tmp_path):
            (tmp_path / "events.log").write_text(json.dumps(
                {{"ID": "{cid}", "Type": "container", "Status": "create"}}) + "\\n")
            leaks.ENGINE_IDS.update(leaks.engine_ids(str(tmp_path)))
            os.makedirs("/sys/fs/cgroup/pids/rongqi/{cid}")
    """)
    assert code == 1, out
    assert f"cgroup pids/rongqi/{cid}" in out
    assert not [c for c in read_cgroups() if c.endswith(cid)]


@root
def test_leaked_lease_and_firewall_rule_fail_and_are_removed(tmp_path):
    """A lease held for a container of this session's root, and a rule in a chain named as
    netavark names them with the session's tag in its comment: both fail the test and are
    removed."""
    chain = "NETAVARK-" + secrets.token_hex(6).upper()
    code, out = _run_inner(tmp_path, f"""
        import json, os, subprocess
        from support.plugin import SESSION_TAG

        def test_leaks_a_lease(tmp_path):
            d = "/run/rongqi/networks/ipam"
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "leaktest-" + SESSION_TAG + ".json"), "w") as f:
                json.dump({{"10.251.0.9": {{"id": "x" * 64, "root": str(tmp_path)}}}}, f)

        def test_leaks_a_rule():
            subprocess.run(["iptables", "-t", "nat", "-N", "{chain}"], check=True)
            subprocess.run(["iptables", "-t", "nat", "-A", "{chain}", "-d", "10.251.0.0/24",
                            "-m", "comment", "--comment", "test " + SESSION_TAG, "-j",
                            "ACCEPT"], check=True)
    """)
    assert code != 0, out
    assert "IPAM lease 10.251.0.9" in out and "firewall rule" in out, out
    left = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert chain not in left
    d = "/run/rongqi/networks/ipam"
    for n in os.listdir(d) if os.path.isdir(d) else []:
        if n.startswith("leaktest-"):
            with open(os.path.join(d, n)) as f:
                assert "10.251.0.9" not in f.read()
            os.unlink(os.path.join(d, n))


@root
def test_a_dead_sessions_leftovers_fail_the_first_test_and_are_removed(tmp_path, monkeypatch):
    """At its start a session looks for what sessions that are gone left: a netns, an
    active network record and a lease whose root lies under a pytest temp dir whose .lock
    names a dead pid, and a rongqi-test cgroup tagged with a dead pid. The first test fails
    saying so, all of it is removed; a lease of a live session's root is left alone. The
    records are in a network run dir of the test's own, the inner session's (other sessions
    starting meanwhile would take them first)."""
    netrun = tmp_path / "netrun"
    monkeypatch.setenv("RONGQI_NETWORK_RUNDIR", str(netrun))
    p = subprocess.Popen(["true"])
    p.wait()
    dead = tmp_path / "old" / "pytest-of-root" / "pytest-1"
    dead.mkdir(parents=True)
    (dead / ".lock").write_text(str(p.pid))
    cid, live_cid = secrets.token_hex(32), secrets.token_hex(32)
    root = dead / "test_x0" / "root"
    (root / "containers" / cid).mkdir(parents=True)  # its files stay: only its pytest died
    active = f"{netrun}/active/{cid}.json"
    ipam = f"{netrun}/ipam/leaktest-{secrets.token_hex(4)}.json"
    cgroup = f"/sys/fs/cgroup/pids/rongqi-test/p{p.pid}x0000-1"
    os.makedirs(os.path.dirname(active), exist_ok=True)
    os.makedirs(os.path.dirname(ipam), exist_ok=True)
    try:
        subprocess.run(["ip", "netns", "add", f"rongqi-{cid}"], check=True)
        with open(active, "w") as f:
            json.dump({"id": cid, "root": str(root), "netns": f"/run/netns/rongqi-{cid}",
                       "conf": "", "doc": {"container_id": cid, "network_info": {}}}, f)
        with open(ipam, "w") as f:
            json.dump({"10.252.0.9": {"id": cid, "root": str(root)},
                       "10.252.0.10": {"id": live_cid, "root": str(tmp_path / "root")}}, f)
        with _others_held_off():
            os.makedirs(cgroup)
            code, out = _run_inner(tmp_path, """
                def test_first():
                    pass

                def test_second():
                    pass
            """)
        assert code == 1, out
        assert "resources left by earlier test sessions" in out, out
        for what in (f"netns rongqi-{cid}", "IPAM lease 10.252.0.9", f"network set up for {cid[:12]}",
                     f"cgroup pids/rongqi-test/p{p.pid}x0000-1"):
            assert what in out, (what, out)
        assert "10.252.0.10" not in out and "1 passed" in out and "1 error" in out, out
        assert not os.path.exists(f"/run/netns/rongqi-{cid}") and not os.path.exists(active)
        assert not os.path.exists(cgroup)
        with open(ipam) as f:
            assert list(json.load(f)) == ["10.252.0.10"]
    finally:
        os.unlink(ipam)
        subprocess.run(["ip", "netns", "delete", f"rongqi-{cid}"], capture_output=True)
        for path in (active,):
            if os.path.exists(path):
                os.unlink(path)
        if os.path.isdir(cgroup):
            os.rmdir(cgroup)


@root
@pytest.mark.skipif(not os.access("/usr/lib/podman/netavark", os.X_OK),
                    reason="netavark is not installed")
def test_a_dead_sessions_container_on_a_network_is_undone_at_the_next_start(tmp_path,
                                                                           monkeypatch):
    """A real container of a session that died (its pytest, monitor and process killed):
    its netns, veth, lease, the network's rules and bridge, and its cgroup are the next
    session's first failure, and gone after it. Its host-wide records are in a network run
    dir of the test's own (RONGQI_NETWORK_RUNDIR, for the engine, this test's cleanup and
    the inner session alike): in /run/rongqi/networks the start-sweep of any other session
    starting meanwhile would find them first, and the inner session nothing."""
    from support.engine_cli import Rongqi
    monkeypatch.setenv("RONGQI_NETWORK_RUNDIR", str(tmp_path / "netrun"))
    p = subprocess.Popen(["true"])
    p.wait()
    dead = tmp_path / "old" / "pytest-of-root" / "pytest-2"
    dead.mkdir(parents=True)
    (dead / ".lock").write_text(str(p.pid))
    rq = Rongqi(dead / "test_y0")
    tag = secrets.token_hex(3)
    subnet = f"10.{240 + int(tag[:2], 16) % 10}.{int(tag[2:4], 16)}.0/24"
    bridge = f"rqd{tag}"
    rq("network", "create", "--subnet", subnet, "--interface-name", bridge, f"dead{tag}")
    cid = rq("run", "-d", "--network", f"dead{tag}", "busybox", "sleep", "600").stdout.strip()
    st = rq.state(cid)
    os.kill(st["monitor_pid"], 9)
    os.kill(st["pid"], 9)
    rq.wait_for(lambda: not os.path.exists(f"/proc/{st['pid']}") or
                open(f"/proc/{st['pid']}/stat").read().split()[2] == "Z", what="the kill")
    subprocess.run([sys.executable, "-m", "rongqi.oci.cli", "--root", rq.runtime_root,
                    "delete", "--force", cid], capture_output=True, env=rq.env)
    rules = lambda: [ln for c in ("iptables-save",) for ln in subprocess.run(  # noqa: E731
        [c], capture_output=True, text=True).stdout.splitlines() if subnet in ln]
    assert os.path.exists(f"/run/netns/rongqi-{cid}") and rules()
    assert os.path.exists(f"/sys/class/net/{bridge}")
    try:
        with _others_held_off():
            code, out = _run_inner(tmp_path, """
                def test_first():
                    pass
            """)
        assert code == 1 and "resources left by earlier test sessions" in out, out
        assert f"netns rongqi-{cid}" in out and f"network set up for {cid[:12]}" in out, out
        assert not os.path.exists(f"/run/netns/rongqi-{cid}") and rules() == []
        assert not os.path.exists(f"/sys/class/net/{bridge}")
        assert not [c for c in read_cgroups() if c.endswith(cid)]
    finally:
        rq.cleanup()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare (a network namespace of the test's own)")
def test_netavark_base_chains_are_removed_only_when_no_network_uses_them():
    # In a network namespace of its own: the host's firewall is not touched.
    script = r"""
import subprocess, sys
sys.path.insert(0, sys.argv[1])
from support.leaks import _remove_netavark_base
def ipt(*a): subprocess.run(["iptables", *a], check=True)
def lines(): return [l for t in ("filter", "nat") for l in subprocess.run(
    ["iptables", "-t", t, "-S"], capture_output=True, text=True).stdout.splitlines() if "NETAVARK" in l]
ipt("-N", "NETAVARK_FORWARD"); ipt("-A", "FORWARD", "-j", "NETAVARK_FORWARD")
for c in ("NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-MASQ", "NETAVARK-HOSTPORT-SETMARK"):
    ipt("-t", "nat", "-N", c)
ipt("-t", "nat", "-A", "POSTROUTING", "-j", "NETAVARK-HOSTPORT-MASQ")
ipt("-A", "NETAVARK_FORWARD", "-s", "10.9.0.0/16", "-j", "ACCEPT")   # a network's own rule
assert _remove_netavark_base() == [] and len(lines()) == 7, lines()   # in use: kept
ipt("-D", "NETAVARK_FORWARD", "-s", "10.9.0.0/16", "-j", "ACCEPT")
assert _remove_netavark_base() == [] and lines() == [], lines()        # unused: gone
"""
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", script,
                        str(Path(__file__).resolve().parents[1])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare (network and mount namespaces of the test's own)")
def test_base_chains_a_session_found_absent_are_removed_by_the_last_session_to_end(tmp_path):
    # Sessions overlap: A starts on a bare host, netavark makes its base chains, B starts and
    # finds them; A ends first (while B runs, so it removes nothing), B ends last. B must
    # remove them: the mark A left says the tests made them. A host's own chains (present,
    # no mark) are never removed. In namespaces of its own: the host is not touched.
    script = r"""
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from support.leaks import HostBaseline, _netavark_lines
mark = sys.argv[2]
def ipt(*a): subprocess.run(["iptables", *a], check=True)
def make():
    ipt("-N", "NETAVARK_FORWARD"); ipt("-A", "FORWARD", "-j", "NETAVARK_FORWARD")
    ipt("-t", "nat", "-N", "NETAVARK-HOSTPORT-MASQ")
    ipt("-t", "nat", "-A", "POSTROUTING", "-j", "NETAVARK-HOSTPORT-MASQ")
a = HostBaseline(mark)
make()                                   # a test of A's made them
b = HostBaseline(mark)                   # B starts: they are there
assert "netavark" in open(mark).read()
assert b.restore() == [] and _netavark_lines() == [], _netavark_lines()
assert not os.path.exists(mark) or "netavark" not in open(mark).read()
make()                                   # now the host's own: present, unmarked
c = HostBaseline(mark)
assert c.restore() == [] and len(_netavark_lines()) == 4, _netavark_lines()
"""
    r = subprocess.run(["unshare", "-n", "-m", sys.executable, "-c", script,
                        str(Path(__file__).resolve().parents[1]), str(tmp_path / "mark")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _fake_network(session: Path, name: str, bridge: str, subnets: list[str],
                  cid: str = "") -> None:
    """A network as a session's engine records it and netavark leaves it on the host: the
    record (ROOT/networks/NAME.json), the bridge with its gateways (down: no route, no
    packet), and netavark's nat rules and chain for each subnet (ip6tables for IPv6)."""
    from support.leaks import netavark_chains
    root = session / "test_net0" / "root"
    (root / "networks").mkdir(parents=True, exist_ok=True)
    if cid:
        (root / "containers" / cid).mkdir(parents=True)
    (root / "networks" / f"{name}.json").write_text(json.dumps({
        "name": name, "id": secrets.token_hex(32), "driver": "bridge",
        "network_interface": bridge,
        "subnets": [{"subnet": s, "gateway": str(ipaddress.ip_network(s)[1])} for s in subnets]}))
    if bridge:
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
        for s in subnets:
            gw = f"{ipaddress.ip_network(s)[1]}/{s.split('/')[1]}"
            subprocess.run(["ip", "addr", "add", gw, "dev", bridge,
                            *(["nodad"] if ":" in s else [])], check=True)
    chain = netavark_chains(name)[0]
    for s in subnets:
        ipt = "ip6tables" if ":" in s else "iptables"
        subprocess.run([ipt, "-t", "nat", "-N", chain], capture_output=True)
        subprocess.run([ipt, "-t", "nat", "-A", "POSTROUTING", "-s", s, "-j", chain], check=True)
        subprocess.run([ipt, "-t", "nat", "-A", chain, "-d", s, "-j", "ACCEPT"], check=True)


def _fake_network_gone(name: str, bridges: list[str], subnets: list[str]) -> None:
    from support.leaks import netavark_chains
    for b in bridges:
        subprocess.run(["ip", "link", "delete", b], capture_output=True)
    chain = netavark_chains(name)[0]
    for s in subnets:
        ipt = "ip6tables" if ":" in s else "iptables"
        subprocess.run([ipt, "-t", "nat", "-D", "POSTROUTING", "-s", s, "-j", chain],
                       capture_output=True)
        subprocess.run([ipt, "-t", "nat", "-F", chain], capture_output=True)
        subprocess.run([ipt, "-t", "nat", "-X", chain], capture_output=True)


@root
def test_a_dead_sessions_bridges_and_rules_are_reaped_and_a_live_ones_kept(tmp_path):
    """A session SIGKILLed after its containers' records were gone leaves its networks'
    bridges and netavark rules with nothing host-wide naming them: the next session finds
    them through the network records in the dead session's temp dir (its .lock names a dead
    pid), reports them as the first test's failure and removes them: a bridge with its
    gateways, its rules (iptables and ip6tables) and the network's chain, and the rules of a
    network whose bridge was gone already. The same left by a session that still runs (its
    .lock names a live pytest: this one) is not touched."""
    from support.leaks import netavark_chains, read_bridges, read_firewall
    p = subprocess.Popen(["true"])
    p.wait()
    sessions = tmp_path / "pytest-of-root"     # beside the inner session's --basetemp
    dead, live = sessions / "pytest-7", sessions / "pytest-8"
    for d, pid in ((dead, p.pid), (live, os.getpid())):
        d.mkdir(parents=True)
        (d / ".lock").write_text(str(pid))
    tag = secrets.token_hex(3)
    x, y = int(tag[:2], 16), int(tag[2:4], 16)
    nets = {  # name: (session, bridge, subnets)
        f"dead{tag}": (dead, f"rqx{tag}", [f"10.253.{x}.0/24", f"fd99:{tag[:4]}::/64"]),
        f"gone{tag}": (dead, "", [f"10.253.{y}.0/24"]),
        f"live{tag}": (live, f"rqy{tag}", [f"10.254.{x}.0/24"]),
    }
    if x == y:
        pytest.skip("two fake networks drew one subnet; the next run draws others")
    try:
        for name, (session, bridge, subnets) in nets.items():
            _fake_network(session, name, bridge, subnets, cid=secrets.token_hex(32))
        rules = lambda name: [r for r in read_firewall()  # noqa: E731
                              if any(s in r.split() for s in nets[name][2])
                              or netavark_chains(name)[0] in r]
        assert len(rules(f"dead{tag}")) == 6 and len(rules(f"gone{tag}")) == 3
        code, out = _run_inner(tmp_path, """
            def test_first():
                pass

            def test_second():
                pass
        """)
        assert code == 1 and "resources left by earlier test sessions" in out, out
        assert f"bridge rqx{tag}" in out and f"network dead{tag} (rqx{tag}" in out, out
        assert f"10.253.{y}.0/24" in out and f"fd99:{tag[:4]}::/64" in out, out
        assert "1 passed" in out and "1 error" in out, out
        assert f"rqx{tag}" not in read_bridges()
        assert rules(f"dead{tag}") == [] and rules(f"gone{tag}") == []
        # the live session's: untouched, and not named
        assert f"rqy{tag}" in read_bridges() and len(rules(f"live{tag}")) == 3
        assert f"rqy{tag}" not in out and f"10.254.{x}." not in out, out
    finally:
        for name, (_s, bridge, subnets) in nets.items():
            _fake_network_gone(name, [bridge] if bridge else [], subnets)


@root
def test_a_leaked_bridge_of_a_network_of_this_session_fails_and_is_removed(tmp_path):
    """netavark removes a network's bridge with its last container: a bridge left after a
    test, named by a network record of the session's own engine, fails it and is deleted."""
    bridge = f"rqz{secrets.token_hex(3)}"
    code, out = _run_inner(tmp_path, f"""
        import json, subprocess

        def test_leaves_a_bridge(tmp_path):
            (tmp_path / "root" / "networks").mkdir(parents=True)
            (tmp_path / "root" / "networks" / "n.json").write_text(json.dumps(
                {{"name": "n", "id": "0" * 64, "driver": "bridge",
                  "network_interface": "{bridge}", "subnets": []}}))
            subprocess.run(["ip", "link", "add", "{bridge}", "type", "bridge"], check=True)

        def test_after_starts_clean():
            pass
    """)
    try:
        assert code == 1, out
        assert "ERROR test_inner.py::test_leaves_a_bridge" in out and f"bridge {bridge}" in out
        assert "PASSED test_inner.py::test_after_starts_clean" in out
        assert not os.path.exists(f"/sys/class/net/{bridge}")
    finally:
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def test_a_bats_run_is_another_session_and_a_path_with_bats_in_it_is_not():
    from support.leaks import _is_bats
    assert _is_bats("/bin/bash /usr/bin/bats test/system/010-images.bats")
    assert _is_bats("bash /usr/lib/bats-core/bats-exec-test -x t.bats")
    assert not _is_bats("/opt/rongqi/venv/bin/python3 /work/wt/podbats/bin/rongqi run busybox")
    assert not _is_bats("timeout 120 /tmp/podbats/rongqi pull quay.io/libpod/testimage")
