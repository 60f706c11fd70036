"""rongqi-oci create: set the container up; its program waits for start."""

from __future__ import annotations

from rongqi.oci.commands import create_options, one_id


def run(g, opts, args, log) -> int:
    cid = one_id(args, "create")
    from rongqi.oci import create

    create.create(g.root, cid, create_options(g, opts))
    return 0
