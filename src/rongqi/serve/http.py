"""The HTTP/1.1 server under `rongqi serve`: listening sockets (unix, tcp), a thread per
connection, h11 for the protocol (keep-alive, chunked bodies, hijacked connections).

It knows nothing of Docker: it reads a request head, hands a `Exchange` to the application's
callable and writes what that returns. It also owns the idle timer (podman's `--time`: the
service exits after N seconds with no request in flight) and the clean shutdown.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import io
import ipaddress
import os
import select
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import h11

from rongqi.errors import EngineError

# A request head larger than this is refused by h11 (431); Docker's own limit is Go's 1 MiB.
MAX_HEAD = 1 << 20
RECV = 65536
# What is read and thrown away of a request body the handler did not read, to keep the
# connection; a larger rest closes it instead (a huge refused upload is not read to its end).
DRAIN_LIMIT = 1 << 20
# How long in-flight requests may take to finish after SIGTERM/SIGINT before their
# connections are shut down under them (streams such as /events end at once: `stopping`).
SHUTDOWN_GRACE = 5.0


class ServeError(EngineError):
    """The service cannot start: a bad --socket, a socket in use, a group that is unknown."""


class ClientGone(Exception):
    """The peer closed the connection (or it broke) while we read or wrote."""


# -- listening -----------------------------------------------------------------------------------
class Address:
    """A parsed --socket: unix://PATH or tcp://HOST:PORT."""

    def __init__(self, text: str):
        self.text = text
        scheme, sep, rest = text.partition("://")
        if not sep:
            raise ServeError(f"invalid socket address {text!r}: expected unix://PATH "
                             "or tcp://HOST:PORT")
        self.scheme = scheme
        self.path = ""
        self.host = ""
        self.port = 0
        if scheme == "unix":
            if not rest.startswith("/"):
                raise ServeError(f"invalid socket address {text!r}: the path must be absolute")
            self.path = rest
        elif scheme == "tcp":
            host, colon, port = rest.rpartition(":")
            if not colon or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ServeError(f"invalid socket address {text!r}: expected tcp://HOST:PORT")
            self.host = host.strip("[]") or "127.0.0.1"
            self.port = int(port)
        else:
            raise ServeError(f"invalid socket address {text!r}: only unix:// and tcp:// "
                             "are supported")

    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: whatever it resolves to is not known to be loopback

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def socket_group(name: str | None) -> int:
    """The gid the unix socket gets: the named group (an unknown one is the error); without a
    name the "docker" group if the host has one (dockerd's default), else our own gid."""
    if name:
        try:
            return grp.getgrnam(name).gr_gid if not name.isdigit() else int(name)
        except KeyError:
            raise ServeError(f"group {name!r} not found (--group)") from None
    try:
        return grp.getgrnam("docker").gr_gid
    except KeyError:
        return os.getegid()


SD_LISTEN_FDS_START = 3


def activated_listener() -> socket.socket | None:
    """The listening socket systemd's socket activation handed over (sd_listen_fds(3): fd 3,
    LISTEN_FDS=1, LISTEN_PID this process), or None when not activated. The variables are
    dropped so that nothing started from here believes it was activated too."""
    pid, fds = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    if not pid or not fds:
        return None
    if pid != str(os.getpid()):
        return None          # meant for another process (our parent, say)
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    if fds != "1":
        raise ServeError(f"socket activation passed {fds} sockets; rongqi serve takes one "
                         "(a .socket unit with one ListenStream=)")
    try:
        s = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as e:
        raise ServeError(f"socket activation: fd {SD_LISTEN_FDS_START} is not a socket: "
                         f"{e.strerror or e}") from None
    if s.type != socket.SOCK_STREAM or not s.getsockopt(socket.SOL_SOCKET,
                                                         socket.SO_ACCEPTCONN):
        s.detach()
        raise ServeError(f"socket activation: fd {SD_LISTEN_FDS_START} is not a listening "
                         "stream socket (ListenStream= in the .socket unit)")
    s.set_inheritable(False)
    return s


