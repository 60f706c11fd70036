"""The README's main command: scripts/demo.sh `rongqi run`s an isolated busybox container
from the built-in image (install skipped, the engine's storage under a tmp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("runtime", ["rongqi", "runc"])
def test_demo_shows_an_isolated_container_with_a_memory_limit(tmp_path, runtime, oci_binary):
    venv = Path(sys.executable).parent.parent  # the environment running the tests has rongqi
    env = {**os.environ, "RONGQI_DEMO_NO_INSTALL": "1", "RONGQI_VENV": str(venv),
           "RONGQI_ROOT": str(tmp_path / "root"), "RONGQI_RUNROOT": str(tmp_path / "run"),
           "PYTHONPATH": str(REPO / "src")}
    if runtime == "runc":
        env["RONGQI_DEMO_RUNTIME"] = "/usr/sbin/runc"
    r = subprocess.run([str(REPO / "scripts" / "demo.sh")], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    assert "== inside: hostname is rongqi-demo" in out
    ps = out.split("== inside: processes")[1].split("== inside:")[0].splitlines()[2:]
    assert ps and ps[0].split()[0] == "1"          # the demo's shell is PID 1
    assert "uid=0(root)" in out
    assert "overlay on / type overlay" in out
    assert "== inside: memory limit 67108864 bytes (64 MiB" in out
    assert "was removed (--rm)" in out and "is still there" not in out
