"""Docker's container streams over HTTP: logs (multiplexed frames, or raw with a tty), attach
(a hijacked connection, or a websocket), resize; the relay between a client and the monitor.

Docker's multiplexed stream is the engine's attach protocol (engine/attach.py): frames of
`[stream, 0, 0, 0, size (big endian)]` then size bytes, stream 1 stdout and 2 stderr; with a
tty there is no framing at all. The monitor's own streams 3 (exit) and 4 (resize) never reach a
client. A `run` attaches before it starts the container: such an attach waits here as a
PendingAttach whose socketpair end the start route hands to the monitor (`start_attach`).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from rongqi.engine import attach as proto
from rongqi.serve.app import HTTPError, Request, Response, route

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"  # API 1.42+, without a tty
STDOUT, STDERR = proto.STDOUT, proto.STDERR
frame = proto.frame
IDLE_CHECK = 0.5  # seconds between looks at a pending attach's container


def docker_time(ns: int) -> str:
    """Go's RFC3339NanoFixed in UTC, as the daemon prefixes `logs -t` lines."""
    sec, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(sec)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour,
                                                   t.tm_min, t.tm_sec, frac)


def parse_docker_time(text: str | None) -> int:
    """since/until as the docker CLI sends them: Unix seconds with an optional fraction
    ("1714557600.123456789"); RFC 3339 and durations too (other clients); 0 when absent."""
    if not text or text == "0":
        return 0
    sec, dot, frac = text.partition(".")
    if sec.lstrip("-").isdigit() and (not dot or frac.isdigit()):
        return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9] if dot else 0)
    from rongqi.engine import logs as logmod

    try:
        return logmod.parse_since(text)
    except ValueError as err:
        raise HTTPError(400, str(err)) from None


def is_tty(container: Any) -> bool:
    return bool((container.config.get("options") or {}).get("tty"))


def is_interactive(container: Any) -> bool:
    return bool((container.config.get("options") or {}).get("interactive"))


# -- the client's end of a hijacked connection ---------------------------------------------------
class Peer:
    """A client connection after the hijack: raw bytes, or websocket messages (ws=True)."""

    def __init__(self, sock: socket.socket, *, ws: Any = None, buffered: bytes = b""):
        self.sock = sock
        self.ws = ws
        self.buffered = buffered  # what the client sent before it saw our answer
        self.lock = threading.Lock()  # a resize thread and the relay may both write
        sock.setblocking(True)

    def pending(self) -> bool:
        """Input is waiting here already (select would not see it)."""
        return bool(self.buffered)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> bool:
        """False once the client has gone."""
        if not data:
            return True
        if self.ws is not None:
            data = self.ws.message(data)
        try:
            with self.lock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False

    def recv(self) -> bytes | None:
        """Bytes the client typed; b"" at its EOF (half-close or gone); None: nothing yet
        (a websocket control frame)."""
        if self.buffered:
            data, self.buffered = self.buffered, b""
        else:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
        if self.ws is None:
            return data
        got = self.ws.feed(data)
        for reply in self.ws.replies():  # pongs, and the answer to a close
            self.send_raw(reply)
        if got is None:  # a close frame, or EOF
            return b""
        return got or None

    def send_raw(self, data: bytes) -> None:
        try:
            with self.lock:
                self.sock.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        if self.ws is not None:
            self.send_raw(self.ws.close_frame())
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# -- relaying a container's attach stream ------------------------------------------------------
class AttachOptions:
    """What a client asked for: which streams, detach keys, and how a tty frames output."""

    def __init__(self, *, stdin: bool, stdout: bool, stderr: bool, tty: bool,
                 keys: bytes = b"", close_stdin: bool = True, framed: bool = True):
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
        self.keys = keys
        self.close_stdin = close_stdin  # StdinOnce: the client's EOF closes the container's stdin
        self.framed = framed and not tty


