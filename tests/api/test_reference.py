"""docs/reference.md is what the parser says (regenerate with `python3 -m rongqi.cli.reference
> docs/reference.md`), and `rongqi completion bash|zsh` completes commands and options."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rongqi
from rongqi.cli import reference

REPO = Path(__file__).resolve().parents[2]              # the checkout holding docs/
SRC = Path(rongqi.__file__).resolve().parents[1]       # the package under test (CI: the venv's)


def test_reference_page_matches_the_parser():
    page = (REPO / "docs" / "reference.md").read_text()
    assert page == reference.markdown(), (
        "docs/reference.md drifted from the command line: run "
        "`PYTHONPATH=src python3 -m rongqi.cli.reference > docs/reference.md`")


def test_every_command_is_in_the_reference():
    page = (REPO / "docs" / "reference.md").read_text()
    for path, _aliases, _help, _p in reference.walk(reference._parser()):
        assert f"\n## {' '.join(path)}\n" in page
    for cmd in ("rongqi run", "rongqi image ls", "rongqi container prune", "rongqi volume create",
                "rongqi completion"):
        assert f"\n## {cmd}\n" in page or cmd == "rongqi image ls" and "`ls`" in page


def _complete(shell_argv: list[str], script: str, words: str) -> list[str]:
    n = len(words.split(" ")) - 1
    prog = (f'{script}\nCOMP_WORDS=({words}); COMP_CWORD={n}; _rongqi; '
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
    p = subprocess.run(shell_argv, input=prog, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def _script(shell: str) -> str:
    p = subprocess.run([sys.executable, "-m", "rongqi.cli.main", "completion", shell],
                       capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_bash_completion():
    script = _script("bash")
    assert set(_complete(["bash"], script, "rongqi im")) == {"image", "images", "import"}
    assert "--name" in _complete(["bash"], script, "rongqi run --na")
    assert set(_complete(["bash"], script, "rongqi image r")) >= {"rm"}
    assert "--filter" in _complete(["bash"], script, "rongqi container prune --fi")
    assert _complete(["bash"], script, "rongqi --root /x vol") == ["volume"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed on this host")
def test_zsh_completion():
    script = _script("zsh")
    assert set(_complete(["zsh", "-f"], script, "rongqi im")) == {"image", "images", "import"}
