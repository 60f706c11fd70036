"""A fake kernel that can fail any call of the create/exec sequence at its Nth call, across the
runtime, its helper and the container's init (three processes), and a journal of every call.

FaultySyscalls stands for rongqi.linux.syscall.Syscalls: what would change the kernel's state
(mounts, namespaces, credentials, capabilities, seccomp, rlimits, execve) is journalled, not
made; clone is a real clone(CLONE_PARENT) without the namespace flags, so the helper and the
init are real processes (no privilege needed). FaultyOs stands for the `os` module inside the
runtime's modules (state dir, fifo, pipes, fork, config and state files), and FakeCgroup for
rongqi.linux.cgroups.Cgroup. Every call of the three goes to one journal file, one line each
("PID START NAME N ok|FAIL PRIVATE_MNT DETAIL"), written under a POSIX record lock (which,
unlike flock, is per process: a forked child does not share it), so "the Nth call of NAME"
counts across all processes. The fault is an OSError with the chosen errno, as the kernel's.
"""

from __future__ import annotations

import errno as E
import fcntl
import os
from dataclasses import dataclass

from rongqi.linux import syscall as sysc

# The errno a fault at each kind of call raises (EPERM for the rest): what the kernel says there.
ERRNO = {"fork": E.EAGAIN, "clone": E.EAGAIN, "pipe": E.EMFILE, "pipe2": E.EMFILE, "pidfd_open": E.EMFILE, "memfd_create": E.EMFILE,
         "write": E.ENOSPC, "mkdir": E.ENOSPC, "open": E.EACCES, "mount": E.EINVAL, "setrlimit": E.EPERM,
         "cgroup.create": E.ENOSPC, "cgroup.apply": E.EINVAL, "cgroup.add_pid": E.ENOSPC}

# os functions of the runtime's modules that can fail; the rest (close, read, waitpid, kill,
# unlink, rmdir, stat...) are passed through: a close or unlink that fails is no failure path
# of create to test (the fd is gone anyway; cleanup's own errors are ignored by design).
OS_FAULTS = ("mkdir", "open", "mkfifo", "chmod", "chown", "pipe", "pipe2", "fork", "rename", "symlink", "mknod",
             "pidfd_open", "memfd_create", "write")
# Journalled, never failed: cleanup's own steps.
NOTES = ("cgroup.destroy", "cgroup.kill_all")


@dataclass(frozen=True)
class Call:
    pid: int
    start: int
    name: str
    n: int
    failed: bool
    private_mnt: bool
    detail: str


def _children() -> list[int]:
    out: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                out += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return out


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rfind(b")") + 2:].split()[19])


class Journal:
    """The shared record of one run, and the one fault it injects: (name, n, errno) or None."""

    def __init__(self, path: str, fault: tuple[str, int] | None = None):
        self.path = path
        self.fault = fault
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.private_mnt = False  # per process: copied at fork, set by the fake's namespace calls
        self._pid = 0
        self._start = 0

    def point(self, name: str, detail: str = "", filename: str | None = None) -> None:
        """Journal one call; raise the fault if this is the chosen call."""
        pid = os.getpid()
        if pid != self._pid:  # first call in this process (the fields were copied by fork)
            self._pid, self._start = pid, _start_time(pid)
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            n = 1 + sum(1 for c in self._read() if c.name == name)
            fail = self.fault is not None and self.fault == (name, n)
            detail = detail.replace("\n", " ")
            line = f"{pid} {self._start} {name} {n} {'FAIL' if fail else 'ok'} {int(self.private_mnt)} {detail}\n"
            os.write(self.fd, line.encode())
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
        if fail:
            code = ERRNO.get(name, E.EPERM)
            if filename is not None:  # as os's own errors: the path in filename, the reason alone
                raise OSError(code, os.strerror(code), filename)
            raise OSError(code, f"{name}: {os.strerror(code)}")

    def note(self, name: str, detail: str = "") -> None:
        """Journal a call that cannot fail here (cleanup: a cgroup's destroy)."""
        saved, self.fault = self.fault, None
        try:
            self.point(name, detail)
        finally:
            self.fault = saved

    def _read(self) -> list[Call]:
        data = os.pread(self.fd, 1 << 24, 0).decode(errors="replace")
        out = []
        for line in data.splitlines():
            pid, start, name, n, status, mnt, *rest = line.split(" ", 6)
            out.append(Call(int(pid), int(start), name, int(n), status == "FAIL", mnt == "1",
                            rest[0] if rest else ""))
        return out

    def calls(self) -> list[Call]:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            return self._read()
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


