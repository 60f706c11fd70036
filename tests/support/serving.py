"""Helpers for the Docker API service's tests (tests/serve): which docker client, and waiting
for `rongqi serve` to listen."""

from __future__ import annotations

import socket
import subprocess
import time

DOCKER = "/usr/bin/docker"  # Debian's docker.io 20.10 client (API 1.41), not /usr/local/bin's


def wait_for_socket(path: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Until `path` accepts connections (the service listens only once its routes loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"rongqi serve exited {proc.returncode} before listening")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    raise AssertionError(f"rongqi serve did not listen on {path} within {timeout}s")


def session_network(i: int) -> tuple[str, str, str]:
    """(name, subnet, bridge) of this session's network number i (i < 56): derived from the
    session's tag, so sessions running at once, the engine tests' networks (10.200-249.x) and
    the host's podman never share a subnet or a bridge name."""
    import hashlib

    from support.plugin import SESSION_TAG
    h = int(hashlib.sha256(SESSION_TAG.encode()).hexdigest(), 16)
    subnet = f"10.{150 + h % 50}.{(h >> 8) % 200 + i}.0/24"
    return f"{SESSION_TAG}-s{i}", subnet, f"rs{(h >> 16) % 0xFFFFFF:06x}{i}"
