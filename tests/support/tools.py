"""Checks for the host tools a test needs, skipping with the package that provides them.

Kept apart from conftest files so that test modules can import it.
"""

from __future__ import annotations

import shutil

import pytest


def require_tools(**tools: str) -> None:
    """require_tools(ctr="containerd", skopeo="skopeo"): skip naming the apt package."""
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in tools.items() if not shutil.which(tool)]
    if missing:
        pytest.skip("missing " + ", ".join(missing))


def remove_cgroup_tree(rel: str) -> None:
    """rmdir a cgroup path (deepest first) in every v1 hierarchy and the unified one; what
    still holds processes stays (the leak check reports it)."""
    import os

    for ctrl in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", ctrl, rel.strip("/"))
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def pids_of(argv0_matches, mentions: str) -> list[int]:
    """Pids whose argv[0] satisfies argv0_matches(bytes) and whose argv mentions a path."""
    import os

    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv0_matches(argv[0]) and any(mentions.encode() in a for a in argv):
            found.append(int(pid))
    return found