class FaultySyscalls(sysc.Syscalls):
    """The kernel, journalled and fallible; state-changing calls are not made (see the module)."""

    def __init__(self, journal: Journal):
        self.j = journal

    # -- namespaces and processes
    def clone(self, flags):
        self.j.point("clone", hex(flags))
        # A real process, but in our own namespaces: CLONE_PARENT keeps it the runtime's child.
        pid = sysc.Syscalls.clone(self, flags & sysc.CLONE_PARENT)
        if pid == 0 and flags & sysc.CLONE_NEWNS:
            self.j.private_mnt = True
        return pid

    def unshare(self, flags):
        self.j.point("unshare", hex(flags))
        if flags & sysc.CLONE_NEWNS:
            self.j.private_mnt = True

    def setns(self, fd, nstype, path=None):
        self.j.point("setns", f"{nstype:#x} {path}")
        if nstype in (0, sysc.CLONE_NEWNS) and path and path.endswith("/mnt"):
            self.j.private_mnt = True

    def sethostname(self, name):
        self.j.point("sethostname", name)

    def setdomainname(self, name):
        self.j.point("setdomainname", name)

    def prctl(self, option, a2=0, a3=0, a4=0, a5=0):
        self.j.point("prctl", f"{option} {a2}")
        return 0

    def join_session_keyring(self, name):
        self.j.point("keyctl", str(name))

    # -- credentials
    def setgroups(self, gids):
        self.j.point("setgroups", str(list(gids)))

    def setresgid(self, gid):
        self.j.point("setresgid", str(gid))

    def setresuid(self, uid):
        self.j.point("setresuid", str(uid))

    # -- mounts
    def mount(self, source, target, fstype, flags, data=None):
        self.j.point("mount", f"{source} {target} {fstype} {flags:#x} {data}")

    def umount2(self, target, flags=0):
        self.j.point("umount2", f"{target} {flags}")

    def mount_setattr(self, fd, path, flags, attr_set, attr_clr, propagation=0):
        self.j.point("mount_setattr", f"{fd} {attr_set:#x} {attr_clr:#x}")

    def pivot_root(self, new_root, put_old):
        self.j.point("pivot_root", new_root)

    def chroot(self, path):
        self.j.point("chroot", path)

    def chdir(self, path):
        self.j.point("chdir", str(path))

    # -- files: made for real inside the test's rootfs (no privilege needed), but fallible
    def openat2(self, dirfd, path, flags, mode=0, resolve=0):
        self.j.point("openat2", path)
        return sysc.Syscalls.openat2(self, dirfd, path, flags, mode, resolve)

    def mkdirat(self, dirfd, name, mode=0o755):
        self.j.point("mkdirat", name)
        sysc.Syscalls.mkdirat(self, dirfd, name, mode)

    def mknodat(self, dirfd, name, mode, device):
        self.j.point("mknod", name)
        fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dirfd)  # a plain file
        os.close(fd)

    def symlinkat(self, target, dirfd, name):
        self.j.point("symlinkat", name)
        sysc.Syscalls.symlinkat(self, target, dirfd, name)

    def fchownat(self, dirfd, name, uid, gid):
        self.j.point("chown", f"{name} {uid} {gid}")

    def chmod(self, path, mode):
        self.j.point("chmod", f"{path} {mode:o}")

    def fchown(self, fd, uid, gid):
        self.j.point("fchown", f"{fd} {uid} {gid}")

    def fstatfs_type(self, fd):
        self.j.point("fstatfs", str(fd))
        return sysc.Syscalls.fstatfs_type(self, fd)

    def close_fds_from(self, lowest, keep=()):
        self.j.point("close_range", f"{lowest} {sorted(keep)}")

    def write_file(self, path, data):
        self.j.point("write_file", path)

    # -- capabilities, seccomp, limits, scheduling
    def drop_bounding(self, keep):
        self.j.point("capbset_drop", hex(keep))

    def set_keep_caps(self, on):
        self.j.point("keepcaps", str(on))

    def set_caps(self, effective, permitted, inheritable):
        self.j.point("capset", f"{effective:#x} {permitted:#x} {inheritable:#x}")

    def raise_ambient(self, mask):
        self.j.point("ambient", hex(mask))

    def load_seccomp(self, compiled):
        self.j.point("seccomp")
        return None

    def setrlimit(self, resource, soft, hard):
        self.j.point("setrlimit", f"{resource} {soft} {hard}")

    def set_personality(self, domain):
        self.j.point("personality", str(domain))

    def set_scheduler(self, *args):
        self.j.point("sched_setattr", str(args))

    def set_io_priority(self, klass, priority):
        self.j.point("ioprio_set", f"{klass} {priority}")

    def sched_setaffinity(self, cpus):
        self.j.point("sched_setaffinity", str(sorted(cpus)))

    def execve(self, path, args, env):
        self.j.point("execve", f"{path} {list(args)}")
        os._exit(0)  # the program "ran" and exited 0


