"""A program on a pty of the test's own, as a terminal emulator runs it: read its screen, type
into it, resize it. One helper for every test that drives a `-it` client (rongqi-oci, rongqi,
podman, docker, ctr)."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_until(master: int, want: bytes, timeout: float = 20.0) -> bytes:
    """What the pty shows until `want` appears, it ends (EOF, EIO) or timeout passes; the
    caller asserts on what it got."""
    out = b""
    deadline = time.monotonic() + timeout
    while want not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if select.select([master], [], [], min(left, 0.2))[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


class Terminal:
    """argv on a new pty (its own session; with ctty, the pty is its controlling terminal).
    keep_slave holds a second fd on the slave, so the pty outlives the program and its modes
    can be read afterwards (termios.tcgetattr(t.slave))."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, *, rows: int = 24,
                 cols: int = 80, keep_slave: bool = False, ctty: bool = False) -> None:
        self.master, slave = os.openpty()
        set_size(self.master, rows, cols)
        self.before = termios.tcgetattr(slave)

        def controlling() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=not ctty,
                                     preexec_fn=controlling if ctty else None)
        if keep_slave:
            self.slave: int | None = slave
        else:
            os.close(slave)
            self.slave = None
        self.out = b""

    def _read(self, timeout: float) -> bool:
        """Read what is there within timeout; False once the pty has nothing more to give."""
        if not select.select([self.master], [], [], timeout)[0]:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: no program has the slave open (for now)
            time.sleep(0.05)
            return self.proc.poll() is None
        self.out += data
        return bool(data)

    def read_until(self, want: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while want not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never saw {want!r}; the screen so far: {self.out!r}")
            if not self._read(min(left, 0.2)) and want not in self.out:
                raise AssertionError(f"the program ended (exit {self.proc.poll()}) without "
                                     f"{want!r}; the screen: {self.out!r}")
        return self.out

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 30) -> int:
        """The program's exit code; the screen is read meanwhile (a client blocked writing to
        a full pty would never exit) and after."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        code = self.proc.wait(1)
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                break
            if not data:
                break
            self.out += data
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
