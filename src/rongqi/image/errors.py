"""The image side's errors: bad references, missing images, bad blobs, registry failures.

All are RongqiError subclasses, so the CLI prints them as one line and exits 125.
"""

from __future__ import annotations

from rongqi.errors import RongqiError


class ImageError(RongqiError):
    exit_code = 125


class InvalidReference(ImageError):
    """An image reference that docker's rules reject."""


class ImageNotFound(ImageError):
    def __init__(self, name: str):
        super().__init__(f"{name}: image not known")  # podman's words
        self.name = name


class BlobVerificationError(ImageError):
    """A blob whose digest or size is not what its descriptor says; nothing of it is kept."""


class LayerError(ImageError):
    """A layer tar that cannot be applied safely (escapes, bad entries, bad compression)."""


class RegistryError(ImageError):
    """The registry refused or failed; the message carries its error code when it gave one."""


class AuthError(RegistryError):
    pass


class ManifestError(ImageError):
    """A manifest or index that is malformed or has no image for the wanted platform."""
