"""Shared setup for tests that drive real peers (containerd, registries, skopeo, podman).

Every test under tests/clients/ gets the `clients` marker; skip a test whose peer is missing
with support.tools.require_tools (it names the Debian package).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.clients)

