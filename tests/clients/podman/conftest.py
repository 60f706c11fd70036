"""Fixtures for driving rongqi-oci through podman (and conmon) with a storage of the test's own.

`podman` is one private podman setup per runtime (runc proves the harness; rongqi-oci is
under test): its own --root/--runroot/--tmpdir, network config dir, containers.conf and
the suite's busybox image loaded from an oci-archive. The runtime is called through a
small wrapper that logs every call (calls.log) and gives it a --root of its own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from podman_harness import IMAGE, Podman, _netavark_chains, _remove_netavark_chains
from support.oci_image import build_busybox_oci_archive
from support.plugin import SESSION_TAG
from support.tools import require_tools


@pytest.fixture(scope="session")
def podman_archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    archive = tmp_path_factory.mktemp("podman-image") / "busybox-oci.tar"
    build_busybox_oci_archive(str(archive), IMAGE)
    return str(archive)


def _runtime_params() -> list:
    return [pytest.param("runc", id="runc"), pytest.param("rongqi-oci", id="rongqi-oci")]


@pytest.fixture(scope="module", params=_runtime_params())
def podman(request: pytest.FixtureRequest, podman_archive: str) -> Iterator[Podman]:
    if os.geteuid() != 0:
        pytest.skip("needs root (podman with a private storage)")
    require_tools(podman="podman", conmon="conmon")
    if request.param == "runc":
        runtime = shutil.which("runc")
        if runtime is None:
            pytest.skip("missing runc (apt-get install runc)")
    else:
        runtime = request.getfixturevalue("oci_binary")
    # Short: conmon's attach socket path must fit in sun_path (108 bytes).
    base = Path(f"/tmp/rongqi-pm-{SESSION_TAG}-{request.param}")
    shutil.rmtree(base, ignore_errors=True)
    chains_before = _netavark_chains()
    pm = Podman(base, runtime, request.param)
    pm.setup()
    try:
        pm("load", "-i", podman_archive, check=True)
        # One container before the tests: conmon's cgroup (<parent>/conmon) then exists
        # before each test's leak snapshot and is removed with the parent at the end.
        pm.run("--rm", IMAGE, "true", check=True)
        pm.settle()
        yield pm
    finally:
        pm.teardown()
        if not any(chains_before.values()):
            _remove_netavark_chains()


@pytest.fixture
def pm(podman: Podman) -> Iterator[Podman]:
    """The module's podman; every container is gone (and conmon with it) after the test."""
    yield podman
    podman.settle()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.root)
