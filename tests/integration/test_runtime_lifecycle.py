"""rongqi-oci's start handshake and what hangs on it, as real callers see them (issue 9).

`start` returns once the container's program runs (signals reach it, poststart hooks see it);
startContainer hooks run confined like the program; hooks go on after a failure; a frozen
cgroup fails create; the pty belongs to the process's user; user-namespaced bind mounts
are opened by the host's root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from support.oci_cli import oci, state, wait_status
from support.terminal import read_until

pytestmark = pytest.mark.root


def edit_config(bundle: str, change) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    change(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f)


def write_script(path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture
def open_dir():
    """A directory every uid can traverse (pytest's tmp dirs are 0700 to root)."""
    d = tempfile.mkdtemp(prefix="rongqi-lifecycle-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


USERNS = ["pid", "network", "ipc", "uts", "mount", "user"]
MAPS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


# -- item 6: start returns once the program runs ------------------------------------------


def test_sigterm_sent_right_after_start_reaches_the_program(oci_binary, runtime_root, bundle_factory, unique_id,
                                                             tmp_path):
    """containerd and podman stop a container with `RUNTIME kill ID TERM`, possibly right
    after `start` returned: the signal must land on the program (PID 1, with its trap), never
    on the runtime's init, which as PID 1 without a handler drops it. A startContainer hook
    that takes a while makes the gap between the handshake and execve plain to see."""
    out = tmp_path / "out"
    out.mkdir()
    script = 'trap "echo got > /out/$N; exit 0" TERM; while :; do sleep 10 & wait; done'
    bundle = bundle_factory(["sh", "-c", script],
                            mounts=[{"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]}])
    edit_config(bundle, lambda cfg: cfg.__setitem__(
        "hooks", {"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.2"]}]}))
    lost = []
    for n in range(20):
        edit_config(bundle, lambda cfg: cfg["process"]["env"].__setitem__(
            slice(None), [e for e in cfg["process"]["env"] if not e.startswith("N=")] + [f"N={n}"]))
        cid = f"{unique_id}-{n}"
        assert oci(oci_binary, runtime_root, "create", "-b", bundle, cid).returncode == 0
        r = subprocess.run([oci_binary, "--root", runtime_root, "start", cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        k = subprocess.run([oci_binary, "--root", runtime_root, "kill", cid, "TERM"], capture_output=True, timeout=30)
        assert r.returncode == 0 and k.returncode == 0, (r.stderr, k.stderr)
        deadline = time.monotonic() + 3
        while not (out / str(n)).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not (out / str(n)).exists():
            lost.append(n)
        assert oci(oci_binary, runtime_root, "delete", "--force", cid).returncode == 0
    assert not lost, f"SIGTERM lost in rounds {lost} of 20"


def test_poststart_hooks_see_the_program_already_running(oci_binary, runtime_root, bundle_factory, unique_id,
                                                         tmp_path):
    log = tmp_path / "log"
    hook = write_script(tmp_path / "hook.sh", f"""#!/bin/sh
pid=$(sed 's/.*"pid":\\([0-9]*\\).*/\\1/')
echo "$(cat /proc/$pid/comm) $(readlink /proc/$pid/exe)" >> {log}
""")
    bundle = bundle_factory(["sleep", "30"])
    # The startContainer hook runs between the handshake and execve: poststart comes after both.
    edit_config(bundle, lambda cfg: cfg.__setitem__("hooks", {
        "poststart": [{"path": hook}], "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.2"]}]}))
    r = oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    comm, exe = log.read_text().split()
    assert comm == "sleep" and exe.endswith("busybox"), (comm, exe)
    assert state(oci_binary, runtime_root, unique_id)["status"] == "running"


def test_state_says_created_until_start_and_running_after(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id).returncode == 0
    st = state(oci_binary, runtime_root, unique_id)
    assert st["status"] == "created"
    assert open(f"/proc/{st['pid']}/comm").read().strip() != "sleep"
    assert oci(oci_binary, runtime_root, "start", unique_id).returncode == 0
    st = state(oci_binary, runtime_root, unique_id)
    assert st["status"] == "running"
    assert open(f"/proc/{st['pid']}/comm").read().strip() == "sleep"


def test_a_start_killed_during_start_container_hooks_leaves_a_consistent_state(
        oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"])
    edit_config(bundle, lambda cfg: cfg.__setitem__(
        "hooks", {"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "1"]}]}))
    assert oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id).returncode == 0
    pid = state(oci_binary, runtime_root, unique_id)["pid"]
    p = subprocess.Popen([oci_binary, "--root", runtime_root, "start", unique_id], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    fifo = os.path.join(runtime_root, unique_id, "exec.fifo")
    while _children_comm(pid) != ["sleep"] or os.path.exists(fifo):  # start has read the init's byte
        assert time.monotonic() < deadline, "the startContainer hook never ran"
        time.sleep(0.01)
    p.kill()  # while the hook runs
    p.wait()
    deadline = time.monotonic() + 10
    while open(f"/proc/{pid}/comm").read().strip() != "sleep":
        assert time.monotonic() < deadline, "the program never ran"
        time.sleep(0.02)
    assert state(oci_binary, runtime_root, unique_id)["status"] == "running"
    r = oci(oci_binary, runtime_root, "start", unique_id, timeout=10)
    assert r.returncode != 0 and "cannot start an already running container" in r.stderr


def _children_comm(pid: int) -> list[str]:
    try:
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        return [open(f"/proc/{k}/comm").read().strip() for k in kids]
    except OSError:
        return []


def test_failing_execve_is_reported_as_runc_reports_it(oci_binary, runtime_root, bundle_factory, unique_id):
    """An executable the kernel cannot run (ENOEXEC): runc's init prints `exec PATH: exec format
    error` on the container's stderr and exits 1; `start` itself succeeds."""
    bundle = bundle_factory(["/garbage"])
    write_script(os.path.join(bundle, "rootfs", "garbage"), "\x00\x01\x02 not a program\n")
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "exec /garbage: exec format error", r.stderr
    cid = unique_id + "-b"
    assert oci(oci_binary, runtime_root, "create", "-b", bundle, cid).returncode == 0
    r = oci(oci_binary, runtime_root, "start", cid)
    assert r.returncode == 0, r.stderr
    assert wait_status(oci_binary, runtime_root, cid, "stopped")["status"] == "stopped"


def test_a_non_root_program_starts_under_a_callers_umask_of_077(oci_binary, runtime_root, bundle_factory, unique_id):
    """The init opens exec.fifo after it became the process's user: the state dir must stay
    searchable (0711) whatever the caller's umask."""
    bundle = bundle_factory(["id", "-u"], uid=1000, gid=1000)
    r = subprocess.run([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id], capture_output=True,
                       text=True, timeout=60, preexec_fn=lambda: os.umask(0o077))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000"]


def test_fds_are_closed_before_seccomp_in_run_and_exec(oci_binary, runtime_root, bundle_factory, unique_id):
    """Under a profile that denies close_range, closing fds one by one (Python's fallback) is one
    syscall per possible fd, seconds with a high RLIMIT_NOFILE: they must be closed before the
    filter is loaded. The profile kills whoever calls close() on an fd number >= 64 under it."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["close"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 0, "value": 64, "op": "SCMP_CMP_GE"}]}]}
    bundle = bundle_factory(["sleep", "30"], uid=1000, gid=1000)
    edit_config(bundle, lambda cfg: cfg["linux"].__setitem__("seccomp", profile))
    t0 = time.monotonic()
    r = oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert state(oci_binary, runtime_root, unique_id)["status"] == "running"
    r = oci(oci_binary, runtime_root, "exec", unique_id, "true")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 5


# -- item 5: startContainer hooks are confined like the program -----------------------------


def test_start_container_hooks_run_under_the_containers_seccomp_filter_and_user(
        oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    bundle = bundle_factory(["true"], uid=1000, gid=1000,
                            mounts=[{"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]},
                                    {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                                     "options": ["mode=1777"]}])
    write_script(os.path.join(bundle, "rootfs", "probe.sh"),
                 "#!/bin/sh\nif mkdir /scratch/x 2>/dev/null; then r=allowed; else r=denied; fi\n"
                 "echo \"$r $(id -u)\" > /out/result\n")
    edit_config(bundle, lambda cfg: (
        cfg.__setitem__("hooks", {"startContainer": [{"path": "/probe.sh"}]}),
        cfg["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})))
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert (out / "result").read_text().split() == ["denied", "1000"]


# -- item 10: hooks ----------------------------------------------------------------------


def test_poststart_and_poststop_hooks_go_on_after_a_failing_hook(oci_binary, runtime_root, bundle_factory,
                                                                 unique_id, tmp_path):
    log = tmp_path / "log"
    hook = write_script(tmp_path / "hook.sh", f"#!/bin/sh\necho $1 >> {log}\nexit $2\n")
    bundle = bundle_factory(["true"])
    edit_config(bundle, lambda cfg: cfg.__setitem__("hooks", {
        kind: [{"path": hook, "args": ["hook.sh", f"{kind}-1", "3"]}, {"path": hook, "args": ["hook.sh", f"{kind}-2", "0"]}]
        for kind in ("poststart", "poststop")}))
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert log.read_text().split() == ["poststart-1", "poststart-2", "poststop-1", "poststop-2"]
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2 and "poststart hook #0" in warnings[0] and "poststop hook #0" in warnings[1], r.stderr


def test_hooks_run_in_runcs_working_directories(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    """runc: createContainer in the container's root (its host path, in the container's mount
    namespace, before pivot_root), createRuntime and prestart in the bundle."""
    log = tmp_path / "log"
    hook = write_script(tmp_path / "hook.sh", f"#!/bin/sh\necho \"$1 $(pwd) $(cat)\" >> {log}\n")
    bundle = bundle_factory(["true"])
    edit_config(bundle, lambda cfg: cfg.__setitem__("hooks", {
        kind: [{"path": hook, "args": ["hook.sh", kind]}] for kind in ("prestart", "createRuntime", "createContainer")}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id], cwd=elsewhere,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    seen = {line.split()[0]: (line.split()[1], json.loads(line.split(" ", 2)[2])) for line in log.read_text().splitlines()}
    assert seen["prestart"][0] == bundle and seen["createRuntime"][0] == bundle
    assert seen["createContainer"][0] == os.path.join(bundle, "rootfs")
    assert all(s["status"] == "creating" for _, s in seen.values())


# -- item 7: a frozen cgroup --------------------------------------------------------------


def test_create_in_a_frozen_v1_cgroup_fails_with_a_clear_error(oci_binary, runtime_root, bundle_factory, unique_id):
    from rongqi.linux import cgroups

    if not os.path.isdir("/sys/fs/cgroup/freezer"):
        pytest.skip("no v1 freezer hierarchy on this host")
    path = f"/rongqi-test/{unique_id}-frozen"
    d = "/sys/fs/cgroup/freezer" + path
    os.makedirs(d)
    try:
        with open(d + "/freezer.state", "w") as f:
            f.write("FROZEN")
        bundle = bundle_factory(["true"], cgroups_path=path)
        try:
            r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("create hung on a frozen cgroup")
        assert r.returncode == 1
        assert "container's cgroup unexpectedly frozen" in r.stderr and d in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(runtime_root, unique_id))
        # Not ours: the frozen cgroup stays as it was; nothing of ours is left in the others.
        assert open(d + "/freezer.state").read().strip() == "FROZEN"
        cg = cgroups.Cgroup.open(path)
        assert [k for k, v in cg.dirs.items() if os.path.isdir(v)] == ["freezer"]
    finally:
        with open(d + "/freezer.state", "w") as f:
            f.write("THAWED")
        os.rmdir(d)


def test_frozen_v2_cgroup_and_frozen_ancestors_are_seen(unique_id):
    """cgroup.freeze=1 on the cgroup or on an ancestor (v2 freezes descendants too)."""
    from rongqi.linux import cgroups

    unified = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    top = f"{unified}/rongqi-test-{unique_id}"
    try:
        os.makedirs(top + "/child")
    except OSError as err:
        pytest.skip(f"cannot make a cgroup2 directory here: {err}")
    try:
        if not os.path.exists(top + "/cgroup.freeze"):
            pytest.skip("this kernel's cgroup2 has no freezer")
        mode = "v2" if unified == "/sys/fs/cgroup" else "hybrid"
        leaf = cgroups.Cgroup.open(f"/rongqi-test-{unique_id}/child/new", mode=mode)
        assert leaf.frozen_at() is None
        with open(top + "/cgroup.freeze", "w") as f:
            f.write("1")
        assert leaf.frozen_at() == top
        with open(top + "/cgroup.freeze", "w") as f:
            f.write("0")
        with open(top + "/child/cgroup.freeze", "w") as f:
            f.write("1")
        assert leaf.frozen_at() == top + "/child"
    finally:
        for p in (top + "/child", top):
            try:
                with open(p + "/cgroup.freeze", "w") as f:
                    f.write("0")
            except OSError:
                pass
            os.rmdir(p)


# -- item 8: the terminal belongs to the process's user -------------------------------------


def _console_server(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(20)
    return server


def _receive_master(server: socket.socket) -> int:
    conn, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    conn.close()
    return fds[0]


def test_terminal_is_owned_by_the_process_user_in_run_and_exec(oci_binary, runtime_root, open_dir, unique_id):
    from rongqi.image.busybox import make_bundle

    # In a user namespace, so that the owner is the container's view of the user (1000), not the host's.
    bundle = make_bundle(os.path.join(open_dir, "bundle"), ["sh"], terminal=True, uid=1000, gid=1000,
                         namespaces=USERNS, cgroups_path=f"/rongqi-test/{unique_id}")
    edit_config(bundle, lambda cfg: cfg["linux"].update(MAPS))
    sock = os.path.join(open_dir, "console.sock")
    server = _console_server(sock)
    masters = []
    try:
        r = oci(oci_binary, runtime_root, "create", "-b", bundle, "--console-socket", sock, unique_id)
        assert r.returncode == 0, r.stderr
        masters.append(_receive_master(server))
        assert oci(oci_binary, runtime_root, "start", unique_id).returncode == 0
        os.write(masters[0], b'stat -c "tty=%u:%g:%a" $(tty)\n')
        out = read_until(masters[0], b"tty=1000:")
        assert b"tty=1000:5:620" in out, out
        # exec -t: its own pty, owned by its own user
        pid_file = os.path.join(open_dir, "exec.pid")
        p = subprocess.Popen([oci_binary, "--root", runtime_root, "exec", "-t", "-d", "--console-socket", sock,
                              "--pid-file", pid_file, "--user", "1234:1234", unique_id,
                              "sh", "-c", 'stat -c "tty=%u:%g:%a" $(tty)'],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        masters.append(_receive_master(server))
        assert p.wait(30) == 0, p.stderr.read()
        p.stderr.close()
        out = read_until(masters[1], b"tty=1234:")
        assert b"tty=1234:5:620" in out, out
        # Reparented to the test (a subreaper): reap it, or the container's init waits for it.
        os.waitpid(int(open(pid_file).read()), 0)
    finally:
        server.close()
        for m in masters:
            os.close(m)
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)


def test_pipe_stdio_is_given_to_the_process_user(oci_binary, runtime_root, bundle_factory, unique_id):
    """As runc does for stdio: a non-root program can reopen its own stdout (/dev/stdout)."""
    bundle = bundle_factory(["sh", "-c", "echo via-path > /dev/stdout; echo rc=$?"], uid=1000, gid=1000)
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["via-path", "rc=0"], (r.stdout, r.stderr)


# -- item 12: user-namespaced bind mounts opened by the host's root -------------------------


def test_bind_source_unreachable_by_the_user_namespace_root_still_mounts(oci_binary, runtime_root, open_dir,
                                                                          unique_id):
    from rongqi.image.busybox import make_bundle

    private = os.path.join(open_dir, "private")
    os.mkdir(private, 0o700)  # host root's: the container's root (host uid 100000) cannot pass it
    shared = os.path.join(private, "shared")
    os.mkdir(shared, 0o755)
    with open(os.path.join(shared, "f"), "w") as f:
        f.write("hello\n")
    with open(os.path.join(private, "file"), "w") as f:
        f.write("file-too\n")
    os.chmod(os.path.join(private, "file"), 0o644)
    bundle = make_bundle(os.path.join(open_dir, "bundle"), ["sh", "-c", "cat /data/f /one; touch /data/g 2>/dev/null && echo writable || echo read-only"],
                         namespaces=USERNS,
                         cgroups_path=f"/rongqi-test/{unique_id}",
                         mounts=[{"destination": "/data", "type": "bind", "source": shared, "options": ["rbind", "ro"]},
                                 {"destination": "/one", "type": "bind", "source": os.path.join(private, "file"),
                                  "options": ["bind", "ro"]}])
    edit_config(bundle, lambda cfg: cfg["linux"].update(MAPS))
    # The mountpoints exist: the container's root may not create them in a root-owned rootfs.
    os.mkdir(os.path.join(bundle, "rootfs", "data"))
    open(os.path.join(bundle, "rootfs", "one"), "w").close()
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello", "file-too", "read-only"]
