"""The engine tests' CLI helper under its short name: `from rq import rq` is the check=False
fixture of tests/support/engine_cli.py (one helper for every engine test; see there)."""

from __future__ import annotations

from support.engine_cli import SRC, Rongqi, rongqi, rq

__all__ = ["SRC", "Rongqi", "rongqi", "rq"]
