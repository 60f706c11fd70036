"""The OCI LinuxResources block: validated from JSON, or built from `rongqi-oci update`'s flags.

Every mistake raises SpecError("<json path>: <what is wrong>"); downstream code trusts the values.
"""

from __future__ import annotations

from rongqi.errors import SpecError, UsageError
from rongqi.oci import jsonread
from rongqi.linux.cgroups import convert
from rongqi.linux.cgroups.resources import (
    BlockIO,
    Cpu,
    DeviceRule,
    HugepageLimit,
    InterfacePriority,
    Memory,
    Network,
    Pids,
    RdmaLimit,
    Resources,
    ThrottleDevice,
    WeightDevice,
)

INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1
# The kernel refuses cfs periods outside 1 ms..1 s, and quotas under 1 ms.
MIN_CFS_PERIOD = 1000
MAX_CFS_PERIOD = 1_000_000
MIN_CFS_QUOTA = 1000
# Files a unified key must never write: they move processes or change delegation.
_UNIFIED_FORBIDDEN = {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill", "cgroup.type"}


def _obj(v: object, where: str) -> dict:
    return jsonread.obj(v, where)


def _list(v: object, where: str) -> list:
    return jsonread.array(v, where)


def _int(obj: dict, key: str, where: str, lo: int, hi: int, what: str = "") -> int | None:
    """An optional integer member in [lo, hi]; null and absence both mean "not set"."""
    v = obj.get(key)
    return None if v is None else jsonread.integer(v, f"{where}.{key}", lo, hi, what)


def _str(obj: dict, key: str, where: str) -> str | None:
    v = obj.get(key)
    return None if v is None else jsonread.string(v, f"{where}.{key}")


def _bool(obj: dict, key: str, where: str) -> bool | None:
    v = obj.get(key)
    return None if v is None else jsonread.boolean(v, f"{where}.{key}")


def _limit(obj: dict, key: str, where: str) -> int | None:
    """A byte limit: -1 (unlimited) or 0..INT64_MAX."""
    v = _int(obj, key, where, -1, INT64_MAX, "must be -1 for unlimited or a byte count")
    return v


def parse_resources(obj: object, where: str = "linux.resources") -> Resources:
    """Validate an OCI LinuxResources object. Unknown members are ignored, as the spec requires."""
    o = _obj(obj, where)
    res = Resources()
    if o.get("memory") is not None:
        res.memory = _memory(_obj(o["memory"], where + ".memory"), where + ".memory")
    if o.get("cpu") is not None:
        res.cpu = _cpu(_obj(o["cpu"], where + ".cpu"), where + ".cpu")
    if o.get("pids") is not None:
        p = _obj(o["pids"], where + ".pids")
        limit = _int(p, "limit", where + ".pids", -(1 << 63), INT64_MAX)
        # runc: zero or negative means unlimited.
        res.pids = Pids(limit=None if limit is None else (-1 if limit <= 0 else limit))
    if o.get("blockIO") is not None:
        res.block_io = _block_io(_obj(o["blockIO"], where + ".blockIO"), where + ".blockIO")
    if o.get("hugepageLimits") is not None:
        res.hugepage_limits = [
            _hugepage(_obj(h, f"{where}.hugepageLimits[{i}]"), f"{where}.hugepageLimits[{i}]")
            for i, h in enumerate(_list(o["hugepageLimits"], where + ".hugepageLimits"))
        ]
    if o.get("devices") is not None:
        res.devices = [
            _device(_obj(d, f"{where}.devices[{i}]"), f"{where}.devices[{i}]")
            for i, d in enumerate(_list(o["devices"], where + ".devices"))
        ]
    if o.get("unified") is not None:
        res.unified = _unified(_obj(o["unified"], where + ".unified"), where + ".unified")
    if o.get("rdma") is not None:
        rd = _obj(o["rdma"], where + ".rdma")
        res.rdma = {}
        for name, lim in rd.items():
            w = f"{where}.rdma.{name}"
            if not name or " " in name or "\n" in name:
                raise SpecError(f"{w}: {name!r} is not an RDMA device name")
            lim = _obj(lim, w)
            res.rdma[name] = RdmaLimit(
                hca_handles=_int(lim, "hcaHandles", w, 0, UINT32_MAX),
                hca_objects=_int(lim, "hcaObjects", w, 0, UINT32_MAX),
            )
    if o.get("network") is not None:
        res.network = _network(_obj(o["network"], where + ".network"), where + ".network")
    return res


def _memory(m: dict, w: str) -> Memory:
    mem = Memory(
        limit=_limit(m, "limit", w),
        reservation=_limit(m, "reservation", w),
        swap=_limit(m, "swap", w),
        kernel=_limit(m, "kernel", w),
        kernel_tcp=_limit(m, "kernelTCP", w),
        swappiness=_int(m, "swappiness", w, -1, UINT64_MAX),
        disable_oom_killer=_bool(m, "disableOOMKiller", w),
        use_hierarchy=_bool(m, "useHierarchy", w),
        check_before_update=_bool(m, "checkBeforeUpdate", w),
    )
    if mem.swappiness is not None:
        if mem.swappiness == -1:
            mem.swappiness = None  # docker's "not set"
        elif mem.swappiness > 100:
            raise SpecError(f"{w}.swappiness: {mem.swappiness} is out of range (0..100)")
    if mem.limit is not None and 0 < mem.limit < 4096:
        raise SpecError(f"{w}.limit: {mem.limit} bytes is below one page; no process can run in that")
    if mem.limit and mem.limit > 0 and mem.swap and mem.swap > 0 and mem.swap < mem.limit:
        raise SpecError(f"{w}.swap: {mem.swap} is less than memory.limit {mem.limit} (swap counts memory+swap)")
    if mem.reservation and mem.limit and mem.limit > 0 and mem.reservation > mem.limit:
        raise SpecError(f"{w}.reservation: {mem.reservation} is above memory.limit {mem.limit}")
    return mem


def _cpu_list(c: dict, key: str, w: str) -> str | None:
    v = _str(c, key, w)
    if v is None or v == "":
        return None
    try:
        convert.parse_cpu_list(v)
    except ValueError as err:
        raise SpecError(f"{w}.{key}: {v!r} is not a list like \"0-3,5\" ({err})") from None
    return v


def _cpu(c: dict, w: str) -> Cpu:
    cpu = Cpu(
        shares=_int(c, "shares", w, 0, UINT64_MAX),
        quota=_int(c, "quota", w, -1, INT64_MAX, "must be -1 for unlimited, 0 for unset, or microseconds >= 1000"),
        burst=_int(c, "burst", w, 0, UINT64_MAX),
        period=_int(c, "period", w, 0, UINT64_MAX),
        realtime_runtime=_int(c, "realtimeRuntime", w, -1, INT64_MAX),
        realtime_period=_int(c, "realtimePeriod", w, 0, UINT64_MAX),
        cpus=_cpu_list(c, "cpus", w),
        mems=_cpu_list(c, "mems", w),
        idle=_int(c, "idle", w, 0, 1),
    )
    if cpu.shares and not convert.MIN_SHARES <= cpu.shares <= convert.MAX_SHARES:
        raise SpecError(f"{w}.shares: {cpu.shares} is out of range ({convert.MIN_SHARES}..{convert.MAX_SHARES})")
    if cpu.quota is not None and 0 < cpu.quota < MIN_CFS_QUOTA:
        raise SpecError(f"{w}.quota: {cpu.quota} is below the kernel's minimum of {MIN_CFS_QUOTA} microseconds")
    if cpu.period and not MIN_CFS_PERIOD <= cpu.period <= MAX_CFS_PERIOD:
        raise SpecError(f"{w}.period: {cpu.period} is out of range ({MIN_CFS_PERIOD}..{MAX_CFS_PERIOD} microseconds)")
    if cpu.burst and cpu.quota and cpu.quota > 0 and cpu.burst > cpu.quota:
        raise SpecError(f"{w}.burst: {cpu.burst} is above cpu.quota {cpu.quota}")
    return cpu


def _weight(obj: dict, key: str, w: str) -> int | None:
    v = _int(obj, key, w, 0, 1000)
    if v is not None and v != 0 and v < 10:
        raise SpecError(f"{w}.{key}: {v} is out of range (10..1000, or 0 for unset)")
    return v


def _block_io(b: dict, w: str) -> BlockIO:
    bio = BlockIO(weight=_weight(b, "weight", w), leaf_weight=_weight(b, "leafWeight", w))
    if b.get("weightDevice") is not None:
        bio.weight_device = []
        for i, wd in enumerate(_list(b["weightDevice"], w + ".weightDevice")):
            ww = f"{w}.weightDevice[{i}]"
            wd = _obj(wd, ww)
            major, minor = _major_minor(wd, ww)
            bio.weight_device.append(
                WeightDevice(major=major, minor=minor, weight=_weight(wd, "weight", ww), leaf_weight=_weight(wd, "leafWeight", ww))
            )
    for key, attr in (
        ("throttleReadBpsDevice", "throttle_read_bps_device"),
        ("throttleWriteBpsDevice", "throttle_write_bps_device"),
        ("throttleReadIOPSDevice", "throttle_read_iops_device"),
        ("throttleWriteIOPSDevice", "throttle_write_iops_device"),
    ):
        if b.get(key) is None:
            continue
        out = []
        for i, t in enumerate(_list(b[key], f"{w}.{key}")):
            tw = f"{w}.{key}[{i}]"
            t = _obj(t, tw)
            major, minor = _major_minor(t, tw)
            rate = _int(t, "rate", tw, 0, UINT64_MAX)
            if rate is None:
                raise SpecError(f"{tw}.rate: required")
            out.append(ThrottleDevice(major=major, minor=minor, rate=rate))
        setattr(bio, attr, out)
    return bio


def _major_minor(obj: dict, w: str) -> tuple[int, int]:
    major = _int(obj, "major", w, 0, UINT32_MAX)
    minor = _int(obj, "minor", w, 0, UINT32_MAX)
    if major is None or minor is None:
        raise SpecError(f"{w}: major and minor are required")
    return major, minor


def _hugepage(h: dict, w: str) -> HugepageLimit:
    size = _str(h, "pageSize", w)
    if not size:
        raise SpecError(f"{w}.pageSize: required")
    try:
        n = convert.hugepage_bytes(size)
    except ValueError:
        raise SpecError(f"{w}.pageSize: {size!r} is not a page size like \"2MB\" or \"1GB\"") from None
    if n <= 0 or n & (n - 1):
        raise SpecError(f"{w}.pageSize: {size!r} is not a power of two")
    limit = _int(h, "limit", w, 0, UINT64_MAX)
    if limit is None:
        raise SpecError(f"{w}.limit: required")
    return HugepageLimit(page_size=size, limit=limit)


def _device(d: dict, w: str) -> DeviceRule:
    allow = _bool(d, "allow", w)
    if allow is None:
        raise SpecError(f"{w}.allow: required")
    kind = _str(d, "type", w) or "a"
    if kind not in ("a", "b", "c"):
        raise SpecError(f'{w}.type: unknown device type "{kind}" (must be "a", "b" or "c")')
    major = _int(d, "major", w, -1, UINT32_MAX)
    minor = _int(d, "minor", w, -1, UINT32_MAX)
    access = _str(d, "access", w)
    if access is None or access == "":
        access = "rwm"
    if any(ch not in "rwm" for ch in access) or len(set(access)) != len(access):
        raise SpecError(f'{w}.access: "{access}" must be made of the letters r, w and m, each at most once')
    return DeviceRule(
        allow=allow,
        type=kind,
        major=None if major is None or major < 0 else major,
        minor=None if minor is None or minor < 0 else minor,
        access=access,
    )


def _unified(u: dict, w: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in u.items():
        kw = f"{w}.{key}"
        ctrl, dot, name = key.partition(".")
        if not dot or not ctrl or not name or "/" in key or key.startswith("."):
            raise SpecError(f'{kw}: "{key}" is not a cgroup v2 file name like "memory.high"')
        if key in _UNIFIED_FORBIDDEN:
            raise SpecError(f"{kw}: {key} is managed by the runtime and cannot be set")
        if not isinstance(value, str):
            raise jsonread.wrong(kw, "a string", value)
        out[key] = value
    return out


def _network(n: dict, w: str) -> Network:
    net = Network(class_id=_int(n, "classID", w, 0, UINT32_MAX))
    if n.get("priorities") is not None:
        net.priorities = []
        for i, p in enumerate(_list(n["priorities"], w + ".priorities")):
            pw = f"{w}.priorities[{i}]"
            p = _obj(p, pw)
            name = _str(p, "name", pw)
            if not name or " " in name:
                raise SpecError(f"{pw}.name: must be an interface name")
            prio = _int(p, "priority", pw, 0, UINT32_MAX)
            if prio is None:
                raise SpecError(f"{pw}.priority: required")
            net.priorities.append(InterfacePriority(name=name, priority=prio))
    return net


# --- rongqi-oci update -------------------------------------------------------------

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, flag: str) -> int:
    """docker's RAMInBytes: "100M", "1.5g", "512k", "64MiB", "1024"; binary units; "-1" = unlimited."""
    s = text.strip().lower()
    if s == "-1":
        return -1
    if s.endswith("ib") and s[-3:-2] in ("k", "m", "g", "t", "p"):
        s = s[:-2]
    elif s.endswith("b"):
        s = s[:-1]
    unit = s[-1:] if s[-1:] in ("k", "m", "g", "t", "p") else ""
    num = s[: len(s) - len(unit)]
    whole, dot, frac = num.partition(".")
    if not whole.isdigit() or (dot and not frac.isdigit()):
        raise UsageError(f'invalid value "{text}" for flag --{flag}: not a size like 100M, 1.5G or 1024')
    n = int(float(num) * _SIZE_UNITS[unit]) if dot else int(whole) * _SIZE_UNITS[unit]
    if n > INT64_MAX:
        raise UsageError(f'invalid value "{text}" for flag --{flag}: too large')
    return n


def _uint(text: str, flag: str) -> int:
    if not text.isdigit():
        raise UsageError(f'invalid value "{text}" for flag --{flag}: must be a non-negative integer')
    return int(text)


def _sint(text: str, flag: str) -> int:
    t = text[1:] if text.startswith("-") else text
    if not t.isdigit():
        raise UsageError(f'invalid value "{text}" for flag --{flag}: must be an integer')
    return int(text)


def _read_resources_file(name: str) -> Resources:
    from rongqi import fastjson

    try:
        if name == "-":
            import sys

            text = sys.stdin.buffer.read()
            label = "stdin"
        else:
            with open(name, "rb") as f:
                text = f.read()
            label = name
    except OSError as err:
        raise UsageError(f"cannot read resources from {name}: {err.strerror}") from None
    try:
        obj = fastjson.loads(text)
    except ValueError as err:
        raise SpecError(f"resources ({label}): not valid JSON: {err}") from None
    return parse_resources(obj, "resources")


def resources_from_update_flags(opts: dict) -> Resources:
    """runc update's flags -> Resources with only the named fields set.

    As in runc, `-r FILE` / `--resources -` (LinuxResources JSON) replaces the other flags.
    Keys are the flag names of oci/cli.py's update table ("memory", "cpu-quota", ...).
    """
    r = opts.get("resources")
    if r:
        return _read_resources_file(r)
    res = Resources()

    def given(key: str) -> str | None:
        v = opts.get(key)
        if v is None or v == "":
            return None
        return str(v)

    mem = Memory()
    for key, attr in (
        ("memory", "limit"),
        ("memory-reservation", "reservation"),
        ("memory-swap", "swap"),
        ("kernel-memory", "kernel"),
        ("kernel-memory-tcp", "kernel_tcp"),
    ):
        v = given(key)
        if v is not None:
            setattr(mem, attr, parse_size(v, key))
    if mem.limit == -1 and mem.swap is None:
        # runc: lifting the memory limit lifts the memory+swap limit with it.
        mem.swap = -1
    if mem.limit and mem.limit > 0 and mem.swap and 0 < mem.swap < mem.limit:
        raise UsageError(f"--memory-swap ({mem.swap}) must be at least --memory ({mem.limit}): it counts memory+swap")
    if not mem.is_empty():
        res.memory = mem

    cpu = Cpu()
    for key, attr in (("cpu-share", "shares"), ("cpu-period", "period"), ("cpu-rt-period", "realtime_period"), ("cpu-burst", "burst")):
        v = given(key)
        if v is not None:
            setattr(cpu, attr, _uint(v, key))
    for key, attr in (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtime_runtime"), ("cpu-idle", "idle")):
        v = given(key)
        if v is not None:
            setattr(cpu, attr, _sint(v, key))
    for key, attr in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        v = given(key)
        if v is not None:
            try:
                convert.parse_cpu_list(v)
            except ValueError:
                raise UsageError(f'invalid value "{v}" for flag --{key}: not a list like 0-3,5') from None
            setattr(cpu, attr, v)
    if not cpu.is_empty():
        res.cpu = cpu

    v = given("pids-limit")
    if v is not None:
        n = _sint(v, "pids-limit")
        res.pids = Pids(limit=-1 if n <= 0 else n)
    v = given("blkio-weight")
    if v is not None:
        w = _uint(v, "blkio-weight")
        if w and not 10 <= w <= 1000:
            raise UsageError(f"invalid value {w} for flag --blkio-weight: must be 10..1000")
        if w:
            res.block_io = BlockIO(weight=w)
    # Validate the flag-built block with the same rules as JSON (names flags by their JSON path).
    _recheck(res)
    return res


def _recheck(res: Resources) -> None:
    c = res.cpu
    if c is None:
        return
    if c.shares and not convert.MIN_SHARES <= c.shares <= convert.MAX_SHARES:
        raise UsageError(f"invalid value {c.shares} for flag --cpu-share: must be {convert.MIN_SHARES}..{convert.MAX_SHARES}")
    if c.quota is not None and (c.quota < -1 or 0 < c.quota < MIN_CFS_QUOTA):
        raise UsageError(f"invalid value {c.quota} for flag --cpu-quota: must be -1 or at least {MIN_CFS_QUOTA}")
    if c.period and not MIN_CFS_PERIOD <= c.period <= MAX_CFS_PERIOD:
        raise UsageError(f"invalid value {c.period} for flag --cpu-period: must be {MIN_CFS_PERIOD}..{MAX_CFS_PERIOD}")
    if c.idle is not None and c.idle not in (0, 1):
        raise UsageError(f"invalid value {c.idle} for flag --cpu-idle: must be 0 or 1")


def to_oci(res: Resources) -> dict:
    """Resources back to LinuxResources JSON (for state files and `update` merges)."""
    out: dict = {}
    if res.memory is not None:
        m = res.memory
        out["memory"] = _drop_none(
            {
                "limit": m.limit,
                "reservation": m.reservation,
                "swap": m.swap,
                "kernel": m.kernel,
                "kernelTCP": m.kernel_tcp,
                "swappiness": m.swappiness,
                "disableOOMKiller": m.disable_oom_killer,
                "useHierarchy": m.use_hierarchy,
                "checkBeforeUpdate": m.check_before_update,
            }
        )
    if res.cpu is not None:
        c = res.cpu
        out["cpu"] = _drop_none(
            {
                "shares": c.shares,
                "quota": c.quota,
                "burst": c.burst,
                "period": c.period,
                "realtimeRuntime": c.realtime_runtime,
                "realtimePeriod": c.realtime_period,
                "cpus": c.cpus,
                "mems": c.mems,
                "idle": c.idle,
            }
        )
    if res.pids is not None:
        out["pids"] = _drop_none({"limit": res.pids.limit})
    if res.block_io is not None:
        b = res.block_io
        bo: dict = _drop_none({"weight": b.weight, "leafWeight": b.leaf_weight})
        if b.weight_device is not None:
            bo["weightDevice"] = [
                _drop_none({"major": d.major, "minor": d.minor, "weight": d.weight, "leafWeight": d.leaf_weight})
                for d in b.weight_device
            ]
        for key, attr in (
            ("throttleReadBpsDevice", "throttle_read_bps_device"),
            ("throttleWriteBpsDevice", "throttle_write_bps_device"),
            ("throttleReadIOPSDevice", "throttle_read_iops_device"),
            ("throttleWriteIOPSDevice", "throttle_write_iops_device"),
        ):
            v = getattr(b, attr)
            if v is not None:
                bo[key] = [{"major": t.major, "minor": t.minor, "rate": t.rate} for t in v]
        out["blockIO"] = bo
    if res.hugepage_limits is not None:
        out["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit} for h in res.hugepage_limits]
    if res.devices is not None:
        out["devices"] = [
            _drop_none({"allow": d.allow, "type": d.type, "major": d.major, "minor": d.minor, "access": d.access})
            for d in res.devices
        ]
    if res.unified is not None:
        out["unified"] = dict(res.unified)
    if res.rdma is not None:
        out["rdma"] = {k: _drop_none({"hcaHandles": v.hca_handles, "hcaObjects": v.hca_objects}) for k, v in res.rdma.items()}
    if res.network is not None:
        n: dict = _drop_none({"classID": res.network.class_id})
        if res.network.priorities is not None:
            n["priorities"] = [{"name": p.name, "priority": p.priority} for p in res.network.priorities]
        out["network"] = n
    return out


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}
