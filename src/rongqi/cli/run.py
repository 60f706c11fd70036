"""Commands that attach to a container's stdio: run, start -a/-i (start_attached), attach,
exec, logs, healthcheck run (owner: the monitor).

The relay between the user's terminal and a container lives here: frames of the attach
protocol (engine/attach.py) to and from the monitor, or an exec's pty master; raw mode,
SIGWINCH, detach keys, signal proxying. Top-level imports stay light (argparse only).
"""

from __future__ import annotations

import argparse
import os
import sys
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

DETACH_HELP = 'keys that detach (default "ctrl-p,ctrl-q"; "" none)'
FORWARDED = (1, 2, 3, 10, 12, 14, 15)  # HUP INT QUIT USR1 USR2 ALRM TERM
SIGWINCH = 28


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["container"]`."""
    ctr = groups["container"]
    for parent in (top, ctr):
        _run_args(add(["run"], cmd_run, "run a command in a new container", parent))
        _attach_args(add(["attach"], cmd_attach, "attach to a running container", parent))
        _exec_args(add(["exec"], cmd_exec, "run a process in a running container", parent))
        _logs_args(add(["logs"], cmd_logs, "show a container's logs", parent))
    hc = add(["healthcheck"], None, "run a container's health check")
    hsub = hc.add_subparsers(dest="healthcheck_command", parser_class=type(hc))
    hrun = add(["run"], cmd_healthcheck_run, "run the health check of a container", hsub)
    hrun.add_argument("container")


def _has(sp: argparse.ArgumentParser, flag: str) -> bool:
    return flag in sp._option_string_actions


def _opt(sp: argparse.ArgumentParser, *flags: str, **kw: Any) -> None:
    """Add a flag unless run_flags (the owner of run/create's flags) already did."""
    if not any(_has(sp, f) for f in flags):
        sp.add_argument(*flags, **kw)


def _run_args(sp: argparse.ArgumentParser) -> None:
    from rongqi.cli import run_flags

    run_flags.add_create_flags(sp)
    _opt(sp, "-d", "--detach", action="store_true", help="run in the background, print the id")
    _opt(sp, "-i", "--interactive", action="store_true", help="keep stdin open")
    _opt(sp, "-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    _opt(sp, "--rm", dest="rm", action="store_true", help="remove the container when it exits")
    _opt(sp, "--sig-proxy", type=_bool, default=True, metavar="BOOL",
         help="forward signals to the container (default true)")
    _opt(sp, "--detach-keys", default=None, help=DETACH_HELP)
    _opt(sp, "-a", "--attach", action="append", default=[], metavar="STREAM",
         help="attach stdin, stdout or stderr (default stdout and stderr)")


def _attach_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("container")
    sp.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    sp.add_argument("--detach-keys", default=None, help=DETACH_HELP)
    sp.add_argument("--sig-proxy", type=_bool, default=True, metavar="BOOL")
    sp.add_argument("-l", "--latest", action="store_true", help="the last created container")


def _exec_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-i", "--interactive", action="store_true")
    sp.add_argument("-t", "--tty", action="store_true")
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--env-file", action="append", default=[], metavar="FILE")
    sp.add_argument("-u", "--user", default="")
    sp.add_argument("-w", "--workdir", default="")
    sp.add_argument("--privileged", action="store_true")
    sp.add_argument("--detach-keys", default=None, help=DETACH_HELP)
    sp.add_argument("-l", "--latest", action="store_true")
    sp.add_argument("container")
    sp.add_argument("command", nargs=argparse.REMAINDER)


def _logs_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("containers", nargs="*")
    sp.add_argument("-f", "--follow", action="store_true")
    sp.add_argument("--tail", type=int, default=-1, help="the last N lines (-1: all)")
    sp.add_argument("-t", "--timestamps", action="store_true")
    sp.add_argument("--since", default="")
    sp.add_argument("--until", default="")
    sp.add_argument("-n", "--names", action="store_true", help="prefix lines with the name")
    sp.add_argument("-l", "--latest", action="store_true")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _engine(ctx: Any) -> Any:
    eng = getattr(ctx, "engine", None)
    if eng is not None:
        return eng
    from rongqi.engine import Engine

    a = ctx.args
    return Engine(a.root, getattr(a, "runroot", None), getattr(a, "runtime", None))


def _detach_keys(text: str | None) -> bytes:
    from rongqi.engine.attach import parse_detach_keys
    from rongqi.errors import UsageError

    try:
        return parse_detach_keys(text)
    except ValueError as err:
        raise UsageError(str(err)) from None


# -- run -----------------------------------------------------------------------------------------
def _options(a: argparse.Namespace) -> Any:
    from rongqi.cli import run_flags

    return run_flags.options_from_args(a)


def _streams(attach: list[str], interactive: bool) -> tuple[bool, set[int]]:
    """-a/--attach: (stdin attached, output streams shown)."""
    from rongqi.errors import UsageError

    if not attach:
        return interactive, {1, 2}
    wanted = set()
    for a in attach:
        for part in a.split(","):
            p = part.strip().lower()
            if p not in ("stdin", "stdout", "stderr"):
                raise UsageError(f'invalid stream "{part}" for --attach - must be one of '
                                 "stdin, stdout, or stderr: invalid argument")
            wanted.add(p)
    return "stdin" in wanted, {n for n, s in ((1, "stdout"), (2, "stderr")) if s in wanted}


def cmd_run(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import monitor
    from rongqi.errors import UsageError

    engine = _engine(ctx)
    # The monitor-to-be imports the runtime on the other core while this process reads the
    # options and makes the container (forked first, so its warm-up is done by "go").
    monitor.prefork(engine)
    try:
        opts = _options(a)
        keys = _detach_keys(opts.detach_keys)
        if opts.detach and a.attach:
            raise UsageError("--attach and --detach cannot be used together")
        if opts.log_driver == "passthrough" and opts.detach:
            raise UsageError("passthrough logging driver is not supported in detached mode")
        c = engine.create(opts, keep_mounted=True)  # started at once: no unmount + mount
    except BaseException:
        pre = monitor._take_preforked()
        if pre is not None:
            pre.cancel()
        raise
    for w in getattr(c, "warnings", []):
        print(f"WARN[0000] {w}", file=sys.stderr)
    if opts.detach:
        try:
            engine.start(c.id)
        except BaseException:
            # podman keeps a container whose start failed (ps -a lists it) unless --rm
            if opts.remove:
                try:
                    engine.remove(c.id, force=True, volumes=True)
                except Exception:  # noqa: BLE001 - the start's error is the one to show
                    pass
            raise
        print(c.id)
        return 0
    stdin, shown = _streams(a.attach, opts.interactive)
    if not shown:
        # `run -a stdin`: neither output is shown, so podman prints the container's ID
        print(c.id, flush=True)
    return _start_and_relay(engine, c, stdin=stdin, shown=shown, tty=opts.tty, keys=keys,
                            sig_proxy=opts.sig_proxy and not opts.tty,
                            remove_on_error=opts.remove)


def _start_and_relay(engine: Any, c: Any, *, stdin: bool, shown: set[int], tty: bool,
                     keys: bytes, sig_proxy: bool, remove_on_error: bool = False) -> int:
    import _socket  # not socket.py: its import is ~2 ms of CPU, and a pair is all we need

    mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    os.set_inheritable(theirs.fileno(), False)
    try:
        engine.start(c.id, attach=theirs)
    except BaseException:
        mine.close()
        theirs.close()
        if remove_on_error:
            # `run --rm` leaves nothing of a container that never ran (record, name,
            # snapshot); without --rm podman keeps it, as created, for ps -a and rm.
            try:
                engine.remove(c.id, force=True, volumes=True)
            except Exception:  # noqa: BLE001 - the start's error is the one to show
                pass
        raise
    theirs.close()  # start_container closed its copy; a second close is harmless
    return _relay_attach(engine, c, mine, stdin=stdin, shown=shown, tty=tty, keys=keys,
                         sig_proxy=sig_proxy)


def start_attached(ctx: Any, a: argparse.Namespace) -> int:
    """`start -a [-i]` (cli/containers.py's start hands over): start, then relay as run does;
    a container that runs already is attached to. One container only, as podman."""
    from rongqi.errors import UsageError

    refs = list(getattr(a, "names", None) or [])
    if getattr(a, "latest", False):
        refs = [_latest(_engine(ctx))]
    if len(refs) != 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    engine = _engine(ctx)
    keys = _detach_keys(getattr(a, "detach_keys", None))
    sig = getattr(a, "sig_proxy", None)
    sig_proxy = True if sig in (None, "") else _bool(str(sig)) if isinstance(sig, str) else bool(sig)
    c = engine.get(refs[0])
    from rongqi.engine import lifecycle

    lifecycle.synced(engine, c)
    opts = c.config.get("options") or {}
    tty = bool(opts.get("tty"))
    stdin = bool(getattr(a, "interactive", False)) and bool(opts.get("interactive"))
    if c.status in ("running", "paused"):
        return _attach_running(engine, c, stdin=stdin, keys=keys, sig_proxy=sig_proxy)
    return _start_and_relay(engine, c, stdin=stdin, shown={1, 2}, tty=tty, keys=keys,
                            sig_proxy=sig_proxy and not tty)


def _relay_attach(engine: Any, c: Any, sock: Any, *, stdin: bool, shown: set[int], tty: bool,
                  keys: bytes, sig_proxy: bool) -> int:
    from rongqi.engine import attach

    relay = Relay(keys=keys, tty=tty and stdin)

    def send_resize() -> None:
        size = _winsize(0) or _winsize(1)
        if size:
            _send(sock, attach.frame(attach.RESIZE, b"%d %d" % size))

    if tty:
        send_resize()
    proxy = None
    if sig_proxy:
        proxy = SignalProxy(lambda sig: _kill_quietly(engine, c.id, sig))
    code = relay.run_frames(sock, stdin=stdin, shown=shown,
                            on_winch=send_resize if tty else None, proxy=proxy)
    sock.close()
    if code is None:
        return 0  # detached: the container runs on
    if code < 0:
        from rongqi.errors import EngineError

        raise EngineError(f"container {c.id}: its monitor ended without an exit code "
                          "(see `rongqi ps -a`)")
    return code


def _kill_quietly(engine: Any, cid: str, sig: int) -> None:
    try:
        engine.runtime.kill(cid, sig)
    except Exception:  # noqa: BLE001 - it ended just now
        pass


def _send(sock: Any, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def _winsize(fd: int) -> tuple[int, int] | None:
    import fcntl
    import struct

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, 0x5413, b"\0" * 8))
    except OSError:
        return None
    return (rows, cols) if rows and cols else None


class SignalProxy:
    """Signals the CLI gets go to the container (run --sig-proxy, attach --sig-proxy)."""

    def __init__(self, send: Any):
        self.send = send
        self.old: list[tuple[int, Any]] = []

    def install(self) -> None:
        import signal

        for sig in FORWARDED:
            self.old.append((sig, signal.signal(sig, lambda s, _f: self.send(s))))

    def uninstall(self) -> None:
        import signal

        for sig, old in reversed(self.old):
            signal.signal(sig, old)
        self.old = []


class Relay:
    """Copies the user's stdin to a container and its output back; the terminal in raw mode
    (with -t on a terminal), detach keys watched."""

    def __init__(self, *, keys: bytes, tty: bool):
        from rongqi.engine.attach import DetachMatcher

        self.matcher = DetachMatcher(keys)
        self.tty = tty
        self.old_tc: Any = None

    def _raw(self) -> None:
        if self.tty and os.isatty(0):
            from rongqi.oci.console_proxy import make_raw

            self.old_tc = make_raw(0)

    def _restore(self) -> None:
        if self.old_tc is not None:
            from rongqi.oci.console_proxy import restore

            restore(0, self.old_tc)
            self.old_tc = None

    def _winch_pipe(self, on_winch: Any) -> tuple[int, Any]:
        import signal

        if on_winch is None:
            return -1, None
        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        old = signal.signal(SIGWINCH, lambda *_: _poke(w))
        return r, (w, old)

    def _unwinch(self, r: int, saved: Any) -> None:
        import signal

        if saved is None:
            return
        w, old = saved
        signal.signal(SIGWINCH, old)
        os.close(r)
        os.close(w)

    def run_frames(self, sock: Any, *, stdin: bool, shown: set[int], on_winch: Any = None,
                   proxy: SignalProxy | None = None) -> int | None:
        """Relay over the attach protocol; the exit code, None when detached, -1 when the
        monitor went away without one."""
        import select

        from rongqi.engine import attach

        reader = attach.FrameReader()
        wr, saved = self._winch_pipe(on_winch)
        in_open = stdin and _readable(0)
        self._raw()
        if proxy is not None:
            proxy.install()
        try:
            while True:
                rl = [sock] + ([0] if in_open else []) + ([wr] if wr >= 0 else [])
                try:
                    ready = select.select(rl, [], [])[0]
                except InterruptedError:
                    continue
                if wr in ready:
                    _drain_pipe(wr)
                    on_winch()
                if 0 in ready and in_open:
                    data = _read(0)
                    if not data:
                        in_open = False
                        _send(sock, attach.frame(attach.STDIN, b""))
                    else:
                        out, detached = self.matcher.feed(data)
                        if out:
                            _send(sock, attach.frame(attach.STDIN, out))
                        if detached:
                            return None
                if sock in ready:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        return -1
                    for stream, payload in reader.feed(data):
                        if stream == attach.EXIT:
                            try:
                                return int(payload or b"0")
                            except ValueError:
                                return -1
                        if stream in shown:
                            try:
                                _write_all(1 if stream == attach.STDOUT else 2, payload)
                            except BrokenPipeError:
                                return None  # our reader went away: leave as a detach does
        finally:
            if proxy is not None:
                proxy.uninstall()
            self._restore()
            self._unwinch(wr, saved)

    def run_pty(self, master: int, pid: int, *, stdin: bool) -> bool:
        """Relay an exec's pty until its process ends (True) or the user detaches (False)."""
        import select

        from rongqi.oci.console_proxy import copy_winsize

        pidfd = os.pidfd_open(pid)
        wr, saved = self._winch_pipe(lambda: copy_winsize(0, master))
        copy_winsize(0, master)
        in_open = stdin and _readable(0)
        self._raw()
        try:
            while True:
                rl = [master, pidfd] + ([0] if in_open else []) + ([wr] if wr >= 0 else [])
                try:
                    ready = select.select(rl, [], [])[0]
                except InterruptedError:
                    continue
                if wr in ready:
                    _drain_pipe(wr)
                    copy_winsize(0, master)
                if 0 in ready and in_open:
                    data = _read(0)
                    if not data:
                        in_open = False
                    else:
                        out, detached = self.matcher.feed(data)
                        if out:
                            _write_all(master, out)
                        if detached:
                            return False
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if data:
                        _write_all(1, data)
                    else:
                        master_done = True
                        rl.remove(master)
                        select.select([pidfd], [], [])
                        return master_done
                if pidfd in ready:
                    _drain_fd(master)
                    return True
        finally:
            os.close(pidfd)
            self._restore()
            self._unwinch(wr, saved)


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"w")
    except OSError:
        pass


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _drain_fd(fd: int) -> None:
    import select

    while select.select([fd], [], [], 0.05)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(1, data)


def _readable(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[n:]


# -- attach --------------------------------------------------------------------------------------
def _latest(engine: Any) -> str:
    from rongqi.errors import UsageError

    cs = sorted(engine.list(all=True), key=lambda c: c.config.get("created", ""))
    if not cs:
        raise UsageError("no containers to use with --latest")
    return cs[-1].id


def _ref(ctx: Any, a: argparse.Namespace, name: str) -> str:
    ref = getattr(a, name, None)
    if getattr(a, "latest", False):
        if ref and hasattr(a, "command"):
            # With --latest the positional is the command's first word (exec).
            a.command = [ref, *a.command]
        return _latest(_engine(ctx))
    if not ref:
        from rongqi.errors import UsageError

        raise UsageError(f"{name} name or ID is required")
    return ref


def cmd_attach(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import lifecycle
    from rongqi.errors import ContainerStateImproper

    engine = _engine(ctx)
    keys = _detach_keys(a.detach_keys)
    c = engine.get(_ref(ctx, a, "container"))
    lifecycle.synced(engine, c)
    if c.status not in ("running", "paused"):
        raise ContainerStateImproper("you can only attach to running containers")
    opts = c.config.get("options") or {}
    stdin = not a.no_stdin and bool(opts.get("interactive"))
    return _attach_running(engine, c, stdin=stdin, keys=keys, sig_proxy=a.sig_proxy)


def _attach_running(engine: Any, c: Any, *, stdin: bool, keys: bytes, sig_proxy: bool) -> int:
    from rongqi.engine import attach
    from rongqi.errors import EngineError

    opts = c.config.get("options") or {}
    tty = bool(opts.get("tty"))
    try:
        sock = attach.connect(c.run_dir)
    except OSError as err:
        raise EngineError(f"attaching to container {c.id}: its monitor does not answer "
                          f"({err.strerror or err})") from None
    return _relay_attach(engine, c, sock, stdin=stdin, shown={1, 2}, tty=tty, keys=keys,
                         sig_proxy=sig_proxy and not tty)


# -- exec ----------------------------------------------------------------------------------------
def _env(a: argparse.Namespace) -> dict[str, str]:
    from rongqi.errors import UsageError

    env: dict[str, str] = {}
    for path in a.env_file:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as err:
            raise UsageError(f"open {path}: {err.strerror.lower()}") from None
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, eq, v = line.partition("=")
            if eq:
                env[k] = v
            elif k in os.environ:
                env[k] = os.environ[k]
    for e in a.env:
        k, eq, v = e.partition("=")
        if not k:
            raise UsageError(f"invalid environment variable: {e!r}")
        if eq:
            env[k] = v
        elif k in os.environ:
            env[k] = os.environ[k]
    return env


def cmd_exec(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import exec as execmod
    from rongqi.errors import UsageError

    ref = _ref(ctx, a, "container")
    if not a.command:
        raise UsageError("must provide a non-empty command to start an exec session: "
                         "invalid argument")
    keys = _detach_keys(a.detach_keys)
    engine = _engine(ctx)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        # The process's parent is forked first: it imports the runtime's exec code on the
        # other core while this process finds the container and builds the process.
        stdio = (None if a.tty else (null, null, null) if a.detach
                 else (0 if a.interactive else null, 1, 2))
        ep = ExecParent(engine, stdio=stdio)
    finally:
        os.close(null)
    try:
        c = execmod.running_container(engine, ref)
        req = execmod.ExecRequest(command=list(a.command), env=_env(a), user=a.user,
                                  workdir=a.workdir, tty=a.tty, privileged=a.privileged)
        proc = execmod.build_process(c, req)
    except BaseException:
        ep.cancel()
        raise
    if a.detach:
        ep.launch(c, proc)
        ep.r.close()
        import secrets

        print(secrets.token_hex(32))
        return 0
    if a.tty:
        return _exec_tty(engine, c, proc, stdin=a.interactive, keys=keys, ep=ep)
    ep.launch(c, proc)
    proxy = SignalProxy(lambda sig: _signal_pid(ep.pid, sig))
    proxy.install()
    try:
        return ep.wait()
    finally:
        proxy.uninstall()


class ExecParent:
    """The exec'd process's parent: a fork of the CLI, in its own session, that starts the
    process (the runtime makes it our child), reports its pid, waits for it and reports its
    exit code. The process never lingers as a zombie of whoever started the CLI when the CLI
    detaches or dies (a zombie in the container's pid namespace keeps the container from
    ever stopping).

    Given no container (`ExecParent(engine, stdio=...)`, what `exec` does first thing), the
    fork is made at once and imports the runtime's exec code on the other core while the CLI
    finds the container and builds the process; `launch(c, proc)` then hands it the job (and
    `cancel()` lets it go without one). Given c and proc, it launches at once."""

    def __init__(self, engine: Any, c: Any = None, proc: dict[str, Any] | None = None, *,
                 tty: bool = False, console_socket: str = "",
                 stdio: tuple[int, int, int] | None = None):
        from rongqi.linux import forking

        r, w = os.pipe2(os.O_CLOEXEC)
        job_r, self.job_w = os.pipe2(os.O_CLOEXEC)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = forking.fork()
        if pid == 0:  # pragma: no cover - the parent process of the exec
            try:
                os.close(r)
                os.close(self.job_w)
                _exec_parent(engine, job_r, w, stdio)
            finally:
                os._exit(0)
        os.close(w)
        os.close(job_r)
        self.helper = pid
        self.r = os.fdopen(r, "rb")
        self.pid = 0
        if c is not None:
            assert proc is not None
            self.launch(c, proc, tty=tty, console_socket=console_socket)

    def launch(self, c: Any, proc: dict[str, Any], *, tty: bool = False,
               console_socket: str = "") -> None:
        """Start proc in container c; return once it runs (self.pid), or raise its error."""
        from rongqi import fastjson
        from rongqi.errors import RongqiError

        # The record rides along: the fork need not read it again.
        job = fastjson.dumps({"id": c.id, "config": c.config, "state": c.state, "proc": proc,
                              "tty": tty, "console_socket": console_socket}).encode()
        try:
            view = memoryview(job)
            while view:
                view = view[os.write(self.job_w, view):]
        except BrokenPipeError:
            pass  # it died: its report (or its EOF) says so
        finally:
            os.close(self.job_w)
            self.job_w = -1
        line = self.r.readline().decode(errors="replace").strip()
        word, _, rest = line.partition(" ")
        if word != "pid":
            self.close()
            code, _, text = rest.partition(" ")
            from rongqi.engine.monitor import CommandError

            if code in ("126", "127"):
                raise CommandError(text, int(code))
            raise RongqiError(text or "exec: the process could not be started")
        self.pid = int(rest)

    def cancel(self) -> None:
        """No process after all (the container was not running...): let the fork go."""
        if self.job_w >= 0:
            os.close(self.job_w)
            self.job_w = -1
        self.close()

    def wait(self) -> int:
        line = self.r.readline().decode(errors="replace").strip()
        self.close()
        word, _, rest = line.partition(" ")
        return int(rest) if word == "exit" else 137

    def close(self) -> None:
        self.r.close()
        try:
            os.waitpid(self.helper, 0)
        except ChildProcessError:
            pass


def _exec_parent(engine: Any, job_r: int, w: int, stdio: tuple[int, int, int] | None) -> None:
    """ExecParent's fork: warm up, read the job, start the process, report, wait, report."""
    os.setsid()
    import signal

    # Caught (by a handler that does nothing), not ignored: an ignored signal stays ignored
    # across execve, so the exec'd process could not trap INT/HUP/QUIT/TERM (podman's can).
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # the runtime resets SIGPIPE itself
    from rongqi import fastjson
    from rongqi.engine import exec as execmod
    from rongqi.errors import RongqiError

    if type(engine.runtime).__name__ == "InProcessRuntime":
        try:
            # What the in-process runtime's exec imports, while the CLI finds the container.
            import rongqi.engine.monitor  # noqa: F401 - exec's error wording
            import rongqi.oci.execution  # noqa: F401
            import rongqi.oci.spawn  # noqa: F401
        except ImportError:
            pass
    data = b""
    while True:
        chunk = os.read(job_r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(job_r)
    if not data:
        return  # cancelled
    try:
        job = fastjson.loads(data)
        from rongqi.engine.records import Container

        c = Container(engine.records, job["id"], job["config"], job["state"])
        child = execmod.start(engine, c, job["proc"], tty=job["tty"], detach=True,
                              console_socket=job["console_socket"], stdio=stdio)
    except RongqiError as err:
        os.write(w, f"error {getattr(err, 'exit_code', 125)} {err}\n".encode())
        os._exit(1)
    if stdio is not None:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    os.write(w, f"pid {child}\n".encode())
    code = execmod.wait(child)
    try:
        os.write(w, f"exit {code}\n".encode())
    except OSError:
        pass  # the CLI detached or died: nobody asks any more


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _exec_tty(engine: Any, c: Any, proc: dict[str, Any], *, stdin: bool, keys: bytes,
              ep: ExecParent) -> int:
    from rongqi.oci.console_proxy import ConsoleSocket

    size = _winsize(0) or _winsize(1)
    if size:
        proc["consoleSize"] = {"height": size[0], "width": size[1]}
    try:
        console = ConsoleSocket()
    except BaseException:
        ep.cancel()
        raise
    try:
        ep.launch(c, proc, tty=True, console_socket=console.path)
        master = console.receive_master()
    finally:
        console.close()
    try:
        ended = Relay(keys=keys, tty=True).run_pty(master, ep.pid, stdin=stdin)
    finally:
        os.close(master)
    if not ended:
        ep.r.close()
        return 0  # detached: the process runs on, its parent waits for it
    return ep.wait()


# -- logs ----------------------------------------------------------------------------------------
def cmd_logs(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import logs as logmod
    from rongqi.errors import UsageError

    engine = _engine(ctx)
    refs = list(a.containers)
    if a.latest:
        refs = [_latest(engine)]
    if not refs:
        raise UsageError("logs: give at least one container name or ID (or --latest)")
    try:
        since = logmod.parse_since(a.since) if a.since else 0
        until = logmod.parse_since(a.until) if a.until else 0
    except ValueError as err:
        raise UsageError(str(err)) from None
    containers = [engine.get(r) for r in refs]
    prefix = len(containers) > 1 or a.names
    for c in containers:
        driver = c.config.get("log_driver") or "k8s-file"
        if driver not in ("k8s-file", "json-file"):
            from rongqi.errors import EngineError

            raise EngineError(f"this container is using the '{driver}' log driver, "
                              "cannot read logs: this container is not logging output")
    if a.follow and len(containers) > 1:
        return _follow_many(engine, containers, a, since, until, prefix)
    for c in containers:
        _print_log(engine, c, a, since, until, prefix)
    return 0


def _print_log(engine: Any, c: Any, a: argparse.Namespace, since: int, until: int,
               prefix: bool, lock: Any = None) -> None:
    from rongqi.engine import logs as logmod
    from rongqi.engine import monitor

    driver = c.config.get("log_driver") or "k8s-file"

    def running() -> bool:
        return monitor.alive(c.run_dir) and monitor.read_exit(c.run_dir) is None

    head = ((c.name if a.names else c.id[:12]) + " ").encode() if prefix else b""
    at_start = {"stdout": True, "stderr": True}
    outs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for r in logmod.read(driver, c.log_path, tail=a.tail, since=since, until=until,
                         follow=a.follow, running=running):
        stream = "stderr" if r.stream == "stderr" else "stdout"
        parts = []
        if at_start[stream]:
            parts.append(head)
            if a.timestamps:
                parts.append(r.time.encode() + b" ")
        parts.append(r.text)
        if not r.partial:
            parts.append(b"\n")
        at_start[stream] = not r.partial
        data = b"".join(parts)
        out = outs[stream]
        if lock is not None:
            with lock:
                out.write(data)
                out.flush()
        else:
            out.write(data)
            if a.follow:
                out.flush()
    for out in outs.values():
        out.flush()


def _follow_many(engine: Any, containers: list[Any], a: argparse.Namespace, since: int,
                 until: int, prefix: bool) -> int:
    import threading

    lock = threading.Lock()
    threads = [threading.Thread(target=_print_log, args=(engine, c, a, since, until, prefix, lock),
                                daemon=True) for c in containers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


# -- healthcheck run -----------------------------------------------------------------------------
def cmd_healthcheck_run(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import health

    engine = _engine(ctx)
    code = health.run_check(engine, a.container)
    if code != 0:
        print("unhealthy")
        return 1
    return 0
