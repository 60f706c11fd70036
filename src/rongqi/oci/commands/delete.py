"""rongqi-oci delete: remove a stopped container (with --force, kill it first)."""

from __future__ import annotations

from rongqi.errors import ContainerNotFound, UsageError


def run(g, opts, args, log) -> int:
    from rongqi.oci import lifecycle

    if not args:
        raise UsageError('"delete" requires at least one container id')
    for cid in args:
        try:
            lifecycle.delete(g.root, cid, opts["force"])
        except ContainerNotFound:
            if opts["force"]:
                # runc: deleting a container that is gone with --force is not an error.
                continue
            raise
    return 0
