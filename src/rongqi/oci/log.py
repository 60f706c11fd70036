"""The runtime's log, as runc's logrus writes it: errors, warnings and (with --debug) debug lines.

Without --log, warnings and debug lines go to stderr; with --log FILE every line goes to FILE,
as text (`time="..." level=debug msg="..."`) or, with --log-format json, one JSON object a line
(`{"level":"debug","msg":...,"time":...}`): containerd's shim reads the last "error" of it.
"""

from __future__ import annotations

import os

_path = ""
_fmt = "text"
debug_enabled = False


def configure(path: str = "", fmt: str = "text", debug: bool = False) -> None:
    global _path, _fmt, debug_enabled
    _path = path
    _fmt = fmt
    debug_enabled = debug


def debug(msg: str) -> None:
    """A step of the runtime's work, written only with --debug (callers test debug_enabled
    before building a costly message)."""
    if debug_enabled:
        _emit("debug", msg, to_stderr=True)


def warn(msg: str) -> None:
    """Something the runtime could not do and went on without, as the spec asks."""
    if _path:
        _emit("warning", msg, to_stderr=False)
    else:
        _write_stderr(f"rongqi-oci: warning: {msg}\n")


def error(msg: str) -> None:
    """The error a command failed with, for --log (the command line prints it to stderr itself)."""
    emit_to_file("error", msg)


def emit_to_file(level: str, msg: str) -> None:
    """A line for --log only (nothing without it)."""
    if _path:
        _emit(level, msg, to_stderr=False)


def line(level: str, msg: str, fmt: str) -> str:
    from rongqi.oci.timefmt import rfc3339nano

    now = rfc3339nano()
    if fmt == "json":
        from rongqi.fastjson import dumps

        return dumps({"level": level, "msg": msg, "time": now})
    # logrus quotes a value with spaces or quotes in it, escaping as Go's %q does.
    quoted = msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'time="{now}" level={level} msg="{quoted}"'


def _emit(level: str, msg: str, to_stderr: bool) -> None:
    if _path:
        try:
            fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line(level, msg, _fmt).encode() + b"\n")
            finally:
                os.close(fd)
        except OSError:
            pass
    elif to_stderr:
        _write_stderr(line(level, msg, "text") + "\n")


def _write_stderr(text: str) -> None:
    try:
        os.write(2, text.encode())
    except OSError:
        pass
