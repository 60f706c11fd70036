"""The Docker API's container routes: create, start, stop, restart, kill, wait, pause, unpause,
rename, inspect, list, remove, top, stats, changes, archive, export, prune.

Each handler parses Docker's request, calls the engine (the same calls as the CLI's) and
shapes the answer with serve/translate.py; errors get Docker's words and status codes
(304 for a start of a running or a stop of a stopped container, 404, 409 conflicts).
Attach, logs, resize and exec are serve/streams.py's and serve/execs.py's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

from rongqi.errors import NoSuchContainer, RongqiError
from rongqi.serve import translate as tr
from rongqi.serve.app import HTTPError, Request, Response, json_response, route

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.records import Container

ALIVE = ("running", "paused", "stopping")
POLL = 0.01
# How long a kill with SIGKILL waits for the container to end (dockerd's figure).
KILL_WAIT = 10.0


@contextlib.contextmanager
def _docker_words(ref: str) -> Iterator[None]:
    """The engine's "no such container" as Docker says it (clients match "No such container")."""
    try:
        yield
    except NoSuchContainer:
        raise HTTPError(404, f"No such container: {ref}") from None


def _get(req: Request) -> Container:
    ref = req.params["id"]
    with _docker_words(ref):
        return req.engine.get(ref)


def _synced(req: Request) -> Container:
    from rongqi.engine import lifecycle
    ref = req.params["id"]
    with _docker_words(ref):
        return lifecycle.synced(req.engine, req.engine.get(ref))


# -- create ---------------------------------------------------------------------------------------
def _image_ref(name: str) -> str:
    """The name as Docker's "No such image" says it: a tag added when there is none."""
    last = name.rsplit("/", 1)[-1]
    return name if "@" in name or ":" in last else f"{name}:latest"


def _make_bind_sources(body: dict[str, Any]) -> None:
    """Docker makes a missing host directory of a HostConfig.Binds entry (not of Mounts)."""
    for b in (body.get("HostConfig") or {}).get("Binds") or []:
        src = str(b).split(":", 1)[0]
        if src.startswith("/") and not os.path.lexists(src):
            os.makedirs(src, 0o755, exist_ok=True)


def _volumes_from(req: Request, body: dict[str, Any], opts: Any) -> None:
    """HostConfig.VolumesFrom (`NAME[:ro|:rw]`): the named containers' volumes and binds at
    the same paths, beside this container's own (which win); `ro` makes them read-only, no
    mode keeps each one's own. The volumes are shared by name: a `rm -v` of this container
    leaves them to their owner."""
    from rongqi.engine.options import MountSpec
    entries = (body.get("HostConfig") or {}).get("VolumesFrom") or []
    if not entries:
        return
    if not isinstance(entries, list):
        raise HTTPError(400, "HostConfig.VolumesFrom: expected a list of container names")
    taken = {os.path.normpath(m.destination) for m in opts.mounts}
    for entry in entries:
        ref, _, mode = str(entry).partition(":")
        if mode not in ("", "ro", "rw"):
            raise HTTPError(400, f"invalid mode: {mode}")
        with _docker_words(ref):
            source = req.engine.get(ref)
        for m in source.config.get("mounts") or []:
            dest = os.path.normpath(str(m.get("Destination") or "/"))
            if dest == "/" or dest in taken:
                continue
            ro = mode == "ro" or (not mode and not m.get("RW", True))
            if m.get("Type") == "bind" and m.get("Source"):
                opts.mounts.append(MountSpec("bind", dest, str(m["Source"]), readonly=ro))
            elif m.get("Type") == "volume" and m.get("Name"):
                opts.mounts.append(MountSpec("volume", dest, str(m["Name"]), readonly=ro))
            else:
                continue   # a tmpfs is the container's own, as with Docker
            taken.add(dest)
    opts.annotations[tr.VOLUMES_FROM] = ",".join(str(e) for e in entries)


