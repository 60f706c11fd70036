"""The project's one lock primitive: flock(2) on a file (or a directory), shared or exclusive.

Used by the runtime (oci/statedir), the image store, layer storage and the engine. flock locks
belong to an open file description: two opens in one process (two threads) exclude each other,
a process's death releases its locks, and a forked child keeps a lock unless it closes the fd.
Runtime path: imports only os, fcntl and rongqi.errors (time only for a timeout).
"""

from __future__ import annotations

import fcntl
import os

from rongqi.errors import RongqiError


class LockError(RongqiError):
    """A lock file that cannot be opened (missing directory, permissions); `oserror` says why."""

    def __init__(self, message: str, oserror: OSError | None = None):
        super().__init__(message)
        self.oserror = oserror


class LockBusy(LockError):
    """A non-blocking lock that someone else holds, or a timeout that ran out."""


class Lock:
    """flock on `path`, as a context manager or with acquire()/release().

    shared: LOCK_SH (many holders) instead of LOCK_EX. blocking=False: acquire() returns False
    (and `with` raises LockBusy) when someone else holds it. timeout (seconds): wait at most
    that long, then LockBusy. directory=True: lock an existing directory (opened O_DIRECTORY,
    never created); otherwise the file is created (mode 0o600) when missing, unless
    create=False. Not reentrant: a second acquire of the same Lock object is a bug.
    """

    __slots__ = ("path", "shared", "blocking", "timeout", "directory", "create", "mode", "fd")

    def __init__(self, path: str, *, shared: bool = False, blocking: bool = True,
                 timeout: float | None = None, directory: bool = False, create: bool = True,
                 mode: int = 0o600):
        self.path = path
        self.shared = shared
        self.blocking = blocking
        self.timeout = timeout
        self.directory = directory
        self.create = create
        self.mode = mode
        self.fd = -1

    def _open(self) -> int:
        if self.directory:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            return os.open(self.path, flags)
        try:
            return os.open(self.path, os.O_RDWR | os.O_CLOEXEC
                           | (os.O_CREAT if self.create else 0), self.mode)
        except PermissionError:
            # Another user's lock file we may read (a shared lock for `ps`): flock needs no write.
            return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def acquire(self) -> bool:
        """Take the lock; False only when non-blocking and someone else holds it."""
        if self.fd >= 0:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        try:
            fd = self._open()
        except OSError as err:
            raise LockError(f"cannot open lock file {self.path}: {err.strerror}", err) from None
        op = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            if self.blocking and self.timeout is None:
                fcntl.flock(fd, op)
                got = True
            else:
                got = _try(fd, op) or (self.blocking and _wait(fd, op, self.timeout or 0.0))
        except BaseException:
            os.close(fd)
            raise
        if not got:
            os.close(fd)
            if self.blocking:
                raise LockBusy(f"timed out after {self.timeout:g}s waiting for the lock "
                               f"{self.path}")
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last fd of the description drops the flock
            self.fd = -1

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise LockBusy(f"{self.path} is locked by another process")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait(fd: int, op: int, timeout: float) -> bool:
    """Poll until `timeout` (flock itself cannot time out; a signal timer would be global)."""
    import time

    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(delay, deadline - now))
        if _try(fd, op):
            return True
        delay = min(delay * 2, 0.05)


def is_held(path: str) -> bool:
    """Whether some process holds `path` exclusively (e.g. a monitor's lock), without waiting.

    A missing file is not held. The probe takes a shared lock for an instant, so it never
    blocks the holder or another prober.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise LockError(f"cannot open lock file {path}: {err.strerror}", err) from None
    try:
        return not _try(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)
