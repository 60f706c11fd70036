"""rongqi-oci kill: send a signal (default SIGTERM) to the init, or with --all to every process."""

from __future__ import annotations

from rongqi.oci.commands import one_id


def run(g, opts, args, log) -> int:
    from rongqi.linux.signals import SIGTERM, parse_signal
    from rongqi.oci import lifecycle

    cid = one_id(args, "kill", extra_ok=1)
    sig = parse_signal(args[1]) if len(args) > 1 else SIGTERM
    lifecycle.kill(g.root, cid, sig, opts["all"])
    return 0