def relay(peer: Peer, monitor: socket.socket, opts: AttachOptions,
          tick: Callable[[], socket.socket | None] | None = None,
          stop: threading.Event | None = None) -> str:
    """Copy the monitor's frames to the client and the client's input to the monitor until
    the container exits ("exit"), the monitor goes ("gone"), the client types the detach
    keys ("detached") or goes away ("client"). `tick`, called when nothing happened for a
    while, may hand over another monitor socket (a pending attach whose container was
    started elsewhere; closed here, the first one stays the caller's). `stop` set (the
    service shuts down) ends it as "stopping", the container's stdin left open."""
    taken: socket.socket | None = None
    try:
        reader = proto.FrameReader()
        matcher = proto.DetachMatcher(opts.keys)
        reading = True  # the client may still send (stdin data, or its EOF)
        while True:
            if stop is not None and stop.is_set():
                return "stopping"
            rl: list[Any] = [monitor] + ([peer] if reading else [])
            if reading and peer.pending():
                ready = [peer]
            else:
                try:
                    ready = select.select(rl, [], [], IDLE_CHECK if tick or stop else None)[0]
                except InterruptedError:
                    continue
            if not ready and tick is not None:
                taken = tick()
                if taken is not None:
                    monitor, tick = taken, None
                continue
            if peer in ready:
                data = peer.recv()
                if data is None:
                    pass
                elif not data:
                    reading = False
                    if stop is not None and stop.is_set():
                        return "stopping"  # the service shut the connection, not the client
                    if opts.stdin:
                        if not opts.close_stdin:
                            return "client"  # docker: without StdinOnce the attach ends here
                        _send_monitor(monitor, proto.frame(proto.STDIN, b""))
                elif opts.stdin:
                    out, detached = matcher.feed(data)
                    if out:
                        _send_monitor(monitor, proto.frame(proto.STDIN, out))
                    if detached:
                        return "detached"
            if monitor in ready:
                try:
                    data = monitor.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return "gone"
                try:
                    frames = reader.feed(data)
                except ValueError:
                    return "gone"
                for stream, payload in frames:
                    if stream == proto.EXIT:
                        return "exit"
                    if stream == STDOUT and opts.stdout or stream == STDERR and opts.stderr:
                        if not peer.send(frame(stream, payload) if opts.framed else payload):
                            return "client"
    finally:
        if taken is not None:
            taken.close()


