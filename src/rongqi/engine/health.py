"""Health checks: the check itself (`healthcheck run`, and the monitor's timer) and the
schedule the monitor keeps; no systemd needed.

A check execs the test in the container (CMD-SHELL through /bin/sh -c, CMD as given), with a
timeout; its result goes to state.json's `health` under the container's lock:
`{"status": "starting"|"healthy"|"unhealthy", "failing_streak": N, "log": [last 5 results]}`.
Failures in the start period do not count (until a first success), as podman's.
"""

from __future__ import annotations

import math
import os
import time
TYPE_CHECKING = False  # typing stays out of the slim monitor (engine/monitor.py)
if TYPE_CHECKING:
    from typing import Any

from rongqi.errors import RongqiError

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
LOG_KEEP = 5
OUTPUT_MAX = 4096   # bytes of a check's output kept in the log (podman keeps a bounded tail)


class NoHealthcheck(RongqiError):
    exit_code = 125


def argv_of(test: list[str]) -> list[str] | None:
    """The image/flag form (["CMD-SHELL", "cmd"], ["CMD", ...], ["NONE"]) -> argv, or None."""
    if not test:
        return None
    kind = test[0]
    if kind == "NONE":
        return None
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if kind == "CMD":
        return list(test[1:]) or None
    return ["/bin/sh", "-c", " ".join(test)]


def initial() -> dict[str, Any]:
    return {"status": STARTING, "failing_streak": 0, "log": []}


class Schedule:
    """When the monitor runs the next check: `interval` after the last one ended."""

    def __init__(self, interval: float):
        self.interval = interval
        self.next_due = time.monotonic() + interval

    @classmethod
    def from_config(cls, hc: dict[str, Any]) -> Schedule | None:
        if not hc or argv_of(hc.get("test") or []) is None:
            return None
        interval = float(hc.get("interval") or 0)
        if interval <= 0:
            return None  # --health-interval disable: only `healthcheck run`
        return cls(interval)

    def started(self) -> None:
        self.next_due = math.inf

    def done(self, status: int) -> None:
        self.next_due = time.monotonic() + self.interval

    def reset(self) -> None:
        self.next_due = time.monotonic() + self.interval


def run_check(engine: Any, ref: str) -> int:
    """Run the container's check once and record it; 0 healthy, 1 unhealthy."""
    from rongqi.engine import exec as execmod
    from rongqi.engine.monitor import CommandError
    from rongqi.oci.timefmt import rfc3339nano

    c = engine.get(ref)
    hc = c.config.get("healthcheck")
    argv = argv_of((hc or {}).get("test") or [])
    if not hc or argv is None:
        raise NoHealthcheck(f"container {c.id} has no defined healthcheck")
    c = execmod.running_container(engine, ref)
    timeout = float(hc.get("timeout") or 30)
    proc = execmod.build_process(c, execmod.ExecRequest(command=argv))
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    r, w = os.pipe2(os.O_CLOEXEC)
    start = time.time_ns()
    output = b""
    try:
        try:
            pid = execmod.start(engine, c, proc, stdio=(null, w, w))
        except CommandError as err:
            code, output, pid = err.exit_code, str(err).encode(), 0
        finally:
            os.close(w)
        if pid:
            output, timed_out = _read_until(r, timeout)
            if timed_out:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            code = execmod.wait(pid)
            if timed_out:
                code = -1
                output = b"healthcheck command exceeded timeout of %gs" % timeout
    finally:
        os.close(r)
        os.close(null)
    end = time.time_ns()
    entry = {"start": rfc3339nano(start), "end": rfc3339nano(end), "exit_code": code,
             "output": output[-OUTPUT_MAX:].decode("utf-8", "replace").strip()}
    record(engine, c, entry, hc)
    return 0 if code == 0 else 1


def _read_until(fd: int, timeout: float) -> tuple[bytes, bool]:
    """What the check writes, until its end (EOF) or the timeout."""
    import select

    out = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), True
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return bytes(out), False
        out += chunk
        if len(out) > 4 * OUTPUT_MAX:
            del out[:-OUTPUT_MAX]


def record(engine: Any, c: Any, entry: dict[str, Any], hc: dict[str, Any]) -> str | None:
    """Fold one result into state.json's health; the new status (None: not running now)."""
    from rongqi.engine.records import parse_time

    with c.lock():
        c.sync()
        if c.status != "running":
            return None
        h = dict(c.state.get("health") or initial())
        log = list(h.get("log") or [])[-(LOG_KEEP - 1):]
        log.append(entry)
        h["log"] = log
        retries = int(hc.get("retries") or 3)
        old = h.get("status", STARTING)
        if entry["exit_code"] == 0:
            h["status"], h["failing_streak"] = HEALTHY, 0
        else:
            started = parse_time(c.state.get("started_at") or "")
            period = float(hc.get("start_period") or 0)
            in_start = (old == STARTING and started is not None and period > 0
                        and time.time() - started.timestamp() < period)
            if not in_start:
                h["failing_streak"] = int(h.get("failing_streak") or 0) + 1
                if h["failing_streak"] >= retries:
                    h["status"] = UNHEALTHY
        c.state["health"] = h
        c.save_state()
    if h["status"] != old:
        try:
            from rongqi.engine import events

            events.emit(engine.root, "container", "health_status", id=c.id, name=c.name,
                        image=c.config.get("image_name", ""),
                        attributes=events.container_attributes(
                            c.config, {"health_status": h["status"]}))
        except Exception:  # noqa: BLE001 - an events log that cannot be written is not the check's failure
            pass
    return h["status"]
