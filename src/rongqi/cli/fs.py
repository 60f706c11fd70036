"""Commands on a container's files and processes: cp, diff, commit, export, top, stats, port
(owner: fs)."""

from __future__ import annotations

from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["container"]`."""
