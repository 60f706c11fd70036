"""Rootless test setup: throw-away users and their subordinate ids, and a cgroup delegated to a
user as systemd's Delegate= makes one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def cgroup_hierarchies() -> list[str]:
    """Every mounted hierarchy under /sys/fs/cgroup (v1 controllers, named ones, unified)."""
    return [h for h in sorted(os.listdir("/sys/fs/cgroup")) if os.path.isfile(f"/sys/fs/cgroup/{h}/cgroup.procs")]


@contextlib.contextmanager
def delegated_cgroup(rel: str, uid: int, gid: int) -> Iterator[str]:
    """/<rel> in every hierarchy, owned by uid:gid; yields "/<rel>" and removes it after."""
    made = []
    try:
        for name in cgroup_hierarchies():
            mount = f"/sys/fs/cgroup/{name}"
            path = f"{mount}/{rel}"
            os.makedirs(path, exist_ok=True)
            made.append(path)
            if name == "cpuset":
                # A v1 cpuset child starts empty and refuses tasks until given cpus and mems.
                for level in (os.path.dirname(path), path):
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        with open(f"{level}/{f}") as fh:
                            if fh.read().strip():
                                continue
                        with open(f"{mount}/{f}") as src, open(f"{level}/{f}", "w") as dst:
                            dst.write(src.read().strip())
            os.chown(path, uid, gid)
            for f in os.listdir(path):
                if os.path.isfile(f"{path}/{f}"):
                    os.chown(f"{path}/{f}", uid, gid)
        yield "/" + rel
    finally:
        for path in made:
            for sub in sorted((d for d, _, _ in os.walk(path)), key=len, reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"


def drop_sub_entries(name: str) -> None:
    """Remove name's lines from /etc/subuid and /etc/subgid."""
    for path in (SUBUID, SUBGID):
        with open(path) as f:
            lines = f.readlines()
        keep = [ln for ln in lines if ln.split(":", 1)[0] != name]
        if keep != lines:
            with open(path, "w") as f:
                f.writelines(keep)


def remove_user(name: str) -> None:
    """userdel a test user (if it exists) and drop its subordinate ids."""
    import pwd
    import subprocess

    try:
        pwd.getpwnam(name)
    except KeyError:
        drop_sub_entries(name)
        return
    subprocess.run(["userdel", name], capture_output=True, check=False)
    drop_sub_entries(name)
