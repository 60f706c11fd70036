"""rongqi-oci state: the runtime-spec state of a container, as runc prints it."""

from __future__ import annotations

import sys

from rongqi.oci.commands import one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.fastjson import dumps
    from rongqi.oci import statedir

    st = statedir.load(g.root, one_id(args, "state"))
    sys.stdout.write(dumps(st.oci_state(), indent=2) + "\n")
    return 0