def _send_monitor(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def hijack(req: Request) -> Peer:
    """The client's connection after Docker's raw-stream answer (101 UPGRADED when it asked
    for an upgrade, else 200 OK)."""
    sock = req.hijack(None, {"Content-Type": RAW_STREAM})
    return Peer(sock, buffered=req.hijack_buffer)


def connect_monitor(container: Any) -> socket.socket | None:
    """A client connection to the container's monitor (RUN/ID/attach), None if none listens."""
    try:
        return proto.connect(container.run_dir)
    except OSError:
        return None


# -- attaches that wait for their container's start --------------------------------------------
class PendingAttach:
    """An attach made before its container started (docker's `run` and `start -a`): the
    monitor gets `theirs` at start, so it speaks to us from before the process exists."""

    def __init__(self, cid: str):
        self.cid = cid
        self.mine, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.claimed = False


_pending: dict[str, PendingAttach] = {}
_pending_lock = threading.Lock()


def _register(cid: str) -> PendingAttach | None:
    with _pending_lock:
        if cid in _pending:
            return None  # one waits already: a second one joins once the container runs
        p = _pending[cid] = PendingAttach(cid)
        return p


def _unregister(p: PendingAttach) -> None:
    with _pending_lock:
        if _pending.get(p.cid) is p:
            del _pending[p.cid]
    p.theirs.close()


@contextlib.contextmanager
def start_attach(cid: str) -> Iterator[socket.socket | None]:
    """For the start route: the socket to give `Engine.start(cid, attach=...)` when a client
    waits for this container's output (None otherwise). Closed on the way out, whether the
    start used it or failed before it (the waiting client then sees the end)."""
    with _pending_lock:
        p = _pending.pop(cid, None)
        if p is not None:
            p.claimed = True
    if p is None:
        yield None
        return
    try:
        yield p.theirs
    finally:
        p.theirs.close()


# -- attach ------------------------------------------------------------------------------------
def attach_options(req: Request, c: Any, *, ws: bool = False) -> AttachOptions:
    from rongqi.engine.attach import parse_detach_keys

    tty = is_tty(c)
    keys_arg = req.arg("detachKeys")
    try:
        keys = parse_detach_keys(keys_arg or None)
    except ValueError:
        raise HTTPError(400, f"Invalid detach keys ({keys_arg}) provided") from None
    if ws and req.version < (1, 42):
        stdin = stdout = stderr = True  # before 1.42 the websocket attach took them all
    else:
        stdin, stdout, stderr = req.flag("stdin"), req.flag("stdout"), req.flag("stderr")
    # dockerd closes the container's stdin at the client's EOF only with StdinOnce and no
    # tty; otherwise the EOF ends just this attach (a tty's input is never closed: the docker
    # CLI's detach after `run -it` closes its connection, and the shell must live on).
    return AttachOptions(stdin=stdin and is_interactive(c), stdout=stdout, stderr=stderr,
                         tty=tty, keys=keys if tty else b"",
                         close_stdin=_stdin_once(c) and not tty, framed=not ws)


def _stdin_once(c: Any) -> bool:
    """Docker's StdinOnce (docker run -i sets it): the first attach's EOF closes the
    container's stdin. Without it (run -di, then attach) the EOF ends only that attach.
    A container whose options do not say (made by the rongqi CLI) closes, as `run -i` does."""
    value = (c.config.get("options") or {}).get("stdin_once")
    return True if value is None else bool(value)


def _checked_container(req: Request) -> Any:
    from rongqi.engine import lifecycle

    c = req.engine.get(req.params["id"])
    lifecycle.synced(req.engine, c)
    if c.status == "paused":
        raise HTTPError(409, f"container {req.params['id']} is paused, unpause the container "
                             "before attach")
    return c


def _replay_logs(peer: Peer, c: Any, opts: AttachOptions) -> bool:
    """attach's logs=1: what the container wrote so far, framed as the live stream."""
    for stream, data in log_chunks(c, stdout=opts.stdout, stderr=opts.stderr):
        if not peer.send(frame(stream, data) if opts.framed else data):
            return False
    return True


def serve_attach(req: Request, peer_factory: Callable[[], Peer], *, ws: bool = False) -> None:
    """The shared body of the two attach endpoints, once the connection is the client's."""
    c = _checked_container(req)
    opts = attach_options(req, c, ws=ws)
    stream, logs = req.flag("stream"), req.flag("logs")
    pending = None
    monitor = None
    if stream:
        if c.status in ("running", "stopping"):
            monitor = connect_monitor(c)
        if monitor is None:
            # Not running (yet): wait for the start, which hands the monitor our socketpair.
            pending = _register(c.id)
            monitor = pending.mine if pending is not None else None
    peer = peer_factory()
    try:
        if logs and not _replay_logs(peer, c, opts):
            return
        if not stream:
            return
        tick = _pending_tick(req.engine, c.id, pending)
        if monitor is None:
            # Another attach waits for this container's start: join it once it runs.
            monitor = _wait_running(req.engine, c.id, peer, req.stopping)
            if monitor is None:
                return
        outcome = relay(peer, monitor, opts, tick=tick, stop=req.stopping)
        if outcome == "detached":
            _emit(req.engine, c, "detach")
    finally:
        if pending is not None:
            _unregister(pending)
            pending.mine.close()
        elif monitor is not None:
            monitor.close()
        peer.close()


def _pending_tick(engine: Any, cid: str,
                  pending: PendingAttach | None) -> Callable[[], socket.socket | None] | None:
    """While a pending attach waits: if its container was started by someone who did not
    hand over our socket (the rongqi CLI), attach to the running monitor instead."""
    if pending is None:
        return None

    def tick() -> socket.socket | None:
        if pending.claimed:
            return None
        try:
            c = engine.get(cid)
        except Exception:  # noqa: BLE001 - removed: nothing will ever come
            return _closed_socket()
        if c.status in ("running", "stopping"):
            with _pending_lock:
                if pending.claimed:
                    return None
                if _pending.get(cid) is pending:
                    del _pending[cid]
            return connect_monitor(c)
        return None

    return tick


def _closed_socket() -> socket.socket:
    a, b = socket.socketpair()
    b.close()
    return a


def _wait_running(engine: Any, cid: str, peer: Peer,
                  stop: threading.Event) -> socket.socket | None:
    reading = True
    while not stop.is_set():
        try:
            c = engine.get(cid)
        except Exception:  # noqa: BLE001 - removed meanwhile
            return None
        if c.status in ("running", "stopping"):
            sock = connect_monitor(c)
            if sock is not None:
                return sock
        if reading and select.select([peer], [], [], IDLE_CHECK)[0]:
            # Input before there is anyone to take it is dropped; an EOF (the docker CLI
            # half-closes at once when it sends no stdin) only stops the reading.
            if peer.recv() == b"":
                reading = False
        elif not reading:
            time.sleep(IDLE_CHECK)
    return None


def _emit(engine: Any, c: Any, action: str) -> None:
    from rongqi.engine.lifecycle import _emit as emit

    with contextlib.suppress(Exception):  # an event lost is no reason to fail the request
        emit(engine, action, c)


@route("POST", "/containers/{id}/attach")
def attach(req: Request) -> Response:
    # serve_attach checks everything before it hijacks: a missing or paused container, bad
    # detach keys are Docker's JSON errors; after the hijack only the stream speaks.
    serve_attach(req, lambda: hijack(req))
    return Response.hijacked()


class WebSocket:
    """The server's side of a websocket after its handshake (wsproto's sans-IO connection):
    what the relay sends becomes one message each, what the client sends comes back as bytes."""

    def __init__(self, *, binary: bool):
        from wsproto.connection import Connection, ConnectionType

        self.conn = Connection(ConnectionType.SERVER)
        self.binary = binary  # API 1.28+: binary frames (text before, as dockerd)
        self.out: list[bytes] = []

    def message(self, data: bytes) -> bytes:
        from wsproto.events import BytesMessage, TextMessage

        if self.binary:
            return self.conn.send(BytesMessage(data=data))
        return self.conn.send(TextMessage(data=data.decode("utf-8", "replace")))

    def feed(self, data: bytes) -> bytes | None:
        """The payload of the client's messages in data; None once it closed (or went)."""
        from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
        from wsproto.utilities import RemoteProtocolError

        try:
            self.conn.receive_data(data or None)
            got = bytearray()
            for ev in self.conn.events():
                if isinstance(ev, BytesMessage):
                    got += ev.data
                elif isinstance(ev, TextMessage):
                    got += ev.data.encode()
                elif isinstance(ev, Ping):
                    self.out.append(self.conn.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    if self._open():
                        self.out.append(self.conn.send(ev.response()))
                    return None
        except RemoteProtocolError:
            return None
        return None if not data else bytes(got)

    def replies(self) -> list[bytes]:
        out, self.out = self.out, []
        return out

    def _open(self) -> bool:
        from wsproto.connection import ConnectionState

        return self.conn.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)

    def close_frame(self) -> bytes:
        from wsproto.events import CloseConnection

        if self.conn.state.name != "OPEN":
            return b""
        return self.conn.send(CloseConnection(code=1000))


def _ws_accept(req: Request) -> str:
    """Sec-WebSocket-Accept for the client's key; 400 for a request that is no handshake."""
    from wsproto.utilities import generate_accept_token

    key = req.headers.get("sec-websocket-key", "")
    if "websocket" not in req.headers.get("upgrade", "").lower() or not key:
        raise HTTPError(400, "websocket: the client is not using the websocket protocol: "
                             "'upgrade' token not found in 'Upgrade' header")
    if req.headers.get("sec-websocket-version", "13").strip() != "13":
        raise HTTPError(400, "websocket: unsupported version: 13 is the only one")
    return generate_accept_token(key.encode()).decode()


@route("GET", "/containers/{id}/attach/ws")
def attach_ws(req: Request) -> Response:
    accept = _ws_accept(req)

    def peer() -> Peer:
        sock = req.hijack(101, {"Upgrade": "websocket", "Connection": "Upgrade",
                                "Sec-WebSocket-Accept": accept})
        ws = WebSocket(binary=req.version >= (1, 28))
        p = Peer(sock, ws=ws)
        p.buffered = req.hijack_buffer  # early frames go through the websocket decoder
        return p

    serve_attach(req, peer, ws=True)
    return Response.hijacked()


@route("POST", "/containers/{id}/resize")
def resize(req: Request) -> Response:
    h, w = _size(req)
    c = req.engine.get(req.params["id"])
    from rongqi.engine import lifecycle

    lifecycle.synced(req.engine, c)
    if c.status not in ("running", "paused", "stopping"):
        raise HTTPError(409, f"Container {c.id} is not running")
    if is_tty(c):
        sock = connect_monitor(c)
        if sock is None:
            raise HTTPError(409, f"Container {c.id} is not running")
        try:
            _resize_and_wait(sock, h, w)
        finally:
            sock.close()
    return Response(200)


def _resize_and_wait(sock: socket.socket, h: int, w: int, timeout: float = 5.0) -> None:
    """Send the resize, then our EOF, and wait for the monitor to drop us: it reads a
    client's frames in order, so once it has closed, the pty has its new size (the docker CLI
    resizes and types at once; dockerd answers after the ioctl)."""
    try:
        sock.sendall(proto.frame(proto.RESIZE, b"%d %d" % (h, w)))
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                if not sock.recv(65536):  # output broadcast to us meanwhile is dropped
                    return
    except OSError:
        pass


def _size(req: Request) -> tuple[int, int]:
    try:
        h, w = int(req.arg("h") or ""), int(req.arg("w") or "")
    except ValueError:
        raise HTTPError(400, f'strconv.Atoi: parsing "{req.arg("h") or req.arg("w") or ""}": '
                             "invalid syntax") from None
    if not (0 <= h < 65536 and 0 <= w < 65536):
        raise HTTPError(400, f"invalid terminal size {h}x{w}")
    return h, w


# -- logs --------------------------------------------------------------------------------------
def log_chunks(c: Any, *, stdout: bool = True, stderr: bool = True, timestamps: bool = False,
               tail: int = -1, since: int = 0, until: int = 0, follow: bool = False,
               gone: Callable[[], bool] | None = None) -> Iterator[tuple[int, bytes]]:
    """(stream, bytes) of a container's log, oldest first, as the daemon sends them: a line
    per chunk, `-t` prefixing docker's UTC time at each line's start."""
    from rongqi.engine import logs as logmod

    for stream, ts, data in logmod.read_container(c, tail=tail, since=since, until=until,
                                                  follow=follow, stdout=stdout, stderr=stderr,
                                                  gone=gone):
        if timestamps and ts:
            data = docker_time(logmod.parse_time_ns(ts)).encode() + b" " + data
        yield (STDERR if stream == "stderr" else STDOUT), data


@route("GET", "/containers/{id}/logs")
def logs(req: Request) -> Response:
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not (stdout or stderr):
        raise HTTPError(400, "Bad parameters: you must choose at least one stream")
    c = req.engine.get(req.params["id"])
    driver = c.config.get("log_driver") or "k8s-file"
    if driver not in ("k8s-file", "json-file"):
        raise HTTPError(501, f'configured logging driver does not support reading: {driver}')
    tail_arg = (req.arg("tail") or "all").strip()
    try:
        tail = -1 if tail_arg in ("all", "") else int(tail_arg)
    except ValueError:
        tail = -1  # docker reads a bad tail as all
    since = parse_docker_time(req.arg("since"))
    until = parse_docker_time(req.arg("until"))
    tty = is_tty(c)
    framed = not tty
    chunks = log_chunks(c, stdout=stdout, stderr=stderr, timestamps=req.flag("timestamps"),
                        tail=tail, since=since, until=until, follow=req.flag("follow"),
                        gone=lambda: req.stopping.is_set() or req.disconnected())

    def body() -> Iterator[bytes]:
        for stream, data in chunks:
            yield frame(stream, data) if framed else data

    ctype = MULTIPLEXED_STREAM if framed and req.version >= (1, 42) else RAW_STREAM
    return Response(200, body(), content_type=ctype)
