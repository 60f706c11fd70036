"""The built-in busybox root filesystem and OCI bundles made from it.

Built from Debian's busybox-static, never downloaded: the demo, the tests and the benchmarks
all start containers from this rootfs, so it must be reproducible and idempotent.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import struct
import subprocess
from typing import Any

from rongqi.errors import RongqiError

BUSYBOX = "/bin/busybox"

# Directories every busybox container expects; the mode matters for tmp (sticky) and root.
_DIRS: tuple[tuple[str, int], ...] = (
    ("bin", 0o755),
    ("sbin", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("home", 0o755),
    ("var", 0o755),
    ("var/run", 0o755),
    ("var/tmp", 0o1777),
    ("var/log", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("usr/local", 0o755),
    ("usr/local/bin", 0o755),
    ("mnt", 0o755),
    ("opt", 0o755),
    ("run", 0o755),
)

_FILES: tuple[tuple[str, str, int], ...] = (
    (
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    ),
    ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644),
    ("etc/hostname", "rongqi\n", 0o644),
    ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644),
    # A placeholder: the engine bind-mounts the real one; an empty file keeps resolvers quiet.
    ("etc/resolv.conf", "", 0o644),
)

DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]

# runc's `runc spec` defaults, kept here so that every runtime under test gets the same spec.
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DEFAULT_NAMESPACES = ["pid", "network", "ipc", "uts", "mount"]
MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _default_mounts() -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
    ]


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    """Return the applets' paths relative to / (e.g. "bin/sh"), as busybox lists them."""
    if not os.path.isfile(busybox) or not os.access(busybox, os.X_OK):
        raise RongqiError(
            f"{busybox} not found: the built-in rootfs needs Debian's busybox-static "
            "(apt-get install busybox-static)"
        )
    try:
        out = subprocess.run(
            [busybox, "--list-full"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise RongqiError(
            f"{busybox} --list-full failed ({err}); a statically linked busybox is needed "
            "(apt-get install busybox-static)"
        ) from err
    applets = [line.strip().lstrip("/") for line in out.splitlines() if line.strip()]
    if not applets:
        raise RongqiError(f"{busybox} --list-full listed no applets (apt-get install busybox-static)")
    return applets


def _is_static(path: str) -> bool:
    """True unless the ELF file has a PT_INTERP segment (a loader the rootfs lacks)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # only 64-bit ELF is expected here
            return False
        order = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack_from(order + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def _copy_if_changed(src: str, dst: str) -> None:
    try:
        s, d = os.stat(src), os.lstat(dst)
        if d.st_size == s.st_size and int(d.st_mtime) == int(s.st_mtime) and not os.path.islink(dst):
            return
        os.unlink(dst)
    except FileNotFoundError:
        pass
    shutil.copy2(src, dst)
    os.chmod(dst, 0o755)


def make_rootfs(dest: str, busybox: str = BUSYBOX) -> None:
    """Build (or refresh) a busybox root filesystem at dest; safe to call again on it."""
    applets = busybox_applets(busybox)
    if not _is_static(busybox):
        raise RongqiError(
            f"{busybox} is dynamically linked; the rootfs needs busybox-static "
            "(apt-get install busybox-static)"
        )
    os.makedirs(dest, exist_ok=True)
    for rel, mode in _DIRS:
        path = os.path.join(dest, rel)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    target = os.path.join(dest, "bin", "busybox")
    _copy_if_changed(busybox, target)
    for rel in applets:
        if rel == "bin/busybox":
            continue
        link = os.path.join(dest, rel)
        parent = os.path.dirname(link)
        os.makedirs(parent, exist_ok=True)
        # Relative links keep the rootfs valid wherever it is mounted or copied.
        want = os.path.relpath(target, parent)
        try:
            if os.readlink(link) == want:
                continue
            os.unlink(link)
        except FileNotFoundError:
            pass
        except OSError:
            # A regular file or directory where an applet belongs: replace only files.
            if os.path.isdir(link) and not os.path.islink(link):
                continue
            os.unlink(link)
        os.symlink(want, link)
    for rel, content, mode in _FILES:
        path = os.path.join(dest, rel)
        try:
            with open(path) as f:
                if f.read() == content:
                    os.chmod(path, mode)
                    continue
        except FileNotFoundError:
            pass
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)


_BUNDLE_OPTS = frozenset(
    {
        "hostname",
        "env",
        "cwd",
        "uid",
        "gid",
        "readonly",
        "terminal",
        "cgroups_path",
        "mounts",
        "namespaces",
        "capabilities",
        "rlimits",
        "no_new_privileges",
        "annotations",
        "resources",
        "rootfs",
    }
)


def make_spec(args: list[str], **opts: Any) -> dict[str, Any]:
    """Return a config.json dict shaped like `runc spec`'s default, with opts applied.

    opts: hostname, env (replaces the default), cwd, uid, gid, readonly (root.readonly, default
    True as runc), terminal (default False), cgroups_path (default "/rongqi-test/<random>"; None
    leaves it out, which puts runc's cgroup under the caller's own), mounts (appended to the
    defaults), namespaces (list of types or of dicts), capabilities (one list for all five
    sets), rlimits, no_new_privileges, annotations, resources (linux.resources), rootfs
    (root.path, default "rootfs").
    """
    unknown = set(opts) - _BUNDLE_OPTS
    if unknown:
        raise TypeError(f"make_spec: unknown option(s) {', '.join(sorted(unknown))}")
    if not args:
        raise ValueError("make_spec: args must not be empty")
    caps = list(opts.get("capabilities", DEFAULT_CAPS))
    namespaces = [
        ns if isinstance(ns, dict) else {"type": ns}
        for ns in opts.get("namespaces", DEFAULT_NAMESPACES)
    ]
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": bool(opts.get("terminal", False)),
            "user": {"uid": int(opts.get("uid", 0)), "gid": int(opts.get("gid", 0))},
            "args": list(args),
            "env": list(opts.get("env", DEFAULT_ENV)),
            "cwd": opts.get("cwd", "/"),
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps,
            },
            "rlimits": list(
                opts.get("rlimits", [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])
            ),
            "noNewPrivileges": bool(opts.get("no_new_privileges", True)),
        },
        "root": {"path": opts.get("rootfs", "rootfs"), "readonly": bool(opts.get("readonly", True))},
        "hostname": opts.get("hostname", "rongqi"),
        "mounts": _default_mounts() + list(opts.get("mounts", [])),
        "linux": {
            "resources": opts.get("resources", {"devices": [{"allow": False, "access": "rwm"}]}),
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if "annotations" in opts:
        spec["annotations"] = dict(opts["annotations"])
    cgroups_path = opts.get("cgroups_path", "/rongqi-test/" + secrets.token_hex(6))
    if cgroups_path is not None:
        spec["linux"]["cgroupsPath"] = cgroups_path
    return spec


def make_bundle(dest: str, args: list[str], **opts: Any) -> str:
    """Write an OCI bundle (dest/rootfs from busybox and dest/config.json); return dest.

    The options are make_spec's. An existing rootfs is refreshed in place, not rebuilt.
    """
    spec = make_spec(args, **opts)
    os.makedirs(dest, exist_ok=True)
    root = spec["root"]["path"]
    make_rootfs(root if os.path.isabs(root) else os.path.join(dest, root))
    tmp = os.path.join(dest, ".config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(spec, f, indent="\t")
        f.write("\n")
    os.replace(tmp, os.path.join(dest, "config.json"))
    return dest
