"""The system endpoints (/info, /events, /system/df) with real clients, and the engine's
threaded mode (the service's): monitors started from many threads at once, never forked from
the threaded process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rongqi.engine import Engine
from rongqi.engine.options import ContainerOptions
from rongqi.errors import RongqiError


@pytest.fixture
def threaded_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory of Engines over one root (one per thread, as the service makes them)."""
    base = tmp_path / "engine"
    monkeypatch.setenv("RONGQI_RUNTIME_ROOT", str(base / "runtime"))
    for var in ("RONGQI_ROOT", "RONGQI_RUNROOT", "RONGQI_RUNTIME"):
        monkeypatch.delenv(var, raising=False)

    def make() -> Engine:
        return Engine(str(base / "root"), str(base / "run"), threaded=True)

    yield make
    from support.leaks import ENGINE_IDS, engine_ids
    e = make()
    ENGINE_IDS.update(engine_ids(e.root))
    for c in e.list(all=True):
        try:
            e.remove(c.id, force=True, timeout=0)
        except RongqiError:
            pass


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


@pytest.mark.parametrize("forker", [True, False], ids=["forker", "interpreter"])
def test_ten_containers_started_at_once_from_threads_all_run(threaded_engine: Any,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             forker: bool) -> None:
    from rongqi.engine import monitor
    # the monitors keep the image they were started as (no re-exec), so it shows who made them
    monkeypatch.setenv("RONGQI_MONITOR_SLIM_AFTER", "600")
    if forker:
        assert monitor.start_forker() is not None
    try:
        _ten_at_once(threaded_engine, monkeypatch, "forker_main" if forker else "spawned()")
    finally:
        monitor.stop_forker()


def _ten_at_once(threaded_engine: Any, monkeypatch: pytest.MonkeyPatch, maker: str) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(threading.get_ident())
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    first = threaded_engine()
    # the image once (as `docker pull` would), then ten create+start at the same moment
    first.create(ContainerOptions(image="busybox", command=["true"], network="none"))
    barrier = threading.Barrier(10)
    started: list[Any] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            e = threaded_engine()
            barrier.wait(30)
            c = e.create(ContainerOptions(image="busybox", command=["sleep", "60"],
                                          name=f"t{i}", network="none"))
            started.append(e.start(c.id))
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    assert len(started) == 10
    e = threaded_engine()
    running = {c.name for c in e.list()}
    assert running == {f"t{i}" for i in range(10)}
    # the monitors are fresh interpreters: nothing forked this (threaded) process
    assert forks == []
    for c in started:
        assert maker in _cmdline(c.state["monitor_pid"])


def test_a_spawned_monitor_reports_the_runtimes_error(threaded_engine: Any) -> None:
    e = threaded_engine()
    c = e.create(ContainerOptions(image="busybox", command=["/no/such/cmd"], network="none"))
    with pytest.raises(RongqiError) as info:
        e.start(c.id)
    assert getattr(info.value, "exit_code", None) == 127
    assert "/no/such/cmd" in str(info.value)


# -- /info -------------------------------------------------------------------------------------
def test_docker_info_reads_the_engine(serve: Any) -> None:
    serve.rongqi("create", "--network", "none", "--name", "idle", "busybox", "true")
    out = serve.docker("info").stdout
    assert " Containers: 1\n" in out and "  Stopped: 1\n" in out
    assert " Images: 1\n" in out
    assert f" Docker Root Dir: {serve.root}\n" in out
    assert " Swarm: inactive\n" in out and " Default Runtime: rongqi\n" in out
    fmt = serve.docker("info", "--format", "{{.OSType}} {{.ServerVersion}} {{.NCPU}}").stdout
    assert fmt.split() == ["linux", "0.1.0", str(len(os.sched_getaffinity(0)))]
    info = serve.client().info()
    assert info["Containers"] == 1 and info["ContainersStopped"] == 1
    assert info["ID"] and info["ID"] == serve.client().info()["ID"]  # kept in the root
    assert info["Swarm"]["LocalNodeState"] == "inactive"


# -- /events -----------------------------------------------------------------------------------
def test_docker_events_since_until_and_filters(serve: Any) -> None:
    import time
    t0 = time.time()
    serve.rongqi("volume", "create", "vol1")
    cid = serve.rongqi("create", "--network", "none", "--name", "ev", "busybox",
                       "true").stdout.strip()
    serve.rongqi("start", "-a", "ev")
    serve.rongqi("rm", "ev")
    t1 = time.time() + 0.5
    since, until = f"{t0 - 0.5:.3f}", f"{t1:.3f}"
    lines = serve.docker("events", "--since", since, "--until", until).stdout.splitlines()
    actions = [line.split()[2] for line in lines if " container " in line]
    assert actions == ["create", "start", "die", "destroy"], lines
    assert any(" volume create vol1 " in line for line in lines)
    only = serve.docker("events", "--since", since, "--until", until, "--filter",
                        "event=die", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} "
                        "{{.Actor.Attributes.exitCode}} {{.Actor.Attributes.name}}").stdout
    assert only.split() == ["container", "die", cid, "0", "ev"]
    vols = serve.docker("events", "--since", since, "--until", until, "--filter",
                        "type=volume", "--format", "{{.Action}} {{.Actor.ID}}").stdout
    assert vols.strip() == "create vol1"
    # docker-py's events(): the same messages, decoded
    c = serve.client()
    evs = list(c.events(since=t0 - 0.5, until=t1, decode=True,
                        filters={"container": "ev"}))
    assert [e["status"] for e in evs] == ["create", "start", "die", "destroy"]
    assert evs[0]["id"] == cid and evs[0]["from"] == "docker.io/library/busybox:latest"
    assert evs[0]["Actor"]["Attributes"]["name"] == "ev"


