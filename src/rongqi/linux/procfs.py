"""Verified handles on procfs: what the runtime reads and writes under /proc goes through an fd
known to be a real procfs, never a path the container's view could redirect.

In the container's mount namespace, /proc is whatever is mounted (or linked) there: an image's
symlink, a bind mount over /proc/self/attr/exec or /proc/sys/..., a tmpfs of fake files
(CVE-2019-16884, CVE-2025-52881). A label or sysctl written by path there can land in a file
of the attacker's, and the container runs unconfined. So: the procfs root is opened without
following a symlink and checked (fstatfs PROC_SUPER_MAGIC, the root inode), files beneath it
are opened with openat2 refusing symlinks, magic links and mount crossings, and checked again.
"""

from __future__ import annotations

import errno
import os

from rongqi.linux import syscall as sysc

PROC_SUPER_MAGIC = 0x9FA0
PROC_ROOT_INO = 1
_BENEATH = sysc.RESOLVE_BENEATH | sysc.RESOLVE_NO_SYMLINKS | sysc.RESOLVE_NO_MAGICLINKS | sysc.RESOLVE_NO_XDEV


def _not_procfs(what: str) -> OSError:
    return OSError(errno.EXDEV, f"{what} is not on a real procfs (a symlink, a bind mount or another "
                                "filesystem stands where the runtime writes: refused)")


def open_root(sc: sysc.Syscalls = sysc.SYSCALLS, path: str = "/proc") -> int:
    """An O_PATH fd of the procfs mounted at path, verified."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _not_procfs(path) from None
        raise
    try:
        if sc.fstatfs_type(fd) != PROC_SUPER_MAGIC or os.fstat(fd).st_ino != PROC_ROOT_INO:
            raise _not_procfs(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path: str, flags: int, sc: sysc.Syscalls = sysc.SYSCALLS) -> int:
    """Open /proc/REL (path must start with /proc/) through a verified procfs handle.

    "self" and "thread-self" are resolved by reading the link in the verified procfs (so
    the pid is the one of that procfs's pid namespace); nothing else may be a symlink.
    """
    if not path.startswith("/proc/"):
        raise ValueError(f"{path}: not a /proc path")
    rel = path[len("/proc/"):]
    root = open_root(sc)
    try:
        first, sep, rest = rel.partition("/")
        if first in ("self", "thread-self"):
            rel = os.readlink(first, dir_fd=root) + sep + rest
        try:
            fd = sc.openat2(root, rel, flags | os.O_NOFOLLOW, 0, _BENEATH)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EXDEV):
                raise _not_procfs(path) from None
            raise OSError(err.errno, f"{path}: {err.strerror}", path) from None
    finally:
        os.close(root)
    try:
        if sc.fstatfs_type(fd) != PROC_SUPER_MAGIC:
            raise _not_procfs(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write(path: str, data: str | bytes, sc: sysc.Syscalls = sysc.SYSCALLS) -> None:
    fd = open_file(path, os.O_WRONLY, sc)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)


def read(path: str, sc: sysc.Syscalls = sysc.SYSCALLS) -> bytes:
    fd = open_file(path, os.O_RDONLY, sc)
    try:
        out = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return out
            out += chunk
    finally:
        os.close(fd)


def open_own_fd_dir(sc: sysc.Syscalls = sysc.SYSCALLS) -> int:
    """An O_PATH fd of this process's /proc/PID/fd directory in a verified procfs: the view's
    /proc, or where there is none, a procfs of our pid namespace mounted nowhere. Holding it
    exposes nothing of the host: it is the container's own procfs (see reopen)."""
    try:
        return open_file("/proc/self/fd", os.O_PATH | os.O_DIRECTORY, sc)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.ENOENT):
            raise
    root = sc.detached_procfs()
    try:
        if sc.fstatfs_type(root) != PROC_SUPER_MAGIC or os.fstat(root).st_ino != PROC_ROOT_INO:
            raise _not_procfs("a new procfs")
        pid = os.readlink("self", dir_fd=root)
        return sc.openat2(root, pid + "/fd", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, 0, _BENEATH)
    finally:
        os.close(root)


def reopen(fd_dir: int, fd: int, flags: int, opener=os.open) -> int:
    """Open again what fd (an O_PATH fd, say) refers to, with flags, through fd_dir (from
    open_own_fd_dir). The magic link is followed; what it gave must be fd's own file, or
    something mounted over the link in the container's view redirected it: refused.
    opener: os.open, or the caller's stand-in for it."""
    new = opener(str(fd), flags | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=fd_dir)
    want, got = os.fstat(fd), os.fstat(new)
    if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
        os.close(new)
        raise OSError(errno.EXDEV, f"reopen of fd {fd} through /proc gave another file (a mount over "
                                   "the magic link?): refused")
    return new
