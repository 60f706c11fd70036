"""rongqi-oci kill: send a signal (default SIGTERM) to the init, or with --all to every process."""

from __future__ import annotations

from rongqi.oci.commands import one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    from rongqi.linux.signals import SIGTERM, parse_signal
    from rongqi.oci import lifecycle

    cid = one_id(args, "kill", extra_ok=1)
    sig = parse_signal(args[1]) if len(args) > 1 else SIGTERM
    lifecycle.kill(g.root, cid, sig, opts["all"])
    return 0
