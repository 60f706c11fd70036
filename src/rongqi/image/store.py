"""The content store: an OCI image layout (blobs/sha256, index.json, oci-layout) on disk.

Blobs enter only verified (temp file, fsync, digest and size checked, atomic rename); names live
in index.json as org.opencontainers.image.ref.name annotations, so skopeo and umoci read it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import IO, Any

# default_root and DEFAULT_ROOT live in the package (rongqi/image/__init__.py), so that the
# CLI gets its --root default without importing the store.
from rongqi.image import DEFAULT_ROOT, default_root  # noqa: F401
from rongqi.image import media, reference
from rongqi.image.errors import BlobVerificationError, ImageError, ImageNotFound, ManifestError
from rongqi.image.media import Descriptor
from rongqi.locking import Lock
from rongqi.values import dataclass

CHUNK = 1 << 20


def _split_digest(digest: str) -> tuple[str, str]:
    algo, sep, hexpart = digest.partition(":")
    if not sep or algo != "sha256" or len(hexpart) != 64 or not all(
            c in "0123456789abcdef" for c in hexpart):
        raise BlobVerificationError(f"unsupported or malformed digest: {digest!r}")
    return algo, hexpart


def _sha256() -> Any:
    # hashlib loads OpenSSL (~5 ms): only what writes or verifies blobs pays it, not `run`.
    import hashlib

    return hashlib.sha256()


def sha256_digest(data: bytes) -> str:
    h = _sha256()
    h.update(data)
    return "sha256:" + h.hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Receives one blob's bytes; commit() verifies digest and size, then renames into place.

    The partial file is kept across attempts under ingest/ so an interrupted download resumes
    from `offset` (the hash is recomputed over what is already there). A blob that fails
    verification is deleted, partial file included.
    """

    def __init__(self, store: ImageStore, digest: str, size: int | None):
        _split_digest(digest)
        self.store, self.digest, self.size = store, digest, size
        self.partial = os.path.join(store.ingest_dir, digest.replace(":", "-") + ".partial")
        self._lock = Lock(store._lock_path("blob-" + digest.replace(":", "-")))
        self._hash = _sha256()
        self._file: IO[bytes] | None = None
        self.offset = 0
        # For readers following the download (unpacking while it arrives): "writing",
        # "done" (verified and renamed), "failed" (rejected) or "restarted" (truncated).
        self.cond = threading.Condition()
        self.state = "writing"

    def _set_state(self, state: str) -> None:
        with self.cond:
            if self.state == "writing" or state == "failed":
                self.state = state
            self.cond.notify_all()

    def __enter__(self) -> BlobWriter:
        self._lock.__enter__()
        if self.store.has_blob(self.digest):
            # Someone else finished it while we waited for the lock; callers check `exists`.
            return self
        try:
            self._file = open(self.partial, "ab+")
            self.store._register(self)
            self._file.seek(0)
            while chunk := self._file.read(CHUNK):
                self._hash.update(chunk)
                self.offset += len(chunk)
            if self.size is not None and self.offset > self.size:
                self.restart()
        except BaseException:
            self._lock.__exit__()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.state == "writing":
            self._set_state("failed")  # an error or an abandoned download: followers stop
        self.store._unregister(self)
        self._lock.__exit__()

    @property
    def exists(self) -> bool:
        return self.store.has_blob(self.digest)

    def restart(self) -> None:
        """Drop what was received so far (the server ignored our Range, or sent garbage)."""
        assert self._file is not None
        if self.offset:
            self._set_state("restarted")
        self._file.seek(0)
        self._file.truncate()
        self._hash = _sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        assert self._file is not None
        if self.size is not None and self.offset + len(data) > self.size:
            self.discard()
            raise BlobVerificationError(
                f"blob {self.digest}: more than the {self.size} bytes its descriptor says")
        self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)
        if self.store._followed:
            self._file.flush()
            with self.cond:
                self.cond.notify_all()

    def discard(self) -> None:
        self._set_state("failed")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial)
        if self._file is not None:
            self._file.close()
            self._file = None

    def commit(self) -> Descriptor:
        assert self._file is not None
        got = "sha256:" + self._hash.hexdigest()
        if (self.size is not None and self.offset != self.size) or got != self.digest:
            size = self.offset
            self.discard()
            raise BlobVerificationError(
                f"blob {self.digest}: content does not match its descriptor "
                f"(got {got}, {size} bytes; expected {self.size} bytes)")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.rename(self.partial, self.store.blob_path(self.digest))
        _fsync_dir(self.store.blob_dir)
        self._set_state("done")
        return Descriptor("", self.digest, self.offset)


class FollowAborted(ImageError):
    """A followed download restarted or stopped; read the finished blob instead."""


