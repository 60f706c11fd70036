"""Container records on disk: config.json (fixed at create), state.json (changes, written by
temp file + rename under the container's lock), the lock itself, and names reserved atomically.

Layout (docs/engine.md): ROOT/containers/ID/{config.json,state.json,lock,bundle/,userdata/},
ROOT/names/NAME (holds the id; made with link(2), which fails atomically if the name exists),
ROOT/names.lock (taken before any container's lock, never after), RUN/ID/ (the monitor's).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.engine import status as st
from rongqi.errors import EngineError, NameInUse, NoSuchContainer
from rongqi.locking import Lock, is_held

if TYPE_CHECKING:
    import datetime

CONFIG = "config.json"
STATE = "state.json"
EXIT = "exit.json"
MONITOR_LOCK = "monitor.lock"
# podman's rule for names: [a-zA-Z0-9][a-zA-Z0-9_.-]*
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")

# Default names: adjective_surname, as podman (and docker) make them.
_ADJECTIVES = (
    "admiring", "agitated", "amazing", "beautiful", "blissful", "bold", "brave", "busy",
    "charming", "cheerful", "clever", "cool", "curious", "dazzling", "determined", "eager",
    "elastic", "elegant", "epic", "exciting", "festive", "fervent", "focused", "friendly",
    "gallant", "gifted", "gracious", "happy", "hopeful", "inspiring", "intelligent", "jolly",
    "keen", "kind", "laughing", "lucid", "magical", "modest", "musing", "nice", "nifty",
    "nostalgic", "optimistic", "peaceful", "practical", "priceless", "quirky", "relaxed",
    "serene", "sharp", "silly", "stoic", "sweet", "tender", "trusting", "upbeat", "vibrant",
    "vigilant", "wizardly", "youthful", "zealous", "zen",
)
_SURNAMES = (
    "agnesi", "archimedes", "babbage", "banach", "bohr", "boole", "brahmagupta", "cantor",
    "cerf", "chebyshev", "curie", "darwin", "dijkstra", "euclid", "euler", "faraday", "fermat",
    "fermi", "feynman", "franklin", "galileo", "gauss", "germain", "goldberg", "hamilton",
    "hawking", "heisenberg", "hertz", "hilbert", "hopper", "hypatia", "kepler", "knuth",
    "kovalevskaya", "lamarr", "laplace", "leibniz", "liskov", "lovelace", "maxwell", "meitner",
    "mendel", "montalcini", "napier", "newton", "noether", "pascal", "planck", "poincare",
    "ramanujan", "riemann", "ritchie", "shannon", "somerville", "tesla", "thompson", "torvalds",
    "turing", "volta", "wiles", "wu", "yalow", "zhang",
)


# Ids and temp names come from os.urandom directly, as secrets.token_hex does: importing
# secrets (random, hmac, hashlib, base64) costs ~10 ms of every `rongqi run`.
def _token_hex(n: int) -> str:
    return os.urandom(n).hex()


def _choice(words: tuple[str, ...]) -> str:
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]


def new_id() -> str:
    return _token_hex(32)


def random_name() -> str:
    return f"{_choice(_ADJECTIVES)}_{_choice(_SURNAMES)}"


def check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise EngineError("names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument")


def now() -> str:
    """RFC 3339 with nanoseconds' width (microseconds padded), UTC, as podman's timestamps."""
    ns = time.time_ns()
    t = time.gmtime(ns // 1_000_000_000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06d000Z" % (
        t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
        ns // 1000 % 1_000_000)


def parse_time(text: str) -> datetime.datetime | None:
    """The inverse of now() (and of the runtime's rfc3339nano); None for "" or junk."""
    import datetime  # not on run's path: ps, inspect and wait read times

    if not text:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text)
    if not m:
        return None
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = m.group(3) or "Z"
    base = datetime.datetime.fromisoformat(m.group(1) + "." + frac
                                           + ("+00:00" if tz == "Z" else tz))
    return base.astimezone(datetime.timezone.utc)


def write_json_atomic(path: str, doc: Any, mode: int = 0o600, *, durable: bool = False) -> None:
    """Temp file in the same dir, rename: a reader sees the old or the new, never half.

    durable: fsync before the rename (config.json, written once). state.json is rewritten at
    every step, and an fsync costs 10-60 ms on a busy disk: it goes without (ext4 flushes a
    file replaced by rename; and a state lost in a crash is what sync repairs)."""
    tmp = f"{path}.{os.getpid()}.{_token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            # One line, no indent: json's C encoder then does it (with an indent the pure
            # Python one runs: ~10 ms for a bundle's config.json, seccomp profile and all).
            f.write(json.dumps(doc))
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def new_state() -> dict[str, Any]:
    return {"status": st.CREATED, "pid": 0, "monitor_pid": 0, "started_at": "",
            "finished_at": "", "exit_code": 0, "oom_killed": False, "reason": "", "error": "",
            "restart_count": 0, "stop_requested": False, "health": None, "exec_ids": [],
            "cleaned": True, "starting": False}


