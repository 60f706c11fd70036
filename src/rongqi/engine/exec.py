"""A new process in a running container (`rongqi exec`, health checks): the process built from
the container's own (env, user, cwd, capabilities) with exec's flags, started by the runtime.

The caller is the new process's parent: the in-process runtime clones it as our child, a
runtime binary's `exec --detach` leaves it to us as the nearest subreaper. Errors are the
runtime's, with podman's exit codes for a command not found (127) or not executable (126).
"""

from __future__ import annotations

import json
import os

from rongqi.errors import RongqiError
from rongqi.linux import forking
# Not dataclasses (with inspect, ast and dis: ~10 ms of every `rongqi exec`) nor typing.
from rongqi.values import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ContainerNotRunning(RongqiError):
    """podman's words for an exec in a container that does not run."""

    exit_code = 125


@dataclass
class ExecRequest:
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    tty: bool = False
    privileged: bool = False


def running_container(engine: Any, ref: str) -> Any:
    """The container, synced; ContainerNotRunning unless it runs."""
    from rongqi.engine import lifecycle

    c = engine.get(ref)
    lifecycle.synced(engine, c)
    if c.status != "running":
        raise ContainerNotRunning("can only create exec sessions on running containers: "
                                  "container state improper")
    return c


def build_process(container: Any, req: ExecRequest) -> dict[str, Any]:
    """The OCI process for the exec: the container's own, with the request's changes."""
    with open(os.path.join(container.bundle, "config.json")) as f:
        spec = json.load(f)
    proc = dict(spec.get("process") or {})
    proc["args"] = list(req.command)
    proc["terminal"] = bool(req.tty)
    proc.pop("consoleSize", None)
    if req.env:
        env = [e for e in proc.get("env", []) if e.split("=", 1)[0] not in req.env]
        proc["env"] = env + [f"{k}={v}" for k, v in req.env.items()]
    if req.workdir:
        proc["cwd"] = req.workdir
    if req.user:
        from rongqi.engine.bundle import resolve_user

        root = spec.get("root", {}).get("path", "rootfs")
        if not root.startswith("/"):
            root = os.path.join(container.bundle, root)
        u = resolve_user(root, req.user, [])
        proc["user"] = {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids}
        if u.home:
            proc["env"] = [e for e in proc.get("env", []) if not e.startswith("HOME=")] + \
                [f"HOME={u.home}"]
    if req.privileged:
        caps = _all_caps()
        proc["capabilities"] = {k: list(caps) for k in
                                ("bounding", "effective", "permitted", "inheritable")}
        proc["capabilities"]["ambient"] = []
    return proc


def _all_caps() -> list[str]:
    """--privileged: every capability this engine itself may hand on (its bounding set)."""
    from rongqi.linux import caps

    return caps.names(caps.current().bounding)


def start(engine: Any, container: Any, proc: dict[str, Any], *, tty: bool = False,
          detach: bool = False, console_socket: str = "",
          stdio: tuple[int, int, int] | None = None) -> int:
    """Start the process; return its pid (the caller waits for it). A failure to run the
    command raises monitor.CommandError (126/127), others the runtime's error."""
    from rongqi.engine.monitor import CommandError, classify

    _subreaper()
    runtime = engine.runtime_for(container)  # the one the container was created with
    try:
        return runtime.exec(container.id, proc, tty=tty, detach=detach,
                            console_socket=console_socket, stdio=stdio)
    except RongqiError as err:
        from rongqi.engine.monitor import _podman_wording

        msg = str(err).removeprefix("exec: ") if str(err).startswith("exec: exec: ") else str(err)
        code = classify(msg, _rootfs(container))
        if code in (126, 127):
            name = os.path.basename(getattr(runtime, "name", "") or "rongqi")
            raise CommandError(_podman_wording(msg, code, name), code) from None
        raise


def _prefixed(engine: Any, msg: str) -> str:
    name = os.path.basename(getattr(engine.runtime, "name", "rongqi"))
    return msg if msg.startswith(name + ":") else f"{name}: {msg}"


def _rootfs(container: Any) -> str:
    try:
        with open(os.path.join(container.bundle, "config.json")) as f:
            root = json.load(f).get("root", {}).get("path", "rootfs")
    except (OSError, ValueError):
        return ""
    return root if root.startswith("/") else os.path.join(container.bundle, root)


