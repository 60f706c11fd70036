"""A container's files: cp (both ways, tar streams), diff, commit (a new image) and export.

A running container is reached through /proc/PID/root (so its volumes and mounts are seen as
it sees them), a created or stopped one through its snapshot, mounted for the while under the
container's lock. Every path is resolved inside that root (engine/treecopy.py).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import posixpath
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from rongqi.engine import status as st
from rongqi.engine.changes import Change, mount_stub_rule, tree_changes, upper_changes, \
    write_layer
from rongqi.engine.treecopy import CopyError, IdMapper, RootDir, TarSink, TreeReader, \
    TreeWriter, clean, tar_entries
from rongqi.errors import (ContainerNotFound, ContainerStateError, EngineError, NoSuchContainer,
                           UsageError)

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.records import Container

__all__ = ["CopyError", "copy", "diff", "commit", "export", "parse_location"]


# -- reaching a container's root ----------------------------------------------------------------
@dataclass
class ContainerFS:
    """A container's root as cp sees it, with the ids it needs."""

    container: Container
    root: RootDir
    ids: IdMapper
    user: tuple[int, int]       # the container's process user, in host ids (cp's default owner)
    label: str                  # how errors name it: the name or id the user typed
    # A stopped container's directory bind mounts and volumes (destination -> its source's
    # root), longest first: what the container would see there, as podman resolves it.
    binds: list[tuple[str, RootDir]] = field(default_factory=list)

    def missing(self, path: str) -> CopyError:
        return CopyError(f'"{path}" could not be found on container {self.label}: '
                         "no such file or directory")

    def locate(self, path: str) -> tuple[RootDir, str]:
        """The root that holds `path` (resolved in the container's root) and the path in it."""
        for dest, root in self.binds:
            if path == dest or path.startswith(dest.rstrip("/") + "/"):
                return root, clean(path[len(dest):])
        return self.root, path


def _spec(c: Container) -> dict[str, Any]:
    try:
        with open(os.path.join(c.bundle, "config.json")) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def _snapshot(engine: Engine, c: Container) -> Any:
    return engine.storage.get_snapshot(c.config.get("snapshot") or c.id)


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _running_root(engine: Engine, c: Container) -> int:
    """An fd of the container's root as its init sees it, checked to be the container's: a
    pid that ended and was reused by a host process must never give the host's "/".

    The check: the root is the snapshot's mount (same device and inode). Where the snapshot is
    mounted inside the container's own user namespace (storage mode userns) the host has no
    such mount to compare with; then the process, pinned by a pidfd taken before the root was
    opened, must still be alive afterwards and be one of the runtime's processes of the
    container (its cgroup's)."""
    import signal
    pid = int(c.state.get("pid") or 0)
    if pid <= 0:
        raise EngineError(f"container {c.id} has no process")
    gone = EngineError(f"container {c.id}: its process {pid} is gone (did it just exit?)")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise gone from None
    try:
        try:
            proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd = os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
            finally:
                os.close(proc)
        except (FileNotFoundError, ProcessLookupError):
            raise gone from None
        try:
            snap = _snapshot(engine, c)
            if _same_dir(os.fstat(fd), os.stat(snap.rootfs)):
                return fd
            ok = snap.mode == "userns" and pid in engine.runtime.ps(c.id)
            try:
                signal.pidfd_send_signal(pidfd, 0)
            except ProcessLookupError:
                ok = False
            if not ok:
                raise EngineError(f"container {c.id}: the root of process {pid} is not the "
                                  "container's (did it just exit?)")
            return fd
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(pidfd)


