"""Container lifecycle: create, start, stop, restart, kill, remove, pause, unpause, rename,
wait, list, inspect, prune, and the cleanup that keeps `ps` true after a crash.

Every mutating operation is the same five steps (docs/engine.md): lock, sync (re-read state,
fold in the monitor's exit record or its death), check the transition (status.py), act, save.
The names lock is taken before a container's lock, never after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.engine import records as rec
from rongqi.engine import status as st
from rongqi.engine.records import Container
from rongqi.errors import (ContainerNotFound, ContainerRunning, ContainerStateError,
                           ContainerStateImproper, EngineError, NameInUse, NoSuchContainer,
                           RongqiError, UsageError)
from rongqi.locking import Lock, LockError
from rongqi.values import asdict

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.options import ContainerOptions
    from rongqi.image.progress import Progress

DEFAULT_STOP_TIMEOUT = 10
# After SIGKILL, how long a process may take to go (a D-state process can take a while).
KILL_GRACE = 10.0
POLL = 0.02
LOG_DRIVERS = ("k8s-file", "json-file", "none", "passthrough", "journald")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def _emit(engine: Engine, action: str, c: Container, *, exit_code: int | None = None,
          **attributes: str) -> None:
    from rongqi.engine import events
    events.emit(engine.root, "container", action, id=c.id, name=c.name,
                image=c.config.get("image_name", ""),
                attributes=events.container_attributes(c.config, attributes),
                exit_code=exit_code)


# -- lock + sync ---------------------------------------------------------------------------------
@contextlib.contextmanager
def locked(engine: Engine, ref: str | Container) -> Iterator[Container]:
    """The container, locked exclusively and synced (what it left behind cleaned up)."""
    c = ref if isinstance(ref, Container) else engine.get(ref)
    lock = c.lock()
    try:
        lock.acquire()
    except LockError:
        raise NoSuchContainer(ref if isinstance(ref, str) else c.id) from None
    try:
        try:
            changed = c.sync()
        except NoSuchContainer:
            raise NoSuchContainer(ref if isinstance(ref, str) else c.id) from None
        if changed or not c.state.get("cleaned", True):
            cleanup(engine, c)
            c.save_state()
        yield c
    finally:
        lock.release()


def synced(engine: Engine, c: Container) -> Container:
    """Bring `c` up to date for reading (ps, inspect, wait): cleaned up and saved if nobody
    else holds its lock, else folded in memory under a shared lock."""
    lock = c.lock(blocking=False)
    try:
        got = lock.acquire()
    except LockError:
        raise NoSuchContainer(c.id) from None
    if got:
        try:
            if c.sync() or not c.state.get("cleaned", True):
                cleanup(engine, c)
                c.save_state()
        finally:
            lock.release()
        return c
    shared = c.lock(shared=True)
    try:
        shared.acquire()
    except LockError:
        raise NoSuchContainer(c.id) from None
    try:
        c.sync()
    finally:
        shared.release()
    return c


def cleanup(engine: Engine, c: Container) -> None:
    """What an ended container still holds once its monitor is gone: the runtime's container,
    the snapshot's mount, the run dir. Idempotent; the caller holds the lock and saves."""
    if c.status in st.ALIVE:
        return
    if c.monitor_alive():
        # A monitor still finishing (its exit record written) is past its own network
        # teardown; whatever that left (it failed, or a setup was cut short) goes now, as
        # rm deletes the record it would be found by. The rest is the monitor's until it
        # is gone.
        _teardown_network(engine, c)
        return
    try:
        engine.runtime_for(c).delete(c.id, force=True)
    except (ContainerNotFound, EngineError):
        # Not known to the runtime (or its binary is gone): what it made may outlive it.
        _destroy_orphan_cgroup(c)
    except ContainerStateError:
        pass
    _unmount(engine, c)
    _teardown_network(engine, c)
    if c.state.get("reason") and not c.state.get("cleaned", True):
        _emit(engine, "died", c, exit_code=c.state.get("exit_code"), reason=c.state["reason"])
    shutil.rmtree(c.run_dir, ignore_errors=True)
    c.state["cleaned"] = True


