"""Commands that attach to a container's stdio: run, start -a, attach, exec, logs,
healthcheck run (owner: the monitor)."""

from __future__ import annotations

from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["container"]`."""
