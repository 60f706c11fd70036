"""TLS for `rongqi serve` on tcp (dockerd's --tls and --tlsverify): the server's context made
from the key pair and the CA file, and the relay that puts each TLS connection behind a plain
socketpair, so the HTTP server, hijacked streams and everything above them see a plain socket.

The relay is one thread per connection: the handshake (its failures logged as Go's http server
logs them), then both directions through an ssl.SSLObject over memory BIOs (no blocking SSL
call, no SSL object shared between threads), half-closes passed on as close_notify and EOF.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from rongqi.serve.http import ServeError

# go-connections' tlsconfig.ServerDefault, which dockerd uses: TLS 1.2 at least.
MIN_VERSION = ssl.TLSVersion.TLSv1_2
# A client that connects and never finishes its handshake is dropped after this long.
HANDSHAKE_TIMEOUT = 30.0
RECV = 65536
# How much one direction may hold for a reader that does not read (then we stop reading the
# other end: the writer waits, as with a plain socket).
BUFFER_CAP = 1 << 20
# Go's http server answers a plain HTTP request on a TLS port so (net/http, server.go).
HTTP_ON_TLS = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
               b"Client sent an HTTP request to an HTTPS server.\n")
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")


@dataclass(frozen=True)
class TLSOptions:
    """dockerd's --tlscert/--tlskey/--tlscacert; verify is --tlsverify (client certificates
    required, signed by the CA), else --tls (any client, no certificate asked)."""

    cert: str
    key: str
    cacert: str
    verify: bool


def _no_password() -> bytes:
    # OpenSSL would otherwise ask on the terminal for an encrypted key's pass phrase
    raise ssl.SSLError("the key is encrypted")


def _missing(path: str) -> str | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as e:
        return f"open {path}: {(e.strerror or str(e)).lower()}"


def server_context(opts: TLSOptions) -> ssl.SSLContext:
    """The SSLContext dockerd's tlsconfig.Server would make; dockerd's error wording for a
    key pair or CA file it cannot use."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_VERSION
    pair = f'(cert: "{opts.cert}", key: "{opts.key}")'
    gone = _missing(opts.cert) or _missing(opts.key)
    if gone:
        raise ServeError(f"Could not load X509 key pair {pair}: {gone}")
    try:
        ctx.load_cert_chain(opts.cert, opts.key, password=_no_password)
    except (ssl.SSLError, OSError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
        raise ServeError(f"Error reading X509 key pair {pair}: {str(reason).lower()}. "
                         "Make sure the key is not encrypted.") from None
    if opts.verify:
        # dockerd's ExclusiveRootPools: only this CA, never the system's
        gone = _missing(opts.cacert)
        if gone:
            raise ServeError(f'Could not read CA certificate "{opts.cacert}": {gone}')
        try:
            ctx.load_verify_locations(cafile=opts.cacert)
        except (ssl.SSLError, OSError):
            raise ServeError("failed to append certificates from PEM file: "
                             f'"{opts.cacert}"') from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TLSRelay:
    """One accepted tcp connection: handshake, then relay between it and `plain`."""

    def __init__(self, raw: socket.socket, ctx: ssl.SSLContext, log: Callable[[str], None]):
        self.raw = raw
        self.log = log
        self.peer = _peer(raw)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self._in, self._out, server_side=True)

    def handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> bool:
        """Whether the handshake succeeded; a failure is logged, a plain HTTP request answered
        with Go's 400, and the connection closed."""
        deadline = time.monotonic() + timeout
        raw = self.raw
        try:
            raw.settimeout(timeout)
            first = raw.recv(5, socket.MSG_PEEK)
            if first in _HTTP_STARTS:
                self._refuse_plain_http()
                return False
            while True:
                try:
                    self.obj.do_handshake()
                    self._flush_blocking()
                    return True
                except ssl.SSLWantReadError:
                    self._flush_blocking()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("timed out") from None
                    raw.settimeout(left)
                    data = raw.recv(RECV)
                    if not data:
                        raise EOFError("EOF") from None
                    self._in.write(data)
        except (ssl.SSLError, OSError, EOFError) as e:
            # the alert OpenSSL wrote (bad certificate, unknown CA...) goes to the client first
            with contextlib.suppress(OSError):
                self._flush_blocking()
            self.log(f"rongqi serve: http: TLS handshake error from {self.peer}: "
                     f"{_reason(e)}")
            self.close()
            return False

    def _refuse_plain_http(self) -> None:
        """Go's 400 for a plain HTTP request; what the client sent is read first, so that
        closing does not reset the connection before the client read the answer."""
        raw = self.raw
        with contextlib.suppress(OSError):
            raw.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while raw.recv(RECV):
                    pass
            raw.setblocking(True)
            raw.settimeout(5)
            raw.sendall(HTTP_ON_TLS)
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(RECV):   # until the client closes (or 5 s)
                pass
        self.close()

    def _flush_blocking(self) -> None:
        data = self._out.read()
        if data:
            self.raw.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.close()

    def relay(self, plain: socket.socket) -> None:
        """Move bytes both ways until both are done; closes both sockets."""
        raw = self.raw
        raw.setblocking(False)
        plain.setblocking(False)
        to_plain = bytearray()       # the client's bytes, decrypted
        to_raw = bytearray()         # ours, encrypted
        client_done = False          # the client ended (close_notify, EOF, a broken record)
        plain_shut = False           # the client's end passed on to the plain side
        ours_done = False            # the server side ended its output
        raw_shut = False             # ... and the client got our close_notify and EOF
        plain_closed = False         # the server side closed its socket entirely
        poller = select.poll()
        try:
            # what the client sent with its handshake's last flight (the first request, often)
            client_done = self._decode(to_plain)
            to_raw += self._out.read()
            while True:
                if client_done and not to_plain and not plain_shut and not plain_closed:
                    with contextlib.suppress(OSError):
                        plain.shutdown(socket.SHUT_WR)
                    plain_shut = True
                if ours_done and not to_raw and not raw_shut:
                    with contextlib.suppress(OSError):
                        raw.shutdown(socket.SHUT_WR)
                    raw_shut = True
                if raw_shut and (plain_shut or plain_closed):
                    return
                want_raw = 0
                if not client_done and len(to_plain) < BUFFER_CAP:
                    want_raw |= select.POLLIN
                if to_raw:
                    want_raw |= select.POLLOUT
                want_plain = 0
                if not plain_closed:
                    want_plain = select.POLLHUP
                    if not ours_done and len(to_raw) < BUFFER_CAP:
                        want_plain |= select.POLLIN
                    if to_plain:
                        want_plain |= select.POLLOUT
                for sock, want in ((raw, want_raw), (plain, want_plain)):
                    if want:
                        poller.register(sock, want)
                    else:
                        with contextlib.suppress(KeyError):
                            poller.unregister(sock)
                if not want_raw and not want_plain:
                    return  # nothing can move any more
                events = dict(poller.poll())
                rev = events.get(raw.fileno(), 0)
                pev = events.get(plain.fileno(), 0)
                if rev & (select.POLLIN | select.POLLHUP | select.POLLERR) and \
                        want_raw & select.POLLIN:
                    client_done = self._read_client(to_plain) or client_done
                    to_raw += self._out.read()
                if rev & select.POLLOUT and to_raw:
                    try:
                        del to_raw[:raw.send(to_raw)]
                    except BlockingIOError:
                        pass
                    except OSError:
                        return  # the client is gone: nothing more can reach it
                elif rev & (select.POLLHUP | select.POLLERR) and client_done:
                    return  # gone both ways (a reset): nothing can reach it either
                if pev & select.POLLOUT and to_plain:
                    try:
                        del to_plain[:plain.send(to_plain)]
                    except BlockingIOError:
                        pass
                    except OSError:
                        plain_closed = True
                        to_plain.clear()
                if pev & (select.POLLIN | select.POLLHUP) and not ours_done:
                    try:
                        data: bytes | None = plain.recv(RECV)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data == b"":
                        ours_done = True
                        with contextlib.suppress(ssl.SSLError):
                            self.obj.unwrap()  # our close_notify, into the out BIO
                        to_raw += self._out.read()
                    elif data:
                        self.obj.write(data)
                        to_raw += self._out.read()
                elif pev & select.POLLHUP:
                    # a socketpair's POLLHUP once its output ended too: the server side
                    # closed; what the client still sends has nowhere to go
                    plain_closed = True
                    to_plain.clear()
        finally:
            with contextlib.suppress(OSError):
                plain.close()
            self.close()

    def _read_client(self, to_plain: bytearray) -> bool:
        """Take what the client sent into to_plain; True when the client's stream ended."""
        try:
            data = self.raw.recv(RECV)
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT):
                self.log(f"rongqi serve: tls: read from {self.peer}: {e.strerror or e}")
            return True
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()
        return self._decode(to_plain) or not data

    def _decode(self, to_plain: bytearray) -> bool:
        """The records the in BIO holds, decrypted into to_plain; True when the client's
        stream ended (close_notify, or EOF)."""
        while True:
            try:
                chunk = self.obj.read(RECV)
            except ssl.SSLWantReadError:
                return False
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return True  # close_notify, or an EOF without it (a raw half-close)
            except ssl.SSLError as e:
                self.log(f"rongqi serve: tls: from {self.peer}: {_reason(e)}")
                return True
            if not chunk:
                return True
            to_plain += chunk


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except (OSError, ValueError):
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(e: BaseException) -> str:
    """Go's wording where a client's certificate is refused (dockerd's log says so), else
    OpenSSL's reason."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: x509: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        if e.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "tls: client didn't provide a certificate"
        return (e.reason or str(e)).lower().replace("_", " ")
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