def _teardown_network(engine: Engine, c: Container) -> None:
    """The container's netns, veths, firewall rules and leases (engine/networks.py): gone
    whoever ended the container, its monitor included."""
    from rongqi.engine import networks
    with contextlib.suppress(RongqiError, OSError):
        networks.teardown(engine, c)


def _destroy_orphan_cgroup(c: Container) -> None:
    """The runtime lost the container's state (its root wiped, as a reboot does) but its
    cgroup, and maybe processes in it, outlived that: the spec says where; kill and remove."""
    from rongqi.engine.records import read_json
    from rongqi.linux import cgroups
    try:
        path = (read_json(os.path.join(c.bundle, "config.json")).get("linux") or {}).get(
            "cgroupsPath")
        cg = cgroups.Cgroup.open(cgroups.resolve_path(path, c.id))
    except (OSError, ValueError, RongqiError):
        return
    if any(os.path.isdir(d) for d in cg.dirs.values()):
        with contextlib.suppress(OSError, RongqiError):
            cg.destroy()


def _unmount(engine: Engine, c: Container) -> None:
    from rongqi.storage.overlay import StorageError
    snap_id = c.config.get("snapshot") or c.id
    with contextlib.suppress(StorageError):
        engine.storage.unmount(engine.storage.get_snapshot(snap_id))


def _mount(engine: Engine, c: Container) -> None:
    snap = engine.storage.get_snapshot(c.config.get("snapshot") or c.id)
    engine.storage.mount(snap)


# -- create --------------------------------------------------------------------------------------
def _validate(opts: ContainerOptions) -> None:
    if opts.name:
        try:
            rec.check_name(opts.name)
        except EngineError as e:
            raise EngineError(f"running container create option: {e}") from None
    if opts.log_driver not in LOG_DRIVERS:
        raise EngineError(f'invalid log driver "{opts.log_driver}": must be one of '
                          f"{', '.join(LOG_DRIVERS)}")
    if opts.restart.name not in RESTART_POLICIES:
        raise EngineError(f"invalid restart policy \"{opts.restart.name}\": must be one of "
                          f"{', '.join(RESTART_POLICIES)}")
    if opts.restart.name in ("always", "unless-stopped") and opts.remove:
        raise EngineError("the --rm option conflicts with --restart, when the restartPolicy "
                          "is not \"\" and \"no\"")
    if opts.cidfile and os.path.exists(opts.cidfile):
        raise EngineError(f"container id file exists. Ensure another container is not using "
                          f"it or delete {opts.cidfile}")


