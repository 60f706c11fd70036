"""The cgroups library against this machine's real kernel: limits hold, freezing freezes, nothing leaks.

Plain processes (python, busybox) are put into cgroups under /rongqi-test/<session>-...; the v2
paths run in the hybrid host's cgroup2 tree (/sys/fs/cgroup/unified), which has no controllers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from rongqi.linux import cgroups
from rongqi.linux.cgroups import Cgroup, CgroupError, ebpf
from rongqi.linux.cgroups.resources import Cpu, DeviceRule, HugepageLimit, Memory, Pids, Resources
from support.plugin import new_id

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

PY = "/usr/bin/python3.11"
UNIFIED_ROOT = "/sys/fs/cgroup/unified"


def _have_v1(ctrl: str) -> bool:
    return os.path.isdir(f"/sys/fs/cgroup/{ctrl}") and not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


needs_hybrid = pytest.mark.skipif(not os.path.isdir(UNIFIED_ROOT + "/") or not _have_v1("memory"), reason="needs a hybrid cgroup host")


class Procs:
    """Processes started by a test, each blocked on stdin until it has been placed in its cgroup."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, cg: Cgroup, code: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [PY, "-I", "-S", "-c", "import sys\nsys.stdin.readline()\n" + code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.started.append(p)
        cg.add_pid(p.pid)
        p.stdin.write("go\n")
        p.stdin.flush()
        return p

    def stop(self) -> None:
        for p in self.started:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
            for s in (p.stdin, p.stdout):
                if s:
                    s.close()


@pytest.fixture
def procs() -> Iterator[Procs]:
    ps = Procs()
    try:
        yield ps
    finally:
        ps.stop()


def _make(mode: str | None = None, root: str = cgroups.DEFAULT_ROOT) -> Iterator[Cgroup]:
    cg = Cgroup.open(f"/rongqi-test/{new_id('cg')}", mode=mode, root=root)
    cg.create()
    try:
        yield cg
    finally:
        cg.destroy()
        for d in cg.dirs.values():
            assert not os.path.exists(d), f"{d} left behind"


@pytest.fixture
def host_cg() -> Iterator[Cgroup]:
    """A cgroup in every hierarchy of this host (v1 controllers + unified on hybrid)."""
    yield from _make()


@pytest.fixture
def v2_cg() -> Iterator[Cgroup]:
    """A pure cgroup v2 view, rooted at the hybrid host's cgroup2 tree."""
    yield from _make("v2", UNIFIED_ROOT)


