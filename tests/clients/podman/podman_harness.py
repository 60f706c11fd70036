"""The podman harness for the client tests: a private podman storage bound to one runtime.

A module of its own (not conftest) so that test files can import it by a unique name.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from support.plugin import SESSION_TAG
from support.private_podman import private_podman
from support.tools import pids_of, remove_cgroup_tree

IMAGE = "localhost/rongqi/busybox:test"


WRAPPER = """\
#!/bin/sh
echo "$*" >> {base}/calls.log
exec {runtime} --root {base}/runtime-state "$@"
"""


class Podman:
    """podman bound to a private storage and one OCI runtime."""

    def __init__(self, base: Path, runtime: str, name: str) -> None:
        self.base = base
        self.runtime = runtime
        self.name = name
        self.cgroup_parent = f"/rongqi-test/{SESSION_TAG}-podman-{name}"
        self.wrapper = base / "runtime.sh"
        self.conf = base / "containers.conf"
        self.calls = base / "calls.log"

    def setup(self) -> None:
        (self.base / "runtime-state").mkdir(parents=True, exist_ok=True)
        self.prefix, self._env = private_podman(self.base, runtime=str(self.wrapper))
        self.wrapper.write_text(WRAPPER.format(base=self.base, runtime=self.runtime))
        self.wrapper.chmod(0o755)

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def env(self) -> dict[str, str]:
        return dict(self._env)

    def __call__(self, *args: str, timeout: float = 120, input: str | None = None,
                 check: bool = False) -> subprocess.CompletedProcess:
        r = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, env=self.env(),
                           input=input if input is not None else "")
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def run_flags(self) -> list[str]:
        # The cgroup parent names the session, so the leak check can tell its cgroups apart.
        return [f"--cgroup-parent={self.cgroup_parent}"]

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """`podman run` with this setup's run_flags."""
        return self("run", *self.run_flags(), *args, **kw)

    def conmons(self) -> list[int]:
        """conmon processes of this storage (conmon is told our runroot's paths)."""
        return pids_of(lambda argv0: argv0.endswith(b"conmon"), str(self.base))

    def settle(self, timeout: float = 15) -> None:
        """Remove every container and wait for conmon (and its cleanup command) to finish."""
        self("rm", "--all", "--force", "--time", "0")
        deadline = time.monotonic() + timeout
        while self.conmons() or self._cleanups():
            if time.monotonic() > deadline:
                for pid in self.conmons():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                break
            time.sleep(0.05)

    def _cleanups(self) -> list[int]:
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"podman") and any(str(self.base).encode() in a for a in argv):
                found.append(int(pid))
        return found

    def teardown(self) -> None:
        self.settle()
        self("system", "reset", "--force", timeout=120)
        # Containers the runtime still knows of (a runtime that failed podman's delete).
        state = self.base / "runtime-state"
        if state.is_dir():
            for cid in os.listdir(state):
                subprocess.run([self.runtime, "--root", str(state), "delete", "--force", cid], capture_output=True)
        remove_cgroup_tree(self.cgroup_parent)
        subprocess.run(["umount", "-R", str(self.base)], capture_output=True)  # nothing, unless podman left some
        shutil.rmtree(self.base, ignore_errors=True)


def _netavark_chains() -> dict[str, list[str]]:
    """iptables rules of netavark's chains, per table (podman's default network adds them)."""
    out: dict[str, list[str]] = {}
    for table in ("filter", "nat"):
        r = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        out[table] = [line for line in r.stdout.splitlines() if "NETAVARK" in line]
    return out


def _remove_netavark_chains() -> None:
    for table, lines in _netavark_chains().items():
        for line in lines:
            if line.startswith("-A ") and not line.split()[1].startswith("NETAVARK"):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(line)[1:]], capture_output=True)
        chains = [line.split()[1] for line in lines if line.startswith("-N ")]
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
