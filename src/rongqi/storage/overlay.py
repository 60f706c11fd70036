"""Unpacked layers by chain id (shared, read-only) and overlayfs snapshots per container.

A layer is unpacked once into layers/<chain>/diff (temp dir, then rename); a snapshot is
upper/ + work/ over those dirs, mounted at rootfs/ by kernel overlayfs (root, or a user
namespace with `userxattr`) or fuse-overlayfs (rootless); where none can be mounted the
snapshot is a flattened copy instead, and Snapshot.note says why.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable

from rongqi.image.errors import ImageError, LayerError
from rongqi.image.store import ImageStore
from rongqi.locking import Lock
from rongqi.values import asdict, dataclass, field

DEFAULT_ROOT = "/var/lib/rongqi/overlay"
# image/layer.py's names for them (it imports tarfile, bz2, lzma: only unpacking needs it,
# not `run`, so it is imported there).
OVERLAY_OPAQUE = "trusted.overlay.opaque"
USER_OPAQUE = "user.overlay.opaque"
MODES = ("auto", "overlay", "copy", "fuse-overlayfs", "userns")
FUSE_OVERLAYFS = "fuse-overlayfs"
_CWD_LOCK = threading.Lock()
_PAGE = 4096


class StorageError(ImageError):
    pass


def _sha256_hex(data: bytes) -> str:
    """hashlib.sha256(data).hexdigest() for a few bytes, without hashlib's import (it loads
    OpenSSL: ~5 ms of every `rongqi run`, which computes its image's chain ids)."""
    try:
        from _sha256 import sha256  # CPython's own implementation (3.11)
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The OCI chain ids: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else
                   "sha256:" + _sha256_hex(f"{out[-1]} {d}".encode()))
    return out


@dataclass
class Snapshot:
    """A container's writable root: `rootfs` is what the bundle points at."""

    id: str
    path: str
    mode: str  # "overlay", "userns" (kernel overlay in a user namespace), "fuse-overlayfs", "copy"
    chain_ids: list[str]
    note: str = field(default="")  # how the mode was chosen, for the user to read
    # Kernel overlay's `volatile` (Linux >= 5.10): no sync of the upper dir at unmount or on
    # the container's fsync(2) calls. For snapshots that do not outlive their container's
    # run (`run --rm`), as podman sets it; the unmount's syncfs of the host filesystem was
    # 10-60 ms of that path on a busy disk.
    volatile: bool = False

    @property
    def rootfs(self) -> str:
        return os.path.join(self.path, "rootfs")

    @property
    def upper(self) -> str:
        return os.path.join(self.path, "upper")

    @property
    def work(self) -> str:
        return os.path.join(self.path, "work")


def _hex(chain_id: str) -> str:
    algo, _, h = chain_id.partition(":")
    if algo != "sha256" or len(h) != 64:
        raise StorageError(f"bad chain id {chain_id!r}")
    return h


