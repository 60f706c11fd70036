"""The container lifecycle through the `rongqi` CLI with real containers (the built-in busybox):
create, start, stop, restart, kill, rm, ps, inspect, wait, rename, pause, unpause, exists,
prune; podman's outputs, error lines and exit codes; nothing half-made left on an error."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from support.engine_cli import Rongqi, rongqi  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real containers)")


def _wait_for(pred, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _state(rongqi: Rongqi, ref: str) -> dict:
    return rongqi.inspect(ref)["State"]


def _one_error(p, code: int, pattern: str) -> None:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code, p.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), p.stderr
    assert re.search(pattern, lines[0]), lines[0]


def _nothing_left(rongqi: Rongqi, before: dict) -> None:
    assert rongqi.ids() == before["ids"]
    assert rongqi.names() == before["names"]
    assert rongqi.snapshots() == before["snapshots"]
    assert rongqi.mounts() == []


def _inventory(rongqi: Rongqi) -> dict:
    return {"ids": rongqi.ids(), "names": rongqi.names(), "snapshots": rongqi.snapshots()}


# -- the life of one container -------------------------------------------------------------------
def test_create_start_stop_rm_with_podmans_outputs(rongqi):
    cid = rongqi("create", "--name", "web", "busybox", "sleep", "100").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert rongqi.mounts() == []  # a created container holds no mount
    ps = rongqi("ps", "-a").stdout.splitlines()
    assert re.split(r"\s{2,}", ps[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
                                          "STATUS", "PORTS", "NAMES"]
    assert cid[:12] in ps[1] and "Created" in ps[1] and ps[1].endswith("web")
    assert rongqi("ps").stdout.splitlines()[1:] == []  # not running: not without -a

    assert rongqi("start", "web").stdout == "web\n"
    state = _state(rongqi, "web")
    assert state["Status"] == "running" and state["Running"] and state["Pid"] > 0
    assert os.path.exists(f"/proc/{state['Pid']}")
    assert re.search(r"\bUp\b", rongqi("ps", "--format", "{{.Status}}").stdout)

    t = time.monotonic()
    assert rongqi("stop", "-t", "1", "web").stdout == "web\n"
    assert time.monotonic() - t < 8  # sleep as PID 1 ignores SIGTERM: SIGKILL after 1 s
    state = _state(rongqi, "web")
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 137, False)
    assert re.match(r"Exited \(137\) ", rongqi("ps", "-a", "--format", "{{.Status}}").stdout)
    assert not os.path.exists(f"/proc/{state['Pid'] or 1}/status") or state["Pid"] == 0

    assert rongqi("rm", "web").stdout == "web\n"
    assert rongqi.ids() == [] and rongqi.names() == [] and rongqi.snapshots() == []


def test_a_started_container_can_start_again_after_it_exits(rongqi):
    rongqi("create", "--name", "again", "busybox", "sh", "-c", "exit 3")
    rongqi("start", "again")
    assert rongqi("wait", "again").stdout == "3\n"
    first = _state(rongqi, "again")["StartedAt"]
    rongqi("start", "again")
    assert rongqi("wait", "again").stdout == "3\n"
    assert _state(rongqi, "again")["StartedAt"] != first


def test_start_of_a_running_container_is_not_an_error(rongqi):
    rongqi("create", "--name", "r", "busybox", "sleep", "100")
    rongqi("start", "r")
    pid = _state(rongqi, "r")["Pid"]
    assert rongqi("start", "r").stdout == "r\n"
    assert _state(rongqi, "r")["Pid"] == pid


def test_restart_gives_a_new_process(rongqi):
    rongqi("create", "--name", "rs", "busybox", "sleep", "100")
    rongqi("start", "rs")
    pid = _state(rongqi, "rs")["Pid"]
    assert rongqi("restart", "-t", "0", "rs").stdout == "rs\n"
    state = _state(rongqi, "rs")
    assert state["Status"] == "running" and state["Pid"] != pid


def test_kill_with_signal_names_and_numbers(rongqi):
    rongqi("create", "--name", "k", "busybox", "sh", "-c",
           "trap 'exit 42' USR1; trap 'exit 43' TERM; while :; do sleep 0.1; done")
    rongqi("start", "k")
    assert rongqi("kill", "-s", "USR1", "k").stdout == "k\n"
    assert rongqi("wait", "k").stdout == "42\n"
    rongqi("start", "k")
    rongqi("kill", "--signal", "15", "k")
    assert rongqi("wait", "k").stdout == "43\n"
    p = rongqi("kill", "k", check=False)
    _one_error(p, 125, r"can only kill running containers\. [0-9a-f]{64} is in state exited: "
                       r"container state improper")
    _one_error(rongqi("kill", "-s", "NOPE", "k", check=False), 125, r"invalid signal: NOPE")


def test_pause_and_unpause(rongqi):
    rongqi("create", "--name", "p", "busybox", "sleep", "100")
    rongqi("start", "p")
    assert rongqi("pause", "p").stdout == "p\n"
    state = _state(rongqi, "p")
    assert state["Status"] == "paused" and state["Paused"]
    assert rongqi("ps", "--format", "{{.Status}}").stdout == "Paused\n"
    _one_error(rongqi("pause", "p", check=False), 125,
               r'"[0-9a-f]{64}" is already paused: container state improper')
    rongqi("unpause", "p")
    assert _state(rongqi, "p")["Status"] == "running"
    _one_error(rongqi("unpause", "p", check=False), 125, r"is not paused, can't unpause")
    rongqi("create", "--name", "fresh", "busybox", "true")
    _one_error(rongqi("pause", "fresh", check=False), 125,
               r'"created" is not running, can\'t pause: container state improper')
    # A paused container stops too (thawed, then signalled).
    rongqi("pause", "p")
    rongqi("stop", "-t", "0", "p")
    assert _state(rongqi, "p")["Status"] == "exited"


def test_rename_frees_the_old_name(rongqi):
    cid = rongqi("create", "--name", "old", "busybox", "true").stdout.strip()
    rongqi("rename", "old", "new")
    assert rongqi.inspect("new")["Id"] == cid and rongqi.names() == ["new"]
    rongqi("container", "exists", "old", check=False).returncode == 1
    rongqi("create", "--name", "old", "busybox", "true")
    p = rongqi("rename", "new", "old", check=False)
    _one_error(p, 125, r"renaming container [0-9a-f]{64}: name old already in use, cannot "
                       r"rename container [0-9a-f]{64}: container already exists")


def test_container_exists_exit_codes(rongqi):
    rongqi("create", "--name", "e", "busybox", "true")
    assert rongqi("container", "exists", "e", check=False).returncode == 0
    p = rongqi("container", "exists", "nope", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "")


def test_wait_conditions_and_exit_codes(rongqi):
    rongqi("create", "--name", "w", "busybox", "sh", "-c",
           "trap 'exit 7' USR1; touch /trapped; while :; do sleep 0.1; done")
    rongqi("start", "w")
    assert rongqi("wait", "--condition", "running", "w").stdout == "0\n"
    # The signal only once the shell has its trap (before it, USR1 would end it with 138).
    deadline = time.monotonic() + 30
    while rongqi("exec", "w", "test", "-e", "/trapped", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the shell never set its trap"
        time.sleep(0.1)
    rongqi("kill", "-s", "USR1", "w")
    assert rongqi("wait", "w").stdout == "7\n"
    assert rongqi("wait", "--condition", "exited", "w").stdout == "7\n"
    _one_error(rongqi("wait", "--condition", "nonsense", "w", check=False), 125,
               r"unknown container state: nonsense: invalid argument")


def test_container_prune_removes_only_what_is_not_running(rongqi):
    run = rongqi("create", "--name", "run", "busybox", "sleep", "100").stdout.strip()
    rongqi("start", "run")
    created = rongqi("create", "--name", "created", "busybox", "true").stdout.strip()
    exited = rongqi("create", "--name", "exited", "busybox", "true").stdout.strip()
    rongqi("start", "exited")
    rongqi("wait", "exited")
    out = rongqi("container", "prune", "-f").stdout.split()
    assert sorted(out) == sorted([created, exited])
    assert rongqi.ids() == [run]
    # Without -f it asks: "n" is no; no answer at all is podman's "Error: EOF".
    assert rongqi("container", "prune", input="n\n").returncode == 0
    _one_error(rongqi("container", "prune", input="", check=False), 125, r"^Error: EOF$")
    assert rongqi.ids() == [run]


# -- rm ------------------------------------------------------------------------------------------
def test_rm_of_a_running_container_needs_force_podmans_words_and_code(rongqi):
    cid = rongqi("create", "--name", "busy", "busybox", "sleep", "100").stdout.strip()
    rongqi("start", "busy")
    p = rongqi("rm", "busy", check=False)
    _one_error(p, 2, rf"cannot remove container {cid} as it is running - running or paused "
                     r"containers cannot be removed without force: container state improper")
    assert _state(rongqi, "busy")["Status"] == "running"
    assert rongqi("rm", "-f", "-t", "0", "busy").stdout == "busy\n"
    assert rongqi.ids() == [] and rongqi.mounts() == []


def test_rm_of_a_missing_container_exits_1_and_ignore_makes_it_quiet(rongqi):
    _one_error(rongqi("rm", "nope", check=False), 1,
               r'no container with name or ID "nope" found: no such container')
    p = rongqi("rm", "-i", "nope", check=False)
    assert (p.returncode, p.stderr) == (0, "")


def test_rm_all_and_volumes(rongqi):
    for n in ("a", "b"):
        rongqi("create", "--name", n, "-v", "/data", "busybox", "true")
    from rongqi.engine.volumes import VolumeStore
    volumes = VolumeStore(rongqi.root)
    assert len(volumes.list()) == 2
    out = rongqi("rm", "-v", "--all").stdout.split()
    assert len(out) == 2 and rongqi.ids() == []
    assert volumes.list() == []


# -- create's options and errors -----------------------------------------------------------------
def test_cidfile_is_written_and_an_existing_one_refused(rongqi, tmp_path):
    path = tmp_path / "cid"
    cid = rongqi("create", "--cidfile", str(path), "busybox", "true").stdout.strip()
    assert path.read_text() == cid
    before = _inventory(rongqi)
    p = rongqi("create", "--cidfile", str(path), "busybox", "true", check=False)
    _one_error(p, 125, r"container id file exists\. Ensure another container is not using it "
                       r"or delete")
    _nothing_left(rongqi, before)
    assert rongqi("rm", "--cidfile", str(path)).returncode == 0


def test_name_in_use_is_one_error_and_nothing_half_made(rongqi):
    cid = rongqi("create", "--name", "dup", "busybox", "true").stdout.strip()
    before = _inventory(rongqi)
    p = rongqi("create", "--name", "dup", "busybox", "true", check=False)
    _one_error(p, 125, rf'^Error: creating container storage: the container name "dup" is '
                       rf"already in use by {cid}\. You have to "
                       r"remove that container to be able to reuse that name: that name is "
                       r"already in use")
    _nothing_left(rongqi, before)


def test_replace_removes_the_container_of_that_name(rongqi):
    old = rongqi("create", "--name", "rep", "busybox", "sleep", "100").stdout.strip()
    rongqi("start", "rep")
    new = rongqi("create", "--replace", "--name", "rep", "busybox", "true").stdout.strip()
    assert new != old and rongqi.ids() == [new] and rongqi.names() == ["rep"]


def test_unknown_image_is_one_error_and_nothing_half_made(rongqi):
    rongqi("create", "busybox", "true")  # the store exists, with the built-in image
    before = _inventory(rongqi)
    p = rongqi("create", "--pull", "never", "nosuchimage", "true", check=False)
    _one_error(p, 125, r"nosuchimage: image not known")
    _nothing_left(rongqi, before)
    # A registry that does not answer (loopback, closed port): the pull's error, one line.
    p = rongqi("create", "127.0.0.1:9/nosuch:latest", "true", check=False)
    assert p.returncode == 125 and p.stderr.startswith("Error: ")
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    _nothing_left(rongqi, before)


@pytest.mark.parametrize("args,pattern", [
    (["--memory", "lots"], r"memory"),
    (["--restart", "sometimes"], r"restart"),
    (["--pull", "maybe"], r"pull policy"),
    (["--name", "bad/name"], r"^Error: running container create option: names must match "
                             r"\[a-zA-Z0-9\]\[a-zA-Z0-9_.-\]\*: invalid argument$"),
    (["--log-driver", "carrier-pigeon"], r"log driver"),
])
def test_a_bad_flag_value_is_one_error_and_nothing_half_made(rongqi, args, pattern):
    rongqi("create", "busybox", "true")
    before = _inventory(rongqi)
    p = rongqi("create", *args, "busybox", "true", check=False)
    _one_error(p, 125, pattern)
    _nothing_left(rongqi, before)


def test_bad_flag_values_of_the_lifecycle_commands(rongqi):
    _one_error(rongqi("ps", "--filter", "colour=blue", check=False), 125,
               r"colour is an invalid filter")
    _one_error(rongqi("ps", "--filter", "status=sleepy", check=False), 125,
               r"sleepy is not a valid status")
    _one_error(rongqi("stop", check=False), 125, r"requires at least one argument")
    _one_error(rongqi("inspect", "--type", "pod", "x", check=False), 125, r'invalid type "pod"')
    _one_error(rongqi("stop", "nope", check=False), 125, r'no container with name or ID "nope"')
    _one_error(rongqi("ps", "--bogus", check=False), 125, r"unrecognized arguments: --bogus")


# -- ps ------------------------------------------------------------------------------------------
def test_ps_flags_filters_and_formats(rongqi):
    a = rongqi("create", "--name", "alpha", "--label", "tier=web", "busybox",
               "sleep", "100").stdout.strip()
    b = rongqi("create", "--name", "beta", "busybox", "sh", "-c", "exit 5").stdout.strip()
    c = rongqi("create", "--name", "gamma", "busybox", "true").stdout.strip()
    rongqi("start", "alpha")
    rongqi("start", "beta")
    rongqi("wait", "beta")

    def q(*args: str) -> list[str]:
        return rongqi("ps", "-q", *args).stdout.split()

    assert q() == [a[:12]]
    assert q("-a") == [c[:12], b[:12], a[:12]]  # newest first
    assert q("-a", "--no-trunc") == [c, b, a]
    assert q("-l") == [c[:12]] and q("-n", "2") == [c[:12], b[:12]]
    assert q("-a", "--filter", "name=^al") == [a[:12]]
    assert q("-a", "--filter", f"id={b[:5]}") == [b[:12]]
    assert q("--filter", "status=exited") == [b[:12]]
    assert q("--filter", "status=created") == [c[:12]]
    assert q("-a", "--filter", "label=tier=web") == [a[:12]]
    assert q("-a", "--filter", "label=tier") == [a[:12]]
    assert q("--filter", "exited=5") == [b[:12]]
    assert sorted(q("-a", "--filter", "ancestor=busybox")) == sorted([a[:12], b[:12], c[:12]])
    assert q("-a", "--filter", "name=alpha", "--filter", "name=beta") == [b[:12], a[:12]]
    assert q("-a", "--filter", "name=alpha", "--filter", "status=exited") == []

    out = rongqi("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout
    assert out == "gamma created\nbeta exited\nalpha running\n"
    table = rongqi("ps", "--format", "table {{.ID}}\t{{.Names}}").stdout.splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["CONTAINER ID", "NAMES"]
    assert table[1].split() == [a[:12], "alpha"]
    assert rongqi("ps", "--noheading").stdout.count("\n") == 1
    data = json.loads(rongqi("ps", "-a", "--format", "json").stdout)
    assert [d["Id"] for d in data] == [c, b, a]
    assert data[2]["Names"] == ["alpha"] and data[2]["State"] == "running"
    assert data[2]["Command"] == ["sleep", "100"] and data[1]["ExitCode"] == 5
    assert data[2]["Labels"] == {"tier": "web"}
    sized = rongqi("ps", "-s").stdout.splitlines()
    assert sized[0].rstrip().endswith("SIZE") and "(virtual " in sized[1]
    long_cmd = rongqi("ps", "--format", "{{.Command}}").stdout
    assert long_cmd == "sleep 100\n"


def test_ps_truncates_long_commands_as_podman_does(rongqi):
    rongqi("create", "busybox", "sh", "-c", "echo a long command line")
    assert rongqi("ps", "-a", "--format", "{{.Command}}").stdout == "sh -c echo a long...\n"
    assert rongqi("ps", "-a", "--no-trunc", "--format", "{{.Command}}").stdout == \
        "sh -c echo a long command line\n"


# -- inspect -------------------------------------------------------------------------------------
def test_inspect_has_podmans_shape_and_templates(rongqi):
    cid = rongqi("create", "--name", "ins", "-e", "FOO=bar", "--label", "a=b",
                 "--memory", "64m", "--restart", "on-failure:3", "busybox",
                 "sleep", "100").stdout.strip()
    doc = json.loads(rongqi("inspect", "ins").stdout)
    assert isinstance(doc, list) and len(doc) == 1
    d = doc[0]
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "ImageName", "Name",
                "RestartCount", "Mounts", "Config", "HostConfig", "GraphDriver"):
        assert key in d, key
    assert (d["Id"], d["Name"], d["Path"], d["Args"]) == (cid, "ins", "sleep", ["100"])
    # The keys podman 4.3 prints here for a container without a health check (recorded from
    # `podman inspect` on this machine).
    assert sorted(d["State"]) == [
        "CgroupPath", "CheckpointedAt", "ConmonPid", "Dead", "Error", "ExitCode", "FinishedAt",
        "Health", "OOMKilled", "OciVersion", "Paused", "Pid", "Restarting", "RestoredAt",
        "Running", "StartedAt", "Status"]
    assert sorted(d) == [
        "AppArmorProfile", "Args", "BoundingCaps", "Config", "ConmonPidFile", "Created",
        "Dependencies", "Driver", "EffectiveCaps", "ExecIDs", "GraphDriver", "HostConfig",
        "HostnamePath", "HostsPath", "Id", "Image", "ImageDigest", "ImageName", "IsInfra",
        "IsService", "MountLabel", "Mounts", "Name", "Namespace", "NetworkSettings",
        "OCIConfigPath", "OCIRuntime", "Path", "PidFile", "Pod", "ProcessLabel",
        "ResolvConfPath", "RestartCount", "Rootfs", "State", "StaticDir"]
    assert set(d["Config"]) >= {
        "Annotations", "AttachStderr", "AttachStdin", "AttachStdout", "Cmd", "CreateCommand",
        "Domainname", "Entrypoint", "Env", "HealthcheckOnFailureAction", "Hostname", "Image",
        "Labels", "OnBuild", "OpenStdin", "Passwd", "StdinOnce", "StopSignal", "StopTimeout",
        "Timeout", "Tty", "Umask", "User", "Volumes", "WorkingDir", "sdNotifyMode"}
    assert d["State"]["Health"] == {"Status": "", "FailingStreak": 0, "Log": None}
    assert d["State"]["Status"] == "created"
    assert "FOO=bar" in d["Config"]["Env"] and d["Config"]["Labels"] == {"a": "b"}
    assert d["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert d["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert d["ImageName"] == "docker.io/library/busybox:latest"
    assert rongqi("inspect", "-f", "{{.State.Status}} {{.Name}}", "ins").stdout == \
        "created ins\n"
    assert rongqi("container", "inspect", "--format", "{{.Config.Labels.a}}", "ins").stdout \
        == "b\n"


def test_inspect_finds_images_and_volumes_too(rongqi):
    rongqi("create", "--name", "x", "-v", "named:/data", "busybox", "true")
    img = json.loads(rongqi("inspect", "busybox").stdout)[0]
    assert img["RepoTags"] == ["docker.io/library/busybox:latest"]
    vol = json.loads(rongqi("inspect", "named").stdout)[0]
    assert vol["Name"] == "named"
    both = json.loads(rongqi("inspect", "x", "busybox").stdout)
    assert [("Name" in o and "State" in o) for o in both] == [True, False]
    assert rongqi("inspect", "--type", "image", "-f", "{{.Os}}", "busybox").stdout == "linux\n"
    p = rongqi("inspect", "--type", "container", "busybox", check=False)
    assert p.returncode == 125 and "no such container" in p.stderr
    p = rongqi("inspect", "nothing-here", check=False)
    _one_error(p, 125, r'^Error: inspecting object: no such object: "nothing-here"$')


def test_rmi_of_an_image_a_container_uses_is_refused_unless_forced(rongqi):
    cid = rongqi("create", "--name", "user", "busybox", "true").stdout.strip()
    p = rongqi("rmi", "busybox", check=False)
    _one_error(p, 2, rf"image used by {cid}: image is in use by a container")
    assert rongqi.ids() == [cid]
    rongqi("rmi", "-f", "busybox")
    assert rongqi.ids() == [] and rongqi.snapshots() == []
    _one_error(rongqi("rmi", "busybox", check=False), 1, r"busybox: image not known")


# -- the other runtime ---------------------------------------------------------------------------
def test_the_same_lifecycle_over_runc(tmp_path):
    import shutil
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed")
    r = Rongqi(tmp_path / "engine", runtime=runc)
    try:
        r("create", "--name", "overrunc", "busybox", "sleep", "100")
        # Later commands without --runtime still drive it with runc (its record says so).
        Rongqi(tmp_path / "engine")("start", "overrunc")
        state = r.inspect("overrunc")
        assert state["State"]["Status"] == "running" and state["OCIRuntime"] == "runc"
        pid = state["State"]["Pid"]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"sleep"
        r("pause", "overrunc")
        assert r.inspect("overrunc")["State"]["Status"] == "paused"
        r("unpause", "overrunc")
        r("stop", "-t", "0", "overrunc")
        assert r.inspect("overrunc")["State"]["ExitCode"] == 137
        r("rm", "overrunc")
        assert r.ids() == [] and os.listdir(r.runtime_root) == []
    finally:
        r.cleanup()


def test_a_runtime_that_does_not_exist_is_one_error(rongqi):
    _one_error(rongqi("--runtime", "/nonexistent/runc", "ps", check=False), 125,
               r'could not find a working binary for runtime "/nonexistent/runc"')


def test_ps_table_headers_are_podmans(rongqi):
    # podman 4.3.1 here: `ps -a --format "table {{.ID}}\t{{.CreatedAt}}\t{{.RunningFor}}\t
    # {{.Status}}"` heads its columns CONTAINER ID, CREATED AT, RUNNING FOR, STATUS.
    r = rongqi("ps", "-a", "--format", "table {{.ID}}\t{{.CreatedAt}}\t{{.RunningFor}}\t{{.Status}}")
    assert r.stdout.split("\n")[0].split("  ") == ["CONTAINER ID", "CREATED AT", "RUNNING FOR",
                                                   "STATUS"]


def test_info_and_version_in_podmans_shapes(rongqi):
    rongqi("create", "--name", "inf", "busybox", "true")
    doc = json.loads(rongqi("info", "-f", "json").stdout)
    assert list(doc) == ["host", "plugins", "registries", "store", "version"]
    store = doc["store"]
    assert (store["graphRoot"], store["runRoot"]) == (rongqi.root, rongqi.runroot)
    assert store["containerStore"]["number"] == 1 and store["imageStore"]["number"] >= 1
    assert doc["host"]["cgroupVersion"] in ("v1", "v2")
    assert doc["host"]["cpus"] == os.cpu_count()
    assert rongqi("info", "-f", "{{.Store.GraphRoot}}").stdout == rongqi.root + "\n"
    text = rongqi("info").stdout  # podman's YAML
    assert text.startswith("host:\n") and "\nstore:\n" in text
    _one_error(rongqi("info", "-f", "{{.Nope}}", check=False), 125, r"can't evaluate field Nope")
    v = rongqi("version").stdout.splitlines()
    assert v[0].startswith("Client:") and v[1].split()[0] == "Version:"
    version = json.loads(rongqi("version", "-f", "json").stdout)["Client"]["Version"]
    assert rongqi("version", "-f", "{{.Client.Version}}").stdout == version + "\n"