def listen(addr: Address, group: str | None = None) -> socket.socket:
    """The bound, listening socket. A unix socket is 0660 owner:group, made 0600 first so no
    one else can connect in between; a path a live server answers on is refused, a stale
    socket file (nobody listens) is replaced, anything that is not a socket is refused."""
    if addr.scheme == "tcp":
        family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr.host, addr.port))
            s.listen(128)
        except OSError as e:
            s.close()
            raise ServeError(f"cannot listen on {addr}: {e.strerror or e}") from None
        return s
    gid = socket_group(group)
    path = addr.path
    _clear_stale(path)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        s.bind(path)
    except OSError as e:
        s.close()
        raise ServeError(f"cannot listen on {addr}: {e.strerror or e}") from None
    finally:
        os.umask(old)
    try:
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
        s.listen(128)
    except OSError as e:
        s.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise ServeError(f"cannot listen on {addr}: {e.strerror or e}") from None
    return s


def _clear_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ServeError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # stale: its server died without removing it
        return
    except OSError:
        pass  # a timeout or EAGAIN: someone is there, but busy
    finally:
        probe.close()
    raise ServeError(f"{path} is in use by a running server")


# -- one request, as the application sees it -----------------------------------------------------
class Body(io.RawIOBase):
    """The request body as a file (for tar uploads); reads pull from the connection."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._buf = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf and not self._done:
            data = self._conn.next_body_data()
            if data is None:
                self._done = True
            else:
                self._buf = data
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def read_all(self, limit: int) -> bytes | None:
        """The whole body, or None when it is longer than limit (what was read is lost)."""
        parts = [self._buf]
        size = len(self._buf)
        self._buf = b""
        while not self._done:
            data = self._conn.next_body_data()
            if data is None:
                self._done = True
                break
            size += len(data)
            if size > limit:
                return None
            parts.append(data)
        return b"".join(parts)


class Exchange:
    """A request head and the means to answer it (what the server gives the application)."""

    def __init__(self, conn: Connection, req: h11.Request):
        self.conn = conn
        self.method = req.method.decode("ascii", "replace")
        self.target = req.target.decode("latin-1")
        self.headers: dict[str, str] = {}
        for k, v in req.headers:
            key = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value
        self.body = Body(conn)
        self.hijacked = False
        self.hijack_buffer = b""

    @property
    def stopping(self) -> threading.Event:
        """Set when the server shuts down: long streams end when they see it."""
        return self.conn.server.stopping

    def disconnected(self) -> bool:
        """Whether the client has closed its side (for streams that wait a long time between
        writes: /events, logs -f). Bytes it sent meanwhile are not lost (MSG_PEEK)."""
        sock = self.conn.sock
        try:
            r, _, _ = select.select([sock], [], [], 0)
            if not r:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def hijack(self, head: bytes) -> socket.socket:
        """Write a raw response head and hand the connection over; bytes the client sent
        after its request (before seeing our answer) are kept in hijack_buffer."""
        self.hijacked = True
        self.hijack_buffer = self.conn.h11.trailing_data[0]
        self.conn.sock.sendall(head)
        self.conn.server.mark_hijacked(self.conn)
        return self.conn.sock


Application = Callable[[Exchange], tuple[int, list[tuple[str, str]], "bytes | Iterable[bytes]"]]


# -- connections ---------------------------------------------------------------------------------
class Connection:
    """One client connection: requests read and answered in turn (keep-alive) in its thread."""

    def __init__(self, server: Server, sock: socket.socket):
        self.server = server
        self.sock = sock
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.hijacked = False

    # reading
    def _next_event(self) -> Any:
        while True:
            try:
                ev = self.h11.next_event()
            except h11.RemoteProtocolError:
                raise
            if ev is not h11.NEED_DATA:
                return ev
            try:
                data = self.sock.recv(RECV)
            except OSError as e:
                raise ClientGone() from e
            self.h11.receive_data(data)

    def next_body_data(self) -> bytes | None:
        """The next piece of the current request's body; None at its end."""
        if self.h11.they_are_waiting_for_100_continue:
            # `Expect: 100-continue` (curl's large uploads): the body comes once we ask
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            ev = self._next_event()
            if isinstance(ev, h11.Data):
                if ev.data:
                    return bytes(ev.data)
                continue
            if isinstance(ev, h11.EndOfMessage):
                return None
            if isinstance(ev, h11.ConnectionClosed):
                raise ClientGone()
            raise ClientGone()  # PAUSED or anything else mid-body: the peer broke the protocol

    # writing
    def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise ClientGone() from e

    def _respond(self, status: int, headers: list[tuple[str, str]],
                 body: bytes | Iterable[bytes], head_only: bool, close: bool) -> None:
        hdrs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if close:
            hdrs.append((b"Connection", b"close"))
        if isinstance(body, (bytes, bytearray)):
            if not any(k.lower() == b"content-length" for k, _ in hdrs):
                hdrs.append((b"Content-Length", str(len(body)).encode()))
            self._send(h11.Response(status_code=status, headers=hdrs, reason=_reason(status)))
            if body and not head_only:
                self._send(h11.Data(data=bytes(body)))
            self._send(h11.EndOfMessage())
            return
        hdrs.append((b"Transfer-Encoding", b"chunked"))
        self._send(h11.Response(status_code=status, headers=hdrs, reason=_reason(status)))
        it: Iterator[bytes] = iter(body)
        try:
            for chunk in () if head_only else it:
                if chunk:  # an empty chunk would end a chunked body
                    self._send(h11.Data(data=chunk))
        finally:
            close_it = getattr(it, "close", None)
            if close_it is not None:
                close_it()  # the generator's own cleanup (finally blocks) runs now
        self._send(h11.EndOfMessage())

    def serve(self) -> None:
        try:
            while not self.server.stopping.is_set():
                try:
                    ev = self._next_event()
                except h11.RemoteProtocolError as e:
                    self._protocol_error(e)
                    return
                if isinstance(ev, h11.ConnectionClosed) or ev is h11.PAUSED:
                    return
                if not isinstance(ev, h11.Request):
                    return
                if not self._one(ev):
                    return
        except ClientGone:
            return
        finally:
            self.server.forget(self)
            if not self.hijacked:  # a hijacked socket is its handler's to close
                with contextlib.suppress(OSError):
                    self.sock.close()

    def _one(self, req: h11.Request) -> bool:
        """Answer one request; whether the connection can carry another."""
        self.server.begin()
        try:
            ex = Exchange(self, req)
            status, headers, body = self.server.app(ex)
            if ex.hijacked:
                self.hijacked = True
                return False
            self._finish_reading_body(ex)
            close = self.h11.their_state is not h11.DONE or self.server.stopping.is_set()
            try:
                self._respond(status, headers, body, ex.method == "HEAD", close)
            except (ClientGone, h11.LocalProtocolError):
                raise
            except Exception:
                # A stream's iterator failed after the head went out: nothing can be said in
                # HTTP any more; the log gets the traceback, the client an unfinished body.
                import traceback
                self.server.log(f"rongqi serve: {ex.method} {ex.target}: stream failed:\n"
                                + traceback.format_exc())
                return False
            if self.h11.our_state is h11.MUST_CLOSE or close:
                return False
            if self.h11.their_state is h11.DONE and self.h11.our_state is h11.DONE:
                self.h11.start_next_cycle()
                return True
            return False
        except h11.LocalProtocolError:
            # an answer HTTP forbids (a body on a 204 or 304...): a bug of the handler's
            import traceback
            self.server.log(f"rongqi serve: {req.method.decode(errors='replace')} "
                            f"{req.target.decode(errors='replace')}: bad answer:\n"
                            + traceback.format_exc())
            return False
        finally:
            self.server.end()

    def _finish_reading_body(self, ex: Exchange) -> None:
        """Read what is left of a small body the handler ignored, so the connection stays
        usable. A larger one, a chunked one (no size to go by) and one the client holds back
        until it hears 100 Continue are left unread: the connection closes after the answer
        (reading first could wait for a client that waits for us)."""
        if self.h11.their_state is not h11.SEND_BODY or \
                self.h11.they_are_waiting_for_100_continue:
            return
        declared = ex.headers.get("content-length", "")
        chunked = "chunked" in ex.headers.get("transfer-encoding", "").lower()
        if chunked or (declared and (not declared.isdigit() or int(declared) > DRAIN_LIMIT)):
            return
        # no body at all (a GET), or a small sized one: h11 has its end or gets it soon
        with contextlib.suppress(ClientGone, h11.RemoteProtocolError):
            ex.body.read_all(DRAIN_LIMIT)

    def _protocol_error(self, e: h11.RemoteProtocolError) -> None:
        status = e.error_status_hint or 400
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = (b'{"message":"bad request: ' + str(e).replace('"', "'").encode("utf-8", "replace")
                + b'"}\n')
        with contextlib.suppress(ClientGone, h11.LocalProtocolError):
            self._respond(status, [("Content-Type", "application/json")], body, False, True)


