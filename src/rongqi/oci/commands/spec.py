"""rongqi-oci spec: write a default config.json, as runc spec does."""

from __future__ import annotations

import os

from rongqi.errors import RongqiError

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
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
