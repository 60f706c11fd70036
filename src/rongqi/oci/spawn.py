"""A process born in a container's namespaces and cgroup, for create (the init) and exec: the
helper process, its re-exec through a protected interpreter, the stdio it installs, and the
pid handed to the caller (--pid-file, --pidfd-socket).

The order of the messages between the runtime, the helper and the child is oci/protocol.py's.
"""

from __future__ import annotations

import _thread
import gc
import os

from rongqi.errors import RongqiError, UsageError
from rongqi.errors import os_error_line as describe_os_error
from rongqi.linux import namespaces
from rongqi.linux import forking
from rongqi.linux import syscall as sysc
from rongqi.oci import protocol as proto
from rongqi.oci.statedir import write_private

_FORK_LOCK = _thread.allocate_lock()  # see spawn_in_cgroup

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from rongqi.linux.cgroups import Cgroup
    from rongqi.linux.exeguard import Reexec
    from rongqi.oci.spec import Spec

    class Cleanup(Protocol):
        """create's record of what to undo (create._Cleanup): the processes made so far."""

        helper: int
        pid: int

    Joins = list[tuple[str, str]]  # (namespace kind, path), in the order they are joined


def preload_for_child(spec: Spec) -> None:
    """Import now what the init (or an exec'd process) imports after it changed its root.

    After pivot_root or a join of the container's mount namespace the host's
    Python library is out of reach: every module the child needs must already
    be in sys.modules.
    """
    # Every write or read under /proc in the container's view goes through a verified procfs
    # handle (labels, sysctls, setgroups): see linux/procfs.py.
    import rongqi.linux.procfs  # noqa: F401

    proc = spec.process
    if proc is not None:
        if proc.scheduler or proc.io_priority or spec.linux.personality is not None:
            import rongqi.linux.sched  # noqa: F401
        if proc.apparmor_profile or proc.selinux_label:
            import rongqi.linux.lsm  # noqa: F401
        if proc.capabilities is not None:
            import rongqi.linux.caps  # noqa: F401
        if proc.terminal:
            import rongqi.oci.terminal  # noqa: F401
        if proc.rlimits:
            import resource  # noqa: F401
    if spec.linux.seccomp is not None:
        import rongqi.linux.seccomp  # noqa: F401
    if spec.hooks.get("startContainer") or spec.hooks.get("createContainer"):
        import rongqi.oci.hooks  # noqa: F401
        import select  # noqa: F401
        import time  # noqa: F401


