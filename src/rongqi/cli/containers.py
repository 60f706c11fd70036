"""Container lifecycle commands: create, start, stop, restart, kill, rm, ps, inspect, wait,
rename, pause, unpause, container exists, container prune (owner: engine core).

Each handler parses flags, calls the engine and prints podman's output; errors are podman's
`Error: ...` lines and exit codes. Commands over several containers go on after an error
and report each one, exiting with the last error's code, as podman does.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


# -- helpers -------------------------------------------------------------------------------------
def _each(refs: list[str], fn: Any, *, codes: dict[type, int] | None = None,
          ignore: tuple[type, ...] = ()) -> int:
    """fn(ref) for each ref; print an `Error:` line for each failure (`ignore`d kinds are
    skipped silently); return the last failure's exit code (0 if none)."""
    from rongqi.cli.main import exit_code
    from rongqi.errors import RongqiError
    last = 0
    for ref in refs:
        try:
            fn(ref)
        except RongqiError as e:
            if ignore and isinstance(e, ignore):
                continue
            print(f"Error: {e}", file=sys.stderr)
            last = next((code for kind, code in (codes or {}).items() if isinstance(e, kind)),
                        exit_code(e))
    return last


def _refs(ctx: Any, a: argparse.Namespace, what: str, *, running: bool = False) -> list[str]:
    """The containers a command acts on: the names given, --cidfile's, or --all's (ids)."""
    from rongqi.errors import UsageError
    refs = list(getattr(a, "names", []) or [])
    for path in getattr(a, "cidfile", None) or []:
        try:
            with open(path) as f:
                refs.append(f.read().strip())
        except OSError as e:
            raise UsageError(f"reading CIDFile: {e.strerror}: {path}") from None
    if getattr(a, "all", False):
        if refs:
            raise UsageError(f"--all and container names cannot be used together with {what}")
        cs = ctx.engine.list(all=True)
        if getattr(a, "filter", None):
            from rongqi.engine.lifecycle import filtered
            cs = filtered(ctx.engine, cs, a.filter)
        if running:
            from rongqi.engine import status as st
            cs = [c for c in cs if c.status in st.ALIVE]
        return [c.id for c in cs]
    if getattr(a, "latest", False):
        cs = ctx.engine.list(all=True)
        return [cs[0].id] if cs else []
    if not refs:
        raise UsageError(f"{what} requires at least one argument")
    return refs


def _timeout(a: argparse.Namespace) -> float | None:
    t = getattr(a, "time", None)
    if t is None:
        return None
    return float("inf") if t < 0 else float(t)


