"""ps never lies, whatever died: the monitor SIGKILLed, a CLI killed half-way, a reboot (the
runtime's state and RUN/ gone); and many CLIs at once on the same engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from support.engine_cli import Rongqi, rongqi  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real containers)")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def _running(rongqi: Rongqi, name: str) -> dict:
    rongqi("create", "--name", name, "busybox", "sleep", "100")
    rongqi("start", name)
    return rongqi.inspect(name)["State"]


def test_a_sigkilled_monitor_shows_as_exited_with_a_reason_and_rm_cleans_up(rongqi):
    state = _running(rongqi, "orphan")
    os.kill(state["ConmonPid"], signal.SIGKILL)
    assert _gone(state["ConmonPid"])
    ps = rongqi("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert ps.startswith("orphan Exited (137) ")
    after = rongqi.inspect("orphan")["State"]
    assert (after["Status"], after["Error"], after["Pid"]) == ("exited", "monitor died", 0)
    assert _gone(state["Pid"])  # its process did not outlive the monitor unmanaged
    assert os.listdir(rongqi.runtime_root) == []  # the runtime's container deleted
    assert rongqi.mounts() == []
    rongqi("rm", "orphan")
    assert rongqi.ids() == [] and rongqi.snapshots() == [] and rongqi.names() == []


def test_what_a_create_killed_half_way_left_is_swept_by_the_next_command(rongqi):
    keep = rongqi("create", "--name", "keep", "busybox", "true").stdout.strip()
    # What a CLI SIGKILLed inside create leaves: a record dir without config.json (its lock
    # died with it), the snapshot, mounted, and the name.
    from rongqi.engine import Engine
    from rongqi.engine.records import new_id
    engine = Engine(rongqi.root, rongqi.runroot)
    cid = new_id()
    os.mkdir(os.path.join(engine.records.containers_dir, cid))
    open(os.path.join(engine.records.containers_dir, cid, "lock"), "w").close()
    chains = engine.storage.get_snapshot(keep).chain_ids
    engine.storage.create_snapshot(cid, chains)
    engine.records.reserve_name("half", cid)
    assert len(rongqi.mounts()) == 1

    assert rongqi("ps", "-a", "--format", "{{.Names}}").stdout == "keep\n"
    assert rongqi.names() == ["keep"] and len(rongqi.ids()) == 1
    assert cid not in rongqi.snapshots() and rongqi.mounts() == []
    rongqi("create", "--name", "half", "busybox", "true")  # the name is free again


def test_a_start_whose_cli_was_killed_after_the_fork_shows_the_truth(rongqi):
    state = _running(rongqi, "forked")
    # What a CLI killed between forking the monitor and saving leaves in state.json.
    cid = rongqi.inspect("forked")["Id"]
    path = os.path.join(rongqi.root, "containers", cid, "state.json")
    with open(path) as f:
        doc = json.load(f)
    doc.update(status="created", pid=0, monitor_pid=0, starting=True)
    with open(path, "w") as f:
        json.dump(doc, f)
    after = rongqi.inspect("forked")["State"]
    assert (after["Status"], after["Pid"], after["ConmonPid"]) == \
        ("running", state["Pid"], state["ConmonPid"])
    rongqi("stop", "-t", "0", "forked")
    assert rongqi.inspect("forked")["State"]["ExitCode"] == 137


def test_after_a_reboot_containers_are_exited_and_restart_always_ones_start_again(rongqi):
    rongqi("create", "--name", "always", "--restart", "always", "busybox", "sleep", "100")
    rongqi("create", "--name", "plain", "busybox", "sleep", "100")
    rongqi("start", "always", "plain")
    states = {n: rongqi.inspect(n)["State"] for n in ("always", "plain")}
    # The reboot: every process gone, and with them /run (the runtime's state and RUN/).
    for s in states.values():
        os.kill(s["ConmonPid"], signal.SIGKILL)
    for s in states.values():
        assert _gone(s["ConmonPid"])
    shutil.rmtree(rongqi.runtime_root)
    shutil.rmtree(rongqi.runroot)

    ps = rongqi("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
    assert sorted(ps[:2]) == ["always exited", "plain exited"]
    for n, s in states.items():
        assert rongqi.inspect(n)["State"]["Error"] == "host rebooted"
        assert _gone(s["Pid"])  # (a real reboot took them; here the cgroup's leftovers)

    # The boot command (docs/engine.md), as podman's from its boot unit.
    out = rongqi("start", "--all", "--filter", "restart-policy=always").stdout
    assert out.split() == [rongqi.inspect("always")["Id"]]
    assert rongqi.inspect("always")["State"]["Status"] == "running"
    assert rongqi.inspect("plain")["State"]["Status"] == "exited"


def test_twenty_containers_started_at_once_from_twenty_clis_all_run(rongqi):
    procs = [rongqi.popen("run", "-d", "--name", f"c{i}", "busybox", "sleep", "120",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(20)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0] * 20, [err for _, err in results if err]
    rows = rongqi("ps", "--format", "{{.Names}} {{.State}}").stdout.split()
    assert sorted(rows[::2]) == sorted(f"c{i}" for i in range(20))
    assert set(rows[1::2]) == {"running"}


def test_one_name_asked_for_by_ten_clis_at_once_goes_to_one(rongqi):
    rongqi("create", "busybox", "true")  # the image, made once
    before = len(rongqi.ids())
    procs = [rongqi.popen("create", "--name", "same", "busybox", "true",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(10)]
    outs = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in outs) == [0] + [125] * 9
    assert all("already in use" in err for code, err in outs if code)
    assert len(rongqi.ids()) == before + 1
    assert len(rongqi.snapshots()) == before + 1 and rongqi.mounts() == []


def test_ten_clis_removing_one_container_at_once(rongqi):
    _running(rongqi, "victim")
    procs = [rongqi.popen("rm", "-f", "-t", "0", "victim", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) for _ in range(10)]
    outs = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert {code for code, _ in outs} <= {0, 1} and 0 in {code for code, _ in outs}, outs
    assert all("no such container" in err for code, err in outs if code), outs
    assert rongqi.ids() == [] and rongqi.names() == [] and rongqi.snapshots() == []
    assert rongqi.mounts() == []


@pytest.mark.parametrize("command", ["create", "run"])
def test_a_cli_sigkilled_anywhere_in_create_or_run_leaves_nothing_after_rm(rongqi, command):
    """Wherever the kill lands, the next ps tells the truth and rm -f --all leaves nothing."""
    rongqi("create", "busybox", "true")  # the image, made once
    rongqi("rm", "--all")
    for n, delay in enumerate((0.05, 0.15, 0.3, 0.45, 0.6, 0.9)):
        args = ["run", "-d"] if command == "run" else ["create"]
        p = rongqi.popen(*args, "--name", f"k{n}", "busybox", "sleep", "60",
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.kill()
        p.wait()
        rows = rongqi("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
        assert all(r.split()[1] in ("created", "running", "exited") for r in rows if r), rows
    rongqi("rm", "-f", "-t", "0", "--all")
    assert rongqi.ids() == [] and rongqi.names() == [] and rongqi.snapshots() == []
    assert rongqi.mounts() == []
