"""The single door to the kernel: ctypes bindings for what os does not offer.

Code above this module takes a Syscalls object, so unit tests can pass a
recorder (tests/unit/fake_syscalls.py) and check the order of operations.
"""

from __future__ import annotations

import os

# Syscall numbers that differ between architectures (glibc has no wrapper for these).
_MACHINE = os.uname().machine
if _MACHINE == "x86_64":
    NR = {"clone": 56, "pivot_root": 155, "keyctl": 250, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
          "openat2": 437, "mount_setattr": 442, "ioprio_set": 251, "sched_setattr": 314}
elif _MACHINE in ("aarch64", "riscv64"):
    NR = {"clone": 220, "pivot_root": 41, "keyctl": 219, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
          "openat2": 437, "mount_setattr": 442, "ioprio_set": 30, "sched_setattr": 274}
else:  # pragma: no cover - only the two above are tested
    NR = {}

# clone(2) / unshare(2) / setns(2)
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_PARENT = 0x00008000
SIGCHLD = 17

# mount(2)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# openat2(2)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# mount_setattr(2)
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

KEYCTL_JOIN_SESSION_KEYRING = 1

class _Kernel:
    """The ctypes side, built on first use: importing ctypes costs milliseconds that
    the runtime's parent process does not need to pay (the init's helper does)."""

    def __init__(self):
        import ctypes

        self.ctypes = ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        self.syscall = libc.syscall
        self.syscall.restype = ctypes.c_long
        self.mount = libc.mount
        self.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
        self.umount2 = libc.umount2
        self.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
        self.unshare = libc.unshare
        self.unshare.argtypes = (ctypes.c_int,)
        self.setns = libc.setns
        self.setns.argtypes = (ctypes.c_int, ctypes.c_int)
        self.sethostname = libc.sethostname
        self.sethostname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
        self.setdomainname = libc.setdomainname
        self.setdomainname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
        self.prctl = libc.prctl
        self.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
        self.personality = libc.personality
        self.personality.argtypes = (ctypes.c_ulong,)
        self.fstatfs = libc.fstatfs
        self.fstatfs.argtypes = (ctypes.c_int, ctypes.c_void_p)

        class OpenHow(ctypes.Structure):
            _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))

        class MountAttr(ctypes.Structure):
            _fields_ = (("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                        ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64))

        self.OpenHow = OpenHow
        self.MountAttr = MountAttr

    def errno(self) -> int:
        return self.ctypes.get_errno()


_kernel: _Kernel | None = None


def kernel() -> _Kernel:
    global _kernel
    if _kernel is None:
        _kernel = _Kernel()
    return _kernel


def _b(s: str | bytes | None) -> bytes | None:
    if s is None or isinstance(s, bytes):
        return s
    return os.fsencode(s)


def _fail(what: str, path: str | None = None) -> OSError:
    e = kernel().errno()
    err = OSError(e, f"{what}: {os.strerror(e)}")
    if path is not None:
        err.filename = path
    return err


class Syscalls:
    """The real kernel. Every method raises OSError naming what failed."""

    # -- namespaces and processes -------------------------------------------------
    def clone(self, flags: int) -> int:
        """fork(2) with namespace flags: returns 0 in the child, the child's pid in the parent.

        A raw clone with a NULL stack behaves like fork (copy-on-write of the
        caller's stack). It skips Python's after-fork hooks, which only matter
        to threaded programs; the runtime is single-threaded here.
        """
        k = kernel()
        # x86_64: clone(flags, stack, parent_tid, child_tid, tls); aarch64 swaps the last two:
        # all NULL here, so one call serves both.
        pid = k.syscall(NR["clone"], k.ctypes.c_ulong(flags | SIGCHLD), None, None, None, None)
        if pid < 0:
            raise _fail("clone")
        return pid

    def unshare(self, flags: int) -> None:
        if kernel().unshare(flags) != 0:
            raise _fail("unshare")

    def setns(self, fd: int, nstype: int, path: str | None = None) -> None:
        if kernel().setns(fd, nstype) != 0:
            raise _fail("setns", path)

    def sethostname(self, name: str) -> None:
        b = name.encode()
        if kernel().sethostname(b, len(b)) != 0:
            raise _fail("sethostname")

    def setdomainname(self, name: str) -> None:
        b = name.encode()
        if kernel().setdomainname(b, len(b)) != 0:
            raise _fail("setdomainname")

    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        r = kernel().prctl(option, a2, a3, a4, a5)
        if r < 0:
            raise _fail(f"prctl({option})")
        return r

    def join_session_keyring(self, name: str | None) -> None:
        r = kernel().syscall(NR["keyctl"], KEYCTL_JOIN_SESSION_KEYRING, _b(name), 0, 0, 0)
        if r < 0:
            raise _fail("keyctl(JOIN_SESSION_KEYRING)")

    # -- credentials --------------------------------------------------------------
    def setgroups(self, gids: list[int]) -> None:
        os.setgroups(gids)

    def setresgid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def setresuid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    # -- mounts -------------------------------------------------------------------
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        k = kernel()
        if k.mount(_b(source), _b(target), _b(fstype), flags, _b(data) if data else None) != 0:
            e = k.errno()
            raise OSError(e, f"mount {source or fstype or 'none'} on {target} "
                             f"(type {fstype or 'none'}, flags {flags:#x}{', ' + data if data else ''}): {os.strerror(e)}")

    def umount2(self, target: str, flags: int = 0) -> None:
        if kernel().umount2(_b(target), flags) != 0:
            raise _fail("umount", target)

    def mount_setattr(self, fd: int, path: str, flags: int, attr_set: int, attr_clr: int, propagation: int = 0) -> None:
        k = kernel()
        attr = k.MountAttr(attr_set, attr_clr, propagation, 0)
        if k.syscall(NR["mount_setattr"], fd, _b(path), flags, k.ctypes.byref(attr), k.ctypes.sizeof(attr)) < 0:
            raise _fail("mount_setattr", path)

    def detached_procfs(self) -> int:
        """An O_PATH fd of a new procfs of our pid namespace, mounted nowhere (fsopen, fsmount):
        a verified /proc for a process whose view has none."""
        k = kernel()
        fs = k.syscall(NR["fsopen"], b"proc", 1)  # FSOPEN_CLOEXEC
        if fs < 0:
            raise _fail("fsopen proc")
        try:
            if k.syscall(NR["fsconfig"], fs, 6, None, None, 0) < 0:  # FSCONFIG_CMD_CREATE
                raise _fail("fsconfig proc")
            # FSMOUNT_CLOEXEC; MOUNT_ATTR_NOSUID|NODEV|NOEXEC
            fd = k.syscall(NR["fsmount"], fs, 1, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
            if fd < 0:
                raise _fail("fsmount proc")
            return fd
        finally:
            os.close(fs)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        if kernel().syscall(NR["pivot_root"], _b(new_root), _b(put_old)) < 0:
            raise _fail("pivot_root", new_root)

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def chdir(self, path: str | int) -> None:
        os.chdir(path)

    # -- files --------------------------------------------------------------------
    def openat2(self, dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
        k = kernel()
        how = k.OpenHow(flags | os.O_CLOEXEC, mode, resolve)
        fd = k.syscall(NR["openat2"], dirfd, _b(path), k.ctypes.byref(how), k.ctypes.sizeof(how))
        if fd < 0:
            raise _fail("open", path)
        return fd

    def mkdirat(self, dirfd: int, name: str, mode: int = 0o755) -> None:
        os.mkdir(name, mode, dir_fd=dirfd)

    def mknodat(self, dirfd: int, name: str, mode: int, device: int) -> None:
        os.mknod(name, mode, device, dir_fd=dirfd)

    def symlinkat(self, target: str, dirfd: int, name: str) -> None:
        os.symlink(target, name, dir_fd=dirfd)

    def fchownat(self, dirfd: int, name: str, uid: int, gid: int) -> None:
        os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        os.fchown(fd, uid, gid)

    def fstatfs_type(self, fd: int) -> int:
        """The filesystem type (statfs f_type, e.g. PROC_SUPER_MAGIC) of what fd refers to."""
        k = kernel()
        buf = k.ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
        if k.fstatfs(fd, buf) != 0:
            raise _fail("fstatfs")
        return k.ctypes.c_long.from_buffer(buf).value  # f_type: the struct's first field

    def close_fds_from(self, lowest: int, keep: tuple[int, ...] = ()) -> None:
        """Close every fd >= lowest but those in keep, with close_range(2) between them.

        Call it before a seccomp filter is loaded: where the filter denies close_range,
        Python falls back to one close(2) per possible fd (up to RLIMIT_NOFILE).
        """
        start = lowest
        for fd in sorted(k for k in keep if k >= lowest):
            if fd > start:
                os.closerange(start, fd)
            start = max(start, fd + 1)
        os.closerange(start, 1 << 20)

    def write_file(self, path: str, data: str | bytes) -> None:
        """Write data to path; a /proc path only through a verified procfs (linux/procfs.py)."""
        if path.startswith("/proc/"):
            from rongqi.linux import procfs

            procfs.write(path, data, self)
            return
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode() if isinstance(data, str) else data)
        finally:
            os.close(fd)

    # -- capabilities, seccomp, limits, scheduling -----------------------------------
    # Their ctypes code lives in their own modules (caps.py, seccomp.py, sched.py); the init
    # and the helper call them through here, so that a fake kernel sees (and can fail) them.
    def drop_bounding(self, keep: int) -> None:
        from rongqi.linux import caps

        caps.drop_bounding(keep)

    def set_keep_caps(self, on: bool) -> None:
        from rongqi.linux import caps

        caps.set_keep_caps(on)

    def set_caps(self, effective: int, permitted: int, inheritable: int) -> None:
        from rongqi.linux import caps

        caps.set_caps(effective, permitted, inheritable)

    def raise_ambient(self, mask: int) -> None:
        from rongqi.linux import caps

        caps.raise_ambient(mask)

    def load_seccomp(self, compiled: object) -> int | None:
        """Install a compiled filter (linux/seccomp.py); its notify fd when it has a listener."""
        from rongqi.linux import seccomp

        return seccomp.load_filter(compiled)  # type: ignore[arg-type]

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        import resource as _resource

        _resource.setrlimit(resource, (soft, hard))

    def set_personality(self, domain: int) -> None:
        from rongqi.linux import sched

        sched.set_personality(domain)

    def set_scheduler(self, *args: int) -> None:
        from rongqi.linux import sched

        sched.set_scheduler(*args)

    def set_io_priority(self, klass: int, priority: int) -> None:
        from rongqi.linux import sched

        sched.set_io_priority(klass, priority)

    def sched_setaffinity(self, cpus: set[int]) -> None:
        os.sched_setaffinity(0, cpus)

    # -- exec ---------------------------------------------------------------------
    def execve(self, path: str, args: list[str], env: dict[str, str]) -> None:
        os.execve(path, args, env)


# The module-level default, used when no syscall object is passed in.
SYSCALLS = Syscalls()