def create(engine: Engine, opts: ContainerOptions, *, progress: Progress | None = None,
           create_command: list[str] | None = None, keep_mounted: bool = False) -> Container:
    """Make a container: image (pulled as opts.pull says), snapshot, bundle, record, name.

    A created container holds no mount (start mounts its snapshot); `run`, which starts it
    at once, passes keep_mounted and saves an unmount and a mount.

    On any error nothing is left: no record, name, snapshot, volume or mount. The record's
    config.json is written last, so until then no other command sees the container; its lock
    is held throughout, so a CLI killed half-way leaves a dir that the next command sweeps.
    """
    from rongqi.engine import images
    _validate(opts)
    image = images.resolve(engine, opts.image, opts.pull,
                           images.PullOptions(tls_verify=opts.tls_verify,
                                              platform=getattr(opts, "platform", "")), progress)
    sweep(engine)
    records = engine.records
    cid = rec.new_id()
    cdir, lock = records.make_dir(cid)
    with ExitStack() as undo:
        undo.callback(lock.release)
        undo.callback(shutil.rmtree, cdir, True)
        name = _claim_name(engine, opts, cid, undo)
        c = Container(records, cid, {"id": cid, "name": name})
        os.mkdir(c.userdata, 0o700)
        os.mkdir(c.bundle, 0o700)
        # --rm: the snapshot goes with the container, a crash or not (podman's volatile).
        snap = engine.storage.create_snapshot(cid, image.chain_ids, volatile=opts.remove)
        undo.callback(engine.storage.remove_snapshot, cid)
        out = _build_bundle(engine, c, opts, image, snap.rootfs, undo)
        c.warnings = list(getattr(out, "warnings", []) or [])  # cli prints them as WARN lines
        if not keep_mounted:
            _unmount(engine, c)
        c.config = _config_record(engine, c, opts, image, out, create_command)
        c.state = rec.new_state()
        c.save_state()
        if opts.cidfile:
            _write_cidfile(opts.cidfile, cid)
            undo.callback(_unlink, opts.cidfile)
        # From here on the container exists. Durable (fsynced) unless --rm: a crash can then
        # lose only the record of a container that was to go at its exit anyway, and the dir
        # it leaves without config.json is what sweep() removes.
        c.save_config(durable=not opts.remove)
        undo.pop_all()
    lock.release()
    _emit(engine, "create", c)
    return c


def _claim_name(engine: Engine, opts: ContainerOptions, cid: str, undo: ExitStack) -> str:
    records = engine.records
    if not opts.name:
        name = records.unique_name(cid)
    else:
        with records.names_lock():
            owner = records.name_owner(opts.name)
            if owner and opts.replace:
                remove(engine, owner, force=True, names_locked=True, timeout=0)
            elif owner and not os.path.isdir(os.path.join(records.containers_dir, owner)):
                # A reservation whose container is gone (a CLI killed mid-create): stale.
                records.release_name(opts.name, owner)
            try:
                records.reserve_name(opts.name, cid)
            except NameInUse as e:
                e.args = (f"creating container storage: {e}",)  # podman's words, same kind
                raise
        name = opts.name
    undo.callback(_release_name, engine, name, cid)
    return name


def _release_name(engine: Engine, name: str, cid: str) -> None:
    with engine.records.names_lock():
        engine.records.release_name(name, cid)


