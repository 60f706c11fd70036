"""rongqi-oci create: set the container up; its program waits for start."""

from __future__ import annotations

from rongqi.oci.commands import create_options, one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    cid = one_id(args, "create")
    from rongqi.oci import creation

    creation.create(g.root, cid, create_options(g, opts))
    return 0
