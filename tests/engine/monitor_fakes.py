"""Just enough of an Engine and a Container to drive engine/monitor.py on its own: the
runtime is rongqi.oci in-process, the records a JSON file. The engine's own tests use the
real Engine; these let the monitor be tested apart from records and bundles."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OciRuntime:
    """The Runtime protocol over rongqi.oci (create, lifecycle), in-process."""

    def __init__(self, root: str):
        self.root = root

    def create(self, cid: str, bundle: str, *, console_socket: str = "", pid_file: str = "",
               stdio: tuple[int, int, int] = (0, 1, 2)) -> None:
        from rongqi.oci import creation

        assert stdio == (0, 1, 2)
        creation.create(self.root, cid, creation.CreateOptions(
            bundle=bundle, console_socket=console_socket, pid_file=pid_file))

    def start(self, cid: str) -> None:
        from rongqi.oci import lifecycle

        lifecycle.start(self.root, cid)

    def delete(self, cid: str, force: bool = False) -> None:
        from rongqi.oci import lifecycle

        lifecycle.delete(self.root, cid, force=force)

    def kill(self, cid: str, sig: int, all: bool = False) -> None:
        from rongqi.oci import lifecycle

        lifecycle.kill(self.root, cid, sig, all)


class FakeContainer:
    def __init__(self, base: Path, cid: str, bundle: str, options: dict[str, Any],
                 **config: Any):
        self.id = cid
        self.name = cid
        self.dir = str(base / "ctr")
        self.run_dir = str(base / "run")
        os.makedirs(self.dir, exist_ok=True)
        self.bundle = bundle
        self.log_path = os.path.join(self.dir, "ctr.log")
        self.config = {"options": options, "log_driver": options.get("log_driver", "k8s-file"),
                       **config}
        self.state: dict[str, Any] = {"status": "created"}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def sync(self) -> None:
        try:
            with open(os.path.join(self.dir, "state.json")) as f:
                self.state = json.load(f)
        except FileNotFoundError:
            pass

    def save_state(self) -> None:
        tmp = os.path.join(self.dir, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.rename(tmp, os.path.join(self.dir, "state.json"))


class FakeEngine:
    def __init__(self, runtime_root: str, base: Path):
        self.runtime = OciRuntime(runtime_root)
        self.storage = None
        self.marker = base / "removed"

    def remove(self, cid: str, force: bool = False, volumes: bool = False,
               trash: bool = False) -> None:
        # Called in the monitor's process: a file tells the test.
        self.marker.write_text(cid)
