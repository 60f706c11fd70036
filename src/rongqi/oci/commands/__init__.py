"""One module per rongqi-oci command: parse nothing, check arguments, call the runtime's operation
(oci/creation.py, oci/lifecycle.py, ...), print.

Each module exposes run(g, opts, args, log) -> exit code; oci/cli.py imports
only the module of the command being run.
"""

from __future__ import annotations

from rongqi.errors import UsageError

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import Globals, Options
    from rongqi.oci.creation import CreateOptions


def one_id(args: list[str], command: str, extra_ok: int = 0) -> str:
    if not args:
        raise UsageError(f'"{command}" requires a container id (see rongqi-oci {command} --help)')
    if len(args) > 1 + extra_ok:
        raise UsageError(f'"{command}" takes a container id{" and at most " + str(extra_ok) + " more argument" if extra_ok else ""}, '
                         f"got {len(args)} arguments")
    return args[0]


def listen_fds() -> int:
    """How many socket-activation fds (LISTEN_FDS, from fd 3) were meant for us, as runc counts them."""
    import os

    n = os.environ.get("LISTEN_FDS", "")
    if not n or os.environ.get("LISTEN_PID", "") != str(os.getpid()):
        return 0
    try:
        return max(int(n), 0)
    except ValueError:
        return 0


def create_options(g: Globals, opts: Options) -> CreateOptions:
    from rongqi.oci.creation import CreateOptions

    return CreateOptions(bundle=opts["bundle"], pid_file=opts["pid-file"], console_socket=opts["console-socket"],
                         pidfd_socket=opts["pidfd-socket"], no_pivot=opts["no-pivot"],
                         no_new_keyring=opts["no-new-keyring"], preserve_fds=opts["preserve-fds"],
                         systemd_cgroup=g.systemd_cgroup, listen_fds=listen_fds())
