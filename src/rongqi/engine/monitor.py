"""The per-container monitor: the small process that owns a container after the CLI returns.

Forked from the CLI (no exec, so no interpreter start on `run`), double-forked, session leader,
child subreaper, holding RUN/ID/monitor.lock for its whole life. It creates and starts the
runtime container, reports "started PID" (or the runtime's error) to the CLI over a pipe, then
owns the container: its stdio (pipes, or the pty master from a console socket), the log
writer, the attach socket, health-check timers, the restart policy, and at the end the exit
record (RUN/ID/exit.json), the runtime's delete, the snapshot's unmount and `--rm`.
"""

from __future__ import annotations

import os
import sys
import time

from rongqi.errors import RongqiError
from rongqi.linux import forking

TYPE_CHECKING = False  # typing is not imported: the slim monitor (see _reexec) does without it
if TYPE_CHECKING:
    from typing import Any

LOCK = "monitor.lock"
PID = "monitor.pid"
EXIT = "exit.json"
ATTACH = "attach"
PIDFILE = "pidfile"
RUNTIME_PID = "runtime.pid"

SIGCHLD = 17
SIGKILL = 9

# The pipe's messages, monitor -> CLI, one line each:
#   "started PID STARTED_NS"    the container's process runs
#   "error CODE MESSAGE"        create or start failed; CODE is the CLI's exit code (125/126/127)


class CommandError(RongqiError):
    """The runtime could not run the container's command: 126 (cannot invoke) or 127 (not found)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _ignore(signum: int, frame: object) -> None:
    """A signal the process shrugs off, while its children's programs get the default."""


def start_container(engine: Any, container: Any, *, attach: Any = None) -> None:
    """Fork the monitor, which creates and starts the runtime container; return once the
    container's process runs, with container.state's pid, monitor_pid, started_at and status
    set (the caller saves them under the container's lock). Raises the runtime's error.

    attach: a socket (one end of a socketpair) over which the monitor speaks the attach
    protocol from before the container starts, so that no output is missed; the monitor
    owns it from here on (the caller's copy is closed).
    """
    run_dir = container.run_dir
    os.makedirs(run_dir, 0o700, exist_ok=True)
    for stale in (EXIT, PIDFILE):
        try:
            os.unlink(os.path.join(run_dir, stale))
        except FileNotFoundError:
            pass
    pre = _take_preforked()
    if pre is not None:
        r = pre.go(container.id, attach)
    elif getattr(engine, "threaded", False) and _spawnable(engine):
        r = _spawn(engine, container, attach)
    else:
        r, w = os.pipe2(os.O_CLOEXEC)
        _flush()
        pid = forking.fork()
        if pid == 0:  # pragma: no cover - runs in the forked processes
            try:
                os.close(r)
                os.setsid()
                if forking.fork() != 0:
                    os._exit(0)
                Monitor(engine, container, w, attach).main()
                os._exit(0)
            except BaseException as err:  # noqa: BLE001 - reported to the CLI, which shows it
                try:
                    os.write(w, f"error 125 {_describe(err)}".encode())
                except OSError:
                    pass
                os._exit(1)
        os.close(w)
        os.waitpid(pid, 0)
    if attach is not None:
        attach.close()
    try:
        data = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    word, _, rest = data.decode(errors="replace").partition(" ")
    if word == "started":
        cpid, mpid, started = rest.split()[:3]
        from rongqi.oci.timefmt import rfc3339nano

        container.state.update(pid=int(cpid), monitor_pid=int(mpid),
                               started_at=rfc3339nano(int(started)), status="running")
        if _health_config(container.config):
            from rongqi.engine.health import initial

            container.state["health"] = initial()
        return
    if word == "error":
        code, _, msg = rest.partition(" ")
        if code in ("126", "127"):
            raise CommandError(msg, int(code))
        raise RongqiError(msg)
    raise RongqiError(f"the monitor of container {container.id} died before it started it")


def _spawnable(engine: Any) -> bool:
    """Whether a fresh interpreter can rebuild this engine's runtime (a name and a root, not
    an object a test handed in)."""
    from rongqi.engine.runtime import BinaryRuntime, InProcessRuntime

    return type(engine.runtime) in (InProcessRuntime, BinaryRuntime)


def _spawn(engine: Any, container: Any, attach: Any) -> int:
    """Start the monitor without forking this process: for a threaded caller (rongqi serve),
    where a fork keeps only the calling thread and with it every lock another thread held
    (a module being imported, a buffered stream's, the overlay's cwd lock): the child could
    wait on them forever. The monitor comes from the forker (MonitorForker: a single-threaded
    process the service started, which forks it at once) or, without one, from a fresh
    interpreter (subprocess forks and execs in C, running no Python in between) that forks it
    as start_container's fork path does and exits. Returns the report pipe's read end."""
    import subprocess

    from rongqi import fastjson

    r, w = os.pipe2(os.O_CLOEXEC)
    rt = engine.runtime
    doc = {"engine": {"root": engine.root, "runroot": engine.runroot, "runtime": rt.name,
                      "runtime_root": rt.root, "storage_mode": engine.storage_mode,
                      "registries_conf": engine.registries_conf},
           "container": {"id": container.id, "config": container.config,
                         "state": container.state}}
    fds = [w] + ([attach.fileno()] if attach is not None else [])
    forker = _forker
    if forker is not None and forker.start(doc, fds):
        os.close(w)
        return r
    doc.update(sys_path=sys.path, report=w,
               attach=attach.fileno() if attach is not None else -1)
    boot = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from rongqi.engine.monitor import spawned; spawned()")
    try:
        p = subprocess.Popen([sys.executable, "-I", "-S", "-c", boot, _package_parent()],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=fds,
                             start_new_session=True)
    except OSError:
        os.close(r)
        os.close(w)
        raise
    os.close(w)
    assert p.stdin is not None
    try:
        p.stdin.write(fastjson.dumps(doc).encode())
        p.stdin.close()
    except OSError:
        pass  # it died before reading: the report pipe says so (EOF, "died before it started")
    p.wait()
    return r


def _package_parent() -> str:
    import rongqi

    return os.path.dirname(os.path.dirname(os.path.abspath(rongqi.__file__)))


