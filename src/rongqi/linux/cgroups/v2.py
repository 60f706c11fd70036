"""cgroup v2 controllers: each a small unit turning part of a Resources into unified-file writes.

Also stats in runc's events shape, and the controller-availability checks v2 needs. The freezer is
freezer.py's.
"""

from __future__ import annotations

import os

from rongqi.linux.cgroups import convert, files
from rongqi.linux.cgroups.files import CgroupError, exists, read_int, read_keyed, read_or
from rongqi.linux.cgroups.common import CpusetController, PidsController
from rongqi.linux.cgroups.resources import Resources

R = "linux.resources"


def enabled_controllers(d: str) -> set[str]:
    """Controllers usable in cgroup d (its cgroup.controllers: what the parent delegates)."""
    return set(read_or(d, "cgroup.controllers").split())


def require(d: str, controller: str, field: str) -> None:
    if controller not in enabled_controllers(d):
        parent = os.path.dirname(d)
        raise CgroupError(
            f"the {controller} controller is not enabled for this cgroup ({parent}/cgroup.subtree_control"
            f" lacks it; available here: {read_or(d, 'cgroup.controllers') or 'none'})",
            field,
            d,
        )


class MemoryController:
    name = "memory"
    field = R + ".memory"

    @staticmethod
    def wanted(res: Resources) -> bool:
        m = res.memory
        return m is not None and any(v is not None for v in (m.limit, m.reservation, m.swap))

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        m = res.memory
        if m is None:  # wanted() said it is set
            return
        F = R + ".memory"
        # kernel, kernelTCP, swappiness and disableOOMKiller have no cgroup v2 file; runc ignores them too.
        if m.swap is not None:
            limit = m.limit
            if limit is None:
                limit = read_int(d, "memory.max", -1) or -1
            swap = convert.swap_v2(limit, m.swap, F + ".swap")
            if swap is not None:
                if not exists(d, "memory.swap.max"):
                    if swap != -1:
                        raise CgroupError("swap accounting is not enabled in this kernel (no memory.swap.max)", F + ".swap")
                else:
                    files.write(d, "memory.swap.max", convert.v2_limit(swap), F + ".swap")
        if m.limit:
            files.write(d, "memory.max", convert.v2_limit(m.limit), F + ".limit")
        if m.reservation:
            files.write(d, "memory.low", convert.v2_limit(m.reservation), F + ".reservation")


class CpuController:
    name = "cpu"
    field = R + ".cpu"

    @staticmethod
    def wanted(res: Resources) -> bool:
        c = res.cpu
        return c is not None and any(v is not None for v in (c.shares, c.quota, c.period, c.burst, c.idle, c.realtime_period, c.realtime_runtime))

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        c = res.cpu
        if c is None:  # wanted() said it is set
            return
        F = R + ".cpu"
        if c.realtime_period or c.realtime_runtime:
            field = F + (".realtimeRuntime" if c.realtime_runtime else ".realtimePeriod")
            raise CgroupError("real-time CPU limits do not exist in cgroup v2", field)
        if c.shares:
            files.write(d, "cpu.weight", convert.shares_to_weight(c.shares), F + ".shares")
        if c.idle is not None:
            files.write(d, "cpu.idle", c.idle, F + ".idle")
        if c.quota or c.period:
            # cpu.max holds both; keep the half that this update does not name.
            cur_quota, _, cur_period = read_or(d, "cpu.max", "max 100000").partition(" ")
            quota = cur_quota if not c.quota else convert.v2_limit(c.quota)
            period = c.period or cur_period or "100000"
            files.write(d, "cpu.max", f"{quota} {period}", F + (".quota" if c.quota else ".period"))
        if c.burst is not None:
            files.write(d, "cpu.max.burst", c.burst, F + ".burst")


class IoController:
    name = "io"
    field = R + ".blockIO"

    @staticmethod
    def wanted(res: Resources) -> bool:
        b = res.block_io
        return b is not None and not b.is_empty()

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        b = res.block_io
        if b is None:  # wanted() said it is set
            return
        F = R + ".blockIO"
        # BFQ takes blkio's 10..1000 range as is; the generic io.weight wants 1..10000.
        bfq = exists(d, "io.bfq.weight")
        if b.weight:
            if bfq:
                files.write(d, "io.bfq.weight", b.weight, F + ".weight")
            else:
                files.write(d, "io.weight", f"default {convert.blkio_weight_to_io_weight(b.weight)}", F + ".weight")
        # leafWeight has no v2 counterpart (v2 has no internal tasks to weigh against): ignored, as by runc.
        for i, wd in enumerate(b.weight_device or ()):
            if not wd.weight:
                continue
            if bfq:
                files.write(d, "io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}", f"{F}.weightDevice[{i}].weight")
            else:
                w = convert.blkio_weight_to_io_weight(wd.weight)
                files.write(d, "io.weight", f"{wd.major}:{wd.minor} {w}", f"{F}.weightDevice[{i}].weight")
        for attr, key, io_key in _THROTTLES:
            for i, t in enumerate(getattr(b, attr) or ()):
                rate = "max" if t.rate == 0 else t.rate  # 0 removes a v1 throttle; "max" does on v2
                files.write(d, "io.max", f"{t.major}:{t.minor} {io_key}={rate}", f"{F}.{key}[{i}]")


