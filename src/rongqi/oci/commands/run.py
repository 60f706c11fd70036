"""rongqi-oci run: create and start a container; in the foreground, wait and exit with its code.

A foreground container with process.terminal gets its pty wired to our stdio (as runc's
run does): see oci/console_proxy.py.
"""

from __future__ import annotations

import os

from rongqi.oci.commands import create_options, one_id

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.oci.cli import ErrorLog, Globals, Options


def wants_terminal(bundle: str) -> bool:
    from rongqi.fastjson import JSONError, loads

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            doc = loads(f.read())
    except (OSError, JSONError):
        return False  # create reports the bundle's problem in its own words
    proc = doc.get("process") if isinstance(doc, dict) else None
    return isinstance(proc, dict) and proc.get("terminal") is True


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run(g: Globals, opts: Options, args: list[str], log: ErrorLog) -> int:
    cid = one_id(args, "run")
    from rongqi.oci import creation, lifecycle

    console = None
    if not opts["detach"] and not opts["console-socket"] and wants_terminal(opts["bundle"]):
        from rongqi.oci.console_proxy import ConsoleSocket

        console = ConsoleSocket()
        opts["console-socket"] = console.path
    try:
        st = creation.create(g.root, cid, create_options(g, opts))
    except BaseException:
        if console is not None:
            console.close()
        raise
    if opts["detach"]:
        lifecycle.start(g.root, cid)
        return 0
    from rongqi.oci import console_proxy  # only a foreground run needs it

    try:
        if console is not None:
            try:
                master = console.receive_master()
            finally:
                console.close()
            try:
                console_proxy.run_foreground(master, st.pid, before=lambda: lifecycle.start(g.root, cid))
            finally:
                os.close(master)
        else:
            console_proxy.Forwarder(st.pid).install()
            lifecycle.start(g.root, cid)
        _, status = os.waitpid(st.pid, 0)
    except BaseException:
        lifecycle.delete(g.root, cid, force=True)
        raise
    if not opts["keep"]:
        lifecycle.delete(g.root, cid, force=True)
    return exit_code(status)
