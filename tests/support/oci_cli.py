"""Calling the rongqi-oci binary from tests: stdio handled so a container never blocks the test.

A created or detached container inherits the caller's stdio: capturing it through pipes
would make subprocess wait for the container to exit, so those calls read stderr through a
file and drop stdout.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time

import pytest


def oci(binary: str, root: str, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `rongqi-oci --root ROOT ARGS...`; stdout and stderr as text."""
    detached = args and (args[0] == "create" or (args[0] == "run" and ("-d" in args or "--detach" in args)))
    if detached:
        with tempfile.TemporaryFile("w+") as err:
            r = subprocess.run([binary, "--root", root, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err, text=True, timeout=timeout)
            err.seek(0)
            r.stderr = err.read()
            r.stdout = ""
            return r
    return subprocess.run([binary, "--root", root, *args], capture_output=True, text=True, timeout=timeout,
                          input=input if input is not None else "")


def state(binary: str, root: str, cid: str) -> dict:
    r = oci(binary, root, "state", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_status(binary: str, root: str, cid: str, want: str, timeout: float = 10) -> dict:
    """Poll `state` until it says want ("does not exist" is fine while a `run` is still creating)."""
    deadline = time.monotonic() + timeout
    while True:
        r = oci(binary, root, "state", cid)
        if r.returncode == 0:
            s = json.loads(r.stdout)
            if s["status"] == want:
                return s
        if time.monotonic() > deadline:
            pytest.fail(f"container {cid} never reached {want}: {r.stdout or r.stderr}")
        time.sleep(0.05)
