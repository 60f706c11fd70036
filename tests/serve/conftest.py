"""Fixtures for the Docker API's tests: `serve` starts `rongqi serve` on a unix socket of its own,
over an engine of its own (root, run root, runtime root under the test's tmp dir), and gives
the test real clients for it: /usr/bin/docker (Debian's 20.10), docker-py and raw httpx.

    def test_x(serve):
        serve.docker("version")
        assert serve.client().ping()
        assert serve.http.get("/_ping").text == "OK"

On teardown every container, network and volume the engine has is removed, the service is
stopped with SIGTERM, and a traceback in its log fails the test (a bug answered 500).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.engine_cli import Rongqi

from support.serving import DOCKER, wait_for_socket


class Service:
    """A running `rongqi serve` and the clients that talk to it."""

    def __init__(self, rq: Rongqi, sockdir: str, logpath: Path, extra: tuple[str, ...] = ()):
        self.rongqi = rq
        self.root = rq.root
        # unix socket paths are limited to 108 bytes: a short directory, not tmp_path
        self.socket = os.path.join(sockdir, "docker.sock")
        self.host = f"unix://{self.socket}"
        self.logpath = logpath
        self.dockercfg = os.path.join(sockdir, "docker-config")
        os.makedirs(self.dockercfg)
        self._log = open(logpath, "wb")
        self.proc = rq.popen("serve", "--socket", self.host, "--timeout", "0", *extra,
                             stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        wait_for_socket(self.socket, self.proc)
        self.http = httpx.Client(transport=httpx.HTTPTransport(uds=self.socket),
                                 base_url="http://docker", timeout=60)
        self._clients: list[Any] = []

    @property
    def env(self) -> dict[str, str]:
        """The environment docker clients run in: this service, no user's config."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": self.dockercfg}

    def docker(self, *args: str, input: str | bytes | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess:
        """/usr/bin/docker ARGS with DOCKER_HOST set; text output unless input is bytes."""
        text = not isinstance(input, bytes)
        p = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=text,
                           input=input, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout}{p.stderr}")
        return p

    def client(self, **kw: Any) -> Any:
        """A docker-py DockerClient on this service, API 1.41 unless version= says otherwise."""
        import docker
        kw.setdefault("version", "1.41")
        kw.setdefault("timeout", 120)
        c = docker.DockerClient(base_url=self.host, **kw)
        self._clients.append(c)
        return c

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.logpath.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the service and wait for it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"rongqi serve did not exit {timeout}s after {sig}")
        return self.proc.returncode

    def _prune(self) -> None:
        """The networks and volumes left once the containers are gone: what `network prune`
        and `volume prune` do, in this process (two CLI starts less per test)."""
        from rongqi.engine import Engine
        from rongqi.engine.networks import NetworkStore
        e = Engine(self.root, self.rongqi.runroot, runtime_root=self.rongqi.runtime_root)
        if os.path.isdir(os.path.join(self.root, "networks")):
            NetworkStore(e.root).prune(e)
        if os.path.isdir(os.path.join(self.root, "volumes")):
            e.volumes.prune(e)

    def close(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - a client already closed is fine
                pass
        self.http.close()
        try:
            self.rongqi.cleanup()
            self._prune()
        finally:
            self.stop()
            self._log.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Service]:
    sockdir = tempfile.mkdtemp(prefix="rqs-", dir="/tmp")
    svc = Service(Rongqi(tmp_path / "engine"), sockdir, tmp_path / "serve.log")
    try:
        yield svc
    finally:
        try:
            svc.close()
        finally:
            shutil.rmtree(sockdir, ignore_errors=True)
        log = svc.log()
        if "Traceback" in log:
            pytest.fail(f"rongqi serve logged a traceback:\n{log}")
