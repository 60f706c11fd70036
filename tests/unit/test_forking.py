"""rongqi.linux.forking: a child forked by rongqi never finalizes the caller's garbage, and
every fork in rongqi's code goes through it.

The garbage here has a finalizer that reports the pid it runs in. With plain os.fork the child's
collections run it (the control: the test can see the fault); with forking.fork they never do,
and the parent still collects its own copy.
"""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path

import rongqi
from rongqi.linux import forking


class _Garbage:
    """A reference cycle whose finalizer writes the pid it runs in to a pipe."""

    def __init__(self, report: int) -> None:
        self.report = report
        self.me = self

    def __del__(self) -> None:
        os.write(self.report, f"{os.getpid()}\n".encode())


def _finalized_in(fork) -> tuple[set[int], int, int]:
    """Fork with cyclic garbage in the heap; the child allocates enough for collections of
    every generation to run and exits. Returns (pids that ran a finalizer, child pid, ours)."""
    r, w = os.pipe()
    was = gc.isenabled()
    gc.disable()  # the garbage must still be there at the fork
    for _ in range(50):
        _Garbage(w)
    if was:
        gc.enable()
    pid = fork()
    if pid == 0:
        try:
            gc.enable()
            junk = [[i] for i in range(50_000)]  # allocation-driven collections run
            del junk
            gc.collect()                          # and a full one, as a child may do
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    gc.collect()  # the parent frees its own copy
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    return {int(x) for x in data.split()}, pid, os.getpid()


def test_plain_fork_finalizes_the_parents_garbage_in_the_child() -> None:
    pids, child, me = _finalized_in(os.fork)
    assert child in pids and me in pids


def test_forking_fork_leaves_the_parents_garbage_to_the_parent() -> None:
    before = gc.get_freeze_count()
    pids, child, me = _finalized_in(forking.fork)
    assert pids == {me}
    assert gc.get_freeze_count() == before  # the parent's heap is collectable again


def test_every_fork_in_rongqi_goes_through_forking() -> None:
    src = Path(rongqi.__file__).parent
    bare = re.compile(r"\bos\.fork\(|\bos\.forkpty\(|(?<![\w.])fork\(\)")
    found = []
    for path in sorted(src.rglob("*.py")):
        if path == src / "linux" / "forking.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if bare.search(code) and "forking.fork()" not in code:
                found.append(f"{path.relative_to(src)}:{n}: {line.strip()}")
    assert not found, "fork without rongqi.linux.forking:\n" + "\n".join(found)