class Container:
    """One container: `config` (what create decided), `state` (what changes), a lock, paths.

    Every mutating operation: `with c.lock(): c.sync(); status.check(...); act; c.save_state()`.
    """

    def __init__(self, records: Records, cid: str, config: dict[str, Any],
                 state: dict[str, Any] | None = None):
        self.records = records
        self.id = cid
        self.config = config
        self.state: dict[str, Any] = state if state is not None else new_state()

    # -- paths -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.get("name", "")

    @property
    def dir(self) -> str:
        return os.path.join(self.records.containers_dir, self.id)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.records.runroot, self.id)

    @property
    def bundle(self) -> str:
        return os.path.join(self.dir, "bundle")

    @property
    def userdata(self) -> str:
        return os.path.join(self.dir, "userdata")

    @property
    def log_path(self) -> str:
        return self.config.get("log_path") or os.path.join(self.userdata, "ctr.log")

    @property
    def exit_path(self) -> str:
        return os.path.join(self.run_dir, EXIT)

    @property
    def monitor_lock_path(self) -> str:
        return os.path.join(self.run_dir, MONITOR_LOCK)

    @property
    def status(self) -> str:
        return self.state.get("status", st.CREATED)

    # -- lock, sync, save --------------------------------------------------------------------
    def lock(self, shared: bool = False, blocking: bool = True) -> Lock:
        """The container's lock; never created here (create makes it with the record dir),
        so a removed container's lock is a LockError, not a new empty record dir."""
        return Lock(os.path.join(self.dir, "lock"), shared=shared, blocking=blocking,
                    create=False)

    def monitor_alive(self) -> bool:
        return is_held(self.monitor_lock_path)

    def sync(self) -> bool:
        """Re-read state.json and fold in what happened without us; True if the state changed.

        A process that ended leaves RUN/ID/exit.json (written by its monitor): its exit code
        and time become the state. A status that says alive with neither a live monitor nor
        an exit record means the monitor died (RUN/ID still there) or the host rebooted
        (RUN/ID gone): exited, with that reason, and `cleaned` false so the caller (holding
        the lock exclusively) deletes what the runtime and storage still hold.
        """
        try:
            self.state = read_json(os.path.join(self.dir, STATE))
        except FileNotFoundError:
            raise NoSuchContainer(self.id) from None
        if self.state.get("starting"):
            return self._fold_interrupted_start()
        if self.status not in st.ALIVE:
            return False
        exit_doc = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            exit_doc = read_json(self.exit_path)
        if exit_doc is not None and exit_doc.get("pid") in (None, 0, self.state.get("pid")):
            self.fold_exit(exit_doc)
            # The monitor cleans up before it writes the record; if it is gone too, be sure.
            self.state["cleaned"] = not self.monitor_alive() and bool(exit_doc.get("cleaned"))
            return True
        if self.monitor_alive():
            return False
        reason = "monitor died" if os.path.isdir(self.run_dir) else "host rebooted"
        self.state.update(status=st.EXITED, exit_code=255 if reason == "host rebooted" else 137,
                          finished_at=now(), reason=reason, pid=0, monitor_pid=0,
                          cleaned=False)
        return True

    def _fold_interrupted_start(self) -> bool:
        """`starting` is set (and saved) by start before it forks the monitor, and cleared
        when it saves what the monitor reported, all under the container's lock. Seen by
        anyone who has the lock, it means that CLI died in between: the monitor, if it
        runs, says what became of the container."""
        self.state["starting"] = False
        if self.monitor_alive():
            self.state.update(status=st.RUNNING, pid=_read_int(os.path.join(self.run_dir,
                                                                             "pidfile")),
                              monitor_pid=_read_int(os.path.join(self.run_dir, "monitor.pid")),
                              started_at=self.state.get("started_at") or now())
            return True
        exit_doc = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            exit_doc = read_json(self.exit_path)
        if exit_doc is not None:
            self.fold_exit(exit_doc)
        else:
            self.state.update(error="its start was interrupted", pid=0, monitor_pid=0)
        self.state["cleaned"] = False
        return True

    def fold_exit(self, doc: dict[str, Any]) -> None:
        self.state.update(status=st.EXITED, exit_code=int(doc.get("exit_code", 0)),
                          finished_at=doc.get("finished_at") or now(),
                          oom_killed=bool(doc.get("oom_killed")), reason=doc.get("reason", ""),
                          pid=0, monitor_pid=0)

    def save_state(self) -> None:
        write_json_atomic(os.path.join(self.dir, STATE), self.state)

    def save_config(self, durable: bool = True) -> None:
        """Only create (and rename, for `name`) write config.json."""
        write_json_atomic(os.path.join(self.dir, CONFIG), self.config, durable=durable)

    def short_id(self) -> str:
        return self.id[:12]

    def __repr__(self) -> str:
        return f"Container({self.short_id()} {self.name} {self.status})"


