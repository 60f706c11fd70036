"""rongqi.oci's public Python face: the low-level runtime on OCI bundles (create, start,
state, kill, delete, exec, pause, resume, ps, list, and run = all of them in one call).

What `rongqi-oci` (runc's command line) does, as typed functions in this process; each is a
thin call into rongqi.oci's own modules (creation, statedir, execution, cgroup_ops), the same code
the command line and the engine's in-process runtime (oci/inprocess.py) run. Safe to call
from several threads at once: stdio goes to the container's process only, this process's
fds 0-2 never change. `root` is the state directory
(`rongqi-oci --root`; default /run/rongqi, an ordinary user's $XDG_RUNTIME_DIR/rongqi).
The container's init is a child of the calling process: wait for it with os.waitpid.

    import rongqi.oci as oci          # the package exposes these names lazily (oci/__init__.py);
                                      # `import rongqi.oci.api as oci` works as well
"""

from __future__ import annotations

import builtins
import os
import signal as _signal
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["create", "start", "state", "kill", "delete", "exec", "pause", "resume", "ps",
           "list", "run", "default_root", "Stdio"]

Stdio = tuple[int, int, int]


def default_root() -> str:
    """rongqi-oci's default --root: /run/rongqi (root) or $XDG_RUNTIME_DIR/rongqi."""
    from rongqi.oci.cli import default_root as d
    return d()


def _root(root: str | None) -> str:
    return os.path.abspath(root) if root else default_root()


def _runtime(root: str | None) -> Any:
    from rongqi.oci.inprocess import InProcessRuntime
    return InProcessRuntime(_root(root))


def _signum(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    name = sig.upper()
    if name.isdigit():
        return int(name)
    return int(getattr(_signal, name if name.startswith("SIG") else "SIG" + name))


def create(container_id: str, bundle: str, *, root: str | None = None, pid_file: str = "",
           console_socket: str = "", stdio: Stdio | None = None) -> int:
    """`rongqi-oci create`: the container made from bundle/config.json, its init waiting
    for start; returns the init's pid. stdio: the fds the process gets as 0, 1, 2 (default
    this process's own)."""
    return int(_runtime(root).create(container_id, os.path.abspath(bundle),
                                     console_socket=console_socket, pid_file=pid_file,
                                     stdio=stdio))


def start(container_id: str, *, root: str | None = None) -> None:
    """`rongqi-oci start`: the created container's process runs its program."""
    _runtime(root).start(container_id)


def state(container_id: str, *, root: str | None = None) -> dict[str, Any]:
    """`rongqi-oci state`: the OCI state ({"ociVersion", "id", "status", "pid", "bundle",
    "annotations", ...}); status is creating, created, running, paused or stopped."""
    return dict(_runtime(root).state(container_id))


def kill(container_id: str, signal: int | str = "SIGTERM", *, all: bool = False,
         root: str | None = None) -> None:
    """`rongqi-oci kill`: a signal (number or name) to the init, or with all to every
    process of the container's cgroup."""
    _runtime(root).kill(container_id, _signum(signal), all)


def delete(container_id: str, *, force: bool = False, root: str | None = None) -> None:
    """`rongqi-oci delete`: the stopped container's state, cgroup and namespaces gone; with
    force a running one is killed first."""
    _runtime(root).delete(container_id, force)


def pause(container_id: str, *, root: str | None = None) -> None:
    """`rongqi-oci pause`: every process of the container frozen (the freezer cgroup)."""
    _runtime(root).pause(container_id)


def resume(container_id: str, *, root: str | None = None) -> None:
    """`rongqi-oci resume`: thawed again."""
    _runtime(root).resume(container_id)


def ps(container_id: str, *, root: str | None = None) -> builtins.list[int]:
    """`rongqi-oci ps --format json`: the host pids of the container's processes."""
    return [int(p) for p in _runtime(root).ps(container_id)]


def list(*, root: str | None = None) -> builtins.list[dict[str, Any]]:
    """`rongqi-oci list --format json`: every container's state under root."""
    from rongqi.errors import ContainerNotFound
    from rongqi.oci import statedir as statemod
    r = _root(root)
    out = []
    for cid in statemod.list_ids(r):
        try:
            out.append(dict(statemod.load(r, cid).oci_state()))
        except ContainerNotFound:
            continue   # deleted while we listed
    return out


def exec(container_id: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
         cwd: str = "", user: str = "", detach: bool = False, stdio: Stdio | None = None,
         root: str | None = None) -> int:
    """`rongqi-oci exec`: args run in the running container, with the container's process
    (its user, capabilities, seccomp, cwd) changed by env, cwd and user ("UID[:GID]").
    Returns the exit code, or with detach the new process's pid (our child: waitpid it)."""
    from rongqi.oci.execution import ExecOptions, exec_process
    make: Any = ExecOptions   # runc's flags as attributes (the class is untyped)
    o = make(args=[str(a) for a in args], env=[f"{k}={v}" for k, v in (env or {}).items()],
             cwd=cwd or None, user=user or None, detach=True, stdio=stdio)
    pid = int(exec_process(_root(root), container_id, o))
    if detach:
        return pid
    return _wait(pid)


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run(container_id: str, bundle: str, *, root: str | None = None,
        stdio: Stdio | None = None) -> int:
    """`rongqi-oci run`: create, start, wait for the init, delete; its exit code (128+N for
    a signal). The container is deleted however the wait ends."""
    pid = create(container_id, bundle, root=root, stdio=stdio)
    try:
        start(container_id, root=root)
        return _wait(pid)
    finally:
        delete(container_id, force=True, root=root)

