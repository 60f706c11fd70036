"""containerd drives terminals and exec: `ctr run -t`, `ctr task exec` with and without -t.

ctr's -t needs its own stdin to be a terminal: each case runs ctr on the slave side of a pty
held by the test, types into the master and reads what the container wrote back.
"""

from __future__ import annotations

import os
import pty
import subprocess

from support.terminal import read_until


def _ctr_argv(containerd, *args: str) -> list[str]:
    return ["ctr", "-a", containerd.address, "-n", containerd.namespace, *args]


def _on_pty(argv: list[str]):
    """Start argv with a pty as its stdio; return (process, master fd)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return p, master


def _finish(p: subprocess.Popen, master: int, timeout: float = 20) -> int:
    try:
        return p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_ctr_run_with_a_terminal(containerd, ctr_image, runtime, ctr_id):
    p, master = _on_pty(_ctr_argv(containerd, "run", "--rm", "-t", "--runc-binary", runtime, "--runc-root",
                                  str(containerd.runc_root), ctr_image, ctr_id, "sh"))
    read_until(master, b"# ")
    os.write(master, b"echo pid=$$; tty; exit 4\r")
    out = read_until(master, b"/dev/pts/")
    code = _finish(p, master)
    assert b"pid=1" in out and b"/dev/pts/0" in out, out
    assert code == 4


def test_ctr_task_exec_without_and_with_a_terminal(containerd, ctr_run, ctr_id):
    r = ctr_run(ctr_id, "sleep", "1000", flags=["--detach"], rm=False)
    assert r.returncode == 0, r.stderr
    r = containerd.ctr("task", "exec", "--exec-id", "e1", ctr_id, "sh", "-c", "echo from-exec $$; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout.split()[0] == "from-exec" and int(r.stdout.split()[1]) > 1

    p, master = _on_pty(_ctr_argv(containerd, "task", "exec", "-t", "--exec-id", "e2", ctr_id, "sh"))
    read_until(master, b"# ")
    os.write(master, b"tty; ps -o pid,args | grep -c 'sleep 1000'; exit 5\r")
    out = read_until(master, b"\n1\r")
    code = _finish(p, master)
    assert b"/dev/pts/" in out, out
    assert code == 5
    containerd.ctr("task", "kill", "-s", "SIGKILL", ctr_id)
