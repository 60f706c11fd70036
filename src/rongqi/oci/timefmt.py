"""RFC 3339 timestamps with nanoseconds, as runc prints them, without datetime."""

from __future__ import annotations

import time


def rfc3339nano(ns: int | None = None) -> str:
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(sec)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:09d}Z"
