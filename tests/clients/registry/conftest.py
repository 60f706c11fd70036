"""A real registry on loopback (Debian's docker-registry) and images built here, pushed by skopeo.

Each test gets its own registry process (storage in its temp dir, a free 127.0.0.1 port),
stopped by PID at teardown; images come from busybox-static, never from the internet.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from rongqi.image import media
from rongqi.image.archive import add_layer_file, create_image, layer_from_dir
from rongqi.image.store import ImageStore, canonical_json

from support.registry import REGISTRY, SKOPEO, Registry, free_port, htpasswd_auth  # noqa: F401
from support.registry import start_registry as _start_registry
from support.registry import stop as _stop

pytestmark = pytest.mark.clients


@pytest.fixture
def registry(tmp_path):
    reg = _start_registry(tmp_path)
    yield reg
    _stop(reg.proc)


@pytest.fixture
def basic_registry(tmp_path):
    reg = _start_registry(tmp_path, htpasswd_auth(tmp_path, "alice", "s3cret"))
    reg.user, reg.password = "alice", "s3cret"
    yield reg
    _stop(reg.proc)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A Docker token server: checks basic credentials and signs RS256 JWTs with openssl."""

    def __init__(self, tmp: Path, service: str, issuer: str, user: str, password: str):
        self.key = tmp / "token.key"
        self.cert = tmp / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(self.key), "-out", str(self.cert), "-days", "1", "-subj",
                        "/CN=rongqi-test-token"], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.service, self.issuer, self.user, self.password = service, issuer, user, password
        self.issued: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = urllib.parse.urlparse(self.path)
                params = urllib.parse.parse_qs(q.query)
                scopes = params.get("scope", [])
                authz = self.headers.get("Authorization", "")
                anonymous = not authz
                if not anonymous:
                    want = "Basic " + base64.b64encode(
                        f"{server.user}:{server.password}".encode()).decode()
                    if authz != want:
                        self.send_response(401)
                        self.end_headers()
                        return
                token = server.sign(scopes, grant=not anonymous)
                server.issued.append(" ".join(scopes))
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, scopes: list[str], grant: bool) -> str:
        access = []
        for s in scopes:
            for one in s.split(" "):
                typ, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": typ, "name": name,
                               "actions": actions.split(",") if grant else []})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": self.user if grant else "", "aud": self.service,
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(),
                  "access": access}
        signing_input = f"{_b64url(canonical_json(header))}.{_b64url(canonical_json(claims))}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def token_registry(tmp_path):
    ts = TokenServer(tmp_path, "rongqi-registry", "rongqi-issuer", "bob", "hunter2")
    reg = _start_registry(tmp_path, {"token": {
        "realm": f"http://127.0.0.1:{ts.port}/token", "service": "rongqi-registry",
        "issuer": "rongqi-issuer", "rootcertbundle": str(ts.cert)}})
    reg.user, reg.password = "bob", "hunter2"
    reg.extra["token_server"] = ts
    yield reg
    _stop(reg.proc)
    ts.close()


# -- images built by the tests ---------------------------------------------------------------------
def busybox_rootfs(dest: Path) -> Path:
    from rongqi.image.busybox import make_rootfs
    dest.mkdir(parents=True, exist_ok=True)
    make_rootfs(str(dest))
    return dest


def tar_bytes(entries: list[tuple]) -> bytes:
    """A layer from (name, data-or-None-for-dir[, kind, linkname]) tuples."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, data = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            if len(e) > 2:
                ti.type, ti.linkname = e[2], e[3]
                tf.addfile(ti)
            elif data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class Layout:
    """An OCI layout the tests fill with images (through rongqi's own store code)."""

    def __init__(self, path: Path):
        self.path = path
        self.store = ImageStore(str(path))

    def image_from_dir(self, rootfs: Path, name: str, extra_layers: list[bytes] = (),
                       arch: str | None = None) -> media.Descriptor:
        buf = io.BytesIO()
        layer_from_dir(str(rootfs), buf)
        buf.seek(0)
        layers = [add_layer_file(self.store, buf)]
        for raw in extra_layers:
            layers.append(add_layer_file(self.store, io.BytesIO(raw)))
        desc = create_image(self.store, layers, name, config={"Cmd": ["sh"]})
        if arch:
            desc = self._set_arch(desc, name, arch)
        return desc

    def image_from_layers(self, layers: list[bytes], name: str) -> media.Descriptor:
        return create_image(self.store, [add_layer_file(self.store, io.BytesIO(b))
                                         for b in layers], name)

    def _set_arch(self, desc, name, arch):
        m = self.store.manifest(desc)
        cfg = self.store.read_json(m["config"]["digest"])
        cfg["architecture"] = arch
        cfg.pop("variant", None)
        c = self.store.put_json(cfg, media.OCI_CONFIG)
        m["config"] = media.Descriptor(media.OCI_CONFIG, c.digest, c.size).to_json()
        d = self.store.put_json(m, media.OCI_MANIFEST)
        self.store.set_name(name, d)
        return d

    def index(self, name: str, entries: list[tuple[media.Descriptor, str]]) -> media.Descriptor:
        idx = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [
            media.Descriptor(media.OCI_MANIFEST, d.digest, d.size,
                             platform={"os": "linux", "architecture": arch}).to_json()
            for d, arch in entries]}
        d = self.store.put_json(idx, media.OCI_INDEX)
        self.store.set_name(name, media.Descriptor(media.OCI_INDEX, d.digest, d.size))
        return d


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path / "layout")


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
