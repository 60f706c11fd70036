"""`rongqi exec`: -i, -t through a real pty, -d, -e/--env-file, -u, -w, --privileged, exit
codes (the process's, 126/127 as podman's), and exec in a stopped container (one Error line)."""

from __future__ import annotations

import os
import time

import pytest

from rq import rq  # noqa: F401 - the fixture
from test_run import _pty_run, _read_until

pytestmark = pytest.mark.root


@pytest.fixture
def box(rq):
    rq("run", "-d", "--name", "box", "busybox", "sleep", "600", check=True)
    return rq


def test_exec_output_and_exit_code(box):
    r = box("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")


def test_exec_stdin_only_with_i(box):
    assert box("exec", "-i", "box", "cat", input="piped\n").stdout == "piped\n"
    assert box("exec", "box", "cat", input="piped\n").stdout == ""


def test_exec_env_workdir_user(box, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# a comment\nFROM_FILE=1\nBOTH=file\n")
    r = box("exec", "--env-file", str(envf), "-e", "BOTH=flag", "-w", "/tmp", "-u", "nobody",
            "box", "sh", "-c", "echo $FROM_FILE $BOTH $(pwd) $(id -u):$(id -g)")
    assert r.stdout == "1 flag /tmp 65534:65534\n"


def test_exec_privileged_has_more_capabilities(box):
    def capeff(*flags: str) -> int:
        out = box("exec", *flags, "box", "grep", "CapEff", "/proc/self/status", check=True)
        return int(out.stdout.split()[1], 16)

    plain, priv = capeff(), capeff("--privileged")
    assert priv & ~plain and bin(priv).count("1") > bin(plain).count("1")


def test_exec_not_found_127_and_not_executable_126(box):
    r = box("exec", "box", "nosuchcmd")
    assert r.returncode == 127 and r.stderr.startswith("Error: ")
    assert len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr
    r = box("exec", "box", "/etc/passwd")
    assert r.returncode == 126 and "permission denied" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_exec_detached_prints_an_id_and_runs(box):
    r = box("exec", "-d", "box", "sh", "-c", "echo done > /tmp/detached", check=True)
    assert len(r.stdout.strip()) == 64
    box.wait_for(lambda: box("exec", "box", "cat", "/tmp/detached").stdout == "done\n",
                 what="the detached exec")


def test_exec_in_a_stopped_container_is_one_error(rq):
    rq("run", "--name", "stopped", "busybox", "true")
    r = rq("exec", "stopped", "true")
    assert r.returncode == 125
    assert r.stderr.strip() == ("Error: can only create exec sessions on running containers: "
                                "container state improper")
    r = rq("exec", "nosuchcontainer", "true")
    assert r.returncode == 125 and "no such container" in r.stderr


def test_exec_it_through_a_pty(box):
    p, master = _pty_run(box, "exec", "-it", "box", "sh", rows=25, cols=77)
    try:
        _read_until(master, b"# ")
        os.write(master, b"tty; stty size; exit 4\r")
        out = _read_until(master, b"25 77")
        assert b"/dev/pts/" in out
        assert p.wait(timeout=20) == 4
    finally:
        os.close(master)


def test_exec_detach_keys(box):
    p, master = _pty_run(box, "exec", "-it", "--detach-keys", "ctrl-a", "box", "sh", "-c",
                         "echo started; sleep 5; echo late > /tmp/late")
    try:
        _read_until(master, b"started")
        os.write(master, b"\x01")
        assert p.wait(timeout=10) == 0
    finally:
        os.close(master)
    time.sleep(0.2)
    assert box.state("box")["status"] == "running"
