"""Run the `rongqi` engine CLI in tests: its own --root, --runroot and runtime root under a tmp
dir (never the user's /var/lib/rongqi or /run/rongqi), every container removed at the end and
its id known to the leak check. The one helper of the engine's tests (tests/engine/rq.py
re-exports it): two fixtures that differ only in whether a failing command raises.

    def test_x(rongqi):                      # check=True unless told otherwise
        cid = rongqi("create", "busybox", "true").stdout.strip()

    def test_y(rq):                          # check=False unless told otherwise
        assert rq("rm", "nosuch").returncode == 1
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rongqi as _rongqi_pkg

# The package the test process imports (the checkout's under PYTHONPATH=src, the venv's in
# CI): the CLI subprocesses run the same code as the in-process engine() below.
SRC = os.path.dirname(os.path.dirname(_rongqi_pkg.__file__))


class Rongqi:
    """`rongqi ARGS...` as a subprocess, with this test's paths."""

    def __init__(self, base: Path, *, runtime: str | None = None, check: bool = True):
        self.base = base
        self.root = str(base / "root")
        self.runroot = str(base / "run")
        self.runtime_root = str(base / "runtime")
        self.runtime = runtime
        self.check = check
        extra = os.environ.get("PYTHONPATH", "")
        self.env = {**os.environ, "RONGQI_RUNTIME_ROOT": self.runtime_root,
                    "PYTHONPATH": SRC + (os.pathsep + extra if extra else "")}
        self.env.pop("RONGQI_ROOT", None)
        self.env.pop("RONGQI_RUNROOT", None)

    def argv(self, *args: str) -> list[str]:
        glob = ["--root", self.root, "--runroot", self.runroot]
        if self.runtime:
            glob += ["--runtime", self.runtime]
        return [sys.executable, "-m", "rongqi.cli.main", *glob, *args]

    def __call__(self, *args: str, check: bool | None = None,
                 input: str | bytes | None = None, timeout: float = 120,
                 **kw: Any) -> subprocess.CompletedProcess:
        """Run it and wait; stdin is /dev/null unless `input` (text, or bytes for binary
        output too) or stdin= says otherwise. check: raise on a non-zero exit (the
        fixture's default unless given)."""
        if input is None:
            kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.run(self.argv(*args), env=self.env, capture_output=True,
                           text=not isinstance(input, bytes), input=input, timeout=timeout,
                           **kw)
        if (self.check if check is None else check) and p.returncode != 0:
            raise AssertionError(f"rongqi {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout}{p.stderr}")
        return p

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.env, **kw)

    # -- looking at what the CLI made --------------------------------------------------------
    def inspect(self, ref: str) -> dict[str, Any]:
        return json.loads(self("container", "inspect", ref, check=True).stdout)[0]

    def engine(self) -> Any:
        """The same engine in-process (records, storage, the runtime this test's CLI uses)."""
        from rongqi.engine import Engine

        return Engine(self.root, self.runroot, self.runtime, runtime_root=self.runtime_root)

    def state(self, ref: str) -> dict:
        """A container's state.json, synced (as ps would see it)."""
        from rongqi.engine import lifecycle

        e = self.engine()
        c = e.get(ref)
        lifecycle.synced(e, c)
        return c.state

    def wait_for(self, pred: Any, timeout: float = 20.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or pred}")
            time.sleep(0.05)

    def ids(self) -> list[str]:
        d = Path(self.root) / "containers"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def names(self) -> list[str]:
        d = Path(self.root) / "names"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def snapshots(self) -> list[str]:
        d = Path(self.root) / "overlay" / "snapshots"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f if self.root in line.split()[4]]

    # -- the end of the test -----------------------------------------------------------------
    def cleanup(self) -> None:
        """rm -f every container (SIGKILL at once), through the Engine in-process, so it works
        whatever state a test left them in; whatever cannot be removed shows in the leak check
        that follows, which knows this engine's container ids (their cgroups, /rongqi/<id>,
        and netns, rongqi-<id>, carry no session tag)."""
        from support.leaks import ENGINE_IDS, engine_ids
        ENGINE_IDS.update(engine_ids(self.root))
        if not os.path.isdir(os.path.join(self.root, "containers")):
            return
        e = self.engine()
        for c in e.list(all=True):
            ENGINE_IDS.add(c.id)
            try:
                e.remove(c.id, force=True, timeout=0)
            except Exception as err:  # noqa: BLE001 - the leak check says what stayed
                import warnings

                warnings.warn(f"removing {c.id}: {err!r}", stacklevel=1)


@pytest.fixture
def rongqi(tmp_path: Path) -> Iterator[Rongqi]:
    """The CLI under tmp_path/engine; a failing command raises unless check=False."""
    r = Rongqi(tmp_path / "engine")
    yield r
    r.cleanup()


@pytest.fixture
def rq(tmp_path: Path) -> Iterator[Rongqi]:
    """The CLI under tmp_path; a command's failure is the test's to look at unless check=True."""
    r = Rongqi(tmp_path, check=False)
    yield r
    r.cleanup()
