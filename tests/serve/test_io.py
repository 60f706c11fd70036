"""The Docker API's container streams through real clients: logs (frames, tty raw, follow,
tail, timestamps), attach (hijacked, before start, detach keys, stdin's EOF), resize, exec
create/start/inspect/resize (pipes, tty, stdin, detached, errors), with docker-py and
/usr/bin/docker; and the relay's framing on socketpairs, without a service."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import struct
import threading
import time
from typing import Any

import pytest

from rongqi.engine import attach as proto

pytestmark = pytest.mark.root


# -- the relay on socketpairs (no service, no container) -----------------------------------------
def _frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = data[0], struct.unpack(">I", data[4:8])[0]
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def _recv_all(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def _relay_thread(opts: Any) -> tuple[socket.socket, socket.socket, list[str], threading.Thread]:
    from rongqi.serve.streams import Peer, relay

    client, server_end = socket.socketpair()
    monitor_end, monitor = socket.socketpair()
    result: list[str] = []

    def run() -> None:
        peer = Peer(server_end)
        try:
            result.append(relay(peer, monitor_end, opts))
        finally:
            peer.close()
            monitor_end.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return client, monitor, result, t


def test_relay_forwards_frames_without_a_tty_and_drops_the_exit_frame():
    from rongqi.serve.streams import AttachOptions

    client, monitor, result, t = _relay_thread(
        AttachOptions(stdin=False, stdout=True, stderr=True, tty=False))
    monitor.sendall(proto.frame(1, b"out\n") + proto.frame(2, b"err\n") + proto.frame(3, b"0"))
    data = _recv_all(client)
    t.join(10)
    assert _frames(data) == [(1, b"out\n"), (2, b"err\n")]
    assert result == ["exit"]


def test_relay_is_raw_with_a_tty_and_filters_streams():
    from rongqi.serve.streams import AttachOptions

    client, monitor, result, t = _relay_thread(
        AttachOptions(stdin=False, stdout=True, stderr=False, tty=True))
    monitor.sendall(proto.frame(1, b"a") + proto.frame(2, b"hidden") + proto.frame(1, b"b"))
    monitor.close()
    assert _recv_all(client) == b"ab"
    t.join(10)
    assert result == ["gone"]


def test_relay_stdin_and_its_eof_close_the_containers_stdin():
    from rongqi.serve.streams import AttachOptions

    client, monitor, result, t = _relay_thread(
        AttachOptions(stdin=True, stdout=True, stderr=True, tty=False))
    client.sendall(b"typed")
    client.shutdown(socket.SHUT_WR)  # the docker CLI's CloseWrite after its stdin's EOF
    reader = proto.FrameReader()
    got: list[tuple[int, bytes]] = []
    monitor.settimeout(10)
    while len(got) < 2:
        got += reader.feed(monitor.recv(4096))
    assert got == [(0, b"typed"), (0, b"")]
    monitor.sendall(proto.frame(1, b"still streaming") + proto.frame(3, b"0"))
    assert _frames(_recv_all(client)) == [(1, b"still streaming")]
    t.join(10)
    assert result == ["exit"]


def test_relay_detach_keys_with_a_tty_end_only_the_attach():
    from rongqi.serve.streams import AttachOptions

    client, monitor, result, t = _relay_thread(
        AttachOptions(stdin=True, stdout=True, stderr=True, tty=True, keys=b"\x10\x11"))
    client.sendall(b"ls\r\x10\x11more")
    t.join(10)
    assert result == ["detached"]
    reader = proto.FrameReader()
    monitor.settimeout(5)
    assert reader.feed(monitor.recv(4096)) == [(0, b"ls\r")]


def test_start_attach_hands_a_pending_attach_to_one_start_only():
    from rongqi.serve import streams

    p = streams._register("c" * 64)
    assert p is not None and streams._register("c" * 64) is None
    try:
        with streams.start_attach("c" * 64) as sock:
            assert sock is p.theirs and p.claimed
        with streams.start_attach("c" * 64) as again:
            assert again is None
        assert p.mine.recv(10) == b""  # closed: the waiting client sees the end
    finally:
        streams._unregister(p)
        p.mine.close()


def test_docker_times():
    from rongqi.serve.streams import docker_time, parse_docker_time

    assert docker_time(1714557600_000000042) == "2024-05-01T10:00:00.000000042Z"
    assert parse_docker_time("1714557600.5") == 1714557600_500000000
    assert parse_docker_time("1714557600") == 1714557600_000000000
    assert parse_docker_time("") == parse_docker_time("0") == 0
    assert parse_docker_time("2024-05-01T10:00:00Z") == 1714557600_000000000


def test_execs_from_threads_at_once_never_fork_the_threaded_process(tmp_path, monkeypatch):
    from support.leaks import ENGINE_IDS, engine_ids

    from rongqi.engine import Engine
    from rongqi.engine import exec as execmod
    from rongqi.engine.options import ContainerOptions
    from rongqi.serve import execs

    base = tmp_path / "engine"
    monkeypatch.setenv("RONGQI_RUNTIME_ROOT", str(base / "runtime"))
    for var in ("RONGQI_ROOT", "RONGQI_RUNROOT", "RONGQI_RUNTIME"):
        monkeypatch.delenv(var, raising=False)

    def make() -> Any:
        return Engine(str(base / "root"), str(base / "run"), threaded=True)

    e = make()
    c = e.create(ContainerOptions(image="busybox", command=["sleep", "60"], network="none"))
    try:
        e.start(c.id)
        forks: list[int] = []
        real_fork = os.fork
        monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
        results: dict[int, tuple[bytes, int, dict]] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def one(i: int) -> None:
            try:
                eng = make()
                ctr = eng.get(c.id)
                proc = execmod.build_process(ctr, execmod.ExecRequest(
                    command=["sh", "-c", f"echo from-{i}; exit {i}"]))
                path = str(tmp_path / f"exec{i}.json")
                doc = {"ID": str(i), "Running": False, "ExitCode": None,
                       "ProcessConfig": {"tty": False}, "rongqi": {"process": proc}}
                with open(path, "w") as f:
                    json.dump(doc, f)
                r, w = os.pipe()
                null = os.open(os.devnull, os.O_RDWR)
                barrier.wait(30)
                try:
                    parent = execs.Parent(eng, ctr, doc, path, stdio=(null, w, null))
                finally:
                    os.close(w)
                    os.close(null)
                assert parent.line()[0] == "pid"
                out = b""
                while chunk := os.read(r, 4096):
                    out += chunk
                os.close(r)
                word, code = parent.line()
                parent.close()
                with open(path) as f:
                    results[i] = (out, int(code) if word == "exit" else -1, json.load(f))
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert forks == []  # the parents are fresh interpreters, spawned by subprocess in C
        for i in range(4):
            out, code, doc = results[i]
            assert (out, code, doc["ExitCode"], doc["Running"]) == (f"from-{i}\n".encode(), i,
                                                                    i, False)
            assert doc["Pid"] > 0
    finally:
        ENGINE_IDS.update(engine_ids(e.root))
        e.remove(c.id, force=True, timeout=0)


# -- through the service -----------------------------------------------------------------------
def _run_d(serve: Any, *args: str) -> str:
    return serve.rongqi("run", "-d", *args).stdout.strip()


def _wait_exited(serve: Any, cid: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while serve.rongqi.inspect(cid)["State"]["Status"] != "exited":
        assert time.monotonic() < deadline, f"{cid} still runs"
        time.sleep(0.1)


def _log_has(serve: Any, cid: str, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in serve.rongqi("logs", cid).stdout:
        assert time.monotonic() < deadline, f"no {text!r} in the log of {cid}"
        time.sleep(0.1)


def test_logs_are_multiplexed_without_a_tty_with_docker_timestamps_and_tail(serve):
    cid = _run_d(serve, "busybox", "sh", "-c", "echo one; echo two >&2; sleep 0.2; echo three")
    _wait_exited(serve, cid)
    r = serve.http.get(f"/v1.41/containers/{cid}/logs", params={"stdout": 1, "stderr": 1})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.docker.raw-stream"
    # Two pipes: the order between stdout and stderr is the monitor's reading order.
    got = _frames(r.content)
    assert sorted(got) == [(1, b"one\n"), (1, b"three\n"), (2, b"two\n")]
    assert [f for f in got if f[0] == 1] == [(1, b"one\n"), (1, b"three\n")]
    r = serve.http.get(f"/containers/{cid}/logs",
                       params={"stdout": 1, "timestamps": 1, "tail": 1})
    [(stream, line)] = _frames(r.content)
    assert stream == 1 and re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z three\n", line)
    r = serve.http.get(f"/v1.44/containers/{cid}/logs", params={"stderr": 1})
    assert r.headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert _frames(r.content) == [(2, b"two\n")]
    r = serve.http.get(f"/containers/{cid}/logs")
    assert r.status_code == 400
    assert r.json()["message"] == "Bad parameters: you must choose at least one stream"
    assert serve.http.get("/containers/nosuch/logs?stdout=1").status_code == 404


def test_logs_of_a_tty_container_are_raw_and_follow_ends_at_its_exit(serve):
    cid = _run_d(serve, "-t", "busybox", "sh", "-c", "echo first; sleep 1.5; echo last")
    t0 = time.monotonic()
    with serve.http.stream("GET", f"/containers/{cid}/logs",
                           params={"stdout": 1, "stderr": 1, "follow": 1}) as r:
        body = b"".join(r.iter_raw())
    assert body == b"first\r\nlast\r\n"
    assert time.monotonic() - t0 > 1.0  # it waited for the second line, then ended


def test_logs_since_and_until(serve):
    cid = _run_d(serve, "busybox", "sh", "-c", "echo early; sleep 1.2; echo late")
    _wait_exited(serve, cid)
    raw = serve.http.get(f"/containers/{cid}/logs", params={"stdout": 1, "timestamps": 1}).content
    stamps = [line.split(b" ")[0].decode() for _, line in _frames(raw)]
    from rongqi.engine.logs import parse_time_ns

    late_ns = parse_time_ns(stamps[1])
    since = "%d.%09d" % divmod(late_ns - 500_000_000, 1_000_000_000)
    r = serve.http.get(f"/containers/{cid}/logs", params={"stdout": 1, "since": since})
    assert _frames(r.content) == [(1, b"late\n")]
    r = serve.http.get(f"/containers/{cid}/logs", params={"stdout": 1, "until": since})
    assert _frames(r.content) == [(1, b"early\n")]


def test_exec_with_docker_py_demux_stream_exit_code_and_inspect(serve):
    cid = _run_d(serve, "busybox", "sleep", "600")
    api = serve.client().api
    e = api.exec_create(cid, ["sh", "-c", "echo out; echo err >&2; exit 4"],
                        environment=["GREETING=hi"], workdir="/tmp")
    assert api.exec_inspect(e["Id"])["Running"] is False
    assert api.exec_inspect(e["Id"])["ExitCode"] is None
    assert api.exec_start(e["Id"], demux=True) == (b"out\n", b"err\n")
    info = api.exec_inspect(e["Id"])
    assert (info["ExitCode"], info["Running"], info["ContainerID"]) == (4, False, cid)
    assert info["ProcessConfig"]["entrypoint"] == "sh" and info["Pid"] > 0
    e = api.exec_create(cid, ["sh", "-c", "echo $GREETING $(pwd); for i in 1 2 3; do echo $i; "
                                          "sleep 0.1; done"],
                        environment=["GREETING=hi"], workdir="/tmp")
    chunks = list(api.exec_start(e["Id"], stream=True))
    assert b"".join(chunks) == b"hi /tmp\n1\n2\n3\n" and len(chunks) >= 3
    assert api.exec_inspect(e["Id"])["ExitCode"] == 0
    # One start per exec, as dockerd.
    with pytest.raises(Exception, match="has already run"):
        api.exec_start(e["Id"])


def test_exec_tty_stdin_and_resize(serve):
    cid = _run_d(serve, "busybox", "sleep", "600")
    api = serve.client().api
    e = api.exec_create(cid, ["sh", "-c", "tty; stty size"], tty=True)
    out = api.exec_start(e["Id"], tty=True)
    assert re.match(rb"/dev/pts/\d+\r\n", out)
    e = api.exec_create(cid, ["sh"], stdin=True, tty=True)
    sock = api.exec_start(e["Id"], tty=True, socket=True)._sock
    try:
        api.exec_resize(e["Id"], height=33, width=101)
        sock.sendall(b"stty size; echo $((6*7))\n")
        got = _read_until(sock, b"42")
        assert b"33 101" in got
        sock.sendall(b"exit 5\n")
        _recv_all(sock)
    finally:
        sock.close()
    assert _wait_for(lambda: api.exec_inspect(e["Id"])["ExitCode"]) == 5


def test_exec_tty_detach_keys_leave_the_process_running(serve):
    cid = _run_d(serve, "busybox", "sleep", "600")
    api = serve.client().api
    e = api.exec_create(cid, ["sh", "-c", "sleep 5; echo late; exit 7"], stdin=True, tty=True,
                        detach_keys="ctrl-x,x")
    sock = api.exec_start(e["Id"], tty=True, socket=True)._sock
    try:
        sock.sendall(b"\x18x")
        t0 = time.monotonic()
        _recv_all(sock)  # the service ends the stream at once, not when the process ends
        assert time.monotonic() - t0 < 3
    finally:
        sock.close()
    assert api.exec_inspect(e["Id"])["Running"] is True
    assert _wait_for(lambda: api.exec_inspect(e["Id"])["ExitCode"]) == 7


def test_service_shutdown_ends_streams_and_leaves_containers_and_execs_running(serve):
    cid = _run_d(serve, "-i", "busybox", "sh", "-c", "cat; echo stdin-closed; sleep 600")
    api = serve.client().api
    attached = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    e = api.exec_create(cid, ["sh", "-c", "sleep 2; echo x > /tmp/after"])
    streaming = api.exec_start(e["Id"], socket=True)._sock
    follower = serve.http.stream("GET", f"/containers/{cid}/logs",
                                 params={"stdout": 1, "follow": 1})
    follower.__enter__()
    try:
        t0 = time.monotonic()
        assert serve.stop() == 0
        assert time.monotonic() - t0 < 4.5  # no stream held it for the 5 s grace
        assert _recv_all(attached) == b"" and _recv_all(streaming) == b""
    finally:
        attached.close()
        streaming.close()
        follower.__exit__(None, None, None)
    # The container's stdin stayed open (the service went, not the client), the exec ran on.
    assert serve.rongqi.inspect(cid)["State"]["Status"] == "running"
    assert "stdin-closed" not in serve.rongqi("logs", cid).stdout
    deadline = time.monotonic() + 20
    while serve.rongqi("exec", cid, "cat", "/tmp/after", check=False).stdout != "x\n":
        assert time.monotonic() < deadline, "the exec did not finish after the service stopped"
        time.sleep(0.2)


def test_exec_stdin_eof_reaches_the_process(serve):
    cid = _run_d(serve, "busybox", "sleep", "600")
    api = serve.client().api
    e = api.exec_create(cid, ["sh", "-c", "wc -c; echo done >&2"], stdin=True)
    sock = api.exec_start(e["Id"], socket=True)._sock
    sock.sendall(b"12345")
    sock.shutdown(socket.SHUT_WR)
    frames = _frames(_recv_all(sock))
    sock.close()
    assert frames == [(1, b"5\n"), (2, b"done\n")]


def test_exec_errors(serve):
    cid = _run_d(serve, "busybox", "sleep", "600")
    api = serve.client().api
    e = api.exec_create(cid, ["/no/such/command"])
    out = api.exec_start(e["Id"])
    assert b"not found" in out or b"no such file" in out
    assert api.exec_inspect(e["Id"])["ExitCode"] == 126   # dockerd's for any start failure
    r = serve.http.post(f"/containers/{cid}/exec", json={"Cmd": []})
    assert (r.status_code, r.json()["message"]) == (400, "No exec command specified")
    r = serve.http.get("/exec/" + "0" * 64 + "/json")
    assert (r.status_code, r.json()["message"]) == (404, f"No such exec instance: {'0' * 64}")
    assert serve.http.get("/exec/../json").status_code == 404
    r = serve.http.post(f"/containers/{cid}/exec", json={"Cmd": ["true"], "User": "nobody2"})
    assert r.status_code == 400 and "nobody2" in r.json()["message"]
    done = _run_d(serve, "busybox", "true")
    _wait_exited(serve, done)
    r = serve.http.post(f"/containers/{done}/exec", json={"Cmd": ["true"]})
    assert (r.status_code, r.json()["message"]) == (409, f"Container {done} is not running")


def test_exec_detached_records_its_exit(serve):
    cid = _run_d(serve, "busybox", "sleep", "600")
    api = serve.client().api
    e = api.exec_create(cid, ["sh", "-c", "sleep 0.5; echo bg > /tmp/bg; exit 9"])
    assert api.exec_start(e["Id"], detach=True) in ("", b"")  # docker-py: the empty body
    assert api.exec_inspect(e["Id"])["Running"] is True
    assert _wait_for(lambda: api.exec_inspect(e["Id"])["ExitCode"]) == 9
    e2 = api.exec_create(cid, ["cat", "/tmp/bg"])
    assert api.exec_start(e2["Id"]) == b"bg\n"


def test_attach_socket_to_a_running_container_with_stdin(serve):
    cid = _run_d(serve, "-i", "busybox", "sh", "-c", "while read l; do echo got $l; done")
    api = serve.client().api
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw = sock._sock
    try:
        raw.sendall(b"ping\n")
        assert _read_frames_until(raw, b"got ping\n") == [(1, b"got ping\n")]
    finally:
        raw.shutdown(socket.SHUT_WR)  # StdinOnce: the container's stdin closes
        rest = _recv_all(raw)
        raw.close()
    assert rest == b""
    _wait_exited(serve, cid)


def test_attach_waits_for_a_start_by_someone_else_and_replays_logs(serve):
    cid = serve.rongqi("create", "busybox", "sh", "-c", "echo hello; sleep 4; echo bye").stdout.strip()
    sock = serve.client().api.attach_socket(cid, params={"stdout": 1, "stderr": 1,
                                                          "stream": 1})._sock
    try:
        time.sleep(0.3)
        serve.rongqi("start", cid)  # the CLI, not the API: the attach finds the monitor itself
        data = _recv_all(sock, timeout=20)
    finally:
        sock.close()
    assert b"bye\n" in b"".join(p for _, p in _frames(data))
    r = serve.http.post(f"/containers/{cid}/attach", params={"logs": 1, "stdout": 1})
    assert _frames(r.content) == [(1, b"hello\n"), (1, b"bye\n")]


def test_resize_a_tty_container(serve):
    cid = _run_d(serve, "-it", "busybox", "sh")
    api = serve.client().api
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    try:
        api.resize(cid, height=44, width=132)
        sock.sendall(b"stty size\n")
        assert b"44 132" in _read_until(sock, b"44 132")
        sock.sendall(b"\x10\x11")  # ctrl-p ctrl-q: the attach ends, the container runs on
        _recv_all(sock)
    finally:
        sock.close()
    # A client that just closes (as the docker CLI after its own detach) leaves a tty's input
    # open: the shell lives on.
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    sock.sendall(b"echo once\n")
    _read_until(sock, b"once")
    sock.close()
    time.sleep(0.5)
    assert serve.rongqi.inspect(cid)["State"]["Status"] == "running"
    r = serve.http.post(f"/containers/{cid}/resize", params={"h": "x", "w": 1})
    assert r.status_code == 400
    done = _run_d(serve, "busybox", "true")
    _wait_exited(serve, done)
    assert serve.http.post(f"/containers/{done}/resize?h=1&w=1").status_code == 409


def test_attach_over_a_websocket(serve):
    from wsproto import WSConnection
    from wsproto.connection import ConnectionType
    from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request

    cid = _run_d(serve, "-i", "busybox", "sh", "-c", "while read l; do echo got $l; done")
    ws = WSConnection(ConnectionType.CLIENT)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(serve.socket)
    sock.settimeout(20)

    def events() -> list:
        ws.receive_data(sock.recv(65536) or None)
        return list(ws.events())

    try:
        sock.sendall(ws.send(Request(host="docker", target=f"/v1.41/containers/{cid}/attach/ws"
                                                          "?stream=1&stdin=1&stdout=1")))
        evs = events()
        assert isinstance(evs[0], AcceptConnection), evs
        sock.sendall(ws.send(BytesMessage(data=b"over ws\n")))
        got = b""
        while b"got over ws\n" not in got:
            for ev in events():
                assert isinstance(ev, BytesMessage), ev
                got += bytes(ev.data)
        assert got == b"got over ws\n"  # raw: a websocket has no stream framing
        sock.sendall(ws.send(CloseConnection(code=1000)))
        assert any(isinstance(ev, CloseConnection) for ev in events())
    finally:
        sock.close()
    # Not a websocket handshake: Docker's JSON error, nothing hijacked.
    r = serve.http.get(f"/containers/{cid}/attach/ws?stream=1")
    assert r.status_code == 400 and "websocket" in r.json()["message"]


# -- the docker CLI --------------------------------------------------------------------------------
def test_docker_run_in_the_foreground_passes_output_and_exit_code(serve):
    r = serve.docker("run", "--rm", "busybox", "sh", "-c", "echo hi; echo oops >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "oops\n")
    assert serve.docker("run", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    r = serve.docker("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo end",
                     input="piped\n")
    assert r.stdout == "piped\nend\n"  # stdin's EOF reached the container (StdinOnce)
    # start -ai: the attach first, then the start, as run does
    cid = serve.docker("create", "-i", "busybox", "sh", "-c", "cat; exit 4").stdout.strip()
    r = serve.docker("start", "-ai", cid, input="again\n", check=False)
    assert (r.returncode, r.stdout) == (4, "again\n")


def test_docker_logs_follow_ends_at_exit_and_tail_with_timestamps(serve):
    cid = serve.docker("run", "-d", "busybox", "sh", "-c",
                       "echo a; sleep 1; echo b; echo c >&2").stdout.strip()
    r = serve.docker("logs", "-f", cid, timeout=60)
    assert (r.stdout, r.stderr) == ("a\nb\n", "c\n")
    r = serve.docker("logs", "--tail", "2", "-t", cid)
    lines = (r.stdout + r.stderr).splitlines()
    assert sorted(ln.split(" ", 1)[1] for ln in lines) == ["b", "c"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}\.\d{9}Z \w", ln) for ln in lines)


def test_docker_exec_with_and_without_t(serve):
    cid = serve.docker("run", "-d", "busybox", "sleep", "600").stdout.strip()
    r = serve.docker("exec", "-e", "X=1", "-w", "/tmp", cid, "sh", "-c",
                     "echo $X $(pwd); echo e >&2; exit 5", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (5, "1 /tmp\n", "e\n")
    r = serve.docker("exec", "-t", cid, "sh", "-c", "tty; exit 2", check=False)
    assert r.returncode == 2 and re.fullmatch(r"/dev/pts/\d+\r?\n", r.stdout)
    assert serve.docker("exec", "-i", cid, "cat", input="in\n").stdout == "in\n"
    r = serve.docker("exec", cid, "nosuchcommand", check=False)
    assert r.returncode == 126 and "not found" in r.stdout + r.stderr   # as with dockerd
    assert serve.docker("exec", "-d", cid, "sh", "-c", "echo detached > /tmp/d").returncode == 0
    deadline = time.monotonic() + 20
    while serve.docker("exec", cid, "cat", "/tmp/d", check=False).stdout != "detached\n":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_docker_attach_without_stdin_once_ends_at_eof_and_exec_ids_in_inspect(serve):
    # run -di: no StdinOnce, so an attach's EOF ends only that attach; cat lives on.
    cid = serve.docker("run", "-di", "busybox", "cat").stdout.strip()
    info = serve.docker("inspect", cid).stdout
    assert json.loads(info)[0]["Config"]["StdinOnce"] is False
    api = serve.client().api
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    try:
        sock.sendall(b"hi\n")
        assert _read_frames_until(sock, b"hi\n") == [(1, b"hi\n")]
        sock.shutdown(socket.SHUT_WR)
        assert _recv_all(sock) == b""  # the attach ended at once (dockerd: CloseStdin false)
    finally:
        sock.close()
    time.sleep(0.5)
    assert serve.rongqi.inspect(cid)["State"]["Status"] == "running"
    e = api.exec_create(cid, ["true"])
    assert json.loads(serve.docker("inspect", cid).stdout)[0]["ExecIDs"] == [e["Id"]]
    # run -i (attached): StdinOnce, the EOF reaches the container
    assert serve.docker("run", "-i", "busybox", "sh", "-c", "cat; echo eof",
                        input="x\n").stdout == "x\neof\n"


def _docker_tty(serve: Any, *args: str, rows: int = 24, cols: int = 80) -> Any:
    """/usr/bin/docker ARGS on a pty of its own, its controlling terminal (SIGWINCH)."""
    from support.serving import DOCKER
    from support.terminal import Terminal

    return Terminal([DOCKER, *args], serve.env, rows=rows, cols=cols, ctty=True)


def _until_size(t: Any, want: bytes, timeout: float = 20) -> None:
    """Ask `stty size` until the shell's terminal is `want` (the CLI resizes through the API
    just after the start and on each SIGWINCH)."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        n += 1
        t.type(f"stty size; echo ={n}=\r")
        t.read_until(f"\n={n}=".encode(), timeout=10)  # the output's line, not the echo
        if want in t.out.rsplit(f"; echo ={n}=".encode(), 1)[-1]:
            return
        assert time.monotonic() < deadline, f"the terminal never became {want!r}: {t.out!r}"
        time.sleep(0.3)


