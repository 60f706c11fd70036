"""A recording fake of rongqi.linux.syscall.Syscalls, as youki's test syscall layer.

Calls that would change the kernel's state (mounts, pivot, namespaces, credentials,
exec) are recorded, not made; path lookups and directory creation inside the
rootfs happen for real in a temp dir, which needs no privilege.
"""

from __future__ import annotations

import os

from rongqi.linux import syscall as sysc


class Exec(Exception):
    """Raised by the fake execve: the point where the real one would not return."""


class RecordingSyscalls(sysc.Syscalls):
    def __init__(self):
        self.calls: list[tuple] = []

    def _rec(self, *call) -> None:
        self.calls.append(call)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def index(self, pred) -> int:
        for i, c in enumerate(self.calls):
            if pred(c):
                return i
        raise AssertionError(f"no such call; calls were: {self.calls}")

    # kernel state: recorded only
    def clone(self, flags):
        self._rec("clone", flags)
        return 4242

    def unshare(self, flags):
        self._rec("unshare", flags)

    def setns(self, fd, nstype, path=None):
        self._rec("setns", nstype, path)

    def sethostname(self, name):
        self._rec("sethostname", name)

    def setdomainname(self, name):
        self._rec("setdomainname", name)

    def prctl(self, option, a2=0, a3=0, a4=0, a5=0):
        self._rec("prctl", option, a2)
        return 0

    def join_session_keyring(self, name):
        self._rec("keyring", name)

    def setgroups(self, gids):
        self._rec("setgroups", list(gids))

    def setresgid(self, gid):
        self._rec("setresgid", gid)

    def setresuid(self, uid):
        self._rec("setresuid", uid)

    def mount(self, source, target, fstype, flags, data=None):
        self._rec("mount", source, _name(target), fstype, flags, data)

    def umount2(self, target, flags=0):
        self._rec("umount2", target, flags)

    def mount_setattr(self, fd, path, flags, attr_set, attr_clr, propagation=0):
        self._rec("mount_setattr", _name(f"/proc/self/fd/{fd}"), attr_set, attr_clr)

    def pivot_root(self, new_root, put_old):
        self._rec("pivot_root", new_root, put_old)

    def chroot(self, path):
        self._rec("chroot", path)

    def chdir(self, path):
        self._rec("chdir", path if isinstance(path, str) else _name(f"/proc/self/fd/{path}"))

    def mknodat(self, dirfd, name, mode, device):
        self._rec("mknod", name, mode, device)
        # leave a plain file so later steps find the node
        fd = os.open(name, os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=dirfd)
        os.close(fd)

    def fchownat(self, dirfd, name, uid, gid):
        self._rec("chown", name, uid, gid)

    def chmod(self, path, mode):
        self._rec("chmod", mode)

    def write_file(self, path, data):
        self._rec("write", path, data)

    def close_fds_from(self, lowest, keep=()):
        self._rec("close_fds_from", lowest, tuple(sorted(keep)))

    def fchown(self, fd, uid, gid):
        self._rec("fchown", fd, uid, gid)

    # capabilities, seccomp, limits and scheduling: recorded only
    def drop_bounding(self, keep):
        self._rec("drop_bounding", keep)

    def set_keep_caps(self, on):
        self._rec("keep_caps", on)

    def set_caps(self, effective, permitted, inheritable):
        self._rec("capset", effective, permitted, inheritable)

    def raise_ambient(self, mask):
        self._rec("ambient", mask)

    def load_seccomp(self, compiled):
        self._rec("seccomp", compiled)
        return None

    def setrlimit(self, resource, soft, hard):
        self._rec("setrlimit", resource, soft, hard)

    def set_personality(self, domain):
        self._rec("personality", domain)

    def set_scheduler(self, *args):
        self._rec("sched_setattr", *args)

    def set_io_priority(self, klass, priority):
        self._rec("ioprio_set", klass, priority)

    def sched_setaffinity(self, cpus):
        self._rec("sched_setaffinity", tuple(sorted(cpus)))

    def execve(self, path, args, env):
        self._rec("execve", path, list(args))
        raise Exec()


def _name(target: str) -> str:
    """A /proc/self/fd/N path as the real path it names (for readable assertions)."""
    if target.startswith("/proc/self/fd/"):
        try:
            return os.readlink(target)
        except OSError:
            return target
    return target
