"""The OCI runtime: bundle (config.json + rootfs) -> running container, and its state; and
its typed Python API (`import rongqi.oci as oci; oci.create(...)`, defined in oci/api.py).

Imported by the rongqi-oci command line and by the engine (in-process); keep it light: the
API's names are looked up lazily (PEP 562), so the command line never imports oci/api.py.
No module of this package may be named like an API function (tests/api/test_oci_api.py).
"""

import sys as _sys

# oci/api.py's __all__, spelled out here so that a lookup of any other name never imports it
# (`from rongqi.oci import *` does, and gets the API).
__all__ = ["create", "start", "state", "kill", "delete", "exec", "pause", "resume", "ps", "list",
           "run", "default_root", "Stdio"]
_API = frozenset(__all__)

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.api import (Stdio as Stdio, create as create, default_root as default_root,
                                delete as delete, exec as exec, kill as kill, list as list,
                                pause as pause, ps as ps, resume as resume, run as run,
                                start as start, state as state)
else:
    def __getattr__(name: str) -> object:
        # Hidden from mypy, which sees the real signatures above and still flags a misspelt name.
        if name in _API:
            from rongqi.oci import api
            value = getattr(api, name)
            # Found once; later lookups never come here. (So after a lookup of list or exec
            # this module's globals shadow the builtins of those names: none is used here.)
            globals()[name] = value
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> "list[str]":
        return sorted({*globals(), *_API})


def debug(text: str) -> None:
    """A --debug line (oci/log.py), without importing it on the plain start path: the command
    line loads it only for --log or --debug, and an engine in-process never asks for one."""
    log = _sys.modules.get("rongqi.oci.log")
    if log is not None and log.debug_enabled:
        log.debug(text)
