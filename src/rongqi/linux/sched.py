"""Process execution attributes: personality(2), sched_setattr(2), ioprio_set(2), CPU affinity.

Applied by the container's init (and exec) just before execve.
"""

from __future__ import annotations

import os

from rongqi.linux.syscall import NR, kernel

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def _err(what: str) -> OSError:
    e = kernel().errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def set_personality(domain: int) -> None:
    if kernel().personality(domain) == -1:
        raise _err("personality")


def set_scheduler(policy: int, nice: int, priority: int, flags: int, runtime: int, deadline: int, period: int) -> None:
    k = kernel()
    ct = k.ctypes

    class SchedAttr(ct.Structure):  # type: ignore[name-defined]  # ctypes, imported on first use
        _fields_ = (("size", ct.c_uint32), ("sched_policy", ct.c_uint32), ("sched_flags", ct.c_uint64),
                    ("sched_nice", ct.c_int32), ("sched_priority", ct.c_uint32),
                    ("sched_runtime", ct.c_uint64), ("sched_deadline", ct.c_uint64),
                    ("sched_period", ct.c_uint64))

    attr = SchedAttr(ct.sizeof(SchedAttr), policy, flags, nice, priority, runtime, deadline, period)
    if k.syscall(NR["sched_setattr"], 0, ct.byref(attr), 0) < 0:
        raise _err("sched_setattr")


def set_io_priority(klass: int, priority: int) -> None:
    if kernel().syscall(NR["ioprio_set"], 1, 0, (klass << 13) | priority) < 0:  # IOPRIO_WHO_PROCESS, self
        raise _err("ioprio_set")


def parse_cpus(text: str) -> set[int]:
    """"0-3,6" -> {0, 1, 2, 3, 6}; ValueError on anything else."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep:
            a, b = int(lo), int(hi)
            if a > b:
                raise ValueError(part)
            out.update(range(a, b + 1))
        else:
            out.add(int(lo))
    if not out:
        raise ValueError(text)
    return out
