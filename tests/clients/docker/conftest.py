"""Fixtures for driving rongqi-oci through dockerd: a private daemon with rongqi as an added runtime.

`dockerd` is one daemon per session from Debian's docker.io, everything under one short
directory (its own data root, exec root, pidfile, socket; the containerd it starts keeps its
state in the exec root). It runs with --bridge=none and --iptables=false, so the host's
bridges and firewall stay untouched, and with a cgroup parent named for the session.
`runtime` is the name passed to `docker run --runtime`: runc (the harness's proof) or rongqi
(a wrapper that logs each call to calls.log and execs the rongqi-oci under test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docker_harness import IMAGE, Dockerd
from support.oci_image import build_busybox_oci_archive
from support.plugin import SESSION_TAG
from support.tools import require_tools


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory, oci_binary: str) -> Iterator[Dockerd]:
    if os.geteuid() != 0:
        pytest.skip("needs root (dockerd)")
    require_tools(dockerd="docker.io", docker="docker.io", skopeo="skopeo")
    # Short: containerd's sockets live under the exec root (sun_path holds 108 bytes).
    base = Path(f"/tmp/rongqi-dk-{SESSION_TAG}")
    shutil.rmtree(base, ignore_errors=True)
    d = Dockerd(base, oci_binary)
    try:
        try:
            d.start()
        except RuntimeError as err:
            pytest.skip(f"dockerd cannot run here: {err}")
        # docker 20.10 loads docker-archive tarballs only: skopeo converts the suite's OCI archive.
        oci_archive = tmp_path_factory.mktemp("docker-image") / "busybox-oci.tar"
        build_busybox_oci_archive(str(oci_archive), IMAGE)
        docker_archive = oci_archive.with_name("busybox-docker.tar")
        subprocess.run(["skopeo", "copy", "-q", f"oci-archive:{oci_archive}", f"docker-archive:{docker_archive}:{IMAGE}"],
                       check=True, capture_output=True)
        d("load", "-i", str(docker_archive), check=True)
        # One container per runtime before the tests, so that the shared cgroup parent and the
        # daemon's lazily made state exist before the first leak snapshot.
        for rt in ("runc", "rongqi"):
            d("run", "--rm", "--runtime", rt, IMAGE, "true", check=True)
        yield d
    finally:
        d.stop()


@pytest.fixture(params=["runc", "rongqi"])
def runtime(request: pytest.FixtureRequest) -> str:
    if request.param == "runc" and not shutil.which("runc"):
        pytest.skip("missing runc (apt-get install runc)")
    return request.param


@pytest.fixture
def dk(dockerd: Dockerd) -> Iterator[Dockerd]:
    """The session's dockerd; every container is removed after the test."""
    yield dockerd
    dockerd.clear()
    # Shims exit once their container is deleted; wait for them so no process outlives the test.
    deadline = time.monotonic() + 15
    while dockerd._ours(b"containerd-shim") and time.monotonic() < deadline:
        time.sleep(0.05)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.root)
