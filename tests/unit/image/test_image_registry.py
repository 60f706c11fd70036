"""The registry client against a fake registry (httpx.MockTransport): auth, platforms, blobs."""

from __future__ import annotations

import base64
import json
import os

import httpx
import pytest

from rongqi.image import media
from rongqi.image.auth import CredentialStore, parse_challenge
from rongqi.image.errors import AuthError, BlobVerificationError, ImageError, ManifestError
from rongqi.image.reference import parse
from rongqi.image.registry import Platform, RegistryClient, RegistryConfig, select_platform
from rongqi.image.store import ImageStore, canonical_json, sha256_digest


class FakeRegistry:
    """Serves one image (and an index) from dicts; records requests; can misbehave."""

    def __init__(self, auth: str | None = None):
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.requests: list[httpx.Request] = []
        self.auth = auth
        self.tokens_issued = 0
        self.cut_after: int | None = None  # drop the first blob response after N bytes
        self.ignore_range = False

    def add_blob(self, data: bytes) -> dict:
        d = sha256_digest(data)
        self.blobs[d] = data
        return {"mediaType": media.OCI_LAYER, "digest": d, "size": len(data)}

    def add_image(self, tag: str, layer: bytes) -> str:
        cfg = self.add_blob(canonical_json({"os": "linux", "architecture": "amd64",
                                            "rootfs": {"type": "layers", "diff_ids": []}}))
        cfg["mediaType"] = media.OCI_CONFIG
        m = canonical_json({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": cfg,
                            "layers": [self.add_blob(layer)]})
        d = sha256_digest(m)
        self.manifests[d] = self.manifests[tag] = (m, media.OCI_MANIFEST)
        return d

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/token":
            self.tokens_issued += 1
            return httpx.Response(200, json={"token": "T" + request.url.params.get("scope", "")})
        if self.auth == "bearer" and not request.headers.get("authorization", "").startswith(
                "Bearer T"):
            return httpx.Response(401, headers={"WWW-Authenticate":
                                                'Bearer realm="https://reg.test/token",'
                                                'service="reg.test",scope="repository:x:pull"'})
        if self.auth == "basic" and request.headers.get("authorization") != "Basic " + \
                base64.b64encode(b"u:p").decode():
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if path == "/v2/":
            return httpx.Response(200)
        parts = path.split("/")
        kind, obj = parts[-2], parts[-1]
        if kind == "manifests" and obj in self.manifests:
            body, mt = self.manifests[obj]
            return httpx.Response(200, content=body, headers={"Content-Type": mt})
        if kind == "blobs" and obj in self.blobs:
            data = self.blobs[obj]
            rng = request.headers.get("range")
            if rng and not self.ignore_range:
                start = int(rng.split("=")[1].rstrip("-"))
                return httpx.Response(206, content=data[start:], headers={
                    "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
            if self.cut_after is not None and len(data) > self.cut_after:
                cut, self.cut_after = self.cut_after, None
                return httpx.Response(200, stream=_Broken(data[:cut]))
            return httpx.Response(200, content=data)
        return httpx.Response(404, json={"errors": [{"code": "NOT_FOUND", "message": "no"}]})


class _Broken(httpx.SyncByteStream):
    def __init__(self, data: bytes):
        self.data = data

    def __iter__(self):
        yield self.data
        raise httpx.ReadError("connection reset")


def client_for(reg: FakeRegistry, tmp_path, **kw) -> RegistryClient:
    http = httpx.Client(transport=httpx.MockTransport(reg.handler))
    creds = CredentialStore([str(tmp_path / "auth.json")])
    return RegistryClient(http, credentials=creds, backoff=0.001, **kw)


def test_www_authenticate_with_quoted_commas_is_parsed():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/busybox:pull,push"}


def test_pull_stores_verified_blobs_and_names_the_image(tmp_path):
    reg = FakeRegistry()
    digest = reg.add_image("v1", b"layer-bytes")
    store = ImageStore(str(tmp_path / "s"))
    desc = client_for(reg, tmp_path).pull(parse("reg.test/x:v1"), store)
    assert desc.digest == digest
    assert store.resolve("reg.test/x:v1")[1].digest == digest
    assert store.read_blob(sha256_digest(b"layer-bytes")) == b"layer-bytes"


def test_bearer_token_is_fetched_once_per_scope_and_reused(tmp_path):
    reg = FakeRegistry(auth="bearer")
    reg.add_image("v1", b"L")
    store = ImageStore(str(tmp_path / "s"))
    client_for(reg, tmp_path).pull(parse("reg.test/x:v1"), store)
    assert reg.tokens_issued == 1
    token_req = next(r for r in reg.requests if r.url.path == "/token")
    assert token_req.url.params["service"] == "reg.test"
    assert token_req.url.params.get_list("scope") == ["repository:x:pull"]


def test_basic_auth_uses_saved_credentials(tmp_path):
    reg = FakeRegistry(auth="basic")
    reg.add_image("v1", b"L")
    c = client_for(reg, tmp_path)
    with pytest.raises(AuthError, match="needs a login"):
        c.pull(parse("reg.test/x:v1"), ImageStore(str(tmp_path / "s")))
    CredentialStore([str(tmp_path / "auth.json")]).save("reg.test", "u", "p")
    assert oct(os.stat(tmp_path / "auth.json").st_mode & 0o777) == "0o600"
    c.pull(parse("reg.test/x:v1"), ImageStore(str(tmp_path / "s")))


def test_corrupted_blob_is_rejected_and_not_kept(tmp_path):
    reg = FakeRegistry()
    reg.add_image("v1", b"good")
    bad = sha256_digest(b"good")
    reg.blobs[bad] = b"evil"
    store = ImageStore(str(tmp_path / "s"))
    with pytest.raises(BlobVerificationError, match="does not match"):
        client_for(reg, tmp_path).pull(parse("reg.test/x:v1"), store)
    assert not store.has_blob(bad) and os.listdir(store.ingest_dir) == []
    assert store.names() == []


def test_dropped_download_resumes_with_range(tmp_path):
    reg = FakeRegistry()
    data = os.urandom(300_000)
    reg.add_image("v1", data)
    reg.cut_after = 100_000
    store = ImageStore(str(tmp_path / "s"))
    client_for(reg, tmp_path, parallel=1).pull(parse("reg.test/x:v1"), store)
    assert store.read_blob(sha256_digest(data)) == data
    ranges = [r.headers.get("range") for r in reg.requests if "/blobs/" in r.url.path]
    assert "bytes=100000-" in ranges


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    reg = FakeRegistry()
    data = os.urandom(300_000)
    reg.add_image("v1", data)
    reg.cut_after, reg.ignore_range = 100_000, True
    store = ImageStore(str(tmp_path / "s"))
    client_for(reg, tmp_path, parallel=1).pull(parse("reg.test/x:v1"), store)
    assert store.read_blob(sha256_digest(data)) == data


def test_platform_selection_picks_os_arch_and_variant():
    idx = {"manifests": [
        {"digest": "sha256:" + "1" * 64, "size": 1, "mediaType": media.OCI_MANIFEST,
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "2" * 64, "size": 1, "mediaType": media.OCI_MANIFEST,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "sha256:" + "3" * 64, "size": 1, "mediaType": media.OCI_MANIFEST,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "sha256:" + "4" * 64, "size": 1, "mediaType": media.OCI_MANIFEST,
         "platform": {"os": "linux", "architecture": "arm64"}},
    ]}
    assert select_platform(idx, Platform.parse("linux/amd64")).digest[7] == "1"
    assert select_platform(idx, Platform.parse("linux/arm/v6")).digest[7] == "2"
    assert select_platform(idx, Platform.parse("linux/arm")).digest[7] == "3"
    assert select_platform(idx, Platform.parse("linux/arm64/v8")).digest[7] == "4"
    with pytest.raises(ManifestError, match="no image for platform linux/s390x"):
        select_platform(idx, Platform.parse("linux/s390x"))


def test_index_is_resolved_to_the_wanted_platform(tmp_path):
    reg = FakeRegistry()
    amd = reg.add_image("amd", b"amd64-layer")
    arm = reg.add_image("arm", b"arm64-layer")
    idx = canonical_json({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [
        {"mediaType": media.OCI_MANIFEST, "digest": amd, "size": len(reg.manifests[amd][0]),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": media.OCI_MANIFEST, "digest": arm, "size": len(reg.manifests[arm][0]),
         "platform": {"os": "linux", "architecture": "arm64"}}]})
    reg.manifests["multi"] = (idx, media.OCI_INDEX)
    store = ImageStore(str(tmp_path / "s"))
    got = client_for(reg, tmp_path).pull(parse("reg.test/x:multi"), store,
                                         platform=Platform.parse("linux/arm64"))
    assert got.digest == arm
    assert store.has_blob(sha256_digest(b"arm64-layer"))
    assert not store.has_blob(sha256_digest(b"amd64-layer"))


def test_plain_http_only_for_insecure_or_loopback_registries():
    cfg = RegistryConfig(insecure={"reg.lan:5000"})
    assert cfg.allows_http("reg.lan:5000")
    assert cfg.allows_http("127.0.0.1:5000") and cfg.allows_http("localhost:1")
    assert cfg.allows_http("[::1]:5000")
    assert not cfg.allows_http("example.com")
    assert not RegistryConfig(loopback_plain_http=False).allows_http("127.0.0.1:5000")


def test_a_blocked_prefix_refuses_the_pull_before_any_request_even_to_a_mirror(tmp_path):
    reg = FakeRegistry()
    reg.add_image("1", b"layer")
    conf = tmp_path / "registries.json"
    conf.write_text(json.dumps({"blocked": ["reg.test/team", "*.blocked.test"],
                                "mirrors": {"reg.test": ["mirror.test"]}}))
    cfg = RegistryConfig.load(str(conf))
    client = client_for(reg, tmp_path, config=cfg)
    store = ImageStore(str(tmp_path / "s"))
    from rongqi.image.errors import RegistryError
    for name in ("reg.test/team/x:1", "reg.test/team/sub/y:1", "a.blocked.test/x:1"):
        with pytest.raises(RegistryError) as e:
            client.pull(parse(name), store)
        assert str(e.value).endswith(f"is blocked in {conf}")
    with pytest.raises(RegistryError, match="registry reg.test/team is blocked"):
        client.tags(parse("reg.test/team/x"))
    assert reg.requests == []
    # whole components only: reg.test/teammate is not under reg.test/team
    assert cfg.blocking(parse("reg.test/teammate/x:1")) is None
    assert cfg.blocking(parse("blocked.test/x:1")) is None  # *.host: its subdomains
    assert client.pull(parse("reg.test/x:1"), store).digest
    assert RegistryConfig().blocking(parse("busybox")) is None
    conf.write_text(json.dumps({"blocked": "docker.io"}))
    with pytest.raises(ImageError, match="blocked: expected a list"):
        RegistryConfig.load(str(conf))


def test_https_failure_is_not_downgraded_for_a_secure_registry(tmp_path):
    def handler(request):
        if request.url.scheme == "https":
            raise httpx.ConnectError("tls failed")
        return httpx.Response(200)
    c = RegistryClient(httpx.Client(transport=httpx.MockTransport(handler)),
                       credentials=CredentialStore([]))
    from rongqi.image.errors import RegistryError
    with pytest.raises(RegistryError, match="only for registries configured as insecure"):
        c.base_url("example.com")
    assert c.base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_credentials_are_read_from_docker_config_and_auth_json(tmp_path):
    docker = tmp_path / "config.json"
    docker.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "auth": base64.b64encode(b"hub:pw").decode()}}}))
    podman = tmp_path / "auth.json"
    podman.write_text(json.dumps({"auths": {"quay.io": {
        "auth": base64.b64encode(b"q:pw2").decode()}}}))
    cs = CredentialStore([str(podman), str(docker)])
    assert cs.get("registry-1.docker.io") == ("hub", "pw")
    assert cs.get("quay.io") == ("q", "pw2")
    assert cs.get("other") is None
    assert cs.remove("quay.io") == [str(podman)] and cs.get("quay.io") is None
