"""A real registry on loopback (Debian's docker-registry) for the tests that pull and push:
its own process, storage in the test's temp dir, a free 127.0.0.1 port, stopped by PID.

tests/clients/registry (its fixtures) and tests/serve start theirs with start_registry().
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support.net import free_port

REGISTRY = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")




@dataclass
class Registry:
    host: str
    storage: Path
    proc: subprocess.Popen
    user: str | None = None
    password: str | None = None
    log: Path | None = None
    extra: dict = field(default_factory=dict)

    def blob_data_path(self, digest: str) -> Path:
        h = digest.partition(":")[2]
        return self.storage / "docker/registry/v2/blobs/sha256" / h[:2] / h / "data"

    def skopeo_push(self, layout: str, name: str, repo: str, *, all_: bool = False,
                    extra: tuple[str, ...] = ()) -> None:
        argv = [SKOPEO, "copy", "-q", "--dest-tls-verify=false", *extra]
        if all_:
            argv.append("--all")
        if self.user:
            argv += ["--dest-creds", f"{self.user}:{self.password}"]
        argv += [f"oci:{layout}:{name}", f"docker://{self.host}/{repo}"]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)


def start_registry(tmp: Path, auth: dict | None = None) -> Registry:
    if not REGISTRY:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    storage = tmp / "registry-data"
    storage.mkdir(parents=True, exist_ok=True)
    cfg = {"version": 0.1, "log": {"level": "warn"},
           "storage": {"filesystem": {"rootdirectory": str(storage)},
                       "delete": {"enabled": True}},
           "http": {"addr": f"127.0.0.1:{port}", "secret": "rongqi-test"}}
    if auth:
        cfg["auth"] = auth
    conf = tmp / f"registry-{port}.yml"
    conf.write_text(json.dumps(cfg))  # JSON is YAML
    log = tmp / f"registry-{port}.log"
    proc = subprocess.Popen([REGISTRY, "serve", str(conf)], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"registry did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    return Registry(f"127.0.0.1:{port}", storage, proc, log=log)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def htpasswd_auth(tmp: Path, user: str, password: str) -> dict:
    """The registry's auth config for one basic-auth user (skips without htpasswd)."""
    htpasswd = shutil.which("htpasswd")
    if not htpasswd:
        pytest.skip("htpasswd is not installed (apt-get install apache2-utils)")
    pw = tmp / "htpasswd"
    out = subprocess.run([htpasswd, "-Bbn", user, password], check=True,
                         capture_output=True, text=True).stdout
    pw.write_text(out)
    return {"htpasswd": {"realm": "rongqi-test", "path": str(pw)}}