def test_docker_exec_it_through_a_pty(serve):
    cid = serve.docker("run", "-d", "busybox", "sleep", "600").stdout.strip()
    t = _docker_tty(serve, "exec", "-it", cid, "sh", rows=31, cols=97)
    try:
        t.read_until(b"# ")
        t.type("echo $((6*7))\r")
        t.read_until(b"42")
        _until_size(t, b"31 97")
        t.type("exit 4\r")
        assert t.wait() == 4
    finally:
        t.close()


def test_docker_run_it_through_a_pty_resize_and_detach(serve):
    t = _docker_tty(serve, "run", "--name", "itc", "-it", "busybox", "sh", rows=28, cols=90)
    try:
        t.read_until(b"# ")
        t.type("tty; echo $((6*7))\r")
        assert b"/dev/pts/" in t.read_until(b"42")
        _until_size(t, b"28 90")
        from support.terminal import set_size

        set_size(t.master, 40, 120)
        _until_size(t, b"40 120")
        t.type("\x10\x11")  # ctrl-p ctrl-q: the CLI detaches with 0, the shell lives on
        assert t.wait() == 0
    finally:
        t.close()
    assert serve.rongqi.inspect("itc")["State"]["Status"] == "running"
    assert serve.docker("exec", "itc", "echo", "alive").stdout == "alive\n"


