"""podman (or buildah) on a private storage under one directory: the setup that every test and
benchmark running the peer beside rongqi needs, with this host's limits in containers.conf."""

from __future__ import annotations

import os
from pathlib import Path

# podman as root asks for nofile and nproc limits of 1048576; this machine's hard limits are
# lower and root lacks CAP_SYS_RESOURCE, so the defaults must fit (see shared/clients.md).
# No systemd here: cgroupfs, a file events log, and k8s-file logs (journald is not running).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
"""


def private_podman(base: Path, *, tool: str = "podman", runtime: str | None = None,
                   runroot: str | None = None, storage_driver: str | None = "vfs",
                   network_dir: bool = True) -> tuple[list[str], dict[str, str]]:
    """The argv prefix and environment of `tool` keeping everything under base: storage
    (vfs by default: no overlay mounts left over), runroot (podman wants it under ~50
    characters: pass a short one), tmpdir, network configs, and containers.conf."""
    base = Path(base)
    for d in ("root", "runroot", "tmp", "net"):
        (base / d).mkdir(parents=True, exist_ok=True)
    conf = base / "containers.conf"
    conf.write_text(CONTAINERS_CONF.format(base=base))
    argv = [tool, "--root", str(base / "root"), "--runroot", runroot or str(base / "runroot")]
    if storage_driver:
        argv += ["--storage-driver", storage_driver]
    if tool == "podman":
        argv += ["--tmpdir", str(base / "tmp"), "--cgroup-manager", "cgroupfs"]
        if network_dir:
            argv += ["--network-config-dir", str(base / "net")]
        if runtime:
            argv += ["--runtime", runtime]
    return argv, dict(os.environ, CONTAINERS_CONF=str(conf))
