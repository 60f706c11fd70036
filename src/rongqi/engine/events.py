"""The engine's events log: one JSON line per event in ROOT/events.log, in the shape podman's file
events backend writes, appended by any number of processes at once; and its reader.

Owns emit() (the one call the engine's parts make), rotation at a size, podman's filters
(container=, event=, image=, label=, type=, volume=...), --since/--until times and follow mode.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import BinaryIO

from rongqi.errors import UsageError
from rongqi.locking import Lock, LockError
from rongqi.values import dataclass, field

EVENTS_FILE = "events.log"
LOCK_FILE = "events.lock"
# podman's events_logfile_max_size defaults to 1 MB; the rotated file is kept as events.log.1,
# so a reader sees between 1 and 2 MB of history (some thousands of events).
ROTATE_BYTES = 1_000_000

TYPES = ("container", "image", "volume", "network", "pod", "system")
FILTER_KEYS = ("container", "event", "status", "image", "label", "type", "volume", "pod",
               "network")


@dataclass(frozen=True)
class Event:
    """One event: `status` is podman's name for the action (create, start, died, pull...)."""

    type: str
    status: str
    time_ns: int
    id: str = ""
    name: str = ""
    image: str = ""
    attributes: dict[str, str] | None = None
    exit_code: int | None = None
    health_status: str = ""
    network: str = ""
    pod_id: str = ""

    def to_json(self) -> dict[str, object]:
        """podman's libpod events.Event as encoding/json writes it (omitempty fields left out
        when empty, Attributes null when there are none)."""
        d: dict[str, object] = {}
        if self.exit_code:
            d["ContainerExitCode"] = self.exit_code
        for key, value in (("ID", self.id), ("Image", self.image), ("Name", self.name),
                           ("network", self.network)):
            if value:
                d[key] = value
        d["Status"] = self.status
        d["Time"] = _rfc3339_nano(self.time_ns)
        d["Type"] = self.type
        if self.health_status:
            d["health_status"] = self.health_status
        if self.pod_id:
            d["PodID"] = self.pod_id
        d["Attributes"] = self.attributes
        return d

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Event:
        t = _parse_rfc3339(str(d.get("Time", "")))
        attrs = d.get("Attributes")
        code = d.get("ContainerExitCode")
        return cls(type=str(d.get("Type", "")), status=str(d.get("Status", "")),
                   time_ns=t if t is not None else 0, id=str(d.get("ID", "")),
                   name=str(d.get("Name", "")), image=str(d.get("Image", "")),
                   attributes={str(k): str(v) for k, v in attrs.items()}
                   if isinstance(attrs, dict) else None,
                   exit_code=code if isinstance(code, int) and not isinstance(code, bool)
                   else None,
                   health_status=str(d.get("health_status", "")),
                   network=str(d.get("network", "")), pod_id=str(d.get("PodID", "")))


# -- writing -------------------------------------------------------------------------------------
def container_attributes(config: dict, extra: dict[str, str] | None = None
                         ) -> dict[str, str]:
    """A container event's Attributes: the container's labels (podman's and docker's events
    carry them, and `label=` filters match them), then what the event adds (signal...);
    `{}` without any, as podman writes a container's (an image's are null)."""
    attrs = {str(k): str(v) for k, v in (config.get("labels") or {}).items()}
    attrs.update(extra or {})
    return attrs


