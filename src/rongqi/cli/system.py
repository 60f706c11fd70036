"""events, info, version and system prune (owner: fmt)."""

from __future__ import annotations

from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["system"]`."""
