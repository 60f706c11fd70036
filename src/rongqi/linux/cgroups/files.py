"""Reading and writing cgroup control files, and the error that names the OCI field at fault.

Every controller writes through write(); a kernel refusal becomes one CgroupError line.
"""

from __future__ import annotations

import os

from rongqi.errors import RongqiError


class CgroupError(RongqiError):
    """A cgroup operation failed; the message starts with the OCI field when there is one."""

    def __init__(self, msg: str, field: str = "", path: str = "", errno: int = 0) -> None:
        super().__init__(f"{field}: {msg}" if field else msg)
        self.field = field
        self.path = path
        self.errno = errno


def write(directory: str, name: str, value: object, field: str = "") -> None:
    """Write one value into directory/name; on failure raise CgroupError naming ``field``."""
    path = directory + "/" + name
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(_why(err, path, name, data), field, path, err.errno) from None
    try:
        os.write(fd, data)
    except OSError as err:
        raise CgroupError(_why(err, path, name, data), field, path, err.errno) from None
    finally:
        os.close(fd)


def _why(err: OSError, path: str, name: str, data: bytes) -> str:
    if err.errno == 2:
        return f"{path} does not exist (the kernel or this cgroup lacks {name})"
    return f"cannot write {data.decode()!r} to {path}: {os.strerror(err.errno or 0)}"


def read(directory: str, name: str) -> str:
    with open(directory + "/" + name, "rb") as f:
        return f.read().decode().strip()


def read_or(directory: str, name: str, default: str = "") -> str:
    try:
        return read(directory, name)
    except OSError:
        return default


def read_int(directory: str, name: str, default: int = 0) -> int:
    """An integer file; "max" (cgroup v2's unlimited) reads as 0 like runc's stats do."""
    text = read_or(directory, name, "")
    if not text or text == "max":
        return default
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line), as memory.stat or cpu.stat."""
    out: dict[str, int] = {}
    for line in read_or(directory, name, "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def exists(directory: str, name: str) -> bool:
    return os.path.exists(directory + "/" + name)


def read_pids(directory: str) -> list[int]:
    try:
        text = read(directory, "cgroup.procs")
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]