@route("POST", "/containers/create")
def create(req: Request) -> Response:
    from rongqi.errors import NameInUse
    from rongqi.image.errors import ImageNotFound
    body = req.json()
    if body is None:
        raise HTTPError(400, "config cannot be empty in order to create a container")
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON in the request body: expected an object")
    name = req.arg("name") or ""
    opts, warnings = tr.create_options(body, name)
    _volumes_from(req, body, opts)
    _make_bind_sources(body)
    try:
        c = req.engine.create(opts)
    except ImageNotFound:
        raise HTTPError(404, f"No such image: {_image_ref(opts.image)}") from None
    except NameInUse as e:
        raise HTTPError(409, f'Conflict. The container name "/{e.name}" is already in use by '
                             f'container "{e.owner}". You have to remove (or rename) that '
                             "container to be able to reuse that name.") from None
    warnings += list(getattr(c, "warnings", []) or [])
    return json_response({"Id": c.id, "Warnings": warnings}, 201)


# -- lifecycle ------------------------------------------------------------------------------------
@route("POST", "/containers/{id}/start")
def start(req: Request) -> Response:
    from rongqi.serve import streams
    c = _synced(req)
    if c.status in ALIVE:
        return Response(304)
    # An attach that came first (docker run, start -a, compose up) waits in serve/streams.py:
    # its socket goes to the monitor, which then speaks to it from the process's first byte.
    with _docker_words(req.params["id"]), streams.start_attach(c.id) as sock:
        req.engine.start(c, attach=sock)
    return Response(204)


def _timeout(req: Request) -> float | None:
    t = req.int("t")
    return None if t is None or t < 0 else float(t)


@route("POST", "/containers/{id}/stop")
def stop(req: Request) -> Response:
    c = _synced(req)
    if c.status not in ALIVE:
        return Response(304)
    with _docker_words(req.params["id"]):
        req.engine.stop(c, _timeout(req))
    return Response(204)


@route("POST", "/containers/{id}/restart")
def restart(req: Request) -> Response:
    c = _synced(req)
    with _docker_words(req.params["id"]):
        req.engine.restart(c, _timeout(req))
    return Response(204)


@route("POST", "/containers/{id}/kill")
def kill(req: Request) -> Response:
    from rongqi.engine.bundle import BundleError, signal_number
    c = _synced(req)
    sig = req.arg("signal") or "SIGKILL"
    try:
        signal_number(sig)
    except BundleError:
        raise HTTPError(400, f"Invalid signal: {sig}") from None
    if c.status not in ALIVE:
        raise HTTPError(409, f"Cannot kill container: {req.params['id']}: Container {c.id} is "
                             "not running")
    with _docker_words(req.params["id"]):
        req.engine.kill(c, sig)
    if signal_number(sig) == 9:
        # dockerd (and podman's compat API) answer a SIGKILL once the container has ended:
        # an inspect right after it sees exited and 137, never running.
        from rongqi.engine import lifecycle
        with contextlib.suppress(RongqiError):
            lifecycle.wait(req.engine, c.id, ["stopped"], timeout=KILL_WAIT)
    return Response(204)


@route("POST", "/containers/{id}/pause")
def pause(req: Request) -> Response:
    c = _synced(req)
    if c.status == "paused":
        raise HTTPError(409, f"Container {c.id} is already paused")
    if c.status != "running":
        raise HTTPError(409, f"Container {c.id} is not running")
    with _docker_words(req.params["id"]):
        req.engine.pause(c)
    return Response(204)


@route("POST", "/containers/{id}/unpause")
def unpause(req: Request) -> Response:
    c = _synced(req)
    if c.status != "paused":
        raise HTTPError(409, f"Container {c.id} is not paused")
    with _docker_words(req.params["id"]):
        req.engine.unpause(c)
    return Response(204)


