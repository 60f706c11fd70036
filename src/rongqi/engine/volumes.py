"""Named volumes: ROOT/volumes/NAME/volume.json + _data/, their options, copy-up from the
image on first use, and the in-use check (computed from container configs, never counted).

podman's wording for every error a user can cause; the CLI (cli/volumes.py) only prints.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.errors import RongqiError
from rongqi.values import dataclass, field

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# The local driver's options, as podman's: type/device/o are handed to mount(8) when a
# container uses the volume; the rest are podman's own.
_LOCAL_OPTIONS = ("type", "device", "o", "uid", "gid", "copy", "nocopy", "size", "inodes",
                  "noquota")
_DATA = "_data"


class VolumeError(RongqiError):
    """A volume operation refused; str() is podman's wording."""

    exit_code = 125


class NoSuchVolume(VolumeError):
    exit_code = 1

    def __init__(self, name: str):
        super().__init__(f'no volume with name "{name}" found: no such volume')
        self.name = name


class VolumeExists(VolumeError):
    def __init__(self, name: str):
        super().__init__(f"volume with name {name} already exists: volume already exists")


class VolumeInUse(VolumeError):
    exit_code = 2

    def __init__(self, name: str, users: list[str]):
        super().__init__(f"volume {name} is being used by the following container(s): "
                         f"{', '.join(users)}: volume is being used")
        self.name = name
        self.users = users


def _now() -> str:
    """RFC 3339 with nanoseconds, UTC, as podman records CreatedAt."""
    import datetime  # not on run's path (which makes no volume)
    import time
    ns = time.time_ns()
    t = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9:09d}Z"


@dataclass
class Volume:
    """One volume's record (volume.json) and where its data lives."""

    name: str
    path: str                           # ROOT/volumes/NAME
    driver: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""
    anonymous: bool = False
    needs_copy_up: bool = True          # cleared once a container mounted it (copied or not)
    needs_chown: bool = True
    uid: int | None = None              # the uid=/gid= options, or who it was chowned to
    gid: int | None = None

    @property
    def mountpoint(self) -> str:
        return os.path.join(self.path, _DATA)

    @property
    def mount_type(self) -> str:
        """"" for a plain directory; else the filesystem (tmpfs, nfs, ...) of its options."""
        return self.options.get("type", "")

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "driver": self.driver, "labels": self.labels,
                "options": self.options, "created": self.created, "anonymous": self.anonymous,
                "needs_copy_up": self.needs_copy_up, "needs_chown": self.needs_chown,
                "uid": self.uid, "gid": self.gid}

    def inspect(self) -> dict[str, Any]:
        """podman volume inspect's shape."""
        out: dict[str, Any] = {
            "Name": self.name, "Driver": self.driver, "Mountpoint": self.mountpoint,
            "CreatedAt": self.created, "Labels": dict(self.labels), "Scope": "local",
            "Options": dict(self.options), "MountCount": 0,
        }
        # podman's omitempty: each shows only while true
        if self.needs_copy_up:
            out["NeedsCopyUp"] = True
        if self.needs_chown:
            out["NeedsChown"] = True
        if self.anonymous:
            out["Anonymous"] = True
        if self.uid is not None:
            out["UID"] = self.uid
        if self.gid is not None:
            out["GID"] = self.gid
        return out


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise VolumeError("running volume create option: names must match "
                          "[a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument")


def is_volume_name(source: str) -> bool:
    """-v SRC:DST: a source that is not a path names a volume (docker's and podman's rule)."""
    return bool(source) and not source.startswith(("/", ".", "~"))


