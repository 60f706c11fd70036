"""fork(2) for rongqi's children of a Python process: the caller's heap is frozen across the
fork, so a child never runs the finalizers of garbage the caller had not collected yet.

Why: rongqi forks from processes that hold heaps of their own (the in-process API inside a
user's program or a test runner, `rongqi serve`, the monitor). A socket or file object that is
cyclic garbage at the fork still names its fd number. The child soon closes every fd it
inherited (the monitor closes all of them, the container's init all but its own few) and opens
its own, which reuse those numbers. A collection in the child would then run the object's
finalizer and close the number, now one of the child's own fds. In CI this closed the init's
state directory fd ("exec.fifo: Bad file descriptor") after an images.push and a build had
left such garbage in the same process. Frozen objects are never collected (gc.freeze); the
parent unfreezes its copy at once, so its own collections are unchanged.
"""

from __future__ import annotations

import gc
import os


def fork() -> int:
    """os.fork(), with every object that exists now out of the child's collections."""
    mine = gc.get_freeze_count() == 0  # a caller's own freeze is left as it was
    gc.freeze()
    try:
        pid = os.fork()
    except BaseException:
        if mine:
            gc.unfreeze()
        raise
    if pid != 0 and mine:
        gc.unfreeze()
    return pid