def test_events_stream_follows_new_events(serve: Any) -> None:
    c = serve.client()
    stream = c.events(decode=True, filters={"type": "volume"})
    got: list[dict[str, Any]] = []

    def read() -> None:
        for e in stream:
            got.append(e)
            break

    t = threading.Thread(target=read, daemon=True)
    t.start()
    import time
    time.sleep(0.5)  # the stream is open before the event happens
    serve.rongqi("volume", "create", "later")
    t.join(30)
    stream.close()
    assert got and got[0]["Action"] == "create" and got[0]["Actor"]["ID"] == "later"


def test_bad_event_filters_and_times_are_400(serve: Any) -> None:
    r = serve.http.get("/events", params={"filters": '{"colour": ["red"]}', "until": "1"})
    assert r.status_code == 400 and r.json()["message"] == "invalid filter 'colour'"
    r = serve.http.get("/events", params={"since": "yesterday-ish"})
    assert r.status_code == 400 and "yesterday-ish" in r.json()["message"]
    # a filter nothing can match (rongqi has no daemon events): an empty answer, not an error
    r = serve.http.get("/events", params={"filters": '{"daemon": ["x"]}', "since": "0",
                                          "until": "1"})
    assert r.status_code == 200 and r.text == ""


def test_a_hanging_events_stream_does_not_block_ping(serve: Any) -> None:
    import socket
    import time
    socks = []
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.connect(serve.socket)
        s.sendall(b"GET /v1.41/events HTTP/1.1\r\nHost: d\r\n\r\n")
        socks.append(s)
    t0 = time.monotonic()
    for _ in range(10):
        assert serve.client().ping()
    assert time.monotonic() - t0 < 10
    deadline = time.monotonic() + 10
    while serve.client().info()["NEventsListener"] < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert serve.client().info()["NEventsListener"] == 3
    for s in socks:
        s.close()
    deadline = time.monotonic() + 10
    while serve.client().info()["NEventsListener"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert serve.client().info()["NEventsListener"] == 0  # the streams noticed and ended


def test_die_event_from_a_monitor_that_slimmed(serve: Any) -> None:
    import time
    t0 = time.time()
    # past the monitor's SLIM_AFTER (1 s): its exit runs in the re-exec'd, slim monitor
    cid = serve.rongqi("run", "-d", "--network", "none", "busybox", "sleep",
                       "2").stdout.strip()
    assert serve.rongqi("wait", cid).stdout.strip() == "0"
    out = serve.docker("events", "--since", f"{t0 - 0.5:.3f}",
                       "--until", f"{time.time() + 1:.3f}",  # the event follows the exit
                       "--filter", "event=die", "--format", "{{.Actor.ID}}").stdout
    assert out.split() == [cid]


# -- /system/df --------------------------------------------------------------------------------
def test_docker_system_df_counts_images_containers_and_volumes(serve: Any) -> None:
    serve.rongqi("volume", "create", "data")
    cid = serve.rongqi("create", "--network", "none", "-v", "data:/data", "--name", "w",
                       "busybox", "sh", "-c", "head -c 100000 /dev/zero > /data/f; "
                       "head -c 50000 /dev/zero > /f").stdout.strip()
    serve.rongqi("start", "-a", "w")
    df = serve.client().df()
    assert df["LayersSize"] > 0 and df["BuildCache"] == []
    [img] = df["Images"]
    assert img["RepoTags"] == ["busybox:latest"] and img["Containers"] == 1
    assert img["Size"] > 0
    [ctr] = df["Containers"]
    assert ctr["Id"] == cid and ctr["Names"] == ["/w"]
    assert ctr["SizeRw"] >= 50000 and ctr["SizeRootFs"] >= ctr["SizeRw"] + img["Size"] // 2
    [vol] = df["Volumes"]
    assert vol["Name"] == "data" and vol["UsageData"] == {"Size": 100000, "RefCount": 1}
    out = serve.docker("system", "df").stdout.splitlines()
    assert out[0].split()[:3] == ["TYPE", "TOTAL", "ACTIVE"]
    rows = {line.split()[0]: line.split()[1:3] for line in out[1:]}
    assert rows["Images"] == ["1", "1"] and rows["Containers"] == ["1", "0"]
    assert rows["Local"] == ["Volumes", "1"]  # "Local Volumes 1 1 ..."
    verbose = serve.docker("system", "df", "-v").stdout
    assert "data" in verbose and cid[:12] in verbose


def test_ten_docker_run_d_at_once_through_docker_py_all_start(serve: Any) -> None:
    c = serve.client()
    serve.rongqi("image", "inspect", "busybox")  # the built-in, made here: no registry asked
    barrier = threading.Barrier(10)
    ids: list[str] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            mine = serve.client()
            barrier.wait(30)
            ids.append(mine.containers.run("busybox", ["sleep", "60"], detach=True,
                                           name=f"d{i}", network_mode="none").id)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    running = {x.name: x.status for x in c.containers.list()}
    assert running == {f"d{i}": "running" for i in range(10)}
    assert serve.proc.poll() is None and "Traceback" not in serve.log()
