"""Media types and the descriptor value shared by the store, the registry client and archives.

One place for the OCI and Docker schema2 names so that pull, push, load and save agree.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.values import dataclass, field

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Descriptor:
    """What points at a blob: its media type, digest and size (plus optional extras)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None
    urls: list[str] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str = "descriptor") -> Descriptor:
        try:
            digest, size = d["digest"], d["size"]
        except (KeyError, TypeError):
            from rongqi.image.errors import ManifestError
            raise ManifestError(f"{where}: needs a digest and a size") from None
        if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
            from rongqi.image.errors import ManifestError
            raise ManifestError(f"{where}: bad digest or size")
        return cls(d.get("mediaType", ""), digest, size, d.get("annotations") or None,
                   d.get("platform") or None, d.get("urls") or None)


def compression_of(media_type: str) -> str:
    """"gzip", "zstd" or "" from a layer media type (content sniffing decides when unsure)."""
    if media_type.endswith("gzip"):
        return "gzip"
    if media_type.endswith("zstd"):
        return "zstd"
    return ""
