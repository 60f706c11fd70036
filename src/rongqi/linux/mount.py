"""mount(2) option strings: "ro,nosuid,rbind,rslave,size=64k" -> flags, propagation and data.

The tables follow runc's (libcontainer/specconv): flags that set, flags that clear,
propagation kinds, recursive mount_setattr attributes, and everything else is data.
"""

from __future__ import annotations

from rongqi.linux import syscall as s

# name -> (clear?, flag)
FLAGS = {
    "acl": (False, 1 << 16),
    "async": (True, s.MS_SYNCHRONOUS),
    "atime": (True, s.MS_NOATIME),
    "bind": (False, s.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, s.MS_NODEV),
    "diratime": (True, s.MS_NODIRATIME),
    "dirsync": (False, s.MS_DIRSYNC),
    "exec": (True, s.MS_NOEXEC),
    "iversion": (False, s.MS_I_VERSION),
    "lazytime": (False, s.MS_LAZYTIME),
    "loud": (True, s.MS_SILENT),
    "mand": (False, s.MS_MANDLOCK),
    "noacl": (True, 1 << 16),
    "noatime": (False, s.MS_NOATIME),
    "nodev": (False, s.MS_NODEV),
    "nodiratime": (False, s.MS_NODIRATIME),
    "noexec": (False, s.MS_NOEXEC),
    "noiversion": (True, s.MS_I_VERSION),
    "nolazytime": (True, s.MS_LAZYTIME),
    "nomand": (True, s.MS_MANDLOCK),
    "norelatime": (True, s.MS_RELATIME),
    "nostrictatime": (True, s.MS_STRICTATIME),
    "nosuid": (False, s.MS_NOSUID),
    "nosymfollow": (False, s.MS_NOSYMFOLLOW),
    "rbind": (False, s.MS_BIND | s.MS_REC),
    "relatime": (False, s.MS_RELATIME),
    "remount": (False, s.MS_REMOUNT),
    "ro": (False, s.MS_RDONLY),
    "rw": (True, s.MS_RDONLY),
    "silent": (False, s.MS_SILENT),
    "strictatime": (False, s.MS_STRICTATIME),
    "suid": (True, s.MS_NOSUID),
    "sync": (False, s.MS_SYNCHRONOUS),
    "symfollow": (True, s.MS_NOSYMFOLLOW),
}

PROPAGATION = {
    "private": s.MS_PRIVATE,
    "rprivate": s.MS_PRIVATE | s.MS_REC,
    "shared": s.MS_SHARED,
    "rshared": s.MS_SHARED | s.MS_REC,
    "slave": s.MS_SLAVE,
    "rslave": s.MS_SLAVE | s.MS_REC,
    "unbindable": s.MS_UNBINDABLE,
    "runbindable": s.MS_UNBINDABLE | s.MS_REC,
}

# Recursive attributes (mount_setattr with AT_RECURSIVE): name -> (clear?, attr)
RECURSIVE = {
    "rro": (False, s.MOUNT_ATTR_RDONLY),
    "rrw": (True, s.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, s.MOUNT_ATTR_NOSUID),
    "rsuid": (True, s.MOUNT_ATTR_NOSUID),
    "rnodev": (False, s.MOUNT_ATTR_NODEV),
    "rdev": (True, s.MOUNT_ATTR_NODEV),
    "rnoexec": (False, s.MOUNT_ATTR_NOEXEC),
    "rexec": (True, s.MOUNT_ATTR_NOEXEC),
    "rnoatime": (False, s.MOUNT_ATTR_NOATIME),
    "ratime": (True, s.MOUNT_ATTR_NOATIME),
    "rnodiratime": (False, s.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, s.MOUNT_ATTR_NODIRATIME),
    "rstrictatime": (False, s.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, s.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, s.MOUNT_ATTR_NOSYMFOLLOW),
}

# Options that are ours, not the kernel's.
EXTENSIONS = ("tmpcopyup", "idmap", "ridmap")


class MountOptions:
    __slots__ = ("flags", "clear", "propagation", "data", "attr_set", "attr_clr", "extensions")

    def __init__(self):
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        self.data: list[str] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.extensions: list[str] = []

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & s.MS_BIND)

    def data_string(self) -> str:
        return ",".join(self.data)


def parse_options(options: list[str]) -> MountOptions:
    m = MountOptions()
    for opt in options:
        f = FLAGS.get(opt)
        if f is not None:
            clear, flag = f
            if clear:
                m.flags &= ~flag
                m.clear |= flag
            else:
                m.flags |= flag
                m.clear &= ~flag
            continue
        p = PROPAGATION.get(opt)
        if p is not None:
            m.propagation.append(p)
            continue
        r = RECURSIVE.get(opt)
        if r is not None:
            clear, attr = r
            if clear:
                m.attr_clr |= attr
                m.attr_set &= ~attr
            else:
                m.attr_set |= attr
                m.attr_clr &= ~attr
            continue
        if opt in EXTENSIONS:
            m.extensions.append(opt)
            continue
        m.data.append(opt)
    return m


# statvfs f_flag bits (ST_*) -> mount flags, to keep "locked" flags on a bind remount
_ST_TO_MS = ((1, s.MS_RDONLY), (2, s.MS_NOSUID), (4, s.MS_NODEV), (8, s.MS_NOEXEC),
             (1024, s.MS_NOATIME), (2048, s.MS_NODIRATIME), (4096, s.MS_RELATIME))


def locked_flags(path: str) -> int:
    """Flags of the mount at path that a remount must keep (EPERM otherwise in a user ns)."""
    import os

    st = os.statvfs(path)
    out = 0
    for st_bit, ms in _ST_TO_MS:
        if st.f_flag & st_bit:
            out |= ms
    return out & (s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC | s.MS_RDONLY)
