"""rongqi's Docker Engine API service (`rongqi serve`): another face on the same Engine, as the
CLI and rongqi.api are; http.py is the server, app.py the routing and errors, the rest routes.

serve_main() is what the CLI command runs: listen, serve until a signal or the idle timeout,
remove the socket.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

from rongqi.serve.http import Address


def serve_main(addr: Address, make_engine: Callable[[], Any], *, timeout: float = 0,
               group: str | None = None, signals: Iterable[int] = (),
               listener: Any = None, tls: Any = None) -> int:
    """Serve the API on addr (or on `listener`, a socket systemd's activation handed over)
    until one of `signals` arrives or nothing was asked for `timeout` seconds (0: never);
    0 on a clean end. `tls` (serve/tls.py TLSOptions) puts TLS on a tcp listener."""
    from rongqi.serve.app import API_VERSION, App, version_text
    from rongqi.serve.http import Server, listen

    from rongqi.engine import monitor

    context = None
    if tls is not None:
        from rongqi.serve.tls import server_context
        context = server_context(tls)  # a bad key pair or CA file: before anything listens
    app = App(make_engine)  # the route modules load before the socket exists
    activated = listener is not None
    if listener is None:
        listener = listen(addr, group)
    # Containers' monitors are forked by a single-threaded helper, never by this threaded
    # process (docs/serve.md: The engine inside a threaded server).
    monitor.start_forker()
    # An activated socket's file is systemd's: it stays when this process exits.
    ident = os.stat(addr.path).st_ino if addr.scheme == "unix" and not activated else None
    server = Server(listener, app, idle_timeout=timeout, tls=context)
    previous = {}
    for sig in signals:
        previous[sig] = _signal.signal(sig, lambda *_: server.stop())
    where = addr
    if activated:
        name = listener.getsockname()
        where = Address(f"unix://{name}" if isinstance(name, str) and name.startswith("/")
                        else f"tcp://{name[0]}:{name[1]}" if isinstance(name, tuple)
                        else "unix:///(socket activation)")
    elif addr.scheme == "tcp":
        host, port = listener.getsockname()[:2]
        where = Address(f"tcp://{host}:{port}")
    how = "" if tls is None else \
        " with TLS, client certificates verified" if tls.verify else " with TLS"
    print(f"rongqi serve: listening on {where}{how} (Docker API {version_text(API_VERSION)})",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        monitor.stop_forker()
        for sig, handler in previous.items():
            _signal.signal(sig, handler)
        if ident is not None:
            # Only our own socket file: a server started after us on the same path keeps its.
            with contextlib.suppress(OSError):
                if os.stat(addr.path).st_ino == ident:
                    os.unlink(addr.path)
    return 0
