"""Docker's exec instances: create (a record), start (a hijacked stream, or detached), inspect,
resize; the process is started by a parent process of its own (engine/exec.py parent_main).

An exec's record lives with its container's run: RUN/CID/execs/EXECID.json (Docker's inspect
keys, plus the OCI process under "rongqi"), gone with the run dir when the container's run is
cleaned up, as the daemon forgets a container's execs when it stops. The service never forks
and never calls the runtime for an exec: the runtime swaps fds 0-2 and the exec's parent must
outlive a detached client, so a fresh interpreter (`python -I -S`) is that parent.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import select
import subprocess
import sys
import threading
import time
from typing import Any

from rongqi.engine.exec import EXECS
from rongqi.errors import RongqiError
from rongqi.serve.app import HTTPError, Request, Response, json_response, route
from rongqi.serve.streams import STDERR, STDOUT, Peer, frame, hijack

STARTED = ".started"
DRAIN = 2.0  # seconds to collect the last output once the process has ended
_ID = re.compile(r"[0-9a-f]{64}")
_BOOT = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
         "from rongqi.engine.exec import parent_main; "
         "parent_main(int(sys.argv[2]), int(sys.argv[3]))")


class Session:
    """What this process knows of an exec it started (the pty master for resizes)."""

    def __init__(self) -> None:
        self.master = -1
        self.ready = threading.Event()  # set once started (or failed to)
        self.pending_size: tuple[int, int] | None = None
        self.lock = threading.Lock()

    def resize(self, h: int, w: int) -> None:
        with self.lock:
            if self.master < 0:
                self.pending_size = (h, w)
                return
            _set_winsize(self.master, h, w)


_sessions: dict[str, Session] = {}
_sessions_lock = threading.Lock()


def _set_winsize(fd: int, h: int, w: int) -> None:
    import fcntl
    import struct
    import termios

    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))


# -- records -----------------------------------------------------------------------------------
def find(engine: Any, exec_id: str) -> tuple[str, dict[str, Any]]:
    """(path, record) of an exec by its full id; Docker's 404 otherwise, and once its
    container's run has ended: dockerd forgets a container's execs when it stops (its
    Cleanup), whether it was stopped or ended by itself."""
    if _ID.fullmatch(exec_id):
        for path in glob.glob(os.path.join(glob.escape(engine.runroot), "*", EXECS,
                                           exec_id + ".json")):
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            if _run_alive(engine, os.path.basename(os.path.dirname(os.path.dirname(path)))):
                return path, doc
    raise HTTPError(404, f"No such exec instance: {exec_id}")


def _run_alive(engine: Any, cid: str) -> bool:
    """Whether the container whose run dir holds an exec record still runs (or is paused)."""
    from rongqi.engine import lifecycle
    from rongqi.engine import status as st
    from rongqi.errors import NoSuchContainer
    try:
        c = lifecycle.synced(engine, engine.get(cid))
    except NoSuchContainer:
        return False
    return c.status in st.ALIVE


def exec_ids(container: Any) -> list[str] | None:
    """The container's exec ids, for its inspect's ExecIDs (None when it has none, as dockerd)."""
    from rongqi.engine import status as st
    from rongqi.engine.exec import exec_ids as ids

    if container.status not in st.ALIVE:
        return None     # dockerd's Cleanup at the end of a run forgets them
    return ids(container) or None


def _write(path: str, doc: dict[str, Any]) -> None:
    tmp = f"{path}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, path)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """Docker's ExecInspect from a record."""
    return {k: v for k, v in doc.items() if k != "rongqi"}


