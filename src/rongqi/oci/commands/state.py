"""rongqi-oci state: the runtime-spec state of a container, as runc prints it."""

from __future__ import annotations

import sys

from rongqi.oci.commands import one_id


def run(g, opts, args, log) -> int:
    from rongqi.fastjson import dumps
    from rongqi.oci import state

    st = state.load(g.root, one_id(args, "state"))
    sys.stdout.write(dumps(st.oci_state(), indent=2) + "\n")
    return 0
