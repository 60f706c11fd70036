"""Image references by docker's rules: "busybox" is docker.io/library/busybox:latest.

Parses name[:tag][@digest] with an optional registry host[:port]; nothing here touches the network.
"""

from __future__ import annotations

import re

from rongqi.image.errors import InvalidReference
from rongqi.values import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
DOCKER_API_HOST = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"

# The grammar of github.com/distribution/reference, written out once.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_HEX64_RE = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_LENGTH_MAX = 255


@dataclass(frozen=True)
class Reference:
    """A normalized reference: domain, repository path, and a tag and/or digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The full repository name, "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    @property
    def api_host(self) -> str:
        """The host the Registry API is served from (docker.io lives elsewhere)."""
        return DOCKER_API_HOST if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def object(self) -> str:
        """What the manifests endpoint is asked for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def familiar(self) -> str:
        """The short form docker prints: "busybox:latest", "quay.io/x/y:1"."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path
            if name.startswith(OFFICIAL_PREFIX) and "/" not in name[len(OFFICIAL_PREFIX):]:
                name = name[len(OFFICIAL_PREFIX):]
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1:
        return DEFAULT_DOMAIN, name
    first = name[:i]
    # Docker's rule: the first component is a registry only if it looks like a host.
    if "." not in first and ":" not in first and first != "localhost" and first.lower() == first:
        return DEFAULT_DOMAIN, name
    return first, name[i + 1:]


def parse(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse and normalize a reference as docker does; raise InvalidReference with the reason."""
    if not text:
        raise InvalidReference("invalid reference format: empty reference")
    if _HEX64_RE.match(text):
        raise InvalidReference(
            f"invalid reference format: repository name ({text}) cannot be a 64-byte "
            "hexadecimal string")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidReference(f"invalid reference format: bad digest in {text!r}")
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and not _HEX64_RE.match(hexpart):
            raise InvalidReference(f"invalid reference format: bad sha256 digest in {text!r}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid reference format: bad tag {tag!r} in {text!r}")
    domain, path = _split_domain(rest)
    if domain and not _DOMAIN_RE.match(domain):
        raise InvalidReference(f"invalid reference format: bad registry {domain!r} in {text!r}")
    if path.lower() != path:
        raise InvalidReference(
            f"invalid reference format: repository name must be lowercase: {text!r}")
    if not _PATH_RE.match(path):
        raise InvalidReference(f"invalid reference format: {text!r}")
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            f"invalid reference format: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain, path, tag, digest)


def is_digest(text: str) -> bool:
    return bool(_DIGEST_RE.match(text))


def registry_host(server: str) -> str:
    """The registry API host of a login's server ("https://index.docker.io/v1/", "", a
    HOST[:PORT]): Docker Hub's names are its API host."""
    host = server.removeprefix("https://").removeprefix("http://").split("/")[0]
    return DOCKER_API_HOST if host in (DEFAULT_DOMAIN, LEGACY_DOMAIN, "") else host