@route("POST", "/containers/{id}/rename")
def rename(req: Request) -> Response:
    from rongqi.engine.records import _NAME_RE
    c = _get(req)
    new = (req.arg("name") or "").lstrip("/")
    if not new:
        raise HTTPError(400, "Neither old nor new names may be empty")
    if not _NAME_RE.match(new):
        raise HTTPError(400, f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                             "are allowed")
    owner = req.engine.records.name_owner(new)
    if owner and owner != c.id:
        raise HTTPError(409, f'Error when allocating new name: Conflict. The container name '
                             f'"/{new}" is already in use by container "{owner}". You have '
                             "to remove (or rename) that container to be able to reuse that "
                             "name.")
    with _docker_words(req.params["id"]):
        req.engine.rename(c.id, new)
    return Response(204)


@route("POST", "/containers/{id}/update")
def update(req: Request) -> Response:
    """dockerd's update: new limits and restart policy, live when the container runs and
    kept in its record either way (engine/update.py); 200 {"Warnings": [...]}."""
    from rongqi.engine.update import UpdateConflict
    c = _get(req)
    body = req.json()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON in the request body: expected an object")
    try:
        changes, warnings = tr.update_request(body, c)
    except tr.UpdateConflict as err:
        raise HTTPError(409, f"Cannot update container {c.id}: {err}") from None
    try:
        with _docker_words(req.params["id"]):
            req.engine.update(c, changes)
    except UpdateConflict as err:
        raise HTTPError(409, f"Cannot update container {c.id}: {err}") from None
    except RongqiError as err:
        from rongqi.serve.app import error_status
        status = error_status(err)
        raise HTTPError(status, str(err) if status == 400 else
                        f"Cannot update container {c.id}: {err}") from None
    return json_response({"Warnings": warnings})


@route("DELETE", "/containers/{id}")
def remove(req: Request) -> Response:
    c = _synced(req)
    force = req.flag("force")
    if req.flag("link"):
        raise HTTPError(400, "Conflict, cannot remove the default link name of the container: "
                             "rongqi has no links")
    if c.status in ALIVE and not force:
        if c.status == "paused":
            raise HTTPError(409, f"You cannot remove a paused container {c.id}. Unpause and "
                                 "then stop the container before attempting removal or force "
                                 "remove")
        raise HTTPError(409, f"You cannot remove a running container {c.id}. Stop the "
                             "container before attempting removal or force remove")
    with _docker_words(req.params["id"]):
        # dockerd's forced remove kills at once (SIGKILL), never a stop with its timeout
        req.engine.remove(c, force=force, volumes=req.flag("v"), timeout=0 if force else None)
    return Response(204)


# -- wait -----------------------------------------------------------------------------------------
class _Gone(Exception):
    """The client went away (or the service stops) while a wait waited."""


def _read_json(path: str) -> dict[str, Any] | None:
    from rongqi.engine.records import read_json
    try:
        doc = read_json(path)
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def _exit_from_monitor(c: Container, req: Request) -> int | None:
    """The exit code the monitor of the running container announces to its attach clients
    (an EXIT frame as its last word); None when no monitor listens or it closed without one.
    The one reliable source for a container that --rm removes as soon as it ended."""
    from rongqi.engine import attach
    try:
        s = attach.connect(c.run_dir)
    except OSError:
        return None
    reader = attach.FrameReader()
    with s:
        s.settimeout(0.5)
        while True:
            try:
                data = s.recv(65536)
            except TimeoutError:
                if req.stopping.is_set() or req.disconnected():
                    raise _Gone() from None
                continue
            except OSError:
                return None
            if not data:
                return None
            try:
                frames = reader.feed(data)
            except ValueError:
                return None
            for stream, payload in frames:
                if stream == attach.EXIT:
                    with contextlib.suppress(ValueError):
                        return int(payload)
                    return None


