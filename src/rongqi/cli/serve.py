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
    # dockerd's TLS flags, names and defaults (tcp only, as dockerd: a unix socket has none)
    from rongqi.cli.run_flags import _bool_flag
    certs = default_cert_dir()
    _bool_flag(sp, ["--tls"], "tls", None, "use TLS; implied by --tlsverify")
    _bool_flag(sp, ["--tlsverify"], "tlsverify", None,
               "use TLS and verify the remote (default from DOCKER_TLS_VERIFY)")
    sp.add_argument("--tlscacert", default=os.path.join(certs, "ca.pem"), metavar="PATH",
                    help="trust certs signed only by this CA (default ca.pem in "
                         "$DOCKER_CERT_PATH, else $DOCKER_CONFIG or ~/.docker)")
    sp.add_argument("--tlscert", default=os.path.join(certs, "cert.pem"), metavar="PATH",
                    help="path to TLS certificate file (default cert.pem in "
                         "$DOCKER_CERT_PATH, else $DOCKER_CONFIG or ~/.docker)")
    sp.add_argument("--tlskey", default=os.path.join(certs, "key.pem"), metavar="PATH",
                    help="path to TLS key file (default key.pem in $DOCKER_CERT_PATH, "
                         "else $DOCKER_CONFIG or ~/.docker)")


def default_cert_dir() -> str:
    """dockerd's directory for ca.pem, cert.pem and key.pem: $DOCKER_CERT_PATH, else the
    docker config dir ($DOCKER_CONFIG, else ~/.docker)."""
    return (os.environ.get("DOCKER_CERT_PATH") or os.environ.get("DOCKER_CONFIG")
            or os.path.join(os.path.expanduser("~"), ".docker"))


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
    import socket
    tcp = addr.scheme == "tcp" if listener is None else \
        listener.family in (socket.AF_INET, socket.AF_INET6)
    shown = addr
    if listener is not None and tcp:
        host, port = listener.getsockname()[:2]   # systemd's tcp socket, for the warnings
        shown = Address(f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}")
    tls = _tls_options(a, shown, listener is not None) if tcp else None
    args = ctx.args

    def make_engine() -> Any:
        from rongqi.engine import Engine
        return Engine(args.root, getattr(args, "runroot", None),
                      getattr(args, "runtime", None) or None, storage_mode=args.storage_mode,
                      registries_conf=args.registries_conf, threaded=True)

    return serve_main(addr, make_engine, timeout=a.timeout, group=a.group,
                      signals=(signal.SIGTERM, signal.SIGINT), listener=listener, tls=tls)


def _tls_options(a: argparse.Namespace, addr: Any, loopback_unknown: bool) -> Any:
    """dockerd's TLS settings for a tcp listener (cmd/dockerd: --tlsverify, given or from
    DOCKER_TLS_VERIFY, implies --tls), its warnings when clients are not verified, and the
    refusal of an unverified listener on another machine's reach unless asked for."""
    from rongqi.errors import UsageError
    from rongqi.serve.tls import TLSOptions

    verify = a.tlsverify if a.tlsverify is not None else bool(os.environ.get("DOCKER_TLS_VERIFY"))
    use_tls = bool(a.tls) or a.tlsverify is not None or verify
    if not verify:
        for line in ("Binding to IP address without --tlsverify is insecure and gives root "
                     "access on this machine to everyone who has access to your network.",
                     "Binding to an IP address, even on localhost, can also give access to "
                     "scripts run in a browser. Be safe out there!"):
            print(f"WARNING: {line} host=\"{addr}\"", file=sys.stderr, flush=True)
        explicit = a.tls is not None or a.tlsverify is not None
        if not explicit and not loopback_unknown and not addr.loopback():
            # dockerd 20.10 slows its start by 15 s here and says that this will be refused
            # in the next release (later dockerd refuse it): refused now, with its way out
            raise UsageError(f"binding to {addr} without --tlsverify is refused: it gives "
                             "root on this machine to whoever can reach it; you can override "
                             "this by explicitly specifying '--tls=false' or "
                             "'--tlsverify=false'")
    if not use_tls:
        return None
    return TLSOptions(cert=a.tlscert, key=a.tlskey, cacert=a.tlscacert, verify=verify)
