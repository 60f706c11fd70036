"""A registry on loopback over TLS: https is used when it works, its certificate is checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest

from conftest import REGISTRY, _stop, free_port
from test_registry_roundtrips import rongqi

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _tls_registry(tmp):
    """docker-registry with a certificate for 127.0.0.1 signed by a CA made here."""
    if not REGISTRY:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    ssl = lambda *a: subprocess.run(["openssl", *a], cwd=tmp, check=True, capture_output=True)  # noqa: E731
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rongqi-test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr")
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "san.ext", "-out", "srv.pem")
    port = free_port()
    (tmp / "data").mkdir()
    cfg = {"version": 0.1, "log": {"level": "warn"}, "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
           "http": {"addr": f"127.0.0.1:{port}", "secret": "rongqi-test",
                    "tls": {"certificate": str(tmp / "srv.pem"), "key": str(tmp / "srv.key")}}}
    (tmp / "reg.yml").write_text(json.dumps(cfg))
    proc = subprocess.Popen([REGISTRY, "serve", str(tmp / "reg.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"https://127.0.0.1:{port}/v2/", verify=str(tmp / "ca.pem"), timeout=1)
            return proc, f"127.0.0.1:{port}"
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                pytest.fail("the TLS registry did not start")
            time.sleep(0.05)


def test_pull_over_https_checks_the_certificate(layout, rootfs, tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    proc, host = _tls_registry(tls)
    try:
        layout.image_from_dir(rootfs, "bb")
        certs = tls / "certs"  # skopeo's cert dir: CA files named *.crt, nothing else
        certs.mkdir()
        shutil.copy(tls / "ca.pem", certs / "ca.crt")
        subprocess.run(["skopeo", "copy", "--dest-cert-dir", str(certs), f"oci:{layout.path}:bb",
                        f"docker://{host}/library/busybox:tls"], check=True, capture_output=True,
                       env={"PATH": "/usr/bin:/bin", "SSL_CERT_FILE": str(tls / "ca.pem")})
        name = f"{host}/library/busybox:tls"
        # Trusting the test's CA: the pull goes over https.
        rongqi(tmp_path / "rq", "pull", "-q", name, env={"SSL_CERT_FILE": str(tls / "ca.pem")})
        assert rongqi(tmp_path / "rq", "images").stdout.splitlines()[1].split()[:2] == [
            f"{host}/library/busybox", "tls"]
        # Not trusting it: refused with one line, and no fallback to plain http.
        p = rongqi(tmp_path / "rq2", "pull", "-q", name, check=False)
        assert p.returncode == 125 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "certificate" in p.stderr.lower() or "tls" in p.stderr.lower() or "ssl" in p.stderr.lower(), p.stderr
    finally:
        _stop(proc)
