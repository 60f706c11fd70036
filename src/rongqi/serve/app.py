"""The Docker Engine API application: routes, Request/Response, the /v1.NN prefix and version
checks, and Docker's JSON errors; the route modules (ROUTE_MODULES) fill the route table.

A handler gets a Request (path params, query, body, an Engine made for it) and returns a
Response; a RongqiError or HTTPError it raises becomes Docker's `{"message": ...}` with
Docker's status code; anything else is logged with its traceback and answered 500.
"""

from __future__ import annotations

import importlib
import json
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import rongqi
from rongqi.errors import RongqiError
from rongqi.serve.http import Exchange

# The API rongqi speaks: Docker 20.10's. /_ping and /version report it; clients that negotiate
# (the docker CLI, docker-py with version="auto") settle on it.
API_VERSION = (1, 41)
# Docker 20.10 serves from 1.12 up.
MIN_API_VERSION = (1, 12)
# The highest version accepted in a path: docker-py 7.1's default (from_env() without
# version=) and docker 25's. Such requests are read as 1.41's; the later fields that are
# honoured are listed in docs/serve.md.
MAX_API_VERSION = (1, 44)

# The modules whose @route handlers make the API (imported once, at the first request or by
# load_routes()); each helper adds its module here, one line.
ROUTE_MODULES: tuple[str, ...] = (
    "system",
    "networks",
    "volumes",
    "streams",
    "execs",
    "images",
    "builds",
    "containers",
    "swarm",
)

# A request body read whole (Request.body()/json()) larger than this is refused with 413;
# uploads (archives, build contexts, image loads) read Request.stream instead, unbounded.
MAX_BODY = 16 << 20

# Docker's status for each kind of engine error, by class name (the first match along the
# class's MRO wins); by name so this module imports none of the engine's parts.
ERROR_STATUS: dict[str, int] = {
    "NoSuchContainer": 404, "ContainerNotFound": 404, "NoSuchVolume": 404,
    "NoSuchNetwork": 404, "ImageNotFound": 404, "NotFound": 404, "NoHealthcheck": 404,
    "NameInUse": 409, "ContainerExists": 409, "VolumeExists": 409, "VolumeInUse": 409,
    "NetworkInUse": 409, "ImageInUse": 409, "ContainerRunning": 409,
    "ContainerStateImproper": 409, "ContainerStateError": 409, "ContainerNotRunning": 409,
    "LockBusy": 409,
    "UsageError": 400, "InvalidReference": 400, "SpecError": 400, "BundleError": 400,
    "ContainerfileError": 400, "TemplateError": 400,
    "AuthError": 401,
    "UnsupportedError": 501,
}

_Int = int  # Request.int shadows the builtin inside the class

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


class HTTPError(Exception):
    """An answer other than success, in Docker's shape: {"message": message}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Response:
    """Status, headers and a body: bytes (sent with a Content-Length) or an iterator of bytes
    (sent chunked, each piece flushed as it comes: the head goes out before the first one, so
    check everything that can fail before returning a stream)."""

    HIJACKED = -1

    def __init__(self, status: int = 200, body: bytes | Iterable[bytes] = b"",
                 headers: dict[str, str] | None = None, content_type: str | None = None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        if content_type is not None:
            self.headers["Content-Type"] = content_type

    @classmethod
    def hijacked(cls) -> Response:
        """What a handler returns after Request.hijack(): the connection is its own."""
        return cls(cls.HIJACKED)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """obj as Docker writes JSON (one line, a newline after it)."""
    return Response(status, _dumps(obj) + b"\n", headers, content_type="application/json")


def json_stream(items: Iterable[Any], status: int = 200,
                headers: dict[str, str] | None = None) -> Response:
    """Newline-delimited JSON objects, each flushed: Docker's progress/events stream. An
    engine error in the middle ends the stream with Docker's error object
    ({"errorDetail": {"message": M}, "error": M}), as the daemon does for pull/push/build."""

    def lines() -> Iterator[bytes]:
        try:
            for item in items:
                yield _dumps(item) + b"\n"
        except RongqiError as e:
            yield _dumps({"errorDetail": {"message": str(e)}, "error": str(e)}) + b"\n"

    return Response(status, lines(), headers, content_type="application/json")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_status(err: BaseException) -> int:
    """Docker's status code for an engine error (see ERROR_STATUS), 500 when none is known."""
    for cls in type(err).__mro__:
        status = ERROR_STATUS.get(cls.__name__)
        if status is not None:
            return status
    return 500


