"""rongqi.sandbox: run untrusted code in a throw-away, hardened container and get its output,
exit code, duration and whether it timed out or ran out of memory; thread- and asyncio-safe.

Each call is one container of the engine (rongqi.engine, in this process): created with the
hardened defaults below, started with its stdio on the monitor's attach socket, removed at
the end whatever happened. Nothing outlives a call: a timeout kills the container's cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rongqi.errors import RongqiError

__all__ = ["Result", "run", "run_async", "DEFAULT_IMAGE"]

DEFAULT_IMAGE = "busybox"
NOBODY = "65534:65534"     # a non-root user every image can run as (no /etc/passwd entry needed)
OUTPUT_LIMIT = 16 << 20    # bytes kept per stream; the rest is read and dropped


@dataclass(frozen=True)
class Result:
    """What a sandboxed run gave: its output (each stream capped at output_limit bytes), exit
    code (128+N for a signal, 137 after a timeout or the OOM killer), wall time in seconds."""

    stdout: bytes
    stderr: bytes
    exit_code: int
    duration: float
    timed_out: bool
    oom_killed: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


def _options(argv: Sequence[str], image: str, *, memory: int | str | None, cpus: float | None,
             pids: int | None, network: bool | str, read_only: bool,
             env: Mapping[str, str] | None, user: str, workdir: str, tmpfs_size: str,
             interactive: bool, timeout: float | None, binds: list[tuple[str, str]]) -> Any:
    from rongqi.api import options
    from rongqi.engine.options import MountSpec
    net = "none" if network is False else "bridge" if network is True else str(network)
    opts = options(image, list(argv), environment=dict(env or {}), user=user,
                   working_dir=workdir, read_only=read_only, mem_limit=memory,
                   nano_cpus=int(cpus * 1e9) if cpus else None, pids_limit=pids,
                   network=net, cap_drop=["ALL"], security_opt=["no-new-privileges"],
                   stdin_open=interactive)
    if opts.memory is not None:
        opts.memory_swap = opts.memory   # no swap: a memory limit is a limit (and OOM shows)
    # One small tmpfs of our own (size-capped) instead of podman's three unbounded ones.
    opts.read_only_tmpfs = False
    opts.mounts.append(MountSpec(kind="tmpfs", destination="/tmp",
                                 options=[f"size={tmpfs_size}", "mode=1777", "nosuid",
                                          "nodev"]))
    for host, dest in binds:
        opts.mounts.append(MountSpec(kind="bind", destination=dest, source=host,
                                     readonly=True, options=["nosuid", "nodev"]))
    opts.log_driver = "none"         # the output comes over the attach socket, not a log
    if timeout is not None:
        # The monitor's own deadline: kills the container even if this process died.
        opts.timeout = int(math.ceil(timeout)) + 2
    return opts


def _stage_files(files: Mapping[str, bytes]) -> tuple[str, list[tuple[str, str]]]:
    """files written to a private host dir; (that dir, [(host file, container path)])."""
    tmp = tempfile.mkdtemp(prefix="rongqi-sandbox-")
    binds = []
    for i, (path, data) in enumerate(files.items()):
        if not path.startswith("/"):
            path = "/tmp/" + path
        host = os.path.join(tmp, f"f{i}")
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(host, 0o644)   # readable by the sandbox's user whatever our umask
        binds.append((host, os.path.normpath(path)))
    return tmp, binds


def run(argv: Sequence[str], *, image: str = DEFAULT_IMAGE, timeout: float | None = 30.0,
        memory: int | str | None = "256m", cpus: float | None = 1.0, pids: int | None = 128,
        network: bool | str = False, read_only: bool = True,
        files: Mapping[str, bytes] | None = None, stdin: bytes | None = None,
        env: Mapping[str, str] | None = None, user: str = NOBODY, workdir: str = "/tmp",
        tmpfs_size: str = "64m", output_limit: int = OUTPUT_LIMIT,
        client: Any = None) -> Result:
    """Run argv in a fresh container of `image` and return its Result.

    Hardened by default: the engine's default seccomp profile, no new privileges, every
    capability dropped, user nobody (65534), a read-only root with a 64 MB tmpfs on /tmp, no
    network, 256 MB of memory without swap, one CPU, 128 processes. `files` ({path: bytes})
    appear read-only at their paths (relative ones under /tmp); `stdin` is fed to the
    process. A timeout kills it (timed_out True, exit code 137). Safe from many threads."""
    return _run(argv, image=image, timeout=timeout, memory=memory, cpus=cpus, pids=pids,
                network=network, read_only=read_only, files=files, stdin=stdin, env=env,
                user=user, workdir=workdir, tmpfs_size=tmpfs_size, output_limit=output_limit,
                client=client)


def _run(argv: Sequence[str], *, image: str, timeout: float | None, memory: int | str | None,
         cpus: float | None, pids: int | None, network: bool | str, read_only: bool,
         files: Mapping[str, bytes] | None, stdin: bytes | None, env: Mapping[str, str] | None,
         user: str, workdir: str, tmpfs_size: str, output_limit: int, client: Any,
         cancel_fd: int = -1) -> Result:
    """run(); cancel_fd (run_async's): once readable, the container is killed as at a
    timeout (but timed_out stays False) and the call returns as soon as it is gone."""
    if isinstance(argv, str):
        raise TypeError("argv is a list of arguments, not a string (use ['sh', '-c', ...])")
    from rongqi.api import _FORK_LOCK, Client, _translated
    cl = client if client is not None else Client()
    engine = cl.engine
    t0 = time.monotonic()
    staged, binds = _stage_files(files or {})
    cid = run_dir = ""
    try:
        opts = _options(argv, image, memory=memory, cpus=cpus, pids=pids, network=network,
                        read_only=read_only, env=env, user=user, workdir=workdir,
                        tmpfs_size=tmpfs_size, interactive=stdin is not None,
                        timeout=timeout, binds=binds)
        with _translated("image"):
            rec = engine.create(opts)
        cid, run_dir = rec.id, rec.run_dir
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _translated(), _FORK_LOCK:
                try:
                    engine.start(cid, attach=theirs)
                finally:
                    theirs.close()
            deadline = None if timeout is None else t0 + timeout
            out, err, code, timed_out = _relay(engine, cid, mine, stdin, deadline,
                                               output_limit, cancel_fd)
        finally:
            mine.close()
        duration = time.monotonic() - t0
        oom = False
        with _translated():
            engine.wait(cid, ["stopped"], timeout=10)
            c = engine.get(cid)
            oom = bool(c.state.get("oom_killed"))
            if code is None:
                code = int(c.state.get("exit_code", 137))
        return Result(out, err, code, duration, timed_out, oom)
    finally:
        if cid:
            _remove(engine, cid, run_dir)
        shutil.rmtree(staged, ignore_errors=True)


def _remove(engine: Any, cid: str, run_dir: str) -> None:
    """The container and all it held gone, whatever happened to it. Its monitor deletes the
    runtime's container (the cgroup) before its exit frame but only ignores a failure there,
    and rm leaves that delete to a monitor that is still finishing: so rm comes once the
    monitor is gone, and rm's own cleanup then deletes whatever was left (the runtime's
    container, or an orphan cgroup)."""
    from rongqi.engine.monitor import wait_gone
    with contextlib.suppress(RongqiError):
        engine.stop(cid, 0)          # a no-op once exited; else SIGKILL, then its exit record
    with contextlib.suppress(RongqiError, OSError):
        wait_gone(run_dir, timeout=10)
    with contextlib.suppress(RongqiError):
        engine.remove(cid, force=True, volumes=True, timeout=0)


def _relay(engine: Any, cid: str, sock: socket.socket, stdin: bytes | None,
           deadline: float | None, limit: int, cancel_fd: int = -1
           ) -> tuple[bytes, bytes, int | None, bool]:
    """Feed stdin and collect the attach frames until the exit frame (or the socket closes);
    at the deadline (or once cancel_fd is readable), SIGKILL the container and keep reading
    until it is gone."""
    from rongqi.engine.attach import EXIT, STDERR, STDIN, STDOUT, FrameReader, frame
    pending = b""
    if stdin is not None:
        pending = b"".join(frame(STDIN, stdin[i:i + 65536])
                           for i in range(0, len(stdin), 65536)) + frame(STDIN, b"")
    sock.setblocking(False)
    reader = FrameReader()
    bufs: dict[int, list[bytes]] = {1: [], 2: []}
    sizes = {1: 0, 2: 0}
    code: int | None = None
    timed_out = False
    killed_at = 0.0
    watch: list[Any] = [sock] + ([cancel_fd] if cancel_fd >= 0 else [])
    while True:
        wait: float | None = None
        if killed_at:
            wait = max(0.0, killed_at + 10 - time.monotonic())
        elif deadline is not None:
            wait = max(0.0, deadline - time.monotonic())
        r, w, _ = select.select(watch, [sock] if pending else [], [], wait)
        cancelled = cancel_fd in r
        if cancelled:
            watch.remove(cancel_fd)
            r.remove(cancel_fd)
        if cancelled or not r and not w:
            if killed_at and not cancelled:
                break   # killed 10 s ago and the monitor still says nothing: give up reading
            if not killed_at:
                timed_out = not cancelled
                killed_at = time.monotonic()
                try:
                    engine.kill(cid, "SIGKILL")
                except RongqiError:
                    pass   # it ended at the same moment
            if not r and not w:
                continue
        if w:
            try:
                n = sock.send(pending)
                pending = pending[n:]
            except BlockingIOError:
                pass
            except OSError:
                pending = b""  # the process closed its stdin: the rest is not wanted
        if r:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                break
            for stream, payload in reader.feed(data):
                if stream in (STDOUT, STDERR):
                    room = limit - sizes[stream]
                    if room > 0:
                        bufs[stream].append(payload[:room])
                        sizes[stream] += min(room, len(payload))
                elif stream == EXIT:
                    code = int(payload.decode() or 0)
            if code is not None:
                break
    if timed_out:
        code = 137 if code is None else code
    return b"".join(bufs[1]), b"".join(bufs[2]), code, timed_out


async def run_async(argv: Sequence[str], **kwargs: Any) -> Result:
    """run() for asyncio: the blocking parts in a worker thread, so many sandboxes run at
    once from one event loop (`await asyncio.gather(*(run_async([...]) for _ in range(20)))`).
    Takes run()'s keywords. Cancelling the task (asyncio.wait_for's timeout, a TaskGroup
    failing) kills the container, and the CancelledError comes once it is gone."""
    if isinstance(argv, str):
        raise TypeError("argv is a list of arguments, not a string (use ['sh', '-c', ...])")
    import contextvars
    import functools
    import inspect
    # run()'s keywords with its defaults, checked here (a bad one is run's TypeError at once)
    defaults = {k: p.default for k, p in inspect.signature(run).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    bad = sorted(set(kwargs) - set(defaults))
    if bad:
        raise TypeError(f"run_async() got an unexpected keyword argument '{bad[0]}'")
    opts: dict[str, Any] = {**defaults, **kwargs}
    r, w = os.pipe2(os.O_CLOEXEC)
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, _run, argv, cancel_fd=r, **opts)
    fut = loop.run_in_executor(None, call)

    def close(_: object = None) -> None:
        os.close(r)
        os.close(w)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        os.write(w, b"x")            # the worker kills the container and cleans up
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                continue              # cancelled again: still wait, nothing may outlive us
            except Exception:         # noqa: BLE001 - the cancel is what the caller asked
                break
        raise
    finally:
        if fut.done():
            close()
        else:
            fut.add_done_callback(close)