def in_user_namespace() -> bool:
    """True inside a user namespace other than the initial one (its uid_map is not the identity)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def rootless() -> bool:
    """Without real root: kernel overlay, owners and device nodes are not ours to make."""
    return os.geteuid() != 0 or in_user_namespace()


def _is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


class LayerStorage:
    """layers/<chain>/diff shared by every snapshot; snapshots/<id>/{upper,work,rootfs}."""

    def __init__(self, root: str = DEFAULT_ROOT, mode: str = "auto"):
        if mode not in MODES:
            raise ValueError(mode)
        self.root = os.path.abspath(root)
        self.mode = mode
        self.layers_dir = os.path.join(self.root, "layers")
        self.links_dir = os.path.join(self.root, "l")
        self.snap_dir = os.path.join(self.root, "snapshots")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.lock_dir = os.path.join(self.root, "locks")
        for d in (self.layers_dir, self.links_dir, self.snap_dir, self.tmp_dir, self.lock_dir):
            os.makedirs(d, exist_ok=True)
        from rongqi.linux.syscall import Syscalls
        self.sys = Syscalls()

    # -- layers ------------------------------------------------------------------------------
    def layer_path(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, _hex(chain_id), "diff")

    def has_layer(self, chain_id: str) -> bool:
        return os.path.isdir(self.layer_path(chain_id))

    def _lock(self, name: str, shared: bool = False) -> Lock:
        return Lock(os.path.join(self.lock_dir, name + ".lock"), shared=shared)

    def ensure_layer(self, chain_id: str, unpack: Callable[[str], None]) -> str:
        """Unpack a layer once: `unpack(dir)` fills a temp dir that is renamed on success."""
        path = self.layer_path(chain_id)
        if os.path.isdir(path):
            return path
        with self._lock("gc", shared=True), self._lock("layer-" + _hex(chain_id)):
            if os.path.isdir(path):
                return path
            tmp = os.path.join(self.tmp_dir, f"{_hex(chain_id)}-{os.urandom(4).hex()}")
            os.makedirs(os.path.join(tmp, "diff"), mode=0o755)
            try:
                unpack(os.path.join(tmp, "diff"))
                short = os.urandom(13).hex().upper()
                with open(os.path.join(tmp, "link"), "w") as f:
                    f.write(short)
                os.symlink(f"../layers/{_hex(chain_id)}/diff", os.path.join(self.links_dir, short))
                os.rename(tmp, os.path.dirname(path))
            except BaseException:
                _rmtree(tmp, ignore_errors=True)
                raise
        return path

    def layer_size(self, chain_id: str) -> int | None:
        """The layer's uncompressed tar size, recorded when it was unpacked (None: unknown,
        not unpacked or unpacked before sizes were recorded)."""
        try:
            with open(os.path.join(self.layers_dir, _hex(chain_id), "size")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def _short(self, chain_id: str) -> str:
        with open(os.path.join(self.layers_dir, _hex(chain_id), "link")) as f:
            return f.read().strip()

    def unpack_image(self, store: ImageStore, manifest_digest: str,
                     parallel: int = 1) -> list[str]:
        """Unpack every layer of an image (verifying diff_ids); returns its chain ids.

        Layers go to separate dirs, so they can be unpacked at once (`parallel` threads):
        decompression, hashing and file writes release the GIL.
        """
        manifest = store.manifest(manifest_digest)
        config = store.read_json(manifest["config"]["digest"])
        return self.unpack_layers(store, manifest, config, parallel=parallel)

    def unpack_layers(self, store: ImageStore, manifest: dict, config: dict, *,
                      parallel: int = 1, cancelled: threading.Event | None = None) -> list[str]:
        """unpack_image for a manifest and config in hand; with `cancelled` given, layers still
        downloading in this process are unpacked as they arrive (store.follow_blob)."""
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        layers = manifest["layers"]
        if len(diff_ids) != len(layers):
            raise LayerError(f"image: {len(layers)} layers but {len(diff_ids)} diff_ids in "
                             "its config")
        chains = chain_ids(diff_ids)

        def one(desc: dict, diff_id: str, chain: str) -> None:
            def unpack(dest: str) -> None:
                if cancelled is not None:
                    f = store.follow_blob(desc["digest"], cancelled)
                else:
                    f = store.open_blob(desc["digest"])
                with f:
                    try:
                        from rongqi.image import layer as image_layer
                        stats = image_layer.LayerApplier(dest).apply(f)
                    except LayerError as e:
                        raise LayerError(f"layer {desc['digest'][:19]}: {e}") from None
                if stats.diff_id != diff_id:
                    raise LayerError(f"layer {desc['digest']}: uncompressed digest "
                                     f"{stats.diff_id} does not match the config's {diff_id}")
                # the uncompressed size: what podman and docker call an image's size
                with open(os.path.join(os.path.dirname(dest), "size"), "w") as sf:
                    sf.write(str(stats.size))
            self.ensure_layer(chain, unpack)

        todo = [(d, i, c) for d, i, c in zip(layers, diff_ids, chains) if not self.has_layer(c)]
        if parallel <= 1 or len(todo) <= 1:
            for args in todo:
                one(*args)
        else:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                futures = [pool.submit(one, *args) for args in todo]
                errors = []
                for f in futures:
                    try:
                        f.result()
                    except Exception as e:  # noqa: BLE001 - the first is raised below
                        errors.append(e)
                        if cancelled is not None:
                            cancelled.set()
                if errors:
                    # Layers abandoned because another one failed are not the story.
                    from rongqi.image.store import FollowAborted
                    errors.sort(key=lambda e: isinstance(e, FollowAborted))
                    raise errors[0]
        return chains

    # -- snapshots ---------------------------------------------------------------------------
    def _meta_path(self, snap_id: str) -> str:
        return os.path.join(self.snap_dir, snap_id, "snapshot.json")

    def create_snapshot(self, snap_id: str, chains: list[str], *, mount: bool = True,
                        volatile: bool = False) -> Snapshot:
        """A writable root over `chains` (bottom layer first), mounted at snapshot.rootfs;
        volatile: see Snapshot.volatile (kernel overlay only; ignored where unsupported)."""
        if not snap_id or "/" in snap_id or snap_id.startswith("."):
            raise StorageError(f"bad snapshot id {snap_id!r}")
        for c in chains:
            if not self.has_layer(c):
                raise StorageError(f"layer {c} is not unpacked")
        path = os.path.join(self.snap_dir, snap_id)
        with self._lock("gc", shared=True):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                raise StorageError(f"snapshot {snap_id} already exists") from None
            for d in ("upper", "work", "rootfs"):
                os.mkdir(os.path.join(path, d), 0o755)
            mode, note = self._initial_mode()
            snap = Snapshot(snap_id, path, mode, list(chains), note, volatile)
            self._save(snap)
        if mount:
            try:
                self.mount(snap)
            except BaseException:
                self.remove_snapshot(snap_id)
                raise
        return snap

    def _initial_mode(self) -> tuple[str, str]:
        """The first mount to try. As root: kernel overlay. Inside a user namespace (the
        container's, or `unshare -Urm`): kernel overlay with userxattr (Linux >= 5.11).
        Rootless in the initial namespace the kernel refuses overlay, and a mount made in a
        namespace of our own would vanish with it: fuse-overlayfs mounts where the user's
        container can see it; without it, a copy."""
        if self.mode != "auto":
            return self.mode, f"{self.mode}, as asked"
        if not rootless():
            return "overlay", "kernel overlayfs"
        if os.geteuid() == 0:
            return "userns", "kernel overlayfs in this user namespace (userxattr)"
        if shutil.which(FUSE_OVERLAYFS):
            return "fuse-overlayfs", "rootless: fuse-overlayfs"
        return "copy", ("rootless: copy, as kernel overlayfs needs a user namespace (storage "
                        "mode userns) and fuse-overlayfs is not installed (apt-get install "
                        "fuse-overlayfs)")

    def _save(self, snap: Snapshot) -> None:
        # Written aside and renamed: a command killed mid-write (SIGKILL, in create) leaves a
        # whole record or the old one, never an empty snapshot.json that every later sweep
        # would stumble over.
        path = self._meta_path(snap.id)
        with open(path + ".tmp", "w") as f:
            json.dump(asdict(snap), f)
        os.replace(path + ".tmp", path)

    def get_snapshot(self, snap_id: str) -> Snapshot:
        try:
            with open(self._meta_path(snap_id)) as f:
                return Snapshot(**json.load(f))
        except FileNotFoundError:
            raise StorageError(f"snapshot {snap_id} does not exist") from None
        except (ValueError, TypeError):
            # Older rongqi wrote it in place: a kill mid-write left it empty or cut.
            raise StorageError(f"snapshot {snap_id}: its record is damaged") from None

    def snapshots(self) -> list[Snapshot]:
        out = []
        for name in sorted(os.listdir(self.snap_dir)):
            with contextlib.suppress(StorageError, ValueError, TypeError):
                out.append(self.get_snapshot(name))
        return out

    def _overlay_data(self, snap: Snapshot, relative: bool, userxattr: bool = False) -> str:
        if relative:
            lowers = [f"l/{self._short(c)}" for c in reversed(snap.chain_ids)]
            upper = os.path.relpath(snap.upper, self.root)
            work = os.path.relpath(snap.work, self.root)
        else:
            lowers = [self.layer_path(c) for c in reversed(snap.chain_ids)]
            upper, work = snap.upper, snap.work
        if not lowers:
            # overlayfs needs a lower layer; an image without layers gets an empty one.
            empty = os.path.join(snap.path, "empty")
            os.makedirs(empty, exist_ok=True)
            lowers = [os.path.relpath(empty, self.root) if relative else empty]
        data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
        return data + ",userxattr" if userxattr else data

    def overlay_options(self, snap: Snapshot) -> str:
        """The kernel overlay mount data for a snapshot, for a caller that mounts it itself
        (e.g. in the container's user+mount namespace: add it as a mount of type overlay)."""
        return self._overlay_data(snap, relative=False, userxattr=snap.mode == "userns")

    def mount(self, snap: Snapshot) -> None:
        """Mount (or fill) snap.rootfs; in auto mode each failure falls back to the next way
        (kernel overlay -> fuse-overlayfs when rootless -> copy), and snap.note names the way
        taken and why the others were not."""
        if _is_mounted(snap.rootfs):
            return
        tried: list[str] = []
        if snap.mode in ("overlay", "userns"):
            try:
                self._mount_overlay(snap, userxattr=snap.mode == "userns")
                return
            except OSError as e:
                if self.mode != "auto" or e.errno not in (errno.EPERM, errno.ENODEV,
                                                          errno.EINVAL, errno.ENOTSUP):
                    hint = ("; kernel overlay without root needs the user namespace that "
                            "will run the container (storage mode userns)"
                            if e.errno == errno.EPERM and snap.mode == "userns"
                            and not in_user_namespace() else "")
                    # Syscalls' strerror repeats the whole mount call: the reason is enough.
                    raise StorageError(f"cannot mount overlay for snapshot {snap.id}: "
                                       f"{os.strerror(e.errno or 0)}{hint}") from None
                tried.append(f"kernel overlayfs failed ({os.strerror(e.errno or 0)})")
                snap.mode = ("fuse-overlayfs" if rootless() and shutil.which(FUSE_OVERLAYFS)
                             else "copy")
        if snap.mode == "fuse-overlayfs":
            try:
                self._mount_fuse(snap)
                self._save(snap)
                return
            except StorageError as e:
                if self.mode != "auto":
                    raise
                tried.append(str(e).partition(": ")[2] or str(e))
                snap.mode = "copy"
        if tried:
            snap.note = "copy, as " + "; ".join(tried)
            self._save(snap)
        if not os.listdir(snap.rootfs):
            self._flatten(snap)

    def _mount_fuse(self, snap: Snapshot) -> None:
        exe = shutil.which(FUSE_OVERLAYFS)
        if exe is None:
            raise StorageError(f"snapshot {snap.id}: fuse-overlayfs is not installed "
                               "(apt-get install fuse-overlayfs)")
        import subprocess
        # No page limit here (options travel in argv), so absolute paths always.
        r = subprocess.run([exe, "-o", self._overlay_data(snap, relative=False), snap.rootfs],
                           capture_output=True, text=True, check=False, timeout=60)
        if r.returncode != 0 or not _is_mounted(snap.rootfs):
            why = "; ".join(r.stderr.strip().splitlines()) or f"exit status {r.returncode}"
            raise StorageError(f"snapshot {snap.id}: fuse-overlayfs failed ({why})")
        snap.note = f"fuse-overlayfs ({exe})"

    def _mount_overlay(self, snap: Snapshot, userxattr: bool = False) -> None:
        if snap.volatile:
            # A volatile mount leaves work/work/incompat/volatile behind, even when unmounted
            # cleanly, and overlayfs refuses every later mount of that workdir while it is
            # there (its sign of a crash mid-mount). A volatile snapshot is its container's
            # alone and thrown away with it, so a remount (`create --rm` then `start`, a
            # start after a reboot) clears it, as the kernel's documentation allows.
            shutil.rmtree(os.path.join(snap.work, "work", "incompat", "volatile"),
                          ignore_errors=True)
            try:
                self._mount_overlay_data(snap, userxattr, ",volatile")
                return
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: a kernel without volatile
                    raise
        self._mount_overlay_data(snap, userxattr, "")

    def _mount_overlay_data(self, snap: Snapshot, userxattr: bool, extra: str) -> None:
        data = self._overlay_data(snap, relative=False, userxattr=userxattr) + extra
        if len(data) < _PAGE - 1:
            self.sys.mount("overlay", snap.rootfs, "overlay", 0, data)
            return
        # Too long for one page: the kernel resolves relative lowerdirs against our cwd,
        # and the short links in l/ keep each one at a few bytes.
        data = self._overlay_data(snap, relative=True, userxattr=userxattr) + extra
        if len(data) >= _PAGE - 1:
            raise StorageError(f"snapshot {snap.id}: too many layers for one overlay mount")
        with _CWD_LOCK:
            old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.chdir(self.root)
                self.sys.mount("overlay", snap.rootfs, "overlay", 0, data)
            finally:
                os.fchdir(old)
                os.close(old)

    def _flatten(self, snap: Snapshot) -> None:
        """The copy fallback: merge the layer dirs into rootfs, honouring overlay whiteouts."""
        for c in snap.chain_ids:
            _merge_tree(self.layer_path(c), snap.rootfs)

    def unmount(self, snap: Snapshot) -> None:
        if snap.mode == "fuse-overlayfs" and os.geteuid() != 0 and _is_mounted(snap.rootfs):
            import subprocess
            helper = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"
            for flags in ("-u", "-uz"):  # -z: busy, but ours to drop
                r = subprocess.run([helper, flags, snap.rootfs], capture_output=True, text=True,
                                   check=False, timeout=30)
                if r.returncode == 0:
                    return
            raise StorageError(f"cannot unmount snapshot {snap.id}: {r.stderr.strip()}")
        if snap.mode != "copy" and _is_mounted(snap.rootfs):
            try:
                self.sys.umount2(snap.rootfs, 0)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                self.sys.umount2(snap.rootfs, 2)  # MNT_DETACH: busy, but ours to drop

    def remove_snapshot(self, snap_id: str, trash: str = "") -> None:
        """Unmount and delete a snapshot; with `trash` (a dir on the same filesystem), its
        files are renamed there instead, for empty_trash() to delete later."""
        path = os.path.join(self.snap_dir, snap_id)
        if not os.path.isdir(path):
            return
        try:
            self.unmount(self.get_snapshot(snap_id))
        except StorageError:
            # No record to say how it was mounted: a kernel mount of ours goes by its path.
            rootfs = os.path.join(path, "rootfs")
            if _is_mounted(rootfs):
                with contextlib.suppress(OSError):
                    self.sys.umount2(rootfs, 2)
        if _is_mounted(os.path.join(path, "rootfs")):
            raise StorageError(f"snapshot {snap_id} is still mounted")
        if not (trash and to_trash(path, trash)):
            _rmtree(path)

    # -- bookkeeping -------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return ["sha256:" + h for h in os.listdir(self.layers_dir)]

    def gc(self, keep: Iterable[str]) -> list[str]:
        """Remove unpacked layers that neither `keep` (live images) nor a snapshot uses."""
        removed = []
        with self._lock("gc"):
            used = set(keep)
            for s in self.snapshots():
                used.update(s.chain_ids)
            for chain in self.layers():
                if chain in used:
                    continue
                d = os.path.dirname(self.layer_path(chain))
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.links_dir, self._short(chain)))
                _rmtree(d, ignore_errors=True)
                removed.append(chain)
            for name in os.listdir(self.tmp_dir):
                _rmtree(os.path.join(self.tmp_dir, name), ignore_errors=True)
        return removed

    def disk_usage(self) -> tuple[int, int]:
        """(bytes in unpacked layers, bytes in snapshots' upper dirs / copies)."""
        return du(self.layers_dir), du(self.snap_dir)