def _write_cidfile(path: str, cid: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise EngineError(f"container id file exists. Ensure another container is not using "
                          f"it or delete {path}") from None
    except OSError as err:
        raise EngineError(f"opening cidfile {path}: {err.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _build_bundle(engine: Engine, c: Container, opts: ContainerOptions, image: Any,
                  rootfs: str, undo: ExitStack) -> Any:
    """engine.bundle.build -> bundle/config.json; anonymous volumes it made go on undo."""
    from rongqi.engine import bundle
    out = bundle.build(bundle.BundleInput(
        container_id=c.id, name=c.name, opts=opts, image_config=image.config, rootfs=rootfs,
        userdata=c.userdata, volumes=engine.volumes, rootless=engine.rootless, engine=engine))
    for vol in getattr(out, "anonymous_volumes", []) or []:
        undo.callback(_remove_volume, engine, vol)
    rec.write_json_atomic(os.path.join(c.bundle, "config.json"), out.spec)
    return out


def _remove_volume(engine: Engine, name: str) -> None:
    with contextlib.suppress(RongqiError):
        engine.volumes.remove(name, force=True)


def _config_record(engine: Engine, c: Container, opts: ContainerOptions, image: Any, out: Any,
                   create_command: list[str] | None) -> dict[str, Any]:
    filled = out.opts if getattr(out, "opts", None) is not None else opts
    o = asdict(filled)
    log_path = filled.log_opts.get("path") or os.path.join(
        c.userdata, "ctr.json.log" if filled.log_driver == "json-file" else "ctr.log")
    return {
        "id": c.id, "name": c.name, "created": rec.now(),
        "image": opts.image, "image_id": image.config_digest, "image_name": image.name,
        "options": o, "command": list(out.command), "snapshot": c.id,
        "chain_ids": list(image.chain_ids), "image_digest": image.manifest_digest,
        "log_path": log_path, "log_driver": filled.log_driver,
        "runtime": engine.runtime.name, "oci_root": engine.runtime.root,
        "mounts": list(getattr(out, "mounts", []) or []),
        "volumes": list(getattr(out, "named_volumes", []) or []),
        "anonymous_volumes": list(getattr(out, "anonymous_volumes", []) or []),
        "healthcheck": o.get("healthcheck"), "restart": o.get("restart"),
        "stop_signal": filled.stop_signal or "SIGTERM",
        "stop_timeout": (filled.stop_timeout if filled.stop_timeout is not None
                         else DEFAULT_STOP_TIMEOUT),
        "labels": dict(filled.labels), "annotations": dict(filled.annotations),
        "rootless": engine.rootless, "create_command": list(create_command or []),
    }


# -- start ---------------------------------------------------------------------------------------
def start(engine: Engine, ref: str | Container, *, attach: Any = None) -> Container:
    """Start a created or exited container (a running one is left as it is, as podman does).

    engine.monitor.start_container forks the monitor, which creates and starts the runtime
    container; it returns once the process runs, or raises the runtime's error."""
    from rongqi.engine import monitor
    with locked(engine, ref) as c:
        if c.status in (st.RUNNING, st.PAUSED):
            return c
        st.check(c.status, st.RUNNING, f"container {c.id} is {c.status}, it cannot be started")
        if c.monitor_alive():
            # The last run's monitor is still finishing (its exit record written): its run
            # dir is about to be replaced, so let it end first.
            monitor.wait_gone(c.run_dir, KILL_GRACE)
        prepare_start(engine, c)
        try:
            if has_network_plan(c):  # none, host, container:X have none: networks not imported
                from rongqi.engine import networks
                networks.setup(engine, c)  # the netns plugged in before the process runs
            monitor.start_container(engine.for_container(c), c, attach=attach)
        except BaseException as err:
            c.state.update(error=str(err) if isinstance(err, RongqiError) else "",
                           starting=False)
            cleanup(engine, c)
            c.save_state()
            raise
        c.state["status"] = st.RUNNING
        c.state["starting"] = False
        c.state.setdefault("started_at", rec.now())
        c.save_state()
    _emit(engine, "start", c)
    return c


# engine/networks.py's ATTACH_FILE: bundle.build writes it only for a network of ours (bridge,
# slirp4netns); tests/engine/test_run.py checks the two names agree.
NETWORK_PLAN = "networks.json"


def has_network_plan(c: Container) -> bool:
    """Whether create planned a network for c (else networks.setup has nothing to do)."""
    return os.path.exists(os.path.join(c.userdata, NETWORK_PLAN))


def prepare_start(engine: Engine, c: Container) -> None:
    """Before a (re)start: the snapshot mounted, the last run's runtime container and run dir
    gone, the last run's outcome cleared."""
    with contextlib.suppress(ContainerNotFound, ContainerStateError):
        engine.runtime_for(c).delete(c.id, force=True)
    shutil.rmtree(c.run_dir, ignore_errors=True)
    os.makedirs(c.run_dir, 0o700)
    _mount(engine, c)
    c.state.update(stop_requested=False, exit_code=0, oom_killed=False, reason="", error="",
                   pid=0, monitor_pid=0, cleaned=False, starting=True)
    c.save_state()  # a CLI killed from here on leaves `starting`: the next sync folds it


# -- stop / kill ---------------------------------------------------------------------------------
def _signal(text: str | int) -> int:
    from rongqi.engine.runtime import signal_number
    return signal_number(text)


def _wait_gone(c: Container, timeout: float) -> bool:
    """Wait (no lock held) until the monitor recorded an exit or died; False on timeout."""
    deadline = time.monotonic() + timeout
    pid = c.state.get("pid")
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError):
            doc = rec.read_json(c.exit_path)
            if doc.get("pid") in (None, 0, pid):
                return True
        if not c.monitor_alive():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