def _become_monitor(doc: dict, w: int, attach_fd: int) -> None:
    """In the process that is to be the monitor (already forked off): rebuild the engine and
    the container from doc, run the monitor, exit; an error goes to the report pipe."""
    try:
        import socket

        from rongqi.engine import Engine
        from rongqi.engine.records import Container

        e = doc["engine"]
        engine = Engine(e["root"], e["runroot"], e["runtime"], storage_mode=e["storage_mode"],
                        registries_conf=e["registries_conf"], runtime_root=e["runtime_root"])
        c = doc["container"]
        container = Container(engine.records, c["id"], c["config"], c["state"])
        attach = socket.socket(fileno=attach_fd) if attach_fd >= 0 else None
        Monitor(engine, container, w, attach).main()
        os._exit(0)
    except BaseException as err:  # noqa: BLE001 - reported to the caller, which shows it
        try:
            os.write(w, f"error 125 {_describe(err)}".encode())
        except OSError:
            pass
        os._exit(1)


def spawned() -> None:
    """The spawned interpreter's entry (see _spawn): the document on stdin, then fork the
    monitor and exit."""
    import json

    doc = json.loads(sys.stdin.buffer.read())
    sys.path[:] = doc["sys_path"]
    if forking.fork() != 0:
        os._exit(0)
    _become_monitor(doc, doc["report"], doc["attach"])


# The largest start document sent to the forker in one datagram (a container's config is a
# few KB; a bigger one goes the fresh interpreter's way, through a pipe).
_FORKER_MAX = 100_000


class MonitorForker:
    """A small single-threaded process that forks monitors for a threaded caller (rongqi
    serve starts one): spawned once (fork+exec in C), it imports what a monitor needs, then
    for each start document on its socketpair (with the report pipe and the attach socket as
    SCM_RIGHTS) forks: the child starts a session, forks the monitor and exits, as
    start_container's fork path does. It saves each start an interpreter's start-up; it ends
    when the caller closes its end (or dies)."""

    def __init__(self) -> None:
        import socket
        import subprocess
        import threading

        from rongqi import fastjson

        self.chan, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.chan.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * _FORKER_MAX)
        boot = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from rongqi.engine.monitor import forker_main; forker_main(int(sys.argv[2]))")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", boot, _package_parent(), str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=[theirs.fileno()],
                start_new_session=True)
        finally:
            theirs.close()
        self.lock = threading.Lock()
        self.alive = True
        self.chan.send(fastjson.dumps({"sys_path": sys.path}).encode())

    def start(self, doc: dict, fds: list) -> bool:
        """Ask for a monitor; False when the forker cannot take it (gone, or doc too big)."""
        import socket

        from rongqi import fastjson

        data = fastjson.dumps(doc).encode()
        if not self.alive or len(data) > _FORKER_MAX:
            return False
        with self.lock:
            try:
                socket.send_fds(self.chan, [data], fds)
            except OSError:
                self.alive = False
                return False
        return True

    def close(self) -> None:
        self.alive = False
        self.chan.close()
        try:
            self.proc.wait(10)
        except Exception:  # noqa: BLE001 - a forker stuck in a fork: it goes with the session
            self.proc.kill()
            self.proc.wait()


_forker: MonitorForker | None = None


def start_forker() -> MonitorForker | None:
    """Start the forker that _spawn uses (rongqi serve does, once); None if it cannot run."""
    global _forker
    if _forker is None:
        try:
            _forker = MonitorForker()
        except OSError:
            _forker = None
    return _forker


def stop_forker() -> None:
    global _forker
    f, _forker = _forker, None
    if f is not None:
        f.close()


def forker_main(fd: int) -> None:
    """The forker's loop (see MonitorForker)."""
    import json
    import socket

    chan = socket.socket(fileno=fd)
    try:
        first = json.loads(chan.recv(1 << 17))
        sys.path[:] = first["sys_path"]
        # What every monitor imports, once here instead of once per container.
        import rongqi.engine.attach  # noqa: F401
        import rongqi.engine.events  # noqa: F401
        import rongqi.engine.lifecycle  # noqa: F401
        import rongqi.engine.logs  # noqa: F401
        import rongqi.engine.records  # noqa: F401
        import rongqi.linux.rootfs  # noqa: F401
        import rongqi.oci.container  # noqa: F401
        import rongqi.oci.init  # noqa: F401
        import rongqi.storage.overlay  # noqa: F401
    except Exception:  # noqa: BLE001 - each monitor imports what it needs all the same
        pass
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(chan, 1 << 17, 2)
        except OSError:
            break
        if not msg:
            break  # the caller closed its end
        try:
            doc = json.loads(msg)
        except ValueError:
            for f in fds:
                os.close(f)
            continue
        pid = forking.fork()
        if pid == 0:  # pragma: no cover - the monitor's parent-to-be
            chan.close()
            os.setsid()
            if forking.fork() != 0:
                os._exit(0)
            _become_monitor(doc, fds[0], fds[1] if len(fds) > 1 else -1)
        for f in fds:
            os.close(f)
        os.waitpid(pid, 0)
    os._exit(0)


def _flush() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass


class Preforked:
    """A monitor forked before the container exists (`run`): it imports the runtime's modules
    on the other core while the CLI makes the container, then waits for "go ID" (with the
    foreground attach socket's fd) on a socketpair. Without a "go" (create failed, the CLI
    died) it reads EOF and exits, having made nothing."""

    def __init__(self, engine: Any):
        # _socket, not socket.py (whose import, with its enums and selectors, is ~2 ms of
        # the CLI's CPU): a socketpair and one sendmsg are all this side needs.
        import _socket

        self.chan, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.report_r, report_w = os.pipe2(os.O_CLOEXEC)
        _flush()
        pid = forking.fork()
        if pid == 0:  # pragma: no cover - the monitor-to-be
            try:
                self.chan.close()
                os.close(self.report_r)
                os.setsid()
                if forking.fork() != 0:
                    os._exit(0)
                _waiting_monitor(engine, theirs, report_w)
            finally:
                os._exit(0)
        theirs.close()
        os.close(report_w)
        # The intermediate child is reaped once the container is made (go, cancel), not now:
        # waiting here put its scheduling (setsid, fork, exit) on the CLI's path.
        self.middle = pid

    def _reap_middle(self) -> None:
        if self.middle:
            pid, self.middle = self.middle, 0
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def go(self, cid: str, attach: Any) -> int:
        """Start it on container cid; the report pipe's read end (the caller reads it)."""
        import _socket

        msg = f"go {cid}".encode()
        try:
            if attach is not None:
                fd = attach.fileno().to_bytes(4, sys.byteorder, signed=True)
                self.chan.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd)])
            else:
                self.chan.sendall(msg)
        finally:
            self.chan.close()
            self._reap_middle()
        return self.report_r

    def cancel(self) -> None:
        """No container after all: it exits on EOF; wait for that (its report pipe closes),
        so that nothing of this command outlives it."""
        self.chan.close()
        try:
            while os.read(self.report_r, 4096):
                pass
        finally:
            os.close(self.report_r)
            self._reap_middle()


