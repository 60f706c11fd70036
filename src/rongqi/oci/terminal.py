"""The container's terminal: a pty from its own devpts, the master handed over the console socket.

runc's protocol: the runtime connects to --console-socket before the container is
set up; the init allocates the pty inside the container and sends the master fd
in one message (data: the pty's name, one SCM_RIGHTS fd). The slave becomes the
process's stdio, its controlling terminal and /dev/console.
"""

from __future__ import annotations

import fcntl
import os
import struct

from rongqi.errors import RongqiError

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441  # Linux 4.13: an fd of the slave, from the master
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TCGETS, TCSETS = 0x5401, 0x5402
ONLCR = 0o4
_TERMIOS = 36  # the kernel's struct termios: four flag words, c_line, c_cc[19]


def connect(path: str) -> int:
    """Connect to the console socket (from the host, before pivot_root); return the fd."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as err:
        s.close()
        raise RongqiError(f"--console-socket {path}: cannot connect: {err.strerror or err}") from None
    return s.detach()


def open_pty(size: tuple[int, int] | None = None) -> tuple[int, int, str]:
    """Allocate a pty from /dev/ptmx (the container's own devpts); return (master, slave, name)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
        name = f"/dev/pts/{n}"
        # The slave straight from the master, not by its path: in the container's view
        # /dev/pts/N could be anything (runc, CVE-2025-52565).
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    if size and size[0] and size[1]:
        fcntl.ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return master, slave, name


def send_master(sock_fd: int, master: int, name: str) -> None:
    import socket

    s = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(s, [name.encode()], [master])
    finally:
        s.close()


def clear_onlcr(fd: int) -> None:
    """Output "\n" stays "\n" on this pty (ioctls by hand: termios is not imported in here)."""
    attrs = bytearray(fcntl.ioctl(fd, TCGETS, bytes(_TERMIOS)))
    oflag = struct.unpack_from("I", attrs, 4)[0]
    struct.pack_into("I", attrs, 4, oflag & ~ONLCR)
    fcntl.ioctl(fd, TCSETS, bytes(attrs))


def setup_console(sc, sock_fd: int, size: tuple[int, int] | None, relayed: bool = False) -> None:
    """In the init, after pivot_root: make the pty, send its master, adopt its slave.

    relayed: rongqi-oci itself relays this pty (a foreground exec -t): ONLCR is cleared
    before the process can write, as runc's relay does (console_proxy.clear_onlcr does it
    for run, whose program starts only after the relay is set up). A --console-socket
    client's pty is left as the kernel makes it: the client decides.
    """
    master, slave, name = open_pty(size)
    if relayed:
        clear_onlcr(slave)
    try:
        send_master(sock_fd, master, name)
    finally:
        os.close(master)
    os.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    # /dev/console is the container's terminal too.
    # Bound from the slave we hold onto a /dev/console that is no symlink, both by fd: never
    # a path that the container's view could swap (CVE-2025-52565).
    try:
        fd = os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
        target = os.open("/dev/console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            sc.mount(f"/proc/self/fd/{slave}", f"/proc/self/fd/{target}", "bind", 4096)  # MS_BIND
        finally:
            os.close(target)
    except OSError:
        pass  # a read-only /dev: the pty still is stdio and the controlling terminal
    os.close(slave)