class _BlobFollower:
    """Reads a partial blob file while its writer appends to it (same inode after rename)."""

    def __init__(self, w: BlobWriter, cancelled: threading.Event):
        self.w, self.cancelled = w, cancelled
        self.fd = os.open(w.partial, os.O_RDONLY | os.O_CLOEXEC)
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n < 0 else n
        while True:
            data = os.pread(self.fd, n, self.pos)
            if data:
                self.pos += len(data)
                return data
            with self.w.cond:
                state = self.w.state
                if state == "writing" and not self.cancelled.is_set():
                    self.w.cond.wait(0.2)
                    continue
            if state == "done":
                data = os.pread(self.fd, n, self.pos)
                self.pos += len(data)
                return data
            if state == "failed":
                raise BlobVerificationError(f"blob {self.w.digest}: download failed or was "
                                            "rejected") if not self.cancelled.is_set() else \
                    FollowAborted(f"blob {self.w.digest}: download abandoned")
            raise FollowAborted(f"blob {self.w.digest}: download {state}; unpacking later")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> _BlobFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ImageRecord:
    """A named image in the store, as `rongqi images` lists it."""

    name: str
    manifest: Descriptor
    config_digest: str
    created: str
    size: int

    @property
    def id(self) -> str:
        return self.config_digest.partition(":")[2]


