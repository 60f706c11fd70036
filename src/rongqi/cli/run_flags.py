"""The flags of `run` and `create` (podman 4's), parsed into an engine.options.ContainerOptions
(owner: the bundle). register() adds no command of its own.

argparse keeps every value as the string the user typed; options_from_args() parses them with
podman's rules and wording (sizes, durations, signals, mounts, maps), raising one RongqiError
(`Error: ...`, exit 125) for the first bad value. Top-level imports stay light (argparse only).
"""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

# Go's strconv.ParseBool spellings: `--rm=false` as podman's (cobra's) bool flags take it.
_TRUE = ("true", "True", "TRUE", "t", "T", "1")
_FALSE = ("false", "False", "FALSE", "f", "F", "0")


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """run_flags adds flags to other modules' parsers (add_create_flags), no command."""


class _GoBool(argparse.Action):
    """`--x=true`, `--x=false` and Go's other spellings: the value is in the option string."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any):
        super().__init__(option_strings, dest, nargs=0, **kw)

    def __call__(self, parser: Any, ns: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(ns, self.dest, (option_string or "").partition("=")[2] in _TRUE)


def _bool_flag(p: argparse.ArgumentParser, names: list[str], dest: str, default: bool,
               help: str) -> None:
    """A Go-style bool flag: `--x`, `--x=true`, `--x=false` (no separate value).

    Two arguments, not one per spelling: each add_argument costs argparse tens of
    microseconds, and run/create have some 20 bool flags, built on every `rongqi run`."""
    p.add_argument(*names, dest=dest, action="store_true", default=default, help=help)
    spelled = [f"{name}={word}" for name in names if name.startswith("--")
               for word in _TRUE + _FALSE]
    if spelled:
        p.add_argument(*spelled, dest=dest, action=_GoBool, default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)


def add_create_flags(p: argparse.ArgumentParser, *, run: bool = True) -> None:
    """Every flag of podman 4's run/create, then IMAGE and COMMAND... (the rest of argv, so
    the command's own flags stay its own). -h is --hostname, as in podman (--help remains)."""
    p.conflict_handler = "resolve"  # takes -h away from --help
    p._optionals.conflict_handler = "resolve"
    a = p.add_argument
    app = "append"
    # identity and lifecycle
    a("--name", default="", help="the container's name (default: adjective_noun)")
    _bool_flag(p, ["--replace"], "replace", False, "remove a container of that name first")
    a("--cidfile", default="", help="write the container's id to this file")
    if run:
        _bool_flag(p, ["-d", "--detach"], "detach", False, "run in the background, print the id")
        a("--detach-keys", default=None, help='keys that detach (default "ctrl-p,ctrl-q")')
        _bool_flag(p, ["--sig-proxy"], "sig_proxy", True,
                   "forward the CLI's signals to the container (default true)")
    _bool_flag(p, ["-i", "--interactive"], "interactive", False, "keep stdin open")
    _bool_flag(p, ["-t", "--tty"], "tty", False, "allocate a pseudo-terminal")
    _bool_flag(p, ["--rm"], "rm", False, "remove the container when it exits")
    # process
    a("-e", "--env", action=app, default=[], help="K=V, or K (taken from this environment)")
    a("--env-file", action=app, default=[], help="a file of K=V lines")
    _bool_flag(p, ["--env-host"], "env_host", False, "take this whole environment")
    a("-w", "--workdir", default="", help="working directory inside the container")
    a("-u", "--user", default="", help="user[:group], by name or number (the image's files)")
    a("--group-add", action=app, default=[], help="more groups, by name or number")
    a("--entrypoint", default=None, help='a string or a JSON array; "" clears the image\'s')
    a("-h", "--hostname", default="", help="the container's hostname")
    # storage
    a("-v", "--volume", action=app, default=[],
      help="[SRC:]DST[:OPTS]: a host path (bind) or a volume name, or DST alone (anonymous)")
    a("--mount", action=app, default=[],
      help="type=bind|volume|tmpfs,src=...,dst=...[,ro][,options]")
    a("--tmpfs", action=app, default=[], help="DST[:OPTS]: a tmpfs")
    _bool_flag(p, ["--read-only"], "read_only", False, "a read-only root filesystem")
    _bool_flag(p, ["--read-only-tmpfs"], "read_only_tmpfs", True,
               "with --read-only, tmpfs on /tmp, /var/tmp and /run (default true)")
    # resources
    a("-m", "--memory", default=None, help="memory limit (b, k, m, g)")
    a("--memory-swap", default=None, help="memory plus swap limit; -1 unlimited")
    a("--memory-reservation", default=None, help="memory soft limit")
    a("--cpus", default=None, help="number of CPUs (quota/period)")
    a("--kernel-memory", default=None, help=argparse.SUPPRESS)  # podman: a no-op, warned
    a("--cpu-period", default=None, help="the CPU CFS period, microseconds")
    a("--cpu-quota", default=None, help="the CPU CFS quota, microseconds")
    a("-c", "--cpu-shares", default=None, help="CPU shares (relative weight)")
    a("--cpuset-cpus", default="", help="CPUs to run on (0-3, 0,1)")
    a("--cpuset-mems", default="", help="memory nodes to allocate from")
    a("--pids-limit", default=None, help="process limit (-1 unlimited; default 2048)")
    a("--ulimit", action=app, default=[], help="name=soft[:hard], or host")
    a("--shm-size", default=None, help="size of /dev/shm (default 64m)")
    a("--oom-score-adj", default=None, help="the OOM killer's adjustment (-1000..1000)")
    # security
    a("--cap-add", action=app, default=[], help="add capabilities (or ALL)")
    a("--cap-drop", action=app, default=[], help="drop capabilities (or ALL)")
    _bool_flag(p, ["--privileged"], "privileged", False,
               "all capabilities, no seccomp, the host's devices, no masked paths")
    a("--security-opt", action=app, default=[],
      help="seccomp=FILE|unconfined, no-new-privileges, label=disable, mask=P:P, unmask=ALL|P:P")
    a("--device", action=app, default=[], help="HOST[:CONTAINER][:PERMS]")
    a("--userns", default="", help="host, keep-id (rootless) or auto[:size=N]")
    a("--uidmap", action=app, default=[], help="CONTAINER:HOST:SIZE")
    a("--gidmap", action=app, default=[], help="CONTAINER:HOST:SIZE")
    _bool_flag(p, ["--init"], "init", False, "run an init (catatonit) as PID 1")
    a("--init-path", default="", help="the init binary")
    a("--sysctl", action=app, default=[], help="K=V: a namespaced sysctl")
    # lifecycle
    a("--restart", default="", help="no, on-failure[:N], always, unless-stopped")
    a("--stop-signal", default="", help="signal that stops the container (default the "
                                          "image's, else SIGTERM)")
    a("--stop-timeout", default=None, help="seconds before stop kills (default 10)")
    a("--timeout", default=None, help="seconds the container may run (0: no limit)")
    a("-l", "--label", action=app, default=[], help="K=V metadata")
    a("--label-file", action=app, default=[], help="a file of K=V labels")
    a("--annotation", action=app, default=[], help="K=V for the OCI spec")
    a("--health-cmd", default=None, help='a command (or JSON array); "none" disables')
    a("--health-interval", default=None, help='between checks (default 30s; "disable")')
    a("--health-retries", default=None, help="failures before unhealthy (default 3)")
    a("--health-timeout", default=None, help="a check's time limit (default 30s)")
    a("--health-start-period", default=None, help="grace period (default 0s)")
    _bool_flag(p, ["--no-healthcheck"], "no_healthcheck", False, "ignore the image's check")
    # logs and image
    a("--log-driver", default="", help="k8s-file (default), json-file, none, passthrough")
    a("--log-opt", action=app, default=[], help="max-size=SIZE, max-file=N, path=FILE, tag=T")
    a("--pull", default="missing", help="missing, always, never, newer")
    a("--platform", default="", help="os/arch[/variant] of the image to pull")
    a("--arch", default="", help="the architecture of the image to pull")
    a("--os", default="", help="the OS of the image to pull")
    _bool_flag(p, ["--tls-verify"], "tls_verify", True, "check the registry's certificate")
    # network
    a("--network", "--net", default="",
      help="bridge (default), NAME[,NAME], none, host, container:NAME, "
           "slirp4netns[:OPTIONS], pasta[:OPTIONS]")
    a("--network-alias", action=app, default=[], help="another DNS name on the network")
    a("--ip", default="", help="the container's IPv4 address")
    a("--mac-address", default="", help="the container's MAC address")
    a("--dns", action=app, default=[], help="a nameserver")
    a("--dns-search", action=app, default=[], help="a search domain")
    a("--dns-option", "--dns-opt", action=app, default=[], help="a resolv.conf option")
    a("--add-host", action=app, default=[], help="HOST:IP in /etc/hosts")
    p.add_argument("--no-hosts", action="store_true",
                   help="keep the image's /etc/hosts (no file of rongqi's over it)")
    a("-p", "--publish", action=app, default=[], help="[IP:][HOSTPORT:]PORT[/PROTO]")
    _bool_flag(p, ["-P", "--publish-all"], "publish_all", False, "publish every exposed port")
    p.add_argument("image", help="the image")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")