def to_trash(path: str, trash: str) -> bool:
    """Move path into the trash dir in one rename (False if it cannot: another filesystem)."""
    try:
        os.makedirs(trash, 0o700, exist_ok=True)
        os.rename(path, os.path.join(trash, f"{os.path.basename(path)}.{os.getpid()}."
                                            f"{time.monotonic_ns()}"))
    except OSError:
        return False
    return True


def empty_trash(trash: str, stop: Callable[[], bool] | None = None) -> None:
    """Delete what to_trash() moved there, one entry at a time until stop() says so."""
    try:
        names = os.listdir(trash)
    except FileNotFoundError:
        return
    for name in names:
        if stop is not None and stop():
            return
        _rmtree(os.path.join(trash, name), ignore_errors=True)


def _rmtree(path: str, ignore_errors: bool = False) -> None:
    """rmtree that also works for an unprivileged owner: a layer's read-only directories
    (0555 /usr, 0500 /root) must be made writable before their entries can go."""
    if os.geteuid() != 0:
        for dirpath, dirnames, _ in os.walk(path):
            for n in dirnames:
                with contextlib.suppress(OSError):
                    p = os.path.join(dirpath, n)
                    st = os.lstat(p)
                    if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o700 != 0o700:
                        os.chmod(p, stat.S_IMODE(st.st_mode) | 0o700)
    shutil.rmtree(path, ignore_errors=ignore_errors)


