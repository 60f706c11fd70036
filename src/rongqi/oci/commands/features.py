"""rongqi-oci features: what this runtime supports, in runc's JSON shape."""

from __future__ import annotations

import sys


def run(g, opts, args, log) -> int:
    from rongqi.fastjson import dumps
    from rongqi.oci.default_spec import features

    sys.stdout.write(dumps(features(), indent=4) + "\n")
    return 0
