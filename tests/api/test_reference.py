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


# An interactive zsh on a pty completes a typed line with Tab through compinit, as a user's
# does; compadd is wrapped to print what it matched (the words the user would be offered),
# and the shell exits once the completion is done.
_ZSH_INIT = r"""PS1=''; RPROMPT=''
%s
zstyle ':completion:*' insert-tab false
compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  local -a __hits
  builtin compadd -O __hits "$@"
  (( $#__hits )) || return 1
  print -r -- "<<""hits ${(j: :)__hits}>>"
  builtin compadd "$@"
}
comppostfuncs=(exit)
print -r -- "<<""ready>>"
"""


def _zsh_complete(tmp: Path, line: str, *, sourced: bool) -> set[str]:
    import os
    import re
    import select
    import time
    setup = (f"autoload -U compinit && compinit -u -D\nsource {tmp}/_rongqi" if sourced
             else f"fpath=({tmp} $fpath)\nautoload -U compinit && compinit -u -D")
    master, slave = os.openpty()
    p = subprocess.Popen(["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True,
                         env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "HOME": str(tmp)})
    os.close(slave)
    buf = b""

    def read_until(marker: bytes, seconds: float) -> None:
        nonlocal buf
        deadline = time.monotonic() + seconds
        while marker not in buf and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:   # EIO: the shell exited (after its completion)
                    return
                if not data:
                    return
                buf += data
    try:
        os.write(master, (_ZSH_INIT % setup).encode())
        read_until(b"<<ready>>", 60)
        assert b"<<ready>>" in buf, buf.decode(errors="replace")
        os.write(master, line.encode() + b"\t")
        read_until(b"\0never", 20)   # until the shell exits (comppostfuncs) or the time is up
    finally:
        p.kill()
        p.wait()
        os.close(master)
    hits = re.findall(rb"<<hits ([^>]*)>>", buf)
    return {w for h in hits for w in h.decode().split()}


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed on this host")
def test_zsh_completion(tmp_path):
    (tmp_path / "_rongqi").write_text(_script("zsh"))
    # installed in $fpath, as compinit autoloads it
    assert _zsh_complete(tmp_path, "rongqi im", sourced=False) == {"image", "images",
                                                                   "import"}
    assert "--name" in _zsh_complete(tmp_path, "rongqi run --na", sourced=False)
    assert _zsh_complete(tmp_path, "rongqi image r", sourced=False) >= {"rm"}
    assert _zsh_complete(tmp_path, "rongqi --root /x vol", sourced=False) == {"volume"}
    assert "--filter" in _zsh_complete(tmp_path, "rongqi container prune --fi",
                                       sourced=False)
    # and sourced into a shell that ran compinit (it registers itself with compdef)
    assert _zsh_complete(tmp_path, "rongqi im", sourced=True) == {"image", "images",
                                                                  "import"}