def spawn_in_cgroup(sc: sysc.Syscalls, cg: Cgroup | None, flags: int, early_joins: Joins,
                    prepare: Callable[[], None], after_joins: Callable[[], None] | None,
                    child_main: Callable[[], None], *, close_in_helper: tuple[int, ...] = (),
                    cleanup: Cleanup | None = None, stdio: tuple[int, int, int] | None = None,
                    keep_fds: tuple[int, ...] | None = None,
                    meanwhile: Callable[[], None] | None = None) -> int:
    """Start a process in a container's namespaces, born in its cgroup; return its pid.

    A helper (a fork of the runtime) is moved into the cgroup while it imports ctypes and
    runs prepare() (both take milliseconds: they overlap with the migration, which waits for
    an RCU grace period). Then it joins early_joins (user, pid, time: they apply only to
    children), runs after_joins(), and clones child_main() with flags | CLONE_PARENT, so that
    the new process is our child. Used by create (the init) and exec.

    Every process cloned here runs, until its execve, this process's executable: the host's
    Python interpreter, which a container must never be able to open for writing
    (CVE-2019-5736 class, see linux/exeguard.py). When ours is not protected (a launcher
    started from a writable path, a caller's own interpreter), the helper re-execs through
    a protected interpreter first (it costs an interpreter start): prepare, after_joins and
    child_main then travel to it (oci/jobcodec.py: bound methods of plain values).

    close_in_helper: our ends of the channel to the new process, the first the read end of the
    pipe it reports on (it also names a process the helper cloned but could not report).

    meanwhile: run once the helper is in the cgroup and told to go on, while it starts the
    process (create writes the cgroup's limits there); if it fails, its error is raised once
    the process is started and its pid known (create's cleanup then stops it).

    stdio: the fds the new process gets as 0, 1, 2; they become the helper's own right after
    the fork (install_stdio), never this process's: a threaded caller (the engine in
    `rongqi serve`) may run several creates and execs at once, each with its own stdio.
    keep_fds: the fds above 2 the job needs; the helper closes every other one at once.
    """
    from rongqi.linux import exeguard

    try:
        reexec = exeguard.reexec_target()
    except OSError as err:
        raise RongqiError(f"cannot protect the runtime's executable from the container: {describe_os_error(err)}") from None
    fds: list[int] = []
    try:
        # The helper's ends of these pipes exist in this process only under the lock: a threaded
        # caller's other helpers (forks) must not inherit them. A spawn whose report pipe's write
        # end another spawn's child held would never see the EOF it waits for, while that child
        # waits for its own "go", which comes after its spawn's EOF: a deadlock.
        with _FORK_LOCK:
            rep_r, rep_w = os.pipe2(os.O_CLOEXEC)  # helper -> runtime: "ok PID" or "error TEXT"
            fds += (rep_r, rep_w)
            go_r, go_w = os.pipe2(os.O_CLOEXEC)    # runtime -> helper: in the cgroup now
            fds += (go_r, go_w)
            mid = forking.fork()
            if mid != 0:
                fds = [rep_r, go_w]
                os.close(rep_w)
                os.close(go_r)
    except BaseException:
        for fd in fds:
            os.close(fd)
        if reexec is not None:
            reexec.close()
        raise
    if mid == 0:  # the helper: never returns
        # No collections at all in the helper and the init it clones: both are short-lived,
        # and the init closes the fds that objects made since the fork may still name.
        gc.disable()
        try:
            for fd in (rep_r, go_w, *close_in_helper):
                os.close(fd)
            if stdio is not None:
                install_stdio(stdio)
            if keep_fds is not None:
                # Nothing else of this process goes on: a threaded caller's other fds (another
                # container's pipes, a state dir's lock, a cgroup.procs being written) would
                # stay open in the new process, visible in its container until it closes them.
                keep = (rep_w, go_r, *keep_fds) + ((reexec.fd,) if reexec is not None else ())
                sc.close_fds_from(3, tuple(fd for fd in keep if fd >= 0))
            if reexec is not None:
                _reexec_helper(reexec, (rep_w, go_r, sc, flags, early_joins, prepare, after_joins, child_main))
        except BaseException as err:  # noqa: BLE001 - reported to the runtime
            _helper_failed(rep_w, err, early_joins)
        _helper(rep_w, go_r, sc, flags, early_joins, prepare, after_joins, child_main)
    if reexec is not None:
        reexec.close()
    if cleanup is not None:
        cleanup.helper = mid
    join_error = None
    try:
        if cg is not None:
            try:
                cg.add_pid(mid)
            except OSError as err:  # maybe the helper already failed: its report says why
                join_error = err
        if join_error is None:
            try:
                os.write(go_w, proto.HELPER_GO)
            except BrokenPipeError:
                pass  # the helper failed early: its report says why
            except OSError as err:
                join_error = err  # the helper reads EOF instead, and exits without a word
    finally:
        os.close(go_w)
    pending: BaseException | None = None
    if join_error is None and meanwhile is not None:
        try:
            meanwhile()
        except BaseException as err:  # noqa: BLE001 - raised below, once the pid is known
            pending = err
    data = b""
    try:
        while True:
            chunk = os.read(rep_r, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(rep_r)
        os.waitpid(mid, 0)
        if cleanup is not None:
            cleanup.helper = 0
    word, _, text = data.decode(errors="replace").partition(" ")
    if word != proto.HELPER_OK:
        if close_in_helper:
            _reap_lost_child(mid, close_in_helper[0])
        if pending is not None:
            raise pending  # the limits' error is the cause if there is one (a pids.max the clone hit)
        if text or join_error is None:
            raise RongqiError(text or "the runtime's helper process died before it started the process")
        raise join_error
    pid = int(text)
    if cleanup is not None:
        cleanup.pid = pid
    if pending is not None:
        raise pending
    return pid


def _reap_lost_child(helper: int, report_r: int) -> None:
    """Kill and reap a process the helper cloned but did not report (it died, or its report
    failed, between the clone and the write): born with CLONE_PARENT, it is our child, waiting
    on the sync channel, and would stay a zombie of ours (of a long-lived engine's, too).

    Found among our children by the channel: report_r is our read end of the pipe it reports
    on, and it holds that pipe's write end only (the helper closed our ends before its clone).
    Any other process holding the pipe is a fork another thread of ours made meanwhile (the
    engine serving the Docker API runs creates in threads), or that fork's clone: forked from
    us, it holds both ends. Reading another process's fds needs it dumpable or CAP_SYS_PTRACE
    (root has it); rootless, a non-dumpable one (exec's) is not found, and stays until we exit.
    """
    try:
        link = os.readlink(f"/proc/self/fd/{report_r}")
    except OSError:
        return
    me = os.getpid()
    children: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            try:
                with open(f"/proc/{me}/task/{tid}/children", "rb") as f:
                    children.update(int(p) for p in f.read().split())
            except OSError:
                pass
    except OSError:
        return
    for pid in children - {helper}:
        modes = set()
        try:
            for name in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{name}") != link:
                        continue
                    with open(f"/proc/{pid}/fdinfo/{name}", "rb") as f:
                        flags = next(int(line.split()[1], 8) for line in f if line.startswith(b"flags:"))
                except (OSError, StopIteration, ValueError):
                    continue
                modes.add(flags & os.O_ACCMODE)
        except OSError:
            continue
        if modes == {os.O_WRONLY}:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def check_stdio(stdio: tuple[int, int, int]) -> None:
    """The caller's stdio fds are open (a bad one fails here, with its number, not in the helper)."""
    if len(stdio) != 3:
        raise UsageError(f"stdio: expected 3 fds (stdin, stdout, stderr), got {len(stdio)}")
    for i, fd in enumerate(stdio):
        try:
            os.fstat(fd)
        except (OSError, TypeError, ValueError) as err:
            raise UsageError(f"stdio[{i}]: fd {fd!r} is not open "
                             f"({getattr(err, 'strerror', None) or err})") from None


def install_stdio(stdio: tuple[int, int, int]) -> None:
    """In a forked child: make stdio its fds 0, 1, 2 (inheritable; the rest stay as they are).

    Each is first duplicated above 2, as a target may be another's source ((1, 0, 2), or a
    caller whose fd 0 is closed); then dup2'd into place, which also clears close-on-exec.
    """
    if tuple(stdio) == (0, 1, 2):
        return
    import fcntl

    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in stdio]
    for i, fd in enumerate(high):
        os.dup2(fd, i)
    for fd in high:
        os.close(fd)


