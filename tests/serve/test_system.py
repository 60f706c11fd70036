"""The system endpoints (/info, /events, /system/df) with real clients, and the engine's
threaded mode (the service's): monitors started from many threads at once, never forked from
the threaded process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rongqi.engine import Engine
from rongqi.engine.options import ContainerOptions
from rongqi.errors import RongqiError


@pytest.fixture
def threaded_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory of Engines over one root (one per thread, as the service makes them)."""
    base = tmp_path / "engine"
    monkeypatch.setenv("RONGQI_RUNTIME_ROOT", str(base / "runtime"))
    for var in ("RONGQI_ROOT", "RONGQI_RUNROOT", "RONGQI_RUNTIME"):
        monkeypatch.delenv(var, raising=False)

    def make() -> Engine:
        return Engine(str(base / "root"), str(base / "run"), threaded=True)

    yield make
    from support.leaks import ENGINE_IDS, engine_ids
    e = make()
    ENGINE_IDS.update(engine_ids(e.root))
    for c in e.list(all=True):
        try:
            e.remove(c.id, force=True, timeout=0)
        except RongqiError:
            pass


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def test_ten_containers_started_at_once_from_threads_all_run(threaded_engine: Any,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(threading.get_ident())
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    first = threaded_engine()
    # the image once (as `docker pull` would), then ten create+start at the same moment
    first.create(ContainerOptions(image="busybox", command=["true"], network="none"))
    barrier = threading.Barrier(10)
    started: list[Any] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            e = threaded_engine()
            barrier.wait(30)
            c = e.create(ContainerOptions(image="busybox", command=["sleep", "60"],
                                          name=f"t{i}", network="none"))
            started.append(e.start(c.id))
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    assert len(started) == 10
    e = threaded_engine()
    running = {c.name for c in e.list()}
    assert running == {f"t{i}" for i in range(10)}
    # the monitors are fresh interpreters: nothing forked this (threaded) process
    assert forks == []
    for c in started:
        assert "python" in _cmdline(c.state["monitor_pid"])


def test_a_spawned_monitor_reports_the_runtimes_error(threaded_engine: Any) -> None:
    e = threaded_engine()
    c = e.create(ContainerOptions(image="busybox", command=["/no/such/cmd"], network="none"))
    with pytest.raises(RongqiError) as info:
        e.start(c.id)
    assert getattr(info.value, "exit_code", None) == 127
    assert "/no/such/cmd" in str(info.value)
