"""The shape of runc's `events --stats` "data" object (libcontainer's types.Stats).

v1 and v2 fill the same dict, so `rongqi-oci events` prints one format on every host.
"""

from __future__ import annotations


def _entry() -> dict:
    return {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}


def empty() -> dict:
    return {
        "cpu": {
            "usage": {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 0, "user": 0},
            "throttling": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory": {
            "cache": 0,
            "usage": _entry(),
            "swap": _entry(),
            "kernel": _entry(),
            "kernelTCP": _entry(),
            "raw": {},
        },
        "pids": {"current": 0, "limit": 0},
        "blkio": {"ioServiceBytesRecursive": [], "ioServicedRecursive": []},
        "hugetlb": {},
    }
