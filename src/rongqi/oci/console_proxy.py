"""The caller's side of a foreground terminal: receive the pty master, wire it to our stdio.

Used by `run` and `exec -t` without --console-socket, as runc does it: a private console
socket is passed to create/exec, the master arrives over it, our stdin goes to raw mode
(when it is a terminal), bytes are copied both ways until the process exits, the window
size follows our terminal (SIGWINCH) and other signals go to the container's process.

Runtime path: only C modules (_socket, _signal, termios, select, fcntl); no socket.py,
no tempfile, no signal.
"""

from __future__ import annotations

import os

TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
SIGWINCH = 28
# runc forwards every signal it can catch; these are the ones a shell user sends.
FORWARDED = (1, 2, 3, 10, 12, 14, 15)  # HUP INT QUIT USR1 USR2 ALRM TERM

_BUF = 65536


class ConsoleSocket:
    """A listening unix socket in a fresh 0700 directory: only we (root) can connect to it."""

    __slots__ = ("dir", "path", "_sock")

    def __init__(self) -> None:
        import _socket

        base = os.environ.get("XDG_RUNTIME_DIR") if os.geteuid() != 0 else None
        base = base or "/tmp"
        while True:
            d = os.path.join(base, "rongqi-console-" + os.urandom(6).hex())
            try:
                os.mkdir(d, 0o700)
                break
            except FileExistsError:
                continue
        self.dir = d
        self.path = os.path.join(d, "console.sock")
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            self._sock.bind(self.path)
            self._sock.listen(1)
        except BaseException:
            self.close()
            raise

    def receive_master(self, timeout: float = 10.0) -> int:
        """The pty master the runtime's init sent (it connected during create/exec)."""
        import _socket
        import select

        from rongqi.errors import RongqiError

        if not select.select([self._sock], [], [], timeout)[0]:
            raise RongqiError("console socket: the container never connected to hand over its terminal")
        fd, _ = self._sock._accept()  # type: ignore[attr-defined]  # the fd, not a socket object
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        try:
            conn.settimeout(timeout)
            size = _socket.CMSG_SPACE(4)
            _, ancdata, _, _ = conn.recvmsg(4096, size)
        finally:
            conn.close()
        fds: list[int] = []
        for level, kind, data in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                n = len(data) // 4
                fds.extend(int.from_bytes(data[i * 4:i * 4 + 4], "little" if _little() else "big") for i in range(n))
        if len(fds) != 1:
            for f in fds:
                os.close(f)
            raise RongqiError(f"console socket: expected one pty master fd, got {len(fds)}")
        os.set_inheritable(fds[0], False)
        return fds[0]

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
        for path, rm in ((self.path, os.unlink), (self.dir, os.rmdir)):
            try:
                rm(path)
            except OSError:
                pass


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


def make_raw(fd: int) -> list | None:
    """Put a terminal in raw mode (cfmakeraw but OPOST); return the old attributes to restore."""
    import termios

    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        return None
    new: list = [list(x) if isinstance(x, list) else x for x in old]
    new[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR |
                termios.IGNCR | termios.ICRNL | termios.IXON)
    # Output processing stays on, as containerd/console's raw mode keeps OPOST for runc:
    # the container's pty sends bare "\n" (clear_onlcr), our terminal adds the "\r".
    new[2] &= ~(termios.CSIZE | termios.PARENB)
    new[2] |= termios.CS8
    new[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, new)
    return old


def clear_onlcr(master: int) -> None:
    """No "\n" -> "\r\n" on the container's terminal, as runc's foreground run/exec -t.

    Linux ptys start with ONLCR; runc clears it (containerd/console's ClearONLCR) on the
    pty it relays, so what a program prints reaches our stdout byte for byte: scripts
    that read `run` output see "line\n", not "line\r\n". On a pty master, the
    attributes set are the slave's.
    """
    import termios

    try:
        attrs = termios.tcgetattr(master)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(master, termios.TCSANOW, attrs)
    except termios.error:
        pass


def restore(fd: int, old: list | None) -> None:
    if old is None:
        return
    import termios

    try:
        termios.tcsetattr(fd, termios.TCSANOW, old)
    except termios.error:
        pass