# -- parsing ------------------------------------------------------------------------------------
def _fail(message: str) -> Any:
    from rongqi.errors import UsageError
    raise UsageError(message)


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """docker/go-units RAMInBytes: 512, 64m, 1.5g, 10MiB, 1 GB (binary units)."""
    import re
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpPbB]?)(?:[iI]?[bB])?", text.strip())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration: 1h2m3.5s, 300ms, 10us; bare 0 allowed."""
    import re
    t = text.strip()
    if t in ("0", ""):
        if t == "":
            raise ValueError(f'time: invalid duration "{text}"')
        return 0.0
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", t)
    if not parts or "".join(n + u for n, u in parts) != t.lstrip("+"):
        raise ValueError(f'time: invalid duration "{text}"')
    return sum(float(n) * scale[u] for n, u in parts)


def _int_flag(value: str | None, flag: str, *, unsigned: bool = False) -> int | None:
    if value is None:
        return None
    try:
        n = int(value, 10)
        if unsigned and n < 0:
            raise ValueError
        return n
    except ValueError:
        fn = "ParseUint" if unsigned else "ParseInt"
        return _fail(f'invalid argument "{value}" for "{flag}" flag: strconv.{fn}: parsing '
                     f'"{value}": invalid syntax')


def _size_flag(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if what == "memory-swap" and value == "-1":
        return -1
    try:
        return parse_size(value)
    except ValueError as e:
        return _fail(f"invalid value for {what}: {e}")


def _kv_list(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            _fail(f"invalid {what}: {item!r}")
        out[k] = v
    return out


def _read_kv_file(path: str, what: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        _fail(f"{what}: open {path}: {(e.strerror or str(e)).lower()}")
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def parse_env(items: list[str], files: list[str], environ: dict[str, str]) -> dict[str, str]:
    """-e K=V, -e K (from the environment, dropped when unset), -e K* (every match), and
    --env-file lines of the same forms; later ones win."""
    import fnmatch
    out: dict[str, str] = {}

    def one(item: str) -> None:
        k, eq, v = item.partition("=")
        if not k or k.strip() != k or " " in k:
            _fail(f'invalid environment variable: "{item}"')
        if eq:
            out[k] = v
        elif k.endswith("*"):
            for name, value in environ.items():
                if fnmatch.fnmatchcase(name, k):
                    out[name] = value
        elif k in environ:
            out[k] = environ[k]

    for path in files:
        for line in _read_kv_file(path, f'parsing env file "{path}"'):
            one(line)
    for item in items:
        one(item)
    return out


def parse_entrypoint(text: str | None) -> list[str] | None:
    import json
    if text is None:
        return None
    if text == "":
        return []
    if text.lstrip().startswith("["):
        try:
            v = json.loads(text)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v
        except ValueError:
            pass
    return [text]


_VOLUME_OPTIONS = {"ro", "rw", "z", "Z", "U", "O", "copy", "nocopy", "bind", "rbind", "shared",
                   "rshared", "slave", "rslave", "private", "rprivate", "unbindable",
                   "runbindable", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "idmap",
                   "noatime", "atime", "relatime", "norelatime", "strictatime", "nostrictatime"}
_PROPAGATION = ("shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable",
                "runbindable")


def _check_dest(dest: str) -> str:
    if not dest.startswith("/"):
        _fail(f'invalid container path "{dest}", must be an absolute path')
    return dest


def _mount_options(opts: list[str]) -> tuple[bool, list[str]]:
    ro_rw = [o for o in opts if o in ("ro", "rw")]
    if len(ro_rw) > 1:
        _fail(f'invalid options "{", ".join(ro_rw)}", can only specify 1 \'rw\' or \'ro\' '
              "option")
    for o in opts:
        if o.partition("=")[0] not in _VOLUME_OPTIONS and not o.startswith("idmap="):
            _fail(f'invalid option type "{o}"')
    return "ro" in opts, [o for o in opts if o not in ("ro", "rw")]


def parse_volume(text: str, cwd: str) -> Any:
    """-v [SRC:]DST[:OPTS]: SRC a path (bind; relative to the current directory) or a volume
    name; DST alone is an anonymous volume."""
    import os

    from rongqi.engine.options import MountSpec
    parts = text.split(":")
    if len(parts) > 3:
        _fail(f"incorrect volume format, should be [host-dir:]ctr-dir[:option]: {text!r}")
    if len(parts) == 1:
        return MountSpec("volume", _check_dest(parts[0]))
    if len(parts) == 2 and parts[1] and not parts[1].startswith("/") and \
            parts[0].startswith("/") and all(o.partition("=")[0] in _VOLUME_OPTIONS
                                              for o in parts[1].split(",")):
        # DST:OPTS for an anonymous volume
        ro, extra = _mount_options(parts[1].split(","))
        return MountSpec("volume", parts[0], readonly=ro, options=extra)
    src, dest = parts[0], parts[1]
    if not src:
        _fail("host directory cannot be empty")
    ro, extra = _mount_options(parts[2].split(",")) if len(parts) == 3 else (False, [])
    _check_dest(dest)
    # :z and :Z relabel for SELinux; with none on the host podman says nothing, and neither do
    # we (a note on stderr is a line more in every `2>&1` that reads the command's output)
    if src.startswith(("/", ".")):
        return MountSpec("bind", dest, os.path.normpath(os.path.join(cwd, src)), readonly=ro,
                         options=extra)
    from rongqi.engine.volumes import _NAME
    if not _NAME.match(src):
        _fail(f'invalid volume name "{src}": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*')
    return MountSpec("volume", dest, src, readonly=ro, options=extra)


def parse_mount(text: str, cwd: str) -> Any:
    """--mount type=bind|volume|tmpfs with podman's keys."""
    import os

    from rongqi.engine.options import MountSpec
    fields = [f for f in text.split(",") if f]
    kv = {}
    flags = []
    for f in fields:
        k, eq, v = f.partition("=")
        if eq:
            kv[k.strip().lower()] = v
        else:
            flags.append(k.strip())
    kind = kv.pop("type", None)
    if kind is None:
        _fail("incorrect mount format: should be --mount type=<bind|tmpfs|volume>,"
              "[src=<host-dir|volume-name>,]target=<ctr-dir>[,options]")
    if kind not in ("bind", "volume", "tmpfs"):
        _fail(f'invalid filesystem type "{kind}"')
    dest = kv.pop("dst", None) or kv.pop("destination", None) or kv.pop("target", None)
    src = kv.pop("src", None) or kv.pop("source", None) or ""
    if not dest:
        _fail("must set volume destination")
    _check_dest(dest)
    ro = False
    options: list[str] = []
    for f in flags:
        if f in ("ro", "readonly"):
            ro = True
        elif f == "rw":
            ro = False
        elif f in ("z", "Z", "U", "nocopy", "copy", "notmpcopyup", "tmpcopyup", "idmap",
                   "nosuid", "suid", "nodev", "dev", "noexec", "exec"):
            options.append(f)
        else:
            _fail(f"{f}: invalid mount option")
    for k, v in kv.items():
        if k in ("ro", "readonly"):
            ro = v.lower() in ("true", "1", "")
            if v.lower() not in ("true", "false", "1", "0", ""):
                _fail(f'invalid value for {k}: "{v}"')
        elif k == "rw":
            ro = v.lower() in ("false", "0")
        elif k == "bind-propagation":
            if v not in _PROPAGATION:
                _fail(f"invalid mount option {k}={v}")
            options.append(v)
        elif k == "bind-nonrecursive":
            if v.lower() in ("true", "1", ""):
                options.append("bind")
        elif k in ("relabel", "consistency"):
            continue  # no SELinux here; consistency is docker's no-op
        elif k in ("chown", "u"):
            if v.lower() in ("true", "1", ""):
                options.append("U")
        elif k == "tmpfs-size" and kind == "tmpfs":
            try:
                options.append(f"size={parse_size(v)}")
            except ValueError as e:
                _fail(str(e))
        elif k == "tmpfs-mode" and kind == "tmpfs":
            try:
                options.append(f"mode={int(v, 8):o}")
            except ValueError:
                _fail(f"invalid tmpfs-mode: {v!r}")
        elif k in ("volume-nocopy",) and kind == "volume":
            options.append("nocopy")
        elif k in ("idmap",):
            options.append("idmap")
        else:
            _fail(f"{k}: invalid mount option")
    if kind == "tmpfs":
        return MountSpec("tmpfs", dest, readonly=ro, options=options)
    if kind == "bind":
        if not src:
            _fail("must set source for bind mounts")  # podman's wording: source is required
        return MountSpec("bind", dest, os.path.normpath(os.path.join(cwd, src)), readonly=ro,
                         options=options)
    return MountSpec("volume", dest, src, readonly=ro, options=options)


def parse_tmpfs(text: str) -> Any:
    from rongqi.engine.options import MountSpec
    dest, _, opts = text.partition(":")
    _check_dest(dest)
    options = [o for o in opts.split(",") if o]
    ro = "ro" in options
    return MountSpec("tmpfs", dest, readonly=ro, options=[o for o in options if o not in
                                                          ("ro", "rw")])


def parse_ulimit(text: str) -> Any:
    from rongqi.engine.bundle import RLIMITS
    from rongqi.engine.options import Ulimit
    if text == "host":
        return Ulimit("host", -1, -1)
    prefix = f'ulimit option "{text}" requires name=SOFT:HARD, failed to be parsed: '
    name, eq, values = text.partition("=")
    if not eq:
        _fail(prefix + f"invalid ulimit argument: {text}")
    if name not in RLIMITS:
        _fail(prefix + f"invalid ulimit type: {name}")
    soft_s, _, hard_s = values.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        bad = soft_s if not soft_s.lstrip("-").isdigit() else hard_s
        return _fail(prefix + f'strconv.ParseInt: parsing "{bad}": invalid syntax')
    if soft == -1:
        soft = 2**64 - 1
    if hard == -1:
        hard = 2**64 - 1
    if soft > hard:
        _fail(prefix + f"ulimit soft limit must be less than or equal to hard limit: "
              f"{soft} > {hard}")
    return Ulimit(name, soft, hard)


def parse_idmap(items: list[str], kind: str) -> list[Any]:
    from rongqi.engine.options import IdMap
    out = []
    for item in items:
        parts = item.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            c, h, s = (int(x) for x in parts)
            if min(c, h) < 0 or s <= 0 or max(c, h, s) > 0xFFFFFFFF:
                raise ValueError
        except ValueError:
            return _fail(f'initializing ID mappings: {kind} setting is malformed expected '
                         f'["uint32:uint32:uint32"]: ["{item}"]')
        out.append(IdMap(c, h, s))
    return out


def parse_device(text: str) -> Any:
    from rongqi.engine.options import DeviceSpec
    parts = text.split(":")
    host = parts[0]
    ctr, perms = host, "rwm"
    if len(parts) == 2:
        if parts[1].startswith("/"):
            ctr = parts[1]
        else:
            perms = parts[1]
    elif len(parts) == 3:
        ctr, perms = parts[1], parts[2]
    elif len(parts) > 3:
        _fail(f"invalid device specification: {text}")
    if not perms or any(c not in "rwm" for c in perms) or len(set(perms)) != len(perms):
        _fail(f"invalid device mode: {perms}")
    if not ctr.startswith("/"):
        _fail(f"{ctr} is not an absolute path")
    return DeviceSpec(host, ctr, perms)


def parse_restart(text: str, remove: bool) -> Any:
    from rongqi.engine.options import RestartPolicy
    if not text:
        return RestartPolicy()
    name, colon, count = text.partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        _fail(f'running container create option: "{text}" is not a valid restart policy: '
              "invalid argument")
    retries = 0
    if colon:
        if name != "on-failure":
            _fail("restart policy retries can only be specified with on-failure restart "
                  "policy")
        try:
            retries = int(count)
        except ValueError:
            _fail(f'parsing restart policy retry count: strconv.Atoi: parsing "{count}": '
                  "invalid syntax")
        if retries < 0:
            _fail("must specify restart policy retry count as a number greater than 0")
    if remove and name != "no":
        _fail('the --rm option conflicts with --restart, when the restartPolicy is not "" '
              'and "no"')
    return RestartPolicy(name, retries)


def parse_security_opts(items: list[str], o: Any) -> None:
    import os
    for n, item in enumerate(items, 1):
        key, eq, value = item.partition("=")
        if not eq and item.startswith("no-new-privileges:"):
            key, eq, value = item.partition(":")  # podman takes NAME:VALUE here too
        if key == "no-new-privileges":
            if eq and value.lower() not in ("true", "false"):
                _fail(f'invalid --security-opt 2: "{item}"')
            o.no_new_privileges = not eq or value.lower() == "true"
        elif key == "seccomp" and eq and value:
            if value != "unconfined" and not os.path.isfile(value):
                _fail(f"opening seccomp profile failed: open {value}: no such file or "
                      "directory")
            o.seccomp_profile = value
        elif key == "label" and eq:
            # No SELinux here: label=disable is what every container gets; the other label
            # options (user:, role:, type:, level:, filetype:, nested) are accepted and moot.
            if value == "disable":
                o.label_disable = True
            elif not value.partition(":")[0] in ("user", "role", "type", "level", "filetype",
                                                 "nested"):
                _fail(f'invalid --security-opt 1: "{item}"')
        elif key == "mask" and eq:
            o.mask.extend(p for p in value.split(":") if p)
        elif key == "unmask" and eq:
            o.unmask.extend(p for p in value.split(":") if p)
        elif key in ("apparmor", "proc-opts", "seccomp-policy") and eq:
            continue  # no AppArmor on this host; the others have nothing to act on here
        else:
            _fail(f'invalid --security-opt 1: "{item}"')


def parse_healthcheck(ns: argparse.Namespace) -> Any:
    import json

    from rongqi.engine.options import Healthcheck
    if ns.health_cmd is None:
        return None
    cmd = ns.health_cmd
    if cmd.lower() == "none":
        return Healthcheck(test=["NONE"])
    if cmd.lstrip().startswith("["):
        try:
            v = json.loads(cmd)
            test = v if v and v[0] in ("CMD", "CMD-SHELL", "NONE") else ["CMD", *v]
        except ValueError:
            test = ["CMD-SHELL", cmd]
    else:
        test = ["CMD-SHELL", cmd]
    hc = Healthcheck(test=test)
    for flag, attr, default in (("interval", "interval", 30.0), ("timeout", "timeout", 30.0),
                                ("start-period", "start_period", 0.0)):
        value = getattr(ns, "health_" + attr)
        if value is None:
            setattr(hc, attr, default)
            continue
        if attr == "interval" and value == "disable":
            setattr(hc, attr, 0.0)
            continue
        try:
            secs = parse_duration(value)
        except ValueError as e:
            return _fail(f"invalid healthcheck-{flag}: {e}")
        if attr == "timeout" and secs < 1:
            _fail("healthcheck-timeout must be at least 1 second")
        setattr(hc, attr, secs)
    if ns.health_retries is not None:
        r = _int_flag(ns.health_retries, "--health-retries", unsigned=True)
        if r is not None and r < 1:
            _fail("healthcheck-retries must be greater than 0")
        hc.retries = r if r is not None else 3
    return hc


def _check_ip(text: str, message: str) -> str:
    import ipaddress
    try:
        ipaddress.ip_address(text)
    except ValueError:
        _fail(message)
    return text


def _check_publish(text: str) -> str:
    spec, _, proto = text.partition("/")
    if proto and proto not in ("tcp", "udp", "sctp"):
        _fail(f'invalid protocol "{proto}"')
    parts = spec.rsplit(":", 2) if not spec.startswith("[") else [spec]
    ctr = parts[-1]
    host = parts[-2] if len(parts) >= 2 else ""

    def ports(value: str, what: str) -> None:
        lo, dash, hi = value.partition("-")
        for p in ([lo, hi] if dash else [lo]):
            try:
                n = int(p)
            except ValueError:
                _fail(f"parsing {what} port: invalid port number: strconv.Atoi: parsing "
                      f'"{p}": invalid syntax')
            if not 1 <= n <= 65535:
                _fail(f"parsing {what} port: port numbers must be between 1 and 65535 "
                      f"(inclusive), got {n}")
    ports(ctr, "container")
    if host:
        ports(host, "host")
    return text


def _check_mac(text: str) -> str:
    import re
    if not re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", text):
        _fail(f"address {text}: invalid MAC address")
    return text


def options_from_args(ns: argparse.Namespace, environ: dict[str, str] | None = None,
                      cwd: str | None = None) -> Any:
    """The parsed flags -> ContainerOptions, every value checked with podman's wording."""
    import os

    from rongqi.engine.bundle import BundleError, signal_number
    from rongqi.engine.options import ContainerOptions
    environ = dict(os.environ) if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    o = ContainerOptions(image=ns.image, command=list(ns.command or []))
    if o.command[:1] == ["--"]:
        o.command = o.command[1:]
    o.name = ns.name
    o.replace = ns.replace
    o.cidfile = ns.cidfile
    o.detach = getattr(ns, "detach", False)
    o.interactive = ns.interactive
    o.tty = ns.tty
    o.remove = ns.rm
    o.sig_proxy = getattr(ns, "sig_proxy", True)
    o.detach_keys = getattr(ns, "detach_keys", None)
    if o.detach_keys:
        _check_detach_keys(o.detach_keys)
    o.env = parse_env(ns.env, ns.env_file, environ)
    o.env_host = ns.env_host
    if ns.workdir and not ns.workdir.startswith("/"):
        _fail(f'workdir "{ns.workdir}" must be absolute')
    o.workdir = ns.workdir
    o.user = ns.user
    o.group_add = [g for item in ns.group_add for g in item.split(",") if g]
    o.entrypoint = parse_entrypoint(ns.entrypoint)
    o.hostname = ns.hostname
    mounts = [parse_volume(v, cwd) for v in ns.volume]
    mounts += [parse_mount(m, cwd) for m in ns.mount]
    mounts += [parse_tmpfs(t) for t in ns.tmpfs]
    o.mounts = mounts
    o.read_only = ns.read_only
    o.read_only_tmpfs = ns.read_only_tmpfs
    o.memory = _size_flag(ns.memory, "memory")
    o.memory_swap = _size_flag(ns.memory_swap, "memory-swap")
    o.memory_reservation = _size_flag(ns.memory_reservation, "memory-reservation")
    if ns.cpus is not None:
        try:
            o.cpus = float(ns.cpus)
            if o.cpus < 0:
                raise ValueError
        except ValueError:
            _fail(f'invalid argument "{ns.cpus}" for "--cpus" flag: strconv.ParseFloat: '
                  f'parsing "{ns.cpus}": invalid syntax')
    o.cpu_shares = _int_flag(ns.cpu_shares, "-c, --cpu-shares", unsigned=True)
    # podman's conflicts, in its words (620-option-conflicts)
    for flag, value in (("--cpu-period", ns.cpu_period), ("--cpu-quota", ns.cpu_quota)):
        if value is not None and ns.cpus is not None:
            _fail(f"{flag} and --cpus cannot be set together")
    o.cpu_period = _int_flag(ns.cpu_period, "--cpu-period", unsigned=True)
    o.cpu_quota = _int_flag(ns.cpu_quota, "--cpu-quota")
    o.cpuset_cpus = _check_cpuset(ns.cpuset_cpus, "cpuset-cpus")
    o.cpuset_mems = _check_cpuset(ns.cpuset_mems, "cpuset-mems")
    o.pids_limit = _int_flag(ns.pids_limit, "--pids-limit")
    o.ulimits = [parse_ulimit(u) for u in ns.ulimit]
    if ns.shm_size is not None:
        try:
            o.shm_size = parse_size(ns.shm_size)
        except ValueError as e:
            _fail(f"unable to translate --shm-size: {e}")
    o.oom_score_adj = _int_flag(ns.oom_score_adj, "--oom-score-adj")
    if o.oom_score_adj is not None and not -1000 <= o.oom_score_adj <= 1000:
        _fail(f"invalid value {o.oom_score_adj} for --oom-score-adj: must be between -1000 "
              "and 1000")
    o.cap_add = [c for item in ns.cap_add for c in item.split(",") if c]
    o.cap_drop = [c for item in ns.cap_drop for c in item.split(",") if c]
    try:
        from rongqi.engine.bundle import _cap_name
        for c in o.cap_add + o.cap_drop:
            _cap_name(c)
    except BundleError as e:
        _fail(str(e))
    o.privileged = ns.privileged
    parse_security_opts(ns.security_opt, o)
    o.devices = [parse_device(d) for d in ns.device]
    mode = ns.userns
    if mode and not (mode in ("host", "keep-id", "private", "auto", "nomap")
                     or mode.startswith(("auto:", "keep-id:"))):
        _fail(f"unrecognized namespace mode {mode} passed")
    o.userns = mode.partition(":")[0] if mode.startswith("keep-id") else mode
    o.uidmap = parse_idmap(ns.uidmap, "UID")
    o.gidmap = parse_idmap(ns.gidmap, "GID")
    if (o.uidmap or o.gidmap) and o.userns not in ("", "private"):
        _fail("--userns and --uidmap/--gidmap are mutually exclusive")
    o.init = ns.init
    o.init_path = ns.init_path
    if o.init_path and o.init and not os.path.isfile(o.init_path):
        _fail(f"container-init binary not found on the host: stat {o.init_path}: no such "
              "file or directory")
    for item in ns.sysctl:
        k, eq, v = item.partition("=")
        if not eq or not k:
            _fail(f"{item} is invalid, sysctl values must be in the form of KEY=VALUE")
        o.sysctls[k] = v
    o.restart = parse_restart(ns.restart, ns.rm)
    if ns.stop_signal:
        if ns.stop_signal.isdigit() and not 1 <= int(ns.stop_signal) <= 64:
            _fail("valid signals are 1 through 64")  # podman's words for 0 and past 64
        try:
            signal_number(ns.stop_signal)
        except BundleError as e:
            _fail(str(e))
    o.stop_signal = ns.stop_signal
    o.stop_timeout = _int_flag(ns.stop_timeout, "--stop-timeout", unsigned=True)
    o.timeout = _int_flag(ns.timeout, "--timeout", unsigned=True) or 0
    labels: dict[str, str] = {}
    for path in ns.label_file:
        labels.update(_kv_list(_read_kv_file(path, "unable to process labels"), "label"))
    labels.update(_kv_list(ns.label, "label"))
    o.labels = labels
    o.annotations = _kv_list(ns.annotation, "annotation")
    o.healthcheck = parse_healthcheck(ns)
    o.no_healthcheck = ns.no_healthcheck
    if o.no_healthcheck and o.healthcheck is not None:
        _fail("cannot specify both --no-healthcheck and --health-cmd")
    if ns.log_driver:
        if ns.log_driver not in ("k8s-file", "json-file", "none", "passthrough"):
            _fail("running container create option: invalid log driver: invalid argument")
        o.log_driver = ns.log_driver
    o.log_opts = _kv_list(ns.log_opt, "log option")
    if "max-size" in o.log_opts:
        try:
            parse_size(o.log_opts["max-size"])
        except ValueError as e:
            _fail(str(e))
    if "max-file" in o.log_opts and not o.log_opts["max-file"].isdigit():
        _fail(f'invalid max-file "{o.log_opts["max-file"]}": must be a number')
    if ns.pull not in ("missing", "always", "never", "newer"):
        _fail(f'unsupported pull policy "{ns.pull}"')
    o.pull = ns.pull
    o.tls_verify = ns.tls_verify
    if ns.network:
        o.network = ns.network
    if o.network.startswith("container:") and not o.network[10:]:
        _fail("container: network mode needs a container name or id")
    o.network_aliases = list(ns.network_alias)
    o.ip = _check_ip(ns.ip, f'"{ns.ip}" is not an ip address') if ns.ip else ""
    o.mac_address = _check_mac(ns.mac_address) if ns.mac_address else ""
    o.dns = [_check_ip(d, f"{d} is not an ip address") for d in ns.dns]
    o.dns_search = list(ns.dns_search)
    o.dns_option = list(ns.dns_option)
    if ns.no_hosts and ns.add_host:
        _fail("--no-hosts and --add-host cannot be set together")
    o.no_hosts = ns.no_hosts
    if ns.platform and (ns.arch or ns.os):
        _fail("--platform option can not be specified with --arch or --os")
    if ns.platform:
        o.platform = ns.platform
    elif ns.arch or ns.os:
        import os as _os
        machine = _os.uname().machine
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
        o.platform = f"{ns.os or 'linux'}/{ns.arch or arch}"
    for h in ns.add_host:
        host, colon, ip = h.partition(":")
        if not colon or not host:
            _fail(f'bad format for add-host: "{h}"')
        if ip != "host-gateway":
            _check_ip(ip.strip("[]"), f'invalid IP address in add-host: "{ip}"')
    o.add_host = list(ns.add_host)
    o.publish = [_check_publish(x) for x in ns.publish]
    if (o.publish or ns.publish_all) and (o.network in ("host", "none")
                                          or o.network.startswith("container:")):
        # podman's line (on stderr, before the container's output), and the ports go
        import sys
        print("Port mappings have been discarded as one of the Host, Container, Pod, and None "
              "network modes are in use", file=sys.stderr)
        o.publish, ns.publish_all = [], False
    if ns.kernel_memory is not None:
        from rongqi.engine.lifecycle import _warn
        _warn("The --kernel-memory flag is no longer supported. This flag is a noop.")
    o.publish_all = ns.publish_all
    return o


def _check_cpuset(text: str, what: str) -> str:
    import re
    if text and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", text):
        _fail(f"invalid value {text!r} for --{what}")
    return text


def _check_detach_keys(keys: str) -> None:
    import re
    for k in keys.split(","):
        if not re.fullmatch(r"ctrl-[a-z@\[\\\]^_]|[a-z]", k):
            _fail(f"invalid detach keys: {keys}")
