"""The Docker API's system endpoints: /_ping (GET, HEAD), /version, /info, /events (a stream,
with since/until/filters) and /system/df, over the same engine the CLI's `info`, `events`
and `system df` read.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import rongqi
from rongqi.serve.app import (API_VERSION, MIN_API_VERSION, Request, Response, json_response,
                              route, version_text)


def _ping_headers() -> dict[str, str]:
    # Builder-Version 1: the classic builder (POST /build with a tar); "2" would send the
    # docker CLI to BuildKit's gRPC session, which rongqi does not speak.
    return {"Api-Version": version_text(API_VERSION), "Docker-Experimental": "false",
            "Ostype": "linux", "Builder-Version": "1", "Cache-Control": "no-cache, no-store, "
            "must-revalidate", "Pragma": "no-cache"}


@route("GET", "/_ping")
def ping(req: Request) -> Response:
    return Response(200, b"OK", _ping_headers(), content_type="text/plain; charset=utf-8")


@route("HEAD", "/_ping")
def ping_head(req: Request) -> Response:
    # dockerd's HEAD answer: the same headers, Content-Length 0
    return Response(200, b"", {**_ping_headers(), "Content-Length": "0"},
                    content_type="text/plain; charset=utf-8")


def go_arch() -> str:
    """The machine as Go names it (amd64, arm64), as clients expect in Arch fields."""
    from rongqi.cli.system import _go_arch
    return _go_arch()


def _build_time() -> str:
    package_dir = os.path.dirname(rongqi.__file__)
    built = os.stat(package_dir).st_mtime
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00", time.gmtime(built))


def version_data() -> dict[str, Any]:
    """dockerd's types.Version, with rongqi's own version and Python where Go would be."""
    details = {
        "ApiVersion": version_text(API_VERSION), "Arch": go_arch(), "BuildTime": _build_time(),
        "Experimental": "false", "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
        "KernelVersion": platform.release(), "MinAPIVersion": version_text(MIN_API_VERSION),
        "Os": "linux",
    }
    return {
        "Platform": {"Name": "Rongqi Engine"},
        "Components": [{"Name": "Engine", "Version": rongqi.__version__, "Details": details}],
        "Version": rongqi.__version__,
        "ApiVersion": details["ApiVersion"],
        "MinAPIVersion": details["MinAPIVersion"],
        "GitCommit": "",
        "GoVersion": details["GoVersion"],
        "Os": "linux",
        "Arch": details["Arch"],
        "KernelVersion": details["KernelVersion"],
        "BuildTime": details["BuildTime"],
    }


@route("GET", "/version")
def version(req: Request) -> Response:
    return json_response(version_data())
