"""Linux capabilities: names <-> numbers and the five sets of this process.

On the runtime's start path: standard library and ctypes only, plain classes.
"""

from __future__ import annotations

import errno as _errno
import os

# The kernel's numbering (include/uapi/linux/capability.h).
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
_NAMES = {v: k for k, v in CAPABILITIES.items()}

_PR_SET_KEEPCAPS = 8
_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class UnknownCapability(ValueError):
    """A capability name that no kernel defines (a typo, or not a CAP_ name)."""

    def __init__(self, name: str):
        super().__init__(f"unknown capability {name!r}")
        self.name = name


class CapSets:
    """The five sets of one process, each a bit mask (bit n = capability n)."""

    __slots__ = ("bounding", "effective", "permitted", "inheritable", "ambient")

    def __init__(self, bounding: int = 0, effective: int = 0, permitted: int = 0,
                 inheritable: int = 0, ambient: int = 0):
        self.bounding = bounding
        self.effective = effective
        self.permitted = permitted
        self.inheritable = inheritable
        self.ambient = ambient

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CapSets):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}={getattr(self, s):#x}" for s in self.__slots__)
        return f"CapSets({inner})"


TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

# Set on first use (_c): ctypes and the structures made with it.
_libc: Any = None
_CapHeader: Any = None
_CapData: Any = None
ctypes: Any = None  # imported on first use: reading and checking names needs no ctypes (start-up cost)


def _c():
    global _libc, _CapHeader, _CapData, ctypes
    if _libc is None:
        import ctypes as ct

        ctypes = ct

        class _Header(ct.Structure):
            _fields_ = [("version", ct.c_uint32), ("pid", ct.c_int)]

        class _Data(ct.Structure):
            _fields_ = [("effective", ct.c_uint32), ("permitted", ct.c_uint32),
                        ("inheritable", ct.c_uint32)]

        _CapHeader, _CapData = _Header, _Data
        lib = ctypes.CDLL(None, use_errno=True)
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                              ctypes.c_ulong, ctypes.c_ulong]
        lib.prctl.restype = ctypes.c_int
        lib.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
        lib.capset.restype = ctypes.c_int
        _libc = lib
    return _libc


def _prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "prctl") -> int:
    rc = _c().prctl(option, arg2, arg3, 0, 0)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {_strerror(err)}")
    return rc


def _strerror(err: int) -> str:
    return os.strerror(err)


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except OSError:
            # Without /proc (early in a container's setup), ask the kernel cap by
            # cap: PR_CAPBSET_READ fails with EINVAL past the last one.
            n = 0
            while n < 63 and _c().prctl(_PR_CAPBSET_READ, n + 1, 0, 0, 0) >= 0:
                n += 1
            _last_cap = n
    return _last_cap


def mask(names: list[str]) -> int:
    """The bit mask of the named capabilities.

    A name no kernel defines raises UnknownCapability. A known name past this
    kernel's last capability is left out, as runc leaves it out (the runtime-spec
    asks runtimes not to fail on capabilities they cannot grant).
    """
    top = last_cap()
    m = 0
    for name in names:
        n = CAPABILITIES.get(name)
        if n is None:
            raise UnknownCapability(name)
        if n <= top:
            m |= 1 << n
    return m


def unknown(names: list[str]) -> list[str]:
    """The names in names that no kernel defines (mask raises on the first of them).

    runc warns about these and goes on; a caller that wants runc's leniency
    filters them out with this and logs them first."""
    return [n for n in names if n not in CAPABILITIES]


def unsupported(names: list[str]) -> list[str]:
    """The known names in names that this kernel does not have (skipped by mask)."""
    top = last_cap()
    return [n for n in names if CAPABILITIES.get(n, -1) > top]


def names(mask: int) -> list[str]:
    """Capability names in mask, in kernel order; unnamed bits become "CAP_<n>"."""
    out = []
    n = 0
    while mask >> n:
        if mask >> n & 1:
            out.append(_NAMES.get(n, f"CAP_{n}"))
        n += 1
    return out