@contextlib.contextmanager
def container_fs(engine: Engine, ref: str) -> Iterator[ContainerFS]:
    """The container's root, held for the `with` block: a running container's live root (the
    lock only while it is opened: the fd keeps that root, and a long copy does not hold up a
    stop), or a stopped one's snapshot, mounted and kept from starting (its lock is held)."""
    from rongqi.engine import lifecycle
    try:
        c = engine.get(ref)
    except NoSuchContainer:
        raise EngineError(f'container "{ref}" does not exist') from None
    with contextlib.ExitStack() as stack:
        c = stack.enter_context(lifecycle.locked(engine, c))
        spec = _spec(c)
        ids = IdMapper.from_spec(spec)
        user = (spec.get("process") or {}).get("user") or {}
        owner = (ids.uid_to_host(int(user.get("uid", 0))), ids.gid_to_host(int(user.get("gid", 0))))
        snap = _snapshot(engine, c)
        if c.status in st.ALIVE:
            fd = _running_root(engine, c)
            stack.pop_all().close()          # the lock goes; the fd stays ours
            stack.callback(os.close, fd)
        else:
            if c.status == st.REMOVING:
                raise EngineError(f"container {c.id} is being removed")
            if snap.mode != "copy":
                engine.storage.mount(snap)
                stack.callback(engine.storage.unmount, snap)
            fd = os.open(snap.rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            binds = _bind_roots(spec, ref, stack)
            yield ContainerFS(c, RootDir(fd, f"container {ref}"), ids, owner, ref, binds)
            return
        yield ContainerFS(c, RootDir(fd, f"container {ref}"), ids, owner, ref)


def _bind_roots(spec: dict[str, Any], ref: str, stack: contextlib.ExitStack
                ) -> list[tuple[str, RootDir]]:
    """The directory binds of a stopped container's spec (volumes are binds of their _data)
    opened as roots; file binds (/etc/hosts) and other kinds are left to the snapshot."""
    out = []
    for m in spec.get("mounts") or []:
        opts = m.get("options") or []
        if m.get("type") != "bind" and "bind" not in opts and "rbind" not in opts:
            continue
        src, dest = m.get("source", ""), clean(m.get("destination", ""))
        if not src.startswith("/") or not os.path.isdir(src) or dest == "/":
            continue
        root = stack.enter_context(RootDir.open(src, f"container {ref}"))
        out.append((dest, root))
    out.sort(key=lambda b: len(b[0]), reverse=True)
    return out


# -- cp ---------------------------------------------------------------------------------------
def parse_location(arg: str) -> tuple[str | None, str]:
    """podman's CONTAINER:PATH rule: a path that starts with "/" or "." is local (so
    ./file:name is a file), else text before the first ":" names a container."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    name, sep, path = arg.partition(":")
    if not sep:
        return None, arg
    return name, path


@dataclass
class _Side:
    root: RootDir
    label: str                  # "container NAME" / "the host"
    fs: ContainerFS | None

    def locate(self, path: str) -> tuple[RootDir, str]:
        return self.fs.locate(path) if self.fs is not None else (self.root, path)

    def missing(self, path: str) -> CopyError:
        if self.fs is not None:
            return self.fs.missing(path)
        return CopyError(f'"{path}" could not be found on the host: no such file or directory')


def copy(engine: Engine, src: str, dest: str, *, archive: bool = False,
         overwrite: bool = False, stdin: IO[bytes] | None = None,
         stdout: IO[bytes] | None = None) -> None:
    """`cp SRC DEST` with podman's rules (docs/engine.md): either side may be CONTAINER:PATH,
    "-" is a tar stream on stdin (SRC) or stdout (DEST). archive: keep the owners (else files
    put into a container belong to its user, files put on the host to the caller)."""
    s_ref, s_raw = parse_location(src)
    d_ref, d_raw = parse_location(dest)
    if src == "-" and dest == "-":
        raise UsageError('"-" cannot be both the source and the destination')
    if s_ref is None and d_ref is None:
        if src == "-" or dest == "-":
            raise UsageError("a tar stream (-) is copied to or from a container: name one as "
                             "CONTAINER:PATH")
        raise EngineError("name or ID cannot be empty")
    if s_ref == "" or d_ref == "":
        raise EngineError("name or ID cannot be empty")
    with contextlib.ExitStack() as stack:
        opened: dict[str, ContainerFS] = {}

        def cid(ref: str) -> str:
            try:
                return engine.get(ref).id
            except NoSuchContainer:
                raise EngineError(f'container "{ref}" does not exist') from None

        def side(ref: str | None) -> _Side:
            if ref is None:
                return _Side(stack.enter_context(RootDir.open("/", "the host")), "the host",
                             None)
            key = cid(ref)
            if key not in opened:
                opened[key] = stack.enter_context(container_fs(engine, ref))
            fs = opened[key]
            return _Side(fs.root, fs.root.label, fs)

        # Two containers: locked in id order, so two crossed copies cannot deadlock (and the
        # same container named twice is opened, and locked, once).
        refs = [r for r in (s_ref, d_ref) if r is not None]
        for r in sorted(refs, key=cid):
            side(r)
        if src == "-":
            assert stdin is not None
            _put_stream(side(d_ref), d_raw, stdin, archive, overwrite, d_ref is not None)
            return
        source = side(s_ref)
        reader, spath, arcname, is_dir = _source(source, s_raw, s_ref is not None)
        if dest == "-":
            assert stdout is not None
            sink = TarSink(stdout)
            for entry in reader.entries(spath, arcname):
                sink.add(*entry)
            sink.close()
            return
        _put_tree(reader, spath, arcname, is_dir, side(d_ref), d_raw, d_ref is not None,
                  archive, overwrite)


def _norm(raw: str, in_container: bool) -> str:
    """A container path is absolute from its root (the leading "/" optional, as podman); a
    host path is relative to the working directory."""
    return clean(raw) if in_container else clean(os.path.join(os.getcwd(), raw))


def _source(side: _Side, raw: str, in_container: bool) -> tuple[TreeReader, str, str, bool]:
    """(reader, resolved path, archive name, is a directory) of cp's source: a symlink named
    as the source is followed (podman does, on both sides); "DIR/." means DIR's contents."""
    contents = raw == "." or raw.endswith("/.")
    resolved = side.root.resolve(_norm(raw, in_container))
    root, where = side.locate(resolved)
    st_ = root.lstat(where)
    if st_ is None:
        raise side.missing(raw)
    is_dir = stat.S_ISDIR(st_.st_mode)
    if not is_dir and (raw.endswith("/") or contents):
        raise CopyError(f'"{raw}" is not a directory')
    reader = TreeReader(root, ids=side.fs.ids if side.fs is not None else None)
    name = posixpath.basename(resolved)
    return reader, where, "" if is_dir and (contents or not name) else name, is_dir


def _owner_rule(target: _Side, archive: bool) -> dict[str, Any]:
    if archive:
        return {"owner": None, "ids": target.fs.ids if target.fs is not None else None}
    if target.fs is not None:
        return {"owner": target.fs.user}
    return {"owner": (os.geteuid(), os.getegid())}


def _put_tree(reader: TreeReader, spath: str, arcname: str, is_dir: bool, target: _Side,
              raw: str, in_container: bool, archive: bool, overwrite: bool) -> None:
    """podman's destination rules: into an existing directory under the source's name (or
    its contents, for DIR/.); over an existing file; else as a new entry named DEST (whose
    parent must exist)."""
    root, dres = target.locate(target.root.resolve(_norm(raw, in_container)))
    dst = root.lstat(dres)
    trailing = raw.endswith("/") or raw.endswith("/.")
    if dst is not None and stat.S_ISDIR(dst.st_mode):
        base, name = dres, arcname
    else:
        if dst is not None and is_dir:
            raise CopyError("destination must be a directory when copying a directory")
        if dst is not None and trailing:
            raise CopyError(f'"{raw}" exists but is not a directory')
        if dst is None:
            parent = root.lstat(posixpath.dirname(dres))
            if (trailing and not is_dir) or parent is None or not stat.S_ISDIR(parent.st_mode):
                raise target.missing(raw)
        base, name = posixpath.dirname(dres), posixpath.basename(dres)
    writer = TreeWriter(root, base, overwrite=overwrite, **_owner_rule(target, archive))
    for entry in reader.entries(spath, name):
        writer.add(*entry)
    writer.close()


def _put_stream(target: _Side, raw: str, stream: IO[bytes], archive: bool, overwrite: bool,
                in_container: bool) -> None:
    root, dres = target.locate(target.root.resolve(_norm(raw, in_container)))
    dst = root.lstat(dres)
    if dst is None or not stat.S_ISDIR(dst.st_mode):
        raise CopyError("destination must be a directory when copying from stdin")
    writer = TreeWriter(root, dres, overwrite=overwrite, **_owner_rule(target, archive))
    for entry in tar_entries(stream):
        writer.add(*entry)
    writer.close()


# -- diff -------------------------------------------------------------------------------------
def _lowers(engine: Engine, c: Container, snap: Any) -> list[str]:
    chains = list(snap.chain_ids or c.config.get("chain_ids") or [])
    return [engine.storage.layer_path(ch) for ch in reversed(chains)]


def _mount_destinations(c: Container) -> list[str]:
    return [m.get("destination", "") for m in _spec(c).get("mounts") or []
            if m.get("destination")]


def changes_of(engine: Engine, c: Container) -> list[Change]:
    """The container's A/C/D list against its image (mount points the runtime made left out)."""
    snap = _snapshot(engine, c)
    rule = mount_stub_rule(_mount_destinations(c))
    lowers = _lowers(engine, c, snap)
    if snap.mode == "copy":
        return tree_changes(snap.rootfs, lowers, skip=rule)
    ids = IdMapper.from_spec(_spec(c))
    unshift = None
    if ids.uids or ids.gids:
        def unshift(uid: int, gid: int) -> tuple[int, int]:
            return ids.uid_to_container(uid), ids.gid_to_container(gid)
    extra = {"unshift": unshift} if unshift is not None else {}
    return upper_changes(snap.upper, lowers, skip=rule, wh_files=snap.mode == "fuse-overlayfs",
                         **extra)


def diff(engine: Engine, ref: str, *, images: bool = True) -> list[Change]:
    """podman diff CONTAINER: what the container changed, by path; podman diff IMAGE (a name
    that is no container): what the image's top layer changed over the layers below it."""
    from rongqi.engine import lifecycle
    if images and not engine.exists(ref):
        changes = image_changes(engine, ref)
        if changes is not None:
            return changes
    c = lifecycle.synced(engine, engine.get(ref))
    return changes_of(engine, c)


def image_changes(engine: Engine, ref: str) -> list[Change] | None:
    """The A/C/D of an image's top layer (None: no such image)."""
    from rongqi.image.errors import ImageNotFound
    try:
        _, desc = engine.store.resolve(ref)
    except ImageNotFound:
        return None
    chains = engine.storage.unpack_image(engine.store, desc.digest)
    if not chains:
        return []
    dirs = [engine.storage.layer_path(ch) for ch in reversed(chains)]
    return upper_changes(dirs[0], dirs[1:])


def changes_json(changes: list[Change]) -> dict[str, list[str]]:
    """podman diff --format json's shape."""
    out: dict[str, list[str]] = {}
    for key, kind in (("changed", "C"), ("added", "A"), ("deleted", "D")):
        paths = [ch.path for ch in changes if ch.kind == kind]
        if paths:
            out[key] = paths
    return out


# -- commit -----------------------------------------------------------------------------------
class _Tee:
    """Uncompressed tar bytes in, hashed (the diff_id), then gzipped to a file."""

    def __init__(self, out: IO[bytes]):
        self.h = hashlib.sha256()
        self.gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0)

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.gz.write(data)
        return len(data)

    def close(self) -> None:
        self.gz.close()


