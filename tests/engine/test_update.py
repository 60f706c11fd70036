"""`rongqi update`: podman's flags change a running container's cgroup for real (the v1 files
of this hybrid host), are kept in its record (inspect, and the next start's bundle) and set
its restart policy; bad values and containers get podman's `Error:` line and 125, and a
failed live update leaves the cgroup and the record as they were. The v2 path of the same
operation is checked on a fake cgroup2 tree through the runtime's Cgroup."""

from __future__ import annotations

import os
import time

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


def _cgroup_file(rq, ref: str, controller: str, name: str) -> str:
    path = rq.inspect(ref)["State"]["CgroupPath"]
    with open(f"/sys/fs/cgroup/{controller}{path}/{name}") as f:
        return f.read().strip()


def _host(rq, ref: str) -> dict:
    return rq.inspect(ref)["HostConfig"]


def _swap_accounting() -> bool:
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def test_update_changes_the_running_cgroup_and_inspect_and_a_restart_keeps_it(rq):
    cid = rq("run", "-d", "--name", "lim", "--network", "none", "-m", "64m", "busybox",
             "sleep", "600", check=True).stdout.strip()
    r = rq("update", "--cpus", "0.5", "--memory", "32m", "--pids-limit", "100",
           "--cpu-shares", "512", "--blkio-weight", "300", "--memory-reservation", "16m",
           "lim", check=True)
    assert r.stdout.strip() == cid                    # podman prints the full id
    want = {("memory", "memory.limit_in_bytes"): str(32 << 20),
            ("memory", "memory.soft_limit_in_bytes"): str(16 << 20),
            ("cpu", "cpu.cfs_quota_us"): "50000", ("cpu", "cpu.cfs_period_us"): "100000",
            ("cpu", "cpu.shares"): "512", ("pids", "pids.max"): "100"}
    if _swap_accounting():
        want[("memory", "memory.memsw.limit_in_bytes")] = str(64 << 20)  # twice, as podman
    for (ctrl, name), value in want.items():
        assert _cgroup_file(rq, "lim", ctrl, name) == value, name
    hc = _host(rq, "lim")
    assert (hc["Memory"], hc["NanoCpus"], hc["CpuQuota"], hc["CpuShares"], hc["PidsLimit"],
            hc["BlkioWeight"], hc["MemoryReservation"]) == (
        32 << 20, 500_000_000, 50000, 512, 100, 300, 16 << 20)
    rq("restart", "-t", "0", "lim", check=True)
    for (ctrl, name), value in want.items():
        assert _cgroup_file(rq, "lim", ctrl, name) == value, name
    # --cpu-quota alone: the explicit quota replaces --cpus' in the cgroup and in inspect
    rq("update", "--cpu-quota", "20000", "--pids-limit", "-1", "lim", check=True)
    assert _cgroup_file(rq, "lim", "cpu", "cpu.cfs_quota_us") == "20000"
    assert _cgroup_file(rq, "lim", "pids", "pids.max") == "max"
    hc = _host(rq, "lim")
    assert (hc["NanoCpus"], hc["CpuQuota"]) == (0, 20000)


def test_update_of_a_created_container_is_what_its_start_applies(rq):
    rq("create", "--name", "later", "--network", "none", "busybox", "sleep", "600",
       check=True)
    rq("update", "--memory", "48m", "--cpu-shares", "256", "--restart", "on-failure:2",
       "later", check=True)
    hc = _host(rq, "later")
    assert hc["Memory"] == 48 << 20 and hc["CpuShares"] == 256
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    rq("start", "later", check=True)
    assert _cgroup_file(rq, "later", "memory", "memory.limit_in_bytes") == str(48 << 20)
    assert _cgroup_file(rq, "later", "cpu", "cpu.shares") == "256"


def test_a_restart_policy_set_by_update_restarts_the_running_container(rq):
    rq("run", "-d", "--name", "pol", "--network", "none", "busybox", "sleep", "600",
       check=True)
    rq("update", "--restart", "always", "pol", check=True)
    pid = rq.inspect("pol")["State"]["Pid"]
    assert pid > 1
    os.kill(pid, 9)                      # not `rongqi kill`: that is a stop the policy obeys
    deadline = time.monotonic() + 30
    while True:
        doc = rq.inspect("pol")
        if doc["RestartCount"] == 1 and doc["State"]["Status"] == "running":
            break
        assert time.monotonic() < deadline, doc["State"]
        time.sleep(0.2)
    assert doc["State"]["Pid"] not in (0, pid)
    assert doc["HostConfig"]["RestartPolicy"]["Name"] == "always"


