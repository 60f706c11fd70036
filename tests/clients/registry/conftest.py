"""A real registry on loopback (Debian's docker-registry) and images built here, pushed by skopeo.

Each test gets its own registry process (storage in its temp dir, a free 127.0.0.1 port),
stopped by PID at teardown; images come from busybox-static, never from the internet.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from rongqi.image import media
from rongqi.image.archive import add_layer_file, create_image, layer_from_dir
from rongqi.image.store import ImageStore

from support.registry import REGISTRY, SKOPEO, Registry, free_port, htpasswd_auth  # noqa: F401
from support.registry import start_registry as _start_registry
from support.registry import stop as _stop
from support.registry_token import TokenServer

pytestmark = pytest.mark.clients


@pytest.fixture
def registry(tmp_path):
    reg = _start_registry(tmp_path)
    yield reg
    _stop(reg.proc)


@pytest.fixture
def basic_registry(tmp_path):
    reg = _start_registry(tmp_path, htpasswd_auth(tmp_path, "alice", "s3cret"))
    reg.user, reg.password = "alice", "s3cret"
    yield reg
    _stop(reg.proc)


@pytest.fixture
def token_registry(tmp_path):
    ts = TokenServer(tmp_path, "rongqi-registry", "rongqi-issuer", "bob", "hunter2")
    reg = _start_registry(tmp_path, {"token": {
        "realm": f"http://127.0.0.1:{ts.port}/token", "service": "rongqi-registry",
        "issuer": "rongqi-issuer", "rootcertbundle": str(ts.cert)}})
    reg.user, reg.password = "bob", "hunter2"
    reg.extra["token_server"] = ts
    yield reg
    _stop(reg.proc)
    ts.close()


# -- images built by the tests ---------------------------------------------------------------------
def busybox_rootfs(dest: Path) -> Path:
    from rongqi.image.busybox import make_rootfs
    dest.mkdir(parents=True, exist_ok=True)
    make_rootfs(str(dest))
    return dest


def tar_bytes(entries: list[tuple]) -> bytes:
    """A layer from (name, data-or-None-for-dir[, kind, linkname]) tuples."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, data = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            if len(e) > 2:
                ti.type, ti.linkname = e[2], e[3]
                tf.addfile(ti)
            elif data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class Layout:
    """An OCI layout the tests fill with images (through rongqi's own store code)."""

    def __init__(self, path: Path):
        self.path = path
        self.store = ImageStore(str(path))

    def image_from_dir(self, rootfs: Path, name: str, extra_layers: list[bytes] = (),
                       arch: str | None = None) -> media.Descriptor:
        buf = io.BytesIO()
        layer_from_dir(str(rootfs), buf)
        buf.seek(0)
        layers = [add_layer_file(self.store, buf)]
        for raw in extra_layers:
            layers.append(add_layer_file(self.store, io.BytesIO(raw)))
        desc = create_image(self.store, layers, name, config={"Cmd": ["sh"]})
        if arch:
            desc = self._set_arch(desc, name, arch)
        return desc

    def image_from_layers(self, layers: list[bytes], name: str) -> media.Descriptor:
        return create_image(self.store, [add_layer_file(self.store, io.BytesIO(b))
                                         for b in layers], name)

    def _set_arch(self, desc, name, arch):
        m = self.store.manifest(desc)
        cfg = self.store.read_json(m["config"]["digest"])
        cfg["architecture"] = arch
        cfg.pop("variant", None)
        c = self.store.put_json(cfg, media.OCI_CONFIG)
        m["config"] = media.Descriptor(media.OCI_CONFIG, c.digest, c.size).to_json()
        d = self.store.put_json(m, media.OCI_MANIFEST)
        self.store.set_name(name, d)
        return d

    def index(self, name: str, entries: list[tuple[media.Descriptor, str]]) -> media.Descriptor:
        idx = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [
            media.Descriptor(media.OCI_MANIFEST, d.digest, d.size,
                             platform={"os": "linux", "architecture": arch}).to_json()
            for d, arch in entries]}
        d = self.store.put_json(idx, media.OCI_INDEX)
        self.store.set_name(name, media.Descriptor(media.OCI_INDEX, d.digest, d.size))
        return d


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path / "layout")


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
