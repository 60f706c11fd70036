"""cgroup v1 controllers: each a small unit turning part of a Resources into file writes.

Also v1's stats (runc's events shape) and the cpuset set-up a new v1 cgroup needs. The freezer is
freezer.py's.
"""

from __future__ import annotations

import os

from rongqi.linux.cgroups import convert, files
from rongqi.linux.cgroups.files import CgroupError, exists, read_int, read_keyed, read_or
from rongqi.linux.cgroups.common import CpusetController, PidsController
from rongqi.linux.cgroups.resources import Resources

R = "linux.resources"


class MemoryController:
    name = "memory"
    field = R + ".memory"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.memory is not None and not res.memory.is_empty()

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        m = res.memory
        if m is None:  # wanted() said it is set
            return
        F = R + ".memory"
        _memory_and_swap(d, m.limit, m.swap)
        if m.reservation is not None:
            files.write(d, "memory.soft_limit_in_bytes", convert.v1_limit(m.reservation), F + ".reservation")
        # m.kernel is ignored, as runc 1.1+ does: kmem limits are deprecated and unenforced since Linux 5.16.
        if m.kernel_tcp is not None:
            files.write(d, "memory.kmem.tcp.limit_in_bytes", convert.v1_limit(m.kernel_tcp), F + ".kernelTCP")
        if m.swappiness is not None:
            files.write(d, "memory.swappiness", m.swappiness, F + ".swappiness")
        if m.disable_oom_killer:
            files.write(d, "memory.oom_control", "1", F + ".disableOOMKiller")


def _memory_and_swap(d: str, limit: int | None, swap: int | None) -> None:
    F = R + ".memory"
    has_memsw = exists(d, "memory.memsw.limit_in_bytes")
    if swap not in (None, 0, -1) and not has_memsw:
        raise CgroupError("swap accounting is not enabled in this kernel (no memory.memsw.limit_in_bytes)", F + ".swap")
    if limit == -1 and swap is None and has_memsw:
        # The kernel wants memsw >= limit at all times: lifting the limit lifts memsw first.
        swap = -1
    if not has_memsw:
        swap = None
    if limit and swap:
        # Order the two writes so that memsw >= limit holds after each one.
        current = read_int(d, "memory.memsw.limit_in_bytes", -1)
        if swap == -1 or current < swap:
            files.write(d, "memory.memsw.limit_in_bytes", convert.v1_limit(swap), F + ".swap")
            files.write(d, "memory.limit_in_bytes", convert.v1_limit(limit), F + ".limit")
        else:
            files.write(d, "memory.limit_in_bytes", convert.v1_limit(limit), F + ".limit")
            files.write(d, "memory.memsw.limit_in_bytes", convert.v1_limit(swap), F + ".swap")
        return
    if limit:
        if has_memsw and limit > 0:
            memsw = read_int(d, "memory.memsw.limit_in_bytes", -1)
            if 0 <= memsw < limit:
                # The kernel would say only "Invalid argument"; say which limit is in the way.
                raise CgroupError(
                    f"{limit} is above the current memory+swap limit ({memsw}); raise memory.swap (--memory-swap) with it",
                    F + ".limit",
                    d,
                    22,
                )
        files.write(d, "memory.limit_in_bytes", convert.v1_limit(limit), F + ".limit")
    if swap:
        files.write(d, "memory.memsw.limit_in_bytes", convert.v1_limit(swap), F + ".swap")


class CpuController:
    name = "cpu"
    field = R + ".cpu"

    @staticmethod
    def wanted(res: Resources) -> bool:
        c = res.cpu
        return c is not None and any(
            v is not None
            for v in (c.shares, c.quota, c.period, c.burst, c.realtime_period, c.realtime_runtime, c.idle)
        )

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        c = res.cpu
        if c is None:  # wanted() said it is set
            return
        F = R + ".cpu"
        if c.shares:
            files.write(d, "cpu.shares", c.shares, F + ".shares")
        period_pending = False
        if c.period:
            try:
                files.write(d, "cpu.cfs_period_us", c.period, F + ".period")
            except CgroupError as err:
                # A shorter period can be refused while the old quota still applies; retry after the quota.
                if err.errno != 22 or not c.quota:
                    raise
                period_pending = True
        if c.quota:
            files.write(d, "cpu.cfs_quota_us", convert.v1_limit(c.quota), F + ".quota")
            if period_pending:
                files.write(d, "cpu.cfs_period_us", c.period, F + ".period")
        if c.burst is not None:
            files.write(d, "cpu.cfs_burst_us", c.burst, F + ".burst")
        if c.realtime_period:
            files.write(d, "cpu.rt_period_us", c.realtime_period, F + ".realtimePeriod")
        if c.realtime_runtime:
            files.write(d, "cpu.rt_runtime_us", c.realtime_runtime, F + ".realtimeRuntime")
        if c.idle is not None:
            files.write(d, "cpu.idle", c.idle, F + ".idle")