class _Fields(dict[str, Any]):
    """A JSON object read as Go's decoder reads it into a struct: keys match whatever their
    case (docker-py sends "detachKeys" for DetachKeys)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def _fields(body: Any, what: str) -> _Fields:
    if body is None:
        return _Fields()
    if not isinstance(body, dict):
        raise HTTPError(400, f"json: cannot unmarshal {type(body).__name__} into Go value of "
                             f"type {what}")
    return _Fields({str(k).lower(): v for k, v in body.items()})


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise HTTPError(400, f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                         f"ExecConfig.{what} of type []string")


def _running(engine: Any, ref: str) -> Any:
    from rongqi.engine import lifecycle

    c = engine.get(ref)
    lifecycle.synced(engine, c)
    if c.status == "paused":
        raise HTTPError(409, f"Container {c.id} is paused, unpause the container before exec")
    if c.status not in ("running", "stopping"):
        raise HTTPError(409, f"Container {c.id} is not running")
    return c


@route("POST", "/containers/{id}/exec")
def create(req: Request) -> Response:
    from rongqi.engine import exec as execmod
    from rongqi.engine.attach import parse_detach_keys

    body = _fields(req.json(), "types.ExecConfig")
    cmd = _strings(body.get("Cmd"), "Cmd")
    if not cmd:
        raise HTTPError(400, "No exec command specified")
    keys = body.get("DetachKeys") or ""
    try:
        parse_detach_keys(keys or None)
    except ValueError:
        raise HTTPError(400, f"Invalid escape keys ({keys}) provided") from None
    env: dict[str, str] = {}
    for e in _strings(body.get("Env"), "Env"):
        k, eq, v = e.partition("=")
        if k and eq:
            env[k] = v
    c = _running(req.engine, req.params["id"])
    tty = bool(body.get("Tty"))
    user = str(body.get("User") or "")
    request = execmod.ExecRequest(command=cmd, env=env, user=user,
                                  workdir=str(body.get("WorkingDir") or ""), tty=tty,
                                  privileged=bool(body.get("Privileged")))
    try:
        proc = execmod.build_process(c, request)
    except RongqiError as err:  # an unknown user, a bad workdir: the caller's mistake
        raise HTTPError(400, str(err)) from None
    size = body.get("ConsoleSize")  # API 1.42: [height, width]
    if tty and isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) for n in size):
        proc["consoleSize"] = {"height": size[0], "width": size[1]}
    exec_id = secrets.token_hex(32)
    doc = {
        "ID": exec_id, "Running": False, "ExitCode": None,
        "ProcessConfig": {"tty": tty, "entrypoint": cmd[0], "arguments": cmd[1:],
                          "privileged": bool(body.get("Privileged")), "user": user},
        "OpenStdin": bool(body.get("AttachStdin")),
        "OpenStderr": bool(body.get("AttachStderr")),
        "OpenStdout": bool(body.get("AttachStdout")),
        "CanRemove": False, "ContainerID": c.id, "DetachKeys": keys, "Pid": 0,
        "rongqi": {"process": proc},
    }
    d = os.path.join(c.run_dir, EXECS)
    try:
        os.makedirs(d, 0o700, exist_ok=True)
        _write(os.path.join(d, exec_id + ".json"), doc)
    except FileNotFoundError:  # the run dir went: the container stopped just now
        raise HTTPError(409, f"Container {c.id} is not running") from None
    return json_response({"Id": exec_id}, status=201)


@route("GET", "/exec/{id}/json")
def inspect(req: Request) -> Response:
    return json_response(public(find(req.engine, req.params["id"])[1]))


@route("POST", "/exec/{id}/resize")
def resize(req: Request) -> Response:
    from rongqi.serve.streams import _size

    h, w = _size(req)
    _, doc = find(req.engine, req.params["id"])
    if not doc["ProcessConfig"].get("tty"):
        return Response(200)
    with _sessions_lock:
        session = _sessions.get(doc["ID"])
    if session is None:
        if doc.get("ExitCode") is not None:
            raise HTTPError(409, f"Exec {doc['ID']} is not running")
        raise HTTPError(409, f"Exec {doc['ID']} was not started by this service")
    # The docker CLI resizes right after its start request: wait for the terminal, as dockerd.
    if not session.ready.wait(10):
        raise HTTPError(500, "timeout waiting for exec session ready")
    session.resize(h, w)
    return Response(200)


# -- start -------------------------------------------------------------------------------------
def _claim(path: str, doc: dict[str, Any]) -> None:
    """Only one start per exec (an O_EXCL marker beside the record)."""
    try:
        os.close(os.open(path[:-5] + STARTED, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o600))
    except FileExistsError:
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            doc = json.load(f)
        if doc.get("ExitCode") is not None:
            raise HTTPError(409, f"Error: Exec command {doc['ID']} has already run") from None
        raise HTTPError(409, f"Error: Exec command {doc['ID']} is already running") from None
    except FileNotFoundError:
        raise HTTPError(409, f"Container {doc['ContainerID']} is not running") from None


class Parent:
    """The exec's parent process (engine/exec.py parent_main) and its report pipe."""

    def __init__(self, engine: Any, c: Any, doc: dict[str, Any], path: str, *,
                 stdio: tuple[int, int, int], console_socket: str = ""):
        req_r, req_w = os.pipe2(os.O_CLOEXEC)
        rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
        try:
            # subprocess forks and execs in C: no Python runs in the child of this threaded
            # process before the exec.
            p = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, json.dumps(sys.path), str(req_r),
                 str(rep_w)],
                stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], pass_fds=(req_r, rep_w),
                start_new_session=True, close_fds=True)
        except BaseException:
            for fd in (req_r, req_w, rep_r, rep_w):
                os.close(fd)
            raise
        os.close(req_r)
        os.close(rep_w)
        self.report = os.fdopen(rep_r, "rb", buffering=0)  # unbuffered: select sees every line
        try:
            request = {"root": engine.root, "runroot": engine.runroot,
                       "runtime_root": getattr(engine, "_runtime_root", None), "id": c.id,
                       "process": doc["rongqi"]["process"],
                       "tty": bool(doc["ProcessConfig"].get("tty")),
                       "console_socket": console_socket, "record": path}
            with os.fdopen(req_w, "wb") as f:
                f.write(json.dumps(request).encode())
        finally:
            p.wait()  # it forked at once: the parent proper is the grandchild

    def line(self) -> tuple[str, str]:
        text = self.report.readline().decode(errors="replace").strip()
        word, _, rest = text.partition(" ")
        return word, rest

    def close(self) -> None:
        self.report.close()


