"""rongqi-oci spec: write a default config.json, as runc spec does."""

from __future__ import annotations

import os

from rongqi.errors import RongqiError


def run(g, opts, args, log) -> int:
    from rongqi.fastjson import dumps
    from rongqi.oci.default_spec import default_spec

    bundle = opts["bundle"] or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise RongqiError(f"File {path} exists. Remove it first")
    spec = default_spec(rootless=opts["rootless"])
    try:
        with open(path, "x") as f:
            f.write(dumps(spec, indent=2) + "\n")
    except OSError as err:
        raise RongqiError(f"cannot write {path}: {err.strerror}") from None
    return 0
