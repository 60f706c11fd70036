"""Driving the `rongqi` CLI from the engine's tests: a private --root/--runroot under the test's
tmp dir, the checkout's code, and a teardown that removes every container the test made
(through the Engine, so it works whatever state a test left them in)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


class Rongqi:
    def __init__(self, base: Path):
        self.root = str(base / "root")
        self.runroot = str(base / "run")
        extra = os.environ.get("PYTHONPATH", "")
        self.env = {**os.environ,
                    "PYTHONPATH": str(REPO / "src") + (os.pathsep + extra if extra else "")}
        self.env.pop("RONGQI_ROOT", None)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "rongqi.cli.main", "--root", self.root,
                "--runroot", self.runroot, *args]

    def __call__(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
                 check: bool = False, **kw: Any) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        r = subprocess.run(self.argv(*args), input=input, capture_output=True, text=text,
                           timeout=timeout, env=self.env, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"rongqi {' '.join(args)}: exit {r.returncode}\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.env, **kw)

    def engine(self) -> Any:
        from rongqi.engine import Engine

        return Engine(self.root, self.runroot)

    def state(self, ref: str) -> dict:
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

    def cleanup(self) -> None:
        if not os.path.isdir(os.path.join(self.root, "containers")):
            return
        e = self.engine()
        for c in e.list(all=True):
            try:
                e.remove(c.id, force=True, timeout=0)
            except Exception as err:  # noqa: BLE001 - the leak check says what stayed
                import warnings

                warnings.warn(f"removing {c.id}: {err!r}", stacklevel=1)


@pytest.fixture
def rq(tmp_path: Path):
    r = Rongqi(tmp_path)
    yield r
    r.cleanup()