def _helper(rep_w: int, go_r: int, sc: sysc.Syscalls, flags: int, early_joins: Joins,
            prepare: Callable[[], None], after_joins: Callable[[], None] | None,
            child_main: Callable[[], None]) -> None:
    """The helper's work (see spawn_in_cgroup); never returns."""
    try:
        sysc.kernel()
        prepare()
        if os.read(go_r, 16) != proto.HELPER_GO:
            os._exit(1)  # the runtime went away
        os.close(go_r)
        for kind, path in early_joins:
            namespaces.join(sc, kind, path)
        if after_joins is not None:
            after_joins()
        pid = sc.clone(flags | sysc.CLONE_PARENT)
        if pid == 0:
            os.close(rep_w)
            child_main()
            os._exit(1)  # child_main execs or exits; never fall back into the helper
        os.write(rep_w, f"{proto.HELPER_OK} {pid}".encode())
        os._exit(0)
    except BaseException as err:  # noqa: BLE001 - reported to the runtime
        _helper_failed(rep_w, err, early_joins)


def _helper_failed(rep_w: int, err: BaseException, early_joins: Joins | tuple[()]) -> None:
    from rongqi.oci.init import describe

    msg = str(err) if isinstance(err, RongqiError) else describe(err)
    if early_joins and isinstance(err, OSError):
        msg = f"cannot enter the container's namespaces: {msg}"
    try:
        os.write(rep_w, f"{proto.ERROR} {msg}".encode())
    finally:
        os._exit(1)


