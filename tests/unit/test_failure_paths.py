"""Every failure point of `rongqi-oci create` and `exec`, through the fault-injecting fake kernel
(fault_kernel.py; no root needed): for each call the runtime, its helper and the container's
init make, in the order of a real create, run the command again with that call failing, and
hold the runtime to its promise: one clear line on stderr (`rongqi-oci: ...`, naming the
kernel's reason), runc's exit code (1; exec 255), and nothing left: no state dir, cgroup, mount
in the host's namespace, fd or process (as the fake journalled them).
"""

from __future__ import annotations

import errno as E
import os
import signal

import pytest

import fault_kernel as fk
from rongqi.linux import cgroups, exeguard
from rongqi.linux import seccomp as seccomp_mod
from rongqi.linux import syscall as sysc
from rongqi.oci import cli
from rongqi.oci import statedir as statemod

# The modules whose `os` calls are the runtime's own (FaultyOs stands in for os there).
RUNTIME_MODULES = ("rongqi.oci.creation", "rongqi.oci.spawn", "rongqi.oci.init", "rongqi.oci.execution",
                   "rongqi.oci.protocol", "rongqi.oci.statedir", "rongqi.linux.rootfs", "rongqi.linux.namespaces",
                   "rongqi.linux.forking", "rongqi.oci.hooks")


def _spec(rootfs: str) -> dict:
    return {
        "ociVersion": "1.2.0",
        "root": {"path": rootfs, "readonly": True},
        "hostname": "box",
        "process": {
            "args": ["sh", "-c", "true"], "cwd": "/", "env": ["PATH=/usr/bin:/bin"],
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [10]},
            "capabilities": {k: ["CAP_KILL", "CAP_NET_BIND_SERVICE"] for k in
                             ("bounding", "effective", "permitted", "inheritable", "ambient")},
            "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
            "oomScoreAdj": 100,
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
            {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]},
        ],
        "hooks": {"prestart": [{"path": "/bin/true"}]},
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "uts", "ipc", "network", "cgroup")],
            "maskedPaths": ["/proc/keys"],
            "readonlyPaths": ["/proc/sys"],
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "resources": {"pids": {"limit": 100}},
            "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]},
        },
    }


def _fds() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the listing's own fd
    return out


_children = fk._children


class Env:
    """One bundle, one runtime root, and the fakes patched in; run() arms a fault and runs argv."""

    def __init__(self, tmp_path, monkeypatch, capfd):
        self.tmp = tmp_path
        self.mp = monkeypatch
        self.capfd = capfd
        self.root = str(tmp_path / "run")
        self.bundle = tmp_path / "bundle"
        self.rootfs = self.bundle / "rootfs"
        self._new_rootfs()
        from rongqi import fastjson

        (self.bundle / "config.json").write_text(fastjson.dumps(_spec(str(self.rootfs))))
        self.runs = 0
        import sys

        self.modules = [sys.modules[m] for m in RUNTIME_MODULES if __import__(m) or True]
        monkeypatch.setattr(cgroups, "Cgroup", fk.FakeCgroup)
        monkeypatch.setattr(fk.FakeCgroup, "existing", set())
        # The helper re-execs through a protected interpreter only when ours is not: a real
        # execve would leave the fakes behind (spawn's re-exec has its own tests).
        monkeypatch.setattr(exeguard, "reexec_target", lambda: None)
        # libseccomp's compile runs on the host before the clone; the fake loads what it gets.
        monkeypatch.setattr(seccomp_mod, "compile_filter", lambda profile, *a, **kw: "bpf")
        monkeypatch.delenv("RONGQI_DEBUG", raising=False)

    def _new_rootfs(self) -> None:
        # The init makes mount points, device nodes (plain files here) and links in the rootfs
        # for real: each run starts from the same one, so that it makes the same calls.
        import shutil

        shutil.rmtree(self.rootfs, ignore_errors=True)
        for d in ("proc", "sys", "dev", "tmp"):
            (self.rootfs / d).mkdir(parents=True)

    def run(self, argv: list[str], fault: tuple[str, int] | None = None):
        """(exit code, stderr, journal) of `rongqi-oci --root R ARGV...` with fault armed."""
        self.runs += 1
        if argv[0] == "create":
            self._new_rootfs()
        j = fk.Journal(str(self.tmp / f"journal.{self.runs}"), fault)
        self.mp.setattr(sysc, "SYSCALLS", fk.FaultySyscalls(j))
        fos = fk.FaultyOs(j)
        for m in self.modules:
            self.mp.setattr(m, "os", fos)
        fk.FakeCgroup.journal = j
        self.capfd.readouterr()
        try:
            code = cli.main(["--root", self.root, *argv])
        finally:
            for m in self.modules:
                self.mp.setattr(m, "os", os)
        calls = j.calls()
        j.close()
        self.journal_path = j.path
        return code, self.capfd.readouterr().err, calls

    def wait_for_fifo_open(self) -> list[fk.Call]:
        """The journal once the init has opened exec.fifo (create returns just before that)."""
        import time

        deadline = time.monotonic() + 30
        while True:
            j = fk.Journal(self.journal_path)
            calls = j.calls()
            j.close()
            if any(_is_fifo_open(c) for c in calls):
                return calls
            assert time.monotonic() < deadline, "the init never opened exec.fifo"
            time.sleep(0.01)


