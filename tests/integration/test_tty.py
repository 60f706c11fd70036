"""Foreground terminals, signal forwarding and fd passing of rongqi-oci run/exec, through real ptys.

The test holds the master of a pty whose slave is rongqi-oci's stdio, as a terminal
emulator would: what we write there is what a user types.
"""

from __future__ import annotations

import os
import signal
import subprocess
import termios
import time

import pytest

from support.terminal import Terminal, set_size

pytestmark = pytest.mark.root


@pytest.fixture
def terminal():
    made: list[Terminal] = []

    def start(argv, **kw) -> Terminal:
        t = Terminal(argv, keep_slave=True, **kw)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


def run_detached(binary: str, root: str, bundle: str, cid: str) -> None:
    import tempfile

    # The container inherits our stdio: a pipe would stay open as long as it runs.
    with tempfile.TemporaryFile() as err:
        r = subprocess.run([binary, "--root", root, "run", "-d", "-b", bundle, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        err.seek(0)
        assert r.returncode == 0, err.read().decode()


def wait_running(binary: str, root: str, cid: str, timeout: float = 15) -> None:
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run([binary, "--root", root, "state", cid], capture_output=True, text=True)
        if r.returncode == 0 and json.loads(r.stdout)["status"] == "running":
            return
        time.sleep(0.05)
    pytest.fail(f"{cid} never became running")


def test_foreground_run_gives_an_interactive_shell_on_our_terminal(oci_binary, runtime_root, bundle_factory,
                                                                  unique_id, terminal):
    bundle = bundle_factory(["sh"], terminal=True)
    t = terminal([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id])
    t.read_until(b"# ")
    t.type("echo pid=$$; tty; exit 4\r")
    assert t.wait() == 4
    text = t.out.decode(errors="replace")
    assert "pid=1\r\n" in text
    assert "/dev/pts/0\r\n" in text
    assert not os.path.exists(os.path.join(runtime_root, unique_id)), "run without --keep deletes the container"


def test_our_terminal_is_raw_while_the_container_runs_and_restored_after(oci_binary, runtime_root,
                                                                        bundle_factory, unique_id, terminal):
    bundle = bundle_factory(["sh"], terminal=True)
    t = terminal([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id])
    t.read_until(b"# ")
    during = termios.tcgetattr(t.slave)
    assert not during[3] & (termios.ICANON | termios.ECHO | termios.ISIG), "stdin must be in raw mode"
    # ^C reaches the container's own terminal (which interrupts the line), not rongqi-oci.
    t.type("sleep 30\r")
    time.sleep(0.3)
    t.type("\x03")
    t.type("echo after-intr\r")
    t.read_until(b"after-intr\r\n")
    t.type("exit 0\r")
    assert t.wait() == 0
    assert termios.tcgetattr(t.slave) == t.before


def test_window_size_is_ours_at_start_and_follows_sigwinch(oci_binary, runtime_root, bundle_factory, unique_id,
                                                           terminal):
    bundle = bundle_factory(["sh"], terminal=True)
    t = terminal([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id], rows=33, cols=101)
    t.read_until(b"# ")
    t.type("stty size\r")
    t.read_until(b"33 101\r\n")
    set_size(t.master, 50, 132)
    t.proc.send_signal(signal.SIGWINCH)  # the kernel's job when rongqi-oci owns the terminal
    time.sleep(0.3)
    t.type("stty size; exit\r")
    t.read_until(b"50 132\r\n")
    assert t.wait() == 0


def test_signals_sent_to_foreground_run_reach_the_containers_process(oci_binary, runtime_root, bundle_factory,
                                                                    unique_id, terminal):
    script = 'trap "echo got-term; exit 9" TERM; echo ready; while :; do sleep 0.1; done'
    bundle = bundle_factory(["sh", "-c", script], terminal=True)
    t = terminal([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id])
    t.read_until(b"ready")
    t.proc.send_signal(signal.SIGTERM)
    assert t.wait() == 9
    assert b"got-term" in t.out


def test_foreground_run_without_a_terminal_forwards_signals(oci_binary, runtime_root, bundle_factory, unique_id):
    script = 'trap "echo got-hup; exit 5" HUP; echo ready; while :; do sleep 0.1; done'
    bundle = bundle_factory(["sh", "-c", script])
    p = subprocess.Popen([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 5, err
        assert out == b"got-hup\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_terminal_container_reads_piped_stdin_when_ours_is_no_tty(oci_binary, runtime_root, bundle_factory,
                                                                  unique_id):
    bundle = bundle_factory(["sh", "-c", "read line; echo got:$line; exit 6"], terminal=True)
    r = subprocess.run([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id],
                       input=b"hello\n", capture_output=True, timeout=30)
    assert r.returncode == 6, r.stderr
    # The pty echoes the input; its ONLCR is off (runc clears it on the pty it relays), so
    # what reaches a pipe is "\n", byte for byte what runc prints.
    assert b"got:hello\n" in r.stdout and b"\r" not in r.stdout


def test_exec_t_without_console_socket_runs_a_shell_on_our_terminal(oci_binary, runtime_root, bundle_factory,
                                                                   unique_id, terminal):
    bundle = bundle_factory(["sleep", "100"])
    run_detached(oci_binary, runtime_root, bundle, unique_id)
    wait_running(oci_binary, runtime_root, unique_id)
    t = terminal([oci_binary, "--root", runtime_root, "exec", "-t", unique_id, "sh"], rows=40, cols=90)
    t.read_until(b"# ")
    t.type("tty; stty size; ps -o pid,args | grep -c 'sleep 100'; exit 3\r")
    assert t.wait() == 3
    text = t.out.decode(errors="replace")
    assert "/dev/pts/" in text and "40 90\r\n" in text
    assert termios.tcgetattr(t.slave) == t.before


def test_exec_t_detached_without_console_socket_is_a_clear_error(oci_binary, runtime_root, bundle_factory,
                                                                 unique_id):
    bundle = bundle_factory(["sleep", "100"])
    run_detached(oci_binary, runtime_root, bundle, unique_id)
    r = subprocess.run([oci_binary, "--root", runtime_root, "exec", "-t", "-d", unique_id, "true"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "console-socket" in r.stderr


def _sh_with_fds(argv: list[str], fds: dict[int, str], env: str = "") -> list[str]:
    # A shell places the fds at their exact numbers and then becomes rongqi-oci (same pid,
    # which LISTEN_PID must name).
    redirs = " ".join(f"{n}<{path}" for n, path in fds.items())
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)
    return ["sh", "-c", f"exec {redirs}; {env} exec {quoted}"]


def test_preserve_fds_passes_exactly_that_many_fds_from_3(oci_binary, runtime_root, bundle_factory, unique_id,
                                                          tmp_path):
    files = {}
    for n in (3, 4, 5):
        (tmp_path / f"fd{n}").write_text(f"content-{n}\n")
        files[n] = str(tmp_path / f"fd{n}")
    script = "cat <&3; cat <&4; (cat <&5) 2>/dev/null || echo no-fd-5"
    bundle = bundle_factory(["sh", "-c", script])
    argv = [oci_binary, "--root", runtime_root, "run", "--preserve-fds", "2", "-b", bundle, unique_id]
    r = subprocess.run(_sh_with_fds(argv, files), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "content-3\ncontent-4\nno-fd-5\n"


def test_socket_activation_fds_reach_the_container(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    (tmp_path / "listen").write_text("activated\n")
    (tmp_path / "extra").write_text("preserved\n")
    bundle = bundle_factory(["sh", "-c", "cat <&3; cat <&4"])
    argv = [oci_binary, "--root", runtime_root, "run", "--preserve-fds", "1", "-b", bundle, unique_id]
    cmd = _sh_with_fds(argv, {3: str(tmp_path / "listen"), 4: str(tmp_path / "extra")},
                       env="LISTEN_FDS=1 LISTEN_PID=$$")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "activated\npreserved\n"


def test_listen_fds_of_another_process_are_not_passed(oci_binary, runtime_root, bundle_factory, unique_id,
                                                      tmp_path):
    (tmp_path / "listen").write_text("activated\n")
    bundle = bundle_factory(["sh", "-c", "(cat <&3) 2>/dev/null || echo no-fd-3"])
    argv = [oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id]
    cmd = _sh_with_fds(argv, {3: str(tmp_path / "listen")}, env="LISTEN_FDS=1 LISTEN_PID=1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "no-fd-3\n"


def test_socket_activation_sets_listen_env_for_pid_1(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    (tmp_path / "listen").write_text("activated\n")
    bundle = bundle_factory(["sh", "-c", "echo fds=$LISTEN_FDS pid=$LISTEN_PID"])
    argv = [oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id]
    cmd = _sh_with_fds(argv, {3: str(tmp_path / "listen")}, env="LISTEN_FDS=1 LISTEN_PID=$$")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "fds=1 pid=1\n"