_preforked: Preforked | None = None


def prefork(engine: Any) -> None:
    """Fork the next container's monitor now (see Preforked); start_container uses it."""
    global _preforked
    if _preforked is None and not os.environ.get("RONGQI_NO_PREFORK"):
        _preforked = Preforked(engine)


def _take_preforked() -> Preforked | None:
    global _preforked
    pre, _preforked = _preforked, None
    return pre


def _waiting_monitor(engine: Any, chan: Any, report_w: int) -> None:
    """The preforked monitor: warm up, wait for its container, then be its monitor."""
    import socket  # here, off the CLI's path (chan is a bare _socket.socket)

    try:
        # What the runtime's create needs, imported while the CLI works on the container.
        import rongqi.engine.logs  # noqa: F401
        import rongqi.engine.attach  # noqa: F401
        from rongqi.linux import syscall as sysc

        rt = engine.runtime
        if type(rt).__name__ == "InProcessRuntime":
            import rongqi.linux.rootfs  # noqa: F401
            import rongqi.oci.creation  # noqa: F401
            import rongqi.oci.lifecycle  # noqa: F401
            import rongqi.oci.init  # noqa: F401
            # And what create imports as it reads the spec and makes the cgroup (measured:
            # 5-8 ms of the first spec parse and cgroup setup were these imports, after "go").
            import rongqi.linux.caps  # noqa: F401
            import rongqi.linux.cgroups.convert  # noqa: F401
            import rongqi.linux.cgroups.freezer  # noqa: F401
            import rongqi.linux.cgroups.resources  # noqa: F401
            import rongqi.linux.cgroups.v1  # noqa: F401
            import rongqi.linux.cgroups.v2  # noqa: F401
            import rongqi.linux.exeguard  # noqa: F401
            import rongqi.linux.seccomp  # noqa: F401
            import rongqi.oci.resources  # noqa: F401
            import rongqi.oci.seccomp_spec  # noqa: F401
            import rongqi.oci.timefmt  # noqa: F401
            from rongqi.linux import cgroups

            cgroups.detect_mode()  # cached for the process
        sysc.kernel()
        import rongqi.engine.networks  # noqa: F401 - launch asks it between create and start
        # And what the end of a run needs (the unmount, --rm): its exit path is the CLI's.
        from rongqi.engine import lifecycle
        from rongqi.storage import overlay
        import rongqi.engine.events  # noqa: F401
    except Exception:  # noqa: BLE001 - the same imports fail again later, with a report
        pass
    else:
        # Idle until "go": delete what earlier `run --rm`s left in the trash, an entry at a
        # time, stopping as soon as the CLI has written (a big tree delays the start by one
        # entry's delete at most).
        import select

        try:
            overlay.empty_trash(lifecycle.trash_dir(engine),
                                stop=lambda: bool(select.select([chan], [], [], 0)[0]))
        except Exception:  # noqa: BLE001 - a later command tries again
            pass
    try:
        msg, fds, _, _ = socket.recv_fds(chan, 4096, 1)
    except OSError:
        return
    chan.close()
    word, _, cid = msg.decode(errors="replace").partition(" ")
    if word != "go":
        for fd in fds:
            os.close(fd)
        return  # the CLI went away: nothing was made
    attach = socket.socket(fileno=fds[0]) if fds else None
    try:
        container = engine.get(cid)
        if hasattr(engine, "for_container"):
            engine = engine.for_container(container)  # the runtime it was created with
        Monitor(engine, container, report_w, attach).main()
    except BaseException as err:  # noqa: BLE001 - reported to the CLI, which shows it
        try:
            os.write(report_w, f"error 125 {_describe(err)}".encode())
        except OSError:
            pass


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError):
        text = err.strerror or str(err)
        return f"{err.filename}: {text}" if err.filename else text
    return str(err) or type(err).__name__


def classify(message: str, rootfs: str = "") -> int:
    """podman's exit code for a runtime's failure to run the command: 127 not found,
    126 not executable (a directory, no x bit, permission denied), else 125."""
    low = message.lower()
    if "executable file not found" in low:
        return 127
    if "permission denied" in low or "is a directory" in low:
        return 126
    if "no such file or directory or not executable" in low and '"' in message:
        # rongqi.oci's wording covers both; the rootfs says which (an lstat, no symlink
        # followed out of the root).
        name = message.split('"')[1]
        if rootfs and name.startswith("/"):
            try:
                os.lstat(os.path.join(rootfs, name.lstrip("/")))
                return 126
            except OSError:
                return 127
        return 127
    if "no such file or directory" in low and "exec" in low:
        return 127
    return 125


def _podman_wording(message: str, code: int, runtime_name: str) -> str:
    if "no such file or directory or not executable" in message and '"' in message:
        # rongqi.oci's one wording for both cases: say which, as runc does.
        name = message.split('"')[1]
        message = (f'exec: "{name}": permission denied' if code == 126 else
                   f'exec: "{name}": stat {name}: no such file or directory')
    if not message.startswith(runtime_name + ":"):
        message = f"{runtime_name}: {message}"
    if code == 127:
        return f"{message}: OCI runtime attempted to invoke a command that was not found"
    if code == 126:
        return f"{message}: OCI permission denied"
    return message


