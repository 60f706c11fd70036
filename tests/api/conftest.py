"""Fixtures for the Python API's tests: a rongqi.Client over an engine of its own under the
test's tmp dir (root, run root, runtime root), every container removed at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import rongqi


def _cleanup(client: rongqi.Client) -> None:
    from support.leaks import ENGINE_IDS, engine_ids
    ENGINE_IDS.update(engine_ids(client.engine.root))
    for c in client.engine.list(all=True):
        try:
            client.engine.remove(c.id, force=True, volumes=True, timeout=0)
        except rongqi.errors.RongqiError:
            pass


@pytest.fixture
def engine_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "engine"
    # The runtime's state apart from every other session's (read by Engine at creation).
    monkeypatch.setenv("RONGQI_RUNTIME_ROOT", str(base / "runtime"))
    for var in ("RONGQI_ROOT", "RONGQI_RUNROOT", "RONGQI_RUNTIME"):
        monkeypatch.delenv(var, raising=False)
    return base


@pytest.fixture
def client(engine_paths: Path) -> Iterator[rongqi.Client]:
    c = rongqi.Client(root=str(engine_paths / "root"), runroot=str(engine_paths / "run"))
    yield c
    _cleanup(c)


@pytest.fixture
def other(engine_paths: Path) -> Iterator[rongqi.Client]:
    """A second client over an empty store of its own (where a test loads or pulls to)."""
    c = rongqi.Client(root=str(engine_paths / "other-root"),
                      runroot=str(engine_paths / "other-run"))
    yield c
    _cleanup(c)