def _died_code(engine: Engine, c: Container, since_ns: int, default: int) -> int:
    """The exit code of the container's last "died" event since since_ns (the events log)."""
    from rongqi.engine import events
    code = default
    with contextlib.suppress(RongqiError, OSError, ValueError):
        for ev in events.read(engine.root, events.ReadOptions(
                filters={"container": [c.id], "event": ["died"]}, since_ns=since_ns,
                stream=False)):
            code = int(ev.exit_code or 0)
    return code


def _wait_for(engine: Engine, c: Container, condition: str, base: tuple[str, str],
              req: Request, since_ns: int) -> int:
    """Docker's wait: not-running (now or once it stops), next-exit (the end of a run that
    began after `base`, (started_at, finished_at) when the wait was asked), removed (that,
    then the container gone)."""
    from rongqi.engine import lifecycle
    from rongqi.engine.records import EXIT, STATE
    code: int | None = None
    last_sync = 0.0
    # The monitor of a container with a restart policy says nothing at the end of a run it
    # restarts (its exit frame comes after the last one): such a wait watches the state.
    policy = c.config.get("restart") or {}
    name = policy.get("name") if isinstance(policy, dict) else str(policy).partition(":")[0]
    restarts = name in ("always", "unless-stopped", "on-failure")
    while code is None:
        if req.stopping.is_set():
            raise _Gone()
        if not restarts and os.path.exists(os.path.join(c.run_dir, "attach")):
            code = _exit_from_monitor(c, req)
            if code is not None:
                break
        ex = _read_json(os.path.join(c.run_dir, EXIT))
        if ex is not None and ex.get("finished_at") and ex.get("finished_at") != base[1]:
            code = int(ex.get("exit_code", 0))
            break
        state = _read_json(os.path.join(c.dir, STATE))
        if state is None and not os.path.isdir(c.dir):
            # Removed before we saw it end (--rm, a fast command): its monitor's "died" event
            # (written before the removal) has the code.
            return _died_code(engine, c, since_ns, int(c.state.get("exit_code", 0)))
        if state is not None:
            c.state = state
            ended = state.get("status") == "exited"
            if restarts and state.get("finished_at") not in ("", None, base[1]):
                # A run ended and the restart policy began the next one (the state never
                # says exited then): that end is what Docker's wait reports.
                code = int(state.get("exit_code", 0))
                break
            if ended and (condition == "not-running" or state.get("finished_at") != base[1]
                          or state.get("started_at") != base[0]):
                code = int(state.get("exit_code", 0))
                break
            if condition == "not-running" and state.get("status") == "created":
                return 0
        now = time.monotonic()
        if now - last_sync > 1.0:
            # Fold in a monitor that died (nothing else would say the container ended).
            last_sync = now
            try:
                lifecycle.synced(engine, c)
            except NoSuchContainer:
                return _died_code(engine, c, since_ns, int(c.state.get("exit_code", 0)))
            if req.disconnected():
                raise _Gone()
        time.sleep(POLL)
    if condition == "removed":
        while os.path.isdir(c.dir):
            if req.stopping.is_set() or req.disconnected():
                raise _Gone()
            time.sleep(0.05)
    return code


@route("POST", "/containers/{id}/wait")
def wait(req: Request) -> Response:
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise HTTPError(400, f'invalid condition: "{condition}"')
    c = _synced(req)
    # What "next" means is fixed now, before the answer's head goes out: the docker CLI
    # starts the container as soon as it has that head.
    base = (str(c.state.get("started_at", "")), str(c.state.get("finished_at", "")))
    since_ns = time.time_ns() - 1_000_000_000   # a clock step's worth of slack
    if condition == "not-running" and c.status not in ALIVE:
        return json_response({"StatusCode": int(c.state.get("exit_code", 0)), "Error": None})
    engine = req.engine

    def body() -> Iterator[bytes]:
        import json
        try:
            code = _wait_for(engine, c, condition, base, req, since_ns)
        except _Gone:
            return
        except RongqiError as e:
            yield json.dumps({"StatusCode": -1, "Error": {"Message": str(e)}}).encode() + b"\n"
            return
        yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Response(200, body(), content_type="application/json")


