"""Run a function in a forked child, so that what it does to its process (capabilities,
seccomp filters, credentials) never touches the test process itself."""

from __future__ import annotations

import json
import os


def read_all(fd: int) -> bytes:
    """Read fd to its end and close it."""
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    os.close(fd)
    return out


def run_forked(fn) -> tuple[dict | None, int]:
    """fn() in a forked child: ({"ok": result} or {"error": text}, wait status).

    The result must be JSON-able; None when the child died before it could report.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                data = {"ok": fn()}
            except BaseException as e:  # the child reports everything; pytest sees it in the parent
                data = {"error": f"{type(e).__name__}: {e}"}
            os.write(w, json.dumps(data).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = read_all(r)
    _, status = os.waitpid(pid, 0)
    return (json.loads(out) if out else None), status
