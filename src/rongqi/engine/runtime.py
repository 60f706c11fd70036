"""The OCI runtime behind a narrow protocol: rongqi's own (rongqi.oci, called in-process:
oci/inprocess.py, re-exported here) or another runtime binary with runc's command line
(`--runtime PATH`: runc, crun, rongqi-oci). Both are safe to call from several threads.

Both implementations behave the same for the engine: the same methods, the same errors
(rongqi.errors.ContainerNotFound for "does not exist", ContainerStateError for a status the
runtime refuses, RuntimeFailure for the rest, with the runtime's own message).
"""

from __future__ import annotations

import _thread
import contextlib
import os

from rongqi.errors import ContainerNotFound, ContainerStateError, EngineError, RongqiError, UsageError
# The in-process runtime lives with the runtime it calls (rongqi.oci); the engine's name for it.
from rongqi.oci.inprocess import InProcessRuntime, Stdio

# Every `run` imports this module for the in-process runtime: what only BinaryRuntime needs
# (json, shutil, subprocess, tempfile) is imported in its methods, and typing (Protocol) is
# for the type checker alone.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

__all__ = ["Runtime", "RuntimeFailure", "InProcessRuntime", "BinaryRuntime", "Stdio", "for_path",
           "default_root", "podman_signal", "signal_number"]


class RuntimeFailure(EngineError):
    """The OCI runtime refused or failed; the message is the runtime's."""


if TYPE_CHECKING:
    class Runtime(Protocol):
        name: str      # "rongqi" (in-process) or the binary's path
        root: str      # the runtime's state root (--root)

        def create(self, cid: str, bundle: str, *, console_socket: str = "",
                   pid_file: str = "", stdio: Stdio | None = None) -> int: ...
        def start(self, cid: str) -> None: ...
        def state(self, cid: str) -> dict[str, Any]: ...
        def kill(self, cid: str, sig: int, all: bool = False) -> None: ...
        def delete(self, cid: str, force: bool = False) -> None: ...
        def pause(self, cid: str) -> None: ...
        def resume(self, cid: str) -> None: ...
        def ps(self, cid: str) -> list[int]: ...
        def exec(self, cid: str, process: dict[str, Any], *, tty: bool = False,
                 detach: bool = False, console_socket: str = "", stdio: Stdio | None = None,
                 pid_file: str = "") -> int: ...
        def update(self, cid: str, resources: dict[str, Any]) -> None: ...
        def stats(self, cid: str) -> dict[str, Any]: ...
else:
    Runtime = object  # the protocol above, for annotations: both runtimes have its methods


def default_root() -> str:
    """rongqi-oci's default root, so `rongqi-oci list` shows the engine's containers."""
    from rongqi.oci.cli import default_root as oci_default
    return oci_default()


def for_path(path: str | None, root: str | None = None) -> Runtime:
    """The runtime `--runtime` names: None, "" or "rongqi" is the in-process one."""
    if not path or path == "rongqi":
        return InProcessRuntime(root or default_root())
    import shutil
    exe = path if os.sep in path else shutil.which(path)
    if not exe or not os.access(exe, os.X_OK):
        raise EngineError(f'could not find a working binary for runtime "{path}": '
                          "no such file or directory")
    exe = os.path.abspath(exe)
    if root is None:
        # The binary's own state, apart from rongqi-oci's (whose `list` would choke on it).
        base = "/run/rongqi/engine" if os.geteuid() == 0 else default_root() + "/engine"
        root = os.path.join(base, "runtime-" + os.path.basename(exe))
    return BinaryRuntime(exe, root)


