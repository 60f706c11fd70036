"""Container lifecycle commands: create, start, stop, restart, kill, rm, ps, inspect, wait,
rename, pause, unpause, container exists, container prune (owner: engine core)."""

from __future__ import annotations

from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["container"]`."""
