"""engine.runtime: the in-process runtime and a runtime binary (runc, rongqi-oci) behave the
same for the engine: the same calls, states, pids and errors."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from rongqi.engine.runtime import BinaryRuntime, InProcessRuntime, RuntimeFailure, for_path
from rongqi.errors import ContainerNotFound, ContainerStateError, EngineError, RongqiError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real containers)")


@pytest.fixture(params=["in-process", "runc", "rongqi-oci"])
def runtime(request, tmp_path, oci_binary):
    root = str(tmp_path / "rt")
    if request.param == "in-process":
        rt = InProcessRuntime(root)
    elif request.param == "runc":
        if not shutil.which("runc"):
            pytest.skip("runc is not installed")
        rt = BinaryRuntime(shutil.which("runc"), root)
    else:
        rt = BinaryRuntime(oci_binary, root)
    made: list[str] = []
    rt.made = made
    yield rt
    for cid in made:
        try:
            rt.delete(cid, force=True)
        except (ContainerNotFound, RuntimeFailure):
            pass
    # The in-process runtime's inits are our children: reap whatever ended.
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _wait_status(rt, cid, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        s = rt.state(cid)
        if s["status"] == want or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


def test_a_container_goes_created_running_paused_stopped_and_is_deleted(runtime, bundle_factory,
                                                                       unique_id):
    bundle = bundle_factory(["sleep", "100"])
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = runtime.create(unique_id, bundle, stdio=(null, null, null))
    finally:
        os.close(null)
    runtime.made.append(unique_id)
    state = runtime.state(unique_id)
    assert state["status"] == "created" and state["pid"] == pid > 0
    runtime.start(unique_id)
    assert runtime.state(unique_id)["status"] == "running"
    assert pid in runtime.ps(unique_id)
    runtime.pause(unique_id)
    assert runtime.state(unique_id)["status"] == "paused"
    runtime.resume(unique_id)
    assert runtime.state(unique_id)["status"] == "running"
    assert "memory" in runtime.stats(unique_id)
    runtime.kill(unique_id, signal.SIGKILL)
    if isinstance(runtime, InProcessRuntime):
        os.waitpid(pid, 0)
    assert _wait_status(runtime, unique_id, "stopped")["status"] == "stopped"
    with pytest.raises(ContainerStateError):
        runtime.kill(unique_id, signal.SIGTERM)
    runtime.delete(unique_id)
    with pytest.raises(ContainerNotFound):
        runtime.state(unique_id)


def test_the_container_process_gets_the_given_stdio(runtime, bundle_factory, unique_id, tmp_path):
    bundle = bundle_factory(["sh", "-c", "echo out; echo err >&2"])
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    err = os.open(tmp_path / "err", os.O_WRONLY | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = runtime.create(unique_id, bundle, stdio=(null, out, err))
    finally:
        for fd in (out, err, null):
            os.close(fd)
    runtime.made.append(unique_id)
    runtime.start(unique_id)
    if isinstance(runtime, InProcessRuntime):
        os.waitpid(pid, 0)
    _wait_status(runtime, unique_id, "stopped")
    assert (tmp_path / "out").read_text() == "out\n"
    assert (tmp_path / "err").read_text() == "err\n"


def test_errors_are_the_same_kinds_for_every_runtime(runtime, tmp_path):
    with pytest.raises(ContainerNotFound):
        runtime.state("no-such-container")
    with pytest.raises(ContainerNotFound):
        runtime.kill("no-such-container", signal.SIGTERM)
    with pytest.raises(RongqiError, match="no-bundle") as info:
        runtime.create("bad", str(tmp_path / "no-bundle"))
    assert "\n" not in str(info.value)


def test_an_unknown_runtime_binary_is_one_clear_error():
    with pytest.raises(EngineError, match='could not find a working binary for runtime "nope-rt"'):
        for_path("nope-rt")