class BlkioController:
    name = "blkio"
    field = R + ".blockIO"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.block_io is not None and not res.block_io.is_empty()

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        b = res.block_io
        if b is None:  # wanted() said it is set
            return
        F = R + ".blockIO"
        # CFQ's blkio.weight is gone from current kernels; BFQ's takes the same 10..1000 range.
        prefix = "blkio." if exists(d, "blkio.weight") else "blkio.bfq."
        if b.weight:
            files.write(d, prefix + "weight", b.weight, F + ".weight")
        if b.leaf_weight:
            files.write(d, "blkio.leaf_weight", b.leaf_weight, F + ".leafWeight")
        for i, wd in enumerate(b.weight_device or ()):
            where = f"{F}.weightDevice[{i}]"
            if wd.weight:
                files.write(d, prefix + "weight_device", f"{wd.major}:{wd.minor} {wd.weight}", where + ".weight")
            if wd.leaf_weight:
                files.write(d, "blkio.leaf_weight_device", f"{wd.major}:{wd.minor} {wd.leaf_weight}", where + ".leafWeight")
        for attr, key, fname in _THROTTLES:
            for i, t in enumerate(getattr(b, attr) or ()):
                files.write(d, fname, f"{t.major}:{t.minor} {t.rate}", f"{F}.{key}[{i}]")