def copy_winsize(src: int, dst: int) -> None:
    """Our terminal's size onto the pty (nothing when our stdin is no terminal)."""
    import fcntl

    try:
        ws = fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return
    if ws[:4] == b"\0\0\0\0":
        return
    try:
        fcntl.ioctl(dst, TIOCSWINSZ, ws)
    except OSError:
        pass


class Forwarder:
    """Signal handlers for a foreground process: forward signals, follow the window size."""

    __slots__ = ("pid", "master", "_old")

    def __init__(self, pid: int, master: int = -1) -> None:
        self.pid = pid
        self.master = master
        self._old: list = []

    def install(self) -> None:
        import _signal

        for sig in FORWARDED:
            self._old.append((sig, _signal.signal(sig, self._forward)))
        if self.master >= 0:
            self._old.append((SIGWINCH, _signal.signal(SIGWINCH, self._winch)))
        else:
            self._old.append((SIGWINCH, _signal.signal(SIGWINCH, self._forward)))

    def uninstall(self) -> None:
        import _signal

        for sig, old in reversed(self._old):
            try:
                _signal.signal(sig, old)
            except (TypeError, ValueError, OSError):
                pass
        self._old = []

    def _forward(self, sig, frame) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _winch(self, sig, frame) -> None:
        copy_winsize(0, self.master)


def proxy(master: int, pid: int, stdin: int = 0, stdout: int = 1) -> None:
    """Copy stdin -> master and master -> stdout until `pid` (our child) has exited.

    The caller waits for the exit status afterwards. Output the process wrote just
    before it exited is still read: the pty's buffer is drained until EIO (every
    slave closed) or a quiet moment.
    """
    import select

    pidfd = os.pidfd_open(pid)
    os.set_blocking(master, False)
    rlist = [master, pidfd]
    stdin_open = True
    try:
        os.fstat(stdin)
        rlist.append(stdin)
    except OSError:
        stdin_open = False
    out_open = True
    pending = b""  # from stdin, not yet taken by the pty
    try:
        while True:
            wlist = [master] if pending else []
            r, w, _ = select.select(rlist, wlist, [])
            if master in r:
                try:
                    data = os.read(master, _BUF)
                except BlockingIOError:
                    data = None
                except OSError:  # EIO: the last slave fd closed
                    data = b""
                if data == b"":
                    rlist.remove(master)
                    if stdin_open:
                        rlist.remove(stdin)
                        stdin_open = False
                    pending = b""
                elif data:
                    out_open = _write_all(stdout, data, out_open)
            if pending and master in w:
                try:
                    n = os.write(master, pending)
                    pending = pending[n:]
                except BlockingIOError:
                    pass
                except OSError:
                    pending = b""
            if stdin_open and stdin in r and not pending:
                try:
                    data = os.read(stdin, _BUF)
                except OSError:
                    data = b""
                if not data:
                    # runc leaves the pty open at our EOF: the process decides when it ends.
                    rlist.remove(stdin)
                    stdin_open = False
                else:
                    pending = data
            if pidfd in r:
                break
        if master in rlist:
            _drain(master, stdout, out_open)
    finally:
        os.close(pidfd)


def _drain(master: int, stdout: int, out_open: bool) -> None:
    import select

    while True:
        # A short quiet moment ends it: a background process may keep the slave open.
        if not select.select([master], [], [], 0.2)[0]:
            return
        try:
            data = os.read(master, _BUF)
        except BlockingIOError:
            continue
        except OSError:
            return
        if not data:
            return
        out_open = _write_all(stdout, data, out_open)


def _write_all(fd: int, data: bytes, ok: bool) -> bool:
    if not ok:
        return False
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        except OSError:  # EPIPE: whoever read our output went away; keep draining the pty
            return False
        data = data[n:]
    return True


def run_foreground(master: int, pid: int, before=None) -> None:
    """Everything a foreground terminal needs, restored on the way out, even on errors.

    `before` (run's start) is called once the terminal is ready, so that the process
    starts with the right window size and sees no typed-ahead echo.
    """
    copy_winsize(0, master)
    clear_onlcr(master)
    fwd = Forwarder(pid, master)
    fwd.install()
    old = make_raw(0) if os.isatty(0) else None
    try:
        if before is not None:
            before()
        proxy(master, pid)
    finally:
        restore(0, old)
        fwd.uninstall()
