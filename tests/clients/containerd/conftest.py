"""Fixtures for driving rongqi-oci through containerd: a private daemon and a busybox image.

`containerd` is one daemon per session (own root, state, socket; no CRI plugin); `ctr_image`
is the suite's busybox image imported into it; `runtime` is the binary under test (runc,
which proves the harness, and rongqi-oci); `ctr_id` is a container id removed at teardown.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.containerd import Containerd
from support.oci_image import build_busybox_oci_archive
from support.plugin import new_id
from support.tools import require_tools

IMAGE = "docker.io/rongqi/busybox:test"

# While the runtime is under construction its cases may fail without failing the suite.
# Set to False (or delete) once rongqi-oci passes them: then a failure is a failure again.
RONGQI_OCI_XFAIL = False


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if os.geteuid() != 0:
        pytest.skip("needs root (containerd)")
    require_tools(containerd="containerd", ctr="containerd")
    daemon = Containerd(tmp_path_factory.mktemp("containerd"))
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def ctr_image(containerd: Containerd, tmp_path_factory: pytest.TempPathFactory) -> str:
    archive = tmp_path_factory.mktemp("image") / "busybox-oci.tar"
    build_busybox_oci_archive(str(archive), IMAGE)
    containerd.import_image(str(archive))
    return IMAGE


def _runtime_params() -> list:
    marks = (
        [pytest.mark.xfail(reason="rongqi-oci is under construction", strict=False)]
        if RONGQI_OCI_XFAIL
        else []
    )
    return [pytest.param("runc", id="runc"), pytest.param("rongqi-oci", id="rongqi-oci", marks=marks)]


@pytest.fixture(params=_runtime_params())
def runtime(request: pytest.FixtureRequest) -> str:
    """Absolute path of the runtime that containerd's runc shim is told to call."""
    if request.param == "runc":
        path = shutil.which("runc")
        if path is None:
            pytest.skip("missing runc (apt-get install runc)")
        return path
    return request.getfixturevalue("oci_binary")


@pytest.fixture
def ctr_id(containerd: Containerd) -> Iterator[str]:
    cid = new_id("rongqi-ctr")
    yield cid
    containerd.remove_container(cid)


@pytest.fixture
def ctr_run(containerd: Containerd, ctr_image: str, runtime: str):
    """ctr_run(cid, *cmd, flags=[...], input=None, timeout=60) -> CompletedProcess."""

    def run(cid: str, *cmd: str, flags: list[str] | None = None, input: str | None = None,
            timeout: float = 60, rm: bool = True):
        argv = ["run"]
        if rm:
            argv.append("--rm")
        argv += ["--runc-binary", runtime, "--runc-root", str(containerd.runc_root)]
        argv += list(flags or [])
        argv += [ctr_image, cid, *cmd]
        return containerd.ctr(*argv, input=input, timeout=timeout)

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.root)