def emit(root: str, type: str, action: str, *, id: str = "", name: str = "", image: str = "",
         attributes: dict[str, str] | None = None, exit_code: int | None = None,
         health_status: str = "", network: str = "") -> Event | None:
    """Append one event to ROOT/events.log and return it.

    One write(2) of one line on an O_APPEND descriptor: concurrent writers (other CLIs,
    monitors) never interleave within a line. Writers hold ROOT/events.lock shared; rotation
    takes it exclusively, so no event lands in a file that was already rotated away. An event
    that cannot be written (a read-only or missing root) is dropped and None returned: the
    operation it reports has happened and must not fail for it (podman only logs the error).
    """
    event = Event(type=type, status=action, time_ns=time.time_ns(), id=id, name=name,
                  image=image, attributes=dict(attributes) if attributes is not None else None,
                  exit_code=exit_code, health_status=health_status, network=network)
    line = (json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
    data = line.encode()
    path = os.path.join(root, EVENTS_FILE)
    try:
        with Lock(os.path.join(root, LOCK_FILE), shared=True):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                written = os.write(fd, data)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
        if written != len(data):
            return None  # a full disk: the partial line is skipped by readers
        if size > ROTATE_BYTES:
            _rotate(root)
    except (OSError, LockError):
        return None
    return event


def _rotate(root: str) -> None:
    """Keep one older file: events.log -> events.log.1, under the exclusive lock (one rotator;
    the others see the fresh file's size and go on)."""
    path = os.path.join(root, EVENTS_FILE)
    lock = Lock(os.path.join(root, LOCK_FILE), blocking=False)
    if not lock.acquire():
        return
    try:
        if os.stat(path).st_size > ROTATE_BYTES:
            os.replace(path, path + ".1")
    except FileNotFoundError:
        pass
    finally:
        lock.release()


# -- filters and times ---------------------------------------------------------------------------
def parse_filters(filters: Iterable[str]) -> dict[str, list[str]]:
    """--filter KEY=VALUE, as podman reads them: values of one key are ORed, keys ANDed."""
    out: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise UsageError(f"{f} is an invalid filter")
        key = key.lower()
        if key not in FILTER_KEYS:
            raise UsageError(f"{key} is an invalid filter")
        out.setdefault("event" if key == "status" else key, []).append(value)
    return out


def _matches_one(e: Event, key: str, value: str) -> bool:
    if key == "container":
        return e.type == "container" and (e.name == value or e.id.startswith(value))
    if key == "event":
        return e.status == value
    if key == "type":
        return e.type == value
    if key == "image":
        if e.type == "image":
            return e.name == value or (bool(value) and e.id.startswith(value)) or \
                _same_image(e.name, value)
        return e.image == value or _same_image(e.image, value)
    if key == "label":
        k, sep, v = value.partition("=")
        attrs = e.attributes or {}
        return k in attrs and (not sep or attrs[k] == v)
    if key == "volume":
        return e.type == "volume" and e.name.startswith(value)
    if key == "pod":
        return e.type == "pod" and (e.name == value or e.id.startswith(value))
    if key == "network":
        return e.type == "network" and (e.network == value or e.id.startswith(value))
    return False


def _same_image(a: str, b: str) -> bool:
    """"busybox" and "docker.io/library/busybox:latest" name the same image."""
    if not a or not b:
        return False
    try:
        from rongqi.image import reference
        return str(reference.parse(a)) == str(reference.parse(b))
    except Exception:  # noqa: BLE001 - a name that is not a reference matches only itself
        return False


def matches(e: Event, filters: dict[str, list[str]]) -> bool:
    return all(any(_matches_one(e, key, v) for v in values) for key, values in filters.items())


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
            "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(text: str) -> int | None:
    """Go's time.ParseDuration ("1h30m", "10m", "1.5s", "-5m", "0") in nanoseconds, or None."""
    s = text.strip()
    sign = 1
    if s and s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0.0
    pos = 0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        return None
    return sign * int(total)


_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?$")


def parse_input_time(text: str, *, since: bool, now_ns: int | None = None) -> int:
    """podman's util.ParseInputTime for --since/--until: RFC 3339 (with or without a fraction
    or a zone; none means UTC), a date (2006-01-02, optionally with a zone), Unix seconds
    (with a fraction), or a Go duration counted back from now for --since and forward for
    --until (as podman 4 does). Nanoseconds since the epoch."""
    now = time.time_ns() if now_ns is None else now_ns
    value = text.strip()
    t = _parse_rfc3339(value)
    if t is not None:
        return t
    m = _DATE_RE.match(value)
    if m:
        t = _parse_rfc3339(f"{m.group(1)}-{m.group(2)}-{m.group(3)}T00:00:00"
                           f"{m.group(4) or 'Z'}")
        if t is not None:
            return t
    try:
        secs = float(value)
    except ValueError:
        pass
    else:
        if secs == secs and abs(secs) < 1e11:  # not NaN, and a plausible Unix time
            whole = int(secs)
            return whole * 1_000_000_000 + int(round((secs - whole) * 1e9))
    d = parse_go_duration(value)
    if d is None:
        raise UsageError(f'unable to interpret time value "{text}"')
    return now - d if since else now + d


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})?$")


