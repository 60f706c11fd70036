"""A Registry HTTP API v2 client on httpx: auth, manifests, platform selection, blobs, push.

Blobs go straight into the ImageStore's verified writer (resumed with Range after a drop,
retried with backoff); a name is set only once every blob of the image is in the store.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import platform as _platform
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from rongqi.image import media
from rongqi.image.auth import CredentialStore, parse_challenge
from rongqi.image.errors import (AuthError, BlobVerificationError, ImageError, ManifestError,
                                 RegistryError)
from rongqi.image.media import Descriptor
from rongqi.image.progress import Progress
from rongqi.image.reference import Reference
from rongqi.image.store import CHUNK, FollowAborted, ImageStore, sha256_digest

ACCEPT = ", ".join([media.OCI_INDEX, media.DOCKER_LIST, media.OCI_MANIFEST,
                    media.DOCKER_MANIFEST])
MAX_MANIFEST = 4 << 20
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass
class RegistryConfig:
    """Per-registry settings: which hosts may use plain http, mirrors to try first, and the
    names that may not be pulled at all (`blocked`)."""

    insecure: set[str] = field(default_factory=set)
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    loopback_plain_http: bool = True
    # containers-registries.conf(5)'s `blocked = true`: image names under these prefixes
    # (`docker.io`, `docker.io/library`, `*.example.com`) are never pulled, not even from a
    # mirror; the refusal comes before any connection (and any DNS query).
    blocked: list[str] = field(default_factory=list)
    source: str = ""             # the file it was read from (named in the refusal)

    @classmethod
    def load(cls, path: str) -> RegistryConfig:
        try:
            with open(path) as f:
                raw = json.load(f)
        except FileNotFoundError:
            return cls(source=path)
        except (OSError, ValueError) as e:
            raise ImageError(f"{path}: {e}") from None
        blocked = raw.get("blocked", [])
        if not isinstance(blocked, list) or not all(isinstance(b, str) and b for b in blocked):
            raise ImageError(f"{path}: blocked: expected a list of registry prefixes")
        return cls(set(raw.get("insecure", [])), dict(raw.get("mirrors", {})),
                   bool(raw.get("loopback_plain_http", True)), list(blocked), path)

    def blocking(self, ref: Reference) -> str | None:
        """The `blocked` prefix that matches ref's name, as registries.conf matches a
        [[registry]] prefix: whole components (`docker.io` blocks docker.io/library/x, not
        docker.iox/y), or a `*.` wildcard for the subdomains of a host."""
        name = ref.repository
        host = ref.domain
        for prefix in self.blocked:
            if prefix.startswith("*."):
                if host.endswith(prefix[1:]):
                    return prefix
            elif name == prefix or name.startswith(prefix.rstrip("/") + "/"):
                return prefix
        return None

    def allows_http(self, host: str) -> bool:
        if host in self.insecure:
            return True
        if not self.loopback_plain_http:
            return False
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]")
        if name == "localhost":
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ImageError(f"--platform: expected os/arch[/variant], got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        m = _platform.machine()
        arch, variant = {"x86_64": ("amd64", None), "aarch64": ("arm64", None),
                         "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
                         "i686": ("386", None), "ppc64le": ("ppc64le", None),
                         "s390x": ("s390x", None), "riscv64": ("riscv64", None)}.get(
                             m, (m, None))
        return cls("linux", arch, variant)

    def matches(self, p: dict[str, Any]) -> bool:
        if p.get("os") != self.os or p.get("architecture") != self.architecture:
            return False
        if self.variant is None:
            return True
        v = p.get("variant")
        # arm64 images often leave out v8, as containerd's matcher allows.
        return v == self.variant or (v is None and self.architecture == "arm64"
                                     and self.variant == "v8")

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)


def select_platform(index: dict[str, Any], want: Platform) -> Descriptor:
    """The manifest of an index for `want`; without a variant, the first match wins."""
    candidates = []
    for i, m in enumerate(index.get("manifests") or []):
        d = Descriptor.from_json(m, f"manifests[{i}]")
        if d.media_type in media.INDEX_TYPES:
            continue
        if want.matches(d.platform or {}):
            candidates.append(d)
    if not candidates:
        have = sorted({"/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant"))
                                if x) for m in index.get("manifests") or []
                       for p in [m.get("platform") or {}]})
        raise ManifestError(f"no image for platform {want} (the index has: "
                            f"{', '.join(have) or 'none'})")
    if want.variant is None:
        # Prefer the highest arm variant when none is asked for, as containerd does.
        candidates.sort(key=lambda d: (d.platform or {}).get("variant") or "", reverse=True)
    return candidates[0]


class _Token:
    __slots__ = ("value", "expires")

    def __init__(self, value: str, expires: float):
        self.value, self.expires = value, expires


class RegistryClient:
    """Talks to registries for pull and push; one instance may serve many threads."""

    def __init__(self, http: httpx.Client | None = None, *, config: RegistryConfig | None = None,
                 credentials: CredentialStore | None = None, retries: int = 4,
                 backoff: float = 0.5, parallel: int = 4, user_agent: str = "rongqi/0.1"):
        self.http = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0),
                                         follow_redirects=True,
                                         headers={"User-Agent": user_agent})
        self.config = config or RegistryConfig()
        self.creds = credentials or CredentialStore()
        self.retries, self.backoff, self.parallel = retries, backoff, parallel
        self._schemes: dict[str, str] = {}
        self._challenges: dict[str, tuple[str, dict[str, str]]] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._token_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self.explicit_creds: dict[str, tuple[str, str]] = {}
        # Docker's AuthConfig tokens, per registry host, given with a request (rongqi serve's
        # X-Registry-Auth) over the credential files' ones: an identity token is an OAuth2
        # refresh token for the registry's token server; a registry token is sent to the
        # registry itself as its bearer token (no token server asked).
        self.identity_tokens: dict[str, str] = {}
        self.registry_tokens: dict[str, str] = {}
        # The refresh tokens token servers gave (a login's identity token), per host.
        self.refresh_tokens: dict[str, str] = {}
        # The client_id sent to token servers (the distribution spec requires one for OAuth2;
        # dockerd's is "docker": rongqi serve sets it).
        self.client_id = "rongqi"
        self._offline = False   # ask for a refresh token (login only, as dockerd)
        self._file_tokens: dict[str, tuple[str, str]] = {}

    # -- transport -----------------------------------------------------------------------------
    def _credentials(self, host: str) -> tuple[str, str] | None:
        return self.explicit_creds.get(host) or self.creds.get(host)

    def _tokens_for(self, host: str) -> tuple[str, str]:
        """(identity token, registry token) for host: the request's, else the files'."""
        if host in self.identity_tokens or host in self.registry_tokens:
            return self.identity_tokens.get(host, ""), self.registry_tokens.get(host, "")
        if host in self.explicit_creds:
            return "", ""   # a request's own username and password win over the files
        with self._lock:
            known = self._file_tokens.get(host)
        if known is None:   # read once per host: every request of a pull asks
            try:
                known = self.creds.tokens(host)
            except AuthError:
                known = ("", "")
            with self._lock:
                self._file_tokens[host] = known
        return known

    def base_url(self, host: str) -> str:
        with self._lock:
            scheme = self._schemes.get(host)
        if scheme is None:
            scheme = self._probe(host)
            with self._lock:
                self._schemes[host] = scheme
        return f"{scheme}://{host}"

    def _probe(self, host: str) -> str:
        """https unless the registry is configured insecure (or loopback) and https fails."""
        try:
            self.http.get(f"https://{host}/v2/")
            return "https"
        except httpx.TransportError as e:
            if not self.config.allows_http(host):
                raise RegistryError(f"cannot reach registry {host} over https: {e} "
                                    "(plain http is allowed only for registries configured "
                                    "as insecure)") from None
        try:
            self.http.get(f"http://{host}/v2/")
        except httpx.TransportError as e:
            raise RegistryError(f"cannot reach registry {host}: {e}") from None
        return "http"

    def ping(self, host: str) -> dict[str, Any]:
        """GET /v2/: which scheme, and what auth the registry asks for."""
        url = self.base_url(host) + "/v2/"
        r = self._send("GET", host, url, scope=None)
        return {"scheme": url.split(":")[0], "status": r.status_code,
                "auth": self._challenges.get(host, ("none", {}))[0]}

    def _token(self, host: str, params: dict[str, str], scope: str | None) -> str:
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"registry {host}: bearer challenge without a realm")
        scopes = sorted({one for s in (scope, params.get("scope")) if s for one in s.split()})
        key = (realm + "|" + params.get("service", ""), " ".join(scopes))
        with self._lock:
            tok = self._tokens.get(key)
            if tok and tok.expires > time.monotonic():
                return tok.value
            flight = self._token_locks.setdefault(key, threading.Lock())
        # One fetch per scope even when parallel blob transfers all miss the cache at once.
        with flight:
            with self._lock:
                tok = self._tokens.get(key)
            if tok and tok.expires > time.monotonic():
                return tok.value
            return self._fetch_token(host, realm, params, scopes, key)

    def _fetch_token(self, host: str, realm: str, params: dict[str, str], scopes: list[str],
                     key: tuple[str, str]) -> str:
        """A bearer token from the token server (the distribution token spec): with an
        identity token, OAuth2's refresh_token grant (a POST); else a GET with the basic
        credentials (`offline_token=true` for a login, as dockerd asks, to get a refresh
        token), or OAuth2's password grant where the server takes only POSTs."""
        service = params.get("service", "")
        refresh = self._tokens_for(host)[0]
        creds = self._credentials(host)
        if refresh:
            r = self._oauth(realm, service, scopes, {"grant_type": "refresh_token",
                                                     "refresh_token": refresh})
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            query.extend(("scope", s) for s in scopes)
            if self._offline:
                query += [("offline_token", "true"), ("client_id", self.client_id)]
            if creds:
                query.append(("account", creds[0]))
            auth = httpx.BasicAuth(*creds) if creds else None
            try:
                r = self.http.get(realm, params=query, auth=auth)
            except httpx.TransportError as e:
                raise AuthError(f"token server {realm}: {e}") from None
            if r.status_code in (404, 405) and creds:
                r = self._oauth(realm, service, scopes, {
                    "grant_type": "password", "username": creds[0], "password": creds[1],
                    **({"access_type": "offline"} if self._offline else {})})
        if r.status_code in (400, 401, 403):
            raise AuthError(f"registry {host}: the token server refused the credentials "
                            f"({r.status_code})")
        if r.status_code != 200:
            raise AuthError(f"token server {realm}: HTTP {r.status_code}")
        try:
            body = r.json()
        except ValueError:
            raise AuthError(f"token server {realm}: answer is not JSON") from None
        if not isinstance(body, dict):
            raise AuthError(f"token server {realm}: answer is not a JSON object")
        value = body.get("access_token") or body.get("token")
        if not value or not isinstance(value, str):
            raise AuthError(f"token server {realm}: no token in the answer")
        new_refresh = body.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh:
            with self._lock:
                self.refresh_tokens[host] = new_refresh
                if refresh and new_refresh != refresh:
                    self.identity_tokens[host] = new_refresh   # a rotated one, from now on
        try:
            ttl = max(int(body.get("expires_in") or 60), 60)
        except (TypeError, ValueError):
            ttl = 60
        with self._lock:
            self._tokens[key] = _Token(value, time.monotonic() + ttl - 10)
        return value

    def _oauth(self, realm: str, service: str, scopes: list[str],
               grant: dict[str, str]) -> httpx.Response:
        """POST the token server an OAuth2 grant (the distribution spec's oauth.md)."""
        form = {**grant, "service": service, "scope": " ".join(scopes),
                "client_id": self.client_id}
        try:
            return self.http.post(realm, data=form)
        except httpx.TransportError as e:
            raise AuthError(f"token server {realm}: {e}") from None

    def _auth_header(self, host: str, scope: str | None) -> str | None:
        ch = self._challenges.get(host)
        if ch is None:
            return None
        scheme, params = ch
        if scheme == "bearer":
            registry_token = self._tokens_for(host)[1]
            if registry_token:
                return "Bearer " + registry_token   # dockerd's RegistryToken: sent as is
            return "Bearer " + self._token(host, params, scope)
        if scheme == "basic":
            creds = self._credentials(host)
            if creds is None:
                raise AuthError(f"registry {host} needs a login (rongqi login {host})")
            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        return None

    def _send(self, method: str, host: str, url: str, *, scope: str | None,
              headers: dict[str, str] | None = None, stream: bool = False,
              content: Any = None, retry: bool = True) -> httpx.Response:
        """One request with auth and retries; a 401 learns the challenge and retries once."""
        attempt = 0
        challenged = False
        while True:
            h = dict(headers or {})
            auth = self._auth_header(host, scope)
            if auth:
                h["Authorization"] = auth
            try:
                req = self.http.build_request(method, url, headers=h, content=content)
                r = self.http.send(req, stream=stream)
            except httpx.TransportError as e:
                if not retry or attempt >= self.retries or content is not None:
                    raise RegistryError(f"{method} {url}: {e}") from None
                attempt += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if r.status_code == 401 and not challenged:
                header = r.headers.get("www-authenticate")
                r.close()
                if not header:
                    raise AuthError(f"registry {host}: unauthorized, and no challenge given")
                scheme, params = parse_challenge(header)
                # The challenge's scope belongs to this one request; later requests (other
                # repositories, push) ask for their own, so keep only realm and service.
                if scope:
                    params.pop("scope", None)
                self._challenges[host] = (scheme, params)
                challenged = True
                continue
            if r.status_code in _RETRY_STATUS and retry and attempt < self.retries \
                    and content is None:
                r.close()
                attempt += 1
                delay = self.backoff * 2 ** (attempt - 1)
                with_ra = r.headers.get("retry-after", "")
                if with_ra.isdigit():
                    delay = max(delay, min(int(with_ra), 30))
                time.sleep(delay)
                continue
            return r

    @staticmethod
    def _error(r: httpx.Response, what: str) -> RegistryError:
        if not r.is_stream_consumed:
            try:
                r.read()
            except httpx.HTTPError:
                pass
        detail = ""
        try:
            errs = r.json().get("errors") or []
            if errs:
                detail = ": " + "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs)
        except (ValueError, AttributeError):
            pass
        cls = AuthError if r.status_code in (401, 403) else RegistryError
        return cls(f"{what}: HTTP {r.status_code}{detail}")

    # -- manifests -----------------------------------------------------------------------------
    def check_not_blocked(self, ref: Reference) -> None:
        """Refuse a pull of a name registries.json blocks, in podman's words."""
        prefix = self.config.blocking(ref)
        if prefix is not None:
            raise RegistryError(f"registry {prefix} is blocked in "
                                f"{self.config.source or 'registries.json'}")

    def get_manifest(self, ref: Reference, obj: str | None = None,
                     host: str | None = None) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index, verified when pinned."""
        self.check_not_blocked(ref)
        host = host or ref.api_host
        obj = obj or ref.object
        url = f"{self.base_url(host)}/v2/{ref.path}/manifests/{obj}"
        r = self._send("GET", host, url, scope=f"repository:{ref.path}:pull",
                       headers={"Accept": ACCEPT})
        if r.status_code == 404:
            raise ImageError(f"{ref}: manifest unknown (not found in {host})")
        if r.status_code != 200:
            raise self._error(r, f"{ref}: fetching manifest")
        body = r.content
        if len(body) > MAX_MANIFEST:
            raise ManifestError(f"{ref}: manifest larger than {MAX_MANIFEST} bytes")
        digest = sha256_digest(body)
        want = obj if obj.startswith("sha256:") else r.headers.get("docker-content-digest")
        if want and want.startswith("sha256:") and want != digest:
            raise BlobVerificationError(f"{ref}: manifest digest {digest} does not match {want}")
        mt = r.headers.get("content-type", "").split(";")[0].strip()
        try:
            doc = json.loads(body)
        except ValueError:
            raise ManifestError(f"{ref}: manifest is not JSON") from None
        mt = doc.get("mediaType") or mt
        if mt not in media.MANIFEST_TYPES and mt not in media.INDEX_TYPES:
            if "manifests" in doc:
                mt = media.OCI_INDEX
            elif "config" in doc and "layers" in doc:
                mt = media.OCI_MANIFEST
            else:
                raise ManifestError(f"{ref}: unsupported manifest type {mt!r} "
                                    "(schema 1 images are not supported)")
        return body, mt, digest

    # -- blobs ---------------------------------------------------------------------------------
    def fetch_blob(self, ref: Reference, desc: Descriptor, store: ImageStore,
                   progress: Progress | None = None, host: str | None = None) -> str:
        """Download a blob into the store (verified, resumable); returns "exists"/"done"."""
        self.check_not_blocked(ref)
        host = host or ref.api_host
        progress = progress or Progress()
        key = desc.digest
        label = desc.digest.partition(":")[2][:12]
        if store.has_blob(desc.digest):
            progress.start(key, label, desc.size)
            progress.advance(key, desc.size)
            progress.finish(key, "already exists")
            return "exists"
        url = f"{self.base_url(host)}/v2/{ref.path}/blobs/{desc.digest}"
        with store.writer(desc.digest, desc.size) as w:
            if w.exists:
                progress.finish(key, "already exists")
                return "exists"
            progress.start(key, label, desc.size)
            if w.offset:
                progress.advance(key, w.offset)
            attempt = 0
            while True:
                try:
                    self._download_into(host, url, ref, w, progress, key)
                    break
                except (httpx.TransportError, _Retry) as e:
                    if w.size is not None and w.offset == w.size:
                        break  # everything arrived; the digest check decides
                    attempt += 1
                    if attempt > self.retries:
                        raise RegistryError(f"blob {desc.digest}: download failed after "
                                            f"{attempt} attempts: {e}") from None
                    time.sleep(self.backoff * 2 ** (attempt - 1))
            w.commit()
        progress.finish(key, "done")
        return "done"

    def _download_into(self, host: str, url: str, ref: Reference, w: Any, progress: Progress,
                       key: str) -> None:
        # Blob bytes must arrive as stored: no transfer compression to undo.
        headers = {"Accept-Encoding": "identity"}
        start = w.offset
        if start:
            headers["Range"] = f"bytes={start}-"
        r = self._send("GET", host, url, scope=f"repository:{ref.path}:pull", headers=headers,
                       stream=True)
        try:
            if r.status_code == 416 and start:
                w.restart()
                raise _Retry("range not satisfiable; starting over")
            if r.status_code in _RETRY_STATUS:
                raise _Retry(f"HTTP {r.status_code}")
            if r.status_code not in (200, 206):
                raise self._error(r, f"blob {w.digest}")
            if start and r.status_code == 200:
                progress.advance(key, -start)
                w.restart()
            elif r.status_code == 206:
                cr = r.headers.get("content-range", "")
                if not cr.startswith(f"bytes {start}-"):
                    w.restart()
                    raise _Retry(f"unexpected Content-Range {cr!r}")
            for chunk in r.iter_bytes():  # as received: a drop loses nothing written
                w.write(chunk)
                progress.advance(key, len(chunk))
            if w.size is not None and w.offset < w.size:
                raise _Retry(f"connection closed after {w.offset} of {w.size} bytes")
        finally:
            r.close()

    # -- pull ----------------------------------------------------------------------------------
    def resolve(self, ref: Reference, want: Platform | None = None,
                hosts: list[str] | None = None) -> tuple[str, bytes, str, str, str | None]:
        """(host, manifest bytes, media type, manifest digest, index digest or None)."""
        self.check_not_blocked(ref)  # before a mirror is asked too
        want = want or Platform.host()
        candidates = hosts or self.hosts_for(ref)
        for n, host in enumerate(candidates, 1):
            try:
                body, mt, digest = self.get_manifest(ref, host=host)
            except ImageError:
                if n == len(candidates):
                    raise
                continue  # a mirror that fails is skipped for the next one
            index_digest = None
            if mt in media.INDEX_TYPES:
                index_digest = digest
                chosen = select_platform(json.loads(body), want)
                body, mt, digest = self.get_manifest(ref, chosen.digest, host=host)
                if mt not in media.MANIFEST_TYPES:
                    raise ManifestError(f"{ref}: nested index for {want} is not supported")
            return host, body, mt, digest, index_digest
        raise AssertionError("unreachable: the last host raises")

    def hosts_for(self, ref: Reference) -> list[str]:
        mirrors = self.config.mirrors.get(ref.domain, [])
        return [*mirrors, ref.api_host]

    def pull(self, ref: Reference, store: ImageStore, *, platform: Platform | None = None,
             progress: Progress | None = None, name: str | None = None,
             while_downloading: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
             ) -> Descriptor:
        """Pull an image into the store and name it; returns the manifest's descriptor.

        `while_downloading(manifest, config)` runs in this thread once the config is in and
        the layers are downloading (the CLI unpacks them as they arrive); if it raises, the
        pull fails with its error.
        """
        progress = progress or Progress()
        with store.gc_lock(shared=True):
            host, body, mt, digest, index_digest = self.resolve(ref, platform)
            try:
                manifest = json.loads(body)
                config = Descriptor.from_json(manifest["config"], "config")
                layers = [Descriptor.from_json(x, f"layers[{i}]")
                          for i, x in enumerate(manifest["layers"])]
            except (KeyError, TypeError, ValueError):
                raise ManifestError(f"{ref}: manifest has no config or layers") from None
            for d in layers:
                if d.urls and d.media_type == media.DOCKER_FOREIGN_LAYER:
                    raise ManifestError(f"{ref}: foreign layers are not supported")
            progress.message(f"Pulling {ref} from {host}")
            with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
                futures = []
                for d in [config, *layers]:
                    f = pool.submit(self.fetch_blob, ref, d, store, progress, host)
                    # Whoever follows this blob must not wait for a download that died.
                    f.add_done_callback(lambda f, d=d: f.exception() and store.abandon(d.digest))
                    futures.append(f)
                errs: list[BaseException] = []
                if while_downloading is not None:
                    try:
                        futures[0].result()
                        while_downloading(manifest, store.read_json(config.digest))
                    except Exception as e:  # noqa: BLE001 - reported after the downloads end
                        errs.append(e)
                for f in futures:
                    try:
                        f.result()
                    except Exception as e:  # noqa: BLE001 - the first error is the one reported
                        errs.append(e)
                if errs:
                    # A download's own error explains more than a follower that saw it fail.
                    # A corrupt download explains a broken layer stream better than the
                    # unpacker that tripped over it.
                    errs.sort(key=lambda e: (not isinstance(e, BlobVerificationError),
                                             isinstance(e, FollowAborted)))
                    raise errs[0]
            mdesc = store.put_blob(body, mt, digest)
            ann = {"io.rongqi.repo.digest": f"{ref.repository}@{index_digest or digest}"}
            named = Descriptor(mt, digest, len(body), ann)
            store.set_name(name or str(ref), named)
        progress.message(f"Digest: {index_digest or digest}")
        return Descriptor(mt, mdesc.digest, mdesc.size, ann)

    # -- push ----------------------------------------------------------------------------------
    def blob_exists(self, ref: Reference, digest: str, host: str | None = None) -> bool:
        host = host or ref.api_host
        url = f"{self.base_url(host)}/v2/{ref.path}/blobs/{digest}"
        r = self._send("HEAD", host, url, scope=f"repository:{ref.path}:pull,push")
        r.close()
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        raise self._error(r, f"checking blob {digest}")

    def _location(self, host: str, r: httpx.Response) -> str:
        loc = r.headers.get("location")
        if not loc:
            raise RegistryError(f"registry {host}: upload started without a Location")
        return loc if "://" in loc else self.base_url(host) + loc

    def push_blob(self, ref: Reference, desc: Descriptor, store: ImageStore,
                  mount_from: Iterable[str] = (), progress: Progress | None = None) -> str:
        """Upload a blob unless the registry has it, or can mount it from another repo."""
        host = ref.api_host
        progress = progress or Progress()
        key, label = desc.digest, desc.digest.partition(":")[2][:12]
        progress.start(key, label, desc.size)
        if self.blob_exists(ref, desc.digest):
            progress.advance(key, desc.size)
            progress.finish(key, "layer already exists")
            return "exists"
        base = self.base_url(host)
        loc = None
        for other in mount_from:
            if other == ref.path:
                continue
            scope = f"repository:{ref.path}:pull,push repository:{other}:pull"
            r = self._send("POST", host,
                           f"{base}/v2/{ref.path}/blobs/uploads/?mount={desc.digest}&from={other}",
                           scope=scope, retry=False)
            r.close()
            if r.status_code == 201:
                progress.advance(key, desc.size)
                progress.finish(key, f"mounted from {other}")
                return "mounted"
            if r.status_code == 202:
                loc = self._location(host, r)
                break
        scope = f"repository:{ref.path}:pull,push"
        if loc is None:
            r = self._send("POST", host, f"{base}/v2/{ref.path}/blobs/uploads/", scope=scope)
            r.close()
            if r.status_code != 202:
                raise self._error(r, f"starting upload of {desc.digest}")
            loc = self._location(host, r)
        sep = "&" if "?" in loc else "?"

        def body() -> Iterable[bytes]:
            with store.open_blob(desc.digest) as f:
                while chunk := f.read(CHUNK):
                    progress.advance(key, len(chunk))
                    yield chunk

        r = self._send("PUT", host, f"{loc}{sep}digest={desc.digest}", scope=scope,
                       headers={"Content-Type": "application/octet-stream",
                                "Content-Length": str(desc.size)}, content=body())
        r.close()
        if r.status_code not in (201, 204):
            raise self._error(r, f"uploading {desc.digest}")
        progress.finish(key, "pushed")
        return "pushed"

    def push(self, store: ImageStore, manifest: Descriptor, ref: Reference, *,
             progress: Progress | None = None, mount_from: Iterable[str] = ()) -> str:
        """Push an image from the store under `ref` (a tag); returns the manifest digest."""
        progress = progress or Progress()
        m = store.manifest(manifest)
        blobs = [Descriptor.from_json(m["config"], "config"),
                 *(Descriptor.from_json(x, "layer") for x in m["layers"])]
        mount_from = list(mount_from)
        progress.message(f"Pushing {ref}")
        with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
            for f in [pool.submit(self.push_blob, ref, d, store, mount_from, progress)
                      for d in blobs]:
                f.result()
        body = store.read_blob(manifest.digest)
        mt = json.loads(body).get("mediaType") or manifest.media_type or media.OCI_MANIFEST
        host = ref.api_host
        url = f"{self.base_url(host)}/v2/{ref.path}/manifests/{ref.tag or manifest.digest}"
        r = self._send("PUT", host, url, scope=f"repository:{ref.path}:pull,push",
                       headers={"Content-Type": mt}, content=body)
        r.close()
        if r.status_code not in (200, 201, 204):
            raise self._error(r, f"pushing manifest of {ref}")
        progress.message(f"Digest: {manifest.digest}")
        return manifest.digest

    def tags(self, ref: Reference) -> list[str]:
        """The tags of ref's repository (/v2/NAME/tags/list; its first page)."""
        self.check_not_blocked(ref)
        host = ref.api_host
        r = self._send("GET", host, f"{self.base_url(host)}/v2/{ref.path}/tags/list",
                       scope=f"repository:{ref.path}:pull")
        if r.status_code == 404:
            raise ImageError(f"{ref.repository}: repository not known (not found in {host})")
        if r.status_code != 200:
            raise self._error(r, f"{ref.repository}: listing its tags")
        try:
            tags = r.json().get("tags") or []
        except (ValueError, AttributeError):
            raise RegistryError(f"{ref.repository}: the tag list is not JSON") from None
        return [str(t) for t in tags]

    def catalog(self, host: str, limit: int = 1000) -> list[str]:
        """The repositories a registry lists at /v2/_catalog (its first page of `limit`)."""
        r = self._send("GET", host, f"{self.base_url(host)}/v2/_catalog?n={limit}",
                       scope="registry:catalog:*")
        if r.status_code != 200:
            raise self._error(r, f"registry {host}: listing its catalog")
        try:
            repos = r.json().get("repositories") or []
        except (ValueError, AttributeError):
            raise RegistryError(f"registry {host}: /v2/_catalog is not JSON") from None
        return [str(x) for x in repos]

    def login(self, host: str, user: str, password: str, identity_token: str = "") -> str:
        """Check credentials (or an identity token) against the registry before they are
        saved; the identity token to keep: the refresh token the registry's token server gave
        (asked for as dockerd asks, `offline_token=true`), or "" when it gave none."""
        self.explicit_creds[host] = (user, password)
        if identity_token:
            self.identity_tokens[host] = identity_token
        with self._lock:
            self._tokens.clear()
            self.refresh_tokens.pop(host, None)
        self._offline = True
        try:
            r = self._send("GET", host, self.base_url(host) + "/v2/", scope=None)
        finally:
            self._offline = False
        r.close()
        if r.status_code in (401, 403):
            raise AuthError(f"login to {host} failed: wrong username or password")
        if r.status_code != 200:
            raise self._error(r, f"login to {host}")
        return self.refresh_tokens.get(host) or self.identity_tokens.get(host, "")


class _Retry(Exception):
    """A download that may resume: a dropped connection, a short body, a 5xx."""


def default_config_path() -> str:
    return os.environ.get("RONGQI_REGISTRIES", "/etc/rongqi/registries.json")
