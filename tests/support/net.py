"""Loopback helpers for tests that serve or reach ports: a free 127.0.0.1 port, and an HTTP
GET retried until the server answers (a published port or a container's httpd coming up)."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 10.0, pause: float = 0.1) -> str:
    """The body of url, retrying connection errors until timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
