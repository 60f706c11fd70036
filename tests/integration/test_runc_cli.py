"""runc's command-line details that scripts and engines rely on, checked on rongqi-oci.

Each case says what runc 1.1.5 (/usr/sbin/runc on this host) does; rongqi-oci must do the same:
flags after the container id, a relative --pid-file, `kill ID 0`, exec's exit code 255.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.oci_cli import oci, wait_status

pytestmark = pytest.mark.root


def run_detached(binary: str, root: str, bundle: str, cid: str, *extra: str) -> None:
    r = oci(binary, root, "run", "-d", "-b", bundle, *extra, cid)
    assert r.returncode == 0, r.stderr
    wait_status(binary, root, cid, "running")


def in_dir(cwd, *argv: str) -> subprocess.CompletedProcess:
    """Run argv in cwd; stderr through a file (a container keeps the pipe open)."""
    with open(os.path.join(cwd, ".stderr"), "w+") as err:
        r = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           text=True, timeout=60)
        err.seek(0)
        r.stderr = err.read()
    return r


def test_relative_pid_file_is_resolved_against_the_callers_cwd(oci_binary, runtime_root, bundle_factory,
                                                               unique_id, tmp_path):
    # runc: `create --pid-file rel.pid` writes <cwd>/rel.pid (filepath.Abs in revisePidFile).
    bundle = bundle_factory(["sleep", "30"])
    r = in_dir(tmp_path, oci_binary, "--root", runtime_root, "create", "-b", bundle, "--pid-file", "rel.pid", unique_id)
    assert r.returncode == 0, r.stderr
    pid = int((tmp_path / "rel.pid").read_text())
    assert pid == json.loads(oci(oci_binary, runtime_root, "state", unique_id).stdout)["pid"]
    assert oci(oci_binary, runtime_root, "start", unique_id).returncode == 0
    sub = tmp_path / "sub"
    sub.mkdir()
    r = in_dir(sub, oci_binary, "--root", runtime_root, "exec", "-d", "--pid-file", "../exec.pid", unique_id,
               "sleep", "30")
    assert r.returncode == 0, r.stderr
    exec_pid = int((tmp_path / "exec.pid").read_text())
    assert exec_pid in exec_pids(runtime_root, unique_id)
    # Detached, it was reparented to this session (a subreaper): reap it here, or the
    # container's init waits for it at delete.
    os.kill(exec_pid, 9)
    os.waitpid(exec_pid, 0)


def test_flags_after_the_container_id_are_parsed_as_runc_does(oci_binary, runtime_root, bundle_factory, unique_id):
    # runc (urfave/cli v1 reorders arguments): `run ID -d -b B`, `update ID --pids-limit N`,
    # `kill ID KILL --all` and `delete ID --force` all work.
    bundle = bundle_factory(["sleep", "30"])
    r = oci(oci_binary, runtime_root, "run", unique_id, "-d", "-b", bundle)
    assert r.returncode == 0, r.stderr
    wait_status(oci_binary, runtime_root, unique_id, "running")
    r = oci(oci_binary, runtime_root, "update", unique_id, "--pids-limit", "77")
    assert r.returncode == 0, r.stderr
    dirs = json.load(open(os.path.join(runtime_root, unique_id, "state.json")))["cgroup"]["dirs"]
    pids_dir = dirs.get("pids") or dirs["unified"]
    assert open(os.path.join(pids_dir, "pids.max")).read().strip() == "77"
    # An unknown flag after the id is an argument, as in runc: `state ID --bogus` is two arguments.
    r = oci(oci_binary, runtime_root, "state", unique_id, "--bogus")
    assert r.returncode == 1 and "takes a container id" in r.stderr, r.stderr
    r = oci(oci_binary, runtime_root, "kill", unique_id, "KILL", "--all")
    assert r.returncode == 0, r.stderr
    wait_status(oci_binary, runtime_root, unique_id, "stopped")
    r = oci(oci_binary, runtime_root, "delete", unique_id, "--force")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


def test_exec_and_ps_leave_what_follows_the_id_to_the_command(oci_binary, runtime_root, bundle_factory, unique_id):
    # runc's exec and ps set SkipArgReorder: `exec ID ls -d /proc` passes -d to ls.
    bundle = bundle_factory(["sleep", "30"])
    run_detached(oci_binary, runtime_root, bundle, unique_id)
    r = oci(oci_binary, runtime_root, "exec", unique_id, "ls", "-d", "/proc")
    assert (r.returncode, r.stdout) == (0, "/proc\n"), r.stderr
    r = oci(oci_binary, runtime_root, "ps", unique_id, "-o", "pid")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "PID"


def test_kill_with_signal_0_checks_that_the_init_lives(oci_binary, runtime_root, bundle_factory, unique_id):
    # runc: `kill ID 0` exits 0 for a live init (kill(2)'s existence check), 1 once it is gone.
    bundle = bundle_factory(["sleep", "30"])
    run_detached(oci_binary, runtime_root, bundle, unique_id)
    r = oci(oci_binary, runtime_root, "kill", unique_id, "0")
    assert r.returncode == 0, r.stderr
    assert wait_status(oci_binary, runtime_root, unique_id, "running")
    assert oci(oci_binary, runtime_root, "kill", unique_id, "9").returncode == 0
    wait_status(oci_binary, runtime_root, unique_id, "stopped")
    r = oci(oci_binary, runtime_root, "kill", unique_id, "0")
    assert r.returncode == 1 and "container not running" in r.stderr, r.stderr


def exec_pids(root: str, cid: str) -> set[int]:
    from rongqi.linux import cgroups

    st = json.load(open(os.path.join(root, cid, "state.json")))
    return set(cgroups.Cgroup.from_dict(st["cgroup"]).pids()) - {st["pid"]}


def test_exec_failures_exit_255_as_runcs_do(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    # runc: every failure of exec after its argument check exits 255 ("exec failed: ..."); a
    # usage error (no container id) exits 1.
    r = oci(oci_binary, runtime_root, "exec", "nope", "true")
    assert r.returncode == 255 and "does not exist" in r.stderr, r.stderr
    assert oci(oci_binary, runtime_root, "exec").returncode == 1
    bundle = bundle_factory(["sleep", "30"])
    run_detached(oci_binary, runtime_root, bundle, unique_id)
    r = oci(oci_binary, runtime_root, "exec", unique_id, "no-such-program")
    assert r.returncode == 255 and "executable file not found" in r.stderr, r.stderr
    r = oci(oci_binary, runtime_root, "exec", "--process", str(tmp_path / "missing.json"), unique_id)
    assert r.returncode == 255 and "missing.json" in r.stderr, r.stderr
    # A pid file that cannot be written: 255, and the process it started does not stay (runc kills it).
    r = oci(oci_binary, runtime_root, "exec", "-d", "--pid-file", "/nonexistent/dir/pid", unique_id, "sleep", "30")
    assert r.returncode == 255 and "/nonexistent/dir" in r.stderr, r.stderr
    assert exec_pids(runtime_root, unique_id) == set()
    assert oci(oci_binary, runtime_root, "exec", unique_id, "sh", "-c", "exit 7").returncode == 7
    assert oci(oci_binary, runtime_root, "pause", unique_id).returncode == 0
    try:
        r = oci(oci_binary, runtime_root, "exec", unique_id, "true")
        assert r.returncode == 255 and "paused" in r.stderr, r.stderr
    finally:
        assert oci(oci_binary, runtime_root, "resume", unique_id).returncode == 0


def test_create_failures_exit_1_as_runcs_do(oci_binary, runtime_root, bundle_factory, unique_id):
    # runc: `create --pid-file /nonexistent/dir/pid` fails with 1 and leaves no container.
    bundle = bundle_factory(["sleep", "30"])
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, "--pid-file", "/nonexistent/dir/pid", unique_id)
    assert r.returncode == 1 and "/nonexistent/dir" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


def test_debug_writes_runcs_debug_lines_to_stderr_or_the_log(oci_binary, runtime_root, bundle_factory, unique_id,
                                                            tmp_path):
    # runc --debug: `time="..." level=debug msg="..."` lines on stderr, or with --log in the file
    # only (as JSON objects with --log-format json), errors there too.
    bundle = bundle_factory(["true"])
    r = subprocess.run([oci_binary, "--root", runtime_root, "--debug", "run", "-b", bundle, unique_id],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) >= 3 and all(line.startswith('time="') and " level=debug msg=" in line for line in lines), lines
    assert any(f"create {unique_id}" in line for line in lines)
    text_log = tmp_path / "log.txt"
    r = subprocess.run([oci_binary, "--root", runtime_root, "--debug", "--log", str(text_log), "run", "-b", bundle,
                        unique_id], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")
    assert " level=debug msg=" in text_log.read_text()
    json_log = tmp_path / "log.json"
    r = subprocess.run([oci_binary, "--root", runtime_root, "--debug", "--log", str(json_log), "--log-format",
                        "json", "state", "nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    entries = [json.loads(line) for line in json_log.read_text().splitlines()]
    assert {e["level"] for e in entries} == {"debug", "error"}
    assert entries[-1]["level"] == "error" and "does not exist" in entries[-1]["msg"]
    # Without --debug, no debug line anywhere.
    quiet = tmp_path / "quiet.json"
    r = subprocess.run([oci_binary, "--root", runtime_root, "--log", str(quiet), "--log-format", "json", "run", "-b",
                        bundle, unique_id], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")
    assert not quiet.exists() or "debug" not in quiet.read_text()


@pytest.mark.skipif(os.path.exists("/sys/fs/cgroup/cgroup.controllers"), reason="a cgroup v2 host takes unified")
def test_unified_resources_on_a_v1_host_are_an_invalid_configuration(oci_binary, runtime_root, bundle_factory,
                                                                     unique_id):
    # runc on this hybrid host: "invalid configuration: cannot use unified on cgroup v1", even
    # for cgroup.* keys that the hybrid cgroup2 tree has; nothing is made.
    bundle = bundle_factory(["true"], resources={"unified": {"cgroup.max.depth": "3"}})
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 1
    assert "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


def test_run_in_a_non_empty_cgroup_warns_as_runc_and_spares_the_processes_there(oci_binary, runtime_root,
                                                                                bundle_factory, unique_id, tmp_path):
    # runc: two warnings, "container's cgroup is not empty: 1 process(es) found" and the
    # deprecation note, and the container runs; at delete it kills the container (its pid
    # namespace), not the processes that were in the cgroup before it.
    from rongqi.linux import cgroups
    from support.plugin import SESSION_TAG

    path = f"/rongqi-test/{SESSION_TAG}-shared-{unique_id}"
    cg = cgroups.Cgroup.open(path)
    cg.create()
    other = subprocess.Popen(["sleep", "60"])
    try:
        cg.add_pid(other.pid)
        bundle = bundle_factory(["true"], cgroups_path=path)
        r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
        assert r.returncode == 0, r.stderr
        assert "warning: container's cgroup is not empty: 1 process(es) found" in r.stderr, r.stderr
        assert "DEPRECATED: running container in a non-empty cgroup" in r.stderr
        assert other.poll() is None, "the process that was in the cgroup before was killed"
        log = tmp_path / "log.json"
        r = subprocess.run([oci_binary, "--root", runtime_root, "--log", str(log), "--log-format", "json", "run", "-b",
                            bundle, unique_id], capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stderr) == (0, "")
        levels = [json.loads(line)["level"] for line in log.read_text().splitlines()]
        assert levels == ["warning", "warning"], log.read_text()
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
        cg.destroy()


def cgroup_lines(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {hierarchy: path}; "" is the cgroup2 tree."""
    out = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = path
    return out


