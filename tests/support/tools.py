"""Checks for the host tools a test needs, skipping with the package that provides them.

Kept apart from conftest files so that test modules can import it.
"""

from __future__ import annotations

import shutil

import pytest


def require_tools(**tools: str) -> None:
    """require_tools(ctr="containerd", skopeo="skopeo"): skip naming the apt package."""
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in tools.items() if not shutil.which(tool)]
    if missing:
        pytest.skip("missing " + ", ".join(missing))
