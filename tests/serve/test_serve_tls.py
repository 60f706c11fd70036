"""`rongqi serve` on tcp with TLS, as dockerd's --tlsverify / --tls: Debian's docker CLI and
docker-py with client certificates, clients without one (or with another CA's) refused as
dockerd refuses them, plain HTTP answered as Go's server answers it, dockerd's warnings and
its wording for key pairs and CA files it cannot use.

The certificates are made here with openssl(1) (the `cryptography` package is not in the
venv): a CA, the server's (SAN 127.0.0.1, localhost), a client's, and another CA's client.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.engine_cli import Rongqi
from support.serving import DOCKER

pytestmark = pytest.mark.skipif(not os.path.exists(DOCKER), reason="needs docker.io's client")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: Any) -> Path:
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "otherca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{ca}-key.pem", "-days", "2", "-subj", f"/CN={ca}",
                 "-out", f"{ca}.pem", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("other", "otherca", "client.ext")):
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{name}-key.pem", "-subj", f"/CN={name}",
                 "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                 f"{ca}-key.pem", "-CAcreateserial", "-days", "2", "-extfile", ext,
                 "-out", f"{name}-cert.pem", cwd=d)
    return d


class TLSService:
    """`rongqi serve -H tcp://127.0.0.1:0` with the given TLS flags; its port from its line."""

    def __init__(self, rq: Rongqi, log: Path, certs: Path, *flags: str):
        self.rongqi = rq
        self.certs = certs
        self.logpath = log
        self._log = open(log, "wb")
        self.proc = rq.popen("serve", "-H", "tcp://127.0.0.1:0", "--timeout", "0", *flags,
                             stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        while "listening on" not in self.log():
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)
        line = next(x for x in self.log().splitlines() if "listening on" in x)
        self.port = int(line.split("tcp://127.0.0.1:", 1)[1].split()[0])
        self.host = f"tcp://127.0.0.1:{self.port}"
        self.dockercfg = str(log.parent / "docker-config")
        os.makedirs(self.dockercfg, exist_ok=True)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.logpath.read_text(errors="replace")

    def docker(self, *args: str, cert: str | None = "client", verify: bool = True,
               input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        c = self.certs
        # --tls alone: encrypted, the server not verified (the CLI still wants a CA file)
        tls = ["--tlsverify" if verify else "--tls", "--tlscacert", str(c / "ca.pem")]
        if cert:
            tls += ["--tlscert", str(c / f"{cert}-cert.pem"), "--tlskey", str(c / f"{cert}-key.pem")]
        env = {**os.environ, "DOCKER_CONFIG": self.dockercfg}
        env.pop("DOCKER_HOST", None)
        p = subprocess.run([DOCKER, *tls, "-H", self.host, *args], env=env, input=input,
                           capture_output=True, text=True, timeout=120,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout}{p.stderr}")
        return p

    def close(self) -> None:
        try:
            self.rongqi.cleanup()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._log.close()


@pytest.fixture
def tls_serve(request: Any, tmp_path: Path, certs: Path) -> Iterator[TLSService]:
    c = certs
    flags = getattr(request, "param", ("--tlsverify", "--tlscacert", str(c / "ca.pem")))
    svc = TLSService(Rongqi(tmp_path / "engine"), tmp_path / "serve.log", c, *flags,
                     "--tlscert", str(c / "server-cert.pem"), "--tlskey", str(c / "server-key.pem"))
    try:
        yield svc
    finally:
        svc.close()
        assert "Traceback" not in svc.log(), svc.log()


def _no_ca_bundle_env(monkeypatch: Any) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (set on this host) override a
    # session's own CA file, the one docker-py's TLSConfig gives it
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


def test_docker_cli_and_docker_py_work_over_tlsverify(tls_serve: TLSService,
                                                      monkeypatch: Any) -> None:
    _no_ca_bundle_env(monkeypatch)
    s = tls_serve
    assert "listening on tcp://127.0.0.1:" in s.log() and "with TLS, client certificates " \
        "verified" in s.log()
    assert "WARNING" not in s.log()  # dockerd warns only without --tlsverify
    out = s.docker("version", "--format", "{{.Server.APIVersion}}").stdout
    assert out.strip() == "1.41"
    assert s.docker("run", "--rm", "busybox", "echo", "over tls").stdout == "over tls\n"
    # stdin to its end (the CLI half-closes the TCP stream under TLS) and the output after it
    assert s.docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo end",
                    input="line 1\nline 2\n").stdout == "line 1\nline 2\nend\n"
    s.docker("run", "-d", "--name", "tlsd", "busybox", "sleep", "600")
    assert "tlsd" in s.docker("ps", "--format", "{{.Names}}").stdout.split()
    assert s.docker("exec", "tlsd", "echo", "in").stdout == "in\n"

    import docker
    tls = docker.tls.TLSConfig(client_cert=(str(s.certs / "client-cert.pem"),
                                            str(s.certs / "client-key.pem")),
                               ca_cert=str(s.certs / "ca.pem"), verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{s.port}", tls=tls,
                                 version="1.41", timeout=120)
    try:
        assert client.ping()
        assert client.containers.run("busybox", ["echo", "py"], remove=True) == b"py\n"
        c = client.containers.get("tlsd")
        assert c.exec_run(["echo", "exec"]).output == b"exec\n"
        c.remove(force=True)
    finally:
        client.close()


def test_clients_without_a_certificate_of_the_ca_are_refused(tls_serve: TLSService,
                                                            monkeypatch: Any) -> None:
    _no_ca_bundle_env(monkeypatch)
    s = tls_serve
    p = s.docker("ps", cert=None, check=False)
    assert p.returncode == 1
    assert "remote error: tls: certificate required" in p.stderr
    p = s.docker("ps", cert="other", check=False)
    assert p.returncode == 1
    assert "remote error: tls: unknown certificate authority" in p.stderr
    # plain HTTP on the TLS port: Go's http server's answer, which the CLI prints
    env = {**os.environ, "DOCKER_CONFIG": s.dockercfg}
    p = subprocess.run([DOCKER, "-H", s.host, "ps"], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert p.stderr.strip() == "Error response from daemon: Client sent an HTTP request to " \
                               "an HTTPS server."
    # docker-py: without a certificate, and with another CA's
    import docker
    import requests
    for cert in (None, ("other-cert.pem", "other-key.pem")):
        tls = docker.tls.TLSConfig(
            client_cert=None if cert is None else tuple(str(s.certs / x) for x in cert),
            ca_cert=str(s.certs / "ca.pem"), verify=True)
        client = docker.APIClient(base_url=f"https://127.0.0.1:{s.port}", tls=tls,
                                  version="1.41", timeout=30)
        try:
            with pytest.raises((requests.exceptions.SSLError,
                                requests.exceptions.ConnectionError)):
                client.ping()
        finally:
            client.close()
    # a raw TLS client without a certificate: the handshake's alert (TLS 1.3: on first read)
    ctx = ssl.create_default_context(cafile=str(s.certs / "ca.pem"))
    import socket
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
            with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
                t.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
                t.recv(100)
    log = s.log()
    assert "TLS handshake error from 127.0.0.1:" in log
    assert "tls: client didn't provide a certificate" in log
    assert "tls: failed to verify certificate: x509:" in log
    # the service goes on serving the clients that have a certificate
    assert s.docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.41"


@pytest.mark.parametrize("tls_serve", [("--tls",)], indirect=True)
def test_tls_without_verify_takes_any_client_and_warns_as_dockerd(tls_serve: TLSService) -> None:
    s = tls_serve
    log = s.log()
    host = 'host="tcp://127.0.0.1:0"'
    assert f"WARNING: Binding to IP address without --tlsverify is insecure and gives root " \
           f"access on this machine to everyone who has access to your network. {host}" in log
    assert "WARNING: Binding to an IP address, even on localhost, can also give access to " \
           f"scripts run in a browser. Be safe out there! {host}" in log
    assert "listening on tcp://127.0.0.1:" in log and "with TLS (" in log
    # the docker CLI's --tls: encrypted, no certificate of its own, the server not verified
    p = s.docker("version", "--format", "{{.Server.APIVersion}}", cert=None, verify=False)
    assert p.stdout.strip() == "1.41"


def _serve_fails(tmp_path: Path, *args: str) -> list[str]:
    rq = Rongqi(tmp_path / "engine")
    p = subprocess.run(rq.argv("serve", *args), env=rq.env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 125, p.stderr
    assert "Traceback" not in p.stderr
    return p.stderr.strip().splitlines()


def test_key_pairs_and_ca_files_it_cannot_use_are_dockerds_one_line(tmp_path: Path,
                                                                    certs: Path) -> None:
    c = certs
    tcp = ("-H", "tcp://127.0.0.1:0")
    missing = str(tmp_path / "nope.pem")
    good = ("--tlscert", str(c / "server-cert.pem"), "--tlskey", str(c / "server-key.pem"))
    lines = _serve_fails(tmp_path, *tcp, "--tlsverify", "--tlscacert", str(c / "ca.pem"),
                         "--tlscert", missing, "--tlskey", str(c / "server-key.pem"))
    assert lines[-1] == f'Error: Could not load X509 key pair (cert: "{missing}", key: ' \
                        f'"{c / "server-key.pem"}"): open {missing}: no such file or directory'
    # a key that is not the certificate's
    lines = _serve_fails(tmp_path, *tcp, "--tls", "--tlscert", str(c / "server-cert.pem"),
                         "--tlskey", str(c / "client-key.pem"))
    assert lines[-1].startswith('Error: Error reading X509 key pair (cert: "')
    assert lines[-1].endswith(". Make sure the key is not encrypted.")
    lines = _serve_fails(tmp_path, *tcp, "--tlsverify", "--tlscacert", missing, *good)
    assert lines[-1] == f'Error: Could not read CA certificate "{missing}": open {missing}: ' \
                        "no such file or directory"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    lines = _serve_fails(tmp_path, *tcp, "--tlsverify", "--tlscacert", str(junk), *good)
    assert lines[-1] == f'Error: failed to append certificates from PEM file: "{junk}"'
    # dockerd's defaults: $DOCKER_CERT_PATH/{ca,cert,key}.pem
    rq = Rongqi(tmp_path / "engine")
    p = subprocess.run(rq.argv("serve", *tcp, "--tlsverify"),
                       env={**rq.env, "DOCKER_CERT_PATH": str(tmp_path)},
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 125
    assert p.stderr.strip().splitlines()[-1] == \
        f'Error: Could not load X509 key pair (cert: "{tmp_path}/cert.pem", key: ' \
        f'"{tmp_path}/key.pem"): open {tmp_path}/cert.pem: no such file or directory'


def test_unverified_tcp_off_loopback_is_refused_unless_asked_for(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: nothing is ever heard there
    lines = _serve_fails(tmp_path, "--socket", "tcp://192.0.2.1:2375")
    assert lines[0].startswith("WARNING: Binding to IP address without --tlsverify is insecure")
    assert lines[-1] == "Error: binding to tcp://192.0.2.1:2375 without --tlsverify is " \
                        "refused: it gives root on this machine to whoever can reach it; you " \
                        "can override this by explicitly specifying '--tls=false' or " \
                        "'--tlsverify=false'"
    # asked for: the warnings, then the bind (which fails here)
    lines = _serve_fails(tmp_path, "--socket", "tcp://192.0.2.1:2375", "--tls=false")
    assert lines[0].startswith("WARNING: Binding to IP address without --tlsverify")
    assert lines[-1] == "Error: cannot listen on tcp://192.0.2.1:2375: Cannot assign " \
                        "requested address"


def test_a_silent_tls_client_blocks_no_one(certs: Path, monkeypatch: Any) -> None:
    import socket
    import threading

    import httpx

    from rongqi.serve.app import App
    from rongqi.serve.http import Address, Server, listen
    from rongqi.serve.tls import TLSOptions, server_context

    c = certs
    ctx = server_context(TLSOptions(cert=str(c / "server-cert.pem"),
                                    key=str(c / "server-key.pem"),
                                    cacert=str(c / "ca.pem"), verify=True))
    s = listen(Address("tcp://127.0.0.1:0"))
    port = s.getsockname()[1]
    srv = Server(s, App(lambda: None), tls=ctx)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    silent = socket.create_connection(("127.0.0.1", port), timeout=30)  # never says hello
    try:
        client = ssl.create_default_context(cafile=str(c / "ca.pem"))
        client.load_cert_chain(str(c / "client-cert.pem"), str(c / "client-key.pem"))
        with httpx.Client(verify=client, timeout=30) as h:
            for _ in range(3):  # keep-alive over the relay
                assert h.get(f"https://127.0.0.1:{port}/_ping").text == "OK"
    finally:
        silent.close()
        srv.stop()
        t.join(10)
