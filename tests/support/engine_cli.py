"""Run the `rongqi` engine CLI in tests: its own --root, --runroot and runtime root under a tmp
dir (never the user's /var/lib/rongqi or /run/rongqi), every container removed at the end.

    def test_x(rongqi):
        cid = rongqi("create", "busybox", "true").stdout.strip()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rongqi as _rongqi_pkg

SRC = os.path.dirname(os.path.dirname(_rongqi_pkg.__file__))


class Rongqi:
    """`rongqi ARGS...` as a subprocess, with this test's paths."""

    def __init__(self, base: Path, *, runtime: str | None = None):
        self.base = base
        self.root = str(base / "root")
        self.runroot = str(base / "run")
        self.runtime_root = str(base / "runtime")
        self.runtime = runtime
        self.env = {**os.environ, "PYTHONPATH": SRC, "RONGQI_RUNTIME_ROOT": self.runtime_root}
        self.env.pop("RONGQI_ROOT", None)
        self.env.pop("RONGQI_RUNROOT", None)

    def argv(self, *args: str) -> list[str]:
        glob = ["--root", self.root, "--runroot", self.runroot]
        if self.runtime:
            glob += ["--runtime", self.runtime]
        return [sys.executable, "-m", "rongqi.cli.main", *glob, *args]

    def __call__(self, *args: str, check: bool = True, input: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True,
                           input=input, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"rongqi {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout}{p.stderr}")
        return p

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.env, **kw)

    def inspect(self, ref: str) -> dict[str, Any]:
        return json.loads(self("container", "inspect", ref).stdout)[0]

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

    def cleanup(self) -> None:
        """rm -f every container (SIGKILL at once); whatever rm cannot remove shows in the
        leak check that follows (which knows this engine's container ids: their cgroups,
        /rongqi/<id>, are this session's)."""
        from support.leaks import ENGINE_IDS, engine_ids
        ENGINE_IDS.update(engine_ids(self.root))
        if not os.path.isdir(os.path.join(self.root, "containers")):
            return
        self("rm", "-f", "-t", "0", "--all", check=False, timeout=180)


@pytest.fixture
def rongqi(tmp_path: Path) -> Iterator[Rongqi]:
    r = Rongqi(tmp_path / "engine")
    yield r
    r.cleanup()