class Records:
    """The set of containers under ROOT (records) and RUN (the monitors' run dirs)."""

    def __init__(self, root: str, runroot: str):
        self.root = root
        self.runroot = runroot
        self.containers_dir = os.path.join(root, "containers")
        self.names_dir = os.path.join(root, "names")
        for d in (self.containers_dir, self.names_dir):
            os.makedirs(d, 0o700, exist_ok=True)

    def names_lock(self) -> Lock:
        return Lock(os.path.join(self.root, "names.lock"))

    # -- names -------------------------------------------------------------------------------
    def name_owner(self, name: str) -> str:
        try:
            with open(os.path.join(self.names_dir, name)) as f:
                return f.read().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return ""

    def reserve_name(self, name: str, cid: str) -> None:
        """Atomically claim `name` for `cid` (link(2) of a filled temp file: no one ever reads
        an empty reservation); NameInUse if someone has it."""
        check_name(name)
        path = os.path.join(self.names_dir, name)
        tmp = os.path.join(self.names_dir, f".{cid}.{_token_hex(4)}")
        with open(tmp, "x") as f:
            f.write(cid)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise NameInUse(name, self.name_owner(name) or "another container") from None
        finally:
            os.unlink(tmp)

    def release_name(self, name: str, cid: str) -> None:
        """Drop `name` if (and only if) it is still `cid`'s."""
        if name and self.name_owner(name) == cid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.names_dir, name))

    def unique_name(self, cid: str) -> str:
        """Reserve a fresh adjective_noun name (retrying on the rare collision)."""
        for attempt in range(200):
            name = random_name() if attempt < 100 else f"{random_name()}{attempt}"
            try:
                self.reserve_name(name, cid)
                return name
            except NameInUse:
                continue
        raise EngineError("could not find a free container name")

    # -- lookup ------------------------------------------------------------------------------
    def make_dir(self, cid: str) -> tuple[str, Lock]:
        """ROOT/containers/ID, born with its lock file held by the caller: made as a hidden
        temp dir, locked, then renamed into place, so nobody ever sees it unlocked while
        its creator lives (the sweep of killed creates relies on that)."""
        tmp = os.path.join(self.containers_dir, f".new-{cid}")
        os.mkdir(tmp, 0o700)
        lock = Lock(os.path.join(tmp, "lock"))
        try:
            lock.acquire()
            os.rename(tmp, os.path.join(self.containers_dir, cid))
        except BaseException:
            lock.release()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return os.path.join(self.containers_dir, cid), lock

    def ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.containers_dir)
                          if len(n) == 64 and os.path.isfile(os.path.join(self.containers_dir,
                                                                          n, CONFIG)))
        except FileNotFoundError:
            return []

    def load(self, cid: str) -> Container:
        d = os.path.join(self.containers_dir, cid)
        try:
            config = read_json(os.path.join(d, CONFIG))
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchContainer(cid) from None
        try:
            state = read_json(os.path.join(d, STATE))
        except FileNotFoundError:
            raise NoSuchContainer(cid) from None
        return Container(self, cid, config, state)

    def resolve(self, ref: str) -> str:
        """An id, a name or a unique id prefix -> the id (podman's order)."""
        if not ref:
            raise NoSuchContainer(ref)
        if len(ref) == 64 and os.path.isfile(os.path.join(self.containers_dir, ref, CONFIG)):
            return ref
        if "/" not in ref and not ref.startswith("."):
            owner = self.name_owner(ref)
            if owner and os.path.isdir(os.path.join(self.containers_dir, owner)):
                return owner
        if all(c in "0123456789abcdef" for c in ref):
            hits = [i for i in self.ids() if i.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise EngineError(f'more than one result for container "{ref}": '
                                  "container already exists")
        raise NoSuchContainer(ref)

    def get(self, ref: str) -> Container:
        cid = self.resolve(ref)
        try:
            return self.load(cid)
        except NoSuchContainer:
            raise NoSuchContainer(ref) from None

    def all(self) -> Iterator[Container]:
        for cid in self.ids():
            with contextlib.suppress(NoSuchContainer, ValueError):
                yield self.load(cid)
