"""Disk usage of images, containers and volumes, and reclaiming it: one computation for the
faces that show it (`rongqi system df`, `ps --size`, `images`, the Docker API's /system/df and
image sizes) and one garbage collection for the prunes and removals of every face."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from rongqi.errors import RongqiError


@dataclass
class ImageUsage:
    id: str                      # the config digest, "sha256:..."
    names: list[str]
    created: str
    size: int                    # uncompressed, as podman and docker count it
    shared_size: int             # bytes of its layers that other images use too
    containers: int              # containers made from it


@dataclass
class ContainerUsage:
    id: str
    names: list[str]
    image: str
    image_id: str
    command: list[str]
    created: str
    status: str
    rw_size: int                 # what the container wrote (its snapshot's upper dir)
    rootfs_size: int             # rw_size + its image's layers
    volumes: int = 0             # named and anonymous volumes it mounts


@dataclass
class VolumeUsage:
    name: str
    mountpoint: str
    created: str
    links: int                   # containers that use it
    size: int


@dataclass
class Usage:
    images: list[ImageUsage] = field(default_factory=list)
    containers: list[ContainerUsage] = field(default_factory=list)
    volumes: list[VolumeUsage] = field(default_factory=list)
    layers_size: int = 0         # bytes of the unique image layers (the Docker API's LayersSize)


def image_size(engine: Any, chain_ids: list[str], blob_sizes: int, metadata: int = 0) -> int:
    """An image's size as podman counts it: its layers uncompressed (the sizes recorded when
    they were unpacked) plus its config and manifest; the sum of its (compressed) blobs where
    a layer was never unpacked here (a loaded image not yet run)."""
    total = metadata
    storage = engine.storage
    for chain in chain_ids:
        n = storage.layer_size(chain)
        if n is None:
            return blob_sizes
        total += n
    return total


def _parts(engine: Any, record: Any) -> tuple[list[str], int]:
    """(chain ids, bytes of config and manifest) of an image store record."""
    from rongqi.storage.overlay import chain_ids
    try:
        manifest = engine.store.manifest(record.manifest)
        cfg = engine.store.config(record.manifest)
    except (RongqiError, OSError, ValueError, KeyError):
        return [], 0
    meta = int(manifest.get("config", {}).get("size", 0)) + int(record.manifest.size or 0)
    return chain_ids((cfg.get("rootfs") or {}).get("diff_ids") or []), meta


def sized(engine: Any, record: Any) -> int:
    """image_size() of an image store record (image.store.ImageRecord)."""
    chains, meta = _parts(engine, record)
    return image_size(engine, chains, record.size, meta)


def container_size(engine: Any, c: Any) -> tuple[int, int]:
    """(bytes written by the container, that + its image's layers): podman's SIZE column
    "12B (virtual 4MB)" and the Docker API's SizeRw and SizeRootFs."""
    from rongqi.storage.overlay import du
    storage = engine.storage
    upper = os.path.join(storage.snap_dir, c.config.get("snapshot") or c.id, "upper")
    rw = du(upper) if os.path.isdir(upper) else 0
    image = 0
    for chain in c.config.get("chain_ids", []):
        n = storage.layer_size(chain)
        if n is None:
            path = os.path.join(storage.layers_dir, chain.partition(":")[2])
            n = du(path) if os.path.isdir(path) else 0
        image += n
    return rw, rw + image


def disk_usage(engine: Any) -> Usage:
    """Everything `system df -v` shows, read once."""
    from rongqi.storage.overlay import du
    containers = engine.list(all=True)
    users: dict[str, int] = {}
    for c in containers:
        image_id = c.config.get("image_id", "")
        users[image_id] = users.get(image_id, 0) + 1
    by_id: dict[str, ImageUsage] = {}
    layer_users: dict[str, int] = {}
    image_chains: dict[str, list[str]] = {}
    layer_bytes: dict[str, int] = {}
    for r in engine.store.images():
        u = by_id.get(r.config_digest)
        if u is not None:
            u.names.append(r.name)
            continue
        chains, meta = _parts(engine, r)
        image_chains[r.config_digest] = chains
        for ch in chains:
            layer_users[ch] = layer_users.get(ch, 0) + 1
            if ch not in layer_bytes:
                layer_bytes[ch] = engine.storage.layer_size(ch) or 0
        by_id[r.config_digest] = ImageUsage(
            r.config_digest, [r.name], r.created, image_size(engine, chains, r.size, meta), 0,
            users.get(r.config_digest, 0))
    for image_id, u in by_id.items():
        u.shared_size = sum(layer_bytes.get(ch, 0) for ch in image_chains[image_id]
                            if layer_users.get(ch, 0) > 1)
    out = Usage(images=list(by_id.values()))
    out.layers_size = sum(layer_bytes.values())
    for c in containers:
        rw, rootfs = container_size(engine, c)
        out.containers.append(ContainerUsage(
            c.id, [c.name], c.config.get("image", ""), c.config.get("image_id", ""),
            list(c.config.get("command", [])), c.config.get("created", ""), str(c.status),
            rw, rootfs, sum(1 for m in c.config.get("mounts") or [] if m.get("Type") == "volume")))
    from rongqi.engine.volumes import in_use
    for v in engine.volumes.list():
        mp = v.mountpoint
        out.volumes.append(VolumeUsage(v.name, mp, v.created,
                                       len(in_use(v.name, engine)),
                                       du(mp) if os.path.isdir(mp) else 0))
    return out


def collect_garbage(engine: Any) -> tuple[list[str], list[str], int]:
    """Blobs the store's index does not reach, then unpacked layers no image (named, or kept
    unnamed for its containers) needs. Returns (blob digests removed,
    layer chain ids removed, bytes of blobs freed)."""
    from rongqi.storage.overlay import chain_ids
    store = engine.store
    blobs, freed = store.gc()
    keep: list[str] = []
    # named images, and the unnamed ones the store keeps for containers of a removed name
    for d in [d for _, d in store.names()] + list(store.unnamed()):
        try:
            cfg = store.config(d)
        except (RongqiError, OSError, ValueError, KeyError):
            continue
        keep.extend(chain_ids((cfg.get("rootfs") or {}).get("diff_ids") or []))
    layers = engine.storage.gc(keep)
    return list(blobs), list(layers), freed