def _bool_value(text: str) -> bool:
    """Docker's httputils.BoolValue: "", 0, no, false, none are false, anything else true."""
    return text.strip().lower() not in ("", "0", "no", "false", "none")


# -- requests ------------------------------------------------------------------------------------
class Request:
    """One API request, with the path's /v1.NN prefix taken off."""

    def __init__(self, app: App, ex: Exchange, path: str, version: tuple[int, int],
                 query: dict[str, list[str]]):
        self.app = app
        self.exchange = ex
        self.method = ex.method
        self.path = path
        self.version = version
        self.query = query
        self.headers = ex.headers
        self.params: dict[str, str] = {}
        self._engine: Any = None
        self._body: bytes | None = None

    # the query string
    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter (Go's FormValue), or default when absent."""
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter as Docker reads it (1/true/True/yes true; 0/false/no/""
        false); default when absent."""
        value = self.arg(name)
        return default if value is None else _bool_value(value)

    def int(self, name: str, default: int | None = None) -> int | None:
        """An integer query parameter; a value that is not one is a 400."""
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise HTTPError(400, f'invalid value for {name}: "{value}": not an integer') from None

    def filters(self) -> dict[str, list[str]]:
        """The `filters` query parameter: Docker's {"k": ["v"]} and its older {"k": {"v":
        true}} both come back as {"k": ["v"]}."""
        raw = self.arg("filters")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise HTTPError(400, f"invalid filter: {e}") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "invalid filter: expected a JSON object")
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, list):
                out[str(key)] = [str(v) for v in value]
            elif isinstance(value, dict):
                out[str(key)] = [str(v) for v, on in value.items() if on]
            elif isinstance(value, str):
                out[str(key)] = [value]
            else:
                raise HTTPError(400, f"invalid filter: {key!r} has a {type(value).__name__}")
        return out

    # the body
    @property
    def stream(self) -> Any:
        """The request body as a binary file (read it in pieces: uploads are large)."""
        return self.exchange.body

    def body(self) -> bytes:
        """The whole body (at most MAX_BODY bytes: a larger one is a 413)."""
        if self._body is None:
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY:
                data = None  # refused unread: the connection closes after the answer
            else:
                data = self.exchange.body.read_all(MAX_BODY)
            if data is None:
                raise HTTPError(413, f"request body too large (the limit is {MAX_BODY >> 20} MiB)")
            self._body = data
        return self._body

    def json(self) -> Any:
        """The body parsed as JSON; None when the body is empty; a 400 when it is not JSON."""
        data = self.body()
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"invalid JSON in the request body: {e}") from None

    # the rest
    @property
    def engine(self) -> Any:
        """An Engine made for this request (its lazy parts are not shared between threads)."""
        if self._engine is None:
            self._engine = self.app.make_engine()
        return self._engine

    @property
    def stopping(self) -> threading.Event:
        """Set when the service shuts down: a long stream ends when it sees it."""
        return self.exchange.stopping

    def disconnected(self) -> bool:
        """Whether the client went away (check it while a stream waits for something)."""
        return self.exchange.disconnected()

    @property
    def hijack_buffer(self) -> bytes:
        """What the client sent after its request before hijack() answered (usually
        nothing: docker's CLI and docker-py wait for the answer); treat it as the first input."""
        return self.exchange.hijack_buffer

    def hijack(self, status: _Int | None = None,
               headers: dict[str, str] | None = None) -> socket.socket:
        """Answer with a raw-stream head and hand over the socket (the handler owns and closes
        it, then returns Response.hijacked()). 101 with Connection: Upgrade / Upgrade: tcp when
        the client asked for an upgrade, else 200, as dockerd answers attach and exec start."""
        upgrade = "upgrade" in self.headers.get("connection", "").lower()
        if status is None:
            status = 101 if upgrade else 200
        reason = {101: "UPGRADED", 200: "OK"}.get(status, "OK")
        hdrs = {"Content-Type": "application/vnd.docker.raw-stream"}
        if status == 101:
            hdrs.update({"Connection": "Upgrade",
                         "Upgrade": self.headers.get("upgrade", "tcp") or "tcp"})
        hdrs.update(self.app.common_headers())
        hdrs.update(headers or {})
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        return self.exchange.hijack(head.encode("latin-1"))


# -- routing -------------------------------------------------------------------------------------
Handler = Callable[[Request], Response]


class Route:
    def __init__(self, method: str, pattern: str, handler: Handler):
        self.method = method
        self.pattern = pattern
        self.handler = handler
        self.regex = re.compile("^" + _to_regex(pattern) + "$")


def _to_regex(pattern: str) -> str:
    out = []
    for part in re.split(r"(\{[^}]+\})", pattern):
        if part.startswith("{") and part.endswith("}"):
            name, _, kind = part[1:-1].partition(":")
            out.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        else:
            out.append(re.escape(part))
    return "".join(out)


ROUTES: list[Route] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler for METHOD and a path pattern ({name} is one path segment,
    {name:path} the rest of the path, slashes included)."""

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method.upper(), pattern, fn))
        return fn

    return register


_loaded = False
_load_lock = threading.Lock()


def load_routes() -> None:
    """Import every module of ROUTE_MODULES (once): their @route calls fill ROUTES."""
    global _loaded
    with _load_lock:
        if not _loaded:
            for name in ROUTE_MODULES:
                importlib.import_module(f"rongqi.serve.{name}")
            _loaded = True


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """The route for a request, its path params, and whether the path matched some route
    with another method."""
    other = False
    for r in ROUTES:
        m = r.regex.match(path)
        if m is None:
            continue
        if r.method != method:
            other = True
            continue
        return r, {k: v for k, v in m.groupdict().items()}, other
    return None, {}, other


# -- the application -----------------------------------------------------------------------------
class App:
    """The callable the HTTP server runs for each request."""

    def __init__(self, make_engine: Callable[[], Any],
                 log: Callable[[str], None] | None = None):
        self.make_engine = make_engine
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        load_routes()

    @staticmethod
    def common_headers() -> dict[str, str]:
        """What dockerd puts on every answer (the CLI reads Api-Version and Ostype)."""
        return {"Api-Version": version_text(API_VERSION), "Ostype": "linux",
                "Server": f"Rongqi/{rongqi.__version__} (linux)"}

    def __call__(self, ex: Exchange) -> tuple[int, list[tuple[str, str]], bytes | Iterable[bytes]]:
        resp = self.respond(ex)
        headers = dict(self.common_headers())
        headers.update(resp.headers)
        if resp.body and "Content-Type" not in headers:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return resp.status, list(headers.items()), resp.body

    def respond(self, ex: Exchange) -> Response:
        req: Request | None = None
        try:
            split = urlsplit(ex.target)
            path = unquote(split.path) or "/"
            version = API_VERSION
            m = _VERSIONED.match(path)
            if m:
                version = (int(m.group(1)), int(m.group(2)))
                path = m.group(3)
                check_version(version)
            query = parse_qs(split.query, keep_blank_values=True)
            req = Request(self, ex, path, version, query)
            r, params, other = match(ex.method, path)
            if r is None:
                if other:
                    raise HTTPError(405, "method not allowed")
                raise HTTPError(404, "page not found")
            req.params = params
            resp = r.handler(req)
            if ex.hijacked:
                return Response.hijacked()
            return resp
        except HTTPError as e:
            return json_response({"message": e.message}, e.status, e.headers)
        except RongqiError as e:
            return json_response({"message": str(e)}, error_status(e))
        except Exception as e:  # a bug: the client gets one line, the log the traceback
            if ex.hijacked:
                self.log(f"rongqi serve: {ex.method} {ex.target} (hijacked):\n"
                         + traceback.format_exc())
                return Response.hijacked()
            self.log(f"rongqi serve: {ex.method} {ex.target}: internal error:\n"
                     + traceback.format_exc())
            return json_response({"message": f"internal error: {type(e).__name__}: {e}"}, 500)


def version_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def check_version(v: tuple[int, int]) -> None:
    """dockerd's answers for a /vX.Y/ it does not serve."""
    if v > MAX_API_VERSION:
        raise HTTPError(400, f"client version {version_text(v)} is too new. Maximum supported "
                             f"API version is {version_text(MAX_API_VERSION)}")
    if v < MIN_API_VERSION:
        raise HTTPError(400, f"client version {version_text(v)} is too old. Minimum supported "
                             f"API version is {version_text(MIN_API_VERSION)}, please upgrade "
                             "your client to a newer version")
