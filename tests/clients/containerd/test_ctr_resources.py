"""containerd's ctr sets limits and drives pause/resume, metrics and ps through the runc.v2 shim.

Each case runs with runc (which proves the harness) and with rongqi-oci (`--runc-binary`).
Limits are checked on the host, in the cgroup that /proc/<task pid>/cgroup names.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

MiB = 1 << 20


def _task_pid(containerd, cid: str) -> int:
    for line in containerd.ctr("task", "ls").stdout.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == cid:
            return int(parts[1])
    raise AssertionError(f"no task {cid}")


def _cgroup_file(pid: int, controller: str, name: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"), name)
    pytest.skip(f"no v1 {controller} hierarchy on this host")


def _wait_status(containerd, cid: str, want: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while containerd.task_status(cid) != want:
        assert time.monotonic() < deadline, (
            f"task {cid} is {containerd.task_status(cid)!r}, not {want}"
        )
        time.sleep(0.05)


def _run_detached(
    ctr_run, containerd, cid: str, *cmd: str, flags: list[str] | None = None
) -> int:
    r = ctr_run(cid, *cmd, flags=["--detach", *(flags or [])], rm=False)
    assert r.returncode == 0, r.stderr
    _wait_status(containerd, cid, "RUNNING")
    return _task_pid(containerd, cid)


def test_memory_limit_is_set_and_enforced(containerd, ctr_run, ctr_id):
    r = ctr_run(
        ctr_id,
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived",
        flags=["--memory-limit", str(32 * MiB)],
    )
    # The shell's child is OOM-killed: sh reports 128+9 and never echoes.
    assert "survived" not in r.stdout
    assert r.returncode == 137, (r.returncode, r.stderr)


def test_memory_limit_reaches_the_containers_cgroup(containerd, ctr_run, ctr_id):
    pid = _run_detached(
        ctr_run,
        containerd,
        ctr_id,
        "sleep",
        "60",
        flags=["--memory-limit", str(48 * MiB)],
    )
    assert (
        int(_cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text())
        == 48 * MiB
    )


def test_cpus_becomes_a_cfs_quota(containerd, ctr_run, ctr_id):
    pid = _run_detached(
        ctr_run, containerd, ctr_id, "sleep", "60", flags=["--cpus", "0.5"]
    )
    quota = int(_cgroup_file(pid, "cpu", "cpu.cfs_quota_us").read_text())
    period = int(_cgroup_file(pid, "cpu", "cpu.cfs_period_us").read_text())
    assert quota / period == pytest.approx(0.5)


def test_task_pause_freezes_and_resume_thaws(containerd, ctr_run, ctr_id):
    pid = _run_detached(
        ctr_run, containerd, ctr_id, "sh", "-c", "while true; do sleep 0.05; done"
    )
    r = containerd.ctr("task", "pause", ctr_id)
    assert r.returncode == 0, r.stderr
    _wait_status(containerd, ctr_id, "PAUSED")
    assert _cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "FROZEN"
    r = containerd.ctr("task", "resume", ctr_id)
    assert r.returncode == 0, r.stderr
    _wait_status(containerd, ctr_id, "RUNNING")
    assert _cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "THAWED"


def test_task_metrics_reports_the_memory_limit(containerd, ctr_run, ctr_id):
    _run_detached(
        ctr_run,
        containerd,
        ctr_id,
        "sleep",
        "60",
        flags=["--memory-limit", str(40 * MiB)],
    )
    r = containerd.ctr("task", "metrics", ctr_id)
    assert r.returncode == 0, r.stderr
    assert ctr_id in r.stdout
    assert str(40 * MiB) in r.stdout  # memory.limit_in_bytes row (or memory.max on v2)


def test_task_ps_lists_the_containers_processes(containerd, ctr_run, ctr_id):
    pid = _run_detached(
        ctr_run, containerd, ctr_id, "sh", "-c", "sleep 60 & sleep 61 & wait"
    )
    deadline = time.monotonic() + 10
    while True:
        r = containerd.ctr("task", "ps", ctr_id)
        assert r.returncode == 0, r.stderr
        pids = [
            int(line.split()[0]) for line in r.stdout.splitlines()[1:] if line.strip()
        ]
        if len(pids) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert pid in pids and len(pids) == 3, r.stdout