def _warn(text: str) -> None:
    """A warning on stderr as podman's logrus prints one when stderr is no terminal."""
    import sys
    from datetime import datetime, timezone
    now = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
    with contextlib.suppress(OSError, ValueError):
        print(f'time="{now}" level=warning msg="{text}"', file=sys.stderr, flush=True)


def stop(engine: Engine, ref: str | Container, timeout: float | None = None) -> Container:
    """The stop signal, then after `timeout` seconds (default the container's) SIGKILL.

    The lock is not held while waiting, so ps, inspect and logs go on meanwhile; the status
    says stopping. A container that is not running is left as it is (podman's stop is
    idempotent)."""
    with locked(engine, ref) as c:
        if c.status in (st.CREATED, st.EXITED):
            return c
        st.check(c.status, st.STOPPING, f"container {c.id} is {c.status}, it cannot be stopped")
        was_paused = c.status == st.PAUSED
        c.state.update(status=st.STOPPING, stop_requested=True)
        c.save_state()
        t = c.config.get("stop_timeout", DEFAULT_STOP_TIMEOUT) if timeout is None else timeout
        sig = _signal(c.config.get("stop_signal") or "SIGTERM")
        with contextlib.suppress(ContainerNotFound, ContainerStateError):
            if was_paused:
                engine.runtime_for(c).resume(c.id)
            if t > 0:
                engine.runtime_for(c).kill(c.id, sig)
    if t <= 0 or not _wait_gone(c, t):
        if t > 0:
            _warn(f"StopSignal {c.config.get('stop_signal') or 'SIGTERM'} failed to stop "
                  f"container {c.name} in {t:g} seconds, resorting to SIGKILL")
        with contextlib.suppress(ContainerNotFound, ContainerStateError):
            engine.runtime_for(c).kill(c.id, signal.SIGKILL, all=True)
        if not _wait_gone(c, KILL_GRACE):
            raise EngineError(f"container {c.id} did not exit within {KILL_GRACE:g} seconds of "
                              "SIGKILL")
    # a --rm container may be gone already (its monitor removed it): stopped all the same
    with contextlib.suppress(NoSuchContainer), locked(engine, c) as c:
        pass
    _emit(engine, "stop", c)
    return c


def kill(engine: Engine, ref: str | Container, sig: str | int = "SIGKILL") -> Container:
    number = _signal(sig)
    with locked(engine, ref) as c:
        if c.status not in st.ALIVE:
            raise ContainerStateImproper(f"can only kill running containers. {c.id} is in "
                                         f"state {c.status}")
        c.state["stop_requested"] = True
        c.save_state()
        try:
            engine.runtime_for(c).kill(c.id, number)
        except (ContainerNotFound, ContainerStateError):
            pass  # it ended just now: the monitor records that
        if number == signal.SIGKILL and c.status == st.PAUSED:
            with contextlib.suppress(ContainerNotFound, ContainerStateError):
                engine.runtime_for(c).resume(c.id)
    _emit(engine, "kill", c, signal=str(number))
    return c


def restart(engine: Engine, ref: str | Container, timeout: float | None = None) -> Container:
    c = stop(engine, ref, timeout)
    c = start(engine, c)
    _emit(engine, "restart", c)
    return c


# -- pause / unpause -----------------------------------------------------------------------------
def pause(engine: Engine, ref: str | Container) -> Container:
    with locked(engine, ref) as c:
        if c.status == st.PAUSED:
            raise ContainerStateImproper(f'"{c.id}" is already paused')
        if c.status != st.RUNNING:
            # podman quotes the status here, not the id
            raise ContainerStateImproper(f'"{c.status}" is not running, can\'t pause')
        engine.runtime_for(c).pause(c.id)
        c.state["status"] = st.PAUSED
        c.save_state()
    _emit(engine, "pause", c)
    return c


