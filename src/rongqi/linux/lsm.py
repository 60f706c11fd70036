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


def set_apparmor_exec(profile: str, sc=None) -> None:
    """Label the next execve; written through a verified procfs handle (never by path in the
    container's view, where /proc could be a symlink or a bind mount: CVE-2019-16884)."""
    from rongqi.linux import procfs

    try:
        procfs.write("/proc/thread-self/attr/apparmor/exec", f"exec {profile}", sc or _sc())
    except FileNotFoundError:  # kernels before the LSM stacking interface
        procfs.write("/proc/thread-self/attr/exec", f"exec {profile}", sc or _sc())


def set_selinux_exec(label: str, sc=None) -> None:
    from rongqi.linux import procfs

    procfs.write("/proc/thread-self/attr/exec", label, sc or _sc())


def _sc():
    from rongqi.linux import syscall

    return syscall.SYSCALLS