def test_docker_attach_and_detach_with_ctrl_p_ctrl_q(serve):
    cid = serve.docker("run", "-dit", "busybox", "sh").stdout.strip()
    t = _docker_tty(serve, "attach", cid)
    try:
        t.type("echo attached-$((1+1))\r")
        t.read_until(b"attached-2")
        t.type("\x10\x11")
        # docker 20.10's attach ends with its EscapeError: the message and 1 (run -it: 0).
        assert t.wait() == 1
        assert b"read escape sequence" in t.out
    finally:
        t.close()
    assert serve.rongqi.inspect(cid)["State"]["Status"] == "running"
    assert serve.docker("exec", cid, "echo", "alive").stdout == "alive\n"


def test_docker_py_models_logs_exec_run_and_wait(serve):
    client = serve.client()
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; "
                                                    "done; sleep 600"], detach=True)
    got = b""
    stream = c.logs(stream=True, follow=True)
    for chunk in stream:
        got += chunk
        if got.count(b"\n") == 3:
            break
    stream.close()
    assert got == b"1\n2\n3\n"
    assert c.exec_run(["sh", "-c", "echo o; echo e >&2; exit 3"], demux=True) == \
        (3, (b"o\n", b"e\n"))
    res = c.exec_run(["sh", "-c", "echo x; sleep 0.2; echo y"], stream=True)
    assert b"".join(res.output) == b"x\ny\n"
    c.kill()
    done = client.containers.run("busybox", ["sh", "-c", "echo bye"], detach=True)
    assert done.wait()["StatusCode"] == 0
    assert done.logs() == b"bye\n"
    assert list(done.logs(stream=True, follow=True)) == [b"bye\n"]


