"""Trees read and written as tar entries with every path resolved inside a root directory.

A RootDir wraps a directory fd (a container's /proc/PID/root, its mounted snapshot, or the
host's "/"); every lookup goes through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), and
every change is made relative to a resolved parent fd without following the final component,
so a symlink planted in a container can never lead a read or a write out to the host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from rongqi.errors import RongqiError
from rongqi.linux import syscall as sysc

RESOLVE = sysc.RESOLVE_IN_ROOT | sysc.RESOLVE_NO_MAGICLINKS
O_PATH = getattr(os, "O_PATH", 0o10000000)
_MAX_LINKS = 40
CHUNK = 1 << 20
# Overlay's own bookkeeping never travels in a tar: whiteouts and opaque dirs are written as
# .wh. entries instead, and the other trusted.overlay.* keys mean nothing outside that mount.
_SKIP_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

# A tar entry and the way to read its data (regular files only).
Opener = Callable[[], IO[bytes]]
Entry = tuple[tarfile.TarInfo, "Opener | None"]


class CopyError(RongqiError):
    """A cp/export/commit that cannot go on; the message names the path as the user wrote it."""


@dataclass
class IdMapper:
    """Container ids <-> host ids from the OCI spec's linux.uidMappings/gidMappings (empty:
    the identity, a container without a user namespace)."""

    uids: list[tuple[int, int, int]] = field(default_factory=list)   # (container, host, size)
    gids: list[tuple[int, int, int]] = field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: dict) -> "IdMapper":
        linux = spec.get("linux") or {}

        def ranges(key: str) -> list[tuple[int, int, int]]:
            return [(int(m["containerID"]), int(m["hostID"]), int(m["size"]))
                    for m in linux.get(key) or []]
        return cls(ranges("uidMappings"), ranges("gidMappings"))

    @staticmethod
    def _map(ranges: list[tuple[int, int, int]], value: int, to_host: bool) -> int:
        if not ranges:
            return value
        for cid, hid, size in ranges:
            src, dst = (cid, hid) if to_host else (hid, cid)
            if src <= value < src + size:
                return dst + value - src
        # The kernel shows an unmapped id as the overflow id, 65534: so does this.
        return 65534

    def uid_to_host(self, uid: int) -> int:
        return self._map(self.uids, uid, True)

    def gid_to_host(self, gid: int) -> int:
        return self._map(self.gids, gid, True)

    def uid_to_container(self, uid: int) -> int:
        return self._map(self.uids, uid, False)

    def gid_to_container(self, gid: int) -> int:
        return self._map(self.gids, gid, False)


def clean(path: str) -> str:
    """An absolute, normalized path ("" and "." are the root)."""
    p = posixpath.normpath("/" + path)
    return "/" + p.lstrip("/")   # normpath keeps a leading "//" (POSIX allows it to differ)


_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def walk(top: int, rel: str = "") -> Iterator[tuple[str, int, list[tuple[str, os.stat_result]]]]:
    """(relative dir path, its fd, [(name, lstat)] sorted) for the tree under the directory fd
    `top`, parents first; the caller may drop names from the list to skip those directories.

    os.fwalk and shutil.rmtree are not enough against a tree that a running container changes
    under us: both open a subdirectory by name *following* a symlink swapped in after their
    stat (and fwalk stats through symlinks), which can open a host device. Here every open is
    O_DIRECTORY | O_NOFOLLOW, so a swapped-in link or node fails the open instead."""
    entries = []
    with os.scandir(top) as it:
        for e in it:
            try:
                entries.append((e.name, e.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    entries.sort()
    yield rel, top, entries
    for name, st in entries:
        if not stat.S_ISDIR(st.st_mode):
            continue
        try:
            fd = os.open(name, _DIR_NOFOLLOW, dir_fd=top)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            if e.errno == errno.ELOOP:
                continue   # became a symlink since the listing: not followed
            raise
        try:
            yield from walk(fd, posixpath.join(rel, name) if rel else name)
        finally:
            os.close(fd)


def remove_tree_at(dfd: int, name: str) -> None:
    """rm -rf of dfd/name without ever following a symlink (see walk)."""
    try:
        fd = os.open(name, _DIR_NOFOLLOW, dir_fd=dfd)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            os.unlink(name, dir_fd=dfd)
            return
        if e.errno == errno.ENOENT:
            return
        raise
    try:
        with os.scandir(fd) as it:
            children = [(c.name, c.is_dir(follow_symlinks=False)) for c in it]
        for child, is_dir in children:
            if is_dir:
                remove_tree_at(fd, child)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dfd)


def open_regular(dfd: int, name: str, flags: int, expect: os.stat_result | None = None) -> int:
    """Open dfd/name for reading or writing only if it is a regular file (the same inode as
    `expect`, when given). The name is first opened O_PATH | O_NOFOLLOW and checked, then
    reopened through /proc/self/fd: a container cannot swap in a device node or fifo whose
    mere opening would act on a host device."""
    pfd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode) or (
                expect is not None and (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino)):
            raise CopyError(f"{name}: not a regular file (or replaced while being copied)")
        return os.open(f"/proc/self/fd/{pfd}", flags | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(pfd)


class RootDir:
    """A directory tree whose paths are all resolved inside its root."""

    def __init__(self, fd: int, label: str, *, sys: sysc.Syscalls | None = None):
        self.fd = fd
        self.label = label        # "container NAME" or "the host", for error lines
        self.sys = sys or sysc.SYSCALLS

    @classmethod
    def open(cls, path: str, label: str) -> "RootDir":
        return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), label)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "RootDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups -----------------------------------------------------------------------------
    def openat(self, path: str, flags: int = O_PATH, mode: int = 0) -> int:
        """openat2 inside the root; a rename racing a ".." lookup (EAGAIN) is retried."""
        rel = clean(path).lstrip("/") or "."
        for _ in range(16):
            try:
                return self.sys.openat2(self.fd, rel, flags | os.O_CLOEXEC, mode, RESOLVE)
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    e.filename = path
                    raise
        raise OSError(errno.EAGAIN, "lookup kept racing with renames", path)

    def parent(self, path: str) -> tuple[int, str]:
        """(an O_PATH fd of the parent directory, the last component); the fd is the caller's."""
        path = clean(path)
        if path == "/":
            raise OSError(errno.EISDIR, "the root itself has no parent", path)
        head, name = posixpath.split(path)
        return self.openat(head, O_PATH | os.O_DIRECTORY), name

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry at path without following its last component (None: it does not exist)."""
        path = clean(path)
        try:
            if path == "/":
                fd = self.openat("/")
                try:
                    return os.fstat(fd)
                finally:
                    os.close(fd)
            pfd, name = self.parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(pfd)

    def resolve(self, path: str) -> str:
        """path with its last component's symlinks followed as the root sees them (what podman
        names a copied link by); each step is an in-root lstat, nothing outside is looked at."""
        path = clean(path)
        for _ in range(_MAX_LINKS):
            st = self.lstat(path)
            if st is None or not stat.S_ISLNK(st.st_mode):
                return path
            pfd, name = self.parent(path)
            try:
                target = os.readlink(name, dir_fd=pfd)
            finally:
                os.close(pfd)
            path = clean(target if target.startswith("/")
                         else posixpath.join(posixpath.dirname(path), target))
        raise OSError(errno.ELOOP, "too many levels of symbolic links", path)


# -- reading a tree -------------------------------------------------------------------------------
def _info(name: str, st: os.stat_result, ids: IdMapper | None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    uid, gid = st.st_uid, st.st_gid
    if ids is not None:
        uid, gid = ids.uid_to_container(uid), ids.gid_to_container(gid)
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    # Whole seconds unless the file has more: a fraction costs a PAX header per entry.
    ti.mtime = st.st_mtime_ns // 1_000_000_000 if st.st_mtime_ns % 1_000_000_000 == 0 \
        else st.st_mtime_ns / 1e9
    return ti


def _xattrs(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for key in os.listxattr(path, follow_symlinks=False):
            if key.startswith(_SKIP_XATTR_PREFIXES):
                continue
            with contextlib.suppress(OSError):
                value = os.getxattr(path, key, follow_symlinks=False)
                out["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
    return out


class TreeReader:
    """Tar entries for a file or a directory tree, walked by fds (walk(): O_NOFOLLOW)."""

    def __init__(self, root: RootDir, *, ids: IdMapper | None = None, xattrs: bool = False,
                 skip: Callable[[str, os.stat_result], bool] | None = None):
        self.root = root
        self.ids = ids
        self.xattrs = xattrs
        self.skip = skip      # skip(path in the root, stat) -> True: leave the entry out
        self._links: dict[tuple[int, int], str] = {}

    def _entry(self, dfd: int, name: str, arc: str, st: os.stat_result) -> Entry | None:
        ti = _info(arc, st, self.ids)
        mode = st.st_mode
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._links.get(key)
            if first is not None:
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, first, ti.mode
                return ti, None
            self._links[key] = arc
        if self.xattrs and not stat.S_ISLNK(mode):
            ti.pax_headers.update(_xattrs(f"/proc/self/fd/{dfd}/{name}"))
        if stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISREG(mode):
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            return ti, _file_opener(dfd, name, st)
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dfd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            return None   # sockets: tar has no type for them
        return ti, None

    def entry(self, path: str, arcname: str) -> Iterator[Entry]:
        """The one entry at `path` (a directory without its contents), named `arcname`."""
        path = clean(path)
        if path == "/":
            top = self.root.openat("/", os.O_RDONLY | os.O_DIRECTORY)
            try:
                e = self._entry(top, ".", arcname, os.fstat(top))
                if e is not None:
                    yield e
            finally:
                os.close(top)
            return
        pfd, name = self.root.parent(path)
        try:
            e = self._entry(pfd, name, arcname, os.stat(name, dir_fd=pfd, follow_symlinks=False))
            if e is not None:
                yield e
        finally:
            os.close(pfd)

    def entries(self, path: str, arcname: str) -> Iterator[Entry]:
        """The entry at `path` named `arcname`, then (a directory) everything below it as
        arcname/...; arcname "" gives a directory's contents without the directory itself."""
        path = clean(path)
        if path == "/":
            top = self.root.openat("/", os.O_RDONLY | os.O_DIRECTORY)
            st = os.fstat(top)
        else:
            pfd, name = self.root.parent(path)
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    if arcname:
                        e = self._entry(pfd, name, arcname, st)
                        if e is not None:
                            yield e
                    return
                top = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=pfd)
            finally:
                os.close(pfd)
        try:
            if arcname:
                e = self._entry(top, ".", arcname, st)
                if e is not None:
                    yield e
            prefix = arcname + "/" if arcname else ""
            for rel, dfd, listing in walk(top):
                keep = []
                for name, est in listing:
                    inner = posixpath.join(path, rel, name)
                    if self.skip is not None and self.skip(inner, est):
                        continue
                    keep.append((name, est))
                    e = self._entry(dfd, name, prefix + posixpath.join(rel, name), est)
                    if e is not None:
                        yield e
                listing[:] = keep
        finally:
            os.close(top)