# -- inspect and list -----------------------------------------------------------------------------
@route("GET", "/containers/{id}/json")
def inspect(req: Request) -> Response:
    c = _synced(req)
    with _docker_words(req.params["id"]):
        return json_response(tr.inspect_json(req.engine, c, size=req.flag("size")))


_LIST_KEYS = ("id", "name", "label", "status", "ancestor", "exited", "before", "since",
              "network", "volume", "health", "publish", "expose", "isolation", "is-task")
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _port_filter(value: str) -> tuple[int, int, str]:
    port, _, proto = value.partition("/")
    lo, _, hi = port.partition("-")
    try:
        return int(lo), int(hi or lo), proto
    except ValueError:
        raise HTTPError(400, f"invalid filter 'publish={value}'") from None


def _matcher(engine: Engine, flt: dict[str, list[str]]) -> Callable[[Container], bool]:
    """Docker's ps filters: every key must match; a repeated key any of its values, but
    every one of its label values."""
    import re
    for key, values in flt.items():
        if key not in _LIST_KEYS:
            raise HTTPError(400, f"invalid filter '{key}'")
        for v in values:
            if key == "status" and v not in _STATUSES:
                raise HTTPError(400, f"invalid filter 'status={v}'")
            if key == "health" and v not in ("starting", "healthy", "unhealthy", "none"):
                raise HTTPError(400, f"invalid filter 'health={v}'")
            if key == "exited" and not v.lstrip("-").isdigit():
                raise HTTPError(400, f"invalid filter 'exited={v}'")
            if key == "name":
                try:
                    re.compile(v)
                except re.error:
                    raise HTTPError(400, f"invalid filter 'name={v}'") from None
    bounds: dict[str, str] = {}
    for key in ("before", "since"):
        for ref in flt.get(key, []):
            try:
                bounds[key] = engine.get(ref).config.get("created", "")
            except NoSuchContainer:
                raise HTTPError(404, f"No such container: {ref}") from None

    def one(key: str, v: str, c: Container) -> bool:
        o = c.config.get("options") or {}
        if key == "id":
            return c.id.startswith(v)
        if key == "name":
            return re.search(v, "/" + c.name) is not None or re.search(v, c.name) is not None
        if key == "label":
            k, eq, val = v.partition("=")
            labels = c.config.get("labels") or {}
            return k in labels and (not eq or labels[k] == val)
        if key == "status":
            return tr.docker_state(c.status) == v
        if key == "ancestor":
            from rongqi.engine import lifecycle
            return bool(lifecycle.compile_filters([f"ancestor={v}"])(c))
        if key == "exited":
            return c.status == "exited" and int(c.state.get("exit_code", 0)) == int(v)
        if key == "network":
            from rongqi.engine import networks
            names = list(networks.mode_of(o.get("network", ""),
                                          bool(c.config.get("rootless")))[1])
            names += [tr.docker_network_name(n) for n in names]
            return v in names or tr.network_mode(c) == v
        if key == "volume":
            return any(v in (m.get("Name"), m.get("Source"), m.get("Destination"))
                       for m in c.config.get("mounts") or [])
        if key == "health":
            h = tr._health_json(c)
            return (h["Status"] if h else "none") == v
        if key in ("publish", "expose"):
            lo, hi, proto = _port_filter(v)
            if key == "expose":
                return any(lo <= n <= hi and (not proto or p == proto)
                           for n, p in tr.exposed(c))
            for k, hosts in tr.port_map(c).items():
                n, _, p = k.partition("/")
                if hosts and lo <= int(n) <= hi and (not proto or p == proto):
                    return True
            return False
        if key == "isolation":
            return v in ("default", "")
        if key == "is-task":
            return v in ("false", "0")
        return True

    def match(c: Container) -> bool:
        created = c.config.get("created", "")
        if "before" in bounds and not created < bounds["before"]:
            return False
        if "since" in bounds and not created > bounds["since"]:
            return False
        # Docker: every label filter must match (compose selects by project AND service);
        # a repeated other key matches any of its values.
        return all((all if k == "label" else any)(one(k, v, c) for v in vals)
                   for k, vals in flt.items() if k not in ("before", "since"))

    return match


