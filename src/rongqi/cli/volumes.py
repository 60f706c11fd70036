"""`volume create/ls/inspect/rm/prune/exists` (owner: the bundle): podman 4's flags, output
and exit codes over engine.volumes (no such volume 1, in use 2, else 125)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands under `groups["volume"]`."""
    vol = groups["volume"]
    sp = add(["create"], cmd_create, "make a volume", vol)
    sp.add_argument("name", nargs="?", default="")
    sp.add_argument("-d", "--driver", default="local", help="volume driver (local)")
    sp.add_argument("-l", "--label", action="append", default=[], help="K=V metadata")
    sp.add_argument("-o", "--opt", action="append", default=[],
                    help="type=FS, device=DEV, o=MOUNT_OPTIONS, uid=N, gid=N, nocopy")
    sp.add_argument("--ignore", action="store_true", help="no error if it exists already")

    sp = add(["ls", "list"], cmd_ls, "list volumes", vol)
    sp.add_argument("-q", "--quiet", action="store_true", help="names only")
    sp.add_argument("-f", "--filter", action="append", default=[],
                    help="name=, driver=, label=K[=V], label!=, opt=, dangling=true|false")
    sp.add_argument("--format", default="", help="a Go template, or json")
    sp.add_argument("-n", "--noheading", action="store_true")

    sp = add(["inspect"], cmd_inspect, "show volumes as JSON", vol)
    sp.add_argument("names", nargs="*")
    sp.add_argument("-a", "--all", action="store_true")
    sp.add_argument("-f", "--format", default="", help="a Go template")

    sp = add(["rm", "remove"], cmd_rm, "remove volumes", vol)
    sp.add_argument("names", nargs="*")
    sp.add_argument("-f", "--force", action="store_true",
                    help="also remove the containers that use them")
    sp.add_argument("-a", "--all", action="store_true")
    sp.add_argument("-t", "--time", type=int, default=None,
                    help="seconds to wait for a container to stop (with -f)")

    sp = add(["prune"], cmd_prune, "remove the volumes no container uses", vol)
    sp.add_argument("-f", "--force", action="store_true", help="do not ask")
    sp.add_argument("--filter", action="append", default=[])

    sp = add(["exists"], cmd_exists, "exit 0 if the volume exists, 1 if not", vol)
    sp.add_argument("name")


# -- helpers ------------------------------------------------------------------------------------
def _engine(ctx: Any) -> Any:
    eng = getattr(ctx, "engine", None)
    if eng is not None:
        return eng
    try:
        from rongqi.engine import Engine
    except ImportError:
        return _NoContainers(ctx.root)  # before the engine's containers exist: none use one
    return Engine(root=ctx.root)


class _NoContainers:
    def __init__(self, root: str):
        from rongqi.engine.volumes import VolumeStore
        self.root = root
        self.volumes = VolumeStore(root)

    def list(self, all: bool = False) -> list[Any]:
        return []


def _store(ctx: Any) -> Any:
    return _engine(ctx).volumes


def _error(e: Exception) -> int:
    print(f"Error: {e}", file=sys.stderr)
    return int(getattr(e, "exit_code", 125))


def _kv(items: list[str], what: str) -> dict[str, str]:
    from rongqi.errors import UsageError
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise UsageError(f"invalid {what} {item!r}: want KEY=VALUE")
        out[k] = v
    return out


def _filters(items: list[str]) -> dict[str, list[str]]:
    from rongqi.errors import UsageError
    out: dict[str, list[str]] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq:
            raise UsageError(f'invalid filter "{item}": want KEY=VALUE')
        if k == "label" and v.startswith("!"):
            k, v = "label!", v[1:]
        out.setdefault(k, []).append(v)
    return out


def _render(rows: list[dict[str, Any]], fmt: str, *, default: str, headers: dict[str, str],
            noheading: bool = False) -> str:
    from rongqi.cli import output
    return output.render(rows, fmt, default=default, headers=headers, noheading=noheading)


def _dangling(engine: Any) -> set[str]:
    used: set[str] = set()
    for c in engine.list(all=True):
        used.update(c.config.get("volumes") or [])
    return used


# -- commands -----------------------------------------------------------------------------------
def cmd_create(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine.volumes import VolumeError
    options: dict[str, str] = {}
    for item in a.opt:
        k, eq, v = item.partition("=")
        options[k] = v if eq else ""
    try:
        vol = _store(ctx).create(a.name, driver=a.driver, labels=_kv(a.label, "label"),
                                 options=options, ignore_existing=a.ignore)
    except VolumeError as e:
        return _error(e)
    print(vol.name)
    return 0


def cmd_ls(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine.volumes import VolumeError, matches
    engine = _engine(ctx)
    filters = _filters(a.filter)
    dangling = filters.pop("dangling", None)
    try:
        vols = [v for v in engine.volumes.list() if matches(v, filters)]
    except VolumeError as e:
        return _error(e)
    if dangling:
        used = _dangling(engine)
        want = dangling[-1].lower() in ("true", "1")
        vols = [v for v in vols if (v.name not in used) == want]
    if a.quiet:
        for v in vols:
            print(v.name)
        return 0
    rows = [v.inspect() for v in vols]
    sys.stdout.write(_render(rows, a.format, default="table {{.Driver}}\t{{.Name}}",
                             headers={"Driver": "DRIVER", "Name": "VOLUME NAME"},
                             noheading=a.noheading))
    return 0


def cmd_inspect(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine.volumes import NoSuchVolume
    from rongqi.errors import UsageError
    store = _store(ctx)
    if a.all:
        vols = store.list()
    else:
        if not a.names:
            raise UsageError("provide one or more volume names or use --all")
        vols = []
        missing = []
        for n in a.names:
            try:
                vols.append(store.get(n))
            except NoSuchVolume:
                missing.append(n)
        if missing:
            # podman prints what it found, then the error for the first it did not.
            if vols:
                from rongqi.cli import output
                print(output.inspect_json([v.inspect() for v in vols]))
            print(f"Error: inspecting object: no such volume {missing[0]}", file=sys.stderr)
            return 125
    from rongqi.cli import output
    rows = [v.inspect() for v in vols]
    if a.format:
        sys.stdout.write(output.render_each(rows, a.format))
        return 0
    print(output.inspect_json(rows))
    return 0


def cmd_rm(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine.volumes import VolumeError
    from rongqi.errors import UsageError
    engine = _engine(ctx)
    store = engine.volumes
    if a.all and a.names:
        raise UsageError("when using the --all switch, you may not pass any volume names")
    if not a.all and not a.names:
        raise UsageError("choose either one or more volumes or use --all")
    names = [v.name for v in store.list()] if a.all else a.names
    rc = 0
    for name in names:
        try:
            store.remove(name, force=a.force, engine=engine, timeout=a.time)
        except VolumeError as e:
            rc = rc or _error(e)
            continue
        print(name)
    return rc


def cmd_prune(ctx: Any, a: argparse.Namespace) -> int:
    engine = _engine(ctx)
    store = engine.volumes
    filters = _filters(a.filter)
    if not a.force:
        print("WARNING! This will remove all volumes not used by at least one container. "
              "The following volumes will be removed:")
        used = _dangling(engine)
        from rongqi.engine.volumes import matches
        for v in store.list():
            if v.name not in used and matches(v, filters):
                print(v.name)
        sys.stdout.write("Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    for name in store.prune(engine, filters):
        print(name)
    return 0


def cmd_exists(ctx: Any, a: argparse.Namespace) -> int:
    return 0 if _store(ctx).exists(a.name) else 1
