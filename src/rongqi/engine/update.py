"""Changing a container's limits and restart policy after create: podman's `update`, Docker's
POST /containers/{id}/update; one operation under both faces, printing nothing.

The limits live in the bundle's config.json (`linux.resources`, what the runtime creates the
cgroup from at every start), mirrored in the record's options (what inspect shows); a running
or paused container's cgroup is changed at once through the runtime's `update` (rongqi.oci's
Cgroup abstraction for the in-process runtime: v1, v2 or hybrid, whichever the host has).
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any

from rongqi.engine import records as rec
from rongqi.engine import status as st
from rongqi.engine.options import RestartPolicy
from rongqi.errors import (ContainerNotFound, ContainerStateError, ContainerStateImproper,
                           EngineError, RongqiError, SpecError, UsageError)
from rongqi.values import dataclass, field

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.records import Container

CPU_PERIOD = 100_000  # the CFS period podman and docker give --cpus


class UpdateConflict(EngineError):
    """An update that contradicts what the container already has (Docker answers 409)."""


@dataclass
class DeviceRate:
    """--blkio-weight-device PATH:WEIGHT or --device-{read,write}-{bps,iops} PATH:RATE."""

    path: str
    value: int


@dataclass
class ResourceUpdate:
    """What an update changes. None (an empty list) leaves a value as it is; the faces fill
    in their own defaults (podman's swap of twice the memory, Docker's conflicts) first."""

    memory: int | None = None                 # bytes, -1 = unlimited
    memory_swap: int | None = None            # memory + swap, bytes, -1 = unlimited
    memory_reservation: int | None = None     # bytes, -1 = none
    memory_swappiness: int | None = None      # 0..100 (cgroup v1 only)
    cpus: float | None = None                 # CPUs as quota / period (0 = unlimited)
    cpu_period: int | None = None             # microseconds
    cpu_quota: int | None = None              # microseconds, -1 = unlimited
    cpu_shares: int | None = None
    cpu_rt_period: int | None = None
    cpu_rt_runtime: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None             # 0 or -1 = unlimited
    blkio_weight: int | None = None           # 10..1000
    blkio_weight_device: list[DeviceRate] = field(default_factory=list)
    device_read_bps: list[DeviceRate] = field(default_factory=list)
    device_write_bps: list[DeviceRate] = field(default_factory=list)
    device_read_iops: list[DeviceRate] = field(default_factory=list)
    device_write_iops: list[DeviceRate] = field(default_factory=list)
    restart: RestartPolicy | None = None

    def limits_given(self) -> bool:
        return any(getattr(self, k) is not None for k in _SCALARS) or any(
            getattr(self, k) for k in _LISTS)


_SCALARS = ("memory", "memory_swap", "memory_reservation", "memory_swappiness", "cpus",
            "cpu_period", "cpu_quota", "cpu_shares", "cpu_rt_period", "cpu_rt_runtime",
            "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight")
_LISTS = ("blkio_weight_device", "device_read_bps", "device_write_bps", "device_read_iops",
          "device_write_iops")
# ResourceUpdate list -> OCI blockIO key.
_THROTTLES = {"device_read_bps": "throttleReadBpsDevice",
              "device_write_bps": "throttleWriteBpsDevice",
              "device_read_iops": "throttleReadIOPSDevice",
              "device_write_iops": "throttleWriteIOPSDevice"}


def update(engine: Engine, ref: str | Container, upd: ResourceUpdate) -> Container:
    """Apply `upd` to the container: its record and bundle always, its live cgroup when it
    runs (or is paused). Five steps as every operation: lock, sync, check, act, save; on a
    failure nothing is changed (the cgroup is set back to what it had, as runc does)."""
    from rongqi.engine import lifecycle
    with lifecycle.locked(engine, ref) as c:
        if c.status == st.REMOVING:
            raise ContainerStateImproper(f'container {c.id} is being removed and cannot be '
                                         '"update"')
        spec_path = os.path.join(c.bundle, "config.json")
        spec = rec.read_json(spec_path)
        linux = spec.setdefault("linux", {})
        old = copy.deepcopy(linux.get("resources") or {})
        opts = c.config.setdefault("options", {})
        new, changed = merge_resources(old, upd, dict(opts))
        _check_result(new)
        restart = None
        if upd.restart is not None:
            restart = _check_restart(upd.restart, bool(opts.get("remove")))
        new_opts = _options_after(opts, upd, new)
        if changed:
            linux["resources"] = new
            rec.write_json_atomic(spec_path, spec, durable=True)
        try:
            if changed and c.status in st.ALIVE:
                _apply_live(engine, c, new, changed, old)
        except BaseException:
            linux["resources"] = old
            rec.write_json_atomic(spec_path, spec, durable=True)
            raise
        opts.update(new_opts)
        if restart is not None:
            policy = {"name": restart.name, "max_retries": restart.max_retries}
            c.config["restart"] = policy
            opts["restart"] = dict(policy)
        c.save_config()
    from rongqi.engine import events
    events.emit(engine.root, "container", "update", id=c.id, name=c.name,
                image=c.config.get("image_name", ""),
                attributes=events.container_attributes(c.config))
    return c


# -- the new resources ----------------------------------------------------------------------------
def merge_resources(old: dict[str, Any], upd: ResourceUpdate,
                    opts: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The OCI `linux.resources` after `upd`, and the sections it changed ("memory", "cpu",
    "pids", "blockIO"). Pure: no file is read but the devices' numbers of a blkio rule."""
    new = copy.deepcopy(old)
    changed: list[str] = []

    mem = dict(new.get("memory") or {})
    for key, value in (("limit", upd.memory), ("swap", upd.memory_swap),
                       ("reservation", upd.memory_reservation),
                       ("swappiness", upd.memory_swappiness)):
        if value is not None:
            mem[key] = value
    if upd.memory_swappiness is not None and not 0 <= upd.memory_swappiness <= 100:
        raise UsageError(f"invalid value: {upd.memory_swappiness}, valid memory swappiness "
                         "range is 0-100")
    if mem != (new.get("memory") or {}):
        new["memory"] = mem
        changed.append("memory")

    cpu = dict(new.get("cpu") or {})
    if upd.cpus is not None:
        if upd.cpus < 0:
            raise UsageError(f"invalid value for cpus: {upd.cpus:g}: must not be negative")
        # podman takes more CPUs than the host has (a quota above the period's worth); the
        # docker API's range check is serve/translate.py's
        period = upd.cpu_period or CPU_PERIOD
        cpu["period"] = period
        cpu["quota"] = int(round(upd.cpus * period)) if upd.cpus else -1
    else:
        if upd.cpu_period is not None:
            cpu["period"] = upd.cpu_period
        if upd.cpu_quota is not None:
            cpu["quota"] = upd.cpu_quota
    if cpu.get("period") is not None and upd.cpu_period is not None \
            and not 1000 <= upd.cpu_period <= 1_000_000:
        raise UsageError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than "
                         "1s (i.e. 1000000)")
    if upd.cpu_quota is not None and 0 < upd.cpu_quota < 1000:
        raise UsageError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if upd.cpu_shares is not None:
        if upd.cpu_shares and upd.cpu_shares < 2:
            raise UsageError("the minimum allowed cpu-shares is 2")
        cpu["shares"] = upd.cpu_shares or 1024
    for key, value in (("realtimePeriod", upd.cpu_rt_period),
                       ("realtimeRuntime", upd.cpu_rt_runtime)):
        if value is not None:
            cpu[key] = value
    if upd.cpuset_cpus is not None:
        cpu["cpus"] = check_cpuset(upd.cpuset_cpus, "/sys/devices/system/cpu/online", "CPUs")
    if upd.cpuset_mems is not None:
        cpu["mems"] = check_cpuset(upd.cpuset_mems, "/sys/devices/system/node/online",
                                   "memory nodes")
    if cpu != (new.get("cpu") or {}):
        new["cpu"] = cpu
        changed.append("cpu")

    if upd.pids_limit is not None:
        limit = upd.pids_limit if upd.pids_limit > 0 else -1
        if (new.get("pids") or {}).get("limit") != limit:
            new["pids"] = {"limit": limit}
            changed.append("pids")

    bio = copy.deepcopy(new.get("blockIO") or {})
    if upd.blkio_weight is not None:
        if upd.blkio_weight and not 10 <= upd.blkio_weight <= 1000:
            raise UsageError("range of blkio weight is from 10 to 1000")
        if upd.blkio_weight:
            bio["weight"] = upd.blkio_weight
    if upd.blkio_weight_device:
        rules = {(d["major"], d["minor"]): d for d in bio.get("weightDevice") or []}
        for wd in upd.blkio_weight_device:
            if not 10 <= wd.value <= 1000:
                raise UsageError(f"invalid weight for device: {wd.path}:{wd.value}: range of "
                                 "blkio weight is from 10 to 1000")
            major, minor = block_device(wd.path)
            rules[(major, minor)] = {"major": major, "minor": minor, "weight": wd.value}
        bio["weightDevice"] = list(rules.values())
    for attr, key in _THROTTLES.items():
        given = getattr(upd, attr)
        if not given:
            continue
        rules = {(d["major"], d["minor"]): d for d in bio.get(key) or []}
        for t in given:
            if t.value < 0:
                raise UsageError(f"invalid rate for device: {t.path}:{t.value}")
            major, minor = block_device(t.path)
            rules[(major, minor)] = {"major": major, "minor": minor, "rate": t.value}
        bio[key] = list(rules.values())
    if bio != (new.get("blockIO") or {}):
        new["blockIO"] = bio
        changed.append("blockIO")
    return new, changed