def _json_or_shell(value: str) -> list[str]:
    try:
        v = json.loads(value)
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
    except ValueError:
        pass
    return ["/bin/sh", "-c", value]


def _pairs(value: str, what: str, change: str) -> list[tuple[str, str]]:
    """`ENV a=b c=d` / `LABEL a=b` / the legacy `ENV key value`."""
    import shlex
    try:
        words = shlex.split(value)
    except ValueError:
        raise UsageError(f'invalid change "{change}": unbalanced quotes') from None
    if words and "=" not in words[0]:
        if len(words) < 2 and what == "LABEL":
            raise UsageError(f'invalid change "{change}": {what} needs key=value')
        return [(words[0], value.split(None, 1)[1] if len(words) > 1 else "")]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise UsageError(f'invalid change "{change}": {what} needs key=value')
        out.append((k, v))
    return out


CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL",
                       "USER", "VOLUME", "WORKDIR")


def apply_changes(config: dict[str, Any], changes: list[str]) -> None:
    """commit/import -c/--change: Dockerfile instructions applied to an image config's
    "config" object (podman's set: CMD ENTRYPOINT ENV EXPOSE LABEL ONBUILD STOPSIGNAL USER
    VOLUME WORKDIR)."""
    for change in changes:
        text = change.strip()
        word, _, value = text.partition(" ")
        if "=" in word and not value:       # podman also takes "CMD=..." forms
            word, _, value = text.partition("=")
        key, value = word.upper(), value.strip()
        if key not in CHANGE_INSTRUCTIONS:
            raise UsageError(f'invalid change "{change}" - invalid instruction {word}')
        if not value:
            raise UsageError(f'invalid change "{change}" - missing value')
        if key == "CMD":
            config["Cmd"] = _json_or_shell(value)
        elif key == "ENTRYPOINT":
            config["Entrypoint"] = _json_or_shell(value)
        elif key == "ENV":
            env = list(config.get("Env") or [])
            for k, v in _pairs(value, "ENV", change):
                env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
            config["Env"] = env
        elif key == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_pairs(value, "LABEL", change))
            config["Labels"] = labels
        elif key == "EXPOSE":
            exposed = dict(config.get("ExposedPorts") or {})
            for p in value.split():
                port, _, proto = p.partition("/")
                if not port.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                    raise UsageError(f'invalid change "{change}": invalid port {p!r}')
                exposed[f"{port}/{proto or 'tcp'}"] = {}
            config["ExposedPorts"] = exposed
        elif key == "VOLUME":
            vols = dict(config.get("Volumes") or {})
            paths = json.loads(value) if value.startswith("[") else value.split()
            for v in paths:
                vols[v] = {}
            config["Volumes"] = vols
        elif key == "WORKDIR":
            config["WorkingDir"] = posixpath.join(config.get("WorkingDir") or "/", value)
        elif key == "USER":
            config["User"] = value
        elif key == "STOPSIGNAL":
            config["StopSignal"] = value
        elif key == "ONBUILD":
            config["OnBuild"] = list(config.get("OnBuild") or []) + [value]


