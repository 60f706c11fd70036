"""Commands on a container's files and processes: cp, diff, commit, export, top, stats, port
(owner: fs). Each is at the top level and under `container`, as podman has them.

Thin: flags parsed here, the work in engine/files.py, engine/stats.py and engine/ports.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rongqi.cli.run_flags import _bool_flag


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["container"]`."""
    for parent in (top, groups["container"]):
        _cp_args(add(["cp"], cmd_cp, "copy files between a container and the host", parent))
        _diff_args(add(["diff"], cmd_diff, "show what a container changed in its image",
                       parent))
        _commit_args(add(["commit"], cmd_commit, "make an image of a container's changes",
                         parent))
        _export_args(add(["export"], cmd_export,
                         "write a container's filesystem as a tar archive", parent))
        _stats_args(add(["stats"], cmd_stats, "live resource use of containers", parent))
        _top_args(add(["top"], cmd_top, "the processes of a container", parent))
        _port_args(add(["port"], cmd_port, "a container's published ports", parent))
    _diff_args(add(["diff"], cmd_image_diff, "show what an image's top layer changed",
                   groups["image"]))


# -- argv ----------------------------------------------------------------------------------------
def _latest(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-l", "--latest", action="store_true",
                    help="act on the latest container rongqi knows of")


def _cp_args(sp: argparse.ArgumentParser) -> None:
    _bool_flag(sp, ["-a", "--archive"], "archive", False,
               "keep the files' owners (uid/gid) both ways; without it files put in a "
               "container belong to its user, files put on the host to you")
    _bool_flag(sp, ["--overwrite"], "overwrite", False,
               "let a directory replace a file and a file a directory")
    sp.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a host path, or - (a tar "
                    "stream on stdin)")
    sp.add_argument("destination", metavar="DEST", help="CONTAINER:PATH, a host path, or - "
                    "(a tar stream on stdout)")


def _diff_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--format", default="", help="json")
    _latest(sp)
    sp.add_argument("container", nargs="?")