@route("GET", "/containers/json")
def list_containers(req: Request) -> Response:
    flt = req.filters()
    limit = req.int("limit", -1)
    size = req.flag("size")
    # Docker: a limit, before or since lists stopped containers too.
    every = req.flag("all") or (limit is not None and limit > 0) or "before" in flt \
        or "since" in flt or any(s != "running" for s in flt.get("status", []))
    match = _matcher(req.engine, flt)
    out = []
    now = time.time()
    for c in req.engine.list(all=True):
        if not every and c.status not in ALIVE:
            continue
        if not match(c):
            continue
        try:
            out.append(tr.summary_json(req.engine, c, size=size, now=now))
        except NoSuchContainer:
            continue
        if limit is not None and limit > 0 and len(out) >= limit:
            break
    return json_response(out)


# -- processes, figures, changes ------------------------------------------------------------------
@route("GET", "/containers/{id}/top")
def top(req: Request) -> Response:
    from rongqi.engine import stats
    c = _synced(req)
    if c.status not in ALIVE:
        raise HTTPError(409, f"Container {c.id} is not running")
    with _docker_words(req.params["id"]):
        # dockerd runs the host's ps over the container's pids, never a ps in the container
        return json_response(stats.host_ps(req.engine, c.id, req.arg("ps_args") or ""))


@route("GET", "/containers/{id}/stats")
def stats(req: Request) -> Response:
    from rongqi.engine import lifecycle
    c = _synced(req)
    stream = req.flag("stream", True)
    one_shot = req.flag("one-shot")
    engine = req.engine

    def fresh() -> Container:
        return lifecycle.synced(engine, engine.get(c.id))

    if not stream:
        first = tr.stats_json(c)
        if one_shot or c.status not in ALIVE:
            return json_response(first)
        time.sleep(1)   # as dockerd: two samples a second apart, so the CPU % means something
        with _docker_words(req.params["id"]):
            return json_response(tr.stats_json(fresh(), first))

    def body() -> Iterator[bytes]:
        import json
        previous = None
        cur = c
        while True:
            doc = tr.stats_json(cur, previous)
            yield json.dumps(doc).encode() + b"\n"
            previous = doc
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:
                if req.stopping.is_set() or req.disconnected():
                    return
                time.sleep(0.1)
            try:
                cur = fresh()
            except NoSuchContainer:
                return

    return Response(200, body(), content_type="application/json")


@route("GET", "/containers/{id}/changes")
def changes(req: Request) -> Response:
    from rongqi.engine import files
    c = _get(req)
    with _docker_words(req.params["id"]):
        return json_response(tr.changes_json(files.diff(req.engine, c.id)))


# -- files ----------------------------------------------------------------------------------------
class _PipeOut:
    """The write end of a stream's pipe for the engine's tar writers: once the reader went
    away the first write says so (EPIPE ends the writer), later ones (a tarfile's close,
    from its __del__) are dropped rather than logged as errors."""

    def __init__(self, fd: int):
        self.fd = fd
        self.broken = False

    def write(self, data: bytes) -> int:
        if self.broken:
            return len(data)
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError:
            self.broken = True
            raise BrokenPipeError("the client went away") from None
        return len(data)

    def flush(self) -> None:
        pass


