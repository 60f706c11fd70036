"""Layer storage: layers unpacked once per chain id; overlay snapshots and the copy fallback."""

from __future__ import annotations

import io
import os
import shutil
import tarfile

import pytest

from rongqi.image import media
from rongqi.image.errors import LayerError
from rongqi.image.store import ImageStore, sha256_digest
from rongqi.storage.overlay import LayerStorage, StorageError, chain_ids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")


def tar(*entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def put_image(store, layers, name="localhost/t:1", diff_ids=None):
    descs = [store.put_blob(b, media.OCI_LAYER) for b in layers]
    cfg = {"os": "linux", "architecture": "amd64",
           "rootfs": {"type": "layers", "diff_ids": diff_ids or [d.digest for d in descs]}}
    cd = store.put_json(cfg, media.OCI_CONFIG)
    md = store.put_json({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                         "config": cd.to_json(), "layers": [d.to_json() for d in descs]},
                        media.OCI_MANIFEST)
    store.set_name(name, md)
    return md


BASE = tar(("etc", None), ("etc/a", b"base-a"), ("etc/b", b"base-b"), ("opt", None),
           ("opt/x", b"x"))
TOP = tar(("etc", None), (".wh.opt", b""), ("etc/.wh.b", b""), ("etc/c", b"top-c"))


@pytest.fixture
def stores(tmp_path):
    store = ImageStore(str(tmp_path / "images"))
    storages = []

    def make(mode="auto"):
        s = LayerStorage(str(tmp_path / "overlay"), mode=mode)
        storages.append(s)
        return s

    yield store, make
    for s in storages:
        for snap in s.snapshots():
            s.remove_snapshot(snap.id)


def test_chain_ids_follow_the_oci_formula():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_ids([a, b]) == [a, sha256_digest(f"{a} {b}".encode())]


@pytest.mark.parametrize("mode", ["overlay", "copy", "fuse-overlayfs"])
def test_snapshot_shows_merged_layers_with_whiteouts_applied(stores, mode):
    if mode == "fuse-overlayfs" and not shutil.which("fuse-overlayfs"):
        pytest.skip("fuse-overlayfs is not installed (apt-get install fuse-overlayfs)")
    store, make = stores
    storage = make(mode)
    md = put_image(store, [BASE, TOP])
    chains = storage.unpack_image(store, md.digest)
    snap = storage.create_snapshot("c1", chains)
    assert snap.mode == mode
    root = snap.rootfs
    assert sorted(os.listdir(root)) == ["etc"]
    assert sorted(os.listdir(f"{root}/etc")) == ["a", "c"]
    with open(f"{root}/etc/new", "w") as f:
        f.write("w")
    # Writes stay in the container's snapshot: the shared layer dirs are untouched.
    assert not os.path.exists(os.path.join(storage.layer_path(chains[-1]), "etc/new"))
    if mode != "copy":
        assert os.path.exists(os.path.join(snap.upper, "etc/new"))
    storage.remove_snapshot("c1")
    assert not os.path.exists(snap.path)
    with open("/proc/self/mountinfo") as f:
        assert snap.rootfs not in f.read()


@pytest.mark.parametrize("record", [b"", b'{"id": "c1", "pa'])
def test_a_snapshot_whose_record_a_kill_cut_short_is_still_removed(stores, record):
    """A command SIGKILLed while it wrote snapshot.json (older rongqi wrote it in place) left
    it empty or cut: the snapshot is a damaged one, not a traceback, and removal unmounts it
    by its path and deletes it. Records are now written aside and renamed."""
    store, make = stores
    storage = make("overlay")
    md = put_image(store, [BASE])
    snap = storage.create_snapshot("c1", storage.unpack_image(store, md.digest))
    assert not os.path.exists(os.path.join(snap.path, "snapshot.json.tmp"))
    with open(os.path.join(snap.path, "snapshot.json"), "wb") as f:
        f.write(record)
    with pytest.raises(StorageError, match="record is damaged"):
        storage.get_snapshot("c1")
    assert storage.snapshots() == []
    storage.remove_snapshot("c1")
    assert not os.path.exists(snap.path)
    with open("/proc/self/mountinfo") as f:
        assert snap.rootfs not in f.read()


def test_layers_are_unpacked_once_and_shared(stores):
    store, make = stores
    storage = make()
    md1 = put_image(store, [BASE], "localhost/a:1")
    md2 = put_image(store, [BASE, TOP], "localhost/b:1")
    c1 = storage.unpack_image(store, md1.digest)
    inode = os.stat(storage.layer_path(c1[0]) + "/etc/a").st_ino
    c2 = storage.unpack_image(store, md2.digest)
    assert c2[0] == c1[0]
    assert os.stat(storage.layer_path(c1[0]) + "/etc/a").st_ino == inode
    assert len(storage.layers()) == 2


def test_layer_whose_content_does_not_match_its_diff_id_is_not_kept(stores):
    store, make = stores
    storage = make()
    md = put_image(store, [BASE], diff_ids=[sha256_digest(b"not this")])
    with pytest.raises(LayerError, match="does not match the config"):
        storage.unpack_image(store, md.digest)
    assert storage.layers() == [] and os.listdir(storage.tmp_dir) == []


def test_gc_keeps_layers_used_by_snapshots_or_images(stores):
    store, make = stores
    storage = make()
    chains = storage.unpack_image(store, put_image(store, [BASE, TOP]).digest)
    storage.create_snapshot("c2", chains[:1])
    assert storage.gc(keep=[]) == [chains[1]]
    storage.remove_snapshot("c2")
    assert storage.gc(keep=[]) == [chains[0]]
    assert os.listdir(storage.links_dir) == []


def test_snapshot_ids_cannot_escape_and_cannot_repeat(stores):
    store, make = stores
    storage = make()
    with pytest.raises(StorageError):
        storage.create_snapshot("../x", [])
    storage.create_snapshot("same", [])
    with pytest.raises(StorageError, match="already exists"):
        storage.create_snapshot("same", [])


def test_many_layers_still_mount(stores):
    store, make = stores
    storage = make("overlay")
    layers = [tar((f"f{i}", str(i).encode())) for i in range(70)]
    chains = storage.unpack_image(store, put_image(store, layers).digest)
    snap = storage.create_snapshot("deep", chains)
    assert len(os.listdir(snap.rootfs)) == 70


def _fuse_daemons(rootfs: str) -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"fuse-overlayfs") and rootfs.encode() in argv:
            out.append(pid)
    return out