def _file_opener(dfd: int, name: str, st: os.stat_result) -> Opener:
    # Opened when the consumer asks (the walk's dfd is still open then), and only if it is
    # still the regular file that was listed.
    def opener() -> IO[bytes]:
        return os.fdopen(open_regular(dfd, name, os.O_RDONLY, st), "rb", buffering=0)
    return opener


def tar_entries(stream: IO[bytes]) -> Iterator[Entry]:
    """Entries of a tar stream (plain or compressed; read once, front to back)."""
    from rongqi.image.layer import decompressed
    try:
        with tarfile.open(fileobj=decompressed(stream), mode="r|") as tf:  # type: ignore[call-overload]
            for m in tf:
                if m.isreg():
                    yield m, (lambda m=m: tf.extractfile(m))   # type: ignore[misc]
                else:
                    yield m, None
    except tarfile.TarError as e:
        raise CopyError(f"the input is not a valid tar archive: {e}") from None


# -- writing ------------------------------------------------------------------------------------
class TarSink:
    """Entries written as one tar stream (PAX: long names, sub-second times, xattrs)."""

    def __init__(self, out: IO[bytes]):
        self.tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)

    def add(self, ti: tarfile.TarInfo, data: Opener | None) -> None:
        if ti.isreg() and data is not None:
            with data() as f:
                self.tf.addfile(ti, f)   # type: ignore[arg-type]
        else:
            self.tf.addfile(ti)

    def close(self) -> None:
        self.tf.close()


