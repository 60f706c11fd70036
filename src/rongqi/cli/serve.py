"""`rongqi serve` (and podman's name for it, `rongqi system service`): the Docker Engine API on
a unix socket or a loopback tcp port, in the foreground, until idle for --timeout seconds.

Only the command line lives here: the server is rongqi/serve/http.py, the API rongqi/serve/.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# podman system service's default (--time): exit after 5 s with no request in flight.
DEFAULT_TIMEOUT = 5.0


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    for names, parent in ((["serve"], top), (["service"], groups["system"])):
        sp = add(names, cmd_serve, "serve the Docker Engine API (docker CLI, docker-py, compose)",
                 parent)
        _args(sp)


def _args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("uri", nargs="?", help="the address, as podman takes it (same as --socket)")
    sp.add_argument("--socket", "-H", dest="socket", metavar="ADDRESS",
                    help="unix://PATH (default unix:///run/rongqi/docker.sock as root) or "
                         "tcp://HOST:PORT (loopback unless a non-loopback address is named)")
    sp.add_argument("--timeout", "-t", "--time", dest="timeout", type=float,
                    default=DEFAULT_TIMEOUT, metavar="SECONDS",
                    help="exit after this many seconds with no request in flight; 0: never "
                         "(default %(default)g, podman's)")
    sp.add_argument("--group", metavar="NAME",
                    help="the unix socket's group (mode 0660; default: docker if the host has "
                         "that group, else root's)")


def default_socket() -> str:
    if os.geteuid() == 0:
        return "unix:///run/rongqi/docker.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(xdg, "rongqi") if xdg and os.path.isdir(xdg) else \
        f"/tmp/rongqi-{os.geteuid()}"
    return f"unix://{base}/docker.sock"


def cmd_serve(ctx: Any, a: argparse.Namespace) -> int:
    import signal

    from rongqi.errors import UsageError
    from rongqi.serve import serve_main
    from rongqi.serve.http import Address

    if a.uri and a.socket and a.uri != a.socket:
        raise UsageError("give the address once: as an argument or with --socket")
    if a.timeout < 0:
        raise UsageError("--timeout must be 0 (never) or a number of seconds")
    from rongqi.serve.http import activated_listener
    listener = activated_listener()   # started by systemd's socket activation
    if listener is not None and (a.socket or a.uri):
        listener.close()
        raise UsageError("started by socket activation: the socket is the .socket unit's, "
                         "give no address")
    addr = Address(a.socket or a.uri or default_socket())
    if listener is None and addr.scheme == "tcp" and not addr.loopback():
        print(f"WARNING: {addr} is reachable from other machines, with no TLS and no "
              "authentication: whoever can connect to it is root on this machine",
              file=sys.stderr, flush=True)
    args = ctx.args

    def make_engine() -> Any:
        from rongqi.engine import Engine
        return Engine(args.root, getattr(args, "runroot", None),
                      getattr(args, "runtime", None) or None, storage_mode=args.storage_mode,
                      registries_conf=args.registries_conf, threaded=True)

    return serve_main(addr, make_engine, timeout=a.timeout, group=a.group,
                      signals=(signal.SIGTERM, signal.SIGINT), listener=listener)
