"""The flags of `run` and `create`, parsed into an engine.options.ContainerOptions
(owner: the bundle). register() adds no command of its own."""

from __future__ import annotations

from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """run_flags adds flags to other modules' parsers (add_create_flags), no command."""
