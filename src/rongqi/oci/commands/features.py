"""rongqi-oci features: what this runtime supports, in runc's JSON shape."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.fastjson import dumps
    from rongqi.oci.default_spec import features

    sys.stdout.write(dumps(features(), indent=4) + "\n")
    return 0
