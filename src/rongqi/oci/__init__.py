"""The OCI runtime: bundle (config.json + rootfs) -> running container, and its state.

Imported by the rongqi-oci command line and by the engine (in-process); keep it light.
"""

import sys as _sys


def debug(text: str) -> None:
    """A --debug line (oci/log.py), without importing it on the plain start path: the command
    line loads it only for --log or --debug, and an engine in-process never asks for one."""
    log = _sys.modules.get("rongqi.oci.log")
    if log is not None and log.debug_enabled:
        log.debug(text)
