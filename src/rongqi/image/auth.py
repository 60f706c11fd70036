"""Registry credentials in docker's config.json and containers' auth.json, and WWW-Authenticate.

Reads both formats ({"auths": {host: {"auth": base64("user:pass")}}}, with "identitytoken" and
"registrytoken" where a login left them); writes them 0600.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import Iterable

from rongqi.image.errors import AuthError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                   "registry-1.docker.io")
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="a:b:pull,push"` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return scheme.lower(), params


def default_paths() -> list[str]:
    """Where podman and docker look, in their order; the first one is written by login."""
    paths = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        paths.append(os.environ["REGISTRY_AUTH_FILE"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    home = os.path.expanduser("~")
    paths.append(os.path.join(home, ".config", "containers", "auth.json"))
    docker_dir = os.environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    paths.append(os.path.join(docker_dir, "config.json"))
    return paths


def _keys_for(host: str) -> Iterable[str]:
    if host in DOCKER_HUB_KEYS:
        yield from DOCKER_HUB_KEYS
    else:
        yield host
        yield f"https://{host}"
        yield f"http://{host}"


class CredentialStore:
    """Credentials from the first file that has an entry for the registry."""

    def __init__(self, paths: list[str] | None = None):
        self.paths = paths if paths is not None else default_paths()

    def _read(self, path: str) -> dict:
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise AuthError(f"{path}: cannot read credentials: {e}") from None
        return data if isinstance(data, dict) else {}

    def get(self, host: str) -> tuple[str, str] | None:
        for path in self.paths:
            auths = self._read(path).get("auths") or {}
            for key in _keys_for(host):
                entry = auths.get(key)
                if not entry:
                    continue
                if entry.get("username") and entry.get("password"):
                    return entry["username"], entry["password"]
                if entry.get("auth"):
                    try:
                        user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
                    except (ValueError, UnicodeDecodeError):
                        raise AuthError(f"{path}: bad auth entry for {key}") from None
                    return user, pw
        return None

    def tokens(self, host: str) -> tuple[str, str]:
        """(identitytoken, registrytoken) of the first file's entry that has either: the
        OAuth2 refresh token a login returned (docker's config.json and containers-auth.json
        keep it as "identitytoken") and a bearer token for the registry itself (docker's
        "registrytoken"); ("", "") when none has."""
        for path in self.paths:
            auths = self._read(path).get("auths") or {}
            for key in _keys_for(host):
                entry = auths.get(key)
                if not isinstance(entry, dict):
                    continue
                ident = str(entry.get("identitytoken") or "")
                reg = str(entry.get("registrytoken") or "")
                if ident or reg:
                    return ident, reg
        return "", ""

    def _write(self, path: str, data: dict) -> None:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)

    def save(self, host: str, user: str, password: str, path: str | None = None) -> str:
        path = path or self.paths[0]
        data = self._read(path)
        key = DOCKER_HUB_KEYS[0] if host in DOCKER_HUB_KEYS else host
        data.setdefault("auths", {})[key] = {
            "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        self._write(path, data)
        return path

    def remove(self, host: str) -> list[str]:
        """Forget the registry in every file; returns the files changed."""
        changed = []
        for path in self.paths:
            data = self._read(path)
            auths = data.get("auths") or {}
            hit = [k for k in _keys_for(host) if k in auths]
            for k in hit:
                del auths[k]
            if hit:
                with contextlib.suppress(OSError):
                    self._write(path, data)
                    changed.append(path)
        return changed