class BinaryRuntime:
    """An OCI runtime binary driven by runc's command line, as conmon and containerd drive it.

    Errors come back through `--log FILE --log-format json` (the last "error" line), so the
    container's stderr, which the runtime's init inherits, never carries them.
    """

    def __init__(self, path: str, root: str):
        self.name = path
        self.path = path
        self.root = root

    def _run(self, args: list[str], *, stdio: Stdio | None = None, input: bytes | None = None,
             capture: bool = True, timeout: float = 120) -> str:
        import subprocess
        import tempfile
        os.makedirs(self.root, 0o700, exist_ok=True)
        fd, log = tempfile.mkstemp(prefix="runtime-log-", suffix=".json")
        os.close(fd)
        argv = [self.path, "--root", self.root, "--log", log, "--log-format", "json", *args]
        try:
            kw: dict[str, Any] = {}
            if stdio is not None:
                kw = {"stdin": stdio[0], "stdout": stdio[1], "stderr": stdio[2]}
            elif capture:
                # with input, run() makes the stdin pipe itself (and refuses a stdin too)
                kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
                if input is None:
                    kw["stdin"] = subprocess.DEVNULL
            try:
                r = subprocess.run(argv, input=input, timeout=timeout, check=False, **kw)
            except FileNotFoundError:
                raise RuntimeFailure(f"{self.path}: no such file or directory") from None
            except subprocess.TimeoutExpired:
                raise RuntimeFailure(f"{os.path.basename(self.path)} {args[0]}: timed out "
                                     f"after {timeout:g}s") from None
            out = r.stdout.decode(errors="replace") if isinstance(r.stdout, bytes) else ""
            if r.returncode != 0:
                err = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else ""
                raise self._error(_last_error(log) or err.strip()
                                  or f"exit status {r.returncode}")
            return out
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(log)

    def _error(self, msg: str) -> RongqiError:
        # The words containerd's shim and podman match on (see shared/clients.md).
        low = msg.lower()
        prog = os.path.basename(self.path)
        if "does not exist" in low or "not found" in low and "container" in low:
            return ContainerNotFound(msg)
        if ("not running" in low or "not stopped" in low or "not paused" in low
                or "already" in low and "container" in low):
            return ContainerStateError(msg)
        return RuntimeFailure(f"{prog}: {msg}")

    def create(self, cid: str, bundle: str, *, console_socket: str = "", pid_file: str = "",
               stdio: Stdio | None = None) -> int:
        import tempfile
        own_pid_file = not pid_file
        if own_pid_file:
            fd, pid_file = tempfile.mkstemp(prefix="pid-")
            os.close(fd)
            os.unlink(pid_file)
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        try:
            self._run([*args, cid], stdio=stdio or _null_stdio())
            with open(pid_file) as f:
                return int(f.read().strip())
        finally:
            if own_pid_file:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pid_file)

    def start(self, cid: str) -> None:
        self._run(["start", cid])

    def state(self, cid: str) -> dict[str, Any]:
        import json
        return json.loads(self._run(["state", cid]))

    def kill(self, cid: str, sig: int, all: bool = False) -> None:
        self._run(["kill", *(["--all"] if all else []), cid, str(sig)])

    def delete(self, cid: str, force: bool = False) -> None:
        self._run(["delete", *(["--force"] if force else []), cid])

    def pause(self, cid: str) -> None:
        self._run(["pause", cid])

    def resume(self, cid: str) -> None:
        self._run(["resume", cid])

    def ps(self, cid: str) -> list[int]:
        import json
        return [int(p) for p in json.loads(self._run(["ps", "--format", "json", cid]) or "[]")]

    def exec(self, cid: str, process: dict[str, Any], *, tty: bool = False, detach: bool = False,
             console_socket: str = "", stdio: Stdio | None = None, pid_file: str = "") -> int:
        """Start the process and return its pid. Always `--detach` for the binary (its pid
        comes from --pid-file); the caller, a subreaper, reaps it as the process's parent."""
        import json
        import tempfile
        with tempfile.TemporaryDirectory(prefix="exec-") as tmp:
            proc_path = os.path.join(tmp, "process.json")
            with open(proc_path, "w") as f:
                json.dump({**process, "terminal": bool(tty)}, f)
            pid_path = pid_file or os.path.join(tmp, "pid")
            args = ["exec", "--detach", "--process", proc_path, "--pid-file", pid_path]
            if console_socket:
                args += ["--console-socket", console_socket]
            self._run([*args, cid], stdio=stdio or _null_stdio())
            with open(pid_path) as f:
                return int(f.read().strip())

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        import json
        self._run(["update", "--resources", "-", cid], input=json.dumps(resources).encode())

    def stats(self, cid: str) -> dict[str, Any]:
        import json
        out = self._run(["events", "--stats", cid])
        doc = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        return doc.get("data") or {}


def _null_stdio() -> Stdio:
    # Opened once and kept: a runtime's init inheriting /dev/null is harmless. Under a lock:
    # threads of `rongqi serve` may be first at once.
    global _NULL
    with _NULL_LOCK:
        if _NULL < 0:
            _NULL = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    return (_NULL, _NULL, _NULL)


_NULL = -1
_NULL_LOCK = _thread.allocate_lock()


def _last_error(log: str) -> str:
    """The msg of the last "error" line of a runtime's JSON log (runc, crun, rongqi-oci)."""
    import json
    msg = ""
    with contextlib.suppress(OSError):
        with open(log, errors="replace") as f:
            for line in f:
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and doc.get("level") in ("error", "fatal"):
                    msg = str(doc.get("msg", ""))
    return msg


def podman_signal(text: str) -> int:
    """A signal as podman's CLI reads one (util.ParseSignal): a leading dash dropped ("-1",
    "-HUP"), a number or a name with or without SIG; 0 is "invalid signal: 0", a number past
    64 "valid signals are 1 through 64"."""
    base = text[1:] if text.startswith("-") else text
    if base.isdigit() or (base[:1] in "+-" and base[1:].isdigit()):
        n = int(base)
        if n == 0:
            raise UsageError(f"invalid signal: {base}")
        if not 1 <= n <= 64:
            raise UsageError("valid signals are 1 through 64")
        return n
    if not base or base.strip() != base:
        raise UsageError(f"invalid signal: {base}")
    n = signal_number(base)
    if not 1 <= n <= 64:
        raise UsageError("valid signals are 1 through 64")
    return n


def signal_number(text: str | int) -> int:
    """"TERM", "SIGTERM", "15" or 15 -> 15; UsageError with podman's words otherwise."""
    if isinstance(text, int):
        return text
    from rongqi.linux.signals import parse_signal
    try:
        return parse_signal(text)
    except UsageError:
        raise UsageError(f"invalid signal: {text}") from None
