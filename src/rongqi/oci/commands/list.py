"""rongqi-oci list: the containers under --root, as a table or JSON."""

from __future__ import annotations

import os
import sys

from rongqi.errors import RongqiError, UsageError

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.fastjson import dumps
    from rongqi.oci import statedir

    fmt = opts["format"]
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option {fmt!r} (use table or json)")
    rows = []
    for cid in statedir.list_ids(g.root):
        try:
            st = statedir.load(g.root, cid)
        except RongqiError:
            continue
        s = st.oci_state()
        s["owner"] = _owner(st.dir)
        rows.append(s)
    if opts["quiet"]:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
        return 0
    if fmt == "json":
        sys.stdout.write(dumps(rows) + "\n")
        return 0
    table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for r in rows:
        table.append((r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]))
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for row in table:
        sys.stdout.write("   ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() + "\n")
    return 0


def _owner(path: str) -> str:
    import pwd

    try:
        uid = os.stat(path).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return "#" + str(os.stat(path).st_uid) if os.path.exists(path) else ""