@pytest.fixture
def env(tmp_path, monkeypatch, capfd):
    import threading

    old_pipe = signal.getsignal(signal.SIGPIPE)
    old_umask = os.umask(0o022)
    os.umask(old_umask)
    # The runtime as the engine runs it in `rongqi serve`: a process with other threads (what
    # it does after a failure must not depend on being alone).
    done = threading.Event()
    other = threading.Thread(target=done.wait, daemon=True)
    other.start()
    yield Env(tmp_path, monkeypatch, capfd)
    done.set()
    other.join()
    signal.signal(signal.SIGPIPE, old_pipe)
    os.umask(old_umask)


def _is_fifo_open(c: fk.Call) -> bool:
    # The init's reopen of exec.fifo for the start handshake: its O_PATH fd's number, opened
    # under its own /proc/PID/fd (it holds no path of the host's state dir).
    return c.name == "open" and c.detail.split(" ", 1)[0].isdigit()


def _points(calls: list[fk.Call], since: int = 0) -> list[tuple[str, int]]:
    return [(c.name, c.n) for c in calls[since:] if c.name not in fk.NOTES]


def _kill_init(root: str, cid: str) -> None:
    """Remove a container this test made (its init, state dir) and anything a fault left."""
    d = os.path.join(root, cid)
    if os.path.exists(os.path.join(d, statemod.STATE_FILE)):
        st = statemod.load(root, cid)
        if st.init_alive():
            os.kill(st.pid, signal.SIGKILL)
    statemod.remove_dir(d)
    for p in _children():
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(p, 0)
    fk.FakeCgroup.existing.clear()


def _leftovers(env: Env, cid: str, calls: list[fk.Call], fds_before: dict[int, str],
               keep_pids: tuple[int, ...] = ()) -> list[str]:
    """What a failed command left behind; [] when nothing."""
    left = []
    if cid and os.path.exists(os.path.join(env.root, cid)):
        left.append(f"state dir {cid}")
    if cid and fk.FakeCgroup.existing:
        left.append(f"cgroups {sorted(fk.FakeCgroup.existing)}")
    host_mounts = [c for c in calls if c.name in ("mount", "umount2", "pivot_root", "mount_setattr")
                   and not c.private_mnt]
    if host_mounts:
        left.append(f"mounts in the host's namespace: {host_mounts}")
    me = os.getpid()
    alive = sorted({c.pid for c in calls if c.pid != me and c.pid not in keep_pids
                    and statemod.proc_stat(c.pid)[0] == c.start})
    if alive:
        left.append(f"processes {alive}")
    children = [p for p in _children() if p not in keep_pids]
    if children:
        left.append(f"children {children}")
    fds = _fds()
    if fds != fds_before:
        new = {fd: t for fd, t in fds.items() if fds_before.get(fd) != t}
        left.append(f"fds {new}")
    return left


