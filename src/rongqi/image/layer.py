"""Applying a layer tar (plain, gzip or zstd; streamed) to a directory, with no way out of it.

Every path is resolved component by component from a directory fd with O_NOFOLLOW, so no
entry, symlink or hardlink can write outside the layer root; whiteouts become overlayfs
whiteouts (a layer unpacked on its own) or deletions (layers flattened into one tree).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tarfile
import zlib

try:  # ISA-L's inflate is about twice as fast as zlib's; optional (pip install isal)
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - depends on the environment
    _inflate_lib = zlib  # type: ignore[assignment]
from dataclasses import dataclass
from typing import IO, Any

from rongqi.image.errors import LayerError

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# Unprivileged appliers cannot set trusted.*: kernel overlay mounted with `userxattr` (in a user
# namespace) and fuse-overlayfs both read the user.* form instead.
USER_OPAQUE_XATTR = "user.overlay.opaque"
# Owners an unprivileged applier cannot set are recorded as containers/storage does with
# force_mask ("uid:gid:0mode:type"), the form fuse-overlayfs's xattr_permissions=2 presents.
OVERRIDE_STAT_XATTR = "user.containers.override_stat"
_ZERO = bytes(CHUNK)
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _GzipReader:
    """gzip (including multi-member, as pigz writes) decompressed in large chunks."""

    def __init__(self, raw: IO[bytes], head: bytes):
        self.raw, self.buf, self.pending = raw, bytearray(), head
        self.z = _inflate_lib.decompressobj(31)
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buf) < n):
            data = self.pending or self.raw.read(CHUNK)
            self.pending = b""
            if not data:
                if not self.z.eof:
                    raise LayerError("layer is truncated: gzip stream ends early")
                self.eof = True
                break
            try:
                self.buf += self.z.decompress(data)
                while self.z.eof and self.z.unused_data:
                    rest = self.z.unused_data
                    self.z = _inflate_lib.decompressobj(31)
                    self.buf += self.z.decompress(rest)
            except (zlib.error, _inflate_lib.error) as e:
                raise LayerError(f"layer is not valid gzip: {e}") from None
        if n < 0:
            n = len(self.buf)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class _PrefixReader:
    def __init__(self, raw: IO[bytes], head: bytes):
        self.raw, self.head = raw, head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            if n < 0:
                return out + self.raw.read()
            if len(out) < n:
                out += self.raw.read(n - len(out))
            return out
        return self.raw.read(n)


class _DigestReader:
    """Decompresses and hashes on a second thread, one MiB ahead of the tar reader.

    zlib, zstd and sha256 release the GIL, so on two cores this overlaps with the entry
    parsing and file creation of the reading thread; the queue bounds memory to a few MiB.
    """

    _DEPTH = 8

    def __init__(self, inner: object):
        import queue
        import threading
        self.inner = inner
        self.h = hashlib.sha256()
        self.size = 0
        self._q: queue.Queue[bytes | BaseException | None] = queue.Queue(self._DEPTH)
        self._buf = b""
        self._pos = 0
        self._consumed = 0
        self._eof = False
        self._stop = False
        self._thread = threading.Thread(target=self._produce, name="layer-decompress",
                                        daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        import queue
        import threading
        # sha256 costs as much as inflating here: a third thread does it, in order.
        hq: queue.Queue[bytes | None] = queue.Queue(self._DEPTH)

        def digest() -> None:
            while (chunk := hq.get()) is not None:
                self.h.update(chunk)
        hasher = threading.Thread(target=digest, name="layer-digest", daemon=True)
        hasher.start()
        try:
            while not self._stop:
                chunk = self.inner.read(CHUNK)  # type: ignore[attr-defined]
                if not chunk:
                    break
                hq.put(chunk)
                self.size += len(chunk)
                self._q.put(chunk)
            hq.put(None)
            hasher.join()
            self._q.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread
            hq.put(None)
            self._q.put(e)

    def read(self, n: int = -1) -> bytes:
        out = []
        while n < 0 or n > 0:
            if self._pos >= len(self._buf):
                if self._eof:
                    break
                item = self._q.get()
                if item is None:
                    self._eof = True
                    break
                if isinstance(item, BaseException):
                    self._eof = True
                    raise item
                self._buf, self._pos = item, 0
            take = len(self._buf) - self._pos if n < 0 else min(n, len(self._buf) - self._pos)
            out.append(self._buf[self._pos:self._pos + take] if take != len(self._buf)
                       else self._buf)
            self._pos += take
            self._consumed += take
            if n > 0:
                n -= take
        return out[0] if len(out) == 1 else b"".join(out)

    # tarfile's random-access mode reads the file object directly (its stream mode copies
    # every read through a buffer); it only ever seeks forward when members are read in
    # order, which is all this reader allows.
    def tell(self) -> int:
        return self._consumed

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._consumed:
            raise OSError("layer stream: backward seek")
        while self._consumed < pos:
            if not self.read(min(CHUNK, pos - self._consumed)):
                break
        return self._consumed

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
        self._thread.join()

    def close(self) -> None:
        """Stop the producer early (an error in the tar); it may be blocked on a full queue."""
        self._stop = True
        while self._thread.is_alive():
            try:
                self._q.get(timeout=0.05)
            except Exception:  # noqa: BLE001 - queue.Empty: look again
                pass


def decompressed(raw: IO[bytes]) -> IO[bytes]:
    """Sniff the compression from the magic bytes (media types are not always honest)."""
    head = raw.read(4)
    if head[:2] == b"\x1f\x8b":
        return _GzipReader(raw, head)  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(_PrefixReader(raw, head),
                                                           read_size=CHUNK)
    return _PrefixReader(raw, head)  # type: ignore[return-value]


@dataclass
class LayerStats:
    diff_id: str
    size: int
    entries: int


class LayerApplier:
    """Applies layer tars under `root`.

    whiteouts="overlay": a whiteout becomes a 0/0 character device and an opaque marker the
    trusted.overlay.opaque xattr (user.overlay.opaque when not root) (the layer is one overlayfs
    lowerdir). whiteouts="delete": the whiteout removes what lower layers put there (layers
    flattened into one tree).

    Not root (rootless): device nodes are refused, files belong to the applier, and each entry's
    owner and mode from the tar are recorded in user.containers.override_stat (record_owner).
    """

    def __init__(self, root: str, *, whiteouts: str = "overlay", same_owner: bool | None = None,
                 allow_devices: bool | None = None, record_owner: bool | None = None):
        if whiteouts not in ("overlay", "delete"):
            raise ValueError(whiteouts)
        self.root = root
        self.whiteouts = whiteouts
        is_root = os.geteuid() == 0
        self.same_owner = is_root if same_owner is None else same_owner
        self.allow_devices = is_root if allow_devices is None else allow_devices
        self.record_owner = (not self.same_owner) if record_owner is None else record_owner
        self.opaque_xattr = OVERLAY_OPAQUE_XATTR if is_root else USER_OPAQUE_XATTR
        self._root_fd = -1
        self._fds: dict[tuple[str, ...], int] = {}
        self._stale: list[int] = []
        self._written: set[tuple[str, ...]] = set()
        self._dirs: list[tuple[tuple[str, ...], int, float]] = []
        self._entry = ""
        self._fresh = False

    # -- path resolution, never leaving root --------------------------------------------------
    def _fail(self, why: str) -> LayerError:
        return LayerError(f"layer entry {self._entry!r}: {why}; nothing was written outside "
                          "the layer root")

    def _clean(self, name: str) -> tuple[str, ...]:
        out: list[str] = []
        for part in name.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not out:
                    raise self._fail("path escapes the layer root")
                out.pop()
            else:
                out.append(part)
        return tuple(out)

    def _forget_fds(self) -> None:
        # Closed once the current entry is done: its own parent fd may be among them.
        self._stale.extend(self._fds.values())
        self._fds.clear()

    def _close_stale(self) -> None:
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()

    def _dir_fd(self, parts: tuple[str, ...], create: bool = True) -> int:
        """An fd for the directory at `parts`, following symlinks only while inside root."""
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        if parts:
            parent = self._fds.get(parts[:-1])
            if parent is not None:
                # One step from a cached parent; symlinks and oddities take the slow path.
                try:
                    fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
                except FileNotFoundError:
                    if create:
                        try:
                            os.mkdir(parts[-1], 0o755, dir_fd=parent)
                            self._written.add(parts)
                            fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
                        except OSError:
                            fd = None
                except OSError:
                    fd = None
                if fd is not None:
                    self._cache(parts, fd)
                    return fd
        stack: list[tuple[str, int]] = []
        pending = list(parts)
        links = 0
        cur = self._root_fd
        opened: list[int] = []
        try:
            while pending:
                comp = pending.pop(0)
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if not stack:
                        raise self._fail("a symlink leads out of the layer root")
                    stack.pop()
                    cur = stack[-1][1] if stack else self._root_fd
                    continue
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise self._fail(f"{'/'.join(parts)} does not exist in the layer") \
                            from None
                    os.mkdir(comp, 0o755, dir_fd=cur)
                    self._written.add(tuple(n for n, _ in stack) + (comp,))
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.lstat(comp, dir_fd=cur)
                    if not stat.S_ISLNK(st.st_mode):
                        raise self._fail(f"{comp} is not a directory") from None
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise self._fail("too many levels of symlinks") from None
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        # An absolute target means the layer root, as the container will see it.
                        stack.clear()
                        cur = self._root_fd
                    pending[:0] = target.split("/")
                    continue
                opened.append(nfd)
                stack.append((comp, nfd))
                cur = nfd
            fd = os.dup(cur)
        finally:
            for o in opened:
                os.close(o)
        self._cache(parts, fd)
        return fd

    def _cache(self, parts: tuple[str, ...], fd: int) -> None:
        if len(self._fds) >= 1024:
            self._forget_fds()
        self._fds[parts] = fd

    def _parent(self, parts: tuple[str, ...], create: bool = True) -> tuple[int, str]:
        return self._dir_fd(parts[:-1], create), parts[-1]

    # -- helpers --------------------------------------------------------------------------------
    def _remove(self, dfd: int, name: str) -> None:
        try:
            st = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dfd)
            self._forget_fds()
        else:
            if stat.S_ISLNK(st.st_mode):
                self._forget_fds()
            os.unlink(name, dir_fd=dfd)

    def _xattrs(self, member: tarfile.TarInfo, dfd: int, name: str) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            raw = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(f"/proc/self/fd/{dfd}/{name}", attr, raw, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                    raise

    def _record(self, target: int | str, member: tarfile.TarInfo) -> None:
        """Keep the owner we could not set (see OVERRIDE_STAT_XATTR). The kernel allows user.*
        xattrs on files and directories only: a fifo's or symlink's owner is skipped (device
        nodes never get here rootless)."""
        if member.isdir():
            kind = "dir"
        elif member.isreg():
            kind = "file"
        else:
            return
        value = f"{member.uid}:{member.gid}:0{member.mode & 0o7777:o}:{kind}".encode()
        try:
            if isinstance(target, int):
                os.setxattr(target, OVERRIDE_STAT_XATTR, value)
            else:
                os.setxattr(target, OVERRIDE_STAT_XATTR, value, follow_symlinks=False)
        except OSError as e:
            # A filesystem without user xattrs (tmpfs before 6.6): owners are then skipped.
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise

    def _owner_mode_time(self, member: tarfile.TarInfo, dfd: int, name: str) -> None:
        if self.same_owner:
            os.chown(name, member.uid, member.gid, dir_fd=dfd, follow_symlinks=False)
        elif self.record_owner and not member.issym():
            self._record(f"/proc/self/fd/{dfd}/{name}", member)
        if not member.issym():
            os.chmod(name, member.mode & 0o7777, dir_fd=dfd)
        os.utime(name, ns=(int(member.mtime * 1e9),) * 2, dir_fd=dfd, follow_symlinks=False)

    # -- entries --------------------------------------------------------------------------------
    def _whiteout(self, parts: tuple[str, ...], base: str) -> None:
        dfd = self._dir_fd(parts[:-1])
        if base == OPAQUE_MARKER:
            if self.whiteouts == "overlay":
                os.setxattr(f"/proc/self/fd/{dfd}", self.opaque_xattr, b"y")
            else:
                prefix = parts[:-1]
                for child in os.listdir(dfd):
                    if prefix + (child,) not in self._written:
                        self._remove(dfd, child)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk and friends), meaningless here
        target = base[len(WHITEOUT_PREFIX):]
        if not target or target in (".", ".."):
            raise self._fail("bad whiteout name")
        self._remove(dfd, target)
        if self.whiteouts == "overlay":
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd)

    def _write_file(self, tf: tarfile.TarFile, member: tarfile.TarInfo, dfd: int,
                    name: str) -> None:
        src = tf.extractfile(member)
        assert src is not None
        self._create_file(dfd, name, member, src)

    def _create_file(self, dfd: int, name: str, member: tarfile.TarInfo, src: Any) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            hole = False
            while chunk := src.read(CHUNK):
                if len(chunk) == CHUNK and chunk == _ZERO:
                    os.lseek(fd, CHUNK, os.SEEK_CUR)
                    hole = True
                else:
                    _write_all(fd, chunk)
            if hole:
                os.ftruncate(fd, member.size)
            for attr, raw in _xattrs_of(member):
                try:
                    os.setxattr(fd, attr, raw)
                except OSError as e:
                    if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                        raise
            if self.same_owner:
                os.fchown(fd, member.uid, member.gid)
            elif self.record_owner:
                self._record(fd, member)
            os.fchmod(fd, member.mode & 0o7777)
            ns = int(member.mtime * 1e9)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _apply_member(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self._entry = member.name
        parts = self._clean(member.name)
        if not parts:
            return  # the root itself: its owner and mode belong to whoever made it
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, base)
            return
        dfd, name = self._parent(parts)
        if member.isdir():
            self._written.add(parts)
            try:
                os.mkdir(name, 0o755, dir_fd=dfd)
            except FileExistsError:
                st = os.lstat(name, dir_fd=dfd)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove(dfd, name)
                    os.mkdir(name, 0o755, dir_fd=dfd)
            if self.same_owner:
                os.chown(name, member.uid, member.gid, dir_fd=dfd, follow_symlinks=False)
            elif self.record_owner:
                self._record(f"/proc/self/fd/{dfd}/{name}", member)
            self._xattrs(member, dfd, name)
            # Modes and times of directories last: later entries would change the times,
            # and a read-only mode would stop an unprivileged applier from filling it.
            self._dirs.append((parts, member.mode & 0o7777, member.mtime))
            return
        if parts in self._written or not self._fresh:
            self._remove(dfd, name)  # in a root that started empty nothing else can be here
        self._written.add(parts)
        if member.isreg():
            self._write_file(tf, member, dfd, name)
            return
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=dfd)
        elif member.islnk():
            tparts = self._clean(member.linkname)
            if not tparts:
                raise self._fail("hardlink to the layer root")
            tdfd, tname = self._parent(tparts, create=False)
            try:
                os.link(tname, name, src_dir_fd=tdfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise self._fail(f"hardlink target {member.linkname!r} is not in the layer") \
                    from None
            return  # a hardlink shares its target's owner, mode and times
        elif member.ischr() or member.isblk():
            if not self.allow_devices:
                raise self._fail("device nodes are not allowed here (rootless or untrusted)")
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(name, kind | (member.mode & 0o7777),
                         os.makedev(member.devmajor, member.devminor), dir_fd=dfd)
            except PermissionError:
                raise self._fail("cannot create a device node without privilege") from None
        elif member.isfifo():
            os.mkfifo(name, member.mode & 0o7777, dir_fd=dfd)
        else:
            return
        self._xattrs(member, dfd, name)
        self._owner_mode_time(member, dfd, name)

    def _finish_dirs(self) -> None:
        for parts, mode, mtime in reversed(self._dirs):
            try:
                dfd, name = self._parent(parts, create=False)
                fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            except (OSError, LayerError):
                continue  # replaced or removed by a later entry
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(int(mtime * 1e9),) * 2)
            finally:
                os.close(fd)

    def apply(self, stream: IO[bytes]) -> LayerStats:
        """Apply one (possibly compressed) layer tar; returns its diff_id and size."""
        reader = _DigestReader(decompressed(stream))
        self._root_fd = os.open(self.root, _DIR_FLAGS)
        self._fresh = not os.listdir(self._root_fd)
        entries = 0
        try:
            try:
                with tarfile.open(fileobj=reader, mode="r:") as tf:  # type: ignore[call-overload]
                    for member in tf:
                        entries += 1
                        self._apply_member(tf, member)
                        if self._stale:
                            self._close_stale()
            except tarfile.TarError as e:
                raise LayerError(f"layer is not a valid tar: {e}") from None
            except (zlib.error, EOFError) as e:
                raise LayerError(f"layer is truncated or corrupt: {e}") from None
            except OSError as e:
                if type(e).__name__ == "ZstdError":
                    raise LayerError(f"layer is not valid zstd: {e}") from None
                raise
            self._finish_dirs()
            reader.drain()
        finally:
            reader.close()
            self._forget_fds()
            self._stale, stale = [], self._stale
            for fd in stale:
                os.close(fd)
            os.close(self._root_fd)
            self._root_fd = -1
            self._written.clear()
            self._dirs.clear()
        return LayerStats("sha256:" + reader.h.hexdigest(), reader.size, entries)


def _xattrs_of(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    return [(k[len("SCHILY.xattr."):], v.encode("utf-8", "surrogateescape"))
            for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def apply_layer(root: str, stream: IO[bytes], **kw: object) -> LayerStats:
    return LayerApplier(root, **kw).apply(stream)  # type: ignore[arg-type]
