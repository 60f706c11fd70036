"""rongqi-oci's command line: runc's commands, flags, outputs and exit codes.

Parses argv with a small table-driven parser (argparse costs ~3 ms of start-up)
and imports only the module of the command being run.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

    from rongqi.errors import UsageError

    Flag = tuple[str, str, str, Any]  # (long name, short name or "", kind, default)
    FlagTable = tuple[Flag, ...]
    Options = dict[str, Any]  # a command's flags as parsed: long name -> value

VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"
COMMIT = "unknown"

# Flag tables: (long name, short name or "", kind, default). kind is one of
# "str", "int", "bool", "list" (repeatable). Long names are accepted with one
# or two dashes and with "=value", as Go's flag package (urfave/cli) does.
GLOBAL_FLAGS = (
    ("root", "", "str", None),
    ("log", "", "str", ""),
    ("log-format", "", "str", "text"),
    ("debug", "", "bool", False),
    ("systemd-cgroup", "", "bool", False),
    ("rootless", "", "str", "auto"),
    ("criu", "", "str", ""),
    ("help", "h", "bool", False),
    ("version", "v", "bool", False),
)

_CREATE = (
    ("bundle", "b", "str", "."),
    ("console-socket", "", "str", ""),
    ("pidfd-socket", "", "str", ""),
    ("pid-file", "", "str", ""),
    ("no-pivot", "", "bool", False),
    ("no-new-keyring", "", "bool", False),
    ("preserve-fds", "", "int", 0),
)

# command -> (module under rongqi.oci.commands, flags, usage, one-line description)
COMMANDS: dict[str, tuple[str, FlagTable, str, str]] = {
    "create": ("create", _CREATE, "<container-id>", "create a container"),
    "start": ("start", (), "<container-id>", "executes the user defined process in a created container"),
    "run": (
        "run",
        _CREATE + (("detach", "d", "bool", False), ("keep", "", "bool", False)),
        "<container-id>",
        "create and run a container",
    ),
    "state": ("state", (), "<container-id>", "output the state of a container"),
    "kill": ("kill", (("all", "a", "bool", False),), "<container-id> [signal]", "kill sends the specified signal (default: SIGTERM) to the container's init process"),
    "delete": ("delete", (("force", "f", "bool", False),), "<container-id>", "delete any resources held by the container often used with detached container"),
    "list": ("list", (("format", "f", "str", "table"), ("quiet", "q", "bool", False)), "", "lists containers started by rongqi-oci with the given root"),
    "spec": ("spec", (("bundle", "b", "str", ""), ("rootless", "", "bool", False)), "", "create a new specification file"),
    "features": ("features", (), "", "show the enabled features"),
    "exec": (
        "exec",
        (
            ("console-socket", "", "str", ""),
            ("pidfd-socket", "", "str", ""),
            ("cwd", "", "str", ""),
            ("env", "e", "list", None),
            ("tty", "t", "bool", False),
            ("user", "u", "str", ""),
            ("additional-gids", "g", "list", None),
            ("process", "p", "str", ""),
            ("detach", "d", "bool", False),
            ("pid-file", "", "str", ""),
            ("process-label", "", "str", ""),
            ("apparmor", "", "str", ""),
            ("no-new-privs", "", "bool", False),
            ("cap", "c", "list", None),
            ("preserve-fds", "", "int", 0),
            ("cgroup", "", "list", None),
            ("ignore-paused", "", "bool", False),
        ),
        "<container-id> <command> [command options]",
        "execute new process inside the container",
    ),
    "pause": ("pause", (), "<container-id>", "pause suspends all processes inside the container"),
    "resume": ("resume", (), "<container-id>", "resumes all processes that have been previously paused"),
    "ps": ("ps", (("format", "f", "str", "table"),), "<container-id> [ps options]", "ps displays the processes running inside a container"),
    "events": ("events", (("interval", "", "str", "5s"), ("stats", "", "bool", False)), "<container-id>", "display container events such as OOM notifications, cpu, memory, and IO usage statistics"),
    "update": (
        "update",
        (
            ("resources", "r", "str", ""),
            ("blkio-weight", "", "int", None),
            ("cpu-period", "", "str", ""),
            ("cpu-quota", "", "str", ""),
            ("cpu-share", "", "str", ""),
            ("cpu-rt-period", "", "str", ""),
            ("cpu-rt-runtime", "", "str", ""),
            ("cpuset-cpus", "", "str", ""),
            ("cpuset-mems", "", "str", ""),
            ("cpu-idle", "", "str", ""),
            ("memory", "", "str", ""),
            ("memory-reservation", "", "str", ""),
            ("memory-swap", "", "str", ""),
            ("kernel-memory", "", "str", ""),
            ("kernel-memory-tcp", "", "str", ""),
            ("pids-limit", "", "int", None),
            ("l3-cache-schema", "", "str", ""),
            ("mem-bw-schema", "", "str", ""),
        ),
        "<container-id>",
        "update container resource constraints",
    ),
}

# runc's exec and ps stop flag parsing at the container id (urfave/cli's SkipArgReorder): what
# follows is the command, or ps' own options. Every other command takes its flags after the id too.
_STOP_AT_FIRST_ARG = {"exec", "ps"}


class Globals:
    """Global options, shared by every command."""

    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup")

    def __init__(self, opts: Options):
        self.root = opts["root"] or default_root()
        self.log = opts["log"]
        self.log_format = opts["log-format"]
        self.debug = opts["debug"]
        self.systemd_cgroup = opts["systemd-cgroup"]


def default_root() -> str:
    if os.geteuid() != 0:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg:
            return xdg + "/rongqi"
    return "/run/rongqi"


def _usage_error(msg: str) -> UsageError:
    from rongqi.errors import UsageError

    return UsageError(msg)


def parse_flags(table: FlagTable, argv: list[str], stop_at_first_arg: bool = True) -> tuple[Options, list[str]]:
    """Parse ``argv`` against ``table``; return (options, positional args).

    Without stop_at_first_arg, flags may follow the arguments, as urfave/cli v1 reorders them for
    runc (`update ID --memory 1G`): after the first argument, a dash-word that names a flag of the
    table is that flag, any other (`kill ID -9`) is an argument; "--" ends the flags.
    """
    opts: Options = {}
    by_name: dict[str, Flag] = {}
    for flag in table:
        name, short, kind, default = flag
        opts[name] = list(default or ()) if kind == "list" else default
        by_name[name] = flag
        if short:
            by_name[short] = flag
    args: list[str] = []
    i = 0
    n = len(argv)
    while i < n:
        a = argv[i]
        i += 1
        if a == "--":
            args.extend(argv[i:])
            break
        if len(a) < 2 or a[0] != "-":
            args.append(a)
            if stop_at_first_arg:
                args.extend(argv[i:])
                break
            continue
        body = a[2:] if a.startswith("--") else a[1:]
        value = None
        if "=" in body:
            body, value = body.split("=", 1)
        entry = by_name.get(body)
        if entry is None:
            if args:
                args.append(a)
                continue
            raise _usage_error(f"flag provided but not defined: -{body}")
        name, _, kind, _ = entry
        if kind == "bool":
            if value is None:
                opts[name] = True
            elif value.lower() in ("true", "1", "t"):
                opts[name] = True
            elif value.lower() in ("false", "0", "f"):
                opts[name] = False
            else:
                raise _usage_error(f"invalid boolean value {value!r} for flag --{name}")
            continue
        if value is None:
            if i >= n:
                raise _usage_error(f"flag needs an argument: --{name}")
            value = argv[i]
            i += 1
        if kind == "int":
            try:
                opts[name] = int(value, 0)
            except ValueError:
                raise _usage_error(f"invalid value {value!r} for flag --{name}: not an integer") from None
        elif kind == "list":
            opts[name].append(value)
        else:
            opts[name] = value
    return opts, args


def _version_text() -> str:
    return f"rongqi-oci version {VERSION}\ncommit: {COMMIT}\nspec: {SPEC_VERSION}\n"


def _help_text(command: str | None = None) -> str:
    if command:
        _, table, usage, desc = COMMANDS[command]
        lines = [f"usage: rongqi-oci {command} [command options] {usage}", "", desc, "", "options:"]
        for name, short, kind, _default in table:
            flag = f"--{name}" + (f", -{short}" if short else "")
            lines.append(f"   {flag:<28} {'' if kind == 'bool' else kind}")
        return "\n".join(lines) + "\n"
    lines = ["usage: rongqi-oci [global options] command [command options] [arguments...]", "", "commands:"]
    for name, (_, _, _, desc) in COMMANDS.items():
        lines.append(f"   {name:<10} {desc}")
    lines += ["", "global options:"]
    for name, short, kind, _default in GLOBAL_FLAGS:
        flag = f"--{name}" + (f", -{short}" if short else "")
        lines.append(f"   {flag:<28} {'' if kind == 'bool' else kind}")
    return "\n".join(lines) + "\n"


class ErrorLog:
    """Where errors go: stderr always; with --log also the log file (json or text), through
    oci/log.py, which also takes the warnings and --debug lines.

    containerd's shim reads the last {"level":"error","msg":...} line of the log
    file and shows it as "OCI runtime create failed: <msg>".
    """

    def __init__(self, path: str = "", fmt: str = "text"):
        self.path = path
        self.fmt = fmt

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        from rongqi.oci import log

        log.configure(self.path, self.fmt, log.debug_enabled)
        log.emit_to_file(level, msg)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    log = ErrorLog()
    try:
        gopts, rest = parse_flags(GLOBAL_FLAGS, argv)
        log = ErrorLog(gopts["log"], gopts["log-format"])
        if gopts["rootless"] not in ("auto", "true", "false"):
            # Accepted for runc's command line; rongqi-oci finds out itself (not root, or root of
            # a user namespace) and acts as runc's "auto" does.
            raise _usage_error(f"invalid --rootless value {gopts['rootless']!r} (use auto, true or false)")
        if gopts["log-format"] not in ("text", "json"):
            raise _usage_error(f"invalid log-format: {gopts['log-format']} (use text or json)")
        if gopts["version"]:
            sys.stdout.write(_version_text())
            return 0
        if not rest or rest[0] == "help":
            if gopts["help"] or rest:
                sys.stdout.write(_help_text(rest[1] if len(rest) > 1 and rest[1] in COMMANDS else None))
                return 0
            sys.stdout.write(_help_text())
            return 0 if gopts["help"] else 1
        command, cargv = rest[0], rest[1:]
        entry = COMMANDS.get(command)
        if entry is None:
            raise _usage_error(f"no such command: {command} (see rongqi-oci --help)")
        module_name, table, _, _ = entry
        if "--help" in cargv[:1] or "-h" in cargv[:1]:
            sys.stdout.write(_help_text(command))
            return 0
        opts, args = parse_flags(table + (("help", "h", "bool", False),), cargv, command in _STOP_AT_FIRST_ARG)
        if opts.get("help"):
            sys.stdout.write(_help_text(command))
            return 0
        if gopts["log"] or gopts["debug"]:
            from rongqi.oci import log as runtime_log

            runtime_log.configure(gopts["log"], gopts["log-format"], gopts["debug"])
        if gopts["debug"]:
            # --debug: debug lines (oci/log.py), and errors come with their traceback (also
            # from the container's init).
            os.environ["RONGQI_DEBUG"] = "1"
            runtime_log.debug(f"rongqi-oci {VERSION}: {command} {' '.join(cargv)}")
        if gopts["systemd-cgroup"]:
            _check_systemd()
        g = Globals(gopts)
        module = __import__("rongqi.oci.commands." + module_name, fromlist=["run"])
        code: int = module.run(g, opts, args, log)
        return code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - the one place errors become a line
        from rongqi.errors import RongqiError

        if os.environ.get("RONGQI_DEBUG"):
            import traceback

            traceback.print_exc()
        if isinstance(err, RongqiError):
            msg = str(err)
            code = err.exit_code
        elif isinstance(err, OSError):
            # An OSError that escaped a command still names what failed.
            msg = _oserror_text(err)
            code = 1
        else:
            import traceback

            traceback.print_exc()
            msg = f"internal error: {type(err).__name__}: {err} (this is a bug in rongqi-oci; please report it)"
            code = 1
        log.write("error", msg)
        sys.stderr.write(f"rongqi-oci: {msg}\n")
        return code


def _oserror_text(err: OSError) -> str:
    from rongqi.errors import os_error_line

    return os_error_line(err)


def _check_systemd() -> None:
    # --systemd-cgroup asks systemd (over D-Bus) to make the cgroup; without
    # systemd as PID 1 nothing can answer.
    try:
        with open("/proc/1/comm") as f:
            comm = f.read().strip()
    except OSError:
        comm = ""
    if comm != "systemd" or not os.path.isdir("/run/systemd/system"):
        raise _usage_error(
            "--systemd-cgroup needs systemd as PID 1 (here PID 1 is "
            f"{comm or 'unknown'}); drop the flag to use cgroupfs"
        )
