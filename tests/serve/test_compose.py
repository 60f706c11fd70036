"""docker-compose 1.29 (Debian's, with its own docker-py 5.0.3) drives rongqi serve: a two-service
project (a busybox httpd and a client that reaches it by service name) on a user network, with
a named volume and a port published on 127.0.0.1; `ps`, `logs`, `exec -T`, and `down -v`
leaving no container, network or volume (the leak check looks at the rest).

The network has this session's subnet and bridge name; aardvark's upstream is 127.0.0.1
(RONGQI_NETWORK_DNS), so no name leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from support.net import free_port, http_get
from support.serving import session_network

COMPOSE = "/usr/bin/docker-compose"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not os.access(COMPOSE, os.X_OK),
                       reason="docker-compose is not installed (Debian's docker-compose)"),
    pytest.mark.skipif(not os.access("/usr/lib/podman/netavark", os.X_OK),
                       reason="netavark is not installed"),
]


@pytest.fixture(autouse=True)
def _local_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RONGQI_NETWORK_DNS", "127.0.0.1")




PROJECT_FILE = """\
version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www"]
    volumes: ["site:/www"]
    networks: ["front"]
    ports: ["127.0.0.1:{port}:80"]
  client:
    image: busybox
    depends_on: ["web"]
    networks: ["front"]
    command: ["sh", "-c", "until wget -q -O /tmp/got http://web/index.html; do sleep 0.2; done; echo client got: $$(cat /tmp/got); exec sleep 600"]
networks:
  front:
    driver: bridge
    driver_opts:
      com.docker.network.bridge.name: {bridge}
    ipam:
      config:
        - subnet: {subnet}
volumes:
  site: {{}}
"""


class Compose:
    def __init__(self, serve, project_dir: Path, project: str):
        self.serve = serve
        self.dir = project_dir
        self.project = project

    def __call__(self, *args: str, check: bool = True, timeout: float = 240,
                 cli: bool = False) -> subprocess.CompletedProcess:
        # exec goes through docker-py's API calls, or (cli) through the docker CLI compose
        # finds on PATH: Debian's 20.10 client first
        env = {**self.serve.env, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        if not cli:
            env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"
        p = subprocess.run([COMPOSE, "--ansi", "never", "-p", self.project, *args], cwd=self.dir,
                           env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout}{p.stderr}\n--- rongqi serve's log:\n"
                                 f"{self.serve.log()[-6000:]}")
        return p




def test_compose_up_ps_logs_exec_down(serve, tmp_path: Path) -> None:
    name, subnet, bridge = session_network(10)
    project = name.replace("-", "").lower()[-20:]
    port = free_port()
    (tmp_path / "docker-compose.yml").write_text(
        PROJECT_FILE.format(port=port, subnet=subnet, bridge=bridge))
    compose = Compose(serve, tmp_path, project)
    try:
        compose("up", "-d")

        # the published port answers on the host's loopback
        assert http_get(f"http://127.0.0.1:{port}/index.html", timeout=30) == "hello from web\n"
        # the client reached the server by its service name
        deadline = time.monotonic() + 30
        while "client got: hello from web" not in (logs := compose("logs", "client").stdout):
            assert time.monotonic() < deadline, logs
            time.sleep(0.3)

        ps = compose("ps").stdout
        for svc in ("web", "client"):
            line = next((ln for ln in ps.splitlines() if f"{project}_{svc}_1" in ln), "")
            assert " Up " in f" {line} ", ps
        assert f"127.0.0.1:{port}->80/tcp" in ps, ps

        out = compose("exec", "-T", "web", "cat", "/www/index.html").stdout
        assert out == "hello from web\n"
        p = compose("exec", "-T", "client", "sh", "-c", "exit 3", check=False)
        assert p.returncode == 3, p.stdout + p.stderr
        out = compose("exec", "-T", "client", "wget", "-q", "-O", "-", "http://web/index.html",
                      cli=True).stdout
        assert out == "hello from web\n"

        # what compose made, as docker sees it
        (net,) = json.loads(serve.docker("network", "inspect", f"{project}_front").stdout)
        assert net["IPAM"]["Config"][0]["Subnet"] == subnet
        assert net["Labels"]["com.docker.compose.project"] == project
        assert len(net["Containers"]) == 2
        (vol,) = json.loads(serve.docker("volume", "inspect", f"{project}_site").stdout)
        assert vol["Labels"]["com.docker.compose.volume"] == "site"
        with open(os.path.join(vol["Mountpoint"], "index.html")) as f:
            assert f.read() == "hello from web\n"

        # up again: nothing to recreate, the network and volume pass compose's checks
        p = compose("up", "-d")
        assert "is up-to-date" in p.stderr, p.stderr
    finally:
        down = compose("down", "-v", "--timeout", "1", check=False)
    assert down.returncode == 0, down.stdout + down.stderr + serve.log()[-6000:]
    assert serve.docker("ps", "-aq").stdout.split() == []
    assert serve.docker("network", "ls", "--format", "{{.Name}}").stdout.split() == ["bridge"]
    assert serve.docker("volume", "ls", "-q").stdout.split() == []
    assert not os.path.exists(f"/sys/class/net/{bridge}")