def _streamed(write: Callable[[Any], None]) -> Iterator[bytes]:
    """What write(out) writes, as chunks, from a thread of its own through a pipe: a big
    archive is never held in memory; a client that goes away ends the writer (EPIPE). The
    head went out before the first chunk: a failure half-way can only cut the stream short."""
    r, w = os.pipe2(os.O_CLOEXEC)

    def writer() -> None:
        out = _PipeOut(w)
        try:
            write(out)
        except BrokenPipeError:
            pass
        except Exception as e:  # noqa: BLE001 - the client sees the stream end early
            import sys
            print(f"rongqi serve: a tar stream ended early: {e}", file=sys.stderr, flush=True)
        finally:
            out.broken = True
            os.close(w)

    t = threading.Thread(target=writer, name="rongqi-serve-tar", daemon=True)
    t.start()
    try:
        with os.fdopen(r, "rb") as src:
            while chunk := src.read1(1 << 16):
                yield chunk
    finally:
        t.join()


def _path_stat(engine: Engine, ref: str, path: str) -> dict[str, Any]:
    """Docker's ContainerPathStat of `path` in the container (its last component not
    followed); 404 with Docker's words when there is nothing there."""
    import posixpath

    from rongqi.engine import files
    from rongqi.engine.treecopy import clean
    missing = HTTPError(404, f"Could not find the file {path} in container {ref}")
    with _docker_words(ref):
        try:
            with files.container_fs(engine, ref) as fs:
                p = clean(path)
                root, where = fs.locate(p)
                st = root.lstat(where)
                if st is None:
                    raise missing
                link = ""
                import stat as stmod
                if stmod.S_ISLNK(st.st_mode):
                    pfd, name = root.parent(where)
                    try:
                        link = os.readlink(name, dir_fd=pfd)
                    finally:
                        os.close(pfd)
                return tr.path_stat(posixpath.basename(p) or "/", st.st_mode, st.st_size,
                                    st.st_mtime, link)
        except OSError as e:
            if e.errno in (2, 20):   # ENOENT, ENOTDIR: a component is missing or no dir
                raise missing from None
            raise


@route("HEAD", "/containers/{id}/archive")
def archive_head(req: Request) -> Response:
    c = _get(req)
    path = req.arg("path")
    if not path:
        raise HTTPError(400, "path is required")
    stat = _path_stat(req.engine, c.id, path)
    return Response(200, headers={"X-Docker-Container-Path-Stat": tr.path_stat_header(stat),
                                  "Content-Type": "application/x-tar"})


@route("GET", "/containers/{id}/archive")
def archive_get(req: Request) -> Response:
    from rongqi.engine import files
    c = _get(req)
    path = req.arg("path")
    if not path:
        raise HTTPError(400, "path is required")
    stat = _path_stat(req.engine, c.id, path)
    engine = req.engine

    def write(out: Any) -> None:
        files.copy(engine, f"{c.id}:{path}", "-", stdout=out, archive=True)

    return Response(200, _streamed(write), content_type="application/x-tar",
                    headers={"X-Docker-Container-Path-Stat": tr.path_stat_header(stat)})


@route("PUT", "/containers/{id}/archive")
def archive_put(req: Request) -> Response:
    from rongqi.engine import files
    c = _get(req)
    path = req.arg("path")
    if not path:
        raise HTTPError(400, "path is required")
    stat = _path_stat(req.engine, c.id, path)
    if not stat["mode"] & tr.MODE_DIR:
        raise HTTPError(400, "extraction point is not a directory")
    if (c.config.get("options") or {}).get("read_only"):
        raise HTTPError(403, "container rootfs is marked read-only")
    overwrite = not req.flag("noOverwriteDirNonDir")
    with _docker_words(req.params["id"]):
        files.copy(req.engine, "-", f"{c.id}:{path}", stdin=req.stream,
                   archive=req.flag("copyUIDGID"), overwrite=overwrite)
    return Response(200)


@route("GET", "/containers/{id}/export")
def export(req: Request) -> Response:
    from rongqi.engine import files
    c = _get(req)
    engine = req.engine
    return Response(200, _streamed(lambda out: files.export(engine, c.id, out)),
                    content_type="application/x-tar")


