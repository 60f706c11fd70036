"""rongqi-oci start: let a created container's program run."""

from __future__ import annotations

from rongqi.oci.commands import one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.oci import lifecycle

    lifecycle.start(g.root, one_id(args, "start"))
    return 0
