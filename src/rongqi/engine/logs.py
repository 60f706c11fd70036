"""Container logs: the writer the monitor feeds (k8s-file, json-file, none, passthrough, with
max-size/max-file rotation) and the reader behind `rongqi logs` (tail, since/until, follow).

k8s-file is podman's default and conmon's format, one record a line:
`2024-05-01T10:00:00.123456789+00:00 stdout F text` (F a full line, P part of a longer one).
json-file is docker's: `{"log":"text\\n","stream":"stdout","time":"2024-...Z"}`.
Rotation renames the live file to PATH.1 (PATH.1 to PATH.2, ...) and keeps max-file files in
all; a follower notices the new inode and carries on from the new file's start.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # collections.abc stays out of the slim monitor (engine/monitor.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

DRIVERS = ("k8s-file", "json-file", "none", "passthrough", "journald")
STREAMS = {1: "stdout", 2: "stderr"}


def timestamp(ns: int | None = None, *, utc: bool = False) -> str:
    """RFC 3339 with nanoseconds and the local offset, as conmon writes k8s-file records."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(sec) if utc else time.localtime(sec)
    base = "%04d-%02d-%02dT%02d:%02d:%02d.%09d" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour,
                                                   t.tm_min, t.tm_sec, frac)
    if utc:
        return base + "Z"
    off = t.tm_gmtoff // 60
    sign = "+" if off >= 0 else "-"
    return base + "%s%02d:%02d" % (sign, abs(off) // 60, abs(off) % 60)


def parse_size(text: str) -> int:
    """`10m`, `1.5k`, `100` (bytes) -> bytes, as podman's --log-opt max-size (1024-based)."""
    t = text.strip().lower().removesuffix("b")
    mult = 1
    for suffix, m in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        n = int(float(t) * mult)
    except ValueError:
        raise ValueError(f"invalid size {text!r}") from None
    if n < 0:
        raise ValueError(f"invalid size {text!r}")
    return n


def _json_escape(text: str) -> str:
    out = []
    for ch in text:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    return "".join(out)


class LogWriter:
    """Appends a container's output to its log file; owned by the monitor (one writer only).

    Lines are split on newlines; a chunk that ends mid-line is written as a partial record
    (k8s-file's P) so that nothing waits in memory, as conmon does.
    """

    def __init__(self, driver: str, path: str, *, max_size: int = 0, max_file: int = 1):
        self.driver = driver
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.fd = -1
        self.size = 0
        if driver in ("k8s-file", "json-file"):
            self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size

    @property
    def enabled(self) -> bool:
        return self.fd >= 0

    def write(self, stream: int, data: bytes) -> None:
        if self.fd < 0 or not data:
            return
        name = STREAMS.get(stream, "stdout")
        ts = timestamp() if self.driver == "k8s-file" else timestamp(utc=True)
        out = []
        start = 0
        n = len(data)
        while start < n:
            end = data.find(b"\n", start)
            if end < 0:
                out.append(self._record(ts, name, data[start:], partial=True))
                break
            out.append(self._record(ts, name, data[start:end], partial=False))
            start = end + 1
        if not self.max_size:
            blob = b"".join(out)
            os.write(self.fd, blob)
            self.size += len(blob)
            return
        pending: list[bytes] = []
        n_pending = 0
        for rec in out:
            if self.size + n_pending + len(rec) > self.max_size and self.size + n_pending:
                if pending:
                    os.write(self.fd, b"".join(pending))
                pending, n_pending = [], 0
                self.rotate()
            pending.append(rec)
            n_pending += len(rec)
        if pending:
            os.write(self.fd, b"".join(pending))
            self.size += n_pending

    def _record(self, ts: str, stream: str, line: bytes, *, partial: bool) -> bytes:
        if self.driver == "k8s-file":
            return b"%s %s %s %s\n" % (ts.encode(), stream.encode(), b"P" if partial else b"F", line)
        text = line.decode("utf-8", "replace") + ("" if partial else "\n")
        return ('{"log":"%s","stream":"%s","time":"%s"}\n' % (_json_escape(text), stream, ts)).encode()

    def rotate(self) -> None:
        """PATH -> PATH.1 -> PATH.2 ...; max_file files in all (1: the live one, truncated)."""
        os.close(self.fd)
        if self.max_file <= 1:
            # Truncation by replacement, not ftruncate: a follower keeps its open file to EOF.
            tmp = self.path + ".rotating"
            os.rename(self.path, tmp)
            os.unlink(tmp)
        else:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                try:
                    os.rename(src, f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
        self._open()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- reading ---------------------------------------------------------------------------------


class Record:
    """One record of a log file: stream "stdout"/"stderr", time as written, text, partial."""

    __slots__ = ("stream", "time", "text", "partial")

    def __init__(self, stream: str, ts: str, text: bytes, partial: bool):
        self.stream = stream
        self.time = ts
        self.text = text
        self.partial = partial

    def ns(self) -> int:
        return parse_time_ns(self.time)


def parse_record(driver: str, line: bytes) -> Record | None:
    """One line of a log file (without its newline) -> a Record; None for a damaged line."""
    if driver == "json-file":
        import json

        try:
            doc = json.loads(line)
            text = doc["log"]
        except (ValueError, KeyError, TypeError):
            return None
        partial = not text.endswith("\n")
        return Record(doc.get("stream", "stdout"), doc.get("time", ""),
                      text.removesuffix("\n").encode(), partial)
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else b""
    return Record(parts[1].decode(), parts[0].decode(), text, parts[2] == b"P")


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time (with nanoseconds, Z or an offset) -> ns since the epoch."""
    import calendar

    t = text.strip()
    if not t:
        return 0
    date, _, rest = t.partition("T")
    y, mo, d = (int(x) for x in date.split("-"))
    off = 0
    if rest.endswith("Z") or rest.endswith("z"):
        clock = rest[:-1]
    else:
        i = max(rest.rfind("+"), rest.rfind("-"))
        if i > 0:
            clock, tz = rest[:i], rest[i:]
            sign = -1 if tz[0] == "-" else 1
            hh, _, mm = tz[1:].partition(":")
            off = sign * (int(hh) * 3600 + int(mm or 0) * 60)
        else:
            clock = rest
    hms, _, frac = clock.partition(".")
    parts = (hms.split(":") + ["0", "0"])[:3]
    h, mi, s = (int(x) for x in parts)
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - off
    frac_ns = int((frac + "000000000")[:9]) if frac else 0
    return secs * 1_000_000_000 + frac_ns


def parse_since(text: str, now_ns: int | None = None) -> int:
    """podman's --since/--until: RFC 3339 (or a date), a Unix time, or a duration ("10m", "1h30m")."""
    t = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    if not t:
        raise ValueError("empty time")
    units = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}
    if t[-1] in "smhµ" and not t.replace(".", "").isdigit():
        import re

        # Go's ParseDuration takes a sign: "-1s" is a second from now (podman's logs
        # --since -1s: nothing yet)
        sign = -1 if t[0] == "-" else 1
        body = t[1:] if t[0] in "+-" else t
        parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", body)
        if parts and "".join(n + u for n, u in parts) == body:
            return now - sign * int(sum(float(n) * units[u] for n, u in parts))
    try:
        return int(float(t) * 1_000_000_000)
    except ValueError:
        pass
    try:
        if "T" not in t:
            if ":" in t:
                raise ValueError(t)
            t += "T00:00:00"
            return parse_time_ns(t) - time.localtime().tm_gmtoff * 1_000_000_000
        has_zone = t.endswith(("Z", "z")) or "+" in t[10:] or "-" in t[10:]
        ns = parse_time_ns(t)
        if not has_zone:
            ns -= time.localtime().tm_gmtoff * 1_000_000_000
        return ns
    except (ValueError, IndexError):
        raise ValueError(f"invalid time {text!r}: expected RFC 3339, a Unix time or a "
                         "duration such as 10m") from None


def log_files(path: str) -> list[str]:
    """The rotated files, oldest first, then the live one."""
    older = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        older.append(f"{path}.{i}")
        i += 1
    return [*reversed(older), path]


def _lines(fd: int, buf: bytearray) -> Iterator[bytes]:
    """Complete lines now readable from fd (a trailing partial line stays in buf)."""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    while True:
        i = buf.find(b"\n")
        if i < 0:
            return
        line = bytes(buf[:i])
        del buf[:i + 1]
        yield line


def read(driver: str, path: str, *, tail: int = -1, since: int = 0, until: int = 0,
         follow: bool = False, running: Callable[[], bool] | None = None,
         poll: float = 0.1) -> Iterator[Record]:
    """The records of a container's log, oldest first.

    tail >= 0 keeps the last N lines (a line being full records and their partial
    predecessors); since/until are ns bounds. With follow, keeps reading new records until
    running() says the container's monitor has gone (then drains what is left), across
    rotation.
    """
    if driver not in ("k8s-file", "json-file"):
        return

    def keep(r: Record) -> bool:
        if not since and not until:
            return True
        ns = r.ns()
        return (not since or ns >= since) and (not until or ns <= until)

    files = log_files(path)
    fd = -1
    ino = None
    buf = bytearray()
    backlog: list[Record] = []
    for p in files:
        try:
            f = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        if p == path:
            fd, ino = f, os.fstat(f).st_ino
            for line in _lines(f, buf):
                r = parse_record(driver, line)
                if r is not None and keep(r):
                    backlog.append(r)
        else:
            b = bytearray()
            try:
                for line in _lines(f, b):
                    r = parse_record(driver, line)
                    if r is not None and keep(r):
                        backlog.append(r)
            finally:
                os.close(f)
    if tail >= 0:
        backlog = _tail(backlog, tail)
    try:
        yield from backlog
        del backlog
        if not follow:
            return
        while True:
            alive = running() if running is not None else False
            got = False
            if fd >= 0:
                for line in _lines(fd, buf):
                    got = True
                    r = parse_record(driver, line)
                    if r is not None and keep(r):
                        if until and r.ns() > until:
                            return
                        yield r
            # Rotated under us: the old file is read to its end above; go on with the new one.
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and st.st_ino != ino:
                if fd >= 0:
                    for line in _lines(fd, buf):
                        r = parse_record(driver, line)
                        if r is not None and keep(r):
                            yield r
                    os.close(fd)
                buf.clear()
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    ino = os.fstat(fd).st_ino
                except FileNotFoundError:
                    fd, ino = -1, None
                continue
            if not alive and not got:
                return
            if until and time.time_ns() > until:
                return
            if not got:
                time.sleep(poll)
    finally:
        if fd >= 0:
            os.close(fd)


def _tail(records: list[Record], n: int) -> list[Record]:
    if n == 0:
        return []
    count = 0
    i = len(records)
    while i > 0:
        r = records[i - 1]
        if not r.partial:
            if count == n:
                break
            count += 1
        i -= 1
    return records[i:]


def read_container(c: Any, *, tail: int = -1, since: int = 0, until: int = 0,
                   follow: bool = False, stdout: bool = True, stderr: bool = True,
                   gone: Callable[[], bool] | None = None) -> Iterator[tuple[str, str, bytes]]:
    """A container's log for the faces (the Python API, the Docker API service): (stream,
    the record's time where a line starts else "", the bytes with a full line's newline).
    Following ends when the container's last run ends (not between restarts), or once
    gone() says nobody reads any more (a service's client left)."""
    from rongqi.engine import monitor

    driver = c.config.get("log_driver") or "k8s-file"

    def running() -> bool:
        if gone is not None and gone():
            return False
        return bool(monitor.alive(c.run_dir)) and monitor.read_exit(c.run_dir) is None

    at_start = {"stdout": True, "stderr": True}
    for r in read(driver, c.log_path, tail=tail, since=since, until=until, follow=follow,
                  running=running):
        name = "stderr" if r.stream == "stderr" else "stdout"
        if not (stdout if name == "stdout" else stderr):
            continue
        ts = r.time if at_start[name] else ""
        at_start[name] = not r.partial
        yield name, ts, r.text if r.partial else r.text + b"\n"
