"""containerd's ctr drives the runtime through the runc.v2 shim (`ctr run --runc-binary`).

Each case runs with runc (which proves the harness) and with rongqi-oci.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from support.leaks import read_procs


def test_echo_output_reaches_ctr(ctr_run, ctr_id):
    r = ctr_run(ctr_id, "echo", "hello from a container")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from a container\n"


def test_exit_code_of_process_is_exit_code_of_ctr_run(ctr_run, ctr_id):
    r = ctr_run(ctr_id, "sh", "-c", "exit 7")
    assert r.returncode == 7, r.stderr


def test_stdin_reaches_the_process(ctr_run, ctr_id):
    # ctr never closes the container's stdin on EOF: read one line, do not wait for EOF.
    r = ctr_run(ctr_id, "sh", "-c", "read line; echo got:$line", input="rongqi\n", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "got:rongqi\n"


def test_env_and_cwd_are_applied(ctr_run, ctr_id):
    r = ctr_run(
        ctr_id, "sh", "-c", 'echo "$GREETING"; pwd',
        flags=["--env", "GREETING=ni hao", "--cwd", "/tmp"],
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ni hao\n/tmp\n"


def test_read_only_bind_mount_is_visible_and_not_writable(ctr_run, ctr_id, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note").write_text("from the host\n")
    r = ctr_run(
        ctr_id, "sh", "-c", "cat /data/note; touch /data/new && echo WROTE; echo done",
        flags=["--mount", f"type=bind,src={shared},dst=/data,options=rbind:ro"],
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("from the host\n")
    assert "WROTE" not in r.stdout and r.stdout.endswith("done\n")
    assert "Read-only file system" in r.stdout + r.stderr
    assert not (shared / "new").exists()


def test_detached_container_runs_until_killed_then_deletes(containerd, ctr_run, ctr_id, runtime):
    r = ctr_run(ctr_id, "sleep", "1000", flags=["--detach"], rm=False)
    assert r.returncode == 0, r.stderr
    assert containerd.task_status(ctr_id) == "RUNNING"
    pid = _task_pid(containerd, ctr_id)
    assert "sleep 1000" in read_procs()[pid].cmdline
    # The runtime under test, not some other runc, holds the container: ask it directly.
    runtime_root = str(containerd.runc_root / containerd.namespace)
    state = subprocess.run([runtime, "--root", runtime_root, "state", ctr_id],
                           capture_output=True, text=True, timeout=30)
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["pid"] == pid
    assert json.loads(state.stdout)["status"] == "running"

    r = containerd.ctr("task", "kill", "-s", "SIGKILL", ctr_id)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while containerd.task_status(ctr_id) != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert containerd.task_status(ctr_id) == "STOPPED"
    assert pid not in read_procs() or read_procs()[pid].state == "Z"

    r = containerd.ctr("task", "delete", ctr_id)
    assert r.returncode == 0, r.stderr
    r = containerd.ctr("containers", "delete", ctr_id)
    assert r.returncode == 0, r.stderr
    assert ctr_id not in containerd.ctr("containers", "ls", "-q").stdout.split()
    assert not os.path.exists(containerd.runc_root / containerd.namespace / ctr_id)


def _task_pid(containerd, cid: str) -> int:
    for line in containerd.ctr("task", "ls").stdout.splitlines()[1:]:
        parts = line.split()
        if parts[0] == cid:
            return int(parts[1])
    raise AssertionError(f"no task {cid}")
