"""`volume create/ls/inspect/rm/prune/exists` (owner: the bundle)."""

from __future__ import annotations

from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands under `groups["volume"]`."""
