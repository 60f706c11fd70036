"""rongqi-oci update/pause/resume/ps/events on real containers, as root, on this kernel's cgroups.

Each container lives under a runtime_root that is force-deleted at teardown; the leak checker
then proves that no cgroup, mount or process stayed behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from rongqi.linux import cgroups
from support.oci_cli import oci, wait_status

pytestmark = pytest.mark.root

MiB = 1 << 20
needs_v1_memory = pytest.mark.skipif(
    not os.path.isdir("/sys/fs/cgroup/memory"), reason="needs the v1 memory controller"
)


def status(binary: str, root: str, cid: str) -> str:
    r = oci(binary, root, "state", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["status"]


def start_detached(binary: str, root: str, bundle: str, cid: str) -> None:
    r = oci(binary, root, "run", "-d", "-b", bundle, cid)
    assert r.returncode == 0, r.stderr
    wait_status(binary, root, cid, "running")


def stats(binary: str, root: str, cid: str) -> dict:
    r = oci(binary, root, "events", "--stats", cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    ev = json.loads(lines[0])
    assert ev["type"] == "stats" and ev["id"] == cid
    return ev["data"]


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one line, never a traceback
    assert "Traceback" not in r.stderr
    return lines[0]


def cgroup_dirs(root: str, cid: str) -> dict[str, str]:
    with open(os.path.join(root, cid, "state.json")) as f:
        return json.load(f)["cgroup"]["dirs"]


def counter_bundle(bundle_factory, out: Path) -> str:
    """A container that writes a growing count to out/c every 20 ms."""
    return bundle_factory(
        [
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /out/c; sleep 0.02; done",
        ],
        mounts=[
            {
                "destination": "/out",
                "type": "bind",
                "source": str(out),
                "options": ["rbind"],
            }
        ],
    )


def read_counter(out: Path) -> int:
    try:
        return int((out / "c").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


# --- limits hold --------------------------------------------------------------------------------


@needs_v1_memory
def test_memory_limit_oom_kills_the_init_with_137_and_events_reports_oom(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    # The init sleeps first so that the event stream is listening before the allocation.
    bundle = bundle_factory(
        ["sh", "-c", "sleep 1; exec dd if=/dev/zero of=/dev/null bs=128M count=1"],
        resources={"memory": {"limit": 32 * MiB, "swap": 32 * MiB}},
    )
    run = subprocess.Popen(
        [oci_binary, "--root", runtime_root, "run", "--keep", "-b", bundle, unique_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = None
    try:
        wait_status(oci_binary, runtime_root, unique_id, "running")
        events = subprocess.Popen(
            [
                oci_binary,
                "--root",
                runtime_root,
                "events",
                "--interval",
                "30s",
                unique_id,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.wait(timeout=60) == 137
        # The stream ends by itself once the container has stopped.
        out, err = events.communicate(timeout=30)
        assert events.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert {"type": "oom", "id": unique_id} in lines
        s = json.loads(oci(oci_binary, runtime_root, "state", unique_id).stdout)
        assert s["status"] == "stopped" and s["pid"] == 0
        # runc refuses stats of a stopped container; the kept cgroup still shows the peak.
        mem = Path(cgroup_dirs(runtime_root, unique_id)["memory"])
        assert int((mem / "memory.max_usage_in_bytes").read_text()) > 24 * MiB
        assert "oom_kill 1" in (mem / "memory.oom_control").read_text()
    finally:
        for p in (run, events):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_pids_limit_stops_a_fork_bomb(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    bundle = bundle_factory(
        [
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); echo $i; done",
        ],
        resources={"pids": {"limit": 20}},
    )
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    # The shell itself counts: it got 19 children, then fork failed and it gave up.
    assert r.returncode != 0
    assert "can't fork" in r.stderr
    assert r.stdout.split()[-1] == "19"


def test_cpu_quota_of_a_fifth_keeps_a_busy_loop_near_20_percent(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    bundle = bundle_factory(
        ["sh", "-c", "while :; do :; done"],
        resources={"cpu": {"quota": 20000, "period": 100000}},
    )
    start_detached(oci_binary, runtime_root, bundle, unique_id)
    time.sleep(0.3)
    t0, u0 = (
        time.monotonic(),
        stats(oci_binary, runtime_root, unique_id)["cpu"]["usage"]["total"],
    )
    time.sleep(2)
    t1, u1 = (
        time.monotonic(),
        stats(oci_binary, runtime_root, unique_id)["cpu"]["usage"]["total"],
    )
    share = (u1 - u0) / 1e9 / (t1 - t0)
    assert 0.15 < share < 0.25, share
    throttling = stats(oci_binary, runtime_root, unique_id)["cpu"]["throttling"]
    assert throttling["throttled_periods"] > 0


# --- pause / resume -----------------------------------------------------------------------------


def test_pause_stops_a_counter_and_resume_continues_it(
    oci_binary, runtime_root, bundle_factory, unique_id, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    start_detached(
        oci_binary, runtime_root, counter_bundle(bundle_factory, out), unique_id
    )
    deadline = time.monotonic() + 10
    while read_counter(out) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    r = oci(oci_binary, runtime_root, "pause", unique_id)
    assert r.returncode == 0, r.stderr
    assert status(oci_binary, runtime_root, unique_id) == "paused"
    frozen_at = read_counter(out)
    time.sleep(0.5)
    assert read_counter(out) == frozen_at

    r = oci(oci_binary, runtime_root, "resume", unique_id)
    assert r.returncode == 0, r.stderr
    assert status(oci_binary, runtime_root, unique_id) == "running"
    deadline = time.monotonic() + 5
    while read_counter(out) <= frozen_at + 3:
        assert time.monotonic() < deadline, "the counter did not continue after resume"
        time.sleep(0.02)


def test_pause_and_resume_refuse_with_runcs_words(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    start_detached(oci_binary, runtime_root, bundle_factory(["sleep", "60"]), unique_id)
    assert "container not paused" in one_error_line(
        oci(oci_binary, runtime_root, "resume", unique_id)
    )
    assert oci(oci_binary, runtime_root, "pause", unique_id).returncode == 0
    assert "container not running" in one_error_line(
        oci(oci_binary, runtime_root, "pause", unique_id)
    )
    # Once stopped, neither command applies.
    assert (
        oci(oci_binary, runtime_root, "kill", "--all", unique_id, "KILL").returncode
        == 0
    )
    wait_status(oci_binary, runtime_root, unique_id, "stopped")
    assert "container not running" in one_error_line(
        oci(oci_binary, runtime_root, "pause", unique_id)
    )
    assert "container not paused" in one_error_line(
        oci(oci_binary, runtime_root, "resume", unique_id)
    )


def test_sigkill_of_a_paused_container_stops_it(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    start_detached(oci_binary, runtime_root, bundle_factory(["sleep", "60"]), unique_id)
    assert oci(oci_binary, runtime_root, "pause", unique_id).returncode == 0
    assert oci(oci_binary, runtime_root, "kill", unique_id, "KILL").returncode == 0
    wait_status(oci_binary, runtime_root, unique_id, "stopped", timeout=3)


def test_pause_of_a_missing_container_says_does_not_exist(oci_binary, runtime_root):
    assert "does not exist" in one_error_line(
        oci(oci_binary, runtime_root, "pause", "rongqi-no-such-ctr")
    )


# --- update -------------------------------------------------------------------------------------


@needs_v1_memory
def test_update_flags_change_live_limits(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    bundle = bundle_factory(
        ["sleep", "60"],
        resources={"memory": {"limit": 64 * MiB}, "pids": {"limit": 50}},
    )
    start_detached(oci_binary, runtime_root, bundle, unique_id)
    dirs = cgroup_dirs(runtime_root, unique_id)
    r = oci(
        oci_binary,
        runtime_root,
        "update",
        "--memory",
        "100M",
        "--pids-limit",
        "7",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "100000",
        "--cpu-share",
        "512",
        unique_id,
    )
    assert r.returncode == 0, r.stderr
    assert Path(dirs["memory"], "memory.limit_in_bytes").read_text().strip() == str(
        100 * MiB
    )
    assert Path(dirs["pids"], "pids.max").read_text().strip() == "7"
    assert Path(dirs["cpu"], "cpu.cfs_quota_us").read_text().strip() == "30000"
    assert Path(dirs["cpu"], "cpu.shares").read_text().strip() == "512"
    data = stats(oci_binary, runtime_root, unique_id)
    assert data["memory"]["usage"]["limit"] == 100 * MiB
    assert data["pids"]["limit"] == 7


def test_update_lowers_a_pids_limit_that_then_stops_forks(
    oci_binary, runtime_root, bundle_factory, unique_id, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    # Forks one short-lived child per round and records whether the fork worked.
    bundle = bundle_factory(
        [
            "sh",
            "-c",
            "while true; do if /bin/true; then echo ok > /out/r; else echo fail > /out/r; fi; sleep 0.05; done",
        ],
        mounts=[
            {
                "destination": "/out",
                "type": "bind",
                "source": str(out),
                "options": ["rbind"],
            }
        ],
        resources={"pids": {"limit": 100}},
    )
    start_detached(oci_binary, runtime_root, bundle, unique_id)
    deadline = time.monotonic() + 10
    while not (out / "r").exists() or (out / "r").read_text().strip() != "ok":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # sh plus its sleep child: a limit of 1 leaves no room for /bin/true.
    r = oci(
        oci_binary,
        runtime_root,
        "update",
        "-r",
        "-",
        unique_id,
        input='{"pids": {"limit": 1}}',
    )
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while (
        status(oci_binary, runtime_root, unique_id) == "running"
        and (out / "r").read_text().strip() != "fail"
    ):
        assert time.monotonic() < deadline, (
            "forks still succeed under a pids limit of 1"
        )
        time.sleep(0.05)


@needs_v1_memory
def test_update_resources_json_on_stdin_and_from_a_file(
    oci_binary, runtime_root, bundle_factory, unique_id, tmp_path
):
    start_detached(oci_binary, runtime_root, bundle_factory(["sleep", "60"]), unique_id)
    dirs = cgroup_dirs(runtime_root, unique_id)
    r = oci(
        oci_binary,
        runtime_root,
        "update",
        "--resources",
        "-",
        unique_id,
        input=json.dumps(
            {"memory": {"limit": 48 * MiB, "swap": 48 * MiB}, "cpu": {"cpus": "0"}}
        ),
    )
    assert r.returncode == 0, r.stderr
    assert Path(dirs["memory"], "memory.limit_in_bytes").read_text().strip() == str(
        48 * MiB
    )
    assert Path(dirs["cpuset"], "cpuset.cpus").read_text().strip() == "0"
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"pids": {"limit": 9}}))
    r = oci(oci_binary, runtime_root, "update", "-r", str(f), unique_id)
    assert r.returncode == 0, r.stderr
    assert Path(dirs["pids"], "pids.max").read_text().strip() == "9"
    # The file replaces the flags, as in runc: the memory limit is untouched.
    assert Path(dirs["memory"], "memory.limit_in_bytes").read_text().strip() == str(
        48 * MiB
    )


@pytest.mark.parametrize(
    "args, stdin, words",
    [
        (["--memory", "-5"], None, "--memory"),
        (["--memory", "lots"], None, "--memory"),
        (["--cpu-quota", "5"], None, "--cpu-quota"),
        (["--cpu-period", "99999999999"], None, "--cpu-period"),
        (["--cpu-share", "1"], None, "--cpu-share"),
        (["--cpuset-cpus", "zero"], None, "--cpuset-cpus"),
        (["--memory", "100M", "--memory-swap", "50M"], None, "--memory-swap"),
        (["-r", "-"], '{"memory": {"limit": -7}}', "resources.memory.limit"),
        (["-r", "-"], '{"pids": {"limit": "x"}}', "resources.pids.limit"),
        (
            ["-r", "-"],
            '{"memory": {"limit": 100000000000000000000}}',
            "resources.memory.limit",
        ),
        (["-r", "-"], "{not json", "not valid JSON"),
        (["--l3-cache-schema", "L3:0=f"], None, "--l3-cache-schema"),
    ],
)
def test_update_refuses_bad_values_in_one_line_naming_the_field(
    oci_binary, runtime_root, bundle_factory, unique_id, args, stdin, words
):
    start_detached(
        oci_binary,
        runtime_root,
        bundle_factory(["sleep", "60"], resources={"pids": {"limit": 40}}),
        unique_id,
    )
    pids_max = Path(cgroup_dirs(runtime_root, unique_id)["pids"], "pids.max")
    line = one_error_line(
        oci(oci_binary, runtime_root, "update", *args, unique_id, input=stdin)
    )
    assert words in line, line
    assert pids_max.read_text().strip() == "40"  # nothing was half-applied
    assert status(oci_binary, runtime_root, unique_id) == "running"


def test_update_of_a_stopped_container_says_not_running(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    r = oci(
        oci_binary,
        runtime_root,
        "run",
        "--keep",
        "-b",
        bundle_factory(["true"]),
        unique_id,
    )
    assert r.returncode == 0, r.stderr
    assert "container not running" in one_error_line(
        oci(oci_binary, runtime_root, "update", "--pids-limit", "5", unique_id)
    )


# --- events and ps ------------------------------------------------------------------------------


def test_events_stats_reports_growing_usage(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    # Keeps 2 MiB blocks of zeros in shell variables, and burns cpu while it does.
    bundle = bundle_factory(
        [
            "sh",
            "-c",
            "a=''; while true; do a=\"$a$(head -c 1048576 /dev/zero | tr '\\0' x)\"; done",
        ],
        resources={"memory": {"limit": 512 * MiB}, "pids": {"limit": 30}},
    )
    start_detached(oci_binary, runtime_root, bundle, unique_id)
    first = stats(oci_binary, runtime_root, unique_id)
    time.sleep(1.0)
    second = stats(oci_binary, runtime_root, unique_id)
    assert set(second) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert second["cpu"]["usage"]["total"] > first["cpu"]["usage"]["total"]
    assert second["memory"]["usage"]["usage"] > first["memory"]["usage"]["usage"]
    assert second["memory"]["usage"]["limit"] == 512 * MiB
    assert second["pids"]["limit"] == 30 and 1 <= second["pids"]["current"] <= 30


def test_events_stream_prints_stats_each_interval_and_ends_when_the_container_stops(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    start_detached(oci_binary, runtime_root, bundle_factory(["sleep", "60"]), unique_id)
    p = subprocess.Popen(
        [
            oci_binary,
            "--root",
            runtime_root,
            "events",
            "--interval",
            "200ms",
            unique_id,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.1)
        assert oci(oci_binary, runtime_root, "kill", unique_id, "KILL").returncode == 0
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert 3 <= len(events) <= 7, events
    assert all(
        e["type"] == "stats" and e["id"] == unique_id and "cpu" in e["data"]
        for e in events
    )


def test_events_refuses_a_stopped_container_and_a_bad_interval(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    r = oci(
        oci_binary,
        runtime_root,
        "run",
        "--keep",
        "-b",
        bundle_factory(["true"]),
        unique_id,
    )
    assert r.returncode == 0, r.stderr
    assert "not running" in one_error_line(
        oci(oci_binary, runtime_root, "events", "--stats", unique_id)
    )
    assert "greater than 0" in one_error_line(
        oci(oci_binary, runtime_root, "events", "--interval", "0s", unique_id)
    )
    assert "--interval" in one_error_line(
        oci(oci_binary, runtime_root, "events", "--interval", "soon", unique_id)
    )


def test_ps_json_lists_the_host_pids_of_every_process_in_the_container(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    bundle = bundle_factory(["sh", "-c", "sleep 60 & sleep 61 & wait"])
    start_detached(oci_binary, runtime_root, bundle, unique_id)
    init = json.loads(oci(oci_binary, runtime_root, "state", unique_id).stdout)["pid"]
    deadline = time.monotonic() + 10
    while True:
        r = oci(oci_binary, runtime_root, "ps", "--format", "json", unique_id)
        assert r.returncode == 0, r.stderr
        pids = json.loads(r.stdout)
        if len(pids) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(pids) == 3 and init in pids
    cmdlines = sorted(
        Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").strip().decode()
        for p in pids
    )
    assert cmdlines == ["sh -c sleep 60 & sleep 61 & wait", "sleep 60", "sleep 61"]
    path = cgroups.Cgroup.from_dict(
        json.loads(Path(runtime_root, unique_id, "state.json").read_text())["cgroup"]
    ).path
    for p in pids:
        assert f":pids:{path}\n" in Path(f"/proc/{p}/cgroup").read_text()


def test_ps_table_keeps_the_header_and_only_the_containers_rows(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    start_detached(oci_binary, runtime_root, bundle_factory(["sleep", "60"]), unique_id)
    init = json.loads(oci(oci_binary, runtime_root, "state", unique_id).stdout)["pid"]
    r = oci(oci_binary, runtime_root, "ps", unique_id)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]  # ps -ef by default
    assert (
        len(lines) == 2 and int(lines[1].split()[1]) == init and "sleep 60" in lines[1]
    )
    r = oci(oci_binary, runtime_root, "ps", unique_id, "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["PID", "COMMAND"],
        [str(init), "sleep"],
    ]
    line = one_error_line(oci(oci_binary, runtime_root, "ps", unique_id, "-o", "comm"))
    assert "PID field" in line


def test_ps_json_of_a_stopped_container_is_an_empty_array(
    oci_binary, runtime_root, bundle_factory, unique_id
):
    r = oci(
        oci_binary,
        runtime_root,
        "run",
        "--keep",
        "-b",
        bundle_factory(["true"]),
        unique_id,
    )
    assert r.returncode == 0, r.stderr
    r = oci(oci_binary, runtime_root, "ps", "--format", "json", unique_id)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


# --- bad resources at create --------------------------------------------------------------------


@pytest.mark.parametrize(
    "resources, cgroups_path, field",
    [
        ({"memory": {"limit": -5}}, None, "linux.resources.memory.limit"),
        ({"memory": {"limit": 1 << 70}}, None, "linux.resources.memory.limit"),
        ({"pids": {"limit": "many"}}, None, "linux.resources.pids.limit"),
        ({"cpu": {"quota": 10}}, None, "linux.resources.cpu.quota"),
        ({"cpu": {"shares": 1 << 40}}, None, "linux.resources.cpu.shares"),
        (
            {"devices": [{"allow": False, "type": "x", "access": "rwm"}]},
            None,
            "linux.resources.devices[0].type",
        ),
        (
            {"unified": {"memory.max": "10M"}},
            None,
            "linux.resources.unified" + (".memory.max" if cgroups.detect_mode() == "v2" else ": invalid configuration"),
        ),
        (None, "/rongqi-test/../escape", "linux.cgroupsPath"),
    ],
)
def test_bad_resources_give_one_line_naming_the_field_and_leave_nothing(
    oci_binary, runtime_root, bundle_factory, unique_id, resources, cgroups_path, field
):
    opts = {}
    if resources is not None:
        opts["resources"] = resources
    if cgroups_path is not None:
        opts["cgroups_path"] = cgroups_path
    bundle = bundle_factory(["true"], **opts)
    spec = json.loads(Path(bundle, "config.json").read_text())
    path = spec["linux"].get("cgroupsPath", "")
    line = one_error_line(
        oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    )
    assert field in line, line
    assert not os.path.exists(os.path.join(runtime_root, unique_id))
    if ".." not in path:
        for ctrl in ("memory", "pids", "cpu", "devices", "unified"):
            assert not os.path.exists(f"/sys/fs/cgroup/{ctrl}{path}"), ctrl


@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/cpuset") or os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
                    reason="needs the v1 cpuset controller")
def test_an_empty_intermediate_cpuset_cgroup_is_filled_from_its_parent(oci_binary, runtime_root, bundle_factory,
                                                                       unique_id):
    # A v1 cpuset cgroup made by someone else (mkdir, no cpus or mems written) refuses tasks below
    # it (ENOSPC on cgroup.procs); runc copies cpus and mems down from the parent, as must we.
    from support.plugin import SESSION_TAG
    from support.tools import remove_cgroup_tree

    middle = f"/rongqi-test/{SESSION_TAG}-cpuset-{unique_id}"
    top = Path("/sys/fs/cgroup/cpuset/rongqi-test")
    made_top = not top.exists()
    top.mkdir(exist_ok=True)
    try:
        if made_top:
            for name in ("cpuset.cpus", "cpuset.mems"):
                (top / name).write_text((top.parent / name).read_text())
        mid = Path("/sys/fs/cgroup/cpuset" + middle)
        mid.mkdir()
        assert (mid / "cpuset.cpus").read_text().strip() == ""
        bundle = bundle_factory(["sh", "-c", "cat /proc/self/cpuset"], cgroups_path=middle + "/leaf")
        r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
        assert (r.returncode, r.stdout) == (0, middle + "/leaf\n"), r.stderr
        assert (mid / "cpuset.cpus").read_text() == (top / "cpuset.cpus").read_text()
        assert (mid / "cpuset.mems").read_text() == (top / "cpuset.mems").read_text()
    finally:
        remove_cgroup_tree(middle)
