"""rongqi-oci update: change a live container's resource limits (runc's flags, or -r FILE / -r -).

Flags and JSON are validated by oci/resources.py before anything is written; errors name the field.
"""

from __future__ import annotations

from rongqi.errors import UsageError
from rongqi.oci.commands import one_id


def run(g, opts, args, log) -> int:
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