class VolumeStore:
    """The volumes of the graph root ROOT, in ROOT/volumes; every change is made under
    ROOT/volumes/.lock."""

    def __init__(self, root: str):
        self.root = os.path.join(root, "volumes")

    @contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        from rongqi.locking import Lock
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        with Lock(os.path.join(self.root, ".lock"), shared=shared):
            yield

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _load(self, name: str) -> Volume:
        if not _NAME.match(name):
            raise NoSuchVolume(name)
        path = self._dir(name)
        try:
            with open(os.path.join(path, "volume.json")) as f:
                d = json.load(f)
        except FileNotFoundError:
            raise NoSuchVolume(name) from None
        except (OSError, ValueError) as e:
            raise VolumeError(f"volume {name}: unreadable record: {e}") from None
        return Volume(name=name, path=path, driver=d.get("driver", "local"),
                      labels=d.get("labels") or {}, options=d.get("options") or {},
                      created=d.get("created", ""), anonymous=bool(d.get("anonymous")),
                      needs_copy_up=bool(d.get("needs_copy_up", True)),
                      needs_chown=bool(d.get("needs_chown", True)),
                      uid=d.get("uid"), gid=d.get("gid"))

    def _save(self, vol: Volume) -> None:
        tmp = os.path.join(vol.path, f".volume.json.{os.urandom(4).hex()}")
        with open(tmp, "w") as f:
            json.dump(vol.record(), f)
        os.rename(tmp, os.path.join(vol.path, "volume.json"))

    # -- the API -------------------------------------------------------------------------------
    def create(self, name: str = "", driver: str = "local", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, *, anonymous: bool = False,
               ignore_existing: bool = False) -> Volume:
        """A new volume (a random 64-hex name when none is given). ignore_existing returns the
        existing one instead of failing (podman's --ignore, and -v NAME:/dst)."""
        if driver not in ("local", ""):
            raise VolumeError(f"volume {name} uses volume plugin {driver} but it could not be "
                              f"retrieved: no volume plugin with name {driver} available: "
                              "required plugin missing")
        options = dict(options or {})
        for key in options:
            if key not in _LOCAL_OPTIONS:
                raise VolumeError(f"invalid mount option {key} for driver 'local': "
                                  "invalid argument")
        if options.get("device") and not options.get("type"):
            options.setdefault("type", "none")  # mount(8)'s "none": a bind of device
        uid = gid = None
        for key in ("uid", "gid"):
            if key in options:
                try:
                    value = int(options[key])
                except ValueError:
                    raise VolumeError(f"cannot convert {key} {options[key]} to integer: "
                                      "invalid argument") from None
                if key == "uid":
                    uid = value
                else:
                    gid = value
        if not name:
            name = os.urandom(32).hex()
        check_name(name)
        with self._lock():
            path = self._dir(name)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                if ignore_existing:
                    return self._load(name)
                raise VolumeExists(name) from None
            try:
                os.mkdir(os.path.join(path, _DATA), 0o755)
                if uid is not None or gid is not None:
                    os.chown(os.path.join(path, _DATA), -1 if uid is None else uid,
                             -1 if gid is None else gid)
                vol = Volume(name=name, path=path, driver="local", labels=dict(labels or {}),
                             options=options, created=_now(), anonymous=anonymous,
                             uid=uid, gid=gid)
                self._save(vol)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
        self._event("create", name)
        return vol

    def _event(self, action: str, name: str) -> None:
        """podman's `volume create|remove` events, for every face (and -v, rm -v, prune)."""
        from rongqi.engine import events
        events.emit(os.path.dirname(self.root), "volume", action, name=name)

    def get(self, name: str) -> Volume:
        with self._lock(shared=True):
            return self._load(name)

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except NoSuchVolume:
            return False

    def list(self) -> list[Volume]:
        with self._lock(shared=True):
            try:
                names = sorted(os.listdir(self.root))
            except FileNotFoundError:
                return []
            out = []
            for n in names:
                if n.startswith("."):
                    continue
                try:
                    out.append(self._load(n))
                except VolumeError:
                    continue  # half-made by a create that died: not a volume
            return out

    def remove(self, name: str, force: bool = False, engine: Any = None,
               timeout: float | None = None) -> None:
        """Remove a volume; one that containers use is refused, or with force the containers
        are removed first (podman's rm -f; timeout: seconds their stop waits before the
        kill). Without an engine no container is looked at."""
        vol = self.get(name)
        users = in_use(name, engine) if engine is not None else []
        if users:
            if not force:
                raise VolumeInUse(name, users)
            for cid in users:
                engine.remove(cid, force=True, timeout=timeout)
        with self._lock():
            self._load(name)  # still there: two rm at once give one error
            # Renamed away first so a crash mid-removal leaves no half a volume under its name.
            trash = os.path.join(self.root, f".rm-{name}-{os.urandom(4).hex()}")
            os.rename(vol.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        self._event("remove", name)

    def prune(self, engine: Any = None, filters: dict[str, list[str]] | None = None) -> list[str]:
        """Remove every volume no container uses; returns their names."""
        removed = []
        for vol in self.list():
            if filters and not matches(vol, filters):
                continue
            if engine is not None and in_use(vol.name, engine):
                continue
            try:
                self.remove(vol.name, engine=engine)
            except (NoSuchVolume, VolumeInUse):
                continue
            removed.append(vol.name)
        return removed

    def prepare(self, vol: Volume, source: str | None, *, owner: tuple[int, int] = (0, 0)
                ) -> None:
        """First use by a container: copy the image's files at the mount point (source, a
        directory already resolved inside the image's root, or None) into an empty volume, as
        docker does, owners as they are on the host; with nothing to copy, the volume goes to
        owner (the container user's host ids, podman's NeedsChown). Later uses change
        nothing."""
        if vol.mount_type or not vol.needs_copy_up:
            return
        with self._lock():
            vol = self._load(vol.name)
            if not vol.needs_copy_up:
                return
            data = vol.mountpoint
            copy_up = vol.options.get("copy", "true") != "false" and "nocopy" not in vol.options
            if copy_up and source and os.path.isdir(source) and not os.listdir(data):
                copy_tree(source, data)
            elif vol.needs_chown and vol.uid is None and vol.gid is None and owner != (0, 0):
                os.chown(data, *owner)
            vol.needs_copy_up = False
            vol.needs_chown = False
            self._save(vol)


def matches(vol: Volume, filters: dict[str, list[str]]) -> bool:
    """podman's volume filters: name, driver, label (key or key=value), label!, anonymous,
    opt. Values of one key are ORed, keys ANDed."""
    for key, values in filters.items():
        if key == "name":
            ok = any(re.search(v, vol.name) for v in values)
        elif key == "driver":
            ok = vol.driver in values
        elif key in ("label", "label!"):
            def has(v: str) -> bool:
                k, eq, want = v.partition("=")
                return k in vol.labels and (not eq or vol.labels[k] == want)
            ok = any(has(v) for v in values) if key == "label" else not any(has(v)
                                                                          for v in values)
        elif key == "opt":
            ok = any(vol.options.get(v.partition("=")[0]) == v.partition("=")[2]
                     if "=" in v else v in vol.options for v in values)
        elif key == "anonymous":
            ok = any((v.lower() in ("true", "1")) == vol.anonymous for v in values)
        elif key == "dangling":
            ok = True  # decided by the caller, which knows the containers
        else:
            raise VolumeError(f"{key} is an invalid volume filter")
        if not ok:
            return False
    return True


def in_use(name: str, engine: Any) -> list[str]:
    """Ids of the containers whose config names the volume (any status)."""
    users = []
    for c in engine.list(all=True):
        if name in (c.config.get("volumes") or []):
            users.append(c.id)
    return users


def copy_tree(src: str, dst: str) -> None:
    """Copy src's contents into the existing directory dst keeping modes, owners, times,
    symlinks (never followed), hard links, xattrs and device nodes; dst takes src's mode and
    owner, as a copied-up volume does in docker."""
    links: dict[tuple[int, int], str] = {}
    root = os.geteuid() == 0

    def meta(path: str, st: os.stat_result) -> None:
        try:
            os.lchown(path, st.st_uid, st.st_gid)
        except PermissionError:
            if root:
                raise  # an ordinary user keeps their own files: others' ids are not theirs
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def walk(s: str, d: str) -> None:
        with os.scandir(s) as it:
            entries = list(it)
        for e in entries:
            sp, dp = e.path, os.path.join(d, e.name)
            st = e.stat(follow_symlinks=False)
            key = (st.st_dev, st.st_ino)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in links:
                os.link(links[key], dp)
                continue
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(dp, 0o700)
                walk(sp, dp)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(sp), dp)
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(sp, dp, follow_symlinks=False)
            elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                os.mknod(dp, st.st_mode, st.st_rdev)
            else:
                continue  # sockets are not content
            _copy_xattrs(dp, sp)
            meta(dp, st)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                links[key] = dp

    walk(src, dst)
    st = os.stat(src, follow_symlinks=False)
    _copy_xattrs(dst, src)
    meta(dst, st)


def _copy_xattrs(dst: str, src_path: str) -> None:
    try:
        names = os.listxattr(src_path, follow_symlinks=False)
    except OSError:
        return
    for n in names:
        try:
            os.setxattr(dst, n, os.getxattr(src_path, n, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