def _check_result(res: dict[str, Any]) -> None:
    """What podman's create refuses, checked on the result (an update of one value must fit
    the others), then the runtime's own reading of the block (oci/resources.py)."""
    mem = res.get("memory") or {}
    limit, swap, reservation = mem.get("limit"), mem.get("swap"), mem.get("reservation")
    has_limit = limit is not None and limit > 0
    if swap is not None and swap > 0 and not has_limit:
        raise UsageError("you should always set a memory limit when using a memoryswap limit, "
                         "see usage")
    if has_limit and swap is not None and 0 < swap < limit:
        raise UsageError("minimum memoryswap limit should be larger than memory limit, see "
                         "usage")
    if has_limit and reservation is not None and reservation > limit:
        raise UsageError("minimum memory limit cannot be less than memory reservation limit, "
                         "see usage")
    from rongqi.oci.resources import parse_resources
    try:
        parse_resources(res, "linux.resources")
    except SpecError as err:
        raise UsageError(str(err)) from None


def _check_restart(policy: RestartPolicy, auto_remove: bool) -> RestartPolicy:
    from rongqi.engine.lifecycle import RESTART_POLICIES
    name = policy.name or "no"
    if name not in RESTART_POLICIES:
        raise UsageError(f'invalid restart policy "{name}"')
    if policy.max_retries and name != "on-failure":
        raise UsageError("restart policy retries can only be specified with on-failure "
                         "restart policy")
    if policy.max_retries < 0:
        raise UsageError("maximum retry count cannot be negative")
    if auto_remove and name != "no":
        raise UpdateConflict("Restart policy cannot be updated because AutoRemove is enabled "
                             "for the container")
    return RestartPolicy(name, policy.max_retries)