def _reason(status: int) -> bytes:
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


# -- the server ----------------------------------------------------------------------------------
class Server:
    """Accepts on one listening socket; each connection in its own thread.

    `idle_timeout` (seconds, 0 = never): serve_forever returns once no request has been in
    flight for that long (podman's idle tracker: open keep-alive connections do not count,
    hijacked ones do)."""

    def __init__(self, listener: socket.socket, app: Application, idle_timeout: float = 0,
                 log: Callable[[str], None] | None = None, tls: Any = None):
        self.listener = listener
        # an ssl.SSLContext (serve/tls.py): every connection goes through a TLSRelay
        self.tls = tls
        self.app = app
        self.idle_timeout = idle_timeout
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._active = 0
        self._last_active = time.monotonic()
        self._conns: set[Connection] = set()
        self._hijacked: set[Connection] = set()
        self._threads: set[threading.Thread] = set()

    # the idle tracker
    def begin(self) -> None:
        with self._lock:
            self._active += 1

    def end(self) -> None:
        with self._lock:
            self._active -= 1
            self._last_active = time.monotonic()

    def mark_hijacked(self, conn: Connection) -> None:
        with self._lock:
            self._hijacked.add(conn)

    def forget(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)
            self._hijacked.discard(conn)
            self._threads.discard(threading.current_thread())

    def idle_for(self) -> float:
        with self._lock:
            if self._active:
                return 0.0
            return time.monotonic() - self._last_active

    def active(self) -> int:
        with self._lock:
            return self._active

    # running
    def serve_forever(self) -> None:
        """Accept until stop() is called or the idle timeout passes, then shut down."""
        self.listener.setblocking(False)
        try:
            while not self.stopping.is_set():
                wait = 0.5
                if self.idle_timeout > 0:
                    left = self.idle_timeout - self.idle_for()
                    if left <= 0:
                        self.log("rongqi serve: idle timeout reached, exiting")
                        break
                    wait = min(wait, left)
                try:
                    r, _, _ = select.select([self.listener], [], [], wait)
                except InterruptedError:
                    continue
                if r:
                    self._accept()
        finally:
            self.shutdown()

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.log(f"rongqi serve: accept: {e.strerror}")
                time.sleep(0.1)  # out of fds: let connections finish before taking more
                return
            raise
        sock.setblocking(True)
        if self.tls is not None:
            # the handshake in a thread of its own: a slow or silent client blocks no one
            threading.Thread(target=self._serve_tls, args=(sock,), name="serve-tls",
                             daemon=True).start()
            return
        self._serve_connection(sock)

    def _serve_tls(self, raw: socket.socket) -> None:
        from rongqi.serve.tls import TLSRelay
        relay = TLSRelay(raw, self.tls, self.log)
        if not relay.handshake():
            return
        if self.stopping.is_set():
            relay.close()
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._serve_connection(ours)
        relay.relay(theirs)

    def _serve_connection(self, sock: socket.socket) -> None:
        conn = Connection(self, sock)
        t = threading.Thread(target=conn.serve, name="serve-conn", daemon=True)
        with self._lock:
            self._conns.add(conn)
            self._threads.add(t)
            # the idle clock restarts at a new connection: a client between connect and its
            # first request is not idle
            self._last_active = time.monotonic()
        t.start()

    def stop(self) -> None:
        """Ask serve_forever to return (signal handlers call this)."""
        self.stopping.set()

    def shutdown(self) -> None:
        """Stop accepting; let in-flight requests finish (up to SHUTDOWN_GRACE), then shut
        the remaining connections down under their threads."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        # idle keep-alive connections: their threads wait in recv; wake them now
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            if c.h11.their_state is h11.IDLE and c not in self._hijacked:
                with contextlib.suppress(OSError):
                    c.sock.shutdown(socket.SHUT_RD)
        while time.monotonic() < deadline and self.active():
            time.sleep(0.05)
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