_THROTTLES = (
    ("throttle_read_bps_device", "throttleReadBpsDevice", "rbps"),
    ("throttle_write_bps_device", "throttleWriteBpsDevice", "wbps"),
    ("throttle_read_iops_device", "throttleReadIOPSDevice", "riops"),
    ("throttle_write_iops_device", "throttleWriteIOPSDevice", "wiops"),
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
            where = f"{R}.hugepageLimits[{i}].limit"
            files.write(d, f"hugetlb.{size}.max", convert.v2_limit(h.limit), where)
            if exists(d, f"hugetlb.{size}.rsvd.max"):
                files.write(d, f"hugetlb.{size}.rsvd.max", convert.v2_limit(h.limit), where)


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


class NetworkController:
    name = ""  # no v2 controller: always refused
    field = R + ".network"

    @staticmethod
    def wanted(res: Resources) -> bool:
        n = res.network
        return n is not None and (n.class_id is not None or bool(n.priorities))

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        raise CgroupError("net_cls and net_prio are cgroup v1 controllers; cgroup v2 has no equivalent", R + ".network")


class DevicesController:
    name = ""  # enforced by an eBPF program attached to the cgroup, not by a controller
    field = R + ".devices"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.devices is not None

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        from rongqi.linux.cgroups import ebpf

        ebpf.set_device_filter(d, res.devices or [], R + ".devices")


class UnifiedController:
    name = ""  # each key names its own controller
    field = R + ".unified"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return bool(res.unified)

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        available = enabled_controllers(d)
        for key, value in (res.unified or {}).items():
            field = f"{R}.unified.{key}"
            controller = key.partition(".")[0]
            if controller != "cgroup" and controller not in available:
                require(d, controller, field)
            if not exists(d, key):
                raise CgroupError(f"no such cgroup v2 file {key!r} in {d}", field, d)
            files.write(d, key, value, field)


CONTROLLERS = (
    CpusetController,
    DevicesController,
    MemoryController,
    CpuController,
    PidsController,
    IoController,
    HugetlbController,
    RdmaController,
    NetworkController,
    UnifiedController,
)


def apply(d: str, res: Resources, controllers: tuple = CONTROLLERS) -> None:
    for ctrl in controllers:
        if ctrl.wanted(res):
            if ctrl.name:
                require(d, ctrl.name, ctrl.field)
            ctrl.apply(d, res)


def enable_in_ancestors(root: str, dirs: list[str]) -> None:
    """Delegate down to each new ancestor what the root already delegates; never change the root.

    The cgroup itself needs nothing in its own subtree_control: that would only matter for
    children, and writing it is refused once processes live there (no internal processes rule).
    """
    wanted = read_or(root, "cgroup.subtree_control").split()
    if not wanted:
        return
    for d in dirs:
        have = set(read_or(d, "cgroup.subtree_control").split())
        usable = enabled_controllers(d)
        missing = [c for c in wanted if c not in have and c in usable]
        if missing:
            try:
                files.write(d, "cgroup.subtree_control", " ".join("+" + c for c in missing))
            except CgroupError:
                pass  # e.g. processes in that ancestor; apply() names the field that needs the controller


def oom_kill_count(d: str) -> int:
    return read_keyed(d, "memory.events").get("oom_kill", 0)


# --- stats (runc's types.Stats) -------------------------------------------------------

def stats(d: str) -> dict:
    from rongqi.linux.cgroups import stats as shape

    out = shape.empty()
    st = read_keyed(d, "cpu.stat")
    u = out["cpu"]["usage"]
    u["total"] = st.get("usage_usec", 0) * 1000
    u["user"] = st.get("user_usec", 0) * 1000
    u["kernel"] = st.get("system_usec", 0) * 1000
    t = out["cpu"]["throttling"]
    t["periods"] = st.get("nr_periods", 0)
    t["throttled_periods"] = st.get("nr_throttled", 0)
    t["throttled_time"] = st.get("throttled_usec", 0) * 1000
    if exists(d, "memory.current"):
        m = out["memory"]
        raw = read_keyed(d, "memory.stat")
        m["raw"] = raw
        m["cache"] = raw.get("file", 0)
        events = read_keyed(d, "memory.events")
        m["usage"] = {
            "usage": read_int(d, "memory.current"),
            "max": read_int(d, "memory.peak"),
            "limit": _limit(read_or(d, "memory.max")),
            "failcnt": events.get("max", 0),
        }
        if exists(d, "memory.swap.current"):
            m["swap"] = {
                "usage": read_int(d, "memory.swap.current"),
                "max": read_int(d, "memory.swap.peak"),
                "limit": _limit(read_or(d, "memory.swap.max")),
                "failcnt": read_keyed(d, "memory.swap.events").get("max", 0),
            }
    if exists(d, "pids.current"):
        out["pids"]["current"] = read_int(d, "pids.current")
        out["pids"]["limit"] = read_int(d, "pids.max")
    if exists(d, "io.stat"):
        out["blkio"] = _io_stat(read_or(d, "io.stat"))
    for name in sorted(os.listdir(d)):
        if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
            size = name[len("hugetlb.") : -len(".current")]
            out["hugetlb"][size] = {
                "usage": read_int(d, name),
                "max": 0,
                "failcnt": read_keyed(d, f"hugetlb.{size}.events").get("max", 0),
            }
    return out


_UNLIMITED = (1 << 64) - 1  # runc reports "max" as MaxUint64


def _limit(text: str) -> int:
    if not text or text == "max":
        return _UNLIMITED
    try:
        return int(text)
    except ValueError:
        return 0


def _io_stat(text: str) -> dict:
    served_bytes: list[dict] = []
    served: list[dict] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        kv = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            if v.isdigit():
                kv[k] = int(v)
        for op, b, n in (("Read", "rbytes", "rios"), ("Write", "wbytes", "wios"), ("Discard", "dbytes", "dios")):
            if b in kv:
                served_bytes.append({"major": int(major), "minor": int(minor), "op": op, "value": kv[b]})
            if n in kv:
                served.append({"major": int(major), "minor": int(minor), "op": op, "value": kv[n]})
    return {"ioServiceBytesRecursive": served_bytes, "ioServicedRecursive": served}