def current() -> CapSets:
    """This process's five sets, from /proc/self/status."""
    with open("/proc/self/status", "rb") as f:
        text = f.read()
    sets = CapSets()
    fields = {b"CapBnd": "bounding", b"CapEff": "effective", b"CapPrm": "permitted",
              b"CapInh": "inheritable", b"CapAmb": "ambient"}
    for line in text.splitlines():
        key, _, value = line.partition(b":")
        slot = fields.get(key)
        if slot is not None:
            setattr(sets, slot, int(value.strip(), 16))
    return sets


def _bounding_now() -> int:
    # From /proc/self/status (CapBnd) rather than prctl(PR_CAPBSET_READ) per capability:
    # the runtime checks this before it has any other use for ctypes.
    return current().bounding


def drop_bounding(keep: int) -> None:
    """Drop from the bounding set every capability not in keep (needs CAP_SETPCAP)."""
    c = _c()
    for n in range(last_cap() + 1):
        if keep >> n & 1:
            continue
        if c.prctl(_PR_CAPBSET_DROP, n, 0, 0, 0) < 0:
            err = ctypes.get_errno()
            if err == _errno.EINVAL:  # a kernel without this cap: nothing to drop
                continue
            hint = " (dropping the bounding set needs CAP_SETPCAP)" if err == _errno.EPERM else ""
            raise OSError(err, f"drop {_NAMES.get(n, n)} from the bounding set: "
                               f"{_strerror(err)}{hint}")


def set_keep_caps(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across the change away from uid 0."""
    _prctl(_PR_SET_KEEPCAPS, 1 if on else 0, what="prctl(PR_SET_KEEPCAPS)")


def set_caps(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2), version 3: set the effective, permitted and inheritable sets."""
    c = _c()
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    if c.capset(ctypes.byref(hdr), data) == 0:
        return
    err = ctypes.get_errno()
    msg = f"capset: {_strerror(err)}"
    if err == _errno.EPERM:
        # Say which capabilities made the kernel refuse, rather than a bare EPERM.
        now = current()
        beyond = permitted & ~now.permitted
        if beyond:
            msg = ("capset: " + ", ".join(f"capability {n} is not in the runtime's permitted set"
                                          for n in names(beyond)))
        elif effective & ~permitted:
            msg = ("capset: effective capabilities " + ", ".join(names(effective & ~permitted))
                   + " are not in the permitted set")
        else:
            # The kernel's rules (cap_capset): new pI within old pI | bounding, and
            # without CAP_SETPCAP also within old pI | pP.
            extra = inheritable & ~(now.inheritable | now.bounding)
            if not now.effective >> CAPABILITIES["CAP_SETPCAP"] & 1:
                extra |= inheritable & ~(now.inheritable | now.permitted)
            if extra:
                msg = ("capset: inheritable capabilities " + ", ".join(names(extra))
                       + " are beyond what this process may pass on")
    raise OSError(err, msg)


def raise_ambient(mask: int) -> None:
    """Make mask exactly the ambient set (each cap must be permitted and inheritable)."""
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, what="prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    c = _c()
    for name_ in names(mask):
        n = CAPABILITIES.get(name_)
        if n is None:
            n = int(name_[4:])
        if c.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, n, 0, 0) < 0:
            err = ctypes.get_errno()
            hint = (" (an ambient capability must be in both the permitted and the "
                    "inheritable set)") if err == _errno.EPERM else ""
            raise OSError(err, f"raise ambient {name_}: {_strerror(err)}{hint}")


def missing_from_host(mask: int) -> int:
    """The capabilities in mask that this process's bounding set lacks.

    Such capabilities can never be granted by this process (this machine's root,
    for one, has no CAP_SYS_RESOURCE); the caller decides whether to warn and
    skip them or to fail with their names.
    """
    return mask & ~_bounding_now()
