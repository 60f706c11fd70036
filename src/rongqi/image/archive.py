"""Images in and out of tar files: docker-archive and oci-archive (load/save), rootfs tarballs
(import/export), and making a one-layer image from a directory (the built-in busybox).

Archives are read and written in the formats skopeo, docker and podman use, so each can load
what the other saved.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from typing import IO, Any

from rongqi.image import media, reference
from rongqi.image.errors import ImageError
from rongqi.image.layer import CHUNK, decompressed
from rongqi.image.media import Descriptor
from rongqi.image.store import ImageStore

EPOCH_CREATED = "1970-01-01T00:00:00Z"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _diff_id_of(store: ImageStore, digest: str) -> str:
    """sha256 of a layer blob once uncompressed."""
    h = hashlib.sha256()
    with store.open_blob(digest) as f:
        r = decompressed(f)
        while chunk := r.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _is_compressed(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return ""


def add_layer_file(store: ImageStore, f: IO[bytes]) -> tuple[Descriptor, str]:
    """Store a layer tar as given (plain, gzip or zstd); returns (descriptor, diff_id)."""
    desc = store.ingest_file(f)
    with store.open_blob(desc.digest) as b:
        kind = _is_compressed(b.read(4))
    mt = {"gzip": media.OCI_LAYER_GZIP, "zstd": media.OCI_LAYER_ZSTD}.get(kind, media.OCI_LAYER)
    diff_id = desc.digest if not kind else _diff_id_of(store, desc.digest)
    return Descriptor(mt, desc.digest, desc.size), diff_id


def layer_from_dir(path: str, out: IO[bytes], *, compress: bool = True) -> None:
    """A reproducible layer tar of a directory: sorted, owners kept, hardlinks kept."""
    stream: IO[bytes] = gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) \
        if compress else out  # type: ignore[assignment]
    # Uncompressed to a pipe (`rongqi export IMAGE | tar t`): stream mode, which never seeks.
    with tarfile.open(fileobj=stream, mode="w" if compress else "w|",
                      format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                arc = os.path.relpath(full, path)
                ti = tf.gettarinfo(full, arc)
                ti.uname = ti.gname = ""
                # Whole seconds, as docker writes them: a float mtime costs a PAX header
                # per entry, which every reader then has to parse.
                ti.mtime = int(ti.mtime)
                if ti.isreg():
                    with open(full, "rb") as src:
                        tf.addfile(ti, src)
                else:
                    tf.addfile(ti)
    if compress:
        stream.close()


def create_image(store: ImageStore, layers: list[tuple[Descriptor, str]], name: str | None,
                 *, config: dict[str, Any] | None = None, created: str | None = None,
                 history: list[dict[str, Any]] | None = None,
                 annotations: dict[str, str] | None = None) -> Descriptor:
    """Write config and manifest for stored layers and name the image."""
    from rongqi.image.registry import Platform
    host = Platform.host()
    cfg: dict[str, Any] = {
        "created": created or _now(), "architecture": host.architecture, "os": host.os,
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        "history": history or [{"created": created or _now(), "created_by": "rongqi"}],
    }
    if host.variant:
        cfg["variant"] = host.variant
    cdesc = store.put_json(cfg, media.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                "config": Descriptor(media.OCI_CONFIG, cdesc.digest, cdesc.size).to_json(),
                "layers": [d.to_json() for d, _ in layers]}
    if annotations:
        manifest["annotations"] = annotations
    mdesc = store.put_json(manifest, media.OCI_MANIFEST)
    if name:
        store.set_name(name, mdesc)
    return mdesc


# -- import / export -----------------------------------------------------------------------------
def import_tarball(store: ImageStore, f: IO[bytes], name: str | None,
                   config: dict[str, Any] | None = None) -> Descriptor:
    """A rootfs tarball becomes a one-layer image (`rongqi import`)."""
    with store.gc_lock(shared=True):
        layer = add_layer_file(store, f)
        return create_image(store, [layer], name, config=config,
                            history=[{"created": _now(), "created_by": "rongqi import"}])


def export_rootfs(store: ImageStore, manifest: Descriptor, out: IO[bytes]) -> None:
    """Flatten an image's layers into one rootfs tarball (`rongqi export`)."""
    from rongqi.image.layer import LayerApplier
    tmp = tempfile.mkdtemp(prefix="export-", dir=store.ingest_dir)
    try:
        for d in store.iter_layers(manifest):
            with store.open_blob(d.digest) as b:
                LayerApplier(tmp, whiteouts="delete").apply(b)
        layer_from_dir(tmp, out, compress=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- save ----------------------------------------------------------------------------------------
def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
    tf.addfile(ti, io.BytesIO(data))


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
    tf.addfile(ti)


def _add_blob(tf: tarfile.TarFile, store: ImageStore, digest: str, arcname: str) -> None:
    ti = tarfile.TarInfo(arcname)
    ti.size, ti.mode, ti.mtime = store.blob_size(digest), 0o644, 0
    with store.open_blob(digest) as f:
        tf.addfile(ti, f)


def save_oci_archive(store: ImageStore, images: list[tuple[str, Descriptor]],
                     out: IO[bytes]) -> None:
    """An OCI image layout in a tar; each name is a ref.name annotation (skopeo's oci-archive)."""
    index = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": []}
    blobs: list[str] = []
    for name, desc in images:
        m = store.manifest(desc)
        for d in [desc.digest, m["config"]["digest"], *(x["digest"] for x in m["layers"])]:
            if d not in blobs:
                blobs.append(d)
        entry = Descriptor(desc.media_type or media.OCI_MANIFEST, desc.digest, desc.size,
                           {media.REF_NAME: name} if name else None)
        index["manifests"].append(entry.to_json())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(tf, "index.json", json.dumps(index).encode())
        _add_dir(tf, "blobs")
        _add_dir(tf, "blobs/sha256")
        for d in blobs:
            _add_blob(tf, store, d, "blobs/sha256/" + d.partition(":")[2])


def save_docker_archive(store: ImageStore, images: list[tuple[str, Descriptor]],
                        out: IO[bytes]) -> None:
    """`docker save`'s format: manifest.json, <config>.json, uncompressed <diff_id>/layer.tar."""
    manifest_json = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        written: set[str] = set()
        for name, desc in images:
            m = store.manifest(desc)
            cfg_digest = m["config"]["digest"]
            cfg = store.read_json(cfg_digest)
            diff_ids = cfg.get("rootfs", {}).get("diff_ids", [])
            cfg_name = cfg_digest.partition(":")[2] + ".json"
            if cfg_name not in written:
                _add_bytes(tf, cfg_name, store.read_blob(cfg_digest))
                written.add(cfg_name)
            layer_names = []
            for layer, diff_id in zip(m["layers"], diff_ids):
                hexid = diff_id.partition(":")[2]
                arc = f"{hexid}/layer.tar"
                layer_names.append(arc)
                if arc in written:
                    continue
                written.add(arc)
                _add_dir(tf, hexid)
                _add_uncompressed_layer(tf, store, layer["digest"], arc)
            tags = []
            if name:
                ref = reference.parse(name)
                if ref.tag:
                    tags.append(ref.with_tag(ref.tag).familiar())
            manifest_json.append({"Config": cfg_name, "RepoTags": tags or None,
                                  "Layers": layer_names})
        _add_bytes(tf, "manifest.json", json.dumps(manifest_json).encode())


def _add_uncompressed_layer(tf: tarfile.TarFile, store: ImageStore, digest: str,
                            arc: str) -> None:
    with store.open_blob(digest) as b:
        head = b.read(4)
    if not _is_compressed(head):
        _add_blob(tf, store, digest, arc)
        return
    # The tar header needs the size first: decompress to a temp file next to the store.
    with tempfile.TemporaryFile(dir=store.ingest_dir) as tmp:
        with store.open_blob(digest) as b:
            r = decompressed(b)
            while chunk := r.read(CHUNK):
                tmp.write(chunk)
        ti = tarfile.TarInfo(arc)
        ti.size, ti.mode, ti.mtime = tmp.tell(), 0o644, 0
        tmp.seek(0)
        tf.addfile(ti, tmp)


# -- load ----------------------------------------------------------------------------------------
def _open_archive(path: str, stack: contextlib.ExitStack) -> tarfile.TarFile:
    try:
        return stack.enter_context(tarfile.open(path, "r:*"))
    except (tarfile.TarError, OSError) as e:
        raise ImageError(f"{path}: not a readable image archive: {e}") from None


def _member(tf: tarfile.TarFile, name: str) -> IO[bytes]:
    name = name.lstrip("./") if name.startswith("./") else name
    for candidate in (name, "./" + name):
        with contextlib.suppress(KeyError):
            f = tf.extractfile(candidate)
            if f is not None:
                return f
    raise ImageError(f"archive: {name} is missing")


def load_archive(store: ImageStore, path: str, *, name: str | None = None,
                 platform: Any = None) -> list[tuple[str, Descriptor]]:
    """Load a docker-archive or oci-archive (plain or gzip); returns the names it set."""
    with contextlib.ExitStack() as stack, store.gc_lock(shared=True):
        tf = _open_archive(path, stack)
        names = set(tf.getnames())
        if "manifest.json" in names or "./manifest.json" in names:
            return _load_docker(store, tf, name)
        if "index.json" in names or "./index.json" in names:
            return _load_oci(store, tf, name, platform)
        raise ImageError(f"{path}: neither a docker-archive (manifest.json) nor an "
                         "oci-archive (index.json)")


def _load_docker(store: ImageStore, tf: tarfile.TarFile,
                 name: str | None) -> list[tuple[str, Descriptor]]:
    try:
        entries = json.load(_member(tf, "manifest.json"))
    except ValueError as e:
        raise ImageError(f"archive: manifest.json is not JSON: {e}") from None
    out = []
    for entry in entries:
        cfg_bytes = _member(tf, entry["Config"]).read()
        cfg = json.loads(cfg_bytes)
        diff_ids = cfg.get("rootfs", {}).get("diff_ids", [])
        layers = []
        for i, lname in enumerate(entry.get("Layers") or []):
            desc, diff_id = add_layer_file(store, _member(tf, lname))
            if i < len(diff_ids) and diff_id != diff_ids[i]:
                raise ImageError(f"archive: layer {lname} has digest {diff_id}, the config "
                                 f"says {diff_ids[i]}")
            layers.append((desc, diff_id))
        cdesc = store.put_blob(cfg_bytes, media.OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                    "config": Descriptor(media.OCI_CONFIG, cdesc.digest, cdesc.size).to_json(),
                    "layers": [d.to_json() for d, _ in layers]}
        mdesc = store.put_json(manifest, media.OCI_MANIFEST)
        tags = [name] if name else (entry.get("RepoTags") or [])
        for t in tags:
            full = str(reference.parse(t))
            store.set_name(full, mdesc)
            out.append((full, mdesc))
        if not tags:
            out.append(("", mdesc))
    return out


def _load_oci(store: ImageStore, tf: tarfile.TarFile, name: str | None,
              platform: Any) -> list[tuple[str, Descriptor]]:
    from rongqi.image.registry import Platform, select_platform

    def blob(digest: str) -> IO[bytes]:
        return _member(tf, "blobs/" + digest.replace(":", "/"))

    def ingest(d: Descriptor) -> None:
        if not store.has_blob(d.digest):
            store.ingest_file(blob(d.digest), d.digest, d.size)

    index = json.load(_member(tf, "index.json"))
    out = []
    for i, m in enumerate(index.get("manifests") or []):
        d = Descriptor.from_json(m, f"index.json manifests[{i}]")
        ref_name = (d.annotations or {}).get(media.REF_NAME)
        if d.media_type in media.INDEX_TYPES:
            ingest(d)
            d = select_platform(store.read_json(d.digest), platform or Platform.host())
        ingest(d)
        doc = store.manifest(d.digest)
        ingest(Descriptor.from_json(doc["config"], "config"))
        for x in doc["layers"]:
            ingest(Descriptor.from_json(x, "layer"))
        mt = d.media_type or doc.get("mediaType") or media.OCI_MANIFEST
        desc = Descriptor(mt, d.digest, d.size)
        label = name or ref_name
        if label:
            full = _normalize_ref_name(label)
            store.set_name(full, desc)
            out.append((full, desc))
        else:
            out.append(("", desc))
    return out


def _normalize_ref_name(label: str) -> str:
    """ref.name holds a full or short reference ("busybox:1.36"); normalize it as docker does."""
    return str(reference.parse(label))
