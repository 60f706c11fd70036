"""OCI hooks: run a hook program with the container's state JSON on stdin, with a timeout.

Which hooks run when, and in which namespaces, is decided by the callers in
oci/creation.py and oci/lifecycle.py (runtime namespace) and oci/init.py (container namespace).
"""

from __future__ import annotations

import os
import select
import time

from rongqi.errors import HookError
from rongqi.linux import forking


class HookSpec:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, path: str, args: list[str], env: list[str], timeout: int | None):
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout

    @classmethod
    def from_dict(cls, d: dict) -> HookSpec:
        return cls(d["path"], list(d.get("args") or []), list(d.get("env") or []), d.get("timeout"))

    def to_dict(self) -> dict:
        out: dict[str, object] = {"path": self.path}
        if self.args:
            out["args"] = self.args
        if self.env:
            out["env"] = self.env
        if self.timeout:
            out["timeout"] = self.timeout
        return out


def run_hooks(kind: str, hooks: list[HookSpec], state_json: bytes, cwd: str | None = None) -> None:
    """Run hooks in order; the first failure stops them (and fails the operation)."""
    for i, h in enumerate(hooks):
        run_hook(kind, i, h, state_json, cwd)


def run_hooks_warn(kind: str, hooks: list[HookSpec], state_json: bytes, cwd: str | None = None) -> list[str]:
    """Run every hook, a failing one included; return the failures' messages.

    For poststart and poststop: the spec says a failure is logged and the lifecycle goes on,
    so the hooks after a failing one still run.
    """
    failures = []
    for i, h in enumerate(hooks):
        try:
            run_hook(kind, i, h, state_json, cwd)
        except HookError as err:
            failures.append(str(err))
    return failures


def _close_inherited() -> None:
    """In a hook's child: close every fd above stdio.

    Listed from /proc/self/fd rather than os.closerange, which falls back to one close(2)
    per possible fd when close_range is denied (a startContainer hook runs under the
    container's seccomp filter).
    """
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        os.closerange(3, 65536)
        return
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own fd


def run_hook(kind: str, index: int, hook: HookSpec, state_json: bytes, cwd: str | None = None) -> None:
    env = {}
    for e in hook.env:
        k, sep, v = e.partition("=")
        if sep:
            env[k] = v
    args = hook.args or [hook.path]
    fds: list[int] = []
    try:
        in_r, in_w = os.pipe()
        fds += (in_r, in_w)
        out_r, out_w = os.pipe()
        fds += (out_r, out_w)
        pid = forking.fork()
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if pid == 0:  # the hook
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            _close_inherited()
            if cwd is not None:
                os.chdir(cwd)
            os.execve(hook.path, args, env)
        except BaseException as err:  # noqa: BLE001 - report and leave the forked child
            try:
                os.write(2, f"exec {hook.path}: {getattr(err, 'strerror', err)}\n".encode())
            finally:
                os._exit(127)
    os.close(in_r)
    os.close(out_w)
    output = bytearray()
    reaped = False
    try:
        # The hook may not read its stdin: don't let a full pipe block us.
        try:
            os.set_blocking(in_w, False)
            os.write(in_w, state_json)
        except (BlockingIOError, BrokenPipeError):
            pass
        os.close(in_w)
        in_w = -1
        pidfd = os.pidfd_open(pid)
        try:
            deadline = time.monotonic() + hook.timeout if hook.timeout else None
            poller = select.poll()
            poller.register(out_r, select.POLLIN)
            poller.register(pidfd, select.POLLIN)
            out_open = True
            while True:
                wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
                events = poller.poll(wait_ms)
                if not events and deadline is not None and time.monotonic() >= deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    reaped = True
                    raise HookError(f"error running {kind} hook #{index}: {hook.path}: timed out after {hook.timeout}s")
                for fd, _ in events:
                    if fd == out_r and out_open:
                        chunk = os.read(out_r, 65536)
                        if chunk:
                            if len(output) < 65536:
                                output += chunk
                        else:
                            poller.unregister(out_r)
                            out_open = False
                if any(fd == pidfd for fd, _ in events) and not out_open:
                    break
                if any(fd == pidfd for fd, _ in events):
                    # Exited; drain what is left of its output without waiting on grandchildren.
                    os.set_blocking(out_r, False)
                    try:
                        while len(output) < 65536:
                            chunk = os.read(out_r, 65536)
                            if not chunk:
                                break
                            output += chunk
                    except BlockingIOError:
                        pass
                    break
        finally:
            os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        reaped = True
    finally:
        if not reaped:
            # We failed before the hook ended (a write, pidfd_open, an interrupt): it must not
            # run on unwatched, nor stay our zombie.
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(out_r)
        if in_w >= 0:
            os.close(in_w)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        text = output.decode(errors="replace").strip().replace("\n", "; ")
        if code > 0:
            why = f"exit status {code}"
        else:
            import _signal  # built in: no file is read (startContainer hooks run in the container's root)

            why = "signal: " + (_signal.strsignal(-code) or str(-code)).lower()
        # runc's words, which its users and tests match: "error running createRuntime hook #1:
        # exit status 1"; the hook's path and output after, as runc gives its output.
        raise HookError(f"error running {kind} hook #{index}: {hook.path}: {why}" + (f": {text}" if text else ""))