# -- helpers -----------------------------------------------------------------------------------
def _docker_on_pty(serve: Any, *args: str, rows: int = 24, cols: int = 80) -> tuple[int, int]:
    """/usr/bin/docker ARGS on a new pty (its controlling terminal): (pid, the master)."""
    from support.serving import DOCKER

    master, slave = os.openpty()
    _set_winsize(slave, rows, cols)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        try:
            os.setsid()
            import fcntl
            import termios

            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.execve(DOCKER, [DOCKER, *args], serve.env)
        finally:
            os._exit(127)
    os.close(slave)
    return pid, master


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _read_until_fd(fd: int, want: bytes, timeout: float = 30) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while want not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"no {want!r} in {buf!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    assert want in buf, f"no {want!r} in {buf!r}"
    return buf


def _drain_fd(fd: int, timeout: float = 30) -> bytes:
    """Until the other side of the pty is gone (EIO)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return buf
            if not chunk:
                return buf
            buf += chunk
    raise AssertionError(f"the pty stayed open: {buf!r}")


def _exit_status(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the docker CLI did not exit")
        time.sleep(0.05)


def _read_until(sock: socket.socket, want: bytes, timeout: float = 20) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while want not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"no {want!r} in {buf!r}"
        if select.select([sock], [], [], left)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    assert want in buf, f"no {want!r} in {buf!r}"
    return buf


def _read_frames_until(sock: socket.socket, want: bytes, timeout: float = 20) -> list:
    reader = proto.FrameReader()
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while want not in b"".join(p for _, p in got):
        left = deadline - time.monotonic()
        assert left > 0, f"no {want!r} in {got!r}"
        if select.select([sock], [], [], left)[0]:
            chunk = sock.recv(65536)
            assert chunk, f"EOF before {want!r}: {got!r}"
            got += reader.feed(chunk)
    return got


def _wait_for(fn: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v is not None:
            return v
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)

