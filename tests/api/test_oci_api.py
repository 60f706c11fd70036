"""rongqi.oci (oci/api.py), the runtime's Python face, on real bundles: create/start/state/kill/delete,
exec (its exit code, env, cwd, user), pause/resume/ps/list, run, and runc's errors."""

from __future__ import annotations

import os
import time

import pytest

import rongqi.oci as oci
from rongqi.errors import ContainerNotFound, ContainerStateError

pytestmark = pytest.mark.root


def _pipe_stdio() -> tuple[int, int, tuple[int, int, int]]:
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    return r, w, (null, w, w)


def test_lifecycle(bundle_factory, runtime_root, unique_id):
    bundle = bundle_factory(["sleep", "600"])
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = oci.create(unique_id, bundle, root=runtime_root, stdio=(null, null, null))
    finally:
        os.close(null)
    st = oci.state(unique_id, root=runtime_root)
    assert (st["status"], st["pid"], st["bundle"]) == ("created", pid, bundle)
    oci.start(unique_id, root=runtime_root)
    assert oci.state(unique_id, root=runtime_root)["status"] == "running"
    assert [c["id"] for c in oci.list(root=runtime_root)] == [unique_id]
    assert pid in oci.ps(unique_id, root=runtime_root)
    oci.pause(unique_id, root=runtime_root)
    assert oci.state(unique_id, root=runtime_root)["status"] == "paused"
    oci.resume(unique_id, root=runtime_root)
    r, w, stdio = _pipe_stdio()
    try:
        code = oci.exec(unique_id, ["sh", "-c", "echo $A $(pwd) $(id -u); exit 5"],
                        env={"A": "x"}, cwd="/tmp", user="7", stdio=stdio, root=runtime_root)
    finally:
        os.close(w)
        os.close(stdio[0])
    assert code == 5 and os.read(r, 100) == b"x /tmp 7\n"
    os.close(r)
    with pytest.raises(ContainerStateError):
        oci.delete(unique_id, root=runtime_root)      # running: runc refuses without force
    oci.kill(unique_id, "KILL", root=runtime_root)
    os.waitpid(pid, 0)
    for _ in range(100):
        if oci.state(unique_id, root=runtime_root)["status"] == "stopped":
            break
        time.sleep(0.05)
    oci.delete(unique_id, root=runtime_root)
    with pytest.raises(ContainerNotFound):
        oci.state(unique_id, root=runtime_root)


def test_run_returns_the_exit_code(bundle_factory, runtime_root, unique_id):
    bundle = bundle_factory(["sh", "-c", "echo hello; exit 3"])
    r, w, stdio = _pipe_stdio()
    try:
        assert oci.run(unique_id, bundle, root=runtime_root, stdio=stdio) == 3
    finally:
        os.close(w)
        os.close(stdio[0])
    assert os.read(r, 100) == b"hello\n"
    os.close(r)
    assert oci.list(root=runtime_root) == []


def test_errors_as_runc(runtime_root):
    with pytest.raises(ContainerNotFound, match="does not exist"):
        oci.start("nope", root=runtime_root)


def test_no_module_of_the_package_shadows_an_api_name():
    # Importing rongqi.oci.X sets the package's attribute X: a module named like an API
    # function (the runtime's create.py, state.py and exec.py once were) would replace it.
    import importlib
    import pkgutil

    import rongqi.oci
    import rongqi.oci.api as api

    names = [m.name for m in pkgutil.iter_modules(rongqi.oci.__path__)]
    assert not set(names) & set(api.__all__), "a module of rongqi.oci is named like its API"
    for name in names:
        importlib.import_module(f"rongqi.oci.{name}")
    for name in api.__all__:
        assert getattr(rongqi.oci, name) is getattr(api, name), name
        assert name in dir(rongqi.oci)
    assert rongqi.oci.__all__ == api.__all__   # the package's lazy list is the API's
    with pytest.raises(AttributeError):
        rongqi.oci.creat  # noqa: B018


def test_the_package_does_not_import_the_api_until_asked():
    # rongqi.oci is on rongqi-oci's start path: looking up its modules must not load api.py.
    import subprocess
    import sys

    code = ("import sys, rongqi.oci, rongqi.oci.statedir\n"
            "from rongqi.oci import creation\n"
            "assert 'rongqi.oci.api' not in sys.modules\n"
            "import rongqi.oci as oci\n"
            "assert oci.create.__module__ == 'rongqi.oci.api'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(oci.__file__)))})