def test_exec_cgroup_puts_the_process_in_a_sub_cgroup(oci_binary, runtime_root, bundle_factory, unique_id):
    # runc: `exec --cgroup memory:sub ID ...` joins <container>/sub in memory only; `--cgroup sub`
    # joins it in every hierarchy (the cgroup2 tree included); the sub-cgroup must exist.
    from rongqi.linux import cgroups

    bundle = bundle_factory(["sleep", "30"])
    run_detached(oci_binary, runtime_root, bundle, unique_id)
    st = json.load(open(os.path.join(runtime_root, unique_id, "state.json")))
    base = st["cgroup"]["path"]
    r = oci(oci_binary, runtime_root, "exec", "--cgroup", "sub", unique_id, "true")
    assert r.returncode == 255 and "sub/cgroup.procs" in r.stderr, r.stderr  # not made for you, as in runc
    sub = cgroups.Cgroup.open(base + "/sub")
    sub.create()  # in every hierarchy; its cpuset gets cpus and mems
    try:
        hierarchy = "memory" if "memory" in st["cgroup"]["dirs"] else ""
        if hierarchy:
            r = oci(oci_binary, runtime_root, "exec", "--cgroup", "memory:sub", unique_id, "cat", "/proc/self/cgroup")
            assert r.returncode == 0, r.stderr
            seen = cgroup_lines(r.stdout)
            assert seen["memory"] == base + "/sub" and seen["pids"] == base, seen
        r = oci(oci_binary, runtime_root, "exec", "--cgroup", "sub", unique_id, "cat", "/proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        assert set(cgroup_lines(r.stdout).values()) == {base + "/sub"}, r.stdout
        r = oci(oci_binary, runtime_root, "exec", "--cgroup", "memory:../x", unique_id, "true")
        assert r.returncode == 255 and "../x is not a sub cgroup path" in r.stderr, r.stderr
    finally:
        oci(oci_binary, runtime_root, "kill", unique_id, "9")
        wait_status(oci_binary, runtime_root, unique_id, "stopped")
        sub.destroy()


def test_a_relative_root_is_the_callers_cwd_s(oci_binary, bundle_factory, unique_id, tmp_path):
    # runc makes --root absolute (filepath.Abs) before anything uses it.
    bundle = bundle_factory(["sleep", "30"])
    try:
        r = in_dir(tmp_path, oci_binary, "--root", "state", "run", "-d", "-b", bundle, unique_id)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "state" / unique_id / "state.json").exists()
        r = subprocess.run([oci_binary, "--root", "state", "exec", unique_id, "true"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        r = subprocess.run([oci_binary, "--root", "state", "delete", "--force", unique_id], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "state" / unique_id).exists()


def test_spec_is_runcs_template_with_rongqis_defaults(oci_binary, tmp_path):
    # `runc spec` and `rongqi-oci spec` differ only where rongqi locks down more: docker's
    # capabilities (none ambient), its seccomp profile, a cgroup namespace; and in the names.
    import shutil

    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("missing runc (apt-get install runc)")
    for name, binary in (("runc", runc), ("rongqi", oci_binary)):
        (tmp_path / name).mkdir()
        assert subprocess.run([binary, "spec"], cwd=tmp_path / name).returncode == 0
    theirs = json.load(open(tmp_path / "runc" / "config.json"))
    ours = json.load(open(tmp_path / "rongqi" / "config.json"))
    assert ours["process"]["terminal"] is True
    assert ours["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert ours["linux"]["namespaces"] == theirs["linux"]["namespaces"] + [{"type": "cgroup"}]
    assert set(theirs["process"]["capabilities"]["bounding"]) < set(ours["process"]["capabilities"]["bounding"])
    for doc in (theirs, ours):
        for key in ("hostname", "ociVersion"):
            doc.pop(key)
        doc["process"].pop("capabilities")
        doc["linux"].pop("seccomp", None)
        doc["linux"].pop("namespaces")
    assert ours == theirs


def test_a_failing_poststart_hook_is_a_warning_that_goes_to_the_log(oci_binary, runtime_root, bundle_factory,
                                                                   unique_id, tmp_path):
    # The spec: a failing poststart hook is logged and the container goes on; with --log, as
    # every warning of the runtime, the line goes to the log (runc's logrus does the same).
    bundle = bundle_factory(["true"])
    path = os.path.join(bundle, "config.json")
    cfg = json.load(open(path))
    cfg["hooks"] = {"poststart": [{"path": "/bin/false"}]}
    json.dump(cfg, open(path, "w"))
    r = subprocess.run([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.startswith("rongqi-oci: warning: ") and "poststart" in r.stderr, r.stderr
    log = tmp_path / "log.json"
    r = subprocess.run([oci_binary, "--root", runtime_root, "--log", str(log), "--log-format", "json", "run", "-b",
                        bundle, unique_id], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["level"] for e in entries] == ["warning"] and "poststart" in entries[0]["msg"], entries
