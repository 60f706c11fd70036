"""`rongqi build` and `rongqi image build` (owner: build): podman build's flags parsed here,
the work in engine/build.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rongqi.cli.run_flags import _bool_flag


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    for parent in (top, groups["image"]):
        _args(add(["build"], cmd_build, "build an image from a Containerfile", parent))


def _args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-f", "--file", dest="file", action="append", default=[],
                    metavar="FILE", help="the Containerfile (default: Containerfile or "
                    "Dockerfile in the context)")
    sp.add_argument("-t", "--tag", dest="tag", action="append", default=[],
                    metavar="NAME:TAG", help="name the image (repeatable)")
    sp.add_argument("--build-arg", dest="build_arg", action="append", default=[],
                    metavar="K=V", help="a build argument's value")
    sp.add_argument("--target", default="", help="build this stage (and what it needs)")
    _bool_flag(sp, ["--no-cache"], "no_cache", False, "run every step, reuse nothing")
    sp.add_argument("--pull", nargs="?", const="always", default="missing",
                    help="pull the FROM images: missing (default), always (--pull), never, "
                         "newer; true/false as podman")
    sp.add_argument("--pull-always", dest="pull", action="store_const", const="always",
                    help=argparse.SUPPRESS)
    sp.add_argument("--pull-never", dest="pull", action="store_const", const="never",
                    help=argparse.SUPPRESS)
    sp.add_argument("--network", "--net", default="",
                    help="the network of RUN steps: private (the default network as root, "
                         "slirp4netns otherwise; the default), bridge, none, host, "
                         "slirp4netns, or network names")
    sp.add_argument("--label", action="append", default=[], metavar="K=V",
                    help="a label of the image")
    sp.add_argument("--platform", default="", help="os/arch of the FROM images")
    _bool_flag(sp, ["--tls-verify"], "tls_verify", True,
               "verify registries' certificates when pulling (default true)")
    _bool_flag(sp, ["-q", "--quiet"], "quiet", False, "print only the image id")
    _bool_flag(sp, ["--layers"], "layers", True,
               "cache each step's result (default true)")
    sp.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="build up to N independent stages at once (default 1)")
    sp.add_argument("--format", default="oci", help="oci (default) or docker manifest")
    sp.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE",
                    help="a secret for RUN --mount=type=secret (src=FILE or env=VAR); never "
                    "stored in the image or the cache key")
    sp.add_argument("--ssh", action="append", default=[], metavar="default|ID[=PATH[,PATH]]",
                    help="an ssh agent for RUN --mount=type=ssh: default is $SSH_AUTH_SOCK; "
                    "PATH an agent socket or private keys (served by an ssh-agent of the "
                    "build's own)")
    sp.add_argument("context", nargs="?", default=".", metavar="CONTEXT",
                    help="a directory, a tar archive, or - (a Containerfile on stdin)")


def _pairs(values: list[str], what: str, env_fallback: bool = False) -> dict[str, str]:
    import os

    from rongqi.errors import UsageError
    out: dict[str, str] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not k:
            raise UsageError(f"invalid {what} {v!r}")
        if not eq:
            if env_fallback:
                if k in os.environ:
                    out[k] = os.environ[k]
                continue
            val = ""
        out[k] = val
    return out


def _secrets(values: list[str]) -> dict[str, str]:
    """buildah's --secret id=ID,src=FILE | id=ID,env=VAR (type=file|env accepted) -> id: file;
    an env secret is written to a private temp file removed at exit."""
    import atexit
    import os
    import tempfile

    from rongqi.errors import UsageError
    out: dict[str, str] = {}
    for v in values:
        f: dict[str, str] = {}
        for part in v.split(","):
            k, eq, val = part.partition("=")
            if not eq:
                raise UsageError(f"invalid secret {v!r}: expected id=ID,src=FILE or "
                                 "id=ID,env=VAR")
            f[k.strip()] = val.strip()
        ident = f.get("id", "")
        src = f.get("src") or f.get("source") or ""
        var = f.get("env", "")
        if f.get("type") == "env" and not var:
            var, src = src, ""
        if not ident or bool(src) == bool(var):
            raise UsageError(f"invalid secret {v!r}: expected id=ID,src=FILE or id=ID,env=VAR")
        if var:
            if var not in os.environ:
                raise UsageError(f"secret {ident}: environment variable {var} is not set")
            fd, src = tempfile.mkstemp(prefix="rongqi-secret-")
            atexit.register(lambda p=src: os.path.exists(p) and os.unlink(p))
            with os.fdopen(fd, "w") as w:
                w.write(os.environ[var])
        elif not os.path.isfile(src):
            raise UsageError(f"secret {ident}: {src}: no such file")
        out[ident] = os.path.abspath(src)
    return out


def _ssh(values: list[str]) -> dict[str, list[str]]:
    import os

    from rongqi.errors import UsageError
    out: dict[str, list[str]] = {}
    for v in values:
        ident, eq, paths = v.partition("=")
        if not eq:
            sock = os.environ.get("SSH_AUTH_SOCK", "")
            if not sock:
                raise UsageError(f"--ssh {v}: SSH_AUTH_SOCK is not set (no agent to forward); "
                                 "give ID=PATH with a socket or key files")
            out[ident] = [sock]
        else:
            out[ident] = [os.path.abspath(p) for p in paths.split(",") if p]
    return out


def cmd_build(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import build
    from rongqi.errors import EngineError
    pull = {"true": "always", "false": "missing"}.get(str(a.pull).lower(), str(a.pull).lower())
    if pull not in ("missing", "always", "never", "newer"):
        raise EngineError(f'invalid pull policy "{a.pull}"')
    if a.format not in ("oci", "docker"):
        raise EngineError(f'unrecognized image type "{a.format}"')
    opts = build.BuildOptions(
        context=a.context, containerfiles=list(a.file), tags=list(a.tag),
        build_args=_pairs(a.build_arg, "build-arg", env_fallback=True), target=a.target,
        no_cache=a.no_cache, pull=pull, network=a.network,
        labels=_pairs(a.label, "label"), platform=a.platform, tls_verify=a.tls_verify,
        quiet=a.quiet, layers=a.layers, fmt=a.format, jobs=a.jobs, stdin=sys.stdin.buffer,
        secrets=_secrets(a.secret), ssh=_ssh(a.ssh))
    out = sys.stdout.buffer
    image_id = build.build(ctx.engine, opts, out)
    out.write(image_id.encode() + b"\n")
    out.flush()
    return 0
