"""Socket activation: `rongqi serve` started as systemd starts a socket-activated service (the
listening socket on fd 3, LISTEN_FDS=1, LISTEN_PID its own pid) serves on that socket, exits
when idle (--timeout) and leaves the socket file to its owner, to be started again on the next
connection. This host has no systemd as PID 1; the test does what systemd's socket unit does."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile

import httpx
import pytest

from support.engine_cli import Rongqi
from support.serving import DOCKER

pytestmark = pytest.mark.root


def _activated(rq: Rongqi, listener: socket.socket, *args: str,
               extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """rongqi serve ARGS with listener as fd 3, as systemd execs a service: the shell moves
    the socket from stdin to fd 3 and sets LISTEN_PID to its own pid, which exec keeps."""
    argv = " ".join(f"'{a}'" for a in rq.argv("serve", *args))
    script = f"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec {argv}"
    return subprocess.Popen(["sh", "-c", script], stdin=listener.fileno(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**rq.env, **(extra_env or {})})


def test_a_socket_activated_service_serves_exits_idle_and_leaves_the_socket(tmp_path):
    rq = Rongqi(tmp_path / "engine")
    d = tempfile.mkdtemp(prefix="rqa-", dir="/tmp")
    path = os.path.join(d, "docker.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(16)
        for _ in range(2):   # activated, idle exit, activated again on the same socket
            p = _activated(rq, listener, "--timeout", "2")
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=path),
                                  base_url="http://docker", timeout=30) as http:
                    assert http.get("/_ping").text == "OK"
                r = subprocess.run([DOCKER, "version", "--format", "{{.Server.APIVersion}}"],
                                   env={**os.environ, "DOCKER_HOST": f"unix://{path}"},
                                   capture_output=True, text=True, timeout=60)
                assert r.stdout.strip() == "1.41", r.stderr
                _, err = p.communicate(timeout=60)          # idle for 2 s: it exits
                assert p.returncode == 0, err
                assert f"listening on unix://{path}" in err.decode()
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            assert os.path.exists(path)                    # the socket's owner keeps it
        rq.cleanup()
    finally:
        listener.close()
        shutil.rmtree(d, ignore_errors=True)


def test_activation_refuses_an_address_and_a_socket_meant_for_another_process(tmp_path):
    rq = Rongqi(tmp_path / "engine")
    d = tempfile.mkdtemp(prefix="rqa-", dir="/tmp")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(os.path.join(d, "s"))
        listener.listen(1)
        p = _activated(rq, listener, "--socket", f"unix://{d}/other.sock")
        _, err = p.communicate(timeout=60)
        assert p.returncode == 125
        assert err.decode().startswith("Error: started by socket activation") and \
            err.decode().count("\n") == 1
        # LISTEN_PID of another process: not activated, it listens where it is told
        own = os.path.join(d, "own.sock")
        q = subprocess.Popen(rq.argv("serve", "--socket", f"unix://{own}", "--timeout", "1"),
                             env={**rq.env, "LISTEN_PID": "1", "LISTEN_FDS": "1"},
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        _, err = q.communicate(timeout=60)
        assert q.returncode == 0 and f"listening on unix://{own}" in err.decode(), err
        assert not os.path.exists(own)                     # its own socket, removed at exit
    finally:
        listener.close()
        shutil.rmtree(d, ignore_errors=True)