_THROTTLES = (
    ("throttle_read_bps_device", "throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
    ("throttle_write_bps_device", "throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
    ("throttle_read_iops_device", "throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
    ("throttle_write_iops_device", "throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
)


class HugetlbController:
    name = "hugetlb"
    field = R + ".hugepageLimits"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return bool(res.hugepage_limits)

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        for i, h in enumerate(res.hugepage_limits or ()):
            size = convert.hugepage_name(h.page_size)
            where = f"{R}.hugepageLimits[{i}]"
            files.write(d, f"hugetlb.{size}.limit_in_bytes", h.limit, where + ".limit")
            if exists(d, f"hugetlb.{size}.rsvd.limit_in_bytes"):
                files.write(d, f"hugetlb.{size}.rsvd.limit_in_bytes", h.limit, where + ".limit")


class DevicesController:
    name = "devices"
    field = R + ".devices"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.devices is not None

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        # Rules apply in order, later ones overriding earlier ones, exactly as the v1 lists do.
        for i, rule in enumerate(res.devices or ()):
            fname = "devices.allow" if rule.allow else "devices.deny"
            files.write(d, fname, convert.device_line(rule), f"{R}.devices[{i}]")


class NetClsController:
    name = "net_cls"
    field = R + ".network.classID"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.network is not None and res.network.class_id is not None

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        if res.network is None:  # wanted() said it is set
            return
        files.write(d, "net_cls.classid", res.network.class_id, R + ".network.classID")


class NetPrioController:
    name = "net_prio"
    field = R + ".network.priorities"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.network is not None and bool(res.network.priorities)

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        if res.network is None:  # wanted() said it is set
            return
        for i, p in enumerate(res.network.priorities or ()):
            files.write(d, "net_prio.ifpriomap", f"{p.name} {p.priority}", f"{R}.network.priorities[{i}]")


class RdmaController:
    name = "rdma"
    field = R + ".rdma"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return bool(res.rdma)

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        for dev, limit in (res.rdma or {}).items():
            files.write(d, "rdma.max", convert.rdma_line(dev, limit), f"{R}.rdma.{dev}")


# runc's order: cpuset first, so that later writes never meet a cgroup with no cpus.
CONTROLLERS = (
    CpusetController,
    DevicesController,
    MemoryController,
    CpuController,
    PidsController,
    BlkioController,
    HugetlbController,
    NetClsController,
    NetPrioController,
    RdmaController,
)


def prepare_cpuset(parent: str, d: str) -> None:
    """A v1 cpuset cgroup made with empty cpus and mems refuses tasks: give it the parent's.

    Called for each directory on the container's path, new or existing, top down, so the parent
    has been filled already; one that has its own values is left alone."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read_or(d, name):
            value = read_or(parent, name)
            if value:
                files.write(d, name, value)


def oom_kill_count(d: str) -> int:
    return read_keyed(d, "memory.oom_control").get("oom_kill", 0)


# --- stats (runc's types.Stats) -------------------------------------------------------

_USER_HZ = 100


def stats(dirs: dict[str, str]) -> dict:
    from rongqi.linux.cgroups import stats as shape

    out = shape.empty()
    d = dirs.get("cpuacct")
    if d:
        u = out["cpu"]["usage"]
        u["total"] = read_int(d, "cpuacct.usage")
        u["percpu"] = [int(x) for x in read_or(d, "cpuacct.usage_percpu").split()]
        u["percpu_kernel"] = [int(x) for x in read_or(d, "cpuacct.usage_percpu_sys").split()]
        u["percpu_user"] = [int(x) for x in read_or(d, "cpuacct.usage_percpu_user").split()]
        ticks = read_keyed(d, "cpuacct.stat")
        ns_per_tick = 1_000_000_000 // _USER_HZ
        u["kernel"] = ticks.get("system", 0) * ns_per_tick
        u["user"] = ticks.get("user", 0) * ns_per_tick
    d = dirs.get("cpu")
    if d:
        st = read_keyed(d, "cpu.stat")
        t = out["cpu"]["throttling"]
        t["periods"] = st.get("nr_periods", 0)
        t["throttled_periods"] = st.get("nr_throttled", 0)
        t["throttled_time"] = st.get("throttled_time", 0)
    d = dirs.get("memory")
    if d:
        m = out["memory"]
        raw = read_keyed(d, "memory.stat")
        m["raw"] = raw
        m["cache"] = raw.get("total_cache", raw.get("cache", 0))
        for key, prefix in (("usage", "memory"), ("swap", "memory.memsw"), ("kernel", "memory.kmem"), ("kernelTCP", "memory.kmem.tcp")):
            e = m[key]
            e["usage"] = read_int(d, prefix + ".usage_in_bytes")
            e["max"] = read_int(d, prefix + ".max_usage_in_bytes")
            e["failcnt"] = read_int(d, prefix + ".failcnt")
            e["limit"] = read_int(d, prefix + ".limit_in_bytes")
    d = dirs.get("pids")
    if d:
        out["pids"]["current"] = read_int(d, "pids.current")
        out["pids"]["limit"] = read_int(d, "pids.max")
    d = dirs.get("blkio")
    if d:
        for key, names in (
            ("ioServiceBytesRecursive", ("blkio.io_service_bytes_recursive", "blkio.bfq.io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive")),
            ("ioServicedRecursive", ("blkio.io_serviced_recursive", "blkio.bfq.io_serviced_recursive", "blkio.throttle.io_serviced_recursive")),
        ):
            for name in names:
                if exists(d, name):
                    out["blkio"][key] = _blkio_entries(read_or(d, name))
                    break
    d = dirs.get("hugetlb")
    if d:
        for name in sorted(os.listdir(d)):
            if name.startswith("hugetlb.") and name.endswith(".limit_in_bytes") and ".rsvd." not in name:
                size = name[len("hugetlb.") : -len(".limit_in_bytes")]
                out["hugetlb"][size] = {
                    "usage": read_int(d, f"hugetlb.{size}.usage_in_bytes"),
                    "max": read_int(d, f"hugetlb.{size}.max_usage_in_bytes"),
                    "failcnt": read_int(d, f"hugetlb.{size}.failcnt"),
                }
    return out


def _blkio_entries(text: str) -> list[dict]:
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue  # the "Total N" line
        major, _, minor = parts[0].partition(":")
        entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return entries
