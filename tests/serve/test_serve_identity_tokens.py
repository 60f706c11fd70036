"""Identity tokens through rongqi serve, against a real loopback registry (docker-registry with
token auth) and a token server written for the tests (tests/support/registry_token.py):

- POST /auth asks the token server for a refresh token (`offline_token=true`, client_id
  "docker", as dockerd) and answers it as IdentityToken; the docker CLI keeps it in its
  config.json instead of the password;
- X-Registry-Auth / X-Registry-Config with that `identitytoken`: pulls, pushes and a build's
  FROM get their bearer tokens with OAuth2's refresh_token grant (a POST), never a password;
- `registrytoken`: sent to the registry as its bearer token, no token server asked;
- a token server that speaks only OAuth2 (GETs refused): the password grant at login.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.registry import start_registry, stop
from support.registry_token import TokenServer


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Any, TokenServer]]:
    ts = TokenServer(tmp_path, "rongqi-registry", "rongqi-issuer", "bob", "hunter2")
    reg = start_registry(tmp_path / "registry", ts.registry_auth())
    try:
        yield reg, ts
    finally:
        stop(reg.proc)
        ts.close()


def _enc(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def _grants(ts: TokenServer) -> list[tuple[str, str]]:
    return [(r["method"], r.get("grant_type") or ("basic" if r.get("account") else "anonymous"))
            for r in ts.requests]


def test_docker_login_gets_an_identity_token_that_pulls_and_pushes(
        serve: Any, token_registry: Any) -> None:
    reg, ts = token_registry
    p = serve.docker("login", "-u", "bob", "--password-stdin", reg.host, input="hunter2\n")
    assert "Login Succeeded" in p.stdout
    # the login asked for a refresh token as dockerd asks, with the credentials
    [login] = [r for r in ts.requests if r["method"] == "GET" and r.get("account")]
    assert login["offline_token"] == "true" and login["client_id"] == "docker"
    cfg = json.loads(Path(serve.dockercfg, "config.json").read_text())
    entry = cfg["auths"][reg.host]
    token = entry["identitytoken"]
    assert token in ts.refresh_tokens
    # the CLI keeps the token, not the password
    assert base64.b64decode(entry["auth"]).decode() == "bob:"
    ts.requests.clear()
    serve.docker("pull", "busybox")
    serve.docker("tag", "busybox", f"{reg.host}/tok/bb:1")
    out = serve.docker("push", f"{reg.host}/tok/bb:1").stdout
    assert "digest: sha256:" in out
    serve.docker("rmi", f"{reg.host}/tok/bb:1")
    serve.docker("pull", f"{reg.host}/tok/bb:1")
    assert serve.docker("images", "-q", f"{reg.host}/tok/bb:1").stdout.strip()
    # every token came from the refresh token, with dockerd's client_id; no password sent
    assert ts.requests and {g for g in _grants(ts)} == {("POST", "refresh_token")}
    assert {r["client_id"] for r in ts.requests} == {"docker"}
    assert all(r["refresh_token"] == token for r in ts.requests)
    # a build's FROM pulls with it too (X-Registry-Config from the CLI's config.json)
    serve.docker("rmi", f"{reg.host}/tok/bb:1")
    ts.requests.clear()
    ctx = Path(serve.dockercfg).parent / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {reg.host}/tok/bb:1\nLABEL by=token\n")
    serve.docker("build", "-t", "fromtok:1", str(ctx))
    assert ("POST", "refresh_token") in _grants(ts)
    assert ("GET", "basic") not in _grants(ts)
    serve.docker("rmi", "fromtok:1")
    # login again with the stored identity token only (no password anywhere): as dockerd,
    # OAuth2's refresh_token grant; the same token back
    ts.requests.clear()
    r = serve.http.post("/auth", json={"username": "bob", "identitytoken": token,
                                       "serveraddress": reg.host})
    assert r.status_code == 200
    assert r.json() == {"IdentityToken": token, "Status": "Login Succeeded"}
    assert _grants(ts) == [("POST", "refresh_token")]


def test_docker_py_login_and_identity_token_pull(serve: Any, token_registry: Any) -> None:
    reg, ts = token_registry
    client = serve.client()
    resp = client.login("bob", "hunter2", registry=f"http://{reg.host}", reauth=True)
    assert resp["Status"] == "Login Succeeded" and resp["IdentityToken"] in ts.refresh_tokens
    serve.docker("pull", "busybox")
    serve.docker("tag", "busybox", f"{reg.host}/py/bb:1")
    ts.requests.clear()
    auth = {"identitytoken": resp["IdentityToken"]}
    out = client.images.push(f"{reg.host}/py/bb", "1", auth_config=auth, stream=True,
                             decode=True)
    assert any("aux" in x for x in out), out
    client.images.remove(f"{reg.host}/py/bb:1")
    img = client.images.pull(f"{reg.host}/py/bb", tag="1", auth_config=auth)
    assert f"{reg.host}/py/bb:1" in img.tags
    assert {g for g in _grants(ts)} == {("POST", "refresh_token")}


def test_bad_identity_tokens_are_refused_as_dockerd_refuses(serve: Any,
                                                             token_registry: Any) -> None:
    reg, ts = token_registry
    r = serve.http.post("/auth", json={"identitytoken": "not-one", "serveraddress": reg.host})
    assert r.status_code == 401
    assert r.json()["message"] == f"login attempt to http://{reg.host}/v2/ failed with " \
                                  "status: 401 Unauthorized"
    r = serve.http.post("/images/create", params={"fromImage": f"{reg.host}/x", "tag": "1"},
                        headers={"X-Registry-Auth": _enc({"identitytoken": "not-one"})})
    assert r.status_code == 401, r.text
    assert ("POST", "refresh_token") in _grants(ts)


def test_a_registry_token_goes_to_the_registry_as_is(serve: Any, token_registry: Any) -> None:
    reg, ts = token_registry
    serve.docker("pull", "busybox")
    serve.docker("tag", "busybox", f"{reg.host}/rt/bb:1")
    push = ts.sign(["repository:rt/bb:pull,push"], grant=True)
    ts.requests.clear()
    r = serve.http.post(f"/images/{reg.host}/rt/bb/push", params={"tag": "1"},
                        headers={"X-Registry-Auth": _enc({"registrytoken": push})})
    assert r.status_code == 200 and '"aux"' in r.text, r.text
    serve.docker("rmi", f"{reg.host}/rt/bb:1")
    r = serve.http.post("/images/create", params={"fromImage": f"{reg.host}/rt/bb", "tag": "1"},
                        headers={"X-Registry-Auth": _enc({"registrytoken": push})})
    assert r.status_code == 200 and "Downloaded newer image" in r.text, r.text
    assert ts.requests == []   # the token server was never asked
    # a token for another repository is the registry's 401, as with dockerd
    r = serve.http.post("/images/create", params={"fromImage": f"{reg.host}/other", "tag": "1"},
                        headers={"X-Registry-Auth": _enc({"registrytoken": push})})
    assert r.status_code in (401, 404), r.text


def test_a_token_server_that_speaks_only_oauth2_gets_the_password_grant(
        token_registry: Any) -> None:
    from rongqi.image.auth import CredentialStore
    from rongqi.image.registry import RegistryClient
    reg, ts = token_registry
    ts.post_only = True
    client = RegistryClient(credentials=CredentialStore([]))   # plain http: it is loopback
    token = client.login(reg.host, "bob", "hunter2")
    assert token in ts.refresh_tokens
    assert _grants(ts)[-2:] == [("GET", "basic"), ("POST", "password")]
    assert ts.requests[-1]["access_type"] == "offline"
    assert ts.requests[-1]["client_id"] == "rongqi"
