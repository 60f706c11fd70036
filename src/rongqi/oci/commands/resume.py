"""rongqi-oci resume: thaw a paused container's processes.

runc's errors: "container not paused" for a container that is not paused.
"""

from __future__ import annotations

from rongqi.oci.commands import one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.oci import cgroup_ops

    cgroup_ops.resume(g.root, one_id(args, "resume"))
    return 0
