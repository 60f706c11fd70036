"""The in-process runtime from several threads at once (as `rongqi serve` runs the engine):
each create and exec gives its container's process its own stdio, and the calling process's
fds 0-2 never change, not even for a moment."""

from __future__ import annotations

import os
import threading

import pytest

import rongqi.oci as oci
from rongqi.oci.inprocess import InProcessRuntime

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real containers)")


class FdWatch:
    """A thread that fstats fds 0-2 in a loop and records any change of what they are."""

    def __init__(self) -> None:
        self.base = [self._ident(i) for i in range(3)]
        self.changes: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _ident(fd: int) -> tuple[int, int] | None:
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _run(self) -> None:
        while not self._stop.is_set():
            for i in range(3):
                now = self._ident(i)
                if now != self.base[i]:
                    self.changes.append(f"fd {i}: {self.base[i]} -> {now}")
            self.samples += 1

    def __enter__(self) -> FdWatch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def _in_threads(n: int, work) -> list:
    """work(i) in n threads released together; its results, or the first error raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a create or exec hung"
    return results


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 4096):
        out += chunk
    return out


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_two_threads_create_and_run_containers_each_with_its_own_stdio(bundle_factory, runtime_root,
                                                                       unique_id):
    rt = InProcessRuntime(runtime_root)
    names = ["a", "b"]
    bundles = [bundle_factory(["sh", "-c", f"read x; echo out-{n}-$x; echo err-{n} >&2"]) for n in names]
    pipes = [(os.pipe(), os.pipe()) for _ in names]   # (stdin, stdout+stderr) per container

    def work(i: int) -> int:
        (in_r, _), (_, out_w) = pipes[i]
        cid = f"{unique_id}-{names[i]}"
        pid = rt.create(cid, bundles[i], stdio=(in_r, out_w, out_w))
        rt.start(cid)
        return pid

    try:
        with FdWatch() as watch:
            pids = _in_threads(2, work)
        for i, ((in_r, in_w), (out_r, out_w)) in enumerate(pipes):
            os.close(in_r)
            os.close(out_w)
            os.write(in_w, f"in-{names[i]}\n".encode())
            os.close(in_w)
        codes = [_wait(pid) for pid in pids]
        outputs = [_read_all(out_r) for _, (out_r, _) in pipes]
    finally:
        for (in_r, in_w), (out_r, out_w) in pipes:
            for fd in (in_r, in_w, out_r, out_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        for n in names:
            try:
                rt.delete(f"{unique_id}-{n}", force=True)
            except Exception:  # noqa: BLE001 - the runtime_root fixture force-deletes the rest
                pass
    assert codes == [0, 0]
    assert outputs == [b"out-a-in-a\nerr-a\n", b"out-b-in-b\nerr-b\n"]
    assert watch.samples > 0 and watch.changes == [], watch.changes


def test_two_threads_exec_at_once_each_with_its_own_stdio(bundle_factory, runtime_root, unique_id):
    rt = InProcessRuntime(runtime_root)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        rt.create(unique_id, bundle_factory(["sleep", "600"]), stdio=(null, null, null))
    finally:
        os.close(null)
    rt.start(unique_id)
    outs = [os.pipe() for _ in range(4)]
    try:
        def work(i: int) -> int:
            r, w = outs[i]
            args = ["sh", "-c", f"echo exec-{i}; echo exec-err-{i} >&2; exit {i}"]
            if i % 2:
                # The engine's path (a process object) and the Python API's (a command).
                null_r = os.open(os.devnull, os.O_RDONLY)
                try:
                    return oci.exec(unique_id, args, stdio=(null_r, w, w), root=runtime_root)
                finally:
                    os.close(null_r)
            proc = dict(rt_process, args=args)
            return _wait(rt.exec(unique_id, proc, stdio=(w, w, w)))

        rt_process = {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                      "env": ["PATH=/bin:/usr/bin"]}
        with FdWatch() as watch:
            codes = _in_threads(4, work)
        for _, w in outs:
            os.close(w)
        got = [_read_all(r) for r, _ in outs]
    finally:
        for r, w in outs:
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        rt.delete(unique_id, force=True)
    assert codes == [0, 1, 2, 3]
    assert got == [f"exec-{i}\nexec-err-{i}\n".encode() for i in range(4)]
    assert watch.samples > 0 and watch.changes == [], watch.changes


def test_a_closed_stdio_fd_is_refused_before_anything_is_made(bundle_factory, runtime_root, unique_id):
    from rongqi.errors import UsageError

    r, w = os.pipe()
    os.close(r)
    os.close(w)
    rt = InProcessRuntime(runtime_root)
    with pytest.raises(UsageError, match=rf"stdio\[0\]: fd {r} is not open"):
        rt.create(unique_id, bundle_factory(["true"]), stdio=(r, 1, 2))
    assert os.listdir(runtime_root) == []