def unpause(engine: Engine, ref: str | Container) -> Container:
    with locked(engine, ref) as c:
        if c.status != st.PAUSED:
            raise ContainerStateImproper(f'"{c.id}" is not paused, can\'t unpause')
        engine.runtime_for(c).resume(c.id)
        c.state["status"] = st.RUNNING
        c.save_state()
    _emit(engine, "unpause", c)
    return c


# -- remove --------------------------------------------------------------------------------------
def trash_dir(engine: Engine) -> str:
    """ROOT/trash: removed containers' files (record dir, snapshot) waiting to be deleted."""
    return os.path.join(engine.root, "trash")


def remove(engine: Engine, ref: str | Container, force: bool = False, volumes: bool = False,
           *, timeout: float | None = None, names_locked: bool = False,
           trash: bool = False) -> str:
    """Remove a container and all it holds; a running one only with force (stopped first:
    its stop signal, then SIGKILL after `timeout`, as podman's rm -f). Returns its id.

    The record dir is renamed into ROOT/trash under the container's lock (so nobody sees
    it half-deleted). With trash (the monitor's --rm, on `run --rm`'s exit path), the
    snapshot's files go there too and stay (a recursive delete was ~40 ms of that path);
    mounts are gone all the same before this returns. The next `run`'s monitor-to-be (while
    it waits for its container) or the next `rm` empties it. Without, the trash is emptied
    here, so `rm` frees what earlier runs left.

    A crash half-way leaves status removing; the next rm finishes the job."""
    c = ref if isinstance(ref, Container) else engine.get(ref)
    with locked(engine, c) as c:
        if c.status in st.ALIVE and not force:
            raise ContainerRunning(f"cannot remove container {c.id} as it is {c.status} - "
                                   "running or paused containers cannot be removed without "
                                   "force")
        alive = c.status in st.ALIVE
    if alive:
        try:
            stop(engine, c, timeout)
        except ContainerStateImproper:
            pass  # another rm got there first (removing): the lock below sorts it out
    with locked(engine, c) as c:
        if c.status in st.ALIVE:  # started again meanwhile
            raise ContainerRunning(f"cannot remove container {c.id} as it is {c.status}")
        c.state["status"] = st.REMOVING
        c.save_state()
        cleanup(engine, c)
        from rongqi.storage.overlay import StorageError
        try:
            engine.storage.remove_snapshot(c.config.get("snapshot") or c.id,
                                           trash=trash_dir(engine) if trash else "")
        except StorageError as err:
            raise EngineError(f"removing container {c.id}: {err}") from None
        if volumes:
            for vol in c.config.get("anonymous_volumes", []):
                _remove_volume(engine, vol)
        # The record goes while the lock is held, in one rename: another rm waiting for this
        # lock then finds no record (no such container), never a half-deleted one whose
        # state it would try to save (FileNotFoundError: exit 125 for one of ten rm -f).
        from rongqi.storage import overlay
        if not overlay.to_trash(c.dir, trash_dir(engine)):
            shutil.rmtree(c.dir, ignore_errors=True)
    if names_locked:
        engine.records.release_name(c.name, c.id)
    else:
        _release_name(engine, c.name, c.id)
    _emit(engine, "remove", c)
    if not trash:
        overlay.empty_trash(trash_dir(engine))
    return c.id


def prune(engine: Engine, filters: list[str] | None = None) -> list[str]:
    """Remove every container that is not running (created or exited); their ids."""
    match = compile_filters(filters or [])
    removed = []
    for c in list_containers(engine, all=True):
        if c.status in (st.CREATED, st.EXITED) and match(c):
            with contextlib.suppress(NoSuchContainer):
                removed.append(remove(engine, c))
    return removed


