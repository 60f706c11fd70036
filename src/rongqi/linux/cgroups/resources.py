"""Plain value classes for an OCI LinuxResources block, as the cgroup controllers consume it.

None means "not set: leave the kernel's value alone", so one Resources serves create and update.
"""

from __future__ import annotations


class _Value:
    """Slots-only value base: keyword construction, equality and repr from __slots__ (each
    class also annotates its slots, for mypy: annotations only, the values live in the slots)."""

    __slots__ = ()

    def __init__(self, **kw: object) -> None:
        name: str
        for name in self.__slots__:
            object.__setattr__(self, name, kw.pop(name, None))
        if kw:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(kw)}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._names())

    def __repr__(self) -> str:
        parts = [f"{n}={getattr(self, n)!r}" for n in self._names() if getattr(self, n) is not None]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _names(self) -> tuple[str, ...]:
        return self.__slots__  # a subclass's: a tuple of names

    def is_empty(self) -> bool:
        for n in self._names():
            v = getattr(self, n)
            if v is None:
                continue
            if isinstance(v, _Value):
                if not v.is_empty():
                    return False
            elif isinstance(v, (list, dict)):
                if v:
                    return False
            else:
                return False
        return True


class Memory(_Value):
    # Bytes; -1 means unlimited. swap is memory+swap together, as in the OCI spec and cgroup v1.
    __slots__ = (
        "limit",
        "reservation",
        "swap",
        "kernel",
        "kernel_tcp",
        "swappiness",
        "disable_oom_killer",
        "use_hierarchy",
        "check_before_update",
    )
    limit: int | None
    reservation: int | None
    swap: int | None
    kernel: int | None
    kernel_tcp: int | None
    swappiness: int | None
    disable_oom_killer: bool | None
    use_hierarchy: bool | None
    check_before_update: bool | None


class Cpu(_Value):
    # shares (v1 units, 2..262144), quota/period/burst in microseconds; cpus/mems as "0-3,5".
    __slots__ = (
        "shares",
        "quota",
        "burst",
        "period",
        "realtime_runtime",
        "realtime_period",
        "cpus",
        "mems",
        "idle",
    )
    shares: int | None
    quota: int | None
    burst: int | None
    period: int | None
    realtime_runtime: int | None
    realtime_period: int | None
    cpus: str | None
    mems: str | None
    idle: int | None


class Pids(_Value):
    # -1 means unlimited ("max").
    __slots__ = ("limit",)
    limit: int | None


class WeightDevice(_Value):
    __slots__ = ("major", "minor", "weight", "leaf_weight")
    major: int
    minor: int
    weight: int | None
    leaf_weight: int | None


class ThrottleDevice(_Value):
    __slots__ = ("major", "minor", "rate")
    major: int
    minor: int
    rate: int


class BlockIO(_Value):
    __slots__ = (
        "weight",
        "leaf_weight",
        "weight_device",
        "throttle_read_bps_device",
        "throttle_write_bps_device",
        "throttle_read_iops_device",
        "throttle_write_iops_device",
    )
    weight: int | None
    leaf_weight: int | None
    weight_device: list[WeightDevice] | None
    throttle_read_bps_device: list[ThrottleDevice] | None
    throttle_write_bps_device: list[ThrottleDevice] | None
    throttle_read_iops_device: list[ThrottleDevice] | None
    throttle_write_iops_device: list[ThrottleDevice] | None


class HugepageLimit(_Value):
    # page_size as in the spec ("2MB", "1GB"); limit in bytes.
    __slots__ = ("page_size", "limit")
    page_size: str
    limit: int


class DeviceRule(_Value):
    # type "a" | "c" | "b"; major/minor None means any; access a subset of "rwm".
    __slots__ = ("allow", "type", "major", "minor", "access")
    allow: bool
    type: str
    major: int | None
    minor: int | None
    access: str


class InterfacePriority(_Value):
    __slots__ = ("name", "priority")
    name: str
    priority: int


class Network(_Value):
    __slots__ = ("class_id", "priorities")
    class_id: int | None
    priorities: list[InterfacePriority] | None


class RdmaLimit(_Value):
    __slots__ = ("hca_handles", "hca_objects")
    hca_handles: int | None
    hca_objects: int | None


class Resources(_Value):
    """One LinuxResources block.

    hugepage_limits and devices are lists (None = not given); unified maps cgroup v2 file
    names to values; rdma maps a device name to an RdmaLimit.
    """

    __slots__ = (
        "memory",
        "cpu",
        "pids",
        "block_io",
        "hugepage_limits",
        "devices",
        "unified",
        "rdma",
        "network",
    )
    memory: Memory | None
    cpu: Cpu | None
    pids: Pids | None
    block_io: BlockIO | None
    hugepage_limits: list[HugepageLimit] | None
    devices: list[DeviceRule] | None
    unified: dict[str, str] | None
    rdma: dict[str, RdmaLimit] | None
    network: Network | None


# Devices every container may use whatever its rules say (runc's AllowedDevices):
# (type, major, minor, access); None is any.
ALLOWED_DEVICES = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"),
    ("c", 1, 9, "rwm"), ("c", 5, 1, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"),
)


def with_allowed_devices(res: Resources | None) -> Resources:
    """res (a new Resources if None) with runc's allowed devices after its own rules."""
    if res is None:
        res = Resources()
    # A node in linux.devices is only created: whether the container may use it is for
    # linux.resources.devices to say (runc adds no rule for it either; docker and podman
    # send an explicit allow rule with each --device). Only runc's defaults are implicit.
    rules = list(res.devices or [])
    for t, major, minor, access in ALLOWED_DEVICES:
        rules.append(DeviceRule(allow=True, type=t, major=major, minor=minor, access=access))
    res.devices = rules
    return res