def _check_failure(code: int, err: str, fault: tuple[str, int], want_code: int) -> list[str]:
    problems = []
    lines = err.splitlines()
    if code != want_code:
        problems.append(f"exit code {code}, not {want_code}")
    if len(lines) != 1 or not lines[0].startswith("rongqi-oci: ") or "Traceback" in err:
        problems.append(f"stderr is not one rongqi-oci line: {err!r}")
    reason = os.strerror(fk.ERRNO.get(fault[0], E.EPERM))
    if reason not in err:
        problems.append(f"the kernel's reason ({reason!r}) is not said: {err!r}")
    return problems


def test_the_fake_journals_the_whole_create_sequence_across_three_processes(env):
    code, err, calls = env.run(["create", "-b", str(env.bundle), "c1"])
    assert (code, err) == (0, "")
    try:
        names = [c.name for c in calls]
        # the runtime, its helper and the init (the helper's clone) all journal
        assert len({c.pid for c in calls}) == 3
        for want in ("mkdir", "mkfifo", "cgroup.create", "cgroup.apply", "fork", "cgroup.add_pid", "setrlimit",
                     "write_file", "clone", "prctl", "sethostname", "mount", "pivot_root", "close_range",
                     "capbset_drop", "capset", "ambient", "seccomp", "ioprio_set"):
            assert want in names, want
        # the init's mounts are all made in its own mount namespace
        assert all(c.private_mnt for c in calls if c.name == "mount")
    finally:
        _kill_init(env.root, "c1")
        fk.FakeCgroup.existing.clear()


def test_create_fails_cleanly_at_every_call(env):
    argv = ["create", "-b", str(env.bundle), "c1"]
    code, err, calls = env.run(argv)
    assert (code, err) == (0, "")
    calls = env.wait_for_fifo_open()
    _kill_init(env.root, "c1")
    points = _points(calls)
    fifo_open = next((c.name, c.n) for c in calls if _is_fifo_open(c))
    assert len(points) > 80
    problems: dict[tuple[str, int], list[str]] = {}
    survived = []
    for fault in points:
        fds_before = _fds()
        try:
            code, err, calls = env.run(argv, fault)
            if code == 0:
                survived.append(fault)  # create's work was done when the fault came (below)
            elif not any(c.failed for c in calls):
                problems[fault] = ["failed, but not at the fault"]
            else:
                found = _check_failure(code, err, fault, 1) + _leftovers(env, "c1", calls, fds_before)
                if found:
                    problems[fault] = found
        finally:
            # clean up for the next point, so one fault's leftovers do not fail the others
            _kill_init(env.root, "c1")
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
    # Only the init's last step comes after create returned: its open of exec.fifo (where it
    # waits for start). Failing there, it says why on the container's stderr and exits; the
    # container is then stopped, as runc's when its init dies after create.
    assert survived == [fifo_open]


def test_exec_fails_cleanly_at_every_call(env):
    code, err, _ = env.run(["create", "-b", str(env.bundle), "c1"])
    assert (code, err) == (0, "")
    try:
        env.wait_for_fifo_open()
        init = statemod.load(env.root, "c1").pid
        argv = ["exec", "-d", "c1", "true"]

        def reap_exec(calls: list[fk.Call]) -> None:
            for c in calls:  # the process exec started (and left running, with -d)
                if c.name == "execve" and not c.failed:
                    os.waitpid(c.pid, 0)

        code, err, calls = env.run(argv)
        assert (code, err) == (0, "")
        reap_exec(calls)
        names = [c.name for c in calls]
        for want in ("fork", "cgroup.add_pid", "prctl", "clone", "close_range", "capset", "seccomp", "execve"):
            assert want in names, want
        points = _points(calls)
        assert len(points) > 25
        problems: dict[tuple[str, int], list[str]] = {}
        for fault in points:
            fds_before = _fds()
            code, err, calls = env.run(argv, fault)
            reap_exec(calls)
            found = _check_failure(code, err, fault, 255)
            found += _leftovers(env, "", calls, fds_before, keep_pids=(init,))
            if fk.FakeCgroup.existing != {"/rongqi/c1"}:
                found.append(f"the container's cgroup changed: {fk.FakeCgroup.existing}")
            if statemod.load(env.root, "c1").status() != "created":
                found.append("the container is no longer created")
            if found:
                problems[fault] = found
                for p in _children():
                    if p != init:
                        os.kill(p, signal.SIGKILL)
                        os.waitpid(p, 0)
        assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
    finally:
        _kill_init(env.root, "c1")
