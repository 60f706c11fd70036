"""rongqi-oci pause: freeze every process of a running container (v1 freezer or cgroup.freeze).

runc's errors: "container not running" unless the container is created or running.
"""

from __future__ import annotations

from rongqi.oci.commands import one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.oci import cgroup_ops

    cgroup_ops.pause(g.root, one_id(args, "pause"))
    return 0