@route("POST", "/exec/{id}/start")
def start(req: Request) -> Response:
    body = _fields(req.json(), "types.ExecStartCheck")
    path, doc = find(req.engine, req.params["id"])
    c = _running(req.engine, doc["ContainerID"])
    _claim(path, doc)
    tty = bool(doc["ProcessConfig"].get("tty"))
    if body.get("Detach"):
        return _start_detached(req.engine, c, doc, path)
    framed = not bool(body.get("Tty", tty))
    session = Session()
    with _sessions_lock:
        _sessions[doc["ID"]] = session
    try:
        if tty:
            _start_tty(req, c, doc, path, session, framed)
        else:
            _start_pipes(req, c, doc, path, session, framed)
    finally:
        session.ready.set()
        with _sessions_lock:
            _sessions.pop(doc["ID"], None)
    return Response.hijacked()


def _start_detached(engine: Any, c: Any, doc: dict[str, Any], path: str) -> Response:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        parent = Parent(engine, c, doc, path, stdio=(null, null, null))
    finally:
        os.close(null)
    try:
        word, rest = parent.line()
    finally:
        parent.close()  # it records the exit itself
    if word != "pid":
        _failed(path, started=False)
        _raise_start_error(rest)
    return Response(200)


def _raise_start_error(rest: str) -> None:
    code, _, msg = rest.partition(" ")
    # dockerd: a command that cannot run is the caller's (invalid parameter), else a system error
    raise HTTPError(400 if code in ("126", "127") else 500,
                    msg or "exec: the process could not be started")


