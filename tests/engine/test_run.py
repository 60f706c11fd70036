"""`rongqi run` (attached, detached, -i, -t through a real pty, --rm, -a, detach keys,
--sig-proxy), `attach` and `start -a`: the CLI's side of the monitor's attach protocol."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import termios
import time

import pytest

from support.terminal import read_until

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


def test_attached_run_streams_stdout_and_stderr_and_exits_with_the_code(rq):
    r = rq("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert rq.engine().list(all=True) == []  # --rm waited for the removal


def test_run_without_rm_leaves_an_exited_container_with_its_code(rq):
    r = rq("run", "--name", "keep", "busybox", "sh", "-c", "exit 4")
    assert r.returncode == 4
    st = rq.state("keep")
    assert st["status"] == "exited" and st["exit_code"] == 4


def test_detached_run_prints_the_id_and_outlives_the_cli(rq):
    r = rq("run", "-d", "busybox", "sleep", "30", check=True)
    cid = r.stdout.strip()
    assert len(cid) == 64 and r.stderr == ""
    st = rq.state(cid)
    assert st["status"] == "running"
    os.kill(st["pid"], 0)  # the CLI is gone, the container runs
    mpid = st["monitor_pid"]
    with open(f"/proc/{mpid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert fields[4] == "0"  # no controlling terminal
    assert os.getsid(mpid) != os.getsid(0)


def test_stdin_with_i(rq):
    r = rq("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo end", input="a\nb\n")
    assert (r.returncode, r.stdout) == (0, "a\nb\nend\n")


def test_without_i_stdin_is_empty(rq):
    r = rq("run", "--rm", "busybox", "sh", "-c", "cat; echo end", input="ignored\n")
    assert r.stdout == "end\n"


def test_attach_flag_selects_streams(rq):
    r = rq("run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("", "err\n")
    bad = rq("run", "--rm", "-a", "stdsomething", "busybox", "true")
    assert bad.returncode == 125 and bad.stderr.startswith("Error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_command_not_found_is_127_and_run_rm_leaves_nothing(rq):
    r = rq("run", "--rm", "--name", "nf", "busybox", "nosuchcommand")
    assert r.returncode == 127
    assert r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "executable file not found in $PATH" in r.stderr
    assert rq.engine().list(all=True) == []
    assert not os.listdir(os.path.join(rq.root, "names")) if os.path.isdir(
        os.path.join(rq.root, "names")) else True
    # without --rm podman 4.3.1 keeps the container that could not start, as created
    # (its 030-run "failed --rm" lists it in ps -a); rm removes it
    assert rq("run", "--name", "nf", "busybox", "nosuchcommand").returncode == 127
    assert [c.status for c in rq.engine().list(all=True)] == ["created"]
    assert rq("rm", "nf").returncode == 0 and rq.engine().list(all=True) == []


def test_command_not_executable_is_126(rq):
    r = rq("run", "--rm", "busybox", "/etc/passwd")
    assert r.returncode == 126 and "permission denied" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    d = rq("run", "-d", "busybox", "/etc")
    assert d.returncode == 126 and d.stdout == ""
    # podman keeps the container that could not start (created) unless --rm
    assert [c.status for c in rq.engine().list(all=True)] == ["created"]
    assert rq("run", "--rm", "-d", "busybox", "/etc").returncode == 126
    assert len(rq.engine().list(all=True)) == 1


def test_sig_proxy_forwards_sigterm_to_the_container(rq):
    p = rq.popen("run", "--rm", "busybox", "sh", "-c",
                 "trap 'echo got TERM; exit 9' TERM; echo ready; while true; do sleep 0.1; done",
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert p.returncode == 9 and out == "got TERM\n"


def _pty_run(rq, *args: str, rows: int = 24, cols: int = 80):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def ctty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = rq.popen(*args, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty)
    os.close(slave)
    return p, master


def _read_until(master: int, want: bytes, timeout: float = 20.0) -> bytes:
    buf = read_until(master, want, timeout)
    assert want in buf, f"no {want!r} in {buf!r}"
    return buf


def test_it_through_a_real_pty_raw_mode_and_resize(rq):
    p, master = _pty_run(rq, "run", "--rm", "-it", "busybox", "sh", rows=30, cols=99)
    try:
        _read_until(master, b"# ")
        os.write(master, b"tty; stty size; echo $((6*7))\r")
        out = _read_until(master, b"42")
        assert b"/dev/pts/" in out and b"30 99" in out
        # The window follows the terminal (SIGWINCH on the CLI).
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        time.sleep(0.3)
        os.write(master, b"stty size\r")
        _read_until(master, b"40 120")
        os.write(master, b"exit 6\r")
        assert p.wait(timeout=20) == 6
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()


def test_detach_keys_leave_it_running_and_attach_comes_back(rq):
    p, master = _pty_run(rq, "run", "--name", "dk", "-it", "busybox", "sh")
    try:
        _read_until(master, b"# ")
        os.write(master, b"\x10\x11")  # ctrl-p ctrl-q
        assert p.wait(timeout=20) == 0
    finally:
        os.close(master)
    assert rq.state("dk")["status"] == "running"
    p, master = _pty_run(rq, "attach", "--detach-keys", "ctrl-x", "dk")
    try:
        time.sleep(0.3)
        os.write(master, b"echo back $((40+2))\r")
        _read_until(master, b"back 42")
        os.write(master, b"\x18")  # ctrl-x
        assert p.wait(timeout=20) == 0
        p2, m2 = _pty_run(rq, "attach", "dk")
        try:
            time.sleep(0.3)
            os.write(m2, b"exit 3\r")
            assert p2.wait(timeout=20) == 3
        finally:
            os.close(m2)
    finally:
        os.close(master)


def test_attach_to_a_stopped_container_is_one_error(rq):
    rq("run", "--name", "gone", "busybox", "true")
    r = rq("attach", "gone")
    assert r.returncode == 125
    assert r.stderr.strip() == ("Error: you can only attach to running containers: "
                                "container state improper")


def test_attach_no_stdin_sees_output_and_exit_code(rq):
    cid = rq("run", "-d", "-i", "busybox", "sh", "-c",
             "read x; i=0; while [ $i -lt 30 ]; do echo n$i; i=$((i+1)); sleep 0.1; done; exit 2",
             check=True).stdout.strip()
    p = rq.popen("attach", "--no-stdin", cid, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                 text=True)
    time.sleep(0.5)
    from rongqi.engine import attach

    s = attach.connect(os.path.join(rq.runroot, cid))  # a second client gives the input
    s.sendall(attach.frame(attach.STDIN, b"go\n"))
    out, _ = p.communicate(timeout=30)
    s.close()
    assert p.returncode == 2 and "n29\n" in out


def test_start_attach_runs_a_created_container_in_the_foreground(rq):
    rq("create", "--name", "sa", "busybox", "sh", "-c", "echo from start; exit 5", check=True)
    r = rq("start", "-a", "sa")
    assert (r.returncode, r.stdout) == (5, "from start\n")
    rq("create", "--name", "si", "-i", "busybox", "sh", "-c", "read x; echo got $x", check=True)
    r = rq("start", "-a", "-i", "si", input="it\n")
    assert (r.returncode, r.stdout) == (0, "got it\n")


def test_a_create_that_fails_leaves_no_preforked_monitor(rq):
    """run forks the monitor-to-be before create (engine/monitor.py Preforked); a create that
    fails (an unknown image) must leave no process (the leak check) and one Error line."""
    r = rq("run", "--rm", "--pull", "never", "nosuchimage", "true")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    r = rq("run", "--rm", "--memory", "lots", "busybox", "true")
    assert r.returncode == 125 and r.stderr.startswith("Error: ")


def test_run_pulls_a_missing_image_from_a_loopback_registry(rq, tmp_path):
    """The pull policy's `missing` against a real registry (Debian's docker-registry on
    127.0.0.1): busybox pushed there, removed here, then run by its registry name."""
    from support.registry import start_registry, stop

    reg = start_registry(tmp_path / "registry")
    try:
        assert rq("run", "--rm", "busybox", "true").returncode == 0  # the built-in image
        name = f"{reg.host}/team/bb:1"
        r = rq("push", "busybox", name)
        assert r.returncode == 0, r.stderr
        assert rq("rmi", "busybox").returncode == 0
        r = rq("run", "--rm", name, "sh", "-c", "echo pulled; cat /etc/hostname | wc -c")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "pulled"
        images = rq("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        assert images == [name]
        # --pull always asks again (the same digest: nothing new is stored); never does not
        # ask at all (test_lifecycle has the unreachable registry's one Error line).
        assert rq("run", "--rm", "--pull", "always", name, "true").returncode == 0
        # --pull newer: the same digest there, nothing pulled; a changed image pushed under
        # the name (the local one stays the old), and newer brings it.
        assert rq("run", "--rm", "--pull", "newer", name, "test", "!", "-e", "/v").returncode == 0
        assert rq("run", "--name", "chg", name, "sh", "-c", "echo 2 > /v").returncode == 0
        assert rq("commit", "chg", "localhost/changed:1").returncode == 0
        assert rq("push", "localhost/changed:1", name).returncode == 0
        assert rq("rm", "chg").returncode == 0
        assert rq("run", "--rm", "--pull", "missing", name, "cat", "/v").returncode == 1
        r = rq("run", "--rm", "--pull", "newer", name, "cat", "/v")
        assert (r.returncode, r.stdout) == (0, "2\n"), r.stderr
        stop(reg.proc)
        assert rq("run", "--rm", "--pull", "never", name, "true").returncode == 0
    finally:
        stop(reg.proc)
    assert rq.engine().list(all=True) == []
