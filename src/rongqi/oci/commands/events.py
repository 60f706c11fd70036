"""rongqi-oci events: a container's stats once (--stats) or a stream of stats and oom events.

One JSON object per line, runc's shape: {"type":"stats"|"oom","id":...,"data":{...}}.
"""

from __future__ import annotations

import sys

from rongqi.oci.commands import one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.fastjson import dumps
    from rongqi.oci import cgroup_ops
    from rongqi.oci import statedir as statemod

    cid = one_id(args, "events")
    interval = cgroup_ops.parse_interval(opts["interval"])

    def emit(event: dict[str, object]) -> None:
        sys.stdout.write(dumps(event) + "\n")
        sys.stdout.flush()

    if opts["stats"]:
        st = statemod.load(g.root, cid)
        if st.status() == "stopped":
            from rongqi.errors import ContainerStateError

            raise ContainerStateError(f"container with id {cid} is not running")
        emit({"type": "stats", "id": cid, "data": cgroup_ops.stats(st)})
        return 0
    try:
        cgroup_ops.events(g.root, cid, interval, emit)
    except BrokenPipeError:
        # The reader went away (e.g. `| head -1`): not an error of ours.
        return 0
    return 0
