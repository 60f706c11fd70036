"""rongqi-oci update: change a live container's resource limits (runc's flags, or -r FILE / -r -).

Flags and JSON are validated by oci/resources.py before anything is written; errors name the field.
"""

from __future__ import annotations

from rongqi.errors import UsageError
from rongqi.oci.commands import one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.oci import cgroup_ops
    from rongqi.oci.resources import resources_from_update_flags

    cid = one_id(args, "update")
    for flag in ("l3-cache-schema", "mem-bw-schema"):
        if opts.get(flag):
            # runc writes these to resctrl; this host (and rongqi) has no Intel RDT support.
            raise UsageError(
                f"--{flag}: Intel RDT (resctrl) is not supported by rongqi-oci"
            )
    res = resources_from_update_flags(opts)
    cgroup_ops.update(g.root, cid, res)
    return 0