def _commit_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-a", "--author", default="", help="the image's author")
    sp.add_argument("-c", "--change", action="append", default=[],
                    help="a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                         "ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR")
    sp.add_argument("-m", "--message", default="", help="the commit message (history comment)")
    _bool_flag(sp, ["-p", "--pause"], "pause", True,
               "pause a running container while its files are read (default true)")
    _bool_flag(sp, ["-q", "--quiet"], "quiet", False, "print the image id only")
    sp.add_argument("-f", "--format", default="oci", help="oci or docker manifest")
    _bool_flag(sp, ["--squash"], "squash", False,
               "one layer holding the whole filesystem, instead of a layer of the changes")
    _bool_flag(sp, ["--include-volumes"], "include_volumes", False,
               "every volume and bind mount of the container becomes a VOLUME of the image "
               "(by default only its anonymous volumes)")
    sp.add_argument("container")
    sp.add_argument("image", nargs="?", default="")


def _export_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-o", "--output", default="", help="write to this file, not stdout")
    sp.add_argument("container")


def _stats_args(sp: argparse.ArgumentParser) -> None:
    _bool_flag(sp, ["-a", "--all"], "all", False, "every container, not only running ones")
    _bool_flag(sp, ["--no-stream"], "no_stream", False, "print one sample and exit")
    _bool_flag(sp, ["--no-reset"], "no_reset", False, "do not clear the screen between samples")
    _bool_flag(sp, ["--no-trunc"], "no_trunc", False, "full container ids")
    sp.add_argument("--format", default="", help="a Go template, table TEMPLATE, or json")
    sp.add_argument("-i", "--interval", type=int, default=5,
                    help="seconds between samples (default 5)")
    _latest(sp)
    sp.add_argument("containers", nargs="*")


def _top_args(sp: argparse.ArgumentParser) -> None:
    _latest(sp)
    sp.add_argument("container", nargs="?")
    sp.add_argument("descriptors", nargs=argparse.REMAINDER,
                    help="ps descriptors (user, pid, ppid, pcpu, etime, tty, time, args, "
                         "comm, nice, vsz, rss, ... or AIX codes %%p %%U ...); other ps(1) "
                         "options run ps in the container")


def _port_args(sp: argparse.ArgumentParser) -> None:
    _bool_flag(sp, ["-a", "--all"], "all", False, "the ports of every running container")
    _latest(sp)
    sp.add_argument("container", nargs="?")
    sp.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def _engine(ctx: Any) -> Any:
    return ctx.engine


def _pick(ctx: Any, a: argparse.Namespace, what: str) -> str:
    """The CONTAINER argument, or with --latest the newest container."""
    from rongqi.errors import EngineError, UsageError
    if getattr(a, "latest", False):
        cs = _engine(ctx).list(all=True)
        if not cs:
            raise EngineError("no containers to choose from with --latest: no such container")
        return max(cs, key=lambda c: c.config.get("created", "")).id
    ref = getattr(a, "container", None)
    if not ref:
        raise UsageError(f"{what} requires a container name or ID (or --latest)")
    return ref


# -- cp ------------------------------------------------------------------------------------------
def cmd_cp(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import files
    from rongqi.errors import UsageError
    if a.destination == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write a tar archive to a terminal: redirect stdout")
    files.copy(_engine(ctx), a.source, a.destination, archive=a.archive,
               overwrite=a.overwrite, stdin=sys.stdin.buffer, stdout=sys.stdout.buffer)
    if a.destination == "-":
        sys.stdout.buffer.flush()
    return 0


# -- diff ----------------------------------------------------------------------------------------
def cmd_diff(ctx: Any, a: argparse.Namespace) -> int:
    import json

    from rongqi.engine import files
    from rongqi.errors import UsageError
    if a.format not in ("", "json"):
        raise UsageError(f'unknown format "{a.format}": only json is supported')
    changes = files.diff(_engine(ctx), _pick(ctx, a, "diff"))
    if a.format == "json":
        print(json.dumps(files.changes_json(changes), indent=5))
    else:
        for ch in changes:
            print(f"{ch.kind} {ch.path}")
    return 0


def cmd_image_diff(ctx: Any, a: argparse.Namespace) -> int:
    import json

    from rongqi.engine import files
    from rongqi.errors import UsageError
    from rongqi.image.errors import ImageNotFound
    if a.format not in ("", "json"):
        raise UsageError(f'unknown format "{a.format}": only json is supported')
    if not a.container:
        raise UsageError("image diff requires an image name or ID")
    changes = files.image_changes(_engine(ctx), a.container)
    if changes is None:
        raise ImageNotFound(a.container)
    if a.format == "json":
        print(json.dumps(files.changes_json(changes), indent=5))
    else:
        for ch in changes:
            print(f"{ch.kind} {ch.path}")
    return 0


# -- commit / export -----------------------------------------------------------------------------
def cmd_commit(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import files
    image_id = files.commit(_engine(ctx), a.container, a.image, changes=a.change,
                            message=a.message, author=a.author, pause=a.pause,
                            squash=a.squash, fmt=a.format,
                            include_volumes=a.include_volumes)
    print(image_id)
    return 0


def cmd_export(ctx: Any, a: argparse.Namespace) -> int:
    """podman's export is a container command; a name that is no container but an image
    exports the image's flattened rootfs, as `rongqi export` did before (docs/images.md)."""
    import os

    from rongqi.engine import files
    from rongqi.errors import UsageError
    engine = _engine(ctx)
    if not engine.exists(a.container):
        from rongqi.cli import main
        from rongqi.image.errors import ImageNotFound
        try:
            main._resolve(ctx, a.container)
        except ImageNotFound:
            engine.get(a.container)   # podman's "no container with name or ID" error
        return main.cmd_export(ctx, argparse.Namespace(name=a.container, output=a.output))
    if not a.output:
        if sys.stdout.isatty():
            raise UsageError("refusing to export to terminal. Use -o flag or redirect")
        files.export(engine, a.container, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    tmp = a.output + ".tmp"
    try:
        with open(tmp, "wb") as f:
            files.export(engine, a.container, f)
        os.rename(tmp, a.output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


# -- stats ---------------------------------------------------------------------------------------
def cmd_stats(ctx: Any, a: argparse.Namespace) -> int:
    import time

    from rongqi.cli import output
    from rongqi.engine import stats as statsmod
    from rongqi.engine.stats import StatsSampler
    from rongqi.errors import UsageError
    if a.interval < 1:
        raise UsageError(f'"{a.interval}" is not a valid interval: it must be at least 1')
    engine = _engine(ctx)
    refs = list(a.containers)
    if a.latest:
        refs = [_pick(ctx, a, "stats")]
    sampler = StatsSampler(engine, refs, all=a.all)
    tty = sys.stdout.isatty()
    fmt = a.format
    while True:
        rows = sampler.sample()
        if fmt and output.gotemplate.is_json(fmt):
            import json
            text = json.dumps([r.json() for r in rows], indent=1) + "\n"   # podman's indent
        else:
            fields = [r.fields() for r in rows]
            if a.no_trunc:
                for f in fields:
                    f["ID"] = f["ContainerID"]
            text = output.render(fields, fmt or None, default="table " + statsmod.
                                 DEFAULT_STATS_FORMAT.replace("\t", " "),
                                 headers=statsmod.STATS_HEADERS)
        if tty and not a.no_stream and not a.no_reset:
            text = "\033[H\033[2J" + text   # home, clear: the table updated in place
        sys.stdout.write(text)
        sys.stdout.flush()
        if a.no_stream:
            return 0
        if refs and not sampler.any_running() and not a.all:
            return 0
        time.sleep(a.interval)


# -- top -----------------------------------------------------------------------------------------
def cmd_top(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.cli import output
    from rongqi.engine.stats import top
    args = list(a.descriptors)
    if a.latest and a.container:
        args.insert(0, a.container)
        a.container = None
    ref = _pick(ctx, a, "top")
    result = top(_engine(ctx), ref, args)
    if isinstance(result, str):    # ps(1) ran in the container: its own output
        sys.stdout.write(result)
        return 0
    print(output.tabwrite("\n".join("\t".join(row) for row in result)))
    return 0


# -- port ----------------------------------------------------------------------------------------
def cmd_port(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine import ports
    from rongqi.errors import EngineError, UsageError
    engine = _engine(ctx)
    if a.all:
        if a.container and not a.port:
            a.port, a.container = a.container, None
        if a.container:
            raise UsageError("no arguments are needed with --all")
        containers = [c for c in engine.list(all=False)]
    else:
        if a.latest and a.container and not a.port:
            a.port, a.container = a.container, None
        ref = _pick(ctx, a, "port")
        from rongqi.engine import lifecycle
        containers = [lifecycle.synced(engine, engine.get(ref))]
    want = ports.parse_private(a.port) if a.port else None
    for c in containers:
        found = False
        for m in _published(c):
            prefix = f"{c.id[:12]}\t" if a.all else ""
            if want is None:
                print(prefix + m.line())
            elif (m.container_port, m.protocol) == want:
                print(prefix + m.host())
                found = True
        if want is not None and not found and not a.all:
            raise EngineError(f'failed to find published port "{want[0]}/{want[1]}"')
    return 0


def _published(c: Any) -> list:
    """The ports as the network set them up (host ports chosen for -P and `-p 80`), else
    what create recorded."""
    from rongqi.engine import networks, ports
    assigned = networks.published(c)
    if assigned:
        return [ports.PortMapping.from_json(m) for m in assigned]
    return ports.container_ports(c.config, ports.exposed_ports(_spec_of(c)))


def _spec_of(c: Any) -> dict:
    import json
    import os
    try:
        with open(os.path.join(c.bundle, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
