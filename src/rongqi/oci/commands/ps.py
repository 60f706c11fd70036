"""rongqi-oci ps: the container's processes, as a JSON array of host pids or as ps(1)'s table.

The table is ps(1) run on the host with the given args (default -ef), cut to the header and
the rows whose PID is in the container's cgroup, as runc does.
"""

from __future__ import annotations

import sys

from rongqi.errors import UsageError

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.oci import cgroup_ops

    if not args:
        raise UsageError('"ps" requires a container id (see rongqi-oci ps --help)')
    cid, ps_args = args[0], args[1:]
    fmt = opts["format"]
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option {fmt!r} (use table or json)")
    pids = cgroup_ops.pids(g.root, cid)
    if fmt == "json":
        from rongqi.fastjson import dumps

        sys.stdout.write(dumps(pids) + "\n")
        return 0
    out = cgroup_ops.run_ps(ps_args or ["-ef"])
    sys.stdout.write(cgroup_ops.filter_ps_table(out, pids))
    return 0
