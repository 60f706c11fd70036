"""rongqi-oci resume: thaw a paused container's processes.

runc's errors: "container not paused" for a container that is not paused.
"""

from __future__ import annotations

from rongqi.oci.commands import one_id


def run(g, opts, args, log) -> int:
    from rongqi.oci import cgroup_ops

    cgroup_ops.resume(g.root, one_id(args, "resume"))
    return 0