# -- prune ----------------------------------------------------------------------------------------
def _until(value: str) -> str:
    """Docker's until=: a unix time, an RFC 3339 time or a Go duration before now; as the
    record's RFC 3339 text (which sorts as time does)."""
    import datetime

    from rongqi.engine import events
    try:
        ns = events.parse_input_time(value, since=False)
    except RongqiError:
        raise HTTPError(400, f"invalid filter 'until={value}'") from None
    t = datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


@route("POST", "/containers/prune")
def prune(req: Request) -> Response:
    flt = req.filters()
    for key in flt:
        if key not in ("until", "label", "label!"):
            raise HTTPError(400, f"Invalid filter '{key}'")
    untils = [_until(v) for v in flt.get("until", [])]

    def labelled(labels: dict[str, str], v: str) -> bool:
        k, eq, val = v.partition("=")
        return k in labels and (not eq or labels[k] == val)

    deleted: list[str] = []
    reclaimed = 0
    engine = req.engine
    for c in engine.list(all=True):
        if c.status not in ("created", "exited"):
            continue
        created = c.config.get("created", "")
        labels = c.config.get("labels") or {}
        if any(created >= u for u in untils):
            continue
        if flt.get("label") and not all(labelled(labels, v) for v in flt["label"]):
            continue
        if any(labelled(labels, v) for v in flt.get("label!", [])):
            continue
        rw, _ = tr.sizes(engine, c)
        try:
            engine.remove(c)
        except (NoSuchContainer, RongqiError):
            continue  # started or removed meanwhile: not ours to prune
        deleted.append(c.id)
        reclaimed += rw
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


# -- commit ---------------------------------------------------------------------------------------
def _config_changes(conf: dict[str, Any]) -> list[str]:
    """POST /commit's body (a container Config whose set fields override the image's) as
    the engine's --change instructions."""
    import json
    out: list[str] = []
    for key, word in (("Cmd", "CMD"), ("Entrypoint", "ENTRYPOINT")):
        v = tr.strslice(conf.get(key), f"Config.{key}")
        if v:
            out.append(f"{word} {json.dumps(v)}")
    for e in conf.get("Env") or []:
        if "=" in str(e):
            out.append(f"ENV {e}")
    for k, v in (conf.get("Labels") or {}).items():
        out.append(f"LABEL {json.dumps(str(k))}={json.dumps(str(v))}")
    for p in conf.get("ExposedPorts") or {}:
        out.append(f"EXPOSE {p}")
    for v in conf.get("Volumes") or {}:
        out.append(f"VOLUME {json.dumps([v])}")
    for key, word in (("WorkingDir", "WORKDIR"), ("User", "USER"), ("StopSignal", "STOPSIGNAL")):
        if conf.get(key):
            out.append(f"{word} {conf[key]}")
    return out


@route("POST", "/commit")
def commit(req: Request) -> Response:
    """docker commit: the container's changes as a new image (engine/files.py's commit)."""
    from rongqi.engine import files
    ref = req.arg("container") or ""
    if not ref:
        raise HTTPError(400, "No container specified")
    repo, tag = req.arg("repo") or "", req.arg("tag") or ""
    if tag and not repo:
        raise HTTPError(400, "tag cannot be set without a repository")
    conf = req.json() or {}
    if not isinstance(conf, dict):
        raise HTTPError(400, "invalid JSON in the request body: expected an object")
    changes = [line for ch in req.query.get("changes", []) for line in ch.splitlines()
               if line.strip()]
    with _docker_words(ref):
        c = req.engine.get(ref)
        image_id = files.commit(req.engine, c.id, f"{repo}:{tag}" if tag else repo,
                                changes=_config_changes(conf) + changes,
                                message=req.arg("comment") or "",
                                author=req.arg("author") or "", pause=req.flag("pause", True))
    return json_response({"Id": f"sha256:{image_id}"}, 201)