def _parse_rfc3339(text: str) -> int | None:
    import calendar
    m = _RFC3339_RE.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        return None
    frac = int((m.group(7) or "").ljust(9, "0"))
    zone = m.group(8) or "Z"
    offset = 0
    if zone not in ("Z", "z"):
        offset = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset
    return secs * 1_000_000_000 + frac


def _rfc3339_nano(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    f = f"{frac:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ("." + f if f else "") + "Z"


# -- reading -------------------------------------------------------------------------------------
@dataclass
class ReadOptions:
    filters: dict[str, list[str]] = field(default_factory=dict)
    since_ns: int | None = None
    until_ns: int | None = None
    stream: bool = True          # follow the log for new events (podman's --stream)
    stop: threading.Event | None = None   # set (by a signal handler) to end a stream
    poll_interval: float = 0.1


def read(root: str, opts: ReadOptions) -> Iterator[Event]:
    """The events that match, oldest first. Without --stream: what the log holds now. With
    it: from the end of the log (or from --since, when given), then each new event as it is
    written, across rotations, until `stop` is set or --until has passed."""
    path = os.path.join(root, EVENTS_FILE)
    start_at_end = opts.stream and opts.since_ns is None
    old, current = _open_files(root, path)
    try:
        if old is not None:
            if not start_at_end:
                yield from _filtered(_lines(old), opts)
            old.close()
            old = None
        if current is not None and start_at_end:
            current.seek(0, os.SEEK_END)
        if not opts.stream:
            if current is not None:
                yield from _filtered(_lines(current), opts)
            return
        following, current = current, None
        yield from _follow(path, following, opts)
    finally:
        for f in (old, current):
            if f is not None:
                f.close()


def _open_files(root: str, path: str) -> tuple[BinaryIO | None, BinaryIO | None]:
    """events.log.1 and events.log, opened together under the shared lock so that a rotation
    cannot fall between the two opens."""
    lock: Lock | None = Lock(os.path.join(root, LOCK_FILE), shared=True)
    try:
        assert lock is not None
        lock.acquire()
    except LockError:
        lock = None  # a root we may not lock (another user's, read-only): read without it
    try:
        return _open_or_none(path + ".1"), _open_or_none(path)
    finally:
        if lock is not None:
            lock.release()


def _open_or_none(path: str) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _lines(f: BinaryIO) -> Iterator[bytes]:
    for line in f:
        if line.endswith(b"\n"):
            yield line


def _decode(line: bytes) -> Event | None:
    try:
        d = json.loads(line)
    except ValueError:
        return None  # a line cut short by a full disk or a crash
    return Event.from_json(d) if isinstance(d, dict) else None


def _filtered(lines: Iterable[bytes], opts: ReadOptions) -> Iterator[Event]:
    for line in lines:
        e = _decode(line)
        if e is None:
            continue
        if opts.since_ns is not None and e.time_ns < opts.since_ns:
            continue
        if opts.until_ns is not None and e.time_ns > opts.until_ns:
            continue
        if matches(e, opts.filters):
            yield e


def _follow(path: str, current: BinaryIO | None, opts: ReadOptions) -> Iterator[Event]:
    stop = opts.stop or threading.Event()
    partial = b""
    try:
        while not stop.is_set():
            if opts.until_ns is not None and time.time_ns() > opts.until_ns:
                return
            if current is None:
                try:
                    current = open(path, "rb")
                except FileNotFoundError:
                    stop.wait(opts.poll_interval)
                    continue
            chunk = current.read()
            if chunk:
                data = partial + chunk
                lines = data.split(b"\n")
                partial = lines.pop()  # a line still being written stays for the next read
                yield from _filtered((ln + b"\n" for ln in lines), opts)
                continue
            # At the end: has the log been rotated under us? Then the old file is complete
            # (rotation waits for writers) and the new one starts at its beginning.
            try:
                rotated = os.stat(path).st_ino != os.fstat(current.fileno()).st_ino
            except FileNotFoundError:
                rotated = True
            if rotated:
                rest = current.read()
                if rest:
                    data = partial + rest
                    lines = data.split(b"\n")
                    partial = lines.pop()
                    yield from _filtered((ln + b"\n" for ln in lines), opts)
                current.close()
                current = None
                partial = b""
                continue
            stop.wait(opts.poll_interval)
    finally:
        if current is not None:
            current.close()
