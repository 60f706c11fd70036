"""What a container changed in its image: podman diff's A/C/D list, and the layer tar of it.

From an overlay snapshot's upper dir (whiteouts are 0/0 character devices, opaque dirs carry
trusted.overlay.opaque or user.overlay.opaque) read against the image's lower layers; or, for
a snapshot that is a flattened copy, from a comparison of the whole tree with those layers.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from rongqi.engine.treecopy import IdMapper, RootDir, TarSink, TreeReader, clean, walk

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

ADDED, CHANGED, DELETED = "A", "C", "D"


@dataclass(frozen=True)
class Change:
    kind: str                 # "A" added, "C" changed, "D" deleted (podman's letters)
    path: str                 # absolute, as the container sees it
    opaque: bool = False      # a directory that hides everything the image had below it


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(dfd: int, name: str) -> bool:
    for key in OPAQUE_XATTRS:
        with contextlib.suppress(OSError):
            if os.getxattr(f"/proc/self/fd/{dfd}/{name}", key, follow_symlinks=False) == b"y":
                return True
    return False


def _has_opaque_marker(dfd: int, name: str) -> bool:
    # fuse-overlayfs without xattrs marks an opaque directory with a .wh..wh..opq file
    with contextlib.suppress(OSError):
        os.stat(f"{name}/{OPAQUE_MARKER}", dir_fd=dfd, follow_symlinks=False)
        return True
    return False


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


class LowerView:
    """The image's layers (overlay lowerdirs, top first) merged as overlayfs shows them.

    Lookups go one component at a time with O_NOFOLLOW: a symlink in a layer is an entry, never
    a way elsewhere; a whiteout, an opaque directory or a non-directory hides what lies below.
    """

    def __init__(self, layers: list[str]):
        self.layers = layers

    def _dir_in(self, layer: str, parts: list[str]) -> tuple[str, int, bool]:
        """("found", dir fd, opaque) | ("absent", -1, opaque_above) | ("hidden", -1, _)"""
        fd = os.open(layer, _DIR)
        opaque_above = False
        for comp in parts:
            try:
                st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                os.close(fd)
                return ("hidden" if opaque_above else "absent"), -1, opaque_above
            if is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                return "hidden", -1, False
            opaque_above = opaque_above or _is_opaque(fd, comp)
            nfd = os.open(comp, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return "found", fd, opaque_above

    def lookup(self, path: str) -> os.stat_result | None:
        parts = _parts(path)
        if not parts:
            return os.stat(self.layers[-1]) if self.layers else None
        for layer in self.layers:
            state, fd, opaque = self._dir_in(layer, parts[:-1])
            if state == "hidden":
                return None
            if state == "absent":
                continue
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            finally:
                os.close(fd)
            if st is not None:
                return None if is_whiteout(st) else st
            if opaque:
                return None
        return None

    def listdir(self, path: str) -> dict[str, os.stat_result]:
        """The merged directory: name -> stat of the entry that shows."""
        parts = _parts(path)
        out: dict[str, os.stat_result] = {}
        gone: set[str] = set()
        for layer in self.layers:
            state, fd, _ = self._dir_in(layer, parts)
            if state == "hidden":
                break
            if state == "absent":
                continue
            try:
                for name in os.listdir(fd):
                    if name in out or name in gone:
                        continue
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if is_whiteout(st):
                        gone.add(name)
                    else:
                        out[name] = st
                opaque = parts and _is_opaque_dir(fd)
            finally:
                os.close(fd)
            if opaque:
                break
        return out


def _is_opaque_dir(fd: int) -> bool:
    for key in OPAQUE_XATTRS:
        with contextlib.suppress(OSError):
            if os.getxattr(f"/proc/self/fd/{fd}", key) == b"y":
                return True
    return False


# How an entry of the snapshot is owned as the image would own it: a container in a user
# namespace has its snapshot's owners shifted into the mapped range (host -> container ids).
Unshift = Callable[[int, int], "tuple[int, int]"]


def _identity(uid: int, gid: int) -> tuple[int, int]:
    return uid, gid


def _meta_differs(a: os.stat_result, b: os.stat_result, unshift: Unshift = _identity) -> bool:
    return (a.st_mode, *unshift(a.st_uid, a.st_gid)) != (b.st_mode, b.st_uid, b.st_gid)


def _only_shifted(st: os.stat_result, lower: os.stat_result, unshift: Unshift) -> bool:
    """A file copied up only because its owner was shifted into the user namespace's range:
    same kind, mode, size and mtime as the image's, the owner the image's once unshifted."""
    return not stat.S_ISDIR(st.st_mode) and stat.S_IFMT(st.st_mode) == stat.S_IFMT(lower.st_mode) \
        and not _meta_differs(st, lower, unshift) and st.st_size == lower.st_size \
        and st.st_mtime_ns == lower.st_mtime_ns and st.st_rdev == lower.st_rdev


# Runtime-made mount points (an empty /etc/hostname, a volume's directory) are not changes the
# user made: `skip` in the functions below is told (path, stat, in-image stat or None).
SkipRule = Callable[[str, os.stat_result, "os.stat_result | None"], bool]


def mount_stub_rule(destinations: Iterable[str]) -> SkipRule:
    """Skip what a runtime creates to mount on: a mount destination that the image did not
    have and that is an empty file or a directory, and the new directories above it."""
    dests = {clean(d) for d in destinations}
    ancestors = set()
    for d in dests:
        while d != "/":
            d = posixpath.dirname(d)
            ancestors.add(d)

    def rule(path: str, st: os.stat_result, lower: os.stat_result | None) -> bool:
        if lower is not None:
            return False
        if path in dests:
            return stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0)
        return path in ancestors and stat.S_ISDIR(st.st_mode)
    return rule


def _prune(found: list[tuple[Change, os.stat_result, os.stat_result | None]],
           skip: SkipRule | None, unshift: Unshift = _identity) -> list[Change]:
    """Leave out skipped entries, then directories that only "changed" because something
    below them changed or was skipped (a copy-up), unless something below them is kept or
    their own mode or owner changed."""
    by_path = {ch.path: (ch, st, lower) for ch, st, lower in found}
    keep: dict[str, Change] = {}
    has_kept_child: set[str] = set()
    for path in sorted(by_path, key=lambda p: p.count("/"), reverse=True):
        ch, st, lower = by_path[path]
        keep_it = ch.kind == DELETED or skip is None or not skip(path, st, lower)
        if keep_it and ch.kind == CHANGED and stat.S_ISDIR(st.st_mode) and not ch.opaque \
                and path not in has_kept_child and lower is not None \
                and stat.S_ISDIR(lower.st_mode) and not _meta_differs(st, lower, unshift):
            keep_it = False
        if not keep_it and path in has_kept_child:
            keep_it = True    # a mount point's directory that the user also wrote into
        if keep_it:
            keep[path] = ch
            has_kept_child.add(posixpath.dirname(path))
    return [keep[p] for p in sorted(keep)]


def upper_changes(upper: str, lowers: list[str], *, skip: SkipRule | None = None,
                  wh_files: bool = False, unshift: Unshift = _identity) -> list[Change]:
    """The A/C/D list of an overlay upper dir over `lowers` (top layer first), by path.
    wh_files: the upper is fuse-overlayfs's, whose whiteouts may be .wh.NAME files (on kernel
    overlay such a name is just a file the container made)."""
    view = LowerView(lowers)
    found: list[tuple[Change, os.stat_result, os.stat_result | None]] = []
    top = os.open(upper, _DIR)
    try:
        opaque_dirs: list[str] = []
        for rel, dfd, listing in walk(top):
            base = "/" + rel
            under_opaque = any(base == o or base.startswith(o.rstrip("/") + "/")
                               for o in opaque_dirs)
            for name, st in listing:
                path = posixpath.join(base, name)
                if is_whiteout(st):
                    found.append((Change(DELETED, path), st, None))
                    continue
                if wh_files and name.startswith(WHITEOUT_PREFIX):
                    # fuse-overlayfs without CAP_MKNOD writes whiteouts as .wh. files
                    if name != OPAQUE_MARKER:
                        found.append((Change(DELETED, posixpath.join(base, name[4:])), st, None))
                    continue
                lower = None if under_opaque else view.lookup(path)
                opaque = stat.S_ISDIR(st.st_mode) and (
                    _is_opaque(dfd, name) or (wh_files and _has_opaque_marker(dfd, name)))
                if opaque:
                    opaque_dirs.append(path)
                if lower is not None and unshift is not _identity and not opaque \
                        and _only_shifted(st, lower, unshift):
                    continue
                kind = CHANGED if lower is not None else ADDED
                found.append((Change(kind, path, opaque and lower is not None), st, lower))
    finally:
        os.close(top)
    return _prune(found, skip, unshift)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or _meta_differs(a, b):
        return False
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns and a.st_rdev == b.st_rdev


def tree_changes(tree_path: str, lowers: list[str], *,
                 skip: SkipRule | None = None) -> list[Change]:
    """The A/C/D list of a flattened copy of the image (a snapshot in copy mode): every entry
    compared with the merged layers (type, mode, owner, size, mtime), deletions from the
    layers' listing (a deleted directory once, not its contents)."""
    view = LowerView(lowers)
    found: list[tuple[Change, os.stat_result, os.stat_result | None]] = []

    def walk(path: str, dfd: int, lower_names: dict[str, os.stat_result]) -> None:
        names = set(os.listdir(dfd))
        for name in sorted(names | set(lower_names)):
            child = posixpath.join(path, name)
            lower = lower_names.get(name)
            if name not in names:
                assert lower is not None
                found.append((Change(DELETED, child), lower, None))
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            both_dirs = lower is not None and stat.S_ISDIR(st.st_mode) \
                and stat.S_ISDIR(lower.st_mode)
            if lower is None:
                found.append((Change(ADDED, child), st, None))
            elif both_dirs or not _same(st, lower):
                # A directory is listed as changed; _prune drops it if nothing below it was.
                found.append((Change(CHANGED, child), st, lower))
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR, dir_fd=dfd)
                try:
                    walk(child, sub, view.listdir(child) if both_dirs else {})
                finally:
                    os.close(sub)

    top = os.open(tree_path, _DIR)
    try:
        walk("/", top, view.listdir("/"))
    finally:
        os.close(top)
    return _prune(found, skip)


def write_layer(changes: list[Change], tree: RootDir, out: IO[bytes], *,
                mtime_whiteouts: int = 0, ids: IdMapper | None = None) -> None:
    """A layer tar of `changes`, entries read from `tree` (the upper dir, or the flattened copy):
    D as .wh.NAME, an opaque directory followed by its .wh..wh..opq, xattrs kept."""
    sink = TarSink(out)
    reader = TreeReader(tree, xattrs=True, ids=ids)
    try:
        for ch in sorted(changes, key=lambda c: _parts(c.path)):
            rel = ch.path.lstrip("/")
            if ch.kind == DELETED:
                head, name = posixpath.split(rel)
                sink.add(_marker(posixpath.join(head, WHITEOUT_PREFIX + name), mtime_whiteouts),
                         None)
                continue
            try:
                for entry in reader.entry(ch.path, rel):
                    sink.add(*entry)
            except FileNotFoundError:
                continue   # removed since the list was made (a running container)
            if ch.opaque:
                sink.add(_marker(posixpath.join(rel, OPAQUE_MARKER), mtime_whiteouts), None)
    finally:
        sink.close()


def _marker(name: str, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.size = tarfile.REGTYPE, 0o644, mtime, 0
    return ti