def _proc_cgroups(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


def _wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _counter_code(path: str) -> str:
    """A process that keeps writing a growing count into path."""
    return f"n = 0\nwhile True:\n    n += 1\n    if n % 1000 == 0:\n        open({path!r}, 'w').write(str(n))\n"


def _read_counter(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (FileNotFoundError, ValueError):
        return 0


# --- membership ----------------------------------------------------------------------------


@needs_hybrid
def test_detects_this_host_as_hybrid() -> None:
    assert cgroups.detect_mode() == "hybrid"
    assert not cgroups.is_cgroup2_unified_only()


@needs_hybrid
def test_add_pid_joins_every_hierarchy_including_the_unified_one(host_cg: Cgroup, procs: Procs) -> None:
    p = procs.start(host_cg, "sys.stdin.readline()")
    seen = _proc_cgroups(p.pid)
    for ctrls in ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices", "blkio", "name=systemd", ""):
        assert seen[ctrls] == host_cg.path, (ctrls, seen)
    assert host_cg.pids() == [p.pid]


def test_pids_lists_sub_cgroups_when_recursive(v2_cg: Cgroup, procs: Procs) -> None:
    p = procs.start(v2_cg, "sys.stdin.readline()")
    sub = Cgroup.open(v2_cg.path + "/sub", mode="v2", root=UNIFIED_ROOT)
    sub.create()
    sub.add_pid(p.pid)
    assert v2_cg.pids(recursive=False) == []
    assert v2_cg.pids() == [p.pid]


# --- limits on v1 (this host) -------------------------------------------------------------


@needs_hybrid
def test_memory_limit_oom_kills_a_process_allocating_past_it(host_cg: Cgroup, procs: Procs) -> None:
    host_cg.apply(Resources(memory=Memory(limit=32 << 20, swap=32 << 20)))
    p = procs.start(host_cg, "b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')")
    out, _ = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, out
    assert "survived" not in out
    assert host_cg.oom_kill_count() >= 1
    usage = host_cg.stats()["memory"]["usage"]
    assert usage["limit"] == 32 << 20
    assert usage["max"] > 24 << 20  # it reached the limit before the kill


@needs_hybrid
def test_pids_limit_stops_forking(host_cg: Cgroup, procs: Procs) -> None:
    host_cg.apply(Resources(pids=Pids(limit=5)))
    code = (
        "import os, time\nmade = failed = 0\nkids = []\n"
        "for _ in range(20):\n"
        "    try:\n        pid = os.fork()\n    except BlockingIOError:\n        failed += 1\n        continue\n"
        "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
        "    made += 1\n    kids.append(pid)\n"
        "print(made, failed, flush=True)\n"
        "for k in kids:\n    os.kill(k, 9)\n    os.waitpid(k, 0)\n"
    )
    p = procs.start(host_cg, code)
    out, _ = p.communicate(timeout=60)
    made, failed = map(int, out.split())
    assert made == 4 and failed == 16  # the process itself is the fifth


@needs_hybrid
def test_cpu_quota_of_a_fifth_keeps_a_busy_loop_near_20_percent(host_cg: Cgroup, procs: Procs) -> None:
    host_cg.apply(Resources(cpu=Cpu(quota=20000, period=100000)))
    procs.start(host_cg, "while True: pass")
    time.sleep(0.3)
    before = host_cg.stats()["cpu"]["usage"]["total"]
    t0 = time.monotonic()
    time.sleep(2.0)
    used = host_cg.stats()["cpu"]["usage"]["total"] - before
    share = used / ((time.monotonic() - t0) * 1e9)
    assert 0.15 < share < 0.25, share
    assert host_cg.stats()["cpu"]["throttling"]["throttled_periods"] > 0


@needs_hybrid
def test_update_changes_a_live_limit(host_cg: Cgroup, procs: Procs) -> None:
    host_cg.apply(Resources(memory=Memory(limit=64 << 20), pids=Pids(limit=10), cpu=Cpu(shares=512)))
    procs.start(host_cg, "sys.stdin.readline()")
    host_cg.apply(Resources(memory=Memory(limit=128 << 20), pids=Pids(limit=-1)))
    mem = host_cg.dirs["memory"]
    assert open(mem + "/memory.limit_in_bytes").read().strip() == str(128 << 20)
    assert open(host_cg.dirs["pids"] + "/pids.max").read().strip() == "max"
    assert open(host_cg.dirs["cpu"] + "/cpu.shares").read().strip() == "512"  # untouched by the update


@needs_hybrid
def test_update_raising_memory_past_memsw_is_explained_and_works_with_swap(host_cg: Cgroup) -> None:
    host_cg.apply(Resources(memory=Memory(limit=64 << 20, swap=64 << 20)))
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.limit: .* memory\+swap limit"):
        host_cg.apply(Resources(memory=Memory(limit=128 << 20)))
    host_cg.apply(Resources(memory=Memory(limit=128 << 20, swap=128 << 20)))
    host_cg.apply(Resources(memory=Memory(limit=32 << 20, swap=32 << 20)))  # lowering: limit first
    mem = host_cg.dirs["memory"]
    assert open(mem + "/memory.limit_in_bytes").read().strip() == str(32 << 20)
    assert open(mem + "/memory.memsw.limit_in_bytes").read().strip() == str(32 << 20)


@needs_hybrid
def test_v1_device_rules_block_a_device(host_cg: Cgroup, procs: Procs) -> None:
    host_cg.apply(Resources(devices=[DeviceRule(allow=False, type="a", access="rwm"), DeviceRule(allow=True, type="c", major=1, minor=5, access="rwm")]))
    code = (
        "import os\nres = []\n"
        "for dev in ('/dev/zero', '/dev/null'):\n"
        "    try:\n        os.close(os.open(dev, os.O_RDWR)); res.append('ok')\n"
        "    except PermissionError:\n        res.append('denied')\n"
        "print(*res)\n"
    )
    out, _ = procs.start(host_cg, code).communicate(timeout=30)
    assert out.split() == ["ok", "denied"]


@needs_hybrid
def test_stats_grow_while_the_process_works(host_cg: Cgroup, procs: Procs) -> None:
    procs.start(host_cg, "b = bytearray(16 << 20)\nwhile True: pass")
    _wait_for(lambda: host_cg.stats()["memory"]["usage"]["usage"] > 8 << 20)
    first = host_cg.stats()
    time.sleep(0.5)
    second = host_cg.stats()
    assert second["cpu"]["usage"]["total"] > first["cpu"]["usage"]["total"] > 0
    assert second["pids"]["current"] == 1
    assert second["memory"]["usage"]["usage"] >= 16 << 20


@needs_hybrid
def test_freeze_stops_a_counter_and_thaw_continues_it(host_cg: Cgroup, procs: Procs, tmp_path) -> None:
    _freeze_round_trip(host_cg, procs, str(tmp_path / "count"))


@needs_hybrid
def test_missing_controller_error_names_the_field_and_destroy_leaves_nothing() -> None:
    cg = Cgroup.open(f"/rongqi-test/{new_id('cg')}")
    cg.create()
    try:
        if "hugetlb" in cg.dirs:
            pytest.skip("hugetlb v1 is mounted here")
        with pytest.raises(CgroupError, match=r"^linux\.resources\.hugepageLimits: the hugetlb cgroup controller is not mounted"):
            cg.apply(Resources(hugepage_limits=[HugepageLimit(page_size="2MB", limit=0)]))
        with pytest.raises(CgroupError, match=r"^linux\.resources\.unified: invalid configuration: cannot use unified on cgroup v1"):
            cg.apply(Resources(unified={"memory.max": "1000000"}))
    finally:
        cg.destroy()
    assert not any(os.path.exists(d) for d in cg.dirs.values())


@needs_hybrid
def test_destroy_kills_leftover_children_after_init_was_sigkilled(host_cg: Cgroup, procs: Procs) -> None:
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(300)\nprint('forked', flush=True)\nsys.stdin.readline()"
    p = procs.start(host_cg, code)
    assert p.stdout.readline().strip() == "forked"
    _wait_for(lambda: len(host_cg.pids()) == 2)
    orphan = [pid for pid in host_cg.pids() if pid != p.pid][0]
    p.kill()
    p.wait(timeout=10)
    assert host_cg.pids() == [orphan]
    host_cg.destroy()
    assert not any(os.path.exists(d) for d in host_cg.dirs.values())
    # The orphan was reparented to the test's subreaper: reap it, proving it is dead.
    _, status = os.waitpid(orphan, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@needs_hybrid
def test_kill_all_with_a_catchable_signal_reaches_every_process(host_cg: Cgroup, procs: Procs) -> None:
    a = procs.start(host_cg, "sys.stdin.readline()")
    b = procs.start(host_cg, "sys.stdin.readline()")
    host_cg.kill_all(signal.SIGTERM)
    assert a.wait(timeout=10) == -signal.SIGTERM
    assert b.wait(timeout=10) == -signal.SIGTERM
    assert not host_cg.is_frozen()  # the freeze around the signalling was undone


@needs_hybrid
def test_sigkill_reaches_a_paused_cgroup(host_cg: Cgroup, procs: Procs) -> None:
    p = procs.start(host_cg, "sys.stdin.readline()")
    host_cg.freeze()
    host_cg.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL


@needs_hybrid
def test_other_signals_leave_a_paused_cgroup_paused(host_cg: Cgroup, procs: Procs) -> None:
    p = procs.start(host_cg, "sys.stdin.readline()")
    host_cg.freeze()
    host_cg.kill_all(signal.SIGTERM)
    time.sleep(0.3)
    assert host_cg.is_frozen() and p.poll() is None
    host_cg.thaw()
    assert p.wait(timeout=10) == -signal.SIGTERM


# --- cgroup v2 code paths in the unified tree ----------------------------------------------------


@needs_hybrid
def test_v2_freeze_stops_a_counter_and_thaw_continues_it(v2_cg: Cgroup, procs: Procs, tmp_path) -> None:
    _freeze_round_trip(v2_cg, procs, str(tmp_path / "count"))


def _freeze_round_trip(cg: Cgroup, procs: Procs, counter: str) -> None:
    procs.start(cg, _counter_code(counter))
    _wait_for(lambda: _read_counter(counter) > 0)
    cg.freeze()
    assert cg.is_frozen()
    frozen_at = _read_counter(counter)
    time.sleep(0.5)
    assert _read_counter(counter) == frozen_at
    cg.thaw()
    assert not cg.is_frozen()
    _wait_for(lambda: _read_counter(counter) > frozen_at)


@needs_hybrid
def test_v2_kill_all_sigkill_uses_cgroup_kill(v2_cg: Cgroup, procs: Procs) -> None:
    a = procs.start(v2_cg, "import os, time\nos.fork()\ntime.sleep(300)")
    _wait_for(lambda: len(v2_cg.pids()) == 2)
    v2_cg.kill_all(signal.SIGKILL)
    assert a.wait(timeout=10) == -signal.SIGKILL
    _wait_for(lambda: v2_cg.pids() == [])
    with open(v2_cg.dirs[cgroups.UNIFIED] + "/cgroup.events") as f:
        assert "populated 0" in f.read()


@needs_hybrid
def test_v2_device_filter_is_enforced_by_the_kernel(v2_cg: Cgroup, procs: Procs) -> None:
    rules = [
        DeviceRule(allow=False, type="a", access="rwm"),
        DeviceRule(allow=True, type="c", major=1, minor=5, access="rwm"),
        DeviceRule(allow=True, type="c", major=1, minor=3, access="r"),
    ]
    v2_cg.apply(Resources(devices=rules))
    v2_cg.apply(Resources(devices=rules))  # an update replaces the program, never stacks them
    assert len(ebpf.attached_programs(v2_cg.dirs[cgroups.UNIFIED])) == 1
    code = (
        "import os\nres = []\n"
        "for dev, mode in (('/dev/zero', os.O_RDWR), ('/dev/null', os.O_RDONLY), ('/dev/null', os.O_WRONLY), ('/dev/full', os.O_RDONLY)):\n"
        "    try:\n        os.close(os.open(dev, mode)); res.append('ok')\n"
        "    except PermissionError:\n        res.append('denied')\n"
        "print(*res)\n"
    )
    out, _ = procs.start(v2_cg, code).communicate(timeout=30)
    assert out.split() == ["ok", "ok", "denied", "denied"]


@needs_hybrid
def test_v2_controller_that_is_not_enabled_is_named(v2_cg: Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory: the memory controller is not enabled"):
        v2_cg.apply(Resources(memory=Memory(limit=64 << 20)))
    with pytest.raises(CgroupError, match=r"^linux\.resources\.pids: the pids controller is not enabled"):
        v2_cg.apply(Resources(pids=Pids(limit=3)))


@needs_hybrid
def test_v2_unified_core_keys_are_written(v2_cg: Cgroup) -> None:
    v2_cg.apply(Resources(unified={"cgroup.max.descendants": "3"}))
    with open(v2_cg.dirs[cgroups.UNIFIED] + "/cgroup.max.descendants") as f:
        assert f.read().strip() == "3"


@needs_hybrid
def test_v2_stats_report_cpu_from_the_core_cpu_stat(v2_cg: Cgroup, procs: Procs) -> None:
    procs.start(v2_cg, "while True: pass")
    _wait_for(lambda: v2_cg.stats()["cpu"]["usage"]["total"] > 50_000_000)
    assert v2_cg.oom_kill_count() == 0  # no memory controller here: no memory.events, and no error