# What create adds to every container's environment; an image made from it should not carry
# them unless its own image did.
_RUNTIME_ENV = frozenset({"HOSTNAME", "container", "HOME", "TERM"})


def _container_config(engine: Engine, c: Container, base: dict[str, Any]) -> dict[str, Any]:
    """The new image's "config": the image's, updated from what the container was made with
    (as podman's commit: entrypoint, command, env, user, workdir, labels, ports)."""
    from rongqi.engine.ports import container_ports, exposed_ports
    cfg = json.loads(json.dumps(base.get("config") or {}))
    opts = c.config.get("options") or {}
    if opts.get("entrypoint") is not None:
        cfg["Entrypoint"] = list(opts["entrypoint"]) or None
        cfg["Cmd"] = list(opts.get("command") or []) or None
    elif opts.get("command"):
        cfg["Cmd"] = list(opts["command"])
    env = list(cfg.get("Env") or [])
    base_keys = {e.partition("=")[0] for e in env}
    for k, v in (opts.get("env") or {}).items():
        if k in _RUNTIME_ENV and k not in base_keys:
            continue   # the engine's own for this container (its hostname is its id)
        env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
    if env:
        cfg["Env"] = env
    if opts.get("user"):
        cfg["User"] = opts["user"]
    if opts.get("workdir"):
        cfg["WorkingDir"] = opts["workdir"]
    if opts.get("labels"):
        cfg["Labels"] = {**(cfg.get("Labels") or {}), **opts["labels"]}
    ports = container_ports(c.config, exposed_ports(_spec(c)))
    if ports:
        exposed = dict(cfg.get("ExposedPorts") or {})
        for p in ports:
            exposed[f"{p.container_port}/{p.protocol}"] = {}
        cfg["ExposedPorts"] = exposed
    if opts.get("stop_signal") and opts["stop_signal"] != "SIGTERM":
        cfg["StopSignal"] = opts["stop_signal"]
    for k in [k for k, v in cfg.items() if v is None]:
        del cfg[k]
    return cfg


