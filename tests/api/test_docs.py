"""The examples of docs/guide.md, docs/api.md and the README, run as written (every `sh` and
`python` block, in order, in one working directory per page) so that they cannot rot; and the
shell examples of every other page of docs/ (and the README's). A block that cannot run on this
host says why on its fence line (```sh not-run: REASON), and a test holds it to that.

`rongqi` and `rongqi-oci` on the blocks' PATH are this checkout's, with a private --root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rongqi

pytestmark = pytest.mark.root

SRC = Path(rongqi.__file__).resolve().parent.parent   # the package under test (CI: the venv's)
REPO = Path(__file__).resolve().parents[2]            # the checkout whose pages are run
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.M | re.S)
NOT_RUN = "not-run:"


def blocks(page: Path, kinds: tuple[str, ...], *, with_skipped: bool = False
           ) -> list[tuple[str, str, int]]:
    """(kind, code, line) of the page's blocks of those kinds, in order; those marked
    `not-run: REASON` on their fence line are left out unless with_skipped."""
    text = page.read_text()
    return [(m.group(1), m.group(3), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text) if m.group(1) in kinds
            and (with_skipped or not m.group(2).strip().startswith(NOT_RUN))]


def _env(base: Path, oci_binary: str) -> dict[str, str]:
    bindir = base / "bin"
    bindir.mkdir()
    (bindir / "rongqi").write_text(
        f'#!/bin/sh\nexec {sys.executable} -m rongqi.cli.main --root "$RONGQI_ROOT" '
        f'--runroot "$RONGQI_RUNROOT" "$@"\n')
    (bindir / "rongqi-oci").write_text(f'#!/bin/sh\nexec {oci_binary} --root '
                                       f'"$RONGQI_OCI_ROOT" "$@"\n')
    for f in bindir.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RONGQI_")}
    if "RONGQI_REGISTRIES" in os.environ:
        # tests/support/plugin.py's registries.json, which blocks docker.io: an example that
        # pulls asks no registry outside loopback (nor Docker Hub's DNS name).
        env["RONGQI_REGISTRIES"] = os.environ["RONGQI_REGISTRIES"]
    env.update(PATH=f"{bindir}:{os.path.dirname(sys.executable)}:{env.get('PATH', '')}",
               PYTHONPATH=str(SRC), RONGQI_ROOT=str(base / "root"),
               RONGQI_RUNROOT=str(base / "run"), RONGQI_RUNTIME_ROOT=str(base / "runtime"),
               RONGQI_OCI_ROOT=str(base / "oci"), RONGQI_OCI=oci_binary)
    return env


def _cleanup(env: dict[str, str], oci_binary: str) -> None:
    from support.leaks import ENGINE_IDS, engine_ids
    from support.plugin import force_delete_all
    ENGINE_IDS.update(engine_ids(env["RONGQI_ROOT"]))
    subprocess.run(["rongqi", "rm", "-f", "-t", "0", "--all"], env=env, capture_output=True,
                   timeout=180)
    force_delete_all(oci_binary, env["RONGQI_OCI_ROOT"])


# The other pages: their shell examples (python blocks there are API signatures, not programs).
OTHER_PAGES = [str(p.relative_to(REPO)) for p in sorted((REPO / "docs").glob("*.md"))
               if p.name not in ("guide.md", "api.md")] + ["README.md"]
SHELL_PAGES = [p for p in OTHER_PAGES if blocks(REPO / p, ("sh",))]


def test_shell_examples_that_do_not_run_say_why():
    unsaid, shells = [], []
    for page in OTHER_PAGES + ["docs/guide.md"]:
        text = (REPO / page).read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            note = m.group(2).strip()
            if m.group(1) in ("sh", "bash", "console", "shell") and m.group(1) != "sh":
                shells.append(f"{page}:{line}: ```{m.group(1)} (write ```sh, run by this test)")
            if note.startswith(NOT_RUN) and len(note[len(NOT_RUN):].strip()) < 10:
                unsaid.append(f"{page}:{line}")
    assert shells == [] and unsaid == [], (shells, unsaid)
    assert SHELL_PAGES, "no page besides the guide has a shell example to run"


@pytest.mark.parametrize("page,kinds", [("docs/guide.md", ("sh", "python")),
                                        ("docs/api.md", ("python",)),
                                        ("README.md", ("python",)),
                                        *[(p, ("sh",)) for p in SHELL_PAGES
                                          if p != "README.md"]])
def test_examples_run(page, kinds, tmp_path, oci_binary):
    found = blocks(REPO / page, kinds)
    assert found, f"{page} has no runnable examples"
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path, oci_binary)
    try:
        for kind, code, line in found:
            argv = (["bash", "-euo", "pipefail", "-c", code] if kind == "sh"
                    else [sys.executable, "-c", code])
            p = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                               timeout=300, stdin=subprocess.DEVNULL)
            assert p.returncode == 0, (f"{page}:{line}: the {kind} block exited "
                                       f"{p.returncode}\n{code}\n--- stdout\n{p.stdout}"
                                       f"--- stderr\n{p.stderr}")
    finally:
        _cleanup(env, oci_binary)


MODULE_PATH = re.compile(r"`([a-z_]+(?:/[\w.-]+)*/[\w-]+\.py)`")


def test_the_modules_the_guide_and_the_module_map_name_exist():
    # The guide's "Where:" for each step, the API page's modules and architecture's module
    # map: a file renamed or split must take its page along.
    pages = [("docs/guide.md", lambda line: True), ("docs/api.md", lambda line: True),
             ("docs/architecture.md", lambda line: line.startswith("| `"))]
    missing, seen = [], 0
    for page, keep in pages:
        for n, line in enumerate((REPO / page).read_text().splitlines(), 1):
            if not keep(line):
                continue
            for path in MODULE_PATH.findall(line):
                seen += 1
                if not any((base / path).exists()
                           for base in (REPO, REPO / "src", REPO / "src" / "rongqi")):
                    missing.append(f"{page}:{n}: {path}")
    # and the dotted names (rongqi.image.builtin, rongqi.api.create_body, ...) of the two
    # pages that teach the Python side
    import importlib
    for page in ("docs/guide.md", "docs/api.md"):
        for name in sorted(set(re.findall(r"\brongqi(?:\.[a-z_]+)+", (REPO / page).read_text()))):
            parts = name.split(".")
            for i in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                try:
                    for attr in parts[i:]:
                        obj = getattr(obj, attr)
                except AttributeError:
                    missing.append(f"{page}: {name}")
                break
            else:
                missing.append(f"{page}: {name}")
    assert seen > 30 and missing == [], missing


# (command, the words of its error that docs/troubleshooting.md must show, exit code)
TROUBLES = [
    (["rm", "nosuch"], 'no container with name or ID "nosuch" found: no such container', 1),
    (["rmi", "nosuch"], "nosuch: image not known", 1),
    (["inspect", "nosuch"], 'inspecting object: no such object: "nosuch"', 125),
    (["run", "--rm", "--network", "none", "busybox", "nosuchcmd"],
     'exec: "nosuchcmd": executable file not found in $PATH: OCI runtime attempted to invoke '
     "a command that was not found", 127),
    (["run", "--rm", "--network", "none", "busybox", "/etc/passwd"],
     "OCI permission denied", 126),
    (["create", "--name", "trouble-created", "busybox", "true"],
     'the container name "trouble-created" is already in use by', 125),
    (["rm", "trouble-running"], "as it is running - running or paused containers cannot be "
     "removed without force: container state improper", 2),
    (["exec", "trouble-created", "true"], "can only create exec sessions on running "
     "containers: container state improper", 125),
    (["--runtime", "nosuchrt", "run", "--rm", "busybox", "true"],
     'could not find a working binary for runtime "nosuchrt"', 125),
    (["run", "--rm", "--network", "nonet", "busybox", "true"],
     "unable to find network with name or ID nonet: network not found", 125),
]


def test_troubleshooting_shows_the_errors_as_the_cli_says_them(tmp_path, oci_binary):
    page = (REPO / "docs" / "troubleshooting.md").read_text()
    env = _env(tmp_path, oci_binary)

    def rongqi(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rongqi", *argv], env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
    try:
        assert rongqi("create", "--name", "trouble-created", "--network", "none", "busybox",
                      "true").returncode == 0
        assert rongqi("run", "-d", "--name", "trouble-running", "--network", "none",
                      "busybox", "sleep", "600").returncode == 0
        wrong = []
        for argv, words, code in TROUBLES:
            p = rongqi(*argv)
            if words not in p.stderr or p.returncode != code:
                wrong.append(f"rongqi {' '.join(argv)}: exit {p.returncode}: {p.stderr!r}")
            # the page shows them with placeholders: x for the name, ID for an id
            shown = words.replace("nosuchcmd", "x").replace("nosuchrt", "x") \
                .replace("nosuch", "x").replace("nonet", "x").replace("trouble-created", "x")
            if shown not in page:
                wrong.append(f"docs/troubleshooting.md lacks {shown!r}")
        assert wrong == [], "\n".join(wrong)
    finally:
        _cleanup(env, oci_binary)
