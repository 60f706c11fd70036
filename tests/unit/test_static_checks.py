"""ruff and mypy over the runtime (src/rongqi/oci, src/rongqi/linux), with pyproject.toml's
settings: clean, so that a regression fails the suite. mypy runs twice: over both packages, and
with --strict over the runtime's seams (the spawn helpers, the command handlers, the CLI and its
context), as issue 12 asks. Both tools are pinned in pyproject's test extra.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
RUNTIME = ["rongqi/oci", "rongqi/linux"]
SEAMS = ["rongqi/oci/spawn.py", "rongqi/oci/cli.py", "rongqi/oci/commands"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=SRC, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean_over_the_runtime() -> None:
    p = _run(["ruff", "check", "--no-cache", "--config", str(REPO / "pyproject.toml"), *RUNTIME])
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy_is_clean_over_the_runtime_and_strict_on_its_seams(tmp_path: Path) -> None:
    common = ["mypy", "--config-file", str(REPO / "pyproject.toml"), "--follow-imports=silent",
              "--cache-dir", str(tmp_path / "cache")]
    p = _run([*common, *RUNTIME])
    assert p.returncode == 0, p.stdout + p.stderr
    p = _run([*common, "--strict", *SEAMS])
    assert p.returncode == 0, p.stdout + p.stderr
