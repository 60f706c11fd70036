"""Controllers whose files are the same in cgroup v1 and v2 (cpuset, pids).

v1.py and v2.py list them among their own controllers.
"""

from __future__ import annotations

from rongqi.linux.cgroups import files
from rongqi.linux.cgroups.resources import Resources

R = "linux.resources"


class CpusetController:
    name = "cpuset"
    field = R + ".cpu"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.cpu is not None and (bool(res.cpu.cpus) or bool(res.cpu.mems))

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        c = res.cpu
        if c is None:  # wanted() said it is set
            return
        if c.cpus:
            files.write(d, "cpuset.cpus", c.cpus, R + ".cpu.cpus")
        if c.mems:
            files.write(d, "cpuset.mems", c.mems, R + ".cpu.mems")


class PidsController:
    name = "pids"
    field = R + ".pids"

    @staticmethod
    def wanted(res: Resources) -> bool:
        return res.pids is not None and res.pids.limit is not None

    @staticmethod
    def apply(d: str, res: Resources) -> None:
        limit = res.pids.limit if res.pids is not None else None
        if limit is None:  # wanted() said it is set
            return
        files.write(d, "pids.max", "max" if limit <= 0 else limit, R + ".pids.limit")
