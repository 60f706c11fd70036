"""rongqi-oci pause: freeze every process of a running container (v1 freezer or cgroup.freeze).

runc's errors: "container not running" unless the container is created or running.
"""

from __future__ import annotations

from rongqi.oci.commands import one_id


def run(g, opts, args, log) -> int:
    from rongqi.oci import cgroup_ops

    cgroup_ops.pause(g.root, one_id(args, "pause"))
    return 0
