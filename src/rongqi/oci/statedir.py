"""Container state on disk: <root>/<id>/state.json, the exec fifo, locking, status.

The state directory is the container: every command (and the engine, in-process)
reads it, so `rongqi-oci list` sees every container whoever made it.
"""

from __future__ import annotations

import errno
import os

from rongqi import locking as _locking
from rongqi.errors import ContainerNotFound, RongqiError
from rongqi.fastjson import JSONError, dumps, loads

OCI_VERSION = "1.2.0"
STATE_FILE = "state.json"
FIFO = "exec.fifo"

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(cid: str) -> None:
    if not cid:
        raise RongqiError("container id cannot be empty")
    if cid in (".", "..") or not set(cid) <= _ID_CHARS or len(cid) > 1024:
        raise RongqiError(f"invalid container id {cid!r}: use letters, digits and _+-. only")


class State:
    """What a container is, as kept in state.json."""

    __slots__ = ("id", "pid", "pid_start", "bundle", "rootfs", "created", "owner", "annotations",
                 "cgroup", "hooks", "config", "dir", "root")

    def __init__(self, root: str, cid: str):
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self.pid = 0
        self.pid_start = 0
        self.bundle = ""
        self.rootfs = ""
        self.created = ""
        self.owner = ""
        self.annotations: dict[str, str] = {}
        self.cgroup: dict | None = None
        self.hooks: dict | None = None  # raw hooks from config.json (poststart, poststop)
        self.config = ""  # path of the copy of config.json kept in the state dir (exec reads it)

    _FIELDS = ("id", "pid", "pid_start", "bundle", "rootfs", "created", "owner", "annotations", "cgroup",
               "hooks", "config")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self._FIELDS}

    def save(self) -> None:
        """Write state.json atomically (write a temp file, rename over)."""
        tmp = os.path.join(self.dir, STATE_FILE + ".tmp")
        write_private(tmp, dumps(self.to_dict()).encode())
        os.rename(tmp, os.path.join(self.dir, STATE_FILE))

    def hook_json(self, status: str, pid: int) -> bytes:
        """The runtime-spec state given to hooks (and to a seccomp agent) on their stdin."""
        return dumps({"ociVersion": OCI_VERSION, "id": self.id, "status": status, "pid": pid,
                      "bundle": self.bundle, "annotations": self.annotations or {}}).encode()

    # -- status ---------------------------------------------------------------
    def init_alive(self) -> bool:
        if self.pid <= 0:
            return False
        start, state = proc_stat(self.pid)
        return start == self.pid_start and state not in ("Z", "X", "x", "")

    def status(self) -> str:
        if not self.init_alive():
            return "stopped"
        if self.cgroup and self._frozen():
            return "paused"  # also a created container that was paused, as runc says
        if os.path.exists(os.path.join(self.dir, FIFO)):
            return "created"
        return "running"

    def _frozen(self) -> bool:
        try:
            from rongqi.linux import cgroups

            return cgroups.Cgroup.from_dict(self.cgroup or {}).is_frozen()
        except (ImportError, OSError, AttributeError):
            return False

    def oci_state(self) -> dict:
        """The runtime-spec state (runc's field set, in runc's order)."""
        status = self.status()
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations or {},
        }


def write_private(path: str, data: bytes) -> None:
    """path (created or truncated, mode 0600) holds data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def proc_stat(pid: int) -> tuple[int, str]:
    """(start time in clock ticks, state letter) of a process; (0, "") if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0, ""
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


def state_dir(root: str, cid: str) -> str:
    return os.path.join(root, cid)


def load(root: str, cid: str) -> State:
    validate_id(cid)
    d = state_dir(root, cid)
    try:
        with open(os.path.join(d, STATE_FILE), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    except NotADirectoryError:
        raise ContainerNotFound(cid) from None
    try:
        doc = loads(raw)
    except JSONError as err:
        raise RongqiError(f"container {cid}: state file {d}/{STATE_FILE} is corrupt ({err}); "
                          f"remove it with `rongqi-oci delete --force {cid}`") from None
    s = State(root, cid)
    for k in State._FIELDS:
        if k in doc:
            setattr(s, k, doc[k])
    return s


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE)))


class Lock(_locking.Lock):
    """An exclusive flock on the container's state dir: one command at a time per container."""

    __slots__ = ()

    def __init__(self, path: str):
        super().__init__(path, directory=True)
        try:
            self.acquire()
        except _locking.LockError as err:
            if isinstance(err.oserror, (FileNotFoundError, NotADirectoryError)):
                raise ContainerNotFound(os.path.basename(path)) from None
            raise

    def __enter__(self) -> Lock:
        return self  # taken in __init__ already


def make_dir(root: str, cid: str) -> str:
    """Create the state dir; it existing means the id is taken."""
    from rongqi.errors import ContainerExists

    validate_id(cid)
    try:
        os.makedirs(root, 0o711, exist_ok=True)
    except OSError as err:
        raise RongqiError(f"cannot create the runtime root {root}: {err.strerror}") from None
    d = state_dir(root, cid)
    try:
        os.mkdir(d, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    # Not narrowed by the caller's umask: the init opens exec.fifo in here as the container's
    # user, after it changed to it (see init._await_start).
    try:
        os.chmod(d, 0o711)
    except BaseException:
        os.rmdir(d)  # the id is not taken by a create that failed
        raise
    return d


def remove_dir(d: str) -> None:
    """Remove a state dir (files only, one level: that is all it holds)."""
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for n in names:
        try:
            os.unlink(os.path.join(d, n))
        except IsADirectoryError:
            os.rmdir(os.path.join(d, n))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(d)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise
