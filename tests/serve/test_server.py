"""The HTTP server and the API's frame: routing, the version prefix, Docker's errors, streams,
hijacking, keep-alive, concurrency, the socket's permissions, idle exit and shutdown.

Most run an in-process Server with test routes (no engine); the rest drive `rongqi serve` with
real clients (Debian's docker CLI, docker-py).
"""

from __future__ import annotations

import grp
import json
import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rongqi.errors import NoSuchContainer
from rongqi.serve import http as serve_http
from rongqi.serve.app import (App, HTTPError, Request, Response, json_response, json_stream,
                              route)
from rongqi.serve.http import Address, ServeError, Server, listen
from support.engine_cli import Rongqi

from support.serving import wait_for_socket

# -- test routes (registered in this process only) ---------------------------------------------
_gate = threading.Event()


@route("GET", "/_test/params/{id}/x/{name:path}/json")
def _params(req: Request) -> Response:
    return json_response({"params": req.params, "path": req.path, "version": list(req.version),
                          "flag": req.flag("f"), "int": req.int("n", 7),
                          "filters": req.filters(), "arg": req.arg("a", "none")})


@route("POST", "/_test/json")
def _json(req: Request) -> Response:
    return json_response({"got": req.json()})


@route("POST", "/_test/bodylen")
def _bodylen(req: Request) -> Response:
    return json_response(len(req.body()))


@route("POST", "/_test/upload")
def _upload(req: Request) -> Response:
    total = 0
    while True:
        piece = req.stream.read(65536)
        if not piece:
            break
        total += len(piece)
    return json_response({"bytes": total})


@route("GET", "/_test/missing")
def _missing(req: Request) -> Response:
    raise NoSuchContainer("nothere")


@route("GET", "/_test/teapot")
def _teapot(req: Request) -> Response:
    raise HTTPError(418, "short and stout")


@route("GET", "/_test/bug")
def _bug(req: Request) -> Response:
    raise KeyError("secret internals")


@route("GET", "/_test/stream")
def _stream(req: Request) -> Response:
    def gen() -> Iterator[bytes]:
        yield b"first\n"
        _gate.wait(10)  # the client has read the first chunk before the second exists
        yield b"second\n"
    return Response(200, gen(), content_type="text/plain")


@route("GET", "/_test/jsonstream")
def _jsonstream(req: Request) -> Response:
    def gen() -> Iterator[dict[str, Any]]:
        yield {"status": "one"}
        raise NoSuchContainer("gone")
    return json_stream(gen())


@route("GET", "/_test/hang")
def _hang(req: Request) -> Response:
    def gen() -> Iterator[bytes]:
        yield b"{}\n"
        while not req.disconnected() and not req.stopping.is_set():
            time.sleep(0.05)
    return Response(200, gen(), content_type="application/json")


@route("POST", "/_test/hijack")
def _hijack(req: Request) -> Response:
    sock = req.hijack()
    try:
        data = req.hijack_buffer
        while not data.endswith(b"\n"):
            piece = sock.recv(1024)
            if not piece:
                break
            data += piece
        sock.sendall(b"echo:" + data)
    finally:
        sock.close()
    return Response.hijacked()


# -- an in-process server ----------------------------------------------------------------------
class Local:
    def __init__(self, idle_timeout: float = 0):
        self.dir = tempfile.mkdtemp(prefix="rqs-", dir="/tmp")
        self.path = os.path.join(self.dir, "s.sock")
        self.logged: list[str] = []
        self.server = Server(listen(Address(f"unix://{self.path}")), App(lambda: None),
                             idle_timeout=idle_timeout, log=self.logged.append)
        self.server.app.log = self.logged.append  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.http = httpx.Client(transport=httpx.HTTPTransport(uds=self.path),
                                 base_url="http://docker", timeout=20)

    def raw(self, data: bytes, *, read_until_close: bool = True) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(self.path)
        s.sendall(data)
        out = b""
        while read_until_close:
            piece = s.recv(65536)
            if not piece:
                break
            out += piece
        s.close()
        return out

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


@pytest.fixture
def local() -> Iterator[Local]:
    srv = Local()
    try:
        yield srv
    finally:
        srv.close()


# -- routing and the request ---------------------------------------------------------------------
def test_path_params_segment_and_rest_of_path(local: Local) -> None:
    r = local.http.get("/v1.41/_test/params/abc/x/localhost:5000/a/b:1/json",
                       params={"f": "1", "n": "3", "a": "z",
                               "filters": json.dumps({"label": {"a=b": True}, "x": ["y"]})})
    assert r.status_code == 200
    assert r.json() == {"params": {"id": "abc", "name": "localhost:5000/a/b:1"},
                        "path": "/_test/params/abc/x/localhost:5000/a/b:1/json",
                        "version": [1, 41], "flag": True, "int": 3,
                        "filters": {"label": ["a=b"], "x": ["y"]}, "arg": "z"}


def test_unversioned_path_is_the_current_version_and_flags_read_as_docker(local: Local) -> None:
    body = local.http.get("/_test/params/a/x/b/json", params={"f": "false"}).json()
    assert body["version"] == [1, 41] and body["flag"] is False and body["int"] == 7
    assert body["arg"] == "none"
    for text, want in (("0", False), ("no", False), ("", False), ("True", True), ("yes", True)):
        assert local.http.get("/_test/params/a/x/b/json", params={"f": text}).json()["flag"] \
            is want


def test_bad_integer_and_bad_filters_are_400(local: Local) -> None:
    r = local.http.get("/_test/params/a/x/b/json", params={"n": "many"})
    assert r.status_code == 400 and "not an integer" in r.json()["message"]
    r = local.http.get("/_test/params/a/x/b/json", params={"filters": "{nope"})
    assert r.status_code == 400 and r.json()["message"].startswith("invalid filter")


def test_too_new_and_too_old_versions_are_refused_as_dockerd_does(local: Local) -> None:
    r = local.http.get("/v1.45/_ping")
    assert r.status_code == 400
    assert r.json() == {"message": "client version 1.45 is too new. Maximum supported API "
                                   "version is 1.44"}
    r = local.http.get("/v1.11/_ping")
    assert r.status_code == 400 and "too old" in r.json()["message"]
    assert local.http.get("/v1.44/_ping").text == "OK"
    assert local.http.get("/v1.24/_ping").text == "OK"


def test_unknown_endpoint_is_404_and_wrong_method_405(local: Local) -> None:
    r = local.http.get("/v1.41/containers/nope/frobnicate")
    assert r.status_code == 404 and r.json() == {"message": "page not found"}
    r = local.http.delete("/_ping")
    assert r.status_code == 405 and "message" in r.json()


def test_ping_get_and_head_carry_the_version_headers(local: Local) -> None:
    for method in ("GET", "HEAD"):
        r = local.http.request(method, "/_ping")
        assert r.status_code == 200
        assert r.headers["api-version"] == "1.41"
        assert r.headers["docker-experimental"] == "false"
        assert r.headers["ostype"] == "linux"
        assert r.text == ("OK" if method == "GET" else "")


# -- errors ----------------------------------------------------------------------------------------
def test_engine_errors_become_dockers_json_with_its_status(local: Local) -> None:
    r = local.http.get("/_test/missing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"message": 'no container with name or ID "nothere" found: '
                                   "no such container"}
    r = local.http.get("/_test/teapot")
    assert r.status_code == 418 and r.json() == {"message": "short and stout"}


def test_a_bug_is_a_500_without_traceback_and_the_log_has_it(local: Local) -> None:
    r = local.http.get("/_test/bug")
    assert r.status_code == 500
    assert "Traceback" not in r.text and r.json()["message"].startswith("internal error")
    assert any("Traceback" in line and "secret internals" in line for line in local.logged)
    local.logged.clear()
    assert local.http.get("/_ping").text == "OK"


def test_malformed_json_is_400_and_the_service_keeps_serving(local: Local) -> None:
    r = local.http.post("/_test/json", content=b'{"Image": ', headers={"content-type":
                                                                          "application/json"})
    assert r.status_code == 400 and r.json()["message"].startswith("invalid JSON")
    assert local.http.post("/_test/json", json={"a": 1}).json() == {"got": {"a": 1}}
    assert local.http.post("/_test/json").json() == {"got": None}


def test_huge_body_is_413_and_the_service_keeps_serving(local: Local) -> None:
    from rongqi.serve.app import MAX_BODY
    # declared too large: refused before it is read
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(local.path)
    s.sendall(b"POST /_test/json HTTP/1.1\r\nHost: d\r\nContent-Length: %d\r\n\r\n[1,"
              % (1 << 30))
    head = b""
    while b"too large" not in head:  # the head and the body come in two writes
        piece = s.recv(65536)
        if not piece:
            break
        head += piece
    s.close()
    assert head.startswith(b"HTTP/1.1 413 ") and b"too large" in head
    # chunked, with no length to go by: refused at the limit
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(MAX_BODY // (1 << 20) + 1):
            yield b"1," * (1 << 19)
        yield b"1]"
    r = local.http.post("/_test/json", content=chunks())
    assert r.status_code == 413 and "too large" in r.json()["message"]
    assert local.http.get("/_ping").text == "OK"
    # at the limit: read whole
    def at_limit() -> Iterator[bytes]:
        for _ in range(MAX_BODY // (1 << 20)):
            yield b"x" * (1 << 20)
    assert local.http.post("/_test/bodylen", content=at_limit()).json() == MAX_BODY


def test_expect_100_continue_gets_its_go_ahead(local: Local) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(local.path)
    s.sendall(b"POST /_test/json HTTP/1.1\r\nHost: d\r\nContent-Length: 7\r\n"
              b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 100 ")
    s.sendall(b'{"a":1}')
    out = b""
    while piece := s.recv(65536):
        out += piece
    s.close()
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b'{"got":{"a":1}}\n')


def test_uploads_stream_without_the_body_limit(local: Local) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * (1 << 20)
    r = local.http.post("/_test/upload", content=chunks())  # chunked transfer encoding
    assert r.json() == {"bytes": 40 << 20}  # over MAX_BODY: a stream has no limit


def test_garbage_request_is_400_and_the_service_keeps_serving(local: Local) -> None:
    out = local.raw(b"\x00\x01 NOT HTTP\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    assert local.http.get("/_ping").text == "OK"


# -- connections -----------------------------------------------------------------------------------
def test_keep_alive_answers_several_requests_on_one_connection(local: Local) -> None:
    req = b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
    out = local.raw(req + req + b"GET /version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 3


def test_stream_chunks_are_flushed_as_they_come(local: Local) -> None:
    _gate.clear()
    with local.http.stream("GET", "/_test/stream") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        it = r.iter_raw()
        assert next(it) == b"first\n"  # before the handler made the second one
        _gate.set()
        assert b"".join(it) == b"second\n"


def test_an_engine_error_inside_a_json_stream_ends_it_with_dockers_error_object(
        local: Local) -> None:
    lines = local.http.get("/_test/jsonstream").text.splitlines()
    assert json.loads(lines[0]) == {"status": "one"}
    err = json.loads(lines[1])
    assert "no such container" in err["error"] and err["errorDetail"]["message"] == err["error"]


def test_hijack_upgrades_and_hands_over_the_socket(local: Local) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(local.path)
    s.sendall(b"POST /v1.41/_test/hijack HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
              b"Upgrade: tcp\r\nContent-Length: 0\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert b"Upgrade: tcp" in head and b"application/vnd.docker.raw-stream" in head
    s.sendall(b"hello\n")
    out = b""
    while True:
        piece = s.recv(1024)
        if not piece:
            break
        out += piece
    s.close()
    assert out == b"echo:hello\n"


def test_hijack_without_upgrade_answers_200(local: Local) -> None:
    out = local.raw(b"POST /_test/hijack HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\nhi\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\necho:hi\n")


def test_a_hanging_stream_and_a_slow_client_do_not_block_ping(local: Local) -> None:
    # a client that sent half a request head and stalls
    slow = socket.socket(socket.AF_UNIX)
    slow.connect(local.path)
    slow.sendall(b"GET /_ping HTTP/1.1\r\nHo")
    # streams that never end, read by nobody
    hangs = []
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX)
        s.connect(local.path)
        s.sendall(b"GET /_test/hang HTTP/1.1\r\nHost: d\r\n\r\n")
        hangs.append(s)
    t0 = time.monotonic()
    for _ in range(20):
        assert local.http.get("/_ping").text == "OK"
    assert time.monotonic() - t0 < 5
    for s in [slow, *hangs]:
        s.close()
    # the hanging streams notice their clients left
    deadline = time.monotonic() + 10
    while local.server.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local.server.active() == 0


def test_idle_timeout_ends_the_server_but_not_during_a_request() -> None:
    srv = Local(idle_timeout=0.6)
    try:
        with srv.http.stream("GET", "/_test/hang") as r:
            it = r.iter_raw()  # kept: a dropped generator closes the stream
            next(it)
            time.sleep(1.2)  # a request in flight: not idle
            assert srv.thread.is_alive()
        srv.thread.join(5)
        assert not srv.thread.is_alive()
        assert any("idle" in line for line in srv.logged)
    finally:
        srv.close()


# -- the listening socket ----------------------------------------------------------------------------
@pytest.fixture
def sockdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="rqs-", dir="/tmp")
    yield d
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def test_unix_socket_is_0660_with_the_named_group(sockdir: str) -> None:
    group = grp.getgrgid(os.getegid()).gr_name
    path = os.path.join(sockdir, "d.sock")
    s = listen(Address(f"unix://{path}"), group)
    try:
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == os.getegid()
    finally:
        s.close()
    with pytest.raises(ServeError, match="group 'no-such-group-rq' not found"):
        listen(Address(f"unix://{os.path.join(sockdir, 'e.sock')}"), "no-such-group-rq")
    assert not os.path.exists(os.path.join(sockdir, "e.sock"))


def test_a_live_socket_is_refused_a_stale_one_replaced_a_file_kept(sockdir: str) -> None:
    path = os.path.join(sockdir, "d.sock")
    live = listen(Address(f"unix://{path}"))
    try:
        with pytest.raises(ServeError, match="in use by a running server"):
            listen(Address(f"unix://{path}"))
    finally:
        live.close()  # the file stays: a server that died
    again = listen(Address(f"unix://{path}"))
    again.close()
    os.unlink(path)
    with open(path, "w") as f:
        f.write("not a socket")
    with pytest.raises(ServeError, match="exists and is not a socket"):
        listen(Address(f"unix://{path}"))
    assert open(path).read() == "not a socket"


def test_addresses() -> None:
    assert Address("tcp://127.0.0.1:2375").loopback()
    assert Address("tcp://[::1]:2375").loopback()
    assert Address("tcp://localhost:2375").loopback()
    assert Address("tcp://:2375").host == "127.0.0.1"  # no host: loopback, not every address
    assert not Address("tcp://0.0.0.0:2375").loopback()
    assert not Address("tcp://192.0.2.1:2375").loopback()
    for bad in ("/run/x.sock", "unix://rel.sock", "tcp://127.0.0.1", "tcp://h:99999",
                "http://x:1"):
        with pytest.raises(ServeError):
            Address(bad)


def test_tcp_on_loopback_serves() -> None:
    s = listen(Address("tcp://127.0.0.1:0"))
    port = s.getsockname()[1]
    srv = Server(s, App(lambda: None))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/_ping", timeout=10).text == "OK"
    finally:
        srv.stop()
        t.join(10)


# -- `rongqi serve` with real clients ----------------------------------------------------------------
def test_docker_cli_version_against_the_socket(serve: Any) -> None:
    out = serve.docker("version").stdout
    server = out.split("Server:", 1)[1]
    assert "Rongqi Engine" in server
    assert "API version:      1.41 (minimum version 1.12)" in server
    fmt = serve.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}").stdout
    assert fmt.strip() == "1.41 linux"


def test_docker_py_ping_and_version(serve: Any) -> None:
    c = serve.client()
    assert c.ping() is True
    v = c.version()
    assert v["ApiVersion"] == "1.41" and v["Os"] == "linux"
    assert v["Components"][0]["Name"] == "Engine"
    # docker-py's negotiation (version="auto") settles on what /version reports
    import docker
    auto = docker.APIClient(base_url=serve.host, version="auto")
    try:
        assert auto.api_version == "1.41"
    finally:
        auto.close()
    # and docker-py 7.1's default version (1.44) is served too
    default = docker.APIClient(base_url=serve.host)
    try:
        assert default.ping() is True
    finally:
        default.close()


def test_sigterm_ends_the_service_cleanly_and_removes_its_socket(serve: Any) -> None:
    assert serve.http.get("/_ping").text == "OK"
    assert serve.stop(signal.SIGTERM) == 0
    assert not os.path.exists(serve.socket)
    assert "Traceback" not in serve.log()


def test_sigint_ends_a_service_with_a_stream_open(serve: Any) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(serve.socket)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
    s.settimeout(20)
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert serve.stop(signal.SIGINT) == 0
    assert time.monotonic() - t0 < serve_http.SHUTDOWN_GRACE + 3
    s.close()
    assert not os.path.exists(serve.socket)


def _serve_argv(rq: Rongqi, *args: str) -> list[str]:
    return rq.argv("serve", *args)


def test_timeout_exits_after_idle_seconds_and_a_second_server_is_refused(tmp_path: Any,
                                                                           sockdir: str) -> None:
    rq = Rongqi(tmp_path / "engine")
    path = os.path.join(sockdir, "d.sock")
    p = subprocess.Popen(_serve_argv(rq, "--socket", f"unix://{path}", "--timeout", "1.5"),
                         env=rq.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    stream = socket.socket(socket.AF_UNIX)
    try:
        wait_for_socket(path, p)
        # a stream in flight: the first server is not idle while the second one starts
        stream.connect(path)
        stream.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
        stream.settimeout(30)
        assert stream.recv(100).startswith(b"HTTP/1.1 200")
        second = subprocess.run(_serve_argv(rq, "--socket", f"unix://{path}"), env=rq.env,
                                capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        assert second.returncode == 125
        assert second.stderr.strip().splitlines()[-1] == \
            f"Error: {path} is in use by a running server"
        assert p.poll() is None
        stream.close()  # idle from now on
        t0 = time.monotonic()
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0
        assert 1.0 < time.monotonic() - t0 < 10
        assert "idle timeout" in err and "Traceback" not in err
        assert not os.path.exists(path)
    finally:
        stream.close()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_bad_socket_address_is_one_line(tmp_path: Any) -> None:
    rq = Rongqi(tmp_path / "engine")
    p = subprocess.run(_serve_argv(rq, "--socket", "ftp://x"), env=rq.env, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 125
    assert p.stderr.strip() == "Error: invalid socket address 'ftp://x': only unix:// and " \
                               "tcp:// are supported"


def test_system_service_is_an_alias(tmp_path: Any) -> None:
    rq = Rongqi(tmp_path / "engine")
    p = subprocess.run(rq.argv("system", "service", "--help"), env=rq.env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "--timeout" in p.stdout and "--group" in p.stdout


@route("GET", "/_test/badanswer")
def _badanswer(req: Request) -> Response:
    return Response(204, b"a body HTTP forbids")


def test_an_answer_http_forbids_is_logged_and_the_service_keeps_serving(local: Local) -> None:
    # the head goes out, the body cannot: the server closes that connection
    out = local.raw(b"GET /_test/badanswer HTTP/1.1\r\nHost: d\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 204 ")
    assert any("bad answer" in line and "Traceback" in line for line in local.logged)
    local.logged.clear()
    assert local.http.get("/_ping").text == "OK"
