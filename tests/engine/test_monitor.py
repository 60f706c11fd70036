"""The monitor on its own (engine/monitor.py): detached and attached containers, stdin, a pty,
exit records, the log it writes, and the runtime's errors as podman's exit codes."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from monitor_fakes import FakeContainer, FakeEngine
from support.plugin import new_id

pytestmark = pytest.mark.root


@pytest.fixture
def make(tmp_path: Path, runtime_root: str, bundle_factory):
    def factory(args: list[str], options: dict | None = None, *, terminal: bool = False,
                **config):
        bundle = bundle_factory(args, terminal=terminal)
        c = FakeContainer(tmp_path, new_id(), bundle, options or {}, **config)
        return FakeEngine(runtime_root, tmp_path), c
    return factory


def _finish(c, timeout: float = 20.0) -> dict:
    from rongqi.engine import monitor

    assert monitor.wait_gone(c.run_dir, timeout), "the monitor did not finish"
    rec = monitor.read_exit(c.run_dir)
    assert rec is not None
    return rec


def _records(path: str) -> list[tuple[str, str, str]]:
    out = []
    for line in Path(path).read_text().splitlines():
        ts, stream, tag, text = line.split(" ", 3)
        out.append((stream, tag, text))
    return out


def test_detached_container_runs_and_leaves_an_exit_record_and_its_log(make, runtime_root):
    from rongqi.engine import monitor

    engine, c = make(["sh", "-c", "echo out; echo err >&2; exit 3"])
    monitor.start_container(engine, c)
    assert c.state["status"] == "running" and c.state["pid"] > 0
    assert c.state["monitor_pid"] != os.getpid()
    rec = _finish(c)
    assert rec["exit_code"] == 3 and rec["oom_killed"] is False
    assert sorted(_records(c.log_path)) == [("stderr", "F", "err"), ("stdout", "F", "out")]
    assert os.listdir(runtime_root) == []  # the runtime's container is deleted
    assert not monitor.alive(c.run_dir)


def test_monitor_is_a_session_leader_outside_the_callers_process_group(make):
    from rongqi.engine import monitor

    engine, c = make(["sleep", "30"])
    monitor.start_container(engine, c)
    mpid = c.state["monitor_pid"]
    try:
        assert monitor.alive(c.run_dir)
        # Its own session (made by the first fork; the second keeps it from ever being a
        # session leader that could gain a terminal), and no controlling terminal.
        assert os.getsid(mpid) != os.getsid(0)
        with open(f"/proc/{mpid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[4] == "0"  # tty_nr
        with open(f"/proc/{c.state['pid']}/status") as f:
            ppid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
        assert ppid == mpid  # the monitor is the init's parent
        fds = os.listdir(f"/proc/{mpid}/fd")
        for fd in ("0", "1", "2"):
            assert os.readlink(f"/proc/{mpid}/fd/{fd}") == "/dev/null"
        assert len(fds) < 16
    finally:
        engine.runtime.kill(c.id, 9)
    rec = _finish(c)
    assert rec["exit_code"] == 137


def test_command_not_found_is_127_and_nothing_is_left(make, runtime_root):
    from rongqi.engine import monitor

    engine, c = make(["/no/such/thing"])
    with pytest.raises(monitor.CommandError) as e:
        monitor.start_container(engine, c)
    assert e.value.exit_code == 127
    assert "OCI runtime attempted to invoke a command that was not found" in str(e.value)
    assert os.listdir(runtime_root) == []
    assert not monitor.alive(c.run_dir)


def test_command_not_executable_is_126(make, runtime_root):
    from rongqi.engine import monitor

    engine, c = make(["/etc/passwd"])
    with pytest.raises(monitor.CommandError) as e:
        monitor.start_container(engine, c)
    assert e.value.exit_code == 126
    assert "permission denied" in str(e.value)
    assert os.listdir(runtime_root) == []


def _read_frames(sock: socket.socket, timeout: float = 20.0) -> list[tuple[int, bytes]]:
    from rongqi.engine.attach import FrameReader

    sock.settimeout(timeout)
    reader = FrameReader()
    frames = []
    while True:
        data = sock.recv(65536)
        if not data:
            return frames
        frames += reader.feed(data)


def test_attached_client_gets_all_output_and_the_exit_code(make):
    from rongqi.engine import attach, monitor

    engine, c = make(["sh", "-c", "echo one; echo two >&2; exit 7"])
    mine, theirs = socket.socketpair()
    monitor.start_container(engine, c, attach=theirs)
    frames = _read_frames(mine)
    mine.close()
    out = b"".join(d for s, d in frames if s == attach.STDOUT)
    err = b"".join(d for s, d in frames if s == attach.STDERR)
    assert (out, err) == (b"one\n", b"two\n")
    assert frames[-1] == (attach.EXIT, b"7")
    assert _finish(c)["exit_code"] == 7


def test_stdin_reaches_the_container_and_its_close_ends_it(make):
    from rongqi.engine import attach, monitor

    engine, c = make(["sh", "-c", "cat; echo done"], {"interactive": True})
    mine, theirs = socket.socketpair()
    monitor.start_container(engine, c, attach=theirs)
    mine.sendall(attach.frame(attach.STDIN, b"hello\n") + attach.frame(attach.STDIN, b""))
    frames = _read_frames(mine)
    mine.close()
    assert b"".join(d for s, d in frames if s == attach.STDOUT) == b"hello\ndone\n"
    assert frames[-1] == (attach.EXIT, b"0")
    _finish(c)


def test_tty_container_gets_a_pty_and_resize(make):
    from rongqi.engine import attach, monitor

    engine, c = make(["sh", "-c", "read x; stty size; tty"], {"tty": True, "interactive": True},
                     terminal=True)
    mine, theirs = socket.socketpair()
    monitor.start_container(engine, c, attach=theirs)
    mine.sendall(attach.frame(attach.RESIZE, b"33 101") + attach.frame(attach.STDIN, b"go\n"))
    frames = _read_frames(mine)
    mine.close()
    out = b"".join(d for s, d in frames if s == attach.STDOUT)
    assert b"33 101" in out and b"/dev/pts/" in out
    assert frames[-1] == (attach.EXIT, b"0")
    _finish(c)


def test_a_second_client_attaches_through_the_socket(make):
    from rongqi.engine import attach, monitor

    engine, c = make(["sh", "-c", "read x; echo got $x"], {"interactive": True})
    monitor.start_container(engine, c)
    s = attach.connect(c.run_dir)
    s.sendall(attach.frame(attach.STDIN, b"it\n"))
    frames = _read_frames(s)
    s.close()
    assert (attach.STDOUT, b"got it\n") in frames
    assert frames[-1] == (attach.EXIT, b"0")
    _finish(c)


def test_rm_removes_the_container_before_the_exit_frame(make, tmp_path):
    from rongqi.engine import attach, monitor

    engine, c = make(["true"], {"remove": True})
    mine, theirs = socket.socketpair()
    monitor.start_container(engine, c, attach=theirs)
    frames = _read_frames(mine)
    mine.close()
    assert frames[-1] == (attach.EXIT, b"0")
    assert (tmp_path / "removed").read_text() == c.id
    assert not os.path.exists(c.run_dir)
    _wait_pid_gone(c.state["monitor_pid"])


def _wait_pid_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.02)


def test_log_rotation_by_max_size(make):
    from rongqi.engine import monitor

    engine, c = make(["sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); "
                      "done"], {"log_opts": {"max-size": "2k", "max-file": "3"}})
    monitor.start_container(engine, c)
    _finish(c)
    sizes = [os.path.getsize(p) for p in (c.log_path, c.log_path + ".1", c.log_path + ".2")]
    assert all(s <= 2048 for s in sizes)
    assert not os.path.exists(c.log_path + ".3")
    last = _records(c.log_path)[-1]
    assert last == ("stdout", "F", "line199")


def test_on_failure_3_gives_exactly_three_restarts(make):
    from rongqi.engine import monitor

    engine, c = make(["sh", "-c", "echo run; exit 2"],
                     restart={"name": "on-failure", "max_retries": 3})
    c.save_state()
    monitor.start_container(engine, c)
    rec = _finish(c, 60)
    assert rec["exit_code"] == 2 and rec["restart_count"] == 3
    assert [r[2] for r in _records(c.log_path)] == ["run"] * 4
    c.sync()
    assert c.state["restart_count"] == 3


def test_always_stops_restarting_once_stop_is_requested(make):
    from rongqi.engine import monitor

    engine, c = make(["sleep", "30"], restart={"name": "always"})
    c.save_state()
    monitor.start_container(engine, c)
    engine.runtime.kill(c.id, 9)
    deadline = time.monotonic() + 20
    while True:
        c.sync()
        if c.state.get("restart_count") == 1:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with c.lock():
        c.sync()
        c.state["stop_requested"] = True
        c.save_state()
    engine.runtime.kill(c.id, 9)  # PID 1 ignores SIGTERM without a handler
    rec = _finish(c)
    assert rec["exit_code"] == 137 and rec["restart_count"] == 1


# -- through the CLI ------------------------------------------------------------------------------

from rq import rq  # noqa: E402,F401 - the fixture


def test_monitor_sigkilled_then_ps_logs_and_rm_are_right(rq):
    import signal as sig

    cid = rq("run", "-d", "--name", "mk", "busybox", "sh", "-c", "echo before; sleep 600",
             check=True).stdout.strip()
    rq.wait_for(lambda: "before" in rq("logs", "mk").stdout, what="the log")
    st = rq.state(cid)
    os.kill(st["monitor_pid"], sig.SIGKILL)
    rq.wait_for(lambda: not os.path.exists(f"/proc/{st['monitor_pid']}/stat")
                or open(f"/proc/{st['monitor_pid']}/stat").read().split()[2] == "Z",
                what="the monitor's death")
    st = rq.state(cid)
    assert st["status"] == "exited" and st["reason"] == "monitor died"
    assert not os.path.exists(f"/proc/{st['pid']}") or st["pid"] == 0
    assert rq("logs", "mk").stdout == "before\n"
    assert "Exited" in rq("ps", "-a").stdout
    assert rq("rm", "mk").returncode == 0
    assert rq.engine().list(all=True) == []


def test_cli_sigkilled_mid_run_leaves_a_container_that_finishes_right(rq):
    import signal as sig
    import subprocess

    p = rq.popen("run", "--name", "ck", "busybox", "sh", "-c",
                 "echo started; sleep 1; echo finished; exit 3",
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"started\n"
    p.send_signal(sig.SIGKILL)
    p.wait()
    st = rq.wait_for(lambda: (s := rq.state("ck"))["status"] == "exited" and s, 20,
                     "the container's exit")
    assert st["exit_code"] == 3 and not st.get("reason")
    assert rq("logs", "ck").stdout == "started\nfinished\n"


def test_cli_on_failure_3_restarts_exactly_three_times(rq):
    rq("run", "-d", "--name", "of", "--restart", "on-failure:3", "busybox", "sh", "-c",
       "echo try; exit 1", check=True)
    st = rq.wait_for(lambda: (s := rq.state("of"))["status"] == "exited" and s, 60,
                     "the last exit")
    assert st["restart_count"] == 3 and st["exit_code"] == 1
    assert rq("logs", "of").stdout == "try\n" * 4


def test_unless_stopped_honours_stop(rq):
    cid = rq("run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sh", "-c",
             "trap 'exit 0' TERM; sleep 0.5; exit 1", check=True).stdout.strip()
    rq.wait_for(lambda: rq.state(cid)["restart_count"] >= 1, 30, "a restart")
    rq("stop", "-t", "1", "us", check=True)
    st = rq.state(cid)
    assert st["status"] == "exited"
    count = st["restart_count"]
    time.sleep(2)
    st = rq.state(cid)
    assert st["status"] == "exited" and st["restart_count"] == count


def test_health_check_goes_healthy_then_unhealthy(rq):
    cid = rq("run", "-d", "--name", "hc", "--health-cmd", "test ! -e /tmp/bad",
             "--health-interval", "1s", "--health-retries", "2", "busybox", "sleep", "600",
             check=True).stdout.strip()
    assert rq.state(cid)["health"]["status"] == "starting"
    rq.wait_for(lambda: (rq.state(cid)["health"] or {}).get("status") == "healthy", 20,
                "healthy")
    assert "(healthy)" in rq("ps").stdout
    assert rq("inspect", "-f", "{{.State.Health.Status}}", "hc").stdout.strip() == "healthy"
    assert rq("healthcheck", "run", "hc").returncode == 0
    rq("exec", "hc", "touch", "/tmp/bad", check=True)
    r = rq("healthcheck", "run", "hc")
    assert (r.returncode, r.stdout) == (1, "unhealthy\n")
    rq.wait_for(lambda: rq.state(cid)["health"]["status"] == "unhealthy", 20, "unhealthy")
    h = rq.state(cid)["health"]
    assert h["failing_streak"] >= 2 and len(h["log"]) <= 5 and h["log"][-1]["exit_code"] == 1
    assert "(unhealthy)" in rq("ps").stdout
    assert rq("inspect", "-f", "{{.State.Health.Status}}", "hc").stdout.strip() == "unhealthy"


def test_healthcheck_run_without_a_check_is_one_error(rq):
    rq("run", "-d", "--name", "nohc", "busybox", "sleep", "600", check=True)
    r = rq("healthcheck", "run", "nohc")
    assert r.returncode == 125 and r.stderr.startswith("Error: ")
    assert "has no defined healthcheck" in r.stderr


def test_init_is_pid_1_and_reaps(rq):
    r = rq("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert r.returncode == 0, r.stderr
    assert "init" in r.stdout.split()[0] or "catatonit" in r.stdout or "tini" in r.stdout
    r = rq("run", "--rm", "--init", "busybox", "sh", "-c", "exit 5")
    assert r.returncode == 5


def _pss(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))


def test_the_slim_monitor_keeps_logs_attach_restart_and_the_exit_record(rq, monkeypatch):
    """After SLIM_AFTER the monitor re-execs into a bare interpreter holding only its loop;
    everything it owns goes on: the log, attach, a restart, the exit record, and its lock."""
    from rongqi.engine import attach, monitor

    rq.env["RONGQI_MONITOR_SLIM_AFTER"] = "0.2"
    cid = rq("run", "-d", "-i", "--name", "sl", "--restart", "on-failure:1", "busybox", "sh",
             "-c", "read x; echo got $x; exit 1", check=True).stdout.strip()
    st = rq.state(cid)
    mpid = st["monitor_pid"]
    rq.wait_for(lambda: b"-S" in open(f"/proc/{mpid}/cmdline", "rb").read().split(b"\0"),
                what="the re-exec")
    assert monitor.alive(os.path.join(rq.runroot, cid))
    rq.wait_for(lambda: _pss(mpid) < 12_000, what="a slim monitor")  # the fork: ~16 MB
    s = attach.connect(os.path.join(rq.runroot, cid))
    s.sendall(attach.frame(attach.STDIN, b"one\n"))
    rq.wait_for(lambda: rq.state(cid)["restart_count"] == 1, what="the restart")
    s.close()
    rq.wait_for(lambda: _pss(mpid) < 12_000, what="the re-exec after the restart")
    s = attach.connect(os.path.join(rq.runroot, cid))
    s.sendall(attach.frame(attach.STDIN, b"two\n"))
    s.settimeout(20)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert data.endswith(attach.frame(attach.EXIT, b"1"))
    st = rq.wait_for(lambda: (x := rq.state(cid))["status"] == "exited" and x, what="the exit")
    assert st["exit_code"] == 1 and st["restart_count"] == 1 and not st["reason"]
    assert rq("logs", "sl").stdout == "got one\ngot two\n"