def test_update_errors_are_podmans_lines_and_exit_125(rq):
    rq("run", "-d", "--name", "e", "--network", "none", "-m", "64m", "busybox", "sleep",
       "600", check=True)
    cases = {
        (): "Error: accepts 1 arg(s), received 0",
        ("e", "other"): "Error: accepts 1 arg(s), received 2",
        ("nosuch", "--cpus", "1"): 'Error: no container with name or ID "nosuch" found: '
                                   "no such container",
        ("e", "--memory", "foo"): "Error: invalid value for memory: invalid size: 'foo'",
        ("e", "--cpus", "abc"): 'Error: invalid argument "abc" for "--cpus" flag: '
                                'strconv.ParseFloat: parsing "abc": invalid syntax',
        ("e", "--blkio-weight", "5"): "Error: range of blkio weight is from 10 to 1000",
        ("e", "--memory", "10m", "--memory-swap", "5m"):
            "Error: minimum memoryswap limit should be larger than memory limit, see usage",
        ("e", "--memory-reservation", "100m"):
            "Error: minimum memory limit cannot be less than memory reservation limit, see "
            "usage",
        ("e", "--cpuset-cpus", "64"):
            f"Error: Requested CPUs are not available - requested 64, available: "
            f"{open('/sys/devices/system/cpu/online').read().strip()}",
        ("e", "--restart", "sometimes"):
            'Error: running container create option: "sometimes" is not a valid restart '
            "policy: invalid argument",
    }
    for args, line in cases.items():
        r = rq("update", *args)
        assert (r.returncode, r.stderr.strip()) == (125, line), args
        assert r.stdout == ""
    assert _host(rq, "e")["Memory"] == 64 << 20      # nothing was changed by any of them


def test_a_failed_live_update_sets_the_cgroup_and_record_back(rq):
    rq("run", "-d", "--name", "back", "--network", "none", "-m", "64m", "busybox", "sleep",
       "600", check=True)
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        pytest.skip("no cpu.rt_runtime_us (a kernel without RT group scheduling)")
    # The memory limit is written first, then the real-time runtime is refused (its parent
    # has none to give): the memory limit goes back.
    r = rq("update", "--memory", "32m", "--cpu-rt-runtime", "1000", "back")
    assert r.returncode == 125 and r.stderr.startswith("Error: ") and "rt_runtime" in r.stderr
    assert _cgroup_file(rq, "back", "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert _host(rq, "back")["Memory"] == 64 << 20
    rq("restart", "-t", "0", "back", check=True)
    assert _cgroup_file(rq, "back", "memory", "memory.limit_in_bytes") == str(64 << 20)


def test_update_on_cgroup_v2_writes_the_unified_files(tmp_path):
    """The same update through the runtime's Cgroup on a cgroup2 tree (a fake one: this host's
    cgroup2 tree has no controllers), as a v2 host runs it."""
    from rongqi.engine.update import ResourceUpdate, merge_resources
    from rongqi.linux.cgroups import Cgroup
    from rongqi.oci.resources import parse_resources
    root = tmp_path / "cg"
    d = root / "rongqi" / "c1"
    d.mkdir(parents=True)
    (d / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    for name in ("memory.max", "memory.swap.max", "memory.low", "cpu.max", "cpu.weight",
                 "pids.max", "io.bfq.weight", "cpuset.cpus"):
        (d / name).write_text("max\n")
    old = {"memory": {"limit": 64 << 20}, "pids": {"limit": 2048}}
    new, changed = merge_resources(old, ResourceUpdate(
        memory=32 << 20, memory_swap=64 << 20, memory_reservation=8 << 20, cpus=1.5,
        cpu_shares=512, pids_limit=100, blkio_weight=300, cpuset_cpus="0"))
    assert sorted(changed) == ["blockIO", "cpu", "memory", "pids"]
    cg = Cgroup.open("/rongqi/c1", mode="v2", root=str(root))
    cg.apply(parse_resources({k: new[k] for k in changed}))
    read = {p.name: p.read_text().strip() for p in d.iterdir()}
    assert read["memory.max"] == str(32 << 20)
    assert read["memory.swap.max"] == str(32 << 20)   # v2 counts swap alone: 64m - 32m
    assert read["memory.low"] == str(8 << 20)
    assert read["cpu.max"] == "150000 100000"
    assert read["pids.max"] == "100"
    assert read["io.bfq.weight"] == "300"
    assert read["cpuset.cpus"] == "0"
    assert read["cpu.weight"] != "max"                # shares 512 in v2's weight scale


def test_update_through_a_runtime_binary(tmp_path):
    """--runtime runc: the runtime's `update --resources -` (its stdin the LinuxResources),
    and runc's refusal comes back as one Error: line with nothing changed."""
    import shutil

    from rq import Rongqi
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed")
    r = Rongqi(tmp_path / "engine", runtime=runc, check=False)
    try:
        cid = r("run", "-d", "--name", "overrunc", "--network", "none", "-m", "64m", "busybox",
                "sleep", "600", check=True).stdout.strip()
        base = f"/rongqi/{cid}"   # the bundle's cgroupsPath, as the in-process runtime's
        r("update", "--memory", "32m", "--cpus", "0.5", "--pids-limit", "77", "overrunc",
          check=True)

        def read(ctrl: str, name: str) -> str:
            with open(f"/sys/fs/cgroup/{ctrl}{base}/{name}") as f:
                return f.read().strip()
        assert (read("memory", "memory.limit_in_bytes"), read("cpu", "cpu.cfs_quota_us"),
                read("pids", "pids.max")) == (str(32 << 20), "50000", "77")
        if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
            p = r("update", "--memory", "48m", "--cpu-rt-runtime", "1000", "overrunc")
            assert p.returncode == 125 and p.stderr.startswith("Error: runc: ")
            assert len(p.stderr.splitlines()) == 1
            assert read("memory", "memory.limit_in_bytes") == str(32 << 20)
            assert r.inspect("overrunc")["HostConfig"]["Memory"] == 32 << 20
    finally:
        r.cleanup()