def du(path: str) -> int:
    """Bytes of disk a tree takes (blocks, each inode once), as `du` counts."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + dirnames:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, n))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def _copy_meta(src_st: os.stat_result, dst: str) -> None:
    os.lchown(dst, src_st.st_uid, src_st.st_gid) if os.geteuid() == 0 else None
    if not stat.S_ISLNK(src_st.st_mode):
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _copy_xattrs(src: str, dst: str) -> None:
    with contextlib.suppress(OSError):
        for name in os.listxattr(src, follow_symlinks=False):
            if name in (OVERLAY_OPAQUE, USER_OPAQUE):
                continue
            with contextlib.suppress(OSError):
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                            follow_symlinks=False)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _merge_tree(src_root: str, dst_root: str) -> None:
    """Copy one overlay lowerdir onto a flattened tree, as overlayfs would show them merged."""
    links: dict[tuple[int, int], str] = {}
    dir_meta: list[tuple[os.stat_result, str]] = []
    for dirpath, dirnames, filenames in os.walk(src_root):
        rel = os.path.relpath(dirpath, src_root)
        ddir = dst_root if rel == "." else os.path.join(dst_root, rel)
        for name in list(dirnames):
            s, d = os.path.join(dirpath, name), os.path.join(ddir, name)
            st = os.lstat(s)
            if stat.S_ISLNK(st.st_mode):
                # os.walk lists symlinks to directories as directories; copy them as links.
                dirnames.remove(name)
                filenames.append(name)
                continue
            opaque = False
            for attr in (OVERLAY_OPAQUE, USER_OPAQUE):
                with contextlib.suppress(OSError):
                    opaque = opaque or os.getxattr(s, attr, follow_symlinks=False) == b"y"
            if os.path.lexists(d) and (opaque or not os.path.isdir(d) or os.path.islink(d)):
                _remove(d)
            if not os.path.lexists(d):
                os.mkdir(d, 0o700)
            _copy_xattrs(s, d)
            dir_meta.append((st, d))
        for name in filenames:
            s, d = os.path.join(dirpath, name), os.path.join(ddir, name)
            st = os.lstat(s)
            _remove(d)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                continue  # a whiteout: the lower file is gone
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], d)
                continue
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(s, d, follow_symlinks=False)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(d)
            else:
                os.mknod(d, st.st_mode, st.st_rdev)
            _copy_xattrs(s, d)
            _copy_meta(st, d)
            if st.st_nlink > 1:
                links[key] = d
    for st, d in reversed(dir_meta):
        _copy_meta(st, d)
