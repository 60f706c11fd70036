"""rongqi-oci delete: remove a stopped container (with --force, kill it first)."""

from __future__ import annotations

from rongqi.errors import ContainerNotFound, UsageError

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
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