# -- rename --------------------------------------------------------------------------------------
def rename(engine: Engine, ref: str, new_name: str) -> Container:
    rec.check_name(new_name)
    records = engine.records
    with records.names_lock():
        c = engine.get(ref)
        with locked(engine, c) as c:
            if c.status == st.REMOVING:
                raise ContainerStateImproper(f"container {c.id} is being removed")
            old = c.name
            if new_name == old:
                return c
            try:
                records.reserve_name(new_name, c.id)
            except NameInUse:
                raise EngineError(f"renaming container {c.id}: name {new_name} already in use, "
                                  f"cannot rename container {c.id}: container already "
                                  "exists") from None
            c.config["name"] = new_name
            c.save_config()
            records.release_name(old, c.id)
    _emit(engine, "rename", c, oldName=old)
    return c


# -- wait ----------------------------------------------------------------------------------------
WAIT_CONDITIONS = ("configured", "created", "exited", "healthy", "initialized", "paused",
                   "removing", "running", "stopped", "stopping", "unhealthy")


def wait(engine: Engine, ref: str, conditions: list[str] | None = None,
         interval: float = 0.05, timeout: float | None = None) -> int:
    """Block until the container is in one of `conditions` (default stopped); its exit code."""
    conds = conditions or ["stopped"]
    for cond in conds:
        if cond not in WAIT_CONDITIONS:
            raise EngineError(f"unknown container state: {cond}: invalid argument")
    c = engine.get(ref)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            synced(engine, c)
        except NoSuchContainer:
            raise NoSuchContainer(ref) from None
        health = (c.state.get("health") or {}).get("status", "")
        for cond in conds:
            if (cond in ("stopped", "exited") and c.status == st.EXITED
                    or cond in ("configured", "created") and c.status == st.CREATED
                    or cond == c.status or cond in ("healthy", "unhealthy") and health == cond):
                return int(c.state.get("exit_code", 0))
        if deadline is not None and time.monotonic() >= deadline:
            raise EngineError(f"timed out waiting for container {c.id}")
        time.sleep(interval)


# -- list / filters ------------------------------------------------------------------------------
def list_containers(engine: Engine, all: bool = False) -> list[Container]:
    """Every container (running ones only unless `all`), synced, newest first."""
    sweep(engine)
    out = []
    for c in engine.records.all():
        try:
            synced(engine, c)
        except NoSuchContainer:
            continue
        if all or c.status in st.ALIVE:
            out.append(c)
    out.sort(key=lambda c: c.config.get("created", ""), reverse=True)
    return out


def compile_filters(filters: list[str]) -> Any:
    """podman ps --filter KEY=VALUE (name, id, status, label, ancestor, exited, ...): a
    predicate. Different keys must all match; the same key repeated matches any value."""
    import re
    by_key: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise UsageError(f'invalid filter "{f}": expected KEY=VALUE')
        key = key.strip().lower()
        if key not in ("name", "id", "status", "label", "ancestor", "exited", "before",
                       "since", "restart-policy", "health"):
            raise UsageError(f"{key} is an invalid filter")
        if key == "status" and value not in ("created", "running", "paused", "stopping",
                                             "exited", "removing", "unknown", "stopped",
                                             "configured"):
            raise UsageError(f"{value} is not a valid status")
        if key == "exited":
            try:
                int(value)
            except ValueError:
                raise UsageError(f'exited code "{value}" is not an integer') from None
        if key == "restart-policy" and value not in ("always", "on-failure", "unless-stopped",
                                                     "none", "no"):
            raise UsageError(f"{value} invalid restart policy")  # podman's words
        by_key.setdefault(key, []).append(value)

    def one(key: str, value: str, c: Container) -> bool:
        if key == "name":
            return re.search(value, c.name) is not None
        if key == "id":
            # podman: hex digits are a prefix (either case); anything else is a regex
            v = value.lower()
            if v and all(ch in "0123456789abcdef" for ch in v):
                return c.id.startswith(v)
            return re.search(value, c.id) is not None
        if key == "status":
            return c.status == {"stopped": st.EXITED, "configured": st.CREATED}.get(value, value)
        if key == "label":
            k, eq, v = value.partition("=")
            labels = c.config.get("labels", {})
            return k in labels and (not eq or labels[k] == v)
        if key == "ancestor":
            img = c.config.get("image_name", "")
            return value in (c.config.get("image", ""), img, c.config.get("image_id", "")) or \
                img.startswith(value + ":") or img.split("/")[-1].split(":")[0] == value or \
                c.config.get("image_id", "").removeprefix("sha256:").startswith(value)
        if key == "exited":
            return c.status == st.EXITED and int(c.state.get("exit_code", 0)) == int(value)
        if key == "restart-policy":
            name = (c.config.get("restart") or {}).get("name") or "no"
            return name == value or (value == "none" and name == "no")
        if key == "health":
            return (c.state.get("health") or {}).get("status", "") == value
        return True  # before/since are handled by the caller below

    def match(c: Container) -> bool:
        return all(any(one(k, v, c) for v in vals) for k, vals in by_key.items()
                   if k not in ("before", "since"))

    match.before = by_key.get("before", [])  # type: ignore[attr-defined]
    match.since = by_key.get("since", [])    # type: ignore[attr-defined]
    return match