# The re-exec'd helper's program: argv[1] is the directory holding the rongqi package,
# argv[2] the fd of its job (a memfd), argv[3] the fd to report a failure on.
_REEXEC_BOOT = ("import sys\nsys.path.insert(0, sys.argv[1])\n"
                "from rongqi.oci.spawn import reexec_helper_main\n"
                "reexec_helper_main(int(sys.argv[2]), int(sys.argv[3]))\n")


_REEXEC_MODULES = ("rongqi.oci.", "rongqi.linux.", "rongqi.fastjson", "rongqi.errors")
# What the init's and exec's code import lazily from the standard library.
_REEXEC_STDLIB = frozenset(("socket", "_socket", "_signal", "select", "time", "resource", "ctypes", "fcntl"))


def _reexec_helper(reexec: Reexec, job: tuple[Any, ...]) -> None:
    """Become the helper again under the protected interpreter; returns only by raising.

    The fd table is kept as the fork left it: close-on-exec fds are made inheritable for
    the execve and marked again on the other side, so the helper (and the process it
    clones) holds exactly what it would have held without the re-exec.
    """
    from rongqi.oci import jobcodec

    cloexec = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd == reexec.fd:
            continue  # the sealed copy being exec'd: the new helper needs none of it
        try:
            if not os.get_inheritable(fd):
                os.set_inheritable(fd, True)
                cloexec.append(fd)
        except OSError:
            pass  # the directory listing's own fd, closed by now
    import sys

    # A forked helper holds every module the runtime had imported, and the init relies on that
    # after pivot_root (the host's library is then out of reach): import the same ones.
    modules = [m for m in sys.modules if m.startswith(_REEXEC_MODULES) or m in _REEXEC_STDLIB]
    payload = jobcodec.dumps((cloexec, modules, job))
    mfd = os.memfd_create("rongqi-helper-job", 0)
    view = memoryview(payload)
    while view:
        view = view[os.write(mfd, view):]
    pkg_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execve(reexec.path, [reexec.path, "-I", "-S", "-c", _REEXEC_BOOT, pkg_dir, str(mfd), str(job[0])],
              os.environ)


def reexec_helper_main(job_fd: int, rep_w: int) -> None:
    """The helper, re-exec'd under a protected interpreter (see spawn_in_cgroup): never returns."""
    try:
        import rongqi.fastjson  # noqa: F401 - the init's state json, after pivot_root
        from rongqi.oci import jobcodec
        import rongqi.oci.init  # noqa: F401

        data = b""
        while True:
            chunk = os.pread(job_fd, 1 << 20, len(data))
            if not chunk:
                break
            data += chunk
        os.close(job_fd)
        cloexec, modules, job = jobcodec.loads(data)
        for name in modules:
            try:
                __import__(name)
            except ImportError:
                pass  # one the runtime could load and we cannot: its absence shows where used
        if "rongqi.linux.caps" in modules:
            from rongqi.linux import caps

            caps.last_cap()  # read here, on the host's /proc, as the forked helper had it cached
        for fd in cloexec:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass
    except BaseException as err:  # noqa: BLE001 - reported to the runtime
        _helper_failed(rep_w, err, ())
    _helper(*job)


def write_pid_file(path: str, pid: int) -> None:
    # Atomically, as runc does: clients poll for the file and read it at once.
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    try:
        write_private(tmp, str(pid).encode())
        os.rename(tmp, path)
    except OSError as err:
        raise RongqiError(f"--pid-file {path}: cannot write: {err.strerror}") from None


def send_pidfd(sock_path: str, pid: int) -> None:
    import socket

    fd = os.pidfd_open(pid)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock_path)
            socket.send_fds(s, [b"pidfd"], [fd])
    except OSError as err:
        raise RongqiError(f"--pidfd-socket {sock_path}: {err.strerror or err}") from None
    finally:
        os.close(fd)
