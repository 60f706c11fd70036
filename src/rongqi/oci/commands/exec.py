"""rongqi-oci exec: run a new process in a running container; in the foreground, exit with its code.

`exec -t` without --console-socket wires the new pty to our stdio (oci/console_proxy.py).
"""

from __future__ import annotations

import os

from rongqi.errors import RongqiError, UsageError

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def _read_process_file(path: str) -> bytes | None:
    """--process FILE's bytes, read once: it may be a pipe (runc's tests pass -p <(echo ...))."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None  # exec_process reports the file's problem in its own words


def _process_file_terminal(raw: bytes | None) -> bool:
    from rongqi.fastjson import JSONError, loads

    if raw is None:
        return False
    try:
        doc = loads(raw)
    except JSONError:
        return False  # exec_process reports the file's problem in its own words
    return isinstance(doc, dict) and doc.get("terminal") is True


# runc's exec exits 255 on every failure after its argument check ("exec failed: ..."): callers
# tell the runtime's failure from the process's own exit code by it.
EXEC_FAILED = 255


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    if not args:
        raise UsageError('"exec" requires a container id and a command (or --process FILE)')
    try:
        return _exec(g, opts, args)
    except RongqiError as err:
        err.exit_code = EXEC_FAILED
        raise
    except OSError as err:
        from rongqi.errors import os_error_line

        failed = RongqiError(f"exec failed: {os_error_line(err)}")
        failed.exit_code = EXEC_FAILED
        raise failed from None


def _exec(g: Globals, opts: Options, args: list[str]) -> int:
    cid, cmd = args[0], args[1:]
    from rongqi.oci.execution import ExecOptions, exec_process

    o = ExecOptions(args=cmd, process_file=opts["process"], tty=opts["tty"], console_socket=opts["console-socket"],
                    pidfd_socket=opts["pidfd-socket"], detach=opts["detach"], pid_file=opts["pid-file"],
                    cwd=opts["cwd"], env=opts["env"], user=opts["user"], additional_gids=opts["additional-gids"],
                    caps=opts["cap"], no_new_privs=opts["no-new-privs"], apparmor=opts["apparmor"],
                    process_label=opts["process-label"], preserve_fds=opts["preserve-fds"],
                    ignore_paused=opts["ignore-paused"], cgroup=opts["cgroup"])
    if o.process_file:
        o.process_data = _read_process_file(o.process_file)
    terminal = _process_file_terminal(o.process_data) if o.process_file else bool(o.tty)
    console = None
    if terminal and not o.console_socket:
        if o.detach:
            raise UsageError("cannot allocate a tty for a detached exec without --console-socket")
        from rongqi.oci.console_proxy import ConsoleSocket

        console = ConsoleSocket()
        o.console_socket = console.path
        o.console_relayed = True
    try:
        pid = exec_process(g.root, cid, o)
    except BaseException:
        if console is not None:
            console.close()
        raise
    if o.detach:
        return 0
    from rongqi.oci import console_proxy

    if console is not None:
        try:
            try:
                master = console.receive_master()
            finally:
                console.close()
        except BaseException:
            _kill(pid)
            raise
        try:
            console_proxy.run_foreground(master, pid)
        finally:
            os.close(master)
    else:
        console_proxy.Forwarder(pid).install()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
