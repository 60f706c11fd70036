"""Namespace kinds: OCI names, clone(2) flags and /proc/PID/ns file names; joining by path.

Which namespaces are made new at clone time and which are joined (and by whom,
the init or the runtime's helper process) is decided in rongqi.oci.creation and rongqi.oci.execution.
Whether the runtime is rootless (runc's rule: not root, or root of a user namespace other
than the initial one) is decided here: rootless().
"""

from __future__ import annotations

import os

from rongqi.linux import syscall as s

# OCI name -> (clone flag, /proc/PID/ns/<file>)
KINDS = {
    "user": (s.CLONE_NEWUSER, "user"),
    "pid": (s.CLONE_NEWPID, "pid"),
    "network": (s.CLONE_NEWNET, "net"),
    "mount": (s.CLONE_NEWNS, "mnt"),
    "ipc": (s.CLONE_NEWIPC, "ipc"),
    "uts": (s.CLONE_NEWUTS, "uts"),
    "cgroup": (s.CLONE_NEWCGROUP, "cgroup"),
    "time": (s.CLONE_NEWTIME, "time"),
}

# The order in which namespaces are joined: user first (it grants the rights
# to join the others), mount last among those the init joins itself.
JOIN_ORDER = ("user", "pid", "time", "network", "ipc", "uts", "cgroup", "mount")


def flag(kind: str) -> int:
    return KINDS[kind][0]


def proc_path(pid: int | str, kind: str) -> str:
    return f"/proc/{pid}/ns/{KINDS[kind][1]}"


def join(sc: s.Syscalls, kind: str, path: str) -> None:
    """setns(2) into the namespace at path (a /proc/PID/ns file or a bind mount of one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise OSError(err.errno, f"open {kind} namespace {path}: {err.strerror}") from None
    try:
        sc.setns(fd, flag(kind), path)
    finally:
        os.close(fd)


def same_as_host(kind: str, path: str) -> bool:
    """True when path is the runtime's own namespace of that kind (joining it is a no-op)."""
    try:
        a = os.stat(path)
        b = os.stat(proc_path("self", kind))
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def in_initial_user_namespace() -> bool:
    """This process is in the host's user namespace, whose uid map is every id to itself (an
    unreadable map counts as the host's: a /proc without user namespaces)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def rootless() -> bool:
    """runc's rootless: not root, or root of a user namespace (a rootless engine's), whose
    "root" holds no capability over the host's cgroups, devices or other users' files."""
    return os.geteuid() != 0 or not in_initial_user_namespace()
