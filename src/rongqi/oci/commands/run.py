"""rongqi-oci run: create and start a container; in the foreground, wait and exit with its code."""

from __future__ import annotations

import os

from rongqi.oci.commands import create_options, one_id

# Signals a foreground run passes on to the container's init (runc forwards all it can).
_FORWARDED = (1, 2, 3, 10, 12, 14, 15, 28)  # HUP INT QUIT USR1 USR2 ALRM TERM WINCH


def run(g, opts, args, log) -> int:
    cid = one_id(args, "run")
    from rongqi.oci import container

    st = container.create(g.root, cid, create_options(g, opts))
    if opts["detach"]:
        container.start(g.root, cid)
        return 0
    import _signal

    def forward(sig, frame):
        try:
            os.kill(st.pid, sig)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        _signal.signal(sig, forward)
    try:
        container.start(g.root, cid)
        _, status = os.waitpid(st.pid, 0)
    except BaseException:
        container.delete(g.root, cid, force=True)
        raise
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    if not opts["keep"]:
        container.delete(g.root, cid, force=True)
    return code
