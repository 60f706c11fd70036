"""Linux security modules: is AppArmor or SELinux on, and label the next execve.

This host class (no AppArmor, no SELinux) gets a clear error for a non-empty
label instead of a silently unconfined container.
"""

from __future__ import annotations

import os


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def set_apparmor_exec(profile: str) -> None:
    path = "/proc/self/attr/apparmor/exec"
    if not os.path.exists(path):
        path = "/proc/self/attr/exec"
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, f"exec {profile}".encode())
    finally:
        os.close(fd)


def set_selinux_exec(label: str) -> None:
    fd = os.open("/proc/self/attr/exec", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, label.encode())
    finally:
        os.close(fd)