# -- create / start ------------------------------------------------------------------------------
def cmd_create(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.cli.run_flags import options_from_args
    from rongqi.image.progress import LineProgress, Progress
    opts = options_from_args(a)
    progress = Progress() if getattr(a, "quiet", False) else LineProgress(sys.stderr)
    c = ctx.engine.create(opts, progress=progress, create_command=["rongqi", *sys.argv[1:]])
    for w in getattr(c, "warnings", []):
        print(f"WARN[0000] {w}", file=sys.stderr)
    print(c.id)
    return 0


def cmd_start(ctx: Any, a: argparse.Namespace) -> int:
    if a.attach or a.interactive:
        from rongqi.cli import run
        return run.start_attached(ctx, a)
    if a.all and a.names:
        from rongqi.errors import UsageError
        raise UsageError("either start all containers or the container(s) provided in the "
                         "arguments")
    refs = _refs(ctx, a, "start")
    if a.all:
        # podman's start --all: the containers that are not running (a running one is
        # neither started again nor printed)
        from rongqi.engine import status as st
        refs = [r for r in refs if ctx.engine.get(r).status not in st.ALIVE]
    if a.filter and not a.all:
        # podman: --filter narrows the containers named too
        from rongqi.engine.lifecycle import filtered
        keep = {c.id for c in filtered(ctx.engine, [ctx.engine.get(r) for r in refs], a.filter)}
        refs = [r for r in refs if ctx.engine.get(r).id in keep]

    def one(ref: str) -> None:
        ctx.engine.start(ref)
        print(ref)
    return _each(refs, one)


# -- stop / restart / kill -----------------------------------------------------------------------
def cmd_stop(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.errors import NoSuchContainer
    refs = _refs(ctx, a, "stop")
    timeout = _timeout(a)

    def one(ref: str) -> None:
        ctx.engine.stop(ref, timeout)
        print(ref)
    return _each(refs, one, ignore=(NoSuchContainer,) if a.ignore else ())


def cmd_restart(ctx: Any, a: argparse.Namespace) -> int:
    refs = _refs(ctx, a, "restart", running=a.running)
    timeout = _timeout(a)

    def one(ref: str) -> None:
        c = ctx.engine.restart(ref, timeout)
        print(c.id if a.all else ref)
    return _each(refs, one)


def cmd_kill(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.engine.runtime import podman_signal
    # a bad signal is one error, before any container is touched; "-HUP" is HUP (podman's)
    a.signal = str(podman_signal(a.signal))
    refs = _refs(ctx, a, "kill", running=True)

    def one(ref: str) -> None:
        ctx.engine.kill(ref, a.signal)
        print(ref)
    return _each(refs, one)


# -- rm / prune ----------------------------------------------------------------------------------
def cmd_rm(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.errors import NoSuchContainer, UsageError
    if a.time is not None and not a.force:
        raise UsageError("--force must be specified to use the --time option")
    refs = _refs(ctx, a, "rm")
    timeout = _timeout(a)

    def one(ref: str) -> None:
        cid = ctx.engine.remove(ref, force=a.force, volumes=a.volumes, timeout=timeout)
        print(cid if a.all else ref)
    # podman rm: 1 for a container that does not exist, 2 for one running without -f;
    # with --force (or --ignore) a missing one is no error at all.
    return _each(refs, one, codes={NoSuchContainer: 1},
                 ignore=(NoSuchContainer,) if a.ignore or a.force else ())


def cmd_prune(ctx: Any, a: argparse.Namespace) -> int:
    if not a.force:
        print("WARNING! This will remove all non running containers.\n"
              "Are you sure you want to continue? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline() if sys.stdin and not sys.stdin.closed else ""
        if not answer:
            from rongqi.errors import EngineError
            print()
            raise EngineError("EOF")  # podman's words for no answer at all
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    for cid in ctx.engine.prune(a.filter):
        print(cid)
    return 0


# -- pause / unpause / rename / exists -----------------------------------------------------------
def cmd_pause(ctx: Any, a: argparse.Namespace) -> int:
    refs = _refs(ctx, a, "pause", running=True)

    def one(ref: str) -> None:
        ctx.engine.pause(ref)
        print(ref)
    return _each(refs, one)


def cmd_unpause(ctx: Any, a: argparse.Namespace) -> int:
    if a.all:
        from rongqi.engine import status as st
        refs = [c.id for c in ctx.engine.list(all=True) if c.status == st.PAUSED]
    else:
        refs = _refs(ctx, a, "unpause")

    def one(ref: str) -> None:
        ctx.engine.unpause(ref)
        print(ref)
    return _each(refs, one)


def cmd_rename(ctx: Any, a: argparse.Namespace) -> int:
    ctx.engine.rename(a.container, a.new_name)
    return 0


def cmd_exists(ctx: Any, a: argparse.Namespace) -> int:
    return 0 if ctx.engine.exists(a.name) else 1


# -- wait ----------------------------------------------------------------------------------------
def cmd_wait(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.cli.run_flags import parse_duration
    interval = parse_duration(a.interval) if a.interval else 0.25
    refs = _refs(ctx, a, "wait")

    def one(ref: str) -> None:
        from rongqi.errors import NoSuchContainer
        try:
            print(ctx.engine.wait(ref, a.condition or None, interval=min(interval, 0.25)))
        except NoSuchContainer:
            if not a.ignore:
                raise
            print(-1)  # podman's mark for a container that is not there
    if not refs and a.latest and a.ignore:
        print(-1)
    return _each(refs, one)


# -- ps ------------------------------------------------------------------------------------------
PS_HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "CreatedHuman": "CREATED",
              "CreatedAt": "CREATED AT", "RunningFor": "RUNNING FOR", "Command": "COMMAND",
              "Image": "IMAGE", "Status": "STATUS", "Ports": "PORTS", "Size": "SIZE",
              "State": "STATE", "ImageID": "IMAGE ID", "Labels": "LABELS", "Mounts": "MOUNTS",
              "Pid": "PID", "ExitCode": "EXIT CODE", "Restarts": "RESTARTS",
              "Networks": "NETWORKS", "Pod": "POD ID", "PodName": "PODNAME"}
PS_DEFAULT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t"
              "{{.Ports}}\t{{.Names}}")
SORT_KEYS = {"command": "Command", "created": "Created", "id": "ID", "image": "Image",
             "names": "Names", "runningfor": "Created", "size": "Size", "status": "Status"}


def _unix(text: str) -> int:
    from rongqi.engine.records import parse_time
    t = parse_time(text)
    return int(t.timestamp()) if t else 0


def _size(ctx: Any, c: Any) -> tuple[int, int]:
    from rongqi.engine.usage import container_size
    return container_size(ctx.engine, c)


class PsRow(dict):  # type: ignore[type-arg]
    """A `ps` row as templates see podman's psReporter: its fields, and its method
    `{{.Label "key"}}` (the label's value, "" when the container has none)."""

    template_methods = ("Label",)

    def Label(self, name: str) -> str:  # noqa: N802 - Go's method name
        return str((self.get("Labels") or {}).get(name, ""))


def ps_row(ctx: Any, c: Any, *, no_trunc: bool = False, size: bool = False) -> dict[str, Any]:
    from rongqi.cli import output
    from rongqi.engine import status as st
    s = c.state
    command = " ".join(c.config.get("command", []))
    if not no_trunc and len(command) > 17:
        command = command[:17] + "..."  # podman's psReporter.Command
    health = (s.get("health") or {}).get("status", "") if c.config.get("healthcheck") else ""
    status = output.status_text(c.status, started_at=s.get("started_at"),
                                finished_at=s.get("finished_at"),
                                exit_code=s.get("exit_code", 0), health=health)
    created = c.config.get("created", "")
    row: dict[str, Any] = {
        "ID": output.short_id(c.id, no_trunc),
        "Image": c.config.get("image_name", ""),
        "ImageID": output.short_id(c.config.get("image_id", ""), no_trunc),
        "Command": command,
        "CreatedHuman": output.ago(created),
        "CreatedAt": output.go_time(created),
        "Created": output.go_time(created),
        "RunningFor": output.since_text(created),
        "Status": status,
        "State": c.status,
        "Ports": "",
        "Names": c.name,
        "Labels": c.config.get("labels") or {},
        "Mounts": ",".join(m.get("Destination", "") for m in c.config.get("mounts", [])),
        "Pid": s.get("pid", 0) if c.status in st.ALIVE else 0,
        "ExitCode": s.get("exit_code", 0),
        "Exited": c.status == st.EXITED,
        "ExitedAt": _unix(s.get("finished_at", "")),
        "StartedAt": _unix(s.get("started_at", "")),
        "Restarts": s.get("restart_count", 0),
        "Networks": "",
        "Pod": "",
        "PodName": "",
        "AutoRemove": bool(c.config.get("options", {}).get("remove")),
        "IsInfra": False,
        "Size": "",
    }
    if size:
        rw, virtual = _size(ctx, c)
        row["Size"] = f"{output.human_size(rw)} (virtual {output.human_size(virtual)})"
    return row


def ps_json(c: Any, row: dict[str, Any]) -> dict[str, Any]:
    """podman ps --format json: its ListContainer shape (podman 4.3's keys)."""
    return {
        "AutoRemove": row["AutoRemove"], "Command": c.config.get("command", []),
        "CreatedAt": row["CreatedHuman"], "Exited": row["Exited"],
        "ExitedAt": row["ExitedAt"] or -62135596800, "ExitCode": row["ExitCode"],
        "Id": c.id, "Image": row["Image"], "ImageID": c.config.get("image_id", "")
        .removeprefix("sha256:"), "IsInfra": False, "Labels": row["Labels"] or None,
        "Mounts": [m.get("Destination", "") for m in c.config.get("mounts", [])],
        "Names": [c.name], "Namespaces": {}, "Networks": [],
        "Pid": row["Pid"], "Pod": "", "PodName": "", "Ports": None,
        "Size": None, "StartedAt": row["StartedAt"], "State": c.status,
        "Status": row["Status"], "Created": _unix(c.config.get("created", "")),
    }


def cmd_ps(ctx: Any, a: argparse.Namespace) -> int:
    from rongqi.cli import output
    from rongqi.engine.lifecycle import filtered
    from rongqi.errors import UsageError
    if a.sort and a.sort not in SORT_KEYS:
        raise UsageError(f'invalid option for --sort, options are: '
                         f'{", ".join(sorted(SORT_KEYS))}')
    cs = ctx.engine.list(all=a.all or a.last is not None or a.latest or bool(a.filter))
    if a.filter:
        cs = filtered(ctx.engine, cs, a.filter)
        if not a.all and not any(f.startswith(("status=", "exited=")) for f in a.filter):
            from rongqi.engine import status as st
            cs = [c for c in cs if c.status in st.ALIVE]
    if a.latest:
        cs = cs[:1]
    elif a.last is not None and a.last >= 0:
        cs = cs[:a.last]
    rows = [PsRow(ps_row(ctx, c, no_trunc=a.no_trunc, size=a.size)) for c in cs]
    if a.sort:
        key = SORT_KEYS[a.sort]
        order = sorted(range(len(rows)), key=lambda i: (cs[i].config.get("created", "")
                                                        if key == "Created" else rows[i][key]))
        cs, rows = [cs[i] for i in order], [rows[i] for i in order]
    if a.quiet:
        for r in rows:
            print(r["ID"])
        return 0
    default = PS_DEFAULT + ("\t{{.Size}}" if a.size else "")
    sys.stdout.write(output.render(rows, a.format, default=default, headers=PS_HEADERS,
                                   noheading=a.noheading, name="ps",
                                   json_data=[ps_json(c, r) for c, r in zip(cs, rows)]))
    return 0


# -- inspect -------------------------------------------------------------------------------------
def _inspect_objects(ctx: Any, names: list[str], kind: str, size: bool) -> tuple[list[Any], int]:
    """(the objects found, the exit code): each missing one is an `Error:` line."""
    from rongqi.errors import NoSuchContainer, RongqiError
    found: list[Any] = []
    code = 0
    for name in names:
        obj = None
        if kind in ("all", "container"):
            try:
                obj = ctx.engine.inspect(name)
                if size:
                    c = ctx.engine.get(name)
                    rw, virtual = _size(ctx, c)
                    obj["SizeRw"], obj["SizeRootFs"] = rw, virtual
            except NoSuchContainer:
                obj = None
        if obj is None and kind in ("all", "image"):
            from rongqi.cli.main import _inspect_one
            from rongqi.image.errors import ImageError
            try:
                obj = _inspect_one(ctx, name)
            except ImageError:
                obj = None
        if obj is None and kind in ("all", "volume"):
            try:
                obj = ctx.engine.volumes.get(name).inspect()
            except RongqiError:
                obj = None
        if obj is None:
            what = {"container": "no such container", "image": "no such image",
                    "volume": "no such volume"}.get(kind, "no such object")
            print(f'Error: inspecting object: {what}: "{name}"' if kind == "all"
                  else f"Error: inspecting object: {what} {name}", file=sys.stderr)
            code = 125
            continue
        found.append(obj)
    return found, code


def cmd_inspect(ctx: Any, a: argparse.Namespace, kind: str | None = None) -> int:
    from rongqi.cli import output
    from rongqi.errors import UsageError
    kind = kind or a.type
    if kind not in ("all", "container", "image", "volume"):
        raise UsageError(f'invalid type "{kind}": must be one of container, image, volume, '
                         "all")
    names = list(a.names)
    if getattr(a, "latest", False):
        cs = ctx.engine.list(all=True)
        names = [cs[0].id] if cs else []
    if not names:
        raise UsageError("inspect requires at least one argument")
    found, code = _inspect_objects(ctx, names, kind, a.size)
    if a.format and not output.gotemplate.is_json(a.format):
        if found:
            sys.stdout.write(output.render_each(found, a.format, name="inspect"))
    else:
        sys.stdout.write(output.inspect_json(found) + "\n")
    return code


def cmd_container_inspect(ctx: Any, a: argparse.Namespace) -> int:
    return cmd_inspect(ctx, a, "container")


# -- argv ----------------------------------------------------------------------------------------
def _names(sp: argparse.ArgumentParser, *, all: bool = True, cidfile: bool = False,
           latest: bool = False) -> None:
    sp.add_argument("names", nargs="*", metavar="CONTAINER")
    if all:
        sp.add_argument("-a", "--all", action="store_true")
    if cidfile:
        sp.add_argument("--cidfile", action="append", default=[])
    if latest:
        sp.add_argument("-l", "--latest", action="store_true",
                        help="the latest container created")


def _time(sp: argparse.ArgumentParser, default: int | None = None) -> None:
    # --timeout: podman's other spelling (its stop and restart take both)
    sp.add_argument("-t", "--time", "--timeout", type=int, default=default, metavar="SECONDS",
                    help="seconds to wait for the stop signal before SIGKILL (default: the "
                         "container's stop timeout, 10)")


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["container"]`."""
    from rongqi.cli import run_flags
    container = groups["container"]

    def both(names: list[str], fn: Any, help: str, args: Any, *,
             container_names: list[str] | None = None, top_level: bool = True) -> None:
        if top_level:
            args(add(names, fn, help, top))
        args(add(container_names or names, fn, help, container))

    def create_args(sp: argparse.ArgumentParser) -> None:
        run_flags.add_create_flags(sp, run=False)
        sp.add_argument("-q", "--quiet", action="store_true", help="no pull progress")

    def start_args(sp: argparse.ArgumentParser) -> None:
        _names(sp, all=False, latest=True)
        sp.add_argument("--all", action="store_true")  # -a is --attach, as in podman
        sp.add_argument("-a", "--attach", action="store_true",
                        help="attach to the container's output (and stdin with -i)")
        sp.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
        sp.add_argument("--detach-keys", default=None)
        sp.add_argument("--sig-proxy", default=None)
        sp.add_argument("--filter", "-f", action="append", default=[])

    def stop_args(sp: argparse.ArgumentParser) -> None:
        _names(sp, cidfile=True, latest=True)
        _time(sp)
        sp.add_argument("-i", "--ignore", action="store_true",
                        help="a container that does not exist is not an error")
        sp.add_argument("--filter", action="append", default=[])

    def restart_args(sp: argparse.ArgumentParser) -> None:
        _names(sp, latest=True)
        _time(sp)
        sp.add_argument("--running", action="store_true", help="with --all: running ones only")

    def kill_args(sp: argparse.ArgumentParser) -> None:
        _names(sp, cidfile=True, latest=True)
        sp.add_argument("-s", "--signal", default="KILL")

    def rm_args(sp: argparse.ArgumentParser) -> None:
        _names(sp, cidfile=True, latest=True)
        sp.add_argument("-f", "--force", action="store_true",
                        help="stop a running or paused container first")
        sp.add_argument("-v", "--volumes", action="store_true",
                        help="remove the container's anonymous volumes too")
        sp.add_argument("-i", "--ignore", action="store_true",
                        help="a container that does not exist is not an error")
        sp.add_argument("--depend", action="store_true", help=argparse.SUPPRESS)
        sp.add_argument("--filter", action="append", default=[])
        _time(sp)

    def ps_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-a", "--all", action="store_true", help="all containers, not only "
                        "running ones")
        sp.add_argument("-q", "--quiet", action="store_true", help="ids only")
        sp.add_argument("-l", "--latest", action="store_true", help="the latest created")
        sp.add_argument("-n", "--last", type=int, default=None, help="the N latest created")
        sp.add_argument("-s", "--size", action="store_true", help="with sizes")
        sp.add_argument("--no-trunc", action="store_true", help="whole ids and commands")
        sp.add_argument("-f", "--filter", action="append", default=[],
                        help="name=, id=, status=, label=, ancestor=, exited=, before=, "
                        "since=, restart-policy=, health=")
        sp.add_argument("--format", default=None, help="a Go template, json or table ...")
        sp.add_argument("--noheading", action="store_true")
        sp.add_argument("--sort", default="", help="command, created, id, image, names, "
                        "runningfor, size, status")
        sp.add_argument("--external", action="store_true", help=argparse.SUPPRESS)
        sp.add_argument("--ns", action="store_true", help=argparse.SUPPRESS)

    def inspect_args(sp: argparse.ArgumentParser, *, typed: bool) -> None:
        sp.add_argument("names", nargs="*", metavar="NAME")
        sp.add_argument("-f", "--format", default=None)
        sp.add_argument("-s", "--size", action="store_true")
        sp.add_argument("-l", "--latest", action="store_true")
        if typed:
            sp.add_argument("-t", "--type", default="all",
                            help="container, image, volume or all")

    def wait_args(sp: argparse.ArgumentParser) -> None:
        _names(sp, all=False, latest=True)
        sp.add_argument("--condition", action="append", default=[],
                        help="stopped (default), exited, running, paused, created, healthy, ...")
        sp.add_argument("-i", "--interval", default="250ms")
        sp.add_argument("--ignore", action="store_true")

    def rename_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("container")
        sp.add_argument("new_name")

    def pause_args(sp: argparse.ArgumentParser) -> None:
        _names(sp, latest=True)
        sp.add_argument("--filter", action="append", default=[])

    both(["create"], cmd_create, "create a container (not started)", create_args)
    both(["start"], cmd_start, "start containers", start_args)
    both(["stop"], cmd_stop, "stop containers (stop signal, then SIGKILL)", stop_args)
    both(["restart"], cmd_restart, "restart containers", restart_args)
    both(["kill"], cmd_kill, "send a signal to containers", kill_args)
    both(["rm"], cmd_rm, "remove containers", rm_args, container_names=["rm", "remove"])
    both(["ps"], cmd_ps, "list containers", ps_args, container_names=["ls", "list", "ps"])
    inspect_args(add(["inspect"], cmd_inspect, "details of containers, images or volumes "
                     "as JSON", top), typed=True)
    inspect_args(add(["inspect"], cmd_container_inspect, "details of containers as JSON",
                     container), typed=False)
    both(["wait"], cmd_wait, "wait for containers to stop; print their exit codes", wait_args)
    both(["rename"], cmd_rename, "rename a container", rename_args)
    both(["pause"], cmd_pause, "pause containers", pause_args)
    both(["unpause"], cmd_unpause, "unpause containers", pause_args)
    exists = add(["exists"], cmd_exists, "exit 0 if the container exists, else 1", container)
    exists.add_argument("name")
    exists.add_argument("-e", "--external", action="store_true", help=argparse.SUPPRESS)
    prune = add(["prune"], cmd_prune, "remove every container that is not running", container)
    prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    prune.add_argument("--filter", action="append", default=[])