_DOCKER_OF = {"": "application/vnd.docker.image.rootfs.diff.tar",
              "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
              "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd"}


def _layer_type(media_type: str, fmt: str) -> str:
    from rongqi.image import media
    kind = media.compression_of(media_type)
    if fmt == "docker":
        return _DOCKER_OF[kind]
    return {"gzip": media.OCI_LAYER_GZIP, "zstd": media.OCI_LAYER_ZSTD}.get(kind, media.OCI_LAYER)


def commit_name(name: str) -> str:
    """podman's naming of a committed image: a name without a registry is localhost's."""
    from rongqi.image import reference
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "localhost/" + name
    return str(reference.parse(name))


def _volumes(c: Container, include_volumes: bool) -> list[str]:
    """Destinations that become the image's VOLUMEs, as podman's commit picks them: the
    container's anonymous volumes; with --include-volumes every volume and bind mount."""
    anonymous = set(c.config.get("anonymous_volumes") or [])
    out = []
    for m in c.config.get("mounts") or []:
        kind, dest = m.get("Type"), m.get("Destination")
        if not dest:
            continue
        if include_volumes and kind in ("volume", "bind") or \
                kind == "volume" and m.get("Name") in anonymous:
            out.append(dest)
    return out


def commit(engine: Engine, ref: str, name: str = "", *, changes: list[str] | None = None,
           message: str = "", author: str = "", pause: bool = True, squash: bool = False,
           fmt: str = "oci", include_volumes: bool = False) -> str:
    """podman commit: the container's changes as a new layer (whiteouts and opaque markers)
    over its image, the config from the container and -c changes; stored under `name` and
    unpacked so it runs at once. Returns the image id (the config digest)."""
    from rongqi.engine import lifecycle
    from rongqi.image import media
    from rongqi.image.archive import _now
    if fmt not in ("oci", "docker"):
        raise UsageError(f'unrecognized image type "{fmt}"')
    target = commit_name(name) if name else ""
    store = engine.store
    new_config: dict[str, Any] = {}
    apply_changes(new_config, changes or [])   # bad -c values fail before anything is made
    with store.gc_lock(shared=True), contextlib.ExitStack() as undo:
        fd, tmp = tempfile.mkstemp(prefix="commit-", dir=store.ingest_dir)
        undo.callback(_unlink_quiet, tmp)
        with lifecycle.locked(engine, ref) as c:
            base_manifest = store.manifest(c.config.get("image_digest") or "")
            base = store.read_json(base_manifest["config"]["digest"])
            paused = False
            if pause and c.status == st.RUNNING:
                # A process that ended just now (its monitor not yet heard) has nothing left
                # to freeze: commit its files as they are, as podman does a stopped one's.
                with contextlib.suppress(ContainerNotFound, ContainerStateError):
                    engine.runtime.pause(c.id)
                    paused = True
            try:
                with os.fdopen(fd, "wb") as f:
                    tee = _Tee(f)
                    _write_commit_layer(engine, c, tee, squash)   # type: ignore[arg-type]
                    tee.close()
            finally:
                if paused:
                    engine.runtime.resume(c.id)
            cfg_obj = _container_config(engine, c, base)
            vols = _volumes(c, include_volumes)
            if vols:
                cfg_obj["Volumes"] = {**(cfg_obj.get("Volumes") or {}), **{v: {} for v in vols}}
            command = " ".join(c.config.get("command") or [])
        diff_id = "sha256:" + tee.h.hexdigest()
        with open(tmp, "rb") as f:
            blob = store.ingest_file(f)
        for k, v in new_config.items():
            if k in ("Env",):
                for e in v:
                    cfg_obj["Env"] = [x for x in cfg_obj.get("Env") or []
                                      if x.partition("=")[0] != e.partition("=")[0]] + [e]
            elif k in ("Labels", "ExposedPorts", "Volumes"):
                cfg_obj[k] = {**(cfg_obj.get(k) or {}), **v}
            elif k == "OnBuild":
                cfg_obj[k] = list(cfg_obj.get(k) or []) + v
            else:
                cfg_obj[k] = v
        created = _now()
        entry: dict[str, Any] = {"created": created, "created_by": command}
        if message:
            entry["comment"] = message
        if author:
            entry["author"] = author
        image_cfg = {k: v for k, v in base.items() if k not in ("history", "rootfs", "config")}
        image_cfg.update(created=created, config=cfg_obj)
        if author:
            image_cfg["author"] = author
        layer_type = _layer_type(media.OCI_LAYER_GZIP, fmt)
        new_layer = {"mediaType": layer_type, "digest": blob.digest, "size": blob.size}
        if squash:
            image_cfg["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
            image_cfg["history"] = [entry]
            layers = [new_layer]
        else:
            image_cfg["rootfs"] = {"type": "layers", "diff_ids": list(
                (base.get("rootfs") or {}).get("diff_ids") or []) + [diff_id]}
            image_cfg["history"] = list(base.get("history") or []) + [entry]
            layers = [{**layer, "mediaType": _layer_type(layer.get("mediaType", ""), fmt)}
                      for layer in base_manifest.get("layers") or []] + [new_layer]
        if fmt == "docker":
            cdesc = store.put_json(image_cfg, media.DOCKER_CONFIG)
            manifest = {"schemaVersion": 2, "mediaType": media.DOCKER_MANIFEST,
                        "config": {"mediaType": media.DOCKER_CONFIG, "digest": cdesc.digest,
                                   "size": cdesc.size}, "layers": layers}
            mdesc = store.put_json(manifest, media.DOCKER_MANIFEST)
        else:
            cdesc = store.put_json(image_cfg, media.OCI_CONFIG)
            manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                        "config": {"mediaType": media.OCI_CONFIG, "digest": cdesc.digest,
                                   "size": cdesc.size}, "layers": layers}
            mdesc = store.put_json(manifest, media.OCI_MANIFEST)
        # Unpacked now, so `run NAME` finds every layer ready.
        engine.storage.unpack_image(store, mdesc.digest)
        if target:
            store.set_name(target, mdesc)
        else:
            store.keep(mdesc)
    _emit(engine, c, "commit")
    return cdesc.digest.partition(":")[2]


