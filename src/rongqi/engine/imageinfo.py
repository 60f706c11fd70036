"""Stored images in Docker's shapes: the list entry (GET /images/json), inspect and history,
for the faces that speak Docker (api.py's docker-py attrs and serve/'s Docker API).

The store names manifests; Docker's image is its config (the image ID), so the names of
every manifest with the same config are one image's here. Nothing here writes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rongqi.errors import RongqiError

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.image.media import Descriptor
    from rongqi.image.store import ImageStore
    from rongqi.storage.overlay import LayerStorage

REPO_DIGEST = "io.rongqi.repo.digest"   # the annotation pull (and push) leave on a name
NONE_TAG = "<none>:<none>"
NONE_DIGEST = "<none>@<none>"
ZERO_TIME = "0001-01-01T00:00:00Z"      # Go's zero time.Time, as Docker prints an unset one

# Docker's container.Config, in its order, with what Docker prints for an unset field; the
# optional ones (omitempty in Docker) appear only when the image sets them.
_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", ...), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", ...), ("ArgsEscaped", ...), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", ...), ("MacAddress", ...),
    ("OnBuild", None), ("Labels", None), ("StopSignal", ...), ("StopTimeout", ...),
    ("Shell", ...))


@dataclass
class ImageFacts:
    """One image: a manifest and its config, with every name any manifest of it has."""

    desc: Descriptor                         # the manifest found (the first named one)
    manifest: dict[str, Any]
    config: dict[str, Any]
    names: list[str] = field(default_factory=list)         # normalized, sorted
    repo_digests: list[str] = field(default_factory=list)  # "repository@sha256:..."
    manifests: list[str] = field(default_factory=list)     # every manifest digest of it

    @property
    def id(self) -> str:
        """The image ID, "sha256:..." (the config digest)."""
        return str(self.manifest["config"]["digest"])

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]

    @property
    def size(self) -> int:
        return sum(int(x.get("size", 0)) for x in self.manifest.get("layers") or [])

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    @property
    def created_unix(self) -> int:
        return unix_time(self.config.get("created", ""))

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def dangling(self) -> bool:
        return not self.names


def unix_time(text: str) -> int:
    """Seconds since the epoch of an RFC 3339 time (0 for "" or junk, as Docker's zero)."""
    from rongqi.engine.records import parse_time
    t = parse_time(text or "")
    return int(t.timestamp()) if t is not None else 0


def familiar(name: str) -> str:
    """The short name Docker prints ("busybox:latest", "127.0.0.1:5000/x:1")."""
    from rongqi.image import reference
    try:
        return reference.parse(name, default_tag=None).familiar()
    except RongqiError:
        return name


def _facts_of(store: ImageStore, entries: list[tuple[str, Descriptor]]) -> list[ImageFacts]:
    """Group (name, manifest) pairs by image ID; unreadable entries are skipped."""
    by_id: dict[str, ImageFacts] = {}
    manifests: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for name, desc in entries:
        try:
            if desc.digest not in manifests:
                m = store.manifest(desc)
                manifests[desc.digest] = (m, store.read_json(m["config"]["digest"]))
            m, cfg = manifests[desc.digest]
        except (RongqiError, OSError, KeyError, TypeError):
            continue
        image_id = m["config"]["digest"]
        f = by_id.get(image_id)
        if f is None:
            f = by_id[image_id] = ImageFacts(desc, m, cfg)
        if desc.digest not in f.manifests:
            f.manifests.append(desc.digest)
        rd = (desc.annotations or {}).get(REPO_DIGEST, "")
        if "@" in name:   # pulled by digest: a repo digest to Docker, not a tag
            rd = rd or name
        elif name and name not in f.names:
            f.names.append(name)
        if rd and rd not in f.repo_digests:
            f.repo_digests.append(rd)
    for f in by_id.values():
        f.names.sort()
        f.repo_digests.sort()
    return list(by_id.values())


def all_images(store: ImageStore) -> list[ImageFacts]:
    """Every image in the store, named ones and the unnamed (dangling) ones keep() holds."""
    entries: list[tuple[str, Descriptor]] = list(store.names())
    entries += [("", d) for d in store.unnamed()]
    return _facts_of(store, entries)


def repo_digest_of(ref: str) -> str:
    """`NAME@sha256:...` as RepoDigests hold it (the full repository), "" for other refs."""
    if "@" not in ref:
        return ""
    from rongqi.image import reference
    try:
        r = reference.parse(ref, default_tag=None)
    except RongqiError:
        return ""
    return f"{r.repository}@{r.digest}" if r.digest else ""


def by_repo_digest(store: ImageStore, ref: str) -> ImageFacts | None:
    """The image whose RepoDigests has `ref` (`busybox@sha256:...`), as dockerd's reference
    store finds an image by a repository digest; None when no image has it."""
    want = repo_digest_of(ref)
    if not want:
        return None
    for f in all_images(store):
        if want in f.repo_digests:
            return f
    return None


def image(store: ImageStore, ref: str) -> ImageFacts:
    """The image `ref` names (a name, an ID or ID prefix, a repository digest);
    ImageNotFound if none."""
    from rongqi.image.errors import ImageNotFound
    try:
        _, desc = store.resolve(ref)
    except ImageNotFound:
        found = by_repo_digest(store, ref)
        if found is None:
            raise
        return found
    m = store.manifest(desc)
    image_id = m["config"]["digest"]
    for f in all_images(store):
        if f.id == image_id:
            return f
    # Found by resolve but gone from the index since (a concurrent rmi): as it was.
    return ImageFacts(desc, m, store.read_json(image_id), manifests=[desc.digest])


def container_config(c: dict[str, Any] | None, image: str = "") -> dict[str, Any]:
    """An OCI image config's "config" as Docker's container.Config (every field it prints)."""
    c = c or {}
    out: dict[str, Any] = {}
    for key, default in _CONFIG_FIELDS:
        if key in c and c[key] is not None:
            out[key] = c[key]
        elif key == "Image":
            out[key] = image
        elif default is not ...:
            out[key] = default
    return out


def graph_driver(storage: LayerStorage | None, facts: ImageFacts) -> dict[str, Any]:
    """Where the layers are unpacked (Docker's GraphDriver; Data empty when they are not)."""
    data: dict[str, str] = {}
    if storage is not None and facts.diff_ids:
        from rongqi.storage.overlay import chain_ids
        with contextlib.suppress(RongqiError, OSError):
            paths = [storage.layer_path(c) for c in chain_ids(facts.diff_ids)]
            if all(os.path.isdir(p) for p in paths):
                data["UpperDir"] = paths[-1]
                if len(paths) > 1:
                    data["LowerDir"] = ":".join(reversed(paths[:-1]))
    return {"Data": data, "Name": "overlay"}


def size(facts: ImageFacts, engine: Engine | None = None) -> int:
    """Docker's Size: the layers uncompressed (engine/usage.py's count, as `rongqi images`
    shows it, less the config and manifest podman adds); the blobs' sum where a layer was
    never unpacked here, or without an engine."""
    if engine is None:
        return facts.size
    from rongqi.engine.usage import image_size
    from rongqi.storage.overlay import chain_ids
    return image_size(engine, chain_ids(facts.diff_ids), facts.size)


def inspect(facts: ImageFacts, *, familiar_names: bool = True,
            engine: Engine | None = None) -> dict[str, Any]:
    """Docker's image inspect document (GET /images/{name}/json; docker-py's Image.attrs).

    familiar_names: RepoTags as Docker prints them ("busybox:latest"); False keeps the stored
    names ("docker.io/library/busybox:latest"), as podman's inspect does. With the engine,
    the size is the unpacked one and GraphDriver names the layers' dirs.
    """
    cfg = facts.config
    nbytes = size(facts, engine)
    show = familiar if familiar_names else (lambda n: n)
    doc: dict[str, Any] = {
        "Id": facts.id,
        "RepoTags": [show(n) for n in facts.names],
        "RepoDigests": [show(d) for d in facts.repo_digests],
        "Parent": "",
        "Comment": cfg.get("comment") or _last_comment(cfg),
        "Created": cfg.get("created") or ZERO_TIME,
        "Container": cfg.get("container", ""),
        "ContainerConfig": container_config(cfg.get("container_config")),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": container_config(cfg.get("config")),
        "Architecture": cfg.get("architecture", ""),
    }
    if cfg.get("variant"):
        doc["Variant"] = cfg["variant"]
    doc["Os"] = cfg.get("os", "")
    if cfg.get("os.version"):
        doc["OsVersion"] = cfg["os.version"]
    doc.update({
        "Size": nbytes, "VirtualSize": nbytes,
        "GraphDriver": graph_driver(engine.storage if engine is not None else None, facts),
        "RootFS": {"Type": (cfg.get("rootfs") or {}).get("type", "layers"),
                   "Layers": facts.diff_ids},
        "Metadata": {"LastTagTime": ZERO_TIME},
    })
    return doc


def _last_comment(cfg: dict[str, Any]) -> str:
    hist = cfg.get("history") or []
    return str(hist[-1].get("comment", "")) if hist else ""


def list_entry(facts: ImageFacts, *, containers: int = -1,
               engine: Engine | None = None) -> dict[str, Any]:
    """Docker's ImageSummary (one entry of GET /images/json); a dangling image's tags and
    digests are Docker's "<none>:<none>" and "<none>@<none>"."""
    tags = [familiar(n) for n in facts.names]
    digests = [familiar(d) for d in facts.repo_digests]
    if not tags and not digests:
        tags, digests = [NONE_TAG], [NONE_DIGEST]
    nbytes = size(facts, engine)
    return {"Containers": containers, "Created": facts.created_unix, "Id": facts.id,
            "Labels": facts.labels or None, "ParentId": "", "RepoDigests": digests,
            "RepoTags": tags, "SharedSize": -1, "Size": nbytes, "VirtualSize": nbytes}


def history(facts: ImageFacts) -> list[dict[str, Any]]:
    """Docker's image history, newest first: the newest entry carries the image ID and its
    tags, the others "<missing>" (no image of their own here, as after a pull in Docker)."""
    cfg = facts.config
    layers = list(facts.manifest.get("layers") or [])
    hist = list(cfg.get("history") or [])
    if not hist:  # an image without history: one entry per layer
        hist = [{"created": cfg.get("created", "")} for _ in layers] or [
            {"created": cfg.get("created", "")}]
    entries = []
    li = 0
    for h in hist:
        size = 0
        if not h.get("empty_layer") and li < len(layers):
            size = int(layers[li].get("size", 0))
            li += 1
        entries.append({"Comment": h.get("comment", ""), "Created": unix_time(h.get("created", "")),
                        "CreatedBy": h.get("created_by", ""), "Id": "<missing>",
                        "Size": size, "Tags": None})
    entries.reverse()
    entries[0]["Id"] = facts.id
    entries[0]["Tags"] = [familiar(n) for n in facts.names] or None
    return entries


def labels_match(labels: dict[str, str], wants: list[str]) -> bool:
    """Docker's and podman's label filters: every "k", "k=v" (and "k!=v") must hold."""
    for w in wants:
        if "!=" in w:
            k, _, v = w.partition("!=")
            if labels.get(k) == v:
                return False
            continue
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def prunable(engine: Any, *, dangling_only: bool = True, until: int | None = None,
             labels: list[str] | None = None, not_labels: list[str] | None = None
             ) -> list[ImageFacts]:
    """What an image prune removes, the rule podman's and Docker's share: images no container
    uses; only the dangling (unnamed) ones unless dangling_only is False (prune -a); created
    before `until` (unix seconds); with every label of `labels` and none of `not_labels`."""
    used = {c.config.get("image_id") for c in engine.list(all=True)}
    out = []
    for f in all_images(engine.store):
        if f.id in used or (dangling_only and not f.dangling):
            continue
        if until is not None and f.created_unix >= until:
            continue
        if labels and not labels_match(f.labels, labels):
            continue
        if not_labels and any(labels_match(f.labels, [w]) for w in not_labels):
            continue
        out.append(f)
    return out
