"""`rongqi update` (and `rongqi container update`): podman's flags for a container's new
limits and restart policy (owner: update); the work is engine/update.py's.

Thin: values parsed here with podman's words for bad ones, podman's defaults filled in (a
memory limit without --memory-swap gets twice as much memory+swap), the container's full id
printed on success, `Error: ...` and 125 otherwise.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    for parent in (top, groups["container"]):
        _args(add(["update"], cmd_update, "change a container's resource limits and restart "
                  "policy", parent))


def _args(sp: argparse.ArgumentParser) -> None:
    a = sp.add_argument
    a("--blkio-weight", default=None, metavar="WEIGHT",
      help="block IO relative weight, 10 to 1000")
    a("--blkio-weight-device", action="append", default=[], metavar="DEVICE:WEIGHT",
      help="block IO relative weight of one device")
    a("--cpu-period", default=None, metavar="US", help="the CPU CFS period, microseconds")
    a("--cpu-quota", default=None, metavar="US", help="the CPU CFS quota, microseconds")
    a("--cpu-rt-period", default=None, metavar="US",
      help="the CPU real-time period, microseconds")
    a("--cpu-rt-runtime", default=None, metavar="US",
      help="the CPU real-time runtime, microseconds")
    a("-c", "--cpu-shares", default=None, help="CPU shares (relative weight)")
    a("--cpus", default=None, help="number of CPUs (quota/period); 0 is no limit")
    a("--cpuset-cpus", default=None, help="CPUs to run on (0-3, 0,1)")
    a("--cpuset-mems", default=None, help="memory nodes to allocate from (0-3, 0,1)")
    for what in ("read-bps", "read-iops", "write-bps", "write-iops"):
        unit = "bytes per second, e.g. /dev/sda:1mb" if what.endswith("bps") else \
            "IO per second, e.g. /dev/sda:1000"
        a(f"--device-{what}", action="append", default=[], metavar="DEVICE:RATE",
          help=f"limit the {what.split('-')[0]} rate of a device ({unit})")
    a("-m", "--memory", default=None, help="memory limit (b, k, m, g)")
    a("--memory-reservation", default=None, help="memory soft limit (b, k, m, g)")
    a("--memory-swap", default=None, help="memory plus swap limit; -1 unlimited")
    a("--memory-swappiness", default=None, help="memory swappiness, 0 to 100 (cgroup v1)")
    a("--pids-limit", default=None, help="process limit; -1 or 0 unlimited")
    a("--restart", default=None,
      help="restart policy: no, on-failure[:N], always, unless-stopped")
    a("names", nargs="*", metavar="CONTAINER")


def options(a: argparse.Namespace) -> Any:
    """The flags as an engine.update.ResourceUpdate, podman's words for a bad value."""
    from rongqi.cli.run_flags import _fail, _int_flag, _size_flag, parse_restart
    from rongqi.engine.update import ResourceUpdate
    u = ResourceUpdate()
    u.memory = _size_flag(a.memory, "memory")
    u.memory_reservation = _size_flag(a.memory_reservation, "memory-reservation")
    u.memory_swap = _size_flag(a.memory_swap, "memory-swap")
    if u.memory is not None and u.memory_swap is None and u.memory > 0:
        from rongqi.engine.bundle import _swap_accounting
        if _swap_accounting():
            u.memory_swap = 2 * u.memory  # podman's: as much swap as memory, as at create
    u.memory_swappiness = _int_flag(a.memory_swappiness, "--memory-swappiness")
    if a.cpus is not None:
        try:
            u.cpus = float(a.cpus)
        except ValueError:
            _fail(f'invalid argument "{a.cpus}" for "--cpus" flag: strconv.ParseFloat: '
                  f'parsing "{a.cpus}": invalid syntax')
    u.cpu_period = _int_flag(a.cpu_period, "--cpu-period", unsigned=True)
    u.cpu_quota = _int_flag(a.cpu_quota, "--cpu-quota")
    u.cpu_rt_period = _int_flag(a.cpu_rt_period, "--cpu-rt-period", unsigned=True)
    u.cpu_rt_runtime = _int_flag(a.cpu_rt_runtime, "--cpu-rt-runtime")
    u.cpu_shares = _int_flag(a.cpu_shares, "-c, --cpu-shares", unsigned=True)
    u.cpuset_cpus = a.cpuset_cpus
    u.cpuset_mems = a.cpuset_mems
    u.pids_limit = _int_flag(a.pids_limit, "--pids-limit")
    if a.blkio_weight is not None:
        try:
            u.blkio_weight = int(a.blkio_weight, 10)
            if u.blkio_weight < 0:
                raise ValueError
        except ValueError:
            _fail(f'invalid value for blkio-weight: strconv.ParseUint: parsing '
                  f'"{a.blkio_weight}": invalid syntax')
    u.blkio_weight_device = [_device_value(x, "blkio-weight-device") for x in
                             a.blkio_weight_device]
    u.device_read_bps = [_device_value(x, "device-read-bps", size=True)
                         for x in a.device_read_bps]
    u.device_write_bps = [_device_value(x, "device-write-bps", size=True)
                          for x in a.device_write_bps]
    u.device_read_iops = [_device_value(x, "device-read-iops") for x in a.device_read_iops]
    u.device_write_iops = [_device_value(x, "device-write-iops") for x in a.device_write_iops]
    if a.restart is not None:
        u.restart = parse_restart(a.restart, False)
    return u


def _device_value(text: str, what: str, *, size: bool = False) -> Any:
    """DEVICE:VALUE, podman's reading of the blkio flags (a size like 1mb for the bps ones)."""
    from rongqi.cli.run_flags import _fail, parse_size
    from rongqi.engine.update import DeviceRate
    path, sep, value = text.rpartition(":")
    if not sep or not path:
        _fail(f"invalid value for {what}: bad format: {text}")
    if not path.startswith("/dev/"):
        _fail(f"invalid value for {what}: {path} is not a device")
    try:
        n = parse_size(value) if size else int(value, 10)
        if n < 0:
            raise ValueError
    except ValueError:
        _fail(f"invalid value for {what}: invalid rate for device: {text}. The correct "
              "format is <device-path>:<number>" + ("[<unit>]" if size else ""))
    return DeviceRate(path, n)


def cmd_update(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.errors import UsageError
    if len(a.names) != 1:
        raise UsageError(f"accepts 1 arg(s), received {len(a.names)}")
    c = ctx.engine.update(a.names[0], options(a))
    print(c.id)
    return 0