def _write_commit_layer(engine: Engine, c: Container, out: IO[bytes], squash: bool) -> None:
    snap = _snapshot(engine, c)
    if squash:
        _export_tree(engine, c, out)
        return
    changes = changes_of(engine, c)
    tree_path = snap.rootfs if snap.mode == "copy" else snap.upper
    with RootDir.open(tree_path, "the container's changes") as tree:
        # owners as the container sees them (a user namespace's shift undone)
        write_layer(changes, tree, out, ids=IdMapper.from_spec(_spec(c)))


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _emit(engine: Engine, c: Container, action: str) -> None:
    try:
        from rongqi.engine import events
    except ImportError:   # engine/events.py has not landed yet
        return
    events.emit(engine.root, "container", action, id=c.id, name=c.name,
                image=c.config.get("image_name", ""),
                attributes=events.container_attributes(c.config))


# -- export -----------------------------------------------------------------------------------
def _export_tree(engine: Engine, c: Container, out: IO[bytes]) -> None:
    """The container's root filesystem (its snapshot: image plus changes, without volumes and
    other mounts) as one tar, owners as the container sees them, xattrs kept."""
    snap = _snapshot(engine, c)
    mounted_here = False
    from rongqi.storage.overlay import _is_mounted
    if snap.mode != "copy" and not _is_mounted(snap.rootfs):
        engine.storage.mount(snap)
        mounted_here = True
    try:
        with RootDir.open(snap.rootfs, f"container {c.name}") as root:
            sink = TarSink(out)
            reader = TreeReader(root, ids=IdMapper.from_spec(_spec(c)), xattrs=True)
            for entry in reader.entries("/", ""):
                sink.add(*entry)
            sink.close()
    finally:
        if mounted_here and c.status not in st.ALIVE:
            engine.storage.unmount(snap)


def export(engine: Engine, ref: str, out: IO[bytes]) -> None:
    """podman export CONTAINER: its filesystem as a tar stream on `out`."""
    from rongqi.engine import lifecycle
    with lifecycle.locked(engine, ref) as c:
        _export_tree(engine, c, out)
