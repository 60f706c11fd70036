"""The runtime's own executable kept out of its containers' reach (the CVE-2019-5736 class).

Owns the check that this process's executable (the Python interpreter) is one no container can
open for writing, and, when it is not, a protected interpreter to re-exec the runtime's helper
through: a read-only bind mount under GUARD_DIR (root), or a sealed memfd copy (others).

Why a container could write it at all: a runtime process that enters a container (the init
before its execve, an exec's process) runs the host's interpreter. If it executes a
`#!/proc/self/exe` script, the kernel starts that interpreter as a process of the container;
another container process opens /proc/PID/exe read-only and, once nothing runs the file any
more (no ETXTBSY), reopens it for writing through /proc/self/fd/N. What the reopen reaches is
the file *through the mount it was executed from*: a read-only mount attached in the runtime's
own mount namespace (which no container's new mount namespace holds: it cannot remount it), or
a sealed memfd, makes the write impossible for any capability set.
"""

from __future__ import annotations

import os

# Where the read-only binds of interpreters live (root): one per interpreter file, named by
# its device and inode, under a private mount so that no bind propagates to another namespace.
GUARD_DIR = "/run/rongqi/exe"
ST_RDONLY = 1
F_ADD_SEALS = 1033
F_GET_SEALS = 1034
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_PRIVATE = 1, 2, 4, 32, 4096, 1 << 18

_self_protected: bool | None = None  # this process's answer: its executable changes only by execve


def self_protected() -> bool:
    """Whether this process's executable is out of every container's reach for writing."""
    global _self_protected
    if _self_protected is None:
        _self_protected = is_protected("/proc/self/exe")
    return _self_protected


def is_protected(path: str) -> bool:
    """path (followed) is on a read-only mount of our mount namespace, a sealed memfd, or a
    file that no id a rootless runtime's containers can hold may write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if os.fstatvfs(fd).f_flag & ST_RDONLY:
            # Read-only, and a mount of our own namespace: a detached mount could be made
            # writable by a container holding CAP_SYS_ADMIN (mount_setattr on its fd).
            return _mount_in_our_namespace(fd)
        if _sealed(fd):
            return True
        return _unwritable_by_rootless_containers(os.fstat(fd))
    finally:
        os.close(fd)


def _mount_in_our_namespace(fd: int) -> bool:
    mnt_id = ""
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                mnt_id = line.split()[1].decode()
                break
    if not mnt_id:
        return False
    prefix = (mnt_id + " ").encode()
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.startswith(prefix) for line in f)


def _sealed(fd: int) -> bool:
    import fcntl

    try:
        seals = fcntl.fcntl(fd, F_GET_SEALS)
    except OSError:
        return False  # not a memfd (EINVAL)
    return bool(seals & F_SEAL_WRITE and seals & F_SEAL_SEAL)


def _host_root() -> bool:
    """Root of the initial user namespace (its containers may hold the host's uid 0)."""
    from rongqi.linux.namespaces import rootless

    return not rootless()


def _unwritable_by_rootless_containers(st: os.stat_result) -> bool:
    """A rootless runtime's containers hold only its own uid and subordinate ids, with no
    capability over the host's files: an interpreter owned by the host's root (or, seen from
    a user namespace, by an id unmapped there) that only its owner may write is out of their
    reach."""
    if _host_root() or st.st_mode & 0o022:
        return False
    ranges = _uid_ranges()
    if ranges is None:  # the initial user namespace, and we are not root
        return st.st_uid == 0
    return not any(inside <= st.st_uid < inside + count for inside, count in ranges)


def _uid_ranges() -> list[tuple[int, int]] | None:
    """(inside, count) of our user namespace's uid map; None in the initial namespace."""
    try:
        with open("/proc/self/uid_map") as f:
            rows = [line.split() for line in f if line.strip()]
    except OSError:
        return None
    if rows == [["0", "0", "4294967295"]]:
        return None
    return [(int(r[0]), int(r[2])) for r in rows]


class Reexec:
    """A protected interpreter to run the runtime's helper with: path to execve, and the fd
    that backs it (a sealed memfd; -1 for a mount), which the caller closes when done."""

    __slots__ = ("path", "fd")

    def __init__(self, path: str, fd: int = -1):
        self.path = path
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def reexec_target() -> Reexec | None:
    """None if this process's executable is protected (the usual case: nothing to do), else a
    protected interpreter for the helper that enters the container to re-exec through."""
    if self_protected():
        return None
    if _host_root():
        try:
            path = protected_bind()
        except OSError:
            pass  # no mount possible here (e.g. inside a container): a sealed copy still is
        else:
            _protect_marked_launcher()
            return Reexec(path)
    return Reexec(*sealed_copy())


# install.sh leaves this file in the virtualenv whose bin/python3 the launchers start: the
# runtime may then cover that path again when it finds it unprotected (after a reboot).
LAUNCHER_MARKER = ".rongqi-exe-guard"


def _protect_marked_launcher() -> None:
    import sys

    exe = sys.executable
    if exe and os.path.exists(os.path.join(os.path.dirname(os.path.dirname(exe)), LAUNCHER_MARKER)):
        try:
            protect_launcher(exe)
        except OSError:
            pass  # best effort: this call is protected by the re-exec all the same


def guard_path(st: os.stat_result) -> str:
    """The read-only bind of the interpreter file st describes."""
    return f"{GUARD_DIR}/python-{st.st_dev:x}-{st.st_ino}"


def protected_bind(sc=None, exe: str = "/proc/self/exe") -> str:
    """A read-only bind mount of an interpreter file (by default this process's own) in
    GUARD_DIR, made once per boot, then reused; returns its path. Root of the initial user
    namespace only.

    The bind is made from an fd of exe (for /proc/self/exe exactly the file we run, never a
    path that could have been swapped since). GUARD_DIR is bound onto itself and made a
    private mount first: a bind below it propagates to no other mount namespace, so no
    container ever holds a copy of it that it could remount.
    """
    from rongqi.linux import syscall as sysc

    sc = sc or sysc.SYSCALLS
    st = os.stat(exe)
    target = guard_path(st)
    if _is_bind_of(target, st):
        return target
    import fcntl

    os.makedirs(GUARD_DIR, 0o755, exist_ok=True)
    lock = os.open(os.path.dirname(GUARD_DIR) + "/exe.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_bind_of(target, st):
            return target  # another runtime made it meanwhile
        if not _is_mountpoint(GUARD_DIR):
            sc.mount(GUARD_DIR, GUARD_DIR, None, MS_BIND)
        sc.mount(None, GUARD_DIR, None, MS_PRIVATE)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o755))
        src = os.open(exe, os.O_PATH | os.O_CLOEXEC)
        try:
            if (os.fstat(src).st_dev, os.fstat(src).st_ino) != (st.st_dev, st.st_ino):
                raise OSError(16, f"{exe} changed while it was being protected")
            sc.mount(f"/proc/self/fd/{src}", target, None, MS_BIND)
        finally:
            os.close(src)
        sc.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        if not _is_bind_of(target, st):
            raise OSError(30, f"{target}: the read-only bind of the interpreter did not take")
        return target
    finally:
        os.close(lock)