class Monitor:
    """The monitor process's state (one per container)."""

    def __init__(self, engine: Any, container: Any, report_fd: int, attach: Any):
        self.engine = engine
        self.container = container
        self.id = container.id
        self.run_dir = container.run_dir
        self.report_fd = report_fd
        self.config = container.config
        opts = self.config.get("options") or {}
        self.tty = bool(opts.get("tty"))
        self.interactive = bool(opts.get("interactive"))
        self.driver = self.config.get("log_driver") or opts.get("log_driver") or "k8s-file"
        self.log_opts = opts.get("log_opts") or {}
        self.restart = self.config.get("restart") or opts.get("restart") or {}
        if isinstance(self.restart, str):
            name, _, n = self.restart.partition(":")
            self.restart = {"name": name, "max_retries": int(n or 0)}
        self.remove = bool(opts.get("remove"))
        self.clients: dict[int, Any] = {}
        self.readers: dict[int, Any] = {}
        self.foreground = attach
        self.pid = 0
        self.status: int | None = None
        self.out_fds: dict[int, int] = {}   # fd -> stream (1 stdout, 2 stderr)
        self.stdin_fd = -1
        self.master = -1
        self.null = -1
        self.err = -1
        self.lock_fd = -1
        self.listener: Any = None
        self.log: Any = None
        self.poller: Any = None
        self.restart_count = int((container.state or {}).get("restart_count") or 0)
        self.health: Any = None
        self.health_pid = 0
        self.passthrough: tuple[int, int, int] | None = None
        self.slim_at = 0.0
        self.started_ns = 0

    # -- life ---------------------------------------------------------------------------------
    def main(self) -> None:
        from rongqi.locking import Lock

        # Nothing of the CLI's stays open but stdio (replaced below): a caller waiting for
        # EOF on a pipe it gave the CLI must not wait for the container's whole life.
        keep = sorted({self.report_fd, *((self.foreground.fileno(),) if self.foreground else ())})
        low = 3
        for fd in keep:
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 1 << 16)

        lock = Lock(os.path.join(self.run_dir, LOCK), blocking=False)
        if not lock.acquire():
            raise RongqiError(f"container {self.id} already has a monitor")
        self.lock_fd = lock.fd  # held for the monitor's life; closed by hand where it ends
        _write_file(os.path.join(self.run_dir, PID), str(os.getpid()))
        if self.driver == "passthrough":
            # The container's stdio is the CLI's own (run in the foreground only).
            self.passthrough = (os.dup(0), os.dup(1), os.dup(2))
        self.null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        for fd in (0, 1, 2):
            os.dup2(self.null, fd)
        debug = os.environ.get("RONGQI_MONITOR_DEBUG")  # a file for the monitor's own errors
        self.err = self.null
        if debug:
            self.err = os.open(debug, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                               0o600)
            os.dup2(self.err, 2)
        _subreaper()
        self._setup_loop()
        self._listen()
        if self.foreground is not None:
            self._add_client(self.foreground)
        try:
            self.launch()
        except BaseException as err:
            code = 125
            msg = _describe(err)
            # A network's failure is no runtime's (no 126 for "permission denied" in it).
            nets = sys.modules.get("rongqi.engine.networks")
            if isinstance(err, RongqiError) and not (nets and isinstance(err, nets.NetworkError)):
                code = classify(msg, self._rootfs())
                if code != 125:
                    msg = _podman_wording(msg, code, self._runtime_name())
            self._close_listener()
            for name in (PID, PIDFILE):
                try:
                    os.unlink(os.path.join(self.run_dir, name))
                except FileNotFoundError:
                    pass
            # The lock goes first: once the CLI reads the error, the monitor is gone.
            os.close(self.lock_fd)
            os.write(self.report_fd, f"error {code} {msg}".encode())
            return
        os.write(self.report_fd, f"started {self.pid} {os.getpid()} {self.started_ns}".encode())
        os.close(self.report_fd)
        self.report_fd = -1
        self._setup_health()
        import gc

        # Collections would walk (and dirty) the whole heap the CLI left: freeze it. The real
        # slimming is the re-exec below, off the path of a short `run --rm`.
        gc.freeze()
        self.slim_at = time.monotonic() + SLIM_AFTER if _slimmable(self.engine) else 0.0
        self.loop()

    def _setup_loop(self) -> None:
        """Signals, the poller and the log writer: what the loop needs (also after a re-exec)."""
        import _signal
        import select

        # SIGCHLD wakes the poll loop through a pipe; children are reaped there.
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.wake_r = wake_r
        _signal.signal(SIGCHLD, lambda *_: None)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # HUP INT QUIT: the CLI's terminal is not ours. A handler that does nothing, not
        # SIG_IGN: an ignored signal stays ignored across execve, so the container's process
        # (forked from here) could not trap it (sh ignores `trap ... HUP` then); a caught one
        # is back to its default in the new program, as under podman's conmon.
        for sig in (1, 2, 3):
            _signal.signal(sig, _ignore)
        self.poller = select.poll()
        self.poller.register(wake_r, select.POLLIN)
        from rongqi.engine.logs import LogWriter, parse_size

        max_size = parse_size(self.log_opts["max-size"]) if self.log_opts.get("max-size") else 0
        max_file = int(self.log_opts.get("max-file") or 1)
        self.log = LogWriter(self.driver, self.container.log_path, max_size=max_size,
                             max_file=max_file)

    # -- a slimmer self -----------------------------------------------------------------------
    def _timeout_at(self) -> float:
        """--timeout N: the wall-clock time this run of the container is killed at (0: none,
        or already killed), as conmon's --timeout."""
        limit = int((self.container.config.get("options") or {}).get("timeout") or 0)
        if not limit or not self.started_ns or \
                getattr(self, "timed_out_run", 0) == self.started_ns:
            return 0.0
        return self.started_ns / 1e9 + limit

    def _time_out(self) -> None:
        self.timed_out_run = self.started_ns
        try:
            os.kill(self.pid, 9)  # the init: its pid namespace goes with it
        except ProcessLookupError:
            pass

    def _reexec(self) -> None:
        """Become a fresh interpreter that runs only this loop, keeping every fd and child.

        The fork carried the CLI's whole heap (argparse, the parser, bundle, image store: about
        13 MB of private pages once the CLI is gone); a fresh `python -I -S` holding just the
        loop's modules is a quarter of that. Done once the container has run SLIM_AFTER
        seconds, so a short `run --rm` never pays the interpreter's start.
        """
        from rongqi import fastjson

        e = self.engine
        fds = {"lock": self.lock_fd, "listener": self.listener.fileno() if self.listener else -1,
               "stdin": self.stdin_fd, "master": self.master,
               "outputs": [[fd, st] for fd, st in self.out_fds.items()],
               "clients": list(self.clients)}
        for fd in [self.lock_fd, fds["listener"], self.stdin_fd, self.master,
                   *self.out_fds, *self.clients]:
            if fd >= 0:
                os.set_inheritable(fd, True)
        # slirp4netns ends when its exit fd closes: the new image must hold it too.
        nets = sys.modules.get("rongqi.engine.networks")
        slirp = {cid: list(v) for cid, v in getattr(nets, "_slirp", {}).items()}
        for _, exit_fd in slirp.values():
            os.set_inheritable(exit_fd, True)
        c = self.container
        doc = {"sys_path": sys.path, "fds": fds, "slirp": slirp, "pid": self.pid,
               "started_ns": self.started_ns,
               "restart_count": self.restart_count,
               "health_in": (self.health.next_due - time.monotonic()) if self.health else None,
               "engine": {"root": e.root, "runroot": e.runroot, "runtime": e.runtime.name,
                          "runtime_root": e.runtime.root, "storage_mode": e.storage_mode,
                          "registries_conf": e.registries_conf},
               "container": {"id": c.id, "name": c.name, "run_dir": c.run_dir, "dir": c.dir,
                             "bundle": c.bundle, "log_path": c.log_path, "config": c.config}}
        data = fastjson.dumps(doc).encode()
        r, w = os.pipe()
        os.set_inheritable(r, True)  # the new interpreter reads its state from it
        if len(data) > 60000:
            os.close(r)
            os.close(w)
            return  # more than a pipe holds without a reader: stay as we are
        os.write(w, data)
        os.close(w)
        import rongqi

        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(rongqi.__file__)))
        # rongqi.engine's __init__ (records, json, the Engine) is left out until the exit
        # needs it: a bare package stands in (see _LazyEngine).
        boot = ("import sys, types; sys.path.insert(0, sys.argv[2]); "
                "p = types.ModuleType('rongqi.engine'); p._slim_stub = True; "
                "p.__path__ = [sys.argv[2] + '/rongqi/engine']; sys.modules['rongqi.engine'] = p; "
                "from rongqi.engine.monitor import resume; resume(int(sys.argv[1]))")
        try:
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", boot, str(r), pkg_parent])
        except OSError:
            os.close(r)  # no interpreter to exec: carry on, heavier

    def _adopt(self, doc: dict) -> None:
        """In the re-exec'd monitor: take over the fds and children the old image held."""
        import _socket
        import select

        fds = doc["fds"]
        self.lock_fd = fds["lock"]
        self.pid = doc["pid"]
        self.started_ns = doc["started_ns"]
        self.restart_count = doc["restart_count"]
        self.null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.err = 2
        self._setup_loop()
        for fd in (self.lock_fd, *(f for f, _ in fds["outputs"]), fds["stdin"], fds["master"],
                   fds["listener"], *fds["clients"]):
            if fd >= 0:
                os.set_inheritable(fd, False)
        if doc.get("slirp"):
            from rongqi.engine import networks
            for cid, (pid, exit_fd) in doc["slirp"].items():
                os.set_inheritable(exit_fd, False)
                networks._slirp[cid] = (pid, exit_fd)
        self.stdin_fd = fds["stdin"]
        self.master = fds["master"]
        for fd, stream in fds["outputs"]:
            self.out_fds[fd] = stream
            self.poller.register(fd, select.POLLIN)
        if fds["listener"] >= 0:
            self.listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0,
                                           fds["listener"])
            self.poller.register(fds["listener"], select.POLLIN)
        for fd in fds["clients"]:
            self._add_client(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd))
        self._setup_health()
        if self.health is not None and doc.get("health_in") is not None:
            self.health.next_due = time.monotonic() + max(0.0, doc["health_in"])

    def _runtime_name(self) -> str:
        name = self.config.get("runtime") or "rongqi"
        return os.path.basename(name)

    def _rootfs(self) -> str:
        try:
            import json

            with open(os.path.join(self.container.bundle, "config.json")) as f:
                root = json.load(f).get("root", {}).get("path", "rootfs")
            return root if root.startswith("/") else os.path.join(self.container.bundle, root)
        except (OSError, ValueError):
            return ""

    def launch(self) -> None:
        """Create and start the runtime container with fresh stdio; self.pid runs on return."""
        rt = self.engine.runtime
        console = None
        keep: list[int] = []  # the container's ends, closed once the runtime has them
        if self.passthrough is not None:
            stdio = self.passthrough
        elif self.tty:
            from rongqi.oci.console_proxy import ConsoleSocket

            console = ConsoleSocket()
            stdio = (self.null, self.null, self.null)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            keep += [out_w, err_w]
            in_r = self.null
            if self.interactive:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                keep.append(in_r)
                self.stdin_fd = in_w
            stdio = (in_r, out_w, err_w)
            self._add_output(out_r, 1)
            self._add_output(err_r, 2)
        pid_file = os.path.join(self.run_dir, PIDFILE)
        try:
            from rongqi.engine import networks

            # slirp4netns/pasta: the namespaces the runtime joins, held until its create is done
            held = networks.before_create(self.engine, self.container)
            # The in-process runtime's init inherits our fds 0-2; a runtime binary is given
            # them too: the same three fds serve both.
            for i, fd in enumerate(stdio):
                os.dup2(fd, i)
            try:
                rt.create(self.id, self.container.bundle, console_socket=console.path if console else "",
                          pid_file=pid_file, stdio=(0, 1, 2))
            finally:
                for i in (0, 1, 2):
                    os.dup2(self.null if i < 2 else self.err, i)
                for fd in keep:
                    os.close(fd)
                if held is not None:
                    held.release()
            if console is not None:
                try:
                    self.master = console.receive_master()
                finally:
                    console.close()
                    console = None
                os.set_blocking(self.master, False)
                import select

                self.poller.register(self.master, select.POLLIN)
                self.out_fds[self.master] = 1
            with open(pid_file) as f:
                self.pid = int(f.read().strip())
            from rongqi.engine import networks

            networks.process_started(self.engine, self.container, self.pid)  # slirp4netns
            self.started_ns = time.time_ns()
            rt.start(self.id)
        except BaseException:
            if console is not None:
                console.close()
            from rongqi.engine import networks

            networks.process_ended(self.container)
            try:
                rt.delete(self.id, force=True)
            except Exception:  # noqa: BLE001 - nothing was made, or the first error says why
                pass
            self._reap_all()
            self._close_outputs()
            raise
        finally:
            if self.passthrough is not None:
                for fd in self.passthrough:
                    os.close(fd)
                self.passthrough = None

    def _add_output(self, fd: int, stream: int) -> None:
        import select

        os.set_blocking(fd, False)
        self.out_fds[fd] = stream
        self.poller.register(fd, select.POLLIN)

    def _close_outputs(self) -> None:
        for fd in list(self.out_fds):
            self._drop_output(fd)
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    def _drop_output(self, fd: int) -> None:
        if fd in self.out_fds:
            del self.out_fds[fd]
            try:
                self.poller.unregister(fd)
            except (KeyError, ValueError):
                pass
            os.close(fd)
            if fd == self.master:
                self.master = -1

    # -- attach -------------------------------------------------------------------------------
    def _listen(self) -> None:
        import _socket
        import select

        from rongqi.engine.attach import short_path

        path = os.path.join(self.run_dir, ATTACH)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        dfd = os.open(self.run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            s.bind(short_path(dfd, ATTACH))
        finally:
            os.close(dfd)
        os.chmod(path, 0o600)
        s.listen(8)
        s.setblocking(False)
        self.listener = s
        self.poller.register(s.fileno(), select.POLLIN)

    def _close_listener(self) -> None:
        if self.listener is not None:
            try:
                self.poller.unregister(self.listener.fileno())
            except (KeyError, ValueError):
                pass
            self.listener.close()
            self.listener = None
            try:
                os.unlink(os.path.join(self.run_dir, ATTACH))
            except FileNotFoundError:
                pass

    def _add_client(self, sock: Any) -> None:
        import select

        from rongqi.engine.attach import FrameReader

        sock.setblocking(True)
        sock.settimeout(10.0)  # a client that stops reading is dropped, never waited on for ever
        self.clients[sock.fileno()] = sock
        self.readers[sock.fileno()] = FrameReader()
        self.poller.register(sock.fileno(), select.POLLIN)

    def _drop_client(self, fd: int) -> None:
        sock = self.clients.pop(fd, None)
        self.readers.pop(fd, None)
        if sock is not None:
            try:
                self.poller.unregister(fd)
            except (KeyError, ValueError):
                pass
            sock.close()

    def _broadcast(self, stream: int, data: bytes) -> None:
        from rongqi.engine.attach import frame

        blob = frame(stream, data)
        for fd, sock in list(self.clients.items()):
            try:
                sock.sendall(blob)
            except OSError:
                self._drop_client(fd)

    def _client_input(self, fd: int) -> None:
        from rongqi.engine import attach

        sock = self.clients[fd]
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop_client(fd)
            return
        try:
            frames = self.readers[fd].feed(data)
        except ValueError:
            self._drop_client(fd)
            return
        for stream, payload in frames:
            if stream == attach.STDIN:
                target = self.master if self.master >= 0 else self.stdin_fd
                if not payload:
                    if self.stdin_fd >= 0:
                        os.close(self.stdin_fd)
                        self.stdin_fd = -1
                    elif self.master >= 0:
                        _write_all(self.master, b"\x04")
                elif target >= 0:
                    try:
                        _write_all(target, payload)
                    except OSError:
                        pass
            elif stream == attach.RESIZE and self.master >= 0:
                try:
                    rows, cols = (int(x) for x in payload.split()[:2])
                    import fcntl
                    import struct

                    fcntl.ioctl(self.master, 0x5414, struct.pack("HHHH", rows, cols, 0, 0))
                except (ValueError, OSError):
                    pass

    # -- the loop -----------------------------------------------------------------------------
    def loop(self) -> None:
        import select

        drain_deadline = 0.0
        while True:
            self._reap_all()
            if self.status is not None:
                if not drain_deadline:
                    # The init is gone; its pid namespace dies with it. Give the pipes a
                    # moment to deliver the last output (and EOF).
                    drain_deadline = time.monotonic() + 2.0
                if not self.out_fds or time.monotonic() > drain_deadline:
                    if not self.exited():
                        return
                    drain_deadline = 0.0
                    continue
            timeout = 1000
            if self.slim_at:
                timeout = min(timeout, max(0, int((self.slim_at - time.monotonic()) * 1000)))
            if drain_deadline:
                timeout = max(0, int((drain_deadline - time.monotonic()) * 1000))
            if self.health is not None and self.health_pid == 0:
                wait = self.health.next_due - time.monotonic()
                timeout = min(timeout, max(0, int(min(wait, 3600) * 1000)))
            kill_at = self._timeout_at()
            if kill_at:
                timeout = min(timeout, max(0, int((kill_at - time.time()) * 1000)))
            try:
                events = self.poller.poll(timeout)
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == self.wake_r:
                    try:
                        while os.read(fd, 512):
                            pass
                    except BlockingIOError:
                        pass
                elif fd in self.out_fds:
                    self._output(fd)
                elif self.listener is not None and fd == self.listener.fileno():
                    try:
                        cfd, _ = self.listener._accept()
                    except BlockingIOError:
                        continue
                    import _socket

                    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, cfd)
                    os.set_inheritable(cfd, False)
                    self._add_client(conn)
                elif fd in self.clients:
                    if ev & select.POLLIN:
                        self._client_input(fd)
                    else:
                        self._drop_client(fd)
            if self.health is not None and self.health_pid == 0 and self.status is None \
                    and time.monotonic() >= self.health.next_due:
                self._run_health()
            if kill_at and self.status is None and time.time() >= kill_at:
                self._time_out()
            if self.slim_at and time.monotonic() >= self.slim_at and self.status is None \
                    and self.health_pid == 0:
                self.slim_at = 0.0
                self._reexec()

    def _output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if not data:
            self._drop_output(fd)
            return
        stream = self.out_fds[fd]
        self.log.write(stream, data)
        if self.clients:
            self._broadcast(stream, data)

    def _reap_all(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status
            elif pid == self.health_pid:
                self.health_pid = 0
                if self.health is not None:
                    self.health.done(status)

    # -- the end of a run ---------------------------------------------------------------------
    def exited(self) -> bool:
        """The container's process ended: restart it in place (True) or finish (False)."""
        status = self.status or 0
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        finished = time.time_ns()
        oom = self._oom_killed(code)
        for fd in list(self.out_fds):
            self._output(fd)  # whatever is still buffered
        self._close_outputs()
        from rongqi.engine import networks

        networks.process_ended(self.container, self.engine)
        rt = self.engine.runtime
        if self._should_restart(code):
            delay = min(0.1 * (2 ** min(self.restart_count, 10)), 10.0)
            if self.started_ns and finished - self.started_ns > 10_000_000_000:
                delay = 0.1  # it ran a while: no backoff (as docker resets it)
            try:
                rt.delete(self.id, force=True)
            except Exception:  # noqa: BLE001
                pass
            # The backoff, cut short by a stop (which waits for our exit record meanwhile).
            end = time.monotonic() + delay
            while time.monotonic() < end and not self._state().get("stop_requested"):
                time.sleep(min(0.1, max(0.0, end - time.monotonic())))
            if self._restart(code, finished, oom):
                return True
        self._finish(code, finished, oom)
        return False

    def _finish(self, code: int, finished: int, oom: bool) -> None:
        """The last run ended: clean up, leave the exit record, then --rm, then tell clients.

        The record is written once the runtime's container is deleted and the snapshot
        unmounted ("cleaned"), and before --rm, whose sync folds it in (the container is
        then exited, not running, so rm does not try to stop it)."""
        from rongqi.oci.timefmt import rfc3339nano

        rt = self.engine.runtime
        try:
            rt.delete(self.id, force=True)
        except Exception:  # noqa: BLE001 - gone already
            pass
        try:
            from rongqi.engine import networks

            networks.teardown(self.engine, self.container)
        except Exception:  # noqa: BLE001 - the next sync (cleanup) tries again
            pass
        self.log.close()
        snap = self.config.get("snapshot")
        if snap and not self.remove:
            try:
                storage = self.engine.storage
                storage.unmount(storage.get_snapshot(snap))
            except Exception:  # noqa: BLE001 - rm (or the next sync) unmounts it all the same
                pass
        record = {"pid": self.pid, "exit_code": code, "finished_at": rfc3339nano(finished),
                  "finished_ns": finished, "oom_killed": oom,
                  "restart_count": self.restart_count, "cleaned": True}
        _write_file(os.path.join(self.run_dir, EXIT), _dumps(record))
        try:
            # podman's "died" (Docker's "die"), which events' readers wait for (compose, the
            # Docker API's /events); before --rm's "remove", as podman orders them.
            from rongqi.engine import events

            events.emit(self.engine.root, "container", "died", id=self.id,
                        name=self.container.name, image=self.config.get("image_name", ""),
                        attributes=events.container_attributes(self.config), exit_code=code)
        except Exception:  # noqa: BLE001 - an event is never worth failing the exit for
            pass
        if self.remove:
            try:
                # To the trash: the CLI waits for our exit frame (see lifecycle.remove).
                self.engine.remove(self.id, force=True, volumes=True, trash=True)
            except Exception:  # noqa: BLE001 - `rm` by hand finishes the job
                pass
            else:
                import shutil

                shutil.rmtree(self.run_dir, ignore_errors=True)
        from rongqi.engine.attach import EXIT as EXIT_STREAM

        self._broadcast(EXIT_STREAM, str(code).encode())
        for fd in list(self.clients):
            self._drop_client(fd)
        self._close_listener()

    def _oom_killed(self, code: int) -> bool:
        if code != 128 + SIGKILL:
            return False
        try:
            import json

            from rongqi.linux import cgroups

            with open(os.path.join(self.container.bundle, "config.json")) as f:
                path = json.load(f).get("linux", {}).get("cgroupsPath")
            cg = cgroups.Cgroup.open(cgroups.resolve_path(path, self.id))
            return cg.oom_kill_count() > 0
        except Exception:  # noqa: BLE001 - no memory controller, cgroup gone: not known
            return False

    def _state(self) -> dict:
        import json

        try:
            with open(os.path.join(self.container.dir, "state.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _should_restart(self, code: int) -> bool:
        self._reload_restart()
        name = (self.restart or {}).get("name") or "no"
        if name == "no" or self.remove:
            return False
        if self._state().get("stop_requested"):
            return False
        if name == "on-failure":
            n = int(self.restart.get("max_retries") or 0)
            return code != 0 and (n == 0 or self.restart_count < n)
        return name in ("always", "unless-stopped")

    def _reload_restart(self) -> None:
        """The policy as the record has it now: `update --restart` changes it under a
        running container (engine/update.py), and the change counts from its next exit."""
        import json

        try:
            with open(os.path.join(self.container.dir, "config.json")) as f:
                policy = json.load(f).get("restart")
        except (OSError, ValueError):
            return
        if isinstance(policy, dict):
            self.restart = policy

    def _restart(self, code: int, finished: int, oom: bool) -> bool:
        from rongqi.oci.timefmt import rfc3339nano

        c = self.container
        with c.lock():
            c.sync()
            if c.state.get("stop_requested"):
                return False
            try:
                self.status = None
                self.launch()
            except Exception as err:  # noqa: BLE001 - recorded; the container stays exited
                c.state["reason"] = f"restart failed: {_describe(err)}"
                c.save_state()
                return False
            self.restart_count += 1
            if self.health is not None:
                from rongqi.engine.health import initial

                c.state["health"] = initial()
            c.state.update(pid=self.pid, status="running", restart_count=self.restart_count,
                           started_at=rfc3339nano(self.started_ns), exit_code=code,
                           finished_at=rfc3339nano(finished), oom_killed=oom)
            c.save_state()
        if self.health is not None:
            self.health.reset()
        if _slimmable(self.engine):
            self.slim_at = time.monotonic() + SLIM_AFTER  # shed what the restart imported
        return True

    # -- health checks ------------------------------------------------------------------------
    def _setup_health(self) -> None:
        hc = _health_config(self.config)
        if not hc:
            return
        from rongqi.engine.health import Schedule

        sched = Schedule.from_config(hc)
        if sched is not None:
            self.health = sched

    def _run_health(self) -> None:
        pid = forking.fork()
        if pid == 0:  # pragma: no cover - the check's own process
            code = 1
            try:
                # Only what the check opens itself: the container's stdin pipe, the clients'
                # sockets and the lock stay the monitor's alone.
                import _signal

                _signal.set_wakeup_fd(-1)
                _signal.signal(SIGCHLD, _signal.SIG_DFL)
                os.closerange(3, 1 << 16)
                from rongqi.engine.health import run_check

                code = run_check(self.engine, self.id)
            except BaseException:  # noqa: BLE001
                code = 1
            os._exit(code)
        self.health_pid = pid
        self.health.started()


# Seconds a container runs before its monitor re-execs into a slim interpreter (see _reexec).
SLIM_AFTER = float(os.environ.get("RONGQI_MONITOR_SLIM_AFTER") or 1.0)


def _slimmable(engine: Any) -> bool:
    """Only a real Engine can be rebuilt from its parameters in the new interpreter."""
    if isinstance(engine, _LazyEngine):
        return True
    try:
        from rongqi.engine import Engine
    except ImportError:
        return False
    return isinstance(engine, Engine) and not os.environ.get("RONGQI_MONITOR_NO_SLIM")


class _LazyEngine:
    """The Engine, made on first use: the slim monitor's loop needs none of it."""

    def __init__(self, params: dict):
        self._params = params
        self._real: Any = None
        self.root = params["root"]  # the exit's event needs only the path

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            _real_engine_package()
            from rongqi.engine import Engine

            self._real = Engine(**self._params)
        return getattr(self._real, name)


def _real_engine_package() -> None:
    """Replace the slim monitor's stand-in for rongqi.engine with the package itself."""
    pkg = sys.modules.get("rongqi.engine")
    if pkg is not None and getattr(pkg, "_slim_stub", False):
        import importlib

        del sys.modules["rongqi.engine"]
        real = importlib.import_module("rongqi.engine")
        for name in ("monitor", "logs", "attach"):
            mod = sys.modules.get(f"rongqi.engine.{name}")
            if mod is not None:
                setattr(real, name, mod)


class _LazyContainer:
    """The container's paths and config at once; its record (lock, state) on first use."""

    def __init__(self, engine: _LazyEngine, doc: dict, restart_count: int):
        self._engine = engine
        self._real: Any = None
        self._state = {"restart_count": restart_count}
        for k in ("id", "name", "run_dir", "dir", "bundle", "log_path", "config"):
            setattr(self, k, doc[k])

    @property
    def userdata(self) -> str:
        # networks.teardown reads the attachments here: without it a slimmed monitor's end
        # left the network (leases, rules, netns) to the next command that synced.
        return os.path.join(self.dir, "userdata")

    def _rec(self) -> Any:
        if self._real is None:
            self._real = self._engine.get(self.id)
        return self._real

    @property
    def state(self) -> dict:
        return self._real.state if self._real is not None else self._state

    def lock(self, shared: bool = False) -> Any:
        return self._rec().lock(shared)

    def sync(self) -> Any:
        return self._rec().sync()

    def save_state(self) -> None:
        self._rec().save_state()


def resume(state_fd: int) -> None:
    """The re-exec'd monitor's entry point (see Monitor._reexec)."""
    from rongqi import fastjson

    chunks = []
    while True:
        b = os.read(state_fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(state_fd)
    doc = fastjson.loads(b"".join(chunks))
    sys.path[:] = doc["sys_path"]
    engine = _LazyEngine(doc["engine"])
    container = _LazyContainer(engine, doc["container"], doc["restart_count"])
    m = Monitor(engine, container, -1, None)
    try:
        m._adopt(doc)
        m.loop()
    finally:
        os._exit(0)


def _health_config(config: dict) -> dict | None:
    hc = config.get("healthcheck") or (config.get("options") or {}).get("healthcheck")
    if not hc or (config.get("options") or {}).get("no_healthcheck"):
        return None
    test = hc.get("test") or []
    return hc if test and test[0] != "NONE" else None


def _subreaper() -> None:
    """PR_SET_CHILD_SUBREAPER: a runtime binary's init (runc forks and exits) is reparented to us."""
    try:
        from rongqi.linux import syscall as sysc

        sysc.SYSCALLS.prctl(sysc.PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    import select

    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]


def _write_file(path: str, text: str) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _dumps(d: dict) -> str:
    import json

    return json.dumps(d)


# -- readers of what the monitor leaves ---------------------------------------------------------


def alive(run_dir: str) -> bool:
    """Whether a monitor holds RUN/ID/monitor.lock."""
    from rongqi.locking import is_held

    return is_held(os.path.join(run_dir, LOCK))


def read_exit(run_dir: str) -> dict | None:
    """RUN/ID/exit.json: exit_code, finished_at (ns), oom_killed, restart_count; None if absent."""
    import json

    try:
        with open(os.path.join(run_dir, EXIT)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def wait_gone(run_dir: str, timeout: float | None = None) -> bool:
    """Block until the monitor has finished (its lock is free); False on timeout."""
    from rongqi.locking import Lock, LockBusy, LockError

    lock = Lock(os.path.join(run_dir, LOCK), shared=True, timeout=timeout, create=False)
    try:
        lock.acquire()
    except LockBusy:
        return False
    except LockError as err:
        if isinstance(err.oserror, FileNotFoundError):
            return True
        raise
    lock.release()
    return True