def _options_after(opts: dict[str, Any], upd: ResourceUpdate,
                   res: dict[str, Any]) -> dict[str, Any]:
    """The record's option values that mirror the new limits (inspect shows these)."""
    out: dict[str, Any] = {}
    if upd.memory is not None:
        out["memory"] = upd.memory if upd.memory > 0 else None
    if upd.memory_swap is not None:
        out["memory_swap"] = upd.memory_swap or None
    elif upd.memory is not None:
        out["memory_swap"] = (res.get("memory") or {}).get("swap") or None
    if upd.memory_reservation is not None:
        out["memory_reservation"] = upd.memory_reservation if upd.memory_reservation > 0 \
            else None
    if upd.memory_swappiness is not None:
        out["memory_swappiness"] = upd.memory_swappiness
    if upd.cpus is not None:
        # --cpus is quota/period: the explicit ones no longer stand apart (and back).
        out.update(cpus=upd.cpus or None, cpu_quota=None, cpu_period=None)
    elif upd.cpu_quota is not None or upd.cpu_period is not None:
        out["cpus"] = None
        if upd.cpu_quota is not None:
            out["cpu_quota"] = upd.cpu_quota if upd.cpu_quota > 0 else None
        if upd.cpu_period is not None:
            out["cpu_period"] = upd.cpu_period or None
        cpu = res.get("cpu") or {}
        if opts.get("cpus") and "cpu_period" not in out and "cpu_period" not in opts:
            out["cpu_period"] = cpu.get("period")
        if opts.get("cpus") and "cpu_quota" not in out and "cpu_quota" not in opts:
            out["cpu_quota"] = cpu.get("quota")
    if upd.cpu_shares is not None:
        out["cpu_shares"] = upd.cpu_shares or None
    if upd.cpu_rt_period is not None:
        out["cpu_rt_period"] = upd.cpu_rt_period
    if upd.cpu_rt_runtime is not None:
        out["cpu_rt_runtime"] = upd.cpu_rt_runtime
    if upd.cpuset_cpus is not None:
        out["cpuset_cpus"] = upd.cpuset_cpus
    if upd.cpuset_mems is not None:
        out["cpuset_mems"] = upd.cpuset_mems
    if upd.pids_limit is not None:
        out["pids_limit"] = upd.pids_limit if upd.pids_limit > 0 else -1
    if upd.blkio_weight:
        out["blkio_weight"] = upd.blkio_weight
    return out