class _StartFailed(Exception):
    """The parent reported an error (the record has the exit code); the stream says why."""


class _Fds:
    """The fds this request owns: each closed exactly once (fd numbers are reused at once
    by other threads, so a second close would hit someone else's)."""

    def __init__(self) -> None:
        self.fds: set[int] = set()

    def add(self, *fds: int) -> None:
        self.fds.update(fds)

    def close(self, fd: int) -> None:
        if fd in self.fds:
            self.fds.discard(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self.fds):
            self.close(fd)


def _started(parent: Parent) -> None:
    word, rest = parent.line()
    if word != "pid":
        raise _StartFailed(rest.partition(" ")[2] or "exec: the process could not be started")


def _start_pipes(req: Request, c: Any, doc: dict[str, Any], path: str, session: Session,
                 framed: bool) -> None:
    mine, theirs = _Fds(), _Fds()
    peer = hijack(req)  # as dockerd: the stream first, then the start (its error in band)
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        theirs.add(null)
        stdio = [null, null, null]
        in_fd = -1
        if doc["OpenStdin"]:
            stdio[0], in_fd = os.pipe2(os.O_CLOEXEC)
            theirs.add(stdio[0])
            mine.add(in_fd)
        outs: dict[int, int] = {}
        for i, (want, stream) in enumerate(((doc["OpenStdout"], STDOUT),
                                            (doc["OpenStderr"], STDERR)), 1):
            if want:
                r, stdio[i] = os.pipe2(os.O_CLOEXEC)
                mine.add(r)
                theirs.add(stdio[i])
                outs[r] = stream
        parent = Parent(req.engine, c, doc, path, stdio=(stdio[0], stdio[1], stdio[2]))
        theirs.close_all()
        try:
            _started(parent)
            session.ready.set()
            _pump(peer, parent, outs, in_fd, mine, framed=framed, keys=b"", stop=req.stopping)
        finally:
            parent.close()
    except (_StartFailed, RongqiError, OSError) as err:  # after the hijack: said in band
        _failed(path, started=not isinstance(err, _StartFailed))
        peer.send(_in_band(str(err), framed))
    finally:
        theirs.close_all()
        mine.close_all()
        peer.close()


def _failed(path: str, started: bool = True) -> None:
    """A start that failed: the record gets dockerd's 126 (its code for every exec that could
    not start, where the engine's parent records podman's 127 for a command not found);
    after a start, only when the parent could not record the exit itself."""
    from rongqi.engine.exec import update_record

    with contextlib.suppress(OSError, ValueError), open(path) as f:
        if not started or json.load(f).get("ExitCode") is None:
            update_record(path, Running=False, ExitCode=126)


def _in_band(msg: str, framed: bool) -> bytes:
    data = (msg + "\r\n").encode()
    return frame(STDOUT, data) if framed else data


def _start_tty(req: Request, c: Any, doc: dict[str, Any], path: str, session: Session,
               framed: bool) -> None:
    from rongqi.engine.attach import parse_detach_keys
    from rongqi.oci.console_proxy import ConsoleSocket

    mine = _Fds()
    peer = hijack(req)
    parent: Parent | None = None
    handed_off = False
    try:
        console = ConsoleSocket()
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                parent = Parent(req.engine, c, doc, path, stdio=(null, null, null),
                                console_socket=console.path)
            finally:
                os.close(null)
            _started(parent)
            master = console.receive_master()
            mine.add(master)
        finally:
            console.close()
        with session.lock:
            session.master = master
            if session.pending_size:
                _set_winsize(master, *session.pending_size)
        session.ready.set()
        stdin = bool(doc["OpenStdin"])
        keys = parse_detach_keys(doc.get("DetachKeys") or None) if stdin else b""
        outcome = _pump(peer, parent, {master: STDOUT}, master if stdin else -1, mine,
                        framed=framed, keys=keys, stop=req.stopping)
        if outcome == "detached":
            # The process runs on: its terminal must stay open (the last close of a pty
            # master hangs up its session) and be read, or it blocks once the buffer fills.
            mine.fds.discard(master)
            threading.Thread(target=_drain_detached, args=(master, parent, session),
                             daemon=True, name=f"exec-{doc['ID'][:12]}").start()
            handed_off = True
    except (_StartFailed, RongqiError, OSError) as err:  # after the hijack: said in band
        _failed(path, started=not isinstance(err, _StartFailed))
        peer.send(_in_band(str(err), framed))
    finally:
        if not handed_off:
            with session.lock:
                session.master = -1
            mine.close_all()
            if parent is not None:
                parent.close()
        peer.close()