def _clean_member(name: str) -> list[str] | None:
    """A tar member's path as components under the extraction base; None: it climbs out."""
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(part)
    return out


class TreeWriter:
    """Tar entries extracted under `base` (a path inside `root`): podman cp's put side.

    rename: (first component in the archive, name to give it) as `cp dir newname` needs.
    owner: (uid, gid) for every entry (cp without -a: the container's user), or None to keep
    the entries' own (mapped to the host through `ids`). Replacing a directory by a file or
    a file by a directory is refused unless overwrite is set, as podman's copier does.
    """

    def __init__(self, root: RootDir, base: str, *, rename: tuple[str, str] | None = None,
                 owner: tuple[int, int] | None = None, ids: IdMapper | None = None,
                 overwrite: bool = False, xattrs: bool = False, display: str = ""):
        self.root = root
        self.base = clean(base)
        self.rename = rename
        self.owner = owner
        self.ids = ids or IdMapper()
        self.overwrite = overwrite
        self.xattrs = xattrs
        self.display = display or root.label
        self.chown = os.geteuid() == 0
        self._dirs: list[tuple[str, int, float]] = []
        self._parents: dict[str, int] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _path(self, member: str) -> str | None:
        parts = _clean_member(member)
        if parts is None:
            raise CopyError(f"archive entry {member!r} leads outside the destination")
        if not parts:
            return None
        if self.rename is not None and parts[0] == self.rename[0]:
            parts[0] = self.rename[1]
        return posixpath.join(self.base, *parts)

    def _forget(self) -> None:
        for fd in self._parents.values():
            os.close(fd)
        self._parents.clear()

    def _parent(self, path: str) -> tuple[int, str]:
        head, name = posixpath.split(path)
        fd = self._parents.get(head)
        if fd is None:
            try:
                fd = self.root.openat(head, O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                self._mkdirs(head)
                fd = self.root.openat(head, O_PATH | os.O_DIRECTORY)
            if len(self._parents) > 256:
                self._forget()
            self._parents[head] = fd
        return fd, name

    def _mkdirs(self, path: str) -> None:
        """mkdir -p inside the root, for archives that name files before (or without) their
        directories; new directories get the owner rule and mode 0755."""
        if path == "/" or self.root.lstat(path) is not None:
            return
        self._mkdirs(posixpath.dirname(path))
        pfd, name = self.root.parent(path)
        try:
            os.mkdir(name, 0o755, dir_fd=pfd)
            if self.chown and self.owner is not None:
                os.chown(name, *self.owner, dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            pass
        finally:
            os.close(pfd)

    def _ids(self, ti: tarfile.TarInfo) -> tuple[int, int]:
        if self.owner is not None:
            return self.owner
        return self.ids.uid_to_host(ti.uid), self.ids.gid_to_host(ti.gid)

    def _shown(self, path: str) -> str:
        return f'"{path}"'

    def _remove(self, pfd: int, name: str, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            remove_tree_at(pfd, name)   # never follows a link out (shutil.rmtree may)
        else:
            os.unlink(name, dir_fd=pfd)
        self._forget()

    def _set_xattrs(self, target: int | str, ti: tarfile.TarInfo) -> None:
        if not self.xattrs:
            return
        for key, value in ti.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                with contextlib.suppress(OSError):
                    os.setxattr(target, key[len("SCHILY.xattr."):],
                                value.encode("utf-8", "surrogateescape"))

    # -- entries ---------------------------------------------------------------------------
    def add(self, ti: tarfile.TarInfo, data: Opener | None) -> None:
        path = self._path(ti.name)
        if path is None:
            return   # "." in an archive: the destination directory is not the archive's
        if posixpath.basename(path) in ("", "..", "."):
            raise CopyError(f"archive entry {ti.name!r} has no name")
        pfd, name = self._parent(path)
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if ti.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                if not self.overwrite:
                    raise CopyError(f"cannot overwrite non-directory {self._shown(path)} with "
                                    "directory")
                self._remove(pfd, name, existing)
                pfd, name = self._parent(path)
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=pfd)
            if self.chown:
                os.chown(name, *self._ids(ti), dir_fd=pfd, follow_symlinks=False)
            self._dirs.append((path, ti.mode & 0o7777, ti.mtime))
            if self.xattrs:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
                try:
                    self._set_xattrs(fd, ti)
                finally:
                    os.close(fd)
            return
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                if not self.overwrite:
                    raise CopyError(f"cannot overwrite directory {self._shown(path)} with "
                                    "non-directory")
                self._remove(pfd, name, existing)
                pfd, name = self._parent(path)
            else:
                try:
                    os.unlink(name, dir_fd=pfd)
                except OSError as e:
                    # A bind-mounted file (a running container's /etc/hosts): written in place.
                    if e.errno != errno.EBUSY or not ti.isreg():
                        raise
                    self._write_into(pfd, name, ti, data)
                    return
                if stat.S_ISLNK(existing.st_mode):
                    # Cached parents may have been reached through that link.
                    self._forget()
                    pfd, name = self._parent(path)
        if ti.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=pfd)
            self._fill(fd, ti, data)
        elif ti.issym():
            os.symlink(ti.linkname, name, dir_fd=pfd)
            if self.chown:
                os.chown(name, *self._ids(ti), dir_fd=pfd, follow_symlinks=False)
            os.utime(name, ns=(_ns(ti.mtime),) * 2, dir_fd=pfd, follow_symlinks=False)
        elif ti.islnk():
            target = self._path(ti.linkname)
            if target is None:
                raise CopyError(f"archive entry {ti.name!r}: hardlink to the destination itself")
            tfd, tname = self.root.parent(target)
            try:
                os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                raise CopyError(f"archive entry {ti.name!r}: hardlink target {ti.linkname!r} "
                                "is not in the archive") from None
            finally:
                os.close(tfd)
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
            dev = os.makedev(ti.devmajor, ti.devminor) if not ti.isfifo() else 0
            try:
                os.mknod(name, kind | 0o600, dev, dir_fd=pfd)
            except PermissionError:
                raise CopyError(f"cannot create device node {self._shown(path)} without "
                                "privilege") from None
            self._meta_by_path(pfd, name, kind, ti)

    def _fill(self, fd: int, ti: tarfile.TarInfo, data: Opener | None) -> None:
        try:
            if data is not None:
                with data() as src:
                    while chunk := src.read(CHUNK):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
            self._set_xattrs(fd, ti)
            if self.chown:
                os.fchown(fd, *self._ids(ti))
            os.fchmod(fd, ti.mode & 0o7777)
            os.utime(fd, ns=(_ns(ti.mtime),) * 2)
        finally:
            os.close(fd)

    def _write_into(self, pfd: int, name: str, ti: tarfile.TarInfo, data: Opener | None) -> None:
        self._fill(open_regular(pfd, name, os.O_WRONLY | os.O_TRUNC), ti, data)

    def _meta_by_path(self, pfd: int, name: str, kind: int, ti: tarfile.TarInfo) -> None:
        # chmod has no "do not follow" on Linux: an O_PATH fd of the very inode we made, checked
        # to be that kind, is changed through its /proc/self/fd link instead of by name.
        fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
                raise CopyError(f"{name}: replaced while it was being copied")
            link = f"/proc/self/fd/{fd}"
            if self.chown:
                os.chown(link, *self._ids(ti))
            os.chmod(link, ti.mode & 0o7777)
            os.utime(link, ns=(_ns(ti.mtime),) * 2)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Modes and times of directories last (their entries changed the times, and a
        read-only mode would stop the entries from being written)."""
        self._forget()
        for path, mode, mtime in reversed(self._dirs):
            try:
                fd = self.root.openat(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except OSError:
                continue   # replaced by a later entry
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(_ns(mtime),) * 2)
            finally:
                os.close(fd)
        self._dirs.clear()


def _ns(mtime: float) -> int:
    return int(round(mtime * 1e9)) if isinstance(mtime, float) else int(mtime) * 1_000_000_000