def protect_launcher(link: str, sc=None, interpreter: str = "/proc/self/exe") -> None:
    """Cover a launcher's interpreter path (a venv's bin/python3, a symlink) with the
    read-only bind of the interpreter, so that every later start through it is protected
    without a re-exec. The mount lies on the symlink itself: unmounted (a reboot), the path
    is the symlink again and still starts Python. A bind of another file there (the system's
    Python was upgraded since) is replaced."""
    from rongqi.linux import syscall as sysc

    sc = sc or sysc.SYSCALLS
    src = protected_bind(sc, interpreter)
    want = os.stat(src)
    if is_protected(link):
        cur = os.stat(link)
        if (cur.st_dev, cur.st_ino) == (want.st_dev, want.st_ino):
            return
        sc.umount2(link, 2)  # MNT_DETACH: processes running the old file keep it
    dst = os.open(link, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        sc.mount(src, f"/proc/self/fd/{dst}", None, MS_BIND)
    finally:
        os.close(dst)
    sc.mount(None, link, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _is_bind_of(path: str, st: os.stat_result) -> bool:
    try:
        cur = os.stat(path)
    except OSError:
        return False
    return (cur.st_dev, cur.st_ino) == (st.st_dev, st.st_ino) and is_protected(path)


def _is_mountpoint(path: str) -> bool:
    want = path.encode()
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ", 5)[4] == want for line in f)


def sealed_copy() -> tuple[str, int]:
    """A sealed memfd holding a copy of this process's interpreter: (exec path, fd).

    Costs a copy of the interpreter (a few MB) per call: the fallback for a runtime that may
    not mount (rootless, or inside a container), as runc 1.1 did for its own binary.
    """
    fd = os.memfd_create("rongqi-python", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        src = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(src).st_size
            off = 0
            while off < size:
                n = os.sendfile(fd, src, off, size - off)
                if n <= 0:
                    raise OSError(5, "short copy of the interpreter into a memfd")
                off += n
        finally:
            os.close(src)
        import fcntl

        fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return f"/proc/self/fd/{fd}", fd
