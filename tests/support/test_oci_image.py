"""The suite's busybox OCI archive is a valid image that real OCI tools read.

skopeo and umoci (Debian packages) inspect and unpack it; no root needed for skopeo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from support.oci_image import build_busybox_oci_archive, host_arch


def test_archive_is_deterministic_and_names_the_image(tmp_path):
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    d1 = build_busybox_oci_archive(str(a), "docker.io/rongqi/busybox:test")
    d2 = build_busybox_oci_archive(str(b), "docker.io/rongqi/busybox:test")
    assert d1 == d2
    with tarfile.open(a) as tar:
        index = json.load(tar.extractfile("index.json"))
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = index["manifests"]
    assert entry["digest"] == d1
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/rongqi/busybox:test"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "test"


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo (apt-get install skopeo)")
def test_skopeo_reads_the_archive_config(tmp_path):
    archive = tmp_path / "img.tar"
    build_busybox_oci_archive(str(archive), "docker.io/rongqi/busybox:test", cmd=["sh", "-l"])
    out = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci-archive:{archive}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    config = json.loads(out)
    assert config["architecture"] == host_arch()
    assert config["config"]["Cmd"] == ["sh", "-l"]
    assert len(config["rootfs"]["diff_ids"]) == 1


@pytest.mark.root
@pytest.mark.skipif(shutil.which("umoci") is None, reason="needs umoci (apt-get install umoci)")
def test_umoci_unpacks_a_runnable_busybox(tmp_path):
    archive = tmp_path / "img.tar"
    build_busybox_oci_archive(str(archive), "docker.io/rongqi/busybox:test")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout)  # our own archive; 3.11.2 has no extraction filters
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:test", str(tmp_path / "bundle")],
                   check=True, capture_output=True, timeout=60)
    rootfs = tmp_path / "bundle" / "rootfs"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    out = subprocess.run([str(rootfs / "bin" / "sh"), "-c", "echo ok"], capture_output=True, text=True)
    assert out.stdout == "ok\n"