# -- the live cgroup ------------------------------------------------------------------------------
# What a section that was absent means to the kernel, so that setting one back clears what a
# failed update wrote (the cpuset is left: its values are checked before anything is written).
_NEUTRAL = {"memory": {"limit": -1, "swap": -1, "reservation": -1},
            "cpu": {"quota": -1, "shares": 1024}, "pids": {"limit": -1}, "blockIO": {}}


def _apply_live(engine: Engine, c: Container, new: dict[str, Any], changed: list[str],
                old: dict[str, Any]) -> None:
    rt = engine.runtime_for(c)
    try:
        rt.update(c.id, {k: new[k] for k in changed})
    except (ContainerNotFound, ContainerStateError):
        # It ended (or is between two runs of its restart policy) just now: the next start
        # reads the bundle, which has the new limits.
        return
    except RongqiError as err:
        back = {}
        for k in changed:
            section = {**_NEUTRAL[k], **(old.get(k) or {})}
            if k == "memory" and section.get("limit", -1) > 0 and "swap" not in (old.get(k) or {}):
                section.pop("swap")
            back[k] = section
        try:
            rt.update(c.id, back)
        except RongqiError:
            pass  # as runc: the error that matters is the first one
        raise EngineError(str(err)) from None


# -- values the faces share -----------------------------------------------------------------------
def check_cpuset(text: str, online_path: str, what: str) -> str:
    """A cpuset list ("0-1,3") whose members the host has; Docker's words when it lacks one."""
    import re
    if text and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", text):
        raise UsageError(f"invalid value {text!r} for cpuset: must be a list like 0-3 or 0,1")
    if not text:
        return text
    try:
        with open(online_path) as f:
            online = f.read().strip()
    except OSError:
        return text  # no such view (no NUMA, an odd kernel): the kernel is the judge
    have = _cpuset_members(online)
    if not _cpuset_members(text) <= have:
        raise UsageError(f"Requested {what} are not available - requested {text}, available: "
                         f"{online}")
    return text


def _cpuset_members(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def block_device(path: str) -> tuple[int, int]:
    """The major and minor numbers of a block device on the host (blkio rules name devices)."""
    import stat
    try:
        st_ = os.stat(path)
    except OSError as err:
        raise UsageError(f"{path}: {(err.strerror or str(err)).lower()}") from None
    if not stat.S_ISBLK(st_.st_mode):
        raise UsageError(f"{path} is not a block device")
    return os.major(st_.st_rdev), os.minor(st_.st_rdev)

