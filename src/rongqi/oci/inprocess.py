"""The runtime called in this process: rongqi.oci's operations behind the engine's Runtime
protocol (engine/runtime.py re-exports it), and what oci/api.py drives.

Safe to call from several threads at once: nothing here changes the calling process's
state. The stdio a caller gives goes down to the forked helper, which makes it its own fds
0-2 before it clones the container's process (oci/spawn.py, install_stdio); the caller's
fds 0-2, cwd, umask and signal dispositions stay as they are. The container's init (and an
exec'd process) is a child of the calling process: reap it with os.waitpid(pid) (never
waitpid(-1), which would take other threads' children).
"""

from __future__ import annotations

from rongqi.errors import ContainerStateError

TYPE_CHECKING = False  # typing itself is not imported on the runtime's paths (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

Stdio = tuple[int, int, int]


class InProcessRuntime:
    """rongqi.oci in this process: the container's init is a child of the caller (the monitor)."""

    name = "rongqi"

    def __init__(self, root: str):
        self.root = root

    def create(self, cid: str, bundle: str, *, console_socket: str = "", pid_file: str = "",
               stdio: Stdio | None = None) -> int:
        from rongqi.oci import creation
        opts = creation.CreateOptions(bundle=bundle, pid_file=pid_file,
                                    console_socket=console_socket, stdio=stdio)
        return creation.create(self.root, cid, opts).pid

    def start(self, cid: str) -> None:
        from rongqi.oci import lifecycle
        lifecycle.start(self.root, cid)

    def state(self, cid: str) -> dict[str, Any]:
        from rongqi.oci import statedir as statemod
        return statemod.load(self.root, cid).oci_state()

    def kill(self, cid: str, sig: int, all: bool = False) -> None:
        from rongqi.oci import lifecycle
        lifecycle.kill(self.root, cid, sig, all)

    def delete(self, cid: str, force: bool = False) -> None:
        from rongqi.oci import statedir as statemod
        # Every start first deletes the last run's container, which a first start does not
        # have: its ContainerNotFound comes from the light state module, so the CLI does not
        # import the runtime's lifecycle code (and ctypes, the spec, the init) to learn that.
        statemod.load(self.root, cid)
        from rongqi.oci import lifecycle
        lifecycle.delete(self.root, cid, force)

    def pause(self, cid: str) -> None:
        from rongqi.oci import cgroup_ops
        cgroup_ops.pause(self.root, cid)

    def resume(self, cid: str) -> None:
        from rongqi.oci import cgroup_ops
        cgroup_ops.resume(self.root, cid)

    def ps(self, cid: str) -> list[int]:
        from rongqi.oci import cgroup_ops
        return cgroup_ops.pids(self.root, cid)

    def exec(self, cid: str, process: dict[str, Any], *, tty: bool = False, detach: bool = False,
             console_socket: str = "", stdio: Stdio | None = None, pid_file: str = "") -> int:
        """Start the process (a runtime-spec process object) and return its pid."""
        from rongqi.fastjson import dumps, loads
        from rongqi.oci.execution import ExecOptions, exec_process

        # Through JSON and back: the values a --process file would give (tuples become arrays,
        # a value JSON cannot hold fails here), and a copy the runtime may change.
        doc = loads(dumps({**process, "terminal": bool(tty)}))
        o = ExecOptions(args=[], process=doc, tty=tty, console_socket=console_socket,
                        detach=detach, pid_file=pid_file, stdio=stdio)
        return exec_process(self.root, cid, o)

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        from rongqi.oci import cgroup_ops
        from rongqi.oci.resources import parse_resources
        cgroup_ops.update(self.root, cid, parse_resources(resources, "resources"))

    def stats(self, cid: str) -> dict[str, Any]:
        from rongqi.oci import cgroup_ops
        from rongqi.oci import statedir as statemod
        st = statemod.load(self.root, cid)
        if st.status() == "stopped":
            raise ContainerStateError("container not running")
        return cgroup_ops.stats(st)