class FaultyOs:
    """The os module for the runtime's modules: the calls in OS_FAULTS are journalled and may
    fail; everything else is the real module's."""

    def __init__(self, journal: Journal):
        self._j = journal
        for name in OS_FAULTS:
            real = getattr(os, name, None)
            if real is not None:
                setattr(self, name, self._wrap(name, real))

    def _wrap(self, name, real):
        j = self._j

        def call(*args, **kw):
            path = args[0] if args and isinstance(args[0], str) else None
            j.point(name, " ".join(str(a) for a in args[:2]) if name != "write" else str(args[0]), path)
            return real(*args, **kw)

        call.__name__ = name
        return call

    def __getattr__(self, name):
        return getattr(os, name)


class FakeCgroup:
    """rongqi.linux.cgroups.Cgroup, journalled and fallible; `existing` is every cgroup made and
    not destroyed (the runtime's own process does all cgroup work, so a plain set serves)."""

    existing: set[str] = set()
    journal: Journal | None = None

    def __init__(self, path: str):
        self.path = path
        self.mode = "fake"
        self.root = ""
        self.dirs: dict[str, str] = {}

    @classmethod
    def open(cls, path: str, **_kw) -> FakeCgroup:
        return cls(path)

    @classmethod
    def from_dict(cls, d: dict) -> FakeCgroup:
        return cls(d["path"])

    def to_dict(self) -> dict:
        return {"path": self.path, "mode": self.mode, "root": self.root, "dirs": {}}

    def frozen_at(self) -> None:
        return None

    def is_frozen(self) -> bool:
        return False

    def create(self) -> bool:
        self.journal.point("cgroup.create", self.path)
        self.existing.add(self.path)
        return True

    def apply(self, res) -> None:
        self.journal.point("cgroup.apply", self.path)

    def add_pid(self, pid: int) -> None:
        self.journal.point("cgroup.add_pid", str(pid))

    def pids(self, recursive: bool = True) -> list[int]:
        return []

    def kill_all(self, sig: int) -> None:
        self.journal.note("cgroup.kill_all", str(sig))

    def destroy(self) -> None:
        self.journal.note("cgroup.destroy", self.path)
        self.existing.discard(self.path)
