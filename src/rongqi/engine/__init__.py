"""The engine's facade: Engine(root, runroot, runtime) is what the CLI (and later the Python
API and the HTTP service) call; it prints nothing and raises rongqi.errors kinds.

The operations live in their own modules (lifecycle.py, images.py, monitor.py, ...); Engine
holds the paths and the shared objects (image store, layer storage, runtime, records).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.engine.records import Container, Records

if TYPE_CHECKING:
    from rongqi.engine.options import ContainerOptions
    from rongqi.engine.runtime import Runtime
    from rongqi.image.registry import RegistryClient
    from rongqi.image.store import ImageStore
    from rongqi.storage.overlay import LayerStorage


def default_runroot() -> str:
    """/run/rongqi/engine for root; a user's $XDG_RUNTIME_DIR/rongqi/engine, else
    /tmp/rongqi-UID/engine (gone at reboot either way, which is the point)."""
    if os.geteuid() == 0:
        return "/run/rongqi/engine"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "rongqi", "engine")
    return f"/tmp/rongqi-{os.geteuid()}/engine"


class Engine:
    """Containers from images, over one image store, one layer storage and one runtime."""

    def __init__(self, root: str | None = None, runroot: str | None = None,
                 runtime: Runtime | str | None = None, *, storage_mode: str = "auto",
                 registries_conf: str | None = None, runtime_root: str | None = None,
                 threaded: bool = False):
        from rongqi.image import default_root  # the package, not the store: exec needs none
        self.root = os.path.abspath(root or os.environ.get("RONGQI_ROOT") or default_root())
        self.runroot = os.path.abspath(runroot or os.environ.get("RONGQI_RUNROOT")
                                       or default_runroot())
        self.storage_mode = storage_mode
        # The calling process runs threads (rongqi serve): nothing may fork Python from it (a
        # fork keeps only the calling thread, and every lock the others held); the monitor is
        # then a fresh interpreter (engine/monitor.py _spawn).
        self.threaded = threaded
        self.registries_conf = registries_conf
        self._runtime_arg = runtime
        self._runtime_root = runtime_root or os.environ.get("RONGQI_RUNTIME_ROOT") or None
        self._runtime: Runtime | None = None
        self._runtimes: dict[tuple[str, str], Runtime] = {}
        if isinstance(runtime, str) and runtime not in ("", "rongqi"):
            _ = self.runtime  # a --runtime that does not exist is the error, whatever the command
        self._store: ImageStore | None = None
        self._storage: LayerStorage | None = None
        self._records: Records | None = None
        self._volumes: Any = None

    # -- shared objects, made on first use (a `ps` needs no layer storage) --------------------
    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from rongqi.engine import runtime as rt
            arg = self._runtime_arg
            self._runtime = (rt.for_path(arg, self._runtime_root)
                             if arg is None or isinstance(arg, str) else arg)
        return self._runtime

    def runtime_for(self, c: Container) -> Runtime:
        """The runtime a container was created with (its record keeps the binary and root),
        whatever --runtime this command was given: as podman keeps each container's."""
        name = c.config.get("runtime") or "rongqi"
        root = c.config.get("oci_root") or ""
        mine = self.runtime
        if name == mine.name and (not root or root == mine.root):
            return mine
        key = (name, root)
        if key not in self._runtimes:
            from rongqi.engine import runtime as rt
            self._runtimes[key] = rt.for_path(name, root or None)
        return self._runtimes[key]

    def for_container(self, c: Container) -> Engine:
        """This engine with `runtime` set to the container's own (for the monitor, exec)."""
        import copy
        other = copy.copy(self)
        other._runtime = self.runtime_for(c)
        return other

    @property
    def store(self) -> ImageStore:
        if self._store is None:
            from rongqi.image.store import ImageStore
            self._store = ImageStore(self.root)
        return self._store

    @property
    def storage(self) -> LayerStorage:
        if self._storage is None:
            from rongqi.storage.overlay import LayerStorage
            self._storage = LayerStorage(os.path.join(self.root, "overlay"),
                                         mode=self.storage_mode)
        return self._storage

    @property
    def records(self) -> Records:
        if self._records is None:
            self._records = Records(self.root, self.runroot)
        return self._records

    @property
    def volumes(self) -> Any:
        """engine.volumes.VolumeStore (its records live under ROOT/volumes)."""
        if self._volumes is None:
            from rongqi.engine.volumes import VolumeStore
            self._volumes = VolumeStore(self.root)
        return self._volumes

    def registry(self) -> RegistryClient:
        from rongqi.image.registry import RegistryClient, RegistryConfig, default_config_path
        cfg = RegistryConfig.load(self.registries_conf or default_config_path())
        return RegistryClient(config=cfg)

    @property
    def rootless(self) -> bool:
        from rongqi.storage.overlay import rootless
        return rootless()

    # -- containers --------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """By id, name or unique id prefix; NoSuchContainer with podman's words otherwise."""
        return self.records.get(ref)

    def list(self, all: bool = False) -> list[Container]:
        """Containers, synced (ps never lies); only running ones unless `all`."""
        from rongqi.engine import lifecycle
        return lifecycle.list_containers(self, all=all)

    def exists(self, ref: str) -> bool:
        from rongqi.errors import NoSuchContainer
        try:
            self.records.resolve(ref)
            return True
        except NoSuchContainer:
            return False

    # Each operation is one function of engine/lifecycle.py (engine first); these are the
    # names the faces call.
    def create(self, opts: ContainerOptions, **kw: Any) -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.create(self, opts, **kw)

    def start(self, ref: str | Container, **kw: Any) -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.start(self, ref, **kw)

    def stop(self, ref: str | Container, timeout: float | None = None) -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.stop(self, ref, timeout)

    def restart(self, ref: str | Container, timeout: float | None = None) -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.restart(self, ref, timeout)

    def kill(self, ref: str | Container, sig: str | int = "SIGKILL") -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.kill(self, ref, sig)

    def pause(self, ref: str | Container) -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.pause(self, ref)

    def unpause(self, ref: str | Container) -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.unpause(self, ref)

    def remove(self, ref: str | Container, force: bool = False, volumes: bool = False,
               timeout: float | None = None, trash: bool = False) -> str:
        from rongqi.engine import lifecycle
        return lifecycle.remove(self, ref, force, volumes, timeout=timeout, trash=trash)

    def rename(self, ref: str, new_name: str) -> Container:
        from rongqi.engine import lifecycle
        return lifecycle.rename(self, ref, new_name)

    def wait(self, ref: str, conditions: list[str] | None = None, **kw: Any) -> int:
        from rongqi.engine import lifecycle
        return lifecycle.wait(self, ref, conditions, **kw)

    def update(self, ref: str | Container, changes: Any) -> Container:
        """New limits (an engine.update.ResourceUpdate) and restart policy, live and kept."""
        from rongqi.engine import update
        return update.update(self, ref, changes)

    def inspect(self, ref: str) -> dict[str, Any]:
        from rongqi.engine import lifecycle
        return lifecycle.inspect(self, ref)

    def prune(self, filters: list[str] | None = None) -> list[str]:
        from rongqi.engine import lifecycle
        return lifecycle.prune(self, filters)

    def locked(self, ref: str | Container) -> Any:
        """`with engine.locked(ref) as c:` the container locked and synced (for other parts
        of the engine: exec, health checks, files)."""
        from rongqi.engine import lifecycle
        return lifecycle.locked(self, ref)
