"""The README's main command: scripts/demo.sh runs an isolated busybox container (install skipped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


def test_demo_shows_an_isolated_container_with_a_memory_limit(oci_binary):
    venv = Path(sys.executable).parent.parent  # the environment running the tests has rongqi
    r = subprocess.run([str(REPO / "scripts" / "demo.sh")], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL,
                       env={**os.environ, "RONGQI_DEMO_NO_INSTALL": "1", "RONGQI_VENV": str(venv),
                            "RONGQI_DEMO_RUNTIME": oci_binary})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    assert "== inside: hostname is rongqi-demo" in out
    ps = out.split("== inside: processes")[1].split("== inside:")[0].splitlines()[2:]
    assert ps and ps[0].split()[0] == "1"          # the demo's shell is PID 1
    assert "uid=0(root)" in out
    assert "4:memory:/" in out or "0::/" in out      # its own cgroup namespace
    assert "== inside: memory limit 67108864 bytes (64 MiB" in out
    assert '"status": "stopped"' in out
