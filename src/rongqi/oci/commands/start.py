"""rongqi-oci start: let a created container's program run."""

from __future__ import annotations

from rongqi.oci.commands import one_id


def run(g, opts, args, log) -> int:
    from rongqi.oci import lifecycle

    lifecycle.start(g.root, one_id(args, "start"))
    return 0
