"""RFC 3339 timestamps with nanoseconds, as runc prints them, without datetime."""

from __future__ import annotations

import time


def rfc3339nano(ns: int | None = None) -> str:
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(sec)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, frac)
