"""The docker harness for the client tests: a private dockerd bound to one runtime.

A module of its own (not conftest) so that test files can import it by a unique name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from support.plugin import SESSION_TAG
from support.tools import pids_of, remove_cgroup_tree

IMAGE = "localhost/rongqi/busybox:test"

WRAPPER = """\
#!/bin/sh
echo "$*" >> {base}/calls.log
exec {runtime} "$@"
"""


class Dockerd:
    def __init__(self, base: Path, oci_binary: str) -> None:
        self.base = base
        self.oci_binary = oci_binary
        self.sock = base / "docker.sock"
        self.pidfile = base / "docker.pid"
        self.wrapper = base / "rongqi.sh"
        self.calls = base / "calls.log"
        self.cgroup_parent = f"/rongqi-test/{SESSION_TAG}-docker"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.base.mkdir(parents=True)
        (self.base / "daemon.json").write_text("{}\n")  # not /etc/docker/daemon.json
        self.wrapper.write_text(WRAPPER.format(base=self.base, runtime=self.oci_binary))
        self.wrapper.chmod(0o755)
        argv = ["dockerd", "--config-file", str(self.base / "daemon.json"), "--data-root", str(self.base / "data"),
                "--exec-root", str(self.base / "exec"), "--pidfile", str(self.pidfile), "-H", f"unix://{self.sock}",
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--userland-proxy=false", "--storage-driver", "vfs", "--add-runtime", f"rongqi={self.wrapper}",
                "--cgroup-parent", self.cgroup_parent]
        log = open(self.base / "dockerd.log", "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.proc.returncode}: {self.log_tail()}")
            if self.sock.exists() and self("version").returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer within 60 s: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self) -> str:
        try:
            return (self.base / "dockerd.log").read_text()[-2000:]
        except OSError:
            return ""

    def argv(self, *args: str) -> list[str]:
        return ["docker", "-H", f"unix://{self.sock}", *args]

    def __call__(self, *args: str, timeout: float = 120, check: bool = False,
                 input: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                           input=input if input is not None else "")
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def clear(self) -> None:
        ids = self("ps", "-aq").stdout.split()
        if ids:
            self("rm", "-f", *ids)

    def _ours(self, name: bytes) -> list[int]:
        return pids_of(lambda argv0: name in argv0, str(self.base))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.clear()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The containerd dockerd started, and shims, if they outlived it: by PID.
        for name in (b"containerd-shim", b"containerd"):
            for pid in self._ours(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        subprocess.run(["umount", "-R", "--lazy", str(self.base)], capture_output=True)
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            point = line.split()[4]
            if point.startswith(str(self.base) + "/"):
                subprocess.run(["umount", "-l", point], capture_output=True)
        remove_cgroup_tree(self.cgroup_parent)
        shutil.rmtree(self.base, ignore_errors=True)


