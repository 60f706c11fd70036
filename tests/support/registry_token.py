"""A Docker token server on loopback for docker-registry's token auth (the distribution token
spec): basic credentials on GET (with `offline_token=true` a refresh token too), and OAuth2's
POST grants (refresh_token, password); it signs RS256 JWTs with openssl(1).

    ts = TokenServer(tmp, "svc", "issuer", "bob", "hunter2")
    start_registry(tmp, ts.registry_auth())     # docker-registry's `auth: token:` config
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class TokenServer:
    """Checks basic credentials (GET) or an OAuth2 grant (POST) and signs tokens granting the
    scopes asked; `requests` records what each request was, `post_only` answers GETs 405 (a
    server that speaks OAuth2 only)."""

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
        self.issued: list[str] = []                 # the scopes of each token signed
        self.requests: list[dict[str, str]] = []    # method, grant_type, client_id, ...
        self.refresh_tokens: set[str] = set()       # the ones given out (all for `user`)
        self.post_only = False
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                params = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                one = {k: v[0] for k, v in params.items()}
                server._record({"method": "GET", **one})
                if server.post_only:
                    self._answer(405, {"error": "method not allowed"})
                    return
                authz = self.headers.get("Authorization", "")
                if authz and authz != "Basic " + base64.b64encode(
                        f"{server.user}:{server.password}".encode()).decode():
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                doc = {"token": server.sign(params.get("scope", []), grant=bool(authz)),
                       "expires_in": 300}
                if authz and one.get("offline_token") == "true":
                    doc["refresh_token"] = server.new_refresh_token()
                self._answer(200, doc)

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in
                        urllib.parse.parse_qs(self.rfile.read(size).decode()).items()}
                server._record({"method": "POST", **{k: v for k, v in form.items()
                                                     if k != "password"}})
                grant = form.get("grant_type")
                ok = (grant == "refresh_token" and form.get("refresh_token")
                      in server.refresh_tokens) or \
                    (grant == "password" and form.get("username") == server.user
                     and form.get("password") == server.password)
                if not ok or not form.get("client_id"):
                    self._answer(401 if ok is False else 400, {"error": "invalid_grant"})
                    return
                doc = {"access_token": server.sign(form.get("scope", "").split(), grant=True),
                       "expires_in": 300, "scope": form.get("scope", "")}
                if grant == "password" and form.get("access_type") == "offline":
                    doc["refresh_token"] = server.new_refresh_token()
                elif grant == "refresh_token":
                    doc["refresh_token"] = form["refresh_token"]
                self._answer(200, doc)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, what: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(what)

    def new_refresh_token(self) -> str:
        tok = secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens.add(tok)
        return tok

    def registry_auth(self) -> dict[str, Any]:
        """docker-registry's auth config for this server."""
        return {"token": {"realm": f"http://127.0.0.1:{self.port}/token",
                          "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.cert)}}

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
        signing_input = f"{_b64url(_canonical(header))}.{_b64url(_canonical(claims))}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        with self._lock:
            self.issued.append(" ".join(scopes))
        return f"{signing_input}.{_b64url(sig)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