def _subreaper() -> None:
    from rongqi.engine.monitor import _subreaper as sub

    sub()


def wait(pid: int) -> int:
    """The exit code of our child pid, as a shell reports it (128+N for a signal)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return _wait_foreign(pid)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _wait_foreign(pid: int) -> int:
    """A process that is not (yet) our child: wait for it to end; its code is unknown (0)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return 0
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)
    return 0


# -- exec instances of the Docker API service (rongqi serve) ------------------------------------
EXECS = "execs"  # RUN/CID/execs/EXECID.json: gone with the run dir, as dockerd forgets them


def exec_ids(container: Any) -> list[str]:
    """The ids of the exec instances the service made in the container's current run, oldest
    first (Docker's inspect ExecIDs)."""
    d = os.path.join(container.run_dir, EXECS)
    try:
        names = [n for n in os.listdir(d) if n.endswith(".json") and len(n) == 69]
    except OSError:
        return []

    def mtime(n: str) -> int:
        try:
            return os.stat(os.path.join(d, n)).st_mtime_ns
        except OSError:
            return 0

    return [n[:-5] for n in sorted(names, key=mtime)]


# -- the parent of a service's exec (rongqi serve) ---------------------------------------------
def parent_main(request_fd: int, report_fd: int) -> None:
    """An exec's parent as a process of its own, for a threaded caller (the Docker API
    service), which must neither fork Python code nor let the runtime swap its fds 0-2.

    Started fresh (an interpreter, never a fork of the service) with the process's stdio as
    its fds 0-2 (pipes, or /dev/null with a tty: the pty master goes to the console socket).
    Reads {root, runroot, runtime_root, id, process, tty, console_socket, record} (JSON) from
    request_fd; forks once so that the caller reaps only a short-lived child; starts the
    process (our child), keeps the exec's record (`record`: its Running, Pid, ExitCode) and
    reports on report_fd: `pid N`, then `exit N`; or `error CODE MESSAGE` (126/127 as
    podman's). The record is written before each report, so an inspect that follows one sees
    it, and also when nobody listens any more (a detached exec)."""
    import signal

    # Caught (by a handler that does nothing), not ignored: an ignored signal stays ignored
    # across execve, so the exec'd process could not trap INT/HUP/QUIT/TERM (podman's can).
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # the runtime resets SIGPIPE itself
    chunks = []
    while True:
        chunk = os.read(request_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(request_fd)
    req = json.loads(b"".join(chunks))
    if forking.fork() != 0:
        os._exit(0)
    record = req.get("record") or ""

    def report(line: str) -> None:
        try:
            os.write(report_fd, (line + "\n").encode())
        except OSError:
            pass  # the caller went (detached, or the service stopped): the record says it

    try:
        from rongqi.engine import Engine

        engine = Engine(req["root"], req["runroot"], runtime_root=req.get("runtime_root"))
        c = engine.get(req["id"])
        pid = start(engine, c, req["process"], tty=bool(req.get("tty")), detach=True,
                    console_socket=req.get("console_socket") or "",
                    stdio=None if req.get("tty") else (0, 1, 2))
    except BaseException as err:  # noqa: BLE001 - whatever it was, the caller is told
        code = getattr(err, "exit_code", 0)
        code = code if code in (126, 127) else 126
        update_record(record, Running=False, ExitCode=code)
        msg = str(err) if isinstance(err, RongqiError) else f"exec: {type(err).__name__}: {err}"
        report(f"error {code} {' '.join(msg.split())}")
        os._exit(1)
    # Only the process holds its stdio now: its end is the caller's EOF.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    update_record(record, Running=True, Pid=pid)
    report(f"pid {pid}")
    code = wait(pid)
    update_record(record, Running=False, ExitCode=code)
    report(f"exit {code}")
    os._exit(0)


def update_record(path: str, **changes: Any) -> None:
    """Change some keys of a JSON record in place (temp file + rename); a record whose
    directory is gone (its container's run ended and was cleaned up) is left alone."""
    if not path:
        return
    try:
        with open(path) as f:
            doc = json.load(f)
        doc.update(changes)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, path)
    except (OSError, ValueError):
        pass
