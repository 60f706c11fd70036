"""podman 4 reads rongqi's events log as its own: `podman events` over ROOT/events.log prints
what `rongqi events` prints, line for line, in the human form, as JSON and through filters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rongqi.engine import events
from support.tools import require_tools

SRC = str(Path(__file__).resolve().parents[3] / "src")
CID = "8b3657b33729b1f2ccf4d732a751de43890642cf0cc5f8878507db188b7c0594"
IID = "ce7f40393749d77bea96ca09328f2e3aff9e5855938c671c2b795e6c3e8578b1"


@pytest.fixture
def log_root(tmp_path: Path) -> Path:
    root = tmp_path / "rongqi"
    root.mkdir()
    r = str(root)
    # at most one attribute per event: podman prints a map's entries in Go's random order
    events.emit(r, "image", "pull", name="docker.io/library/busybox:latest")
    events.emit(r, "image", "tag", id=IID, name="localhost/bb:1")
    events.emit(r, "container", "create", id=CID, name="web", image="busybox",
                attributes={"app": "web"})
    events.emit(r, "container", "start", id=CID, name="web", image="busybox",
                attributes={"app": "web"})
    events.emit(r, "container", "health_status", id=CID, name="web", image="busybox",
                health_status="healthy", attributes={})
    events.emit(r, "container", "died", id=CID, name="web", image="busybox", exit_code=3,
                attributes={})
    events.emit(r, "volume", "create", name="data")
    return root


@pytest.fixture(scope="module")
def podman_base() -> Iterator[Path]:
    # podman refuses a runroot longer than 50 characters: a short directory of our own
    base = Path(tempfile.mkdtemp(prefix="rq-ev-", dir="/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _podman(base: Path, log: Path, *args: str) -> str:
    conf = base / "containers.conf"
    conf.write_text(f'[engine]\nevents_logger = "file"\nevents_logfile_path = "{log}"\n')
    argv = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
            "--tmpdir", str(base / "tmp"), "--volumepath", str(base / "volumes"),
            "--storage-driver", "vfs", "--network-config-dir", str(base / "net"), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, CONTAINERS_CONF=str(conf), TZ="UTC"))
    assert r.returncode == 0, r.stderr
    return r.stdout


def _rongqi(root: Path, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "rongqi.cli.main", "--root", str(root), *args],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=SRC, TZ="UTC"))
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("args", [
    [],
    ["--format", "json"],
    ["--filter", "event=died"],
    ["--filter", "type=image"],
    ["--filter", "container=web", "--filter", "event=start"],
    ["--format", "{{.Time}} {{.Type}} {{.Status}} {{.Name}} {{.ContainerExitCode}}"],
    ["--format", "{{.}}|{{.Details}}|{{.Attributes}}|{{.HealthStatus}}"],
    ["--no-trunc=false"],
], ids=["human", "json", "died", "images", "start-of-web", "template", "struct", "trunc"])
def test_podman_prints_rongqis_events_as_rongqi_does(podman_base: Path, log_root: Path,
                                                     args: list[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (podman with a private storage)")
    require_tools(podman="podman")
    theirs = _podman(podman_base, log_root / "events.log", "events", "--stream=false", *args)
    ours = _rongqi(log_root, "events", "--stream=false", *args)
    assert theirs  # the log was read, not ignored
    assert ours == theirs
