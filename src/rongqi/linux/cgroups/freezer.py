"""The freezer, v1 (freezer.state) and cgroup2 (cgroup.freeze, cgroup.events): freeze, thaw and
"is it frozen", apart from the controllers' limits.

Its own module because every status check asks it (`state`, `start`, `kill`, `delete`,
`exec`: a paused container is "paused"), and those must not load the limits' code
(v1, v2, resources, convert) to read one file.
"""

from __future__ import annotations

from rongqi.linux.cgroups import files
from rongqi.linux.cgroups.files import CgroupError, read, read_keyed, read_or


class V1:
    """The v1 freezer hierarchy's freezer.state."""

    @staticmethod
    def freeze(d: str) -> None:
        import time

        deadline = time.monotonic() + 10.0
        delay = 0.001
        while True:
            # Re-writing FROZEN nudges tasks that were forking during the first attempt (runc does too).
            files.write(d, "freezer.state", "FROZEN")
            if read(d, "freezer.state") == "FROZEN":
                return
            if time.monotonic() > deadline:
                files.write(d, "freezer.state", "THAWED")
                raise CgroupError(f"timed out freezing {d}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    @staticmethod
    def thaw(d: str) -> None:
        files.write(d, "freezer.state", "THAWED")

    @staticmethod
    def is_frozen(d: str) -> bool:
        return read_or(d, "freezer.state") == "FROZEN"


class V2:
    """cgroup2's cgroup.freeze, and cgroup.events' "frozen" for the effective state."""

    @staticmethod
    def freeze(d: str) -> None:
        import time

        files.write(d, "cgroup.freeze", "1")
        deadline = time.monotonic() + 10.0
        delay = 0.0005
        while not V2.is_frozen(d):
            if time.monotonic() > deadline:
                files.write(d, "cgroup.freeze", "0")
                raise CgroupError(f"timed out freezing {d}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    @staticmethod
    def thaw(d: str) -> None:
        files.write(d, "cgroup.freeze", "0")

    @staticmethod
    def is_frozen(d: str) -> bool:
        return read_keyed(d, "cgroup.events").get("frozen", 0) == 1