def test_fuse_overlayfs_snapshot_names_its_helper_and_its_daemon_ends_on_removal(stores):
    if not shutil.which("fuse-overlayfs"):
        pytest.skip("fuse-overlayfs is not installed (apt-get install fuse-overlayfs)")
    store, make = stores
    storage = make("fuse-overlayfs")
    snap = storage.create_snapshot("f1", storage.unpack_image(store, put_image(store, [BASE]).digest))
    assert snap.note == f"fuse-overlayfs ({shutil.which('fuse-overlayfs')})"
    assert storage.get_snapshot("f1").note == snap.note
    with open("/proc/self/mountinfo") as f:
        assert any(ln.split()[4] == snap.rootfs and " fuse.fuse-overlayfs " in ln for ln in f)
    assert _fuse_daemons(snap.rootfs)
    storage.remove_snapshot("f1")
    assert _fuse_daemons(snap.rootfs) == []


def test_copy_fallback_says_why_when_kernel_overlay_cannot_mount(stores, monkeypatch):
    store, make = stores
    storage = make("auto")

    def refuse(*a, **kw):
        raise OSError(1, "mount: Operation not permitted")

    monkeypatch.setattr(storage.sys, "mount", refuse)
    snap = storage.create_snapshot("c2", storage.unpack_image(store, put_image(store, [BASE]).digest))
    assert snap.mode == "copy"
    assert snap.note == "copy, as kernel overlayfs failed (Operation not permitted)"
    assert sorted(os.listdir(snap.rootfs)) == ["etc", "opt"]
