"""The built-in `busybox` image, made locally from Debian's busybox-static on first use.

So `rongqi run busybox` needs no registry; the image is an ordinary one-layer OCI image.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from rongqi.image import reference
from rongqi.image.archive import add_layer_file, create_image, layer_from_dir
from rongqi.image.media import Descriptor
from rongqi.image.store import ImageStore

BUILTIN_NAMES = ("docker.io/library/busybox:latest",)
BUILTIN_ANNOTATION = "io.rongqi.builtin"


def is_builtin(name: str) -> bool:
    try:
        return str(reference.parse(name)) in BUILTIN_NAMES
    except Exception:  # noqa: BLE001 - a bad name is simply not the built-in one
        return False


def make_busybox_image(store: ImageStore, name: str = BUILTIN_NAMES[0]) -> Descriptor:
    """Build the busybox image from /bin/busybox and name it; returns its manifest."""
    from rongqi.image.busybox import make_rootfs
    tmp = tempfile.mkdtemp(prefix="busybox-", dir=store.ingest_dir)
    try:
        rootfs = os.path.join(tmp, "rootfs")
        os.mkdir(rootfs)
        make_rootfs(rootfs)
        layer_path = os.path.join(tmp, "layer.tar.gz")
        with open(layer_path, "wb") as out:
            layer_from_dir(rootfs, out)
        with store.gc_lock(shared=True):
            with open(layer_path, "rb") as f:
                layer = add_layer_file(store, f)
            return create_image(
                store, [layer], name,
                config={"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                        "Cmd": ["sh"]},
                history=[{"created": "1970-01-01T00:00:00Z",
                          "created_by": "rongqi: busybox-static from the host"}],
                created="1970-01-01T00:00:00Z",
                annotations={BUILTIN_ANNOTATION: "true"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
