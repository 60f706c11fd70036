"""Build the test suite's busybox image as an OCI image-layout tarball, from make_rootfs.

No registry and no download: the one layer is the built-in busybox rootfs, packed the same
way on every run (fixed mtimes and owners) so its digest is stable.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
import tempfile
from pathlib import Path

from rongqi.image.busybox import DEFAULT_ENV, make_rootfs

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_INDEX = "application/vnd.oci.image.index.v1+json"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def host_arch() -> str:
    return _ARCH.get(platform.machine(), platform.machine())


def _layer_tar(rootfs: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, rootfs))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def _blob(layout: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def build_busybox_oci_archive(dest: str, name: str, cmd: list[str] | None = None) -> str:
    """Write an oci-archive tarball of a busybox image named `name` to dest; return its digest.

    The index carries `io.containerd.image.name` (containerd's import uses it as the full
    name) and `org.opencontainers.image.ref.name` (the tag, for skopeo and umoci).
    """
    with tempfile.TemporaryDirectory(prefix="rongqi-img-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        make_rootfs(rootfs)
        raw = _layer_tar(rootfs)
        layout = Path(tmp) / "layout"
        layer = gzip.compress(raw, mtime=0)
        layer_digest = _blob(layout, layer)
        config = {
            "architecture": host_arch(),
            "os": "linux",
            "config": {"Env": DEFAULT_ENV[:1], "Cmd": cmd or ["sh"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
            "history": [{"created_by": "rongqi tests: make_rootfs from busybox-static"}],
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = _blob(layout, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": MT_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = _blob(layout, manifest_bytes)
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [
                {
                    "mediaType": MT_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "platform": {"architecture": host_arch(), "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        }
        (layout / "index.json").write_text(json.dumps(index))
        (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        with tarfile.open(dest, "w") as tar:
            for entry in ("oci-layout", "index.json", "blobs"):
                tar.add(layout / entry, arcname=entry)
    return manifest_digest
