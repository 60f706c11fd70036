"""A private containerd for client tests: own config, root, state, sockets; `ctr` bound to it.

Started from Debian's containerd package with the CRI plugin disabled, everything under one
directory; stopped by PID, with its shims killed and its mounts removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from support.leaks import read_mounts, read_procs

NAMESPACE = "rongqi-test"


class ContainerdError(Exception):
    pass


class Containerd:
    """One containerd daemon under `base`; `ctr()` runs ctr against it in NAMESPACE."""

    def __init__(self, base: Path, namespace: str = NAMESPACE) -> None:
        self.base = base
        self.namespace = namespace
        self.root = base / "root"
        self.state = base / "state"
        self.address = str(base / "containerd.sock")
        self.config = base / "config.toml"
        self.log = base / "containerd.log"
        self.runc_root = base / "runc"  # the runtimes' --root, so their state stays here too
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.config.write_text(
            f"""version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{self.address}"

[ttrpc]
  address = "{self.address}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base / 'opt'}"
"""
        )

    def start(self, timeout: float = 30) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.runc_root.mkdir(exist_ok=True)
        self.write_config()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ContainerdError(f"containerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            r = subprocess.run(["ctr", "-a", self.address, "version"], capture_output=True, timeout=10)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise ContainerdError(f"containerd did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def ctr(
        self, *args: str, input: str | None = None, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "-a", self.address, "-n", self.namespace, *args]
        r = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            raise ContainerdError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def import_image(self, archive: str) -> None:
        self.ctr("images", "import", archive, check=True, timeout=120)

    def remove_container(self, cid: str) -> None:
        """Kill, delete the task and the container (and its snapshot); ignore what is absent."""
        if self.ctr("task", "ls", "-q").stdout.split().count(cid):
            self.ctr("task", "kill", "-s", "SIGKILL", cid)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.task_status(cid) not in ("STOPPED", ""):
                time.sleep(0.05)
            self.ctr("task", "delete", "-f", cid)
        self.ctr("containers", "delete", cid)

    def task_status(self, cid: str) -> str:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return parts[-1]
        return ""

    def _shims(self) -> list[int]:
        return [
            p.pid
            for p in read_procs().values()
            if "containerd-shim" in p.cmdline and self.address in p.cmdline
        ]

    def stop(self) -> None:
        """Remove what is left, stop the daemon and its shims by PID, unmount under base."""
        if self.proc is not None and self.proc.poll() is None:
            for cid in self.ctr("containers", "ls", "-q").stdout.split():
                self.remove_container(cid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shims = self._shims()
        for pid in shims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in shims:
            # Shims are reparented to the test process (a subreaper): reap them here.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.02)
        base = str(self.base.resolve())
        for m in sorted(read_mounts(), key=lambda m: m.mountpoint.count("/"), reverse=True):
            if m.mountpoint.startswith(base + "/"):
                subprocess.run(["umount", "-l", m.mountpoint], capture_output=True)
