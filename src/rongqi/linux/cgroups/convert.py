"""Value conversions shared by the v1 and v2 controllers (runc's rules, in one place).

shares<->weight, blkio weight->io.weight, swap semantics, hugepage size names, device and rdma lines.
"""

from __future__ import annotations

from rongqi.linux.cgroups.resources import DeviceRule, RdmaLimit

MAX_SHARES = 262144
MIN_SHARES = 2


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), runc's ConvertCPUSharesToCgroupV2Value."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), runc's ConvertBlkIOToIOWeightValue."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def v1_limit(value: int) -> str:
    # cgroup v1 takes -1 for "unlimited".
    return "-1" if value < 0 else str(value)


def v2_limit(value: int) -> str:
    return "max" if value < 0 else str(value)


def swap_v2(memory: int | None, swap: int | None, field: str = "linux.resources.memory.swap") -> int | None:
    """OCI memory.swap (memory+swap) -> memory.swap.max (swap alone); -1 = unlimited.

    runc's ConvertMemorySwapToCgroupV2Value, with its errors; returns None when nothing to write.
    """
    from rongqi.linux.cgroups.files import CgroupError

    if swap is None or swap == 0:  # 0 means "not set", as in runc
        return None
    if swap == -1:
        return -1
    if memory is None or memory in (0, -1):
        raise CgroupError("cannot set a swap limit without a memory limit (on cgroup v2 swap is counted apart from memory)", field)
    if memory > swap:
        raise CgroupError(f"memory+swap ({swap}) must be >= memory.limit ({memory})", field)
    return swap - memory


def hugepage_name(page_size: str) -> str:
    """The spec's "2MB"/"1GB"/"64KB" -> the kernel's file infix ("2MB", "1GB", "64KB").

    The kernel names files hugetlb.<size>.*, with the size in the largest unit that divides it.
    """
    size = hugepage_bytes(page_size)
    for unit, n in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size % n == 0:
            return f"{size // n}{unit}"
    return f"{size}B"


def hugepage_bytes(page_size: str) -> int:
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = page_size.strip().upper()
    if s.endswith("IB"):
        s = s[:-2] + "B"
    for suffix in ("KB", "MB", "GB", "TB", "K", "M", "G"):
        if s.endswith(suffix) and s[: -len(suffix)].isdigit():
            return int(s[: -len(suffix)]) * units[suffix]
    if s.endswith("B") and s[:-1].isdigit():
        return int(s[:-1])
    raise ValueError(f"not a page size: {page_size!r}")


def device_line(rule: DeviceRule) -> str:
    """A rule as the v1 devices cgroup wants it: "c 1:3 rwm", "a *:* rwm"."""
    kind = rule.type or "a"
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{kind} {major}:{minor} {rule.access or 'rwm'}"


def rdma_line(device: str, limit: RdmaLimit) -> str:
    parts = [device]
    if limit.hca_handles is not None:
        parts.append(f"hca_handle={limit.hca_handles}")
    if limit.hca_objects is not None:
        parts.append(f"hca_object={limit.hca_objects}")
    return " ".join(parts)


def parse_cpu_list(text: str) -> list[int]:
    """ "0-3,5" -> [0, 1, 2, 3, 5]; raises ValueError on anything else."""
    out: list[int] = []
    text = text.strip()
    if not text:
        return out
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad cpu list element {part!r}")
        a = int(lo)
        b = int(hi) if sep else a
        if b < a:
            raise ValueError(f"bad cpu range {part!r}")
        out.extend(range(a, b + 1))
    return out