class ImageStore:
    """An OCI image layout rooted at `root`, safe to use from several processes at once."""

    def __init__(self, root: str = DEFAULT_ROOT):
        self.root = os.path.abspath(root)
        self.blob_dir = os.path.join(self.root, "blobs", "sha256")
        self.ingest_dir = os.path.join(self.root, "ingest")
        self.lock_dir = os.path.join(self.root, "locks")
        self.index_path = os.path.join(self.root, "index.json")
        for d in (self.blob_dir, self.ingest_dir, self.lock_dir):
            os.makedirs(d, exist_ok=True)
        self._active: dict[str, BlobWriter] = {}
        self._active_cond = threading.Condition()
        self._abandoned: set[str] = set()
        self._followed = False
        layout = os.path.join(self.root, "oci-layout")
        if not os.path.exists(layout):
            self._atomic_write(layout, b'{"imageLayoutVersion":"1.0.0"}')
        if not os.path.exists(self.index_path):
            with self.index_lock():
                if not os.path.exists(self.index_path):
                    self._write_index({"schemaVersion": 2, "manifests": []})

    # -- locks -----------------------------------------------------------------------------
    def _lock_path(self, name: str) -> str:
        return os.path.join(self.lock_dir, name + ".lock")

    def index_lock(self) -> Lock:
        return Lock(self._lock_path("index"))

    def gc_lock(self, shared: bool = True) -> Lock:
        """Pulls and loads hold this shared from first blob to last name; GC holds it alone."""
        return Lock(self._lock_path("gc"), shared=shared)

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, _split_digest(digest)[1])

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def open_blob(self, digest: str) -> IO[bytes]:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is not in the store") from None

    def _register(self, w: BlobWriter) -> None:
        with self._active_cond:
            self._active[w.digest] = w
            self._active_cond.notify_all()

    def _unregister(self, w: BlobWriter) -> None:
        with self._active_cond:
            if self._active.get(w.digest) is w:
                del self._active[w.digest]
            self._active_cond.notify_all()

    def abandon(self, digest: str) -> None:
        """A download of `digest` failed before (or after) it started writing."""
        with self._active_cond:
            self._abandoned.add(digest)
            self._active_cond.notify_all()

    def follow_blob(self, digest: str, cancelled: threading.Event) -> IO[bytes]:
        """Read a blob that this process is still downloading, as it arrives.

        The reader ends only once the blob is verified and in the store; it raises
        BlobVerificationError if the download is rejected, and FollowAborted if it restarts,
        fails or `cancelled` is set (the caller then unpacks from the finished blob).
        """
        self._followed = True
        with self._active_cond:
            while True:
                if self.has_blob(digest):
                    return self.open_blob(digest)
                w = self._active.get(digest)
                if w is not None:
                    try:
                        return _BlobFollower(w, cancelled)  # type: ignore[return-value]
                    except FileNotFoundError:
                        # Renamed into blobs/ or deleted as rejected between look and open.
                        if self.has_blob(digest):
                            return self.open_blob(digest)
                        if w.state == "failed" and not cancelled.is_set():
                            raise BlobVerificationError(f"blob {digest}: download failed or "
                                                        "was rejected") from None
                if cancelled.is_set() or digest in self._abandoned:
                    raise FollowAborted(f"blob {digest}: download abandoned")
                self._active_cond.wait(0.05)

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def blob_size(self, digest: str) -> int:
        return os.stat(self.blob_path(digest)).st_size

    def writer(self, digest: str, size: int | None) -> BlobWriter:
        return BlobWriter(self, digest, size)

    def put_blob(self, data: bytes, media_type: str = "", digest: str | None = None) -> Descriptor:
        """Store bytes (verified against `digest` when given); a no-op if already present."""
        digest = digest or sha256_digest(data)
        if not self.has_blob(digest):
            with self.writer(digest, len(data)) as w:
                if not w.exists:
                    w.restart()
                    w.write(data)
                    w.commit()
        return Descriptor(media_type, digest, len(data))

    def put_json(self, obj: Any, media_type: str) -> Descriptor:
        return self.put_blob(canonical_json(obj), media_type)

    def ingest_file(self, f: IO[bytes], digest: str | None = None, size: int | None = None,
                    media_type: str = "") -> Descriptor:
        """Copy a stream into the store; with no digest given it is computed on the way."""
        if digest is not None and self.has_blob(digest):
            return Descriptor(media_type, digest, self.blob_size(digest))
        if digest is None:
            tmp = os.path.join(self.ingest_dir, f"anon-{os.getpid()}-{time.monotonic_ns()}")
            h, n = _sha256(), 0
            try:
                with open(tmp, "wb") as out:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        n += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                digest = "sha256:" + h.hexdigest()
                if size is not None and size != n:
                    raise BlobVerificationError(f"blob {digest}: {n} bytes, expected {size}")
                os.rename(tmp, self.blob_path(digest))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            return Descriptor(media_type, digest, n)
        with self.writer(digest, size) as w:
            if w.exists:
                return Descriptor(media_type, digest, self.blob_size(digest))
            w.restart()
            while chunk := f.read(CHUNK):
                w.write(chunk)
            d = w.commit()
        return Descriptor(media_type, digest, d.size)

    def read_json(self, digest: str) -> Any:
        try:
            return json.loads(self.read_blob(digest))
        except ValueError as e:
            raise ManifestError(f"blob {digest} is not valid JSON: {e}") from None

    # -- index.json ------------------------------------------------------------------------
    def _atomic_write(self, path: str, data: bytes) -> None:
        tmp = f"{path}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        _fsync_dir(os.path.dirname(path))

    def _read_index(self) -> dict[str, Any]:
        try:
            with open(self.index_path, "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return {"schemaVersion": 2, "manifests": []}

    def _write_index(self, index: dict[str, Any]) -> None:
        index.setdefault("schemaVersion", 2)
        index["mediaType"] = media.OCI_INDEX
        self._atomic_write(self.index_path, json.dumps(index, indent=2).encode() + b"\n")

    def names(self) -> list[tuple[str, Descriptor]]:
        out = []
        for d in self._read_index().get("manifests", []):
            desc = Descriptor.from_json(d, "index.json")
            name = (desc.annotations or {}).get(media.REF_NAME)
            if name:
                out.append((name, desc))
        return out

    def set_name(self, name: str, desc: Descriptor) -> None:
        """Point `name` at a manifest, replacing what it pointed at before."""
        ann = dict(desc.annotations or {})
        ann[media.REF_NAME] = name
        entry = Descriptor(desc.media_type, desc.digest, desc.size, ann, desc.platform).to_json()
        with self.index_lock():
            index = self._read_index()
            ms = [m for m in index.get("manifests", [])
                  if (m.get("annotations") or {}).get(media.REF_NAME) != name]
            ms.append(entry)
            index["manifests"] = ms
            self._write_index(index)

    def keep(self, desc: Descriptor) -> None:
        """Hold a manifest in the index without a name (podman's <none> image: an unnamed
        commit): gc keeps it and resolve finds it by ID."""
        entry = Descriptor(desc.media_type, desc.digest, desc.size).to_json()
        with self.index_lock():
            index = self._read_index()
            ms = index.get("manifests", [])
            if not any(m.get("digest") == desc.digest for m in ms):
                ms.append(entry)
                index["manifests"] = ms
                self._write_index(index)

    def unnamed(self) -> list[Descriptor]:
        """Manifests held by keep(), without a name."""
        return [Descriptor.from_json(d, "index.json")
                for d in self._read_index().get("manifests", [])
                if not (d.get("annotations") or {}).get(media.REF_NAME)]

    def remove_unnamed(self, digest: str) -> bool:
        """Let go of a manifest keep() held (the last of an image that is being deleted)."""
        with self.index_lock():
            index = self._read_index()
            ms = index.get("manifests", [])
            kept = [m for m in ms if m.get("digest") != digest
                    or (m.get("annotations") or {}).get(media.REF_NAME)]
            if len(kept) == len(ms):
                return False
            index["manifests"] = kept
            self._write_index(index)
            return True

    def remove_name(self, name: str) -> bool:
        with self.index_lock():
            index = self._read_index()
            ms = index.get("manifests", [])
            kept = [m for m in ms if (m.get("annotations") or {}).get(media.REF_NAME) != name]
            if len(kept) == len(ms):
                return False
            index["manifests"] = kept
            self._write_index(index)
            return True

    # -- images ----------------------------------------------------------------------------
    def manifest(self, desc: Descriptor | str) -> dict[str, Any]:
        digest = desc if isinstance(desc, str) else desc.digest
        m = self.read_json(digest)
        if not isinstance(m, dict) or "config" not in m or "layers" not in m:
            raise ManifestError(f"manifest {digest}: not an image manifest")
        return m

    def config(self, desc: Descriptor | str) -> dict[str, Any]:
        m = self.manifest(desc)
        return self.read_json(m["config"]["digest"])

    def resolve(self, name: str) -> tuple[str, Descriptor]:
        """Find an image by name ("busybox", a full reference) or by ID / ID prefix."""
        entries = self.names()
        candidates = [name]
        with contextlib.suppress(ImageError):
            candidates.append(str(reference.parse(name)))
        with contextlib.suppress(ImageError):
            # A short name may be a local image (podman names commits localhost/NAME).
            if "/" not in name.partition(":")[0].partition("@")[0]:
                candidates.append(str(reference.parse("localhost/" + name)))
        for want in candidates:
            for n, d in entries:
                if n == want:
                    return n, d
        idp = name.removeprefix("sha256:")
        if len(idp) >= 4 and all(c in "0123456789abcdef" for c in idp):
            hits = {}
            for n, d in entries + [(self.manifest(u)["config"]["digest"].partition(":")[2], u)
                                   for u in self.unnamed()]:
                with contextlib.suppress(ImageError, OSError):
                    cfg = self.manifest(d)["config"]["digest"].partition(":")[2]
                    if cfg.startswith(idp) or d.digest.partition(":")[2].startswith(idp):
                        hits.setdefault(cfg, (n, d))
            if len(hits) == 1:
                return next(iter(hits.values()))
            if len(hits) > 1:
                raise ImageError(f"image ID prefix {name!r} is ambiguous")
        raise ImageNotFound(name)

    def images(self) -> list[ImageRecord]:
        out = []
        for name, d in self.names():
            try:
                m = self.manifest(d)
                cfg = self.read_json(m["config"]["digest"])
            except (ImageError, OSError):
                continue
            size = m["config"].get("size", 0) + sum(x.get("size", 0) for x in m["layers"])
            out.append(ImageRecord(name, d, m["config"]["digest"], cfg.get("created", ""), size))
        return out

    def referenced_blobs(self) -> set[str]:
        """Every blob reachable from index.json (manifests, nested indexes, configs, layers)."""
        seen: set[str] = set()
        todo = [Descriptor.from_json(m) for m in self._read_index().get("manifests", [])]
        while todo:
            d = todo.pop()
            if d.digest in seen:
                continue
            seen.add(d.digest)
            if not self.has_blob(d.digest):
                continue
            if d.media_type in media.INDEX_TYPES or d.media_type in media.MANIFEST_TYPES or \
                    not d.media_type:
                try:
                    doc = self.read_json(d.digest)
                except ManifestError:
                    continue
                if not isinstance(doc, dict):
                    continue
                for m in doc.get("manifests", []) or []:
                    todo.append(Descriptor.from_json(m))
                if "config" in doc:
                    seen.add(doc["config"]["digest"])
                for layer in doc.get("layers", []) or []:
                    seen.add(layer["digest"])
        return seen

    def gc(self) -> tuple[list[str], int]:
        """Delete blobs no name reaches and stale partial downloads; returns (digests, bytes)."""
        removed, freed = [], 0
        with self.gc_lock(shared=False):
            keep = self.referenced_blobs()
            for hexpart in os.listdir(self.blob_dir):
                digest = "sha256:" + hexpart
                if digest in keep:
                    continue
                path = os.path.join(self.blob_dir, hexpart)
                with contextlib.suppress(FileNotFoundError):
                    freed += os.stat(path).st_size
                    os.unlink(path)
                    removed.append(digest)
            for name in os.listdir(self.ingest_dir):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.ingest_dir, name))
        return removed, freed

    def disk_usage(self) -> int:
        total = 0
        for hexpart in os.listdir(self.blob_dir):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(self.blob_dir, hexpart)).st_size
        return total

    def iter_layers(self, desc: Descriptor) -> Iterator[Descriptor]:
        for i, layer in enumerate(self.manifest(desc)["layers"]):
            yield Descriptor.from_json(layer, f"layers[{i}]")

