"""The container's terminal is the pty the runtime made, reached by fd, never by a path of the
container's view (CVE-2025-52565): the slave comes from the master (TIOCGPTPEER) and
/dev/console is bound from that fd, so both are the pty whose master went over the socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from rongqi.image.busybox import make_bundle
from support.plugin import new_id

pytestmark = pytest.mark.root


def test_dev_console_and_stdio_are_the_pty_whose_master_was_sent(oci_binary, tmp_path):
    cid = new_id("console")
    root = str(tmp_path / "root")
    bundle = make_bundle(str(tmp_path / "bundle"), ["sh"], cgroups_path=f"/rongqi-test/{cid}", terminal=True)
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(20)
    try:
        r = subprocess.run([oci_binary, "--root", root, "create", "-b", bundle, "--console-socket", path, cid],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        conn, _ = server.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        master = fds[0]
        name = msg.decode()
        assert subprocess.run([oci_binary, "--root", root, "start", cid], capture_output=True).returncode == 0
        # stat -L: the device numbers of /dev/console and of stdin, as major,minor in hex.
        os.write(master, b"stat -L -c 'dev=%t,%T' /dev/console /proc/self/fd/0; tty; echo done-$$\n")
        out = b""
        deadline = time.monotonic() + 10
        while b"done-1" not in out.replace(b"done-$$", b"") and time.monotonic() < deadline:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        os.write(master, b"exit\n")
        os.close(master)
        text = out.decode(errors="replace")
        devs = [w for w in text.split() if w.startswith("dev=") and "%" not in w]
        assert len(devs) == 2 and devs[0] == devs[1], text  # /dev/console is stdin's pty
        assert devs[0].split("=")[1].split(",")[0] in ("88", "89", "8a", "8b", "8c", "8d", "8e", "8f"), text  # 136-143
        assert name in text, text  # tty names the pty whose master we got
    finally:
        server.close()
        subprocess.run([oci_binary, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)