def filtered(engine: Engine, containers: list[Container], filters: list[str]) -> list[Container]:
    match = compile_filters(filters)
    out = [c for c in containers if match(c)]
    for ref in match.before:
        t = engine.get(ref).config.get("created", "")
        out = [c for c in out if c.config.get("created", "") < t]
    for ref in match.since:
        t = engine.get(ref).config.get("created", "")
        out = [c for c in out if c.config.get("created", "") > t]
    return out


# -- sweep: what a CLI killed half-way left ------------------------------------------------------
def sweep(engine: Engine) -> None:
    """Remove what a killed `create` left: a container dir without config.json whose lock no
    one holds, its snapshot, and names reserved for containers that do not exist."""
    records = engine.records
    try:
        entries = os.listdir(records.containers_dir)
    except FileNotFoundError:
        return
    for entry in entries:
        d = os.path.join(records.containers_dir, entry)
        if entry.startswith(".new-"):
            # Killed between mkdir and rename (a moment): old enough, it is nobody's.
            with contextlib.suppress(OSError):
                if time.time() - os.stat(d).st_mtime > 60:
                    shutil.rmtree(d, ignore_errors=True)
            continue
        if len(entry) != 64 or os.path.exists(os.path.join(d, rec.CONFIG)):
            continue
        lock = Lock(os.path.join(d, "lock"), blocking=False, create=False)
        try:
            if not lock.acquire():
                continue  # a create under way
        except LockError:
            continue  # a dir without a lock was never a record of ours
        try:
            if os.path.exists(os.path.join(d, rec.CONFIG)):
                continue
            from rongqi.storage.overlay import StorageError
            with contextlib.suppress(StorageError):
                engine.storage.remove_snapshot(entry)
            shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.release()
    try:
        names = os.listdir(records.names_dir)
    except FileNotFoundError:
        return
    for n in names:
        if n.startswith("."):  # a reservation's temp file whose CLI died before link(2)
            with contextlib.suppress(OSError):
                if time.time() - os.lstat(os.path.join(records.names_dir, n)).st_mtime > 60:
                    os.unlink(os.path.join(records.names_dir, n))
    stale = [n for n in names if not n.startswith(".")
             and not os.path.isdir(os.path.join(records.containers_dir,
                                                records.name_owner(n) or "-"))]
    if stale:
        with records.names_lock():
            for n in stale:
                owner = records.name_owner(n)
                if owner and not os.path.isdir(os.path.join(records.containers_dir, owner)):
                    records.release_name(n, owner)


# -- inspect -------------------------------------------------------------------------------------
def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    """podman's `container inspect` JSON for one container."""
    c = synced(engine, engine.get(ref))
    from rongqi.engine.inspection import container_json
    return container_json(engine, c)