def _drain_detached(master: int, parent: Parent, session: Session) -> None:
    try:
        while True:
            ready = select.select([master, parent.report], [], [])[0]
            if parent.report in ready:
                return
            try:
                if not os.read(master, 65536):
                    return
            except BlockingIOError:
                continue
            except OSError:
                return
    finally:
        with session.lock:
            session.master = -1
        os.close(master)
        parent.close()


def _pump(peer: Peer, parent: Parent, outs: dict[int, int], in_fd: int, fds: _Fds, *,
          framed: bool, keys: bytes, stop: threading.Event | None = None) -> str:
    """Relay until the process has ended and its output is drained ("exit"), the client
    detached ("detached") or went away ("client"). The client's EOF closes the process's
    stdin (docker's exec: CloseStdin); with a tty the pty's input stays open. `stop` set
    (the service shuts down) ends it ("stopping"); the process's parent carries on."""
    from rongqi.engine.attach import DetachMatcher

    matcher = DetachMatcher(keys)
    pty = in_fd in outs
    for fd in outs:
        os.set_blocking(fd, False)
    pending = b""  # input the process has not read yet: no more is taken from the client
    reading = in_fd >= 0
    if in_fd >= 0:
        os.set_blocking(in_fd, False)
    report = parent.report
    ended_at = 0.0
    while True:
        if ended_at and (not outs or time.monotonic() > ended_at + DRAIN):
            return "exit"
        if stop is not None and stop.is_set():
            return "stopping"
        rl: list[Any] = list(outs)
        if not ended_at:
            rl.append(report)
        if reading and not pending:
            rl.append(peer)
        wl = [in_fd] if pending and in_fd >= 0 else []
        timeout = max(0.0, ended_at + DRAIN - time.monotonic()) if ended_at else 0.5
        ready_w: list[Any] = []
        if peer in rl and peer.pending():
            ready_r = [peer]  # what the client sent with its request, first
        else:
            try:
                ready_r, ready_w, _ = select.select(rl, wl, [], timeout)
            except InterruptedError:
                continue
        for fd in [f for f in ready_r if isinstance(f, int)]:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the pty's last slave closed
                data = b""
            if not data:
                del outs[fd]
                if pty:
                    outs.clear()
                continue
            if not peer.send(frame(outs[fd], data) if framed else data):
                return "client"
        if report in ready_r:
            word, _ = parent.line()
            if word != "pid":  # "exit N" (recorded already), or the parent died
                ended_at = time.monotonic()
                if pty:
                    pending, reading = b"", False
        if ready_w and pending:
            try:
                n = os.write(in_fd, pending)
                pending = pending[n:]
            except BlockingIOError:
                pass
            except OSError:  # the process closed its stdin
                pending, reading = b"", False
        if peer in ready_r:
            got = peer.recv()
            if got is None:
                continue
            if not got:
                reading = False
                if stop is not None and stop.is_set():
                    return "stopping"
                if not pty and in_fd >= 0:
                    fds.close(in_fd)  # the process's stdin sees its EOF
                    in_fd = -1
                continue
            out, detached = matcher.feed(got)
            pending += out
            if detached:
                return "detached"
