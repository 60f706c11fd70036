"""Docker's vocabulary as the engine's values: the Engine API's create body (Config +
HostConfig + NetworkingConfig) -> ContainerOptions; a container's record -> Docker's inspect
and list JSON, its stats, top, changes and path stat. serve/containers.py and rongqi.api share it.

Create refuses what the engine cannot do with a 400 (UsageError) in Docker's words, rather
than dropping it: a client asking for --pid host must not get a container without it.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rongqi import units
from rongqi.errors import RongqiError, UsageError

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.options import ContainerOptions, MountSpec
    from rongqi.engine.records import Container

ZERO_TIME = "0001-01-01T00:00:00Z"
NS = 1_000_000_000
# Docker's byte figures: the minimum memory limit it accepts (daemon/daemon_unix.go).
MIN_MEMORY = 6 * 1024 * 1024
# Go's os.FileMode type bits, as X-Docker-Container-Path-Stat's "mode" carries them.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHARDEV = 1 << 21
MODE_STICKY = 1 << 20


class InvalidParameter(UsageError):
    """A create body (or query) Docker would answer with 400; str() is Docker's message."""


def _bad(message: str) -> InvalidParameter:
    return InvalidParameter(message)


def _check_cpus(nano: int, quota: int, period: int) -> None:
    """dockerd's checks of NanoCpus, CpuQuota and CpuPeriod, for create and update alike."""
    if nano and period:
        raise _bad("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and quota:
        raise _bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if nano < 0 or nano > ncpu * NS:
        raise _bad(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs "
                   "available")
    if period and not 1000 <= period <= 1_000_000:
        raise _bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                   "(i.e. 1000000)")
    if 0 < quota < 1000:
        raise _bad("CPU cfs quota can not be less than 1ms (i.e. 1000)")


# -- small Docker types -------------------------------------------------------------------------
def strslice(value: Any, what: str) -> list[str] | None:
    """Docker's StrSlice: null, a JSON string (one element, never split) or a list of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return list(value)
    raise _bad(f"json: cannot unmarshal {type(value).__name__} into Go struct field "
               f"{what} of type strslice.StrSlice")


def env_map(items: Sequence[str] | None) -> dict[str, str]:
    """Config.Env ["K=V", ...]; a bare "K" (Docker: unset K) sets nothing here."""
    out: dict[str, str] = {}
    for item in items or []:
        k, eq, v = str(item).partition("=")
        if not k:
            raise _bad(f'invalid environment variable: "{item}"')
        if eq:
            out[k] = v
    return out


def _port_key(key: str) -> tuple[str, str]:
    """"80/tcp" -> ("80", "tcp"); "80" -> ("80", "tcp"); ranges "80-81/udp" kept."""
    port, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise _bad(f"invalid proto: {proto}")
    lo, _, hi = port.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()) or not 0 < int(lo) <= 65535:
        raise _bad(f"invalid containerPort: {port}")
    return port, proto


def publish_list(bindings: Mapping[str, Any] | None) -> list[str]:
    """HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} as the
    engine's -p values: "8080:80/tcp", "127.0.0.1::80/tcp" (a random port), "80/tcp"."""
    out: list[str] = []
    for key, hosts in (bindings or {}).items():
        port, proto = _port_key(key)
        for h in hosts or [{}]:
            h = h or {}
            ip = str(h.get("HostIp") or "")
            hp = str(h.get("HostPort") or "")
            if hp:
                lo, _, hi = hp.partition("-")
                if not lo.isdigit() or (hi and not hi.isdigit()):
                    raise _bad(f"invalid hostPort: {hp}")
            if ":" in ip and not ip.startswith("["):
                ip = f"[{ip}]"
            if ip:
                out.append(f"{ip}:{hp}:{port}/{proto}")
            elif hp:
                out.append(f"{hp}:{port}/{proto}")
            else:
                out.append(f"{port}/{proto}")
    return out


def bind_mount(text: str) -> MountSpec:
    """One HostConfig.Binds entry "SRC:DST[:OPTS]": SRC absolute is a bind, else a named
    volume. Docker's own parser refuses a bare "DST" (that is Config.Volumes)."""
    from rongqi.engine.options import MountSpec
    parts = str(text).split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise _bad(f"invalid volume specification: '{text}'")
    src, dst = parts[0], parts[1]
    if not dst.startswith("/"):
        raise _bad(f"invalid volume specification: '{text}': invalid mount config for type "
                   f"\"{'bind' if src.startswith('/') else 'volume'}\": invalid mount path: "
                   f"'{dst}' mount path must be absolute")
    modes = [m for m in (parts[2].split(",") if len(parts) == 3 else []) if m]
    valid = {"ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave",
             "private", "rprivate"}
    for m in modes:
        if m not in valid:
            raise _bad(f"invalid mode: {m}")
    ro = "ro" in modes
    extra = [m for m in modes if m not in ("ro", "rw", "z", "Z")]
    if src.startswith("/"):
        return MountSpec("bind", dst, os.path.normpath(src), readonly=ro, options=extra)
    from rongqi.engine.volumes import _NAME
    if not _NAME.match(src):
        raise _bad(f'create {src}: "{src}" includes invalid characters for a local volume '
                   "name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to "
                   "pass a host directory, use absolute path")
    return MountSpec("volume", dst, src, readonly=ro, options=extra)


def api_mount(m: Mapping[str, Any], *, check_source: bool = True) -> MountSpec:
    """One HostConfig.Mounts entry (Docker's mount.Mount: Type, Source, Target, ReadOnly,
    BindOptions, VolumeOptions, TmpfsOptions)."""
    from rongqi.engine.options import MountSpec
    kind = str(m.get("Type") or "volume")
    target = str(m.get("Target") or "")
    source = str(m.get("Source") or "")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _bad(f'mount type unknown: "{kind}"' if kind != "npipe"
                   else 'invalid mount config for type "npipe": npipe is Windows only')
    if not target:
        raise _bad(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not target.startswith("/"):
        raise _bad(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' "
                   "mount path must be absolute")
    ro = bool(m.get("ReadOnly"))
    opts: list[str] = []
    if kind == "bind":
        if not source:
            raise _bad('invalid mount config for type "bind": field Source must not be empty')
        if not source.startswith("/"):
            raise _bad(f"invalid mount config for type \"bind\": invalid mount path: "
                       f"'{source}' mount path must be absolute")
        if check_source and not os.path.exists(source):
            raise _bad(f'invalid mount config for type "bind": bind source path does not '
                       f"exist: {source}")
        bo = m.get("BindOptions") or {}
        if bo.get("Propagation"):
            opts.append(str(bo["Propagation"]))
        if bo.get("NonRecursive"):
            opts.append("bind")
        return MountSpec("bind", target, os.path.normpath(source), readonly=ro, options=opts)
    if kind == "tmpfs":
        if source:
            raise _bad('invalid mount config for type "tmpfs": field Source must not be '
                       "specified")
        to = m.get("TmpfsOptions") or {}
        if to.get("SizeBytes"):
            opts.append(f"size={int(to['SizeBytes'])}")
        if to.get("Mode"):
            opts.append(f"mode={int(to['Mode']):o}")
        return MountSpec("tmpfs", target, readonly=ro, options=opts)
    vo = m.get("VolumeOptions") or {}
    driver = ((vo.get("DriverConfig") or {}).get("Name") or "local")
    if driver != "local":
        raise _bad(f"volume driver {driver!r} is not supported: rongqi has the local driver "
                   "only")
    if vo.get("NoCopy"):
        opts.append("nocopy")
    return MountSpec("volume", target, source, readonly=ro, options=opts)


def tmpfs_mounts(tmpfs: Mapping[str, str] | None) -> list[MountSpec]:
    """HostConfig.Tmpfs {"/run": "rw,noexec,size=64m"}."""
    from rongqi.engine.options import MountSpec
    out = []
    for dst, text in (tmpfs or {}).items():
        if not str(dst).startswith("/"):
            raise _bad(f"invalid mount config for type \"tmpfs\": invalid mount path: '{dst}' "
                       "mount path must be absolute")
        options = [o for o in str(text or "").split(",") if o]
        out.append(MountSpec("tmpfs", str(dst), readonly="ro" in options,
                             options=[o for o in options if o not in ("ro", "rw")]))
    return out


def ulimits(items: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """HostConfig.Ulimits [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]."""
    from rongqi.engine.bundle import RLIMITS
    from rongqi.engine.options import Ulimit
    out = []
    for u in items or []:
        name = str(u.get("Name") or "").lower().removeprefix("rlimit_")
        if name not in RLIMITS:
            raise _bad(f"invalid ulimit type: {u.get('Name')}")
        soft, hard = int(u.get("Soft") or 0), int(u.get("Hard") or 0)
        soft = 2**64 - 1 if soft == -1 else soft
        hard = 2**64 - 1 if hard == -1 else hard
        if soft > hard:
            raise _bad(f"ulimit soft limit must be less than or equal to hard limit: "
                       f"{soft} > {hard}")
        out.append(Ulimit(name, soft, hard))
    return out


def security_opts(items: Sequence[str] | None, opts: ContainerOptions) -> None:
    """HostConfig.SecurityOpt: no-new-privileges[:true|=true], seccomp=unconfined|PROFILE,
    label=disable (no SELinux here: other label options are moot), apparmor= (none here)."""
    for item in items or []:
        text = str(item)
        key, sep, value = text.partition("=")
        if not sep:
            key, sep, value = text.partition(":")
        if key == "no-new-privileges":
            if sep and value.lower() not in ("true", "false"):
                raise _bad(f"invalid --security-opt 2: {text!r}")
            opts.no_new_privileges = not sep or value.lower() == "true"
        elif key == "seccomp" and value:
            if value == "unconfined":
                opts.seccomp_profile = value
            else:
                # Docker's client reads a profile file and sends its JSON inline.
                opts.seccomp_profile = _inline_seccomp(value)
        elif key == "label" and value:
            if value == "disable":
                opts.label_disable = True
            elif value.partition(":")[0] not in ("user", "role", "type", "level", "filetype",
                                                 "nested"):
                raise _bad(f"invalid --security-opt 1: {text!r}")
        elif key == "apparmor" and value:
            continue  # no AppArmor on this host: every profile is "unconfined" here
        elif key in ("mask", "unmask") and value:
            getattr(opts, key).extend(p for p in value.split(":") if p)
        else:
            raise _bad(f"invalid --security-opt 1: {text!r}")


def _inline_seccomp(value: str) -> str:
    """A seccomp profile the client sent as JSON text: kept as a file beside nothing else
    would be a leak, so it must be a path the engine can read; JSON text is refused."""
    if value.lstrip().startswith("{"):
        raise _bad("a custom seccomp profile sent inline is not supported by rongqi serve: "
                   "use seccomp=unconfined or the default profile")
    if not os.path.isfile(value):
        raise _bad(f"opening seccomp profile ({value}) failed: open {value}: no such file "
                   "or directory")
    return value


def healthcheck(hc: Mapping[str, Any] | None) -> tuple[Any, bool]:
    """Config.Healthcheck {Test, Interval, Timeout, StartPeriod (ns), Retries} ->
    (engine Healthcheck or None for the image's, whether it is disabled: Test ["NONE"])."""
    from rongqi.engine.options import Healthcheck
    if not hc:
        return None, False
    test = hc.get("Test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    test = list(test or [])
    if test[:1] == ["NONE"]:
        return None, True
    for key in ("Interval", "Timeout", "StartPeriod"):
        v = int(hc.get(key) or 0)
        if v and v < 1_000_000:
            raise _bad(f"{key} in Healthcheck cannot be less than 1ms")
        if v < 0:
            raise _bad(f"{key} in Healthcheck cannot be negative")
    if int(hc.get("Retries") or 0) < 0:
        raise _bad("Retries in Healthcheck cannot be negative")
    if not test:
        return None, False
    if test[0] not in ("CMD", "CMD-SHELL"):
        test = ["CMD", *test]
    return Healthcheck(test=test, interval=(hc.get("Interval") or 30 * NS) / NS,
                       timeout=(hc.get("Timeout") or 30 * NS) / NS,
                       retries=int(hc.get("Retries") or 3),
                       start_period=(hc.get("StartPeriod") or 0) / NS), False


def restart_policy(rp: Mapping[str, Any] | None, auto_remove: bool) -> Any:
    """HostConfig.RestartPolicy {Name, MaximumRetryCount}, with Docker's checks."""
    from rongqi.engine.options import RestartPolicy
    rp = rp or {}
    name = str(rp.get("Name") or "no")
    count = int(rp.get("MaximumRetryCount") or 0)
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        raise _bad(f"invalid restart policy '{name}'")
    if count < 0:
        raise _bad("maximum retry count cannot be negative")
    if count and name != "on-failure":
        raise _bad(f"maximum retry count cannot be used with restart policy '{name}'")
    if auto_remove and name != "no":
        raise _bad("can't create 'AutoRemove' container with restart policy")
    return RestartPolicy(name, count)


def log_config(lc: Mapping[str, Any] | None, default: str = "json-file"
               ) -> tuple[str, dict[str, str]]:
    """HostConfig.LogConfig {Type, Config}: "" is `default` (Docker's json-file for the
    service: docker-py's blocking run reads the logs only of a json-file or journald
    container); Docker's json-file and the engine's k8s-file, none, passthrough are served."""
    lc = lc or {}
    kind = str(lc.get("Type") or lc.get("type") or "")
    conf = {str(k): str(v) for k, v in (lc.get("Config") or lc.get("config") or {}).items()}
    if kind in ("", "default"):
        kind = default
    if kind not in ("k8s-file", "json-file", "none", "passthrough"):
        raise _bad(f"failed to create logger: logger: no log driver named '{kind}' is "
                   "registered")
    if "max-size" in conf:
        from rongqi.cli.run_flags import parse_size
        try:
            parse_size(conf["max-size"])
        except ValueError as e:
            raise _bad(f"failed to create logger: {e}") from None
    return kind, conf


def devices(items: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    from rongqi.engine.options import DeviceSpec
    out = []
    for d in items or []:
        host = str(d.get("PathOnHost") or "")
        if not host:
            raise _bad("device path on the host must not be empty")
        ctr = str(d.get("PathInContainer") or host)
        perms = str(d.get("CgroupPermissions") or "rwm")
        if any(c not in "rwm" for c in perms):
            raise _bad(f"invalid device mode: {perms}")
        out.append(DeviceSpec(host, ctr, perms))
    return out


# -- the create body ----------------------------------------------------------------------------
# HostConfig keys that only say "as Docker's default" at their zero value; anything else is a
# feature the engine does not have, refused by name (Docker's client sends most of them as 0).
_ZERO_ONLY = ("BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
              "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuRealtimePeriod",
              "CpuRealtimeRuntime", "CpuCount", "CpuPercent", "IOMaximumIOps",
              "IOMaximumBandwidth", "DeviceCgroupRules", "DeviceRequests",
              "Links", "CgroupParent", "MaskedPaths", "ReadonlyPaths")
# Docker's HostConfig values that the engine has no field for, kept in the record's
# annotations so that inspect shows them back (podman keeps --volumes-from the same way).
VOLUMES_FROM = "io.podman.annotations.volumes-from"
ISOLATION = "io.rongqi.docker.isolation"
VOLUME_DRIVER = "io.rongqi.docker.volume-driver"
_NAMESPACE_MODES = {"IpcMode": ("", "private", "shareable"), "PidMode": ("", "private"),
                    "UTSMode": ("", "private"), "CgroupnsMode": ("", "private", "host"),
                    "Cgroup": ("",)}


def create_options(body: Mapping[str, Any], name: str = "", *,
                   default_log_driver: str = "json-file") -> tuple[ContainerOptions, list[str]]:
    """POST /containers/create's body (Config with HostConfig and NetworkingConfig beside it)
    -> (ContainerOptions, warnings). InvalidParameter (400) for what is malformed or what
    the engine cannot do. default_log_driver: for a LogConfig without a Type."""
    from rongqi.engine.options import ContainerOptions, MountSpec
    if not isinstance(body, Mapping):
        raise _bad("config cannot be empty in order to create a container")
    hc: Mapping[str, Any] = body.get("HostConfig") or {}
    nc: Mapping[str, Any] = body.get("NetworkingConfig") or {}
    if not isinstance(hc, Mapping) or not isinstance(nc, Mapping):
        raise _bad("HostConfig and NetworkingConfig must be JSON objects")
    warnings: list[str] = []
    image = str(body.get("Image") or "")
    if not image:
        raise _bad("No command specified" if not body.get("Cmd") and not body.get("Entrypoint")
                   else "Config.Image must name an image")
    if name:
        from rongqi.engine.records import _NAME_RE
        if not _NAME_RE.match(name.lstrip("/")):
            raise _bad(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                       "allowed")
    o = ContainerOptions(image=image, command=strslice(body.get("Cmd"), "Config.Cmd") or [])
    ep = strslice(body.get("Entrypoint"), "Config.Entrypoint")
    o.entrypoint = None if ep is None else ([] if ep in ([], [""]) else ep)
    o.name = name.lstrip("/")
    o.detach = True
    o.tty = bool(body.get("Tty"))
    o.interactive = bool(body.get("OpenStdin"))
    o.stdin_once = bool(body.get("StdinOnce"))  # what an attach does at its client's EOF
    o.env = env_map(body.get("Env"))
    o.labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
    wd = str(body.get("WorkingDir") or "")
    if wd and not wd.startswith("/"):
        raise _bad(f"the working directory '{wd}' is invalid, it needs to be an absolute path")
    o.workdir = wd
    o.user = str(body.get("User") or "")
    o.hostname = str(body.get("Hostname") or "")
    o.domainname = str(body.get("Domainname") or "")
    o.mac_address = str(body.get("MacAddress") or "")
    o.expose = ["/".join(_port_key(k)) for k in (body.get("ExposedPorts") or {})]
    if body.get("StopSignal"):
        from rongqi.engine.bundle import BundleError, signal_number
        try:
            signal_number(str(body["StopSignal"]))
        except BundleError:
            raise _bad(f"Invalid signal: {body['StopSignal']}") from None
        o.stop_signal = str(body["StopSignal"])
    if body.get("StopTimeout") is not None:
        o.stop_timeout = int(body["StopTimeout"])
    o.healthcheck, o.no_healthcheck = healthcheck(body.get("Healthcheck"))
    if body.get("NetworkDisabled"):
        o.network = "none"
    # -- mounts: Config.Volumes (anonymous), Binds, Mounts, Tmpfs ------------------------------
    mounts: list[MountSpec] = []
    for b in hc.get("Binds") or []:
        mounts.append(bind_mount(b))
    for m in hc.get("Mounts") or []:
        mounts.append(api_mount(m))
    mounts += tmpfs_mounts(hc.get("Tmpfs"))
    taken = {m.destination for m in mounts}
    for dst in body.get("Volumes") or {}:
        if not str(dst).startswith("/"):
            raise _bad(f"invalid volume specification: '{dst}'")
        if dst not in taken:
            mounts.append(MountSpec("volume", str(dst)))
    seen: set[str] = set()
    for m in mounts:
        d = os.path.normpath(m.destination)
        if d in seen:
            raise _bad(f"Duplicate mount point: {d}")
        seen.add(d)
    o.mounts = mounts
    o.read_only = bool(hc.get("ReadonlyRootfs"))
    # -- resources -----------------------------------------------------------------------------
    _resources(hc, o, warnings)
    o.ulimits = ulimits(hc.get("Ulimits"))
    # -- security ------------------------------------------------------------------------------
    o.cap_add = [str(c) for c in hc.get("CapAdd") or []]
    o.cap_drop = [str(c) for c in hc.get("CapDrop") or []]
    if o.cap_add or o.cap_drop:
        from rongqi.engine.bundle import BundleError, _cap_name
        for cap in o.cap_add + o.cap_drop:
            if cap.upper() in ("ALL", "CAP_ALL"):
                continue
            try:
                _cap_name(cap)
            except BundleError:
                raise _bad(f'invalid capability: "{cap}"') from None
    o.privileged = bool(hc.get("Privileged"))
    security_opts(hc.get("SecurityOpt"), o)
    o.devices = devices(hc.get("Devices"))
    o.group_add = [str(g) for g in hc.get("GroupAdd") or []]
    userns = str(hc.get("UsernsMode") or "")
    if userns not in ("", "host", "private", "keep-id", "auto"):
        raise _bad(f"invalid USER NS mode: {userns}")
    o.userns = userns
    o.init = bool(hc.get("Init"))
    for key, allowed in _NAMESPACE_MODES.items():
        mode = str(hc.get(key) or "")
        if mode not in allowed:
            raise _bad(f'{key} "{mode}" is not supported by rongqi: containers get their own '
                       f"{key[:-4].lower() or 'cgroup'} namespace")
    for key in _ZERO_ONLY:
        if hc.get(key):
            raise _bad(f"HostConfig.{key} is not supported by rongqi")
    runtime = str(hc.get("Runtime") or "")
    if runtime not in ("", "runc", "rongqi", "oci"):
        raise _bad(f"Unknown runtime specified {runtime}")
    if str(hc.get("Isolation") or "") not in ("", "default"):
        raise _bad(f"invalid isolation '{hc['Isolation']}' on linux")
    if hc.get("Isolation"):
        o.annotations[ISOLATION] = str(hc["Isolation"])
    driver = str(hc.get("VolumeDriver") or "")
    if driver and driver != "local":
        # dockerd makes the container and looks the plugin up only for a volume to create
        if any(m.kind == "volume" for m in o.mounts):
            raise _bad(f'error looking up volume plugin {driver}: plugin "{driver}" not '
                       "found")
        o.annotations[VOLUME_DRIVER] = driver
    # -- lifecycle -----------------------------------------------------------------------------
    o.remove = bool(hc.get("AutoRemove"))
    o.restart = restart_policy(hc.get("RestartPolicy"), o.remove)
    o.log_driver, o.log_opts = log_config(hc.get("LogConfig"), default_log_driver)
    # -- network -------------------------------------------------------------------------------
    _network(body, hc, nc, o)
    o.dns = [str(d) for d in hc.get("Dns") or []]
    o.dns_search = [str(d) for d in hc.get("DnsSearch") or []]
    o.dns_option = [str(d) for d in hc.get("DnsOptions") or []]
    o.add_host = [str(h) for h in hc.get("ExtraHosts") or []]
    for h in o.add_host:
        host, colon, _ = h.partition(":")
        if not colon or not host:
            raise _bad(f"invalid argument \"{h}\" for \"--add-host\" flag: invalid IP")
    o.publish = publish_list(hc.get("PortBindings"))
    o.publish_all = bool(hc.get("PublishAllPorts"))
    # -- misc ----------------------------------------------------------------------------------
    shm = int(hc.get("ShmSize") or 0)
    if shm < 0:
        raise _bad("SHM size can not be less than 0")
    o.shm_size = shm or None
    o.sysctls = {str(k): str(v) for k, v in (hc.get("Sysctls") or {}).items()}
    if hc.get("OomScoreAdj") is not None and hc.get("OomScoreAdj") != 0:
        adj = int(hc["OomScoreAdj"])
        if not -1000 <= adj <= 1000:
            raise _bad(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
        o.oom_score_adj = adj
    # The engine makes the image itself when it is the built-in busybox, else it must be
    # there: a missing image is the 404 the docker CLI answers by pulling (then retrying).
    from rongqi.image.builtin import is_builtin
    o.pull = "missing" if is_builtin(image) else "never"
    return o, warnings


def _resources(hc: Mapping[str, Any], o: ContainerOptions, warnings: list[str]) -> None:
    """Memory, swap, CPU and pids limits with Docker's checks (daemon/daemon_unix.go)."""
    memory = int(hc.get("Memory") or 0)
    swap = int(hc.get("MemorySwap") or 0)
    reservation = int(hc.get("MemoryReservation") or 0)
    if memory < 0 or reservation < 0:
        raise _bad("invalid memory limit: must not be negative")
    if 0 < memory < MIN_MEMORY:
        raise _bad("Minimum memory limit allowed is 6MB")
    if swap > 0 and memory == 0:
        raise _bad("You should always set the Memory limit when using Memoryswap limit, see "
                   "usage")
    if swap > 0 and swap < memory:
        raise _bad("Minimum memoryswap limit should be larger than memory limit, see usage")
    if reservation and memory and memory < reservation:
        raise _bad("Minimum memory limit can not be less than memory reservation limit, see "
                   "usage")
    if 0 < reservation < MIN_MEMORY:
        raise _bad("Minimum memory reservation allowed is 6MB")
    o.memory = memory or None
    o.memory_swap = -1 if swap == -1 else (swap or None)
    o.memory_reservation = reservation or None
    if hc.get("KernelMemory"):
        warnings.append("You specified a kernel memory limit on a kernel older than 4.6. "
                        "Setting kernel memory limit is deprecated and will be removed soon.")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and int(swappiness) != -1:
        if not 0 <= int(swappiness) <= 100:
            raise _bad(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
        warnings.append("Your kernel does not support memory swappiness capabilities or the "
                        "cgroup is not mounted. Memory swappiness discarded.")
    if hc.get("OomKillDisable"):
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable "
                        "discarded.")
    nano = int(hc.get("NanoCpus") or 0)
    quota = int(hc.get("CpuQuota") or 0)
    period = int(hc.get("CpuPeriod") or 0)
    _check_cpus(nano, quota, period)
    if nano:
        o.cpus = nano / NS
    elif quota > 0:
        o.cpus = quota / (period or 100_000)
    shares = int(hc.get("CpuShares") or 0)
    if shares < 0:
        raise _bad("invalid CPU shares: must not be negative")
    o.cpu_shares = shares or None
    o.cpuset_cpus = str(hc.get("CpusetCpus") or "")
    o.cpuset_mems = str(hc.get("CpusetMems") or "")
    pids = hc.get("PidsLimit")
    # Docker: 0 and -1 (and null) are unlimited.
    o.pids_limit = int(pids) if pids is not None and int(pids) > 0 else None


class UpdateConflict(RongqiError):
    """An update that contradicts what the container has: dockerd's 409, its message
    prefixed with `Cannot update container ID: ` by the route."""


def _update_int(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "string" if isinstance(value, str) else type(value).__name__
        raise _bad(f"json: cannot unmarshal {kind} into Go struct field UpdateConfig.{key} "
                   "of type int64")
    return int(value)


def update_request(body: Mapping[str, Any], c: Container) -> tuple[Any, list[str]]:
    """POST /containers/{id}/update's body (Docker's UpdateConfig: the Resources fields and
    RestartPolicy) -> an engine.update.ResourceUpdate and the warnings, with dockerd's rules:
    zero leaves a value as it is, its checks (daemon_unix.go, 400) and its conflicts with
    what the container has (container_unix.go UpdateContainer, 409). Fields dockerd's
    update ignores (device limits, swappiness, ulimits, devices) are ignored here too."""
    from rongqi.engine.update import ResourceUpdate
    o = c.config.get("options") or {}
    u = ResourceUpdate()
    warnings: list[str] = []
    memory = _update_int(body, "Memory")
    swap = _update_int(body, "MemorySwap")
    reservation = _update_int(body, "MemoryReservation")
    if memory and memory < MIN_MEMORY:
        raise _bad("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise _bad("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise _bad("Minimum memory limit can not be less than memory reservation limit, see "
                   "usage")
    if 0 < reservation < MIN_MEMORY:
        raise _bad("Minimum memory reservation allowed is 6MB")
    if _update_int(body, "KernelMemory"):
        warnings.append("You specified a kernel memory limit on a kernel older than 4.6. "
                        "Setting kernel memory limit is deprecated and will be removed soon.")
    nano = _update_int(body, "NanoCpus")
    quota = _update_int(body, "CpuQuota")
    period = _update_int(body, "CpuPeriod")
    _check_cpus(nano, quota, period)
    shares = _update_int(body, "CpuShares")
    if shares < 0:
        raise _bad("invalid CPU shares: must not be negative")
    weight = _update_int(body, "BlkioWeight")
    if weight and not 10 <= weight <= 1000:
        raise _bad("Range of blkio weight is from 10 to 1000")
    from rongqi.engine.update import check_cpuset
    for key, online, what in (("CpusetCpus", "/sys/devices/system/cpu/online", "CPUs"),
                              ("CpusetMems", "/sys/devices/system/node/online",
                               "memory nodes")):
        text = body.get(key) or ""
        if not isinstance(text, str):
            raise _bad(f"json: cannot unmarshal {type(text).__name__} into Go struct field "
                       f"UpdateConfig.{key} of type string")
        try:
            check_cpuset(text, online, what)
        except UsageError as err:
            msg = str(err)
            raise _bad(msg if msg.startswith("Requested") else
                       f"Invalid value {text} for cpuset {key[6:].lower()}") from None
    # What the container has now, as its Docker inspect shows it.
    cur_nano = int(round((o.get("cpus") or 0) * NS))
    cur_swap = int(o.get("memory_swap") or _spec_memory(c).get("swap") or 0)
    if nano and (o.get("cpu_period") or 0) > 0:
        raise UpdateConflict("Conflicting options: Nano CPUs cannot be updated as CPU Period "
                             "has already been set")
    if nano and (o.get("cpu_quota") or 0) > 0:
        raise UpdateConflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota "
                             "has already been set")
    if period and cur_nano > 0:
        raise UpdateConflict("Conflicting options: CPU Period cannot be updated as NanoCPUs "
                             "has already been set")
    if quota and cur_nano > 0:
        raise UpdateConflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs "
                             "has already been set")
    if memory and memory > cur_swap and swap == 0:
        raise UpdateConflict("Memory limit should be smaller than already set memoryswap "
                             "limit, update the memoryswap at the same time")
    u.memory = memory or None
    u.memory_swap = swap or None
    u.memory_reservation = reservation or None
    u.cpus = nano / NS if nano else None
    u.cpu_period = period or None
    u.cpu_quota = quota or None
    u.cpu_shares = shares or None
    u.cpu_rt_period = _update_int(body, "CpuRealtimePeriod") or None
    u.cpu_rt_runtime = _update_int(body, "CpuRealtimeRuntime") or None
    u.cpuset_cpus = body.get("CpusetCpus") or None
    u.cpuset_mems = body.get("CpusetMems") or None
    u.blkio_weight = weight or None
    if body.get("PidsLimit") is not None:
        pids = _update_int(body, "PidsLimit")
        u.pids_limit = pids if pids > 0 else -1
    rp = body.get("RestartPolicy") or {}
    if not isinstance(rp, Mapping):
        raise _bad("json: cannot unmarshal into Go struct field UpdateConfig.RestartPolicy")
    if rp.get("Name"):
        policy = restart_policy(rp, False)
        if o.get("remove") and policy.name != "no":
            raise UpdateConflict("Restart policy cannot be updated because AutoRemove is "
                                 "enabled for the container")
        u.restart = policy
    return u, warnings


def _spec_memory(c: Container) -> dict[str, Any]:
    try:
        with open(os.path.join(c.bundle, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return {}
    return ((spec.get("linux") or {}).get("resources") or {}).get("memory") or {}


def _network(body: Mapping[str, Any], hc: Mapping[str, Any], nc: Mapping[str, Any],
             o: ContainerOptions) -> None:
    """HostConfig.NetworkMode and NetworkingConfig.EndpointsConfig (aliases, static ip,
    mac) -> the engine's --network, --network-alias, --ip, --mac-address."""
    if o.network == "none":
        return
    mode = str(hc.get("NetworkMode") or "")
    endpoints: Mapping[str, Any] = nc.get("EndpointsConfig") or {}
    if mode in ("", "default"):
        mode = ""
    if mode.startswith("container:") and not mode[10:]:
        raise _bad("invalid container format container:<name|id>")
    if mode in ("host", "none") or mode.startswith("container:"):
        if o.publish or hc.get("PortBindings") and mode != "host":
            pass  # Docker ignores them as well (the CLI refuses them client side)
        if hc.get("Dns") and mode.startswith("container:"):
            raise _bad("conflicting options: dns and the network mode")
        o.network = mode
        return
    names = [mode] if mode else []
    for n in endpoints:
        if n not in names and not (not mode and n in ("bridge", "default")):
            names.append(str(n))
    if names == ["bridge"]:
        names = []
        mode = "bridge"
    o.network = ",".join(names) if names else mode
    for n in names or ["bridge"]:
        ep = endpoints.get(n) or {}
        o.network_aliases += [str(a) for a in ep.get("Aliases") or []
                              if str(a) not in o.network_aliases]
        ipam = ep.get("IPAMConfig") or {}
        if ipam.get("IPv4Address") and not o.ip:
            o.ip = str(ipam["IPv4Address"])
        if ep.get("MacAddress") and not o.mac_address:
            o.mac_address = str(ep["MacAddress"])


# -- times --------------------------------------------------------------------------------------
def _parse(text: str) -> datetime.datetime | None:
    from rongqi.engine.records import parse_time
    return parse_time(text or "")


def unix_seconds(text: str) -> int:
    t = _parse(text)
    return int(t.timestamp()) if t else 0


human_duration = units.human_duration


def docker_state(status: str) -> str:
    """The engine's status as Docker names it: stopping is still running to Docker."""
    return {"stopping": "running"}.get(status, status)


def status_text(c: Container, now: float | None = None) -> str:
    """docker ps's STATUS column: "Up 3 seconds (Paused)", "Exited (0) 2 seconds ago"..."""
    now = time.time() if now is None else now
    s = c.status
    if s in ("running", "paused", "stopping"):
        t = _parse(c.state.get("started_at", ""))
        out = "Up " + human_duration(now - t.timestamp() if t else 0)
        if s == "paused":
            return out + " (Paused)"
        health = (c.state.get("health") or {}).get("status", "")
        if c.config.get("healthcheck") and health:
            out += f" (health: {health})" if health == "starting" else f" ({health})"
        elif c.config.get("healthcheck"):
            out += " (health: starting)"
        return out
    if s == "exited":
        t = _parse(c.state.get("finished_at", ""))
        if t is None:
            return "Created"
        return (f"Exited ({c.state.get('exit_code', 0)}) "
                f"{human_duration(now - t.timestamp())} ago")
    if s == "removing":
        return "Removal In Progress"
    return "Created"


# -- inspect and list ---------------------------------------------------------------------------
def _image_config(engine: Engine, c: Container) -> dict[str, Any]:
    """The image's config (Cmd, Entrypoint, Volumes...); {} when the image went away."""
    try:
        doc = engine.store.read_json(c.config.get("image_id", ""))
        return dict(doc.get("config") or {})
    except Exception:  # noqa: BLE001 - an image removed under a container: show what we know
        return {}


def _spec(c: Container) -> dict[str, Any]:
    from rongqi.engine.records import read_json
    try:
        return dict(read_json(os.path.join(c.bundle, "config.json")))
    except (OSError, ValueError):
        return {}


def exposed(c: Container, spec: dict[str, Any] | None = None) -> list[tuple[int, str]]:
    """(port, proto) the container exposes: the image's and the request's ExposedPorts and
    every published container port, as Docker's Config.ExposedPorts holds them."""
    from rongqi.engine import ports as portmod
    spec = _spec(c) if spec is None else spec
    out: set[tuple[int, str]] = set()
    for key in portmod.exposed_ports(spec):
        p, _, proto = key.partition("/")
        lo, _, hi = p.partition("-")
        if lo.isdigit():
            for n in range(int(lo), int(hi or lo) + 1):
                out.add((n, proto or "tcp"))
    for m in portmod.parse_all(list((c.config.get("options") or {}).get("publish") or [])):
        out.add((m.container_port, m.protocol))
    return sorted(out)


def _running(c: Container) -> bool:
    return c.status in ("running", "paused", "stopping")


def port_map(c: Container, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
    "443/tcp": null} while it runs (Docker shows {} for a container that does not)."""
    if not _running(c):
        return {}
    from rongqi.engine import networks
    out: dict[str, Any] = {f"{p}/{proto}": None for p, proto in exposed(c, spec)}
    for key, hosts in (networks.settings(c).get("Ports") or {}).items():
        out[key] = [{"HostIp": h.get("HostIp") or "0.0.0.0", "HostPort": h.get("HostPort", "")}
                    for h in hosts]
    return out


def port_bindings(c: Container) -> dict[str, Any]:
    """HostConfig.PortBindings as asked for at create (HostPort "" for a random one)."""
    from rongqi.engine import ports as portmod
    out: dict[str, Any] = {}
    for m in portmod.parse_all(list((c.config.get("options") or {}).get("publish") or [])):
        out.setdefault(f"{m.container_port}/{m.protocol}", []).append(
            {"HostIp": m.host_ip or "", "HostPort": str(m.host_port) if m.host_port else ""})
    return out


def network_mode(c: Container) -> str:
    net = str((c.config.get("options") or {}).get("network") or "")
    return net or "default"


def docker_network_name(name: str) -> str:
    """The engine's default network is Docker's "bridge" to Docker's clients (serve/networks.py
    lists it so, as podman's compat API does)."""
    from rongqi.engine import networks
    return "bridge" if name == networks.DEFAULT_NAME else name


def _network_id(engine: Engine | None, name: str) -> str:
    if engine is None:
        return name
    from rongqi.engine import networks
    try:
        return str(networks.NetworkStore(engine.root).get(name).get("id") or name)
    except (RongqiError, OSError, ValueError):
        return name


def _endpoint_ipam(attachment: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The endpoint's IPAMConfig as the client asked for it (a static address at create or
    connect), Docker's EndpointIPAMConfig with its empty fields left out; None when none."""
    static = [str(ip) for ip in (attachment or {}).get("static_ips") or [] if ip]
    v4 = next((ip for ip in static if "." in ip), "")
    v6 = next((ip for ip in static if ":" in ip), "")
    out = {k: v for k, v in (("IPv4Address", v4), ("IPv6Address", v6)) if v}
    return out or None


def networks_json(c: Container, engine: Engine | None = None) -> dict[str, Any]:
    """NetworkSettings.Networks: one EndpointSettings per network (host and none included,
    as Docker shows them), the default network as "bridge"."""
    from rongqi.engine import networks
    settings = networks.settings(c)
    nets = dict(settings.get("Networks") or {})
    attached = (networks.load(c) or {}).get("networks") or {}
    out: dict[str, Any] = {}
    for name, d in nets.items():
        out[docker_network_name(name)] = {
                     "IPAMConfig": d.get("IPAMConfig") or _endpoint_ipam(attached.get(name)),
                     "Links": d.get("Links"),
                     "Aliases": d.get("Aliases"), "NetworkID": _network_id(engine, name),
                     "EndpointID": d.get("EndpointID", ""), "Gateway": d.get("Gateway", ""),
                     "IPAddress": d.get("IPAddress", ""),
                     "IPPrefixLen": d.get("IPPrefixLen", 0),
                     "IPv6Gateway": d.get("IPv6Gateway", ""),
                     "GlobalIPv6Address": d.get("GlobalIPv6Address", ""),
                     "GlobalIPv6PrefixLen": d.get("GlobalIPv6PrefixLen", 0),
                     "MacAddress": d.get("MacAddress", ""), "DriverOpts": d.get("DriverOpts")}
    mode = network_mode(c)
    if not out and mode in ("host", "none"):
        out[mode] = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": mode,
                     "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                     "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                     "MacAddress": "", "DriverOpts": None}
    return out


def mounts_json(c: Container) -> list[dict[str, Any]]:
    """Docker's MountPoint list from the record's mounts (binds and volumes)."""
    out = []
    for m in c.config.get("mounts") or []:
        d = {"Type": m.get("Type", "bind")}
        if m.get("Type") == "volume":
            d["Name"] = m.get("Name", "")
        d.update({"Source": m.get("Source", ""), "Destination": m.get("Destination", ""),
                  "Driver": m.get("Driver", ""), "Mode": m.get("Mode", ""),
                  "RW": bool(m.get("RW", True)), "Propagation": m.get("Propagation", "")})
        out.append(d)
    return out


def binds(c: Container) -> list[str] | None:
    """HostConfig.Binds as Docker keeps them: "SRC:DST[:ro]" for binds and named volumes."""
    o = c.config.get("options") or {}
    out = []
    for m in o.get("mounts") or []:
        if m.get("kind") not in ("bind", "volume") or not m.get("source"):
            continue
        mode = ",".join((["ro"] if m.get("readonly") else []) + list(m.get("options") or []))
        out.append(f"{m['source']}:{m['destination']}" + (f":{mode}" if mode else ""))
    return out or None


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def sizes(engine: Engine, c: Container) -> tuple[int, int]:
    """(SizeRw, SizeRootFs): the bytes of files the container wrote (its upper dir) and
    that plus its image's unpacked layers."""
    snap = os.path.join(engine.storage.snap_dir, c.config.get("snapshot") or c.id)
    rw = _tree_size(os.path.join(snap, "upper"))
    if not os.path.isdir(os.path.join(snap, "upper")):
        rw = 0
    base = 0
    for chain in c.config.get("chain_ids") or []:
        base += _tree_size(engine.storage.layer_path(chain))
    return rw, rw + base


def _health_json(c: Container) -> dict[str, Any] | None:
    if not c.config.get("healthcheck"):
        return None
    h = c.state.get("health") or {}
    log = [{"Start": e.get("start", ""), "End": e.get("end", ""),
            "ExitCode": e.get("exit_code", 0), "Output": e.get("output", "")}
           for e in h.get("log") or []]
    return {"Status": h.get("status") or ("starting" if _running(c) else "none"),
            "FailingStreak": h.get("failing_streak", 0), "Log": log}


def _healthcheck_json(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not hc:
        return None
    return {"Test": list(hc.get("test") or []), "Interval": int(hc.get("interval", 30) * NS),
            "Timeout": int(hc.get("timeout", 30) * NS),
            "StartPeriod": int(hc.get("start_period", 0) * NS),
            "Retries": int(hc.get("retries", 3))}


def _cmd_and_entrypoint(c: Container, image_cfg: dict[str, Any]
                        ) -> tuple[list[str] | None, list[str] | None]:
    """Config.Cmd and Config.Entrypoint as Docker merges them with the image's: the user's
    entrypoint drops the image's Cmd."""
    o = c.config.get("options") or {}
    ep = o.get("entrypoint")
    cmd = list(o.get("command") or [])
    if ep is None:
        ep = list(image_cfg.get("Entrypoint") or []) or None
        if not cmd:
            cmd = list(image_cfg.get("Cmd") or [])
    elif ep == [""]:
        ep = []
    if not image_cfg and ep is None and not cmd:
        cmd = list(c.config.get("command") or [])
    return cmd or None, (list(ep) if ep else None)


def inspect_json(engine: Engine, c: Container, *, size: bool = False) -> dict[str, Any]:
    """GET /containers/{id}/json: Docker's ContainerJSON from the engine's record."""
    from rongqi.engine import inspection
    from rongqi.engine.exec import exec_ids  # the service's exec instances (serve/execs.py)
    p = inspection.container_json(engine, c)
    o: dict[str, Any] = c.config.get("options") or {}
    spec = _spec(c)
    process = spec.get("process") or {}
    image_cfg = _image_config(engine, c)
    cmd, ep = _cmd_and_entrypoint(c, image_cfg)
    command = list(c.config.get("command") or [])
    ps = p["State"]
    state: dict[str, Any] = {
        "Status": docker_state(c.status), "Running": _running(c),
        "Paused": c.status == "paused", "Restarting": False,
        "OOMKilled": bool(ps.get("OOMKilled")), "Dead": False, "Pid": ps.get("Pid", 0),
        "ExitCode": ps.get("ExitCode", 0), "Error": ps.get("Error", ""),
        "StartedAt": ps.get("StartedAt") or ZERO_TIME,
        "FinishedAt": ps.get("FinishedAt") or ZERO_TIME}
    health = _health_json(c)
    if health is not None:
        state["Health"] = health
    ph = p["HostConfig"]
    anon = {m["destination"]: {} for m in o.get("mounts") or []
            if m.get("kind") == "volume" and not m.get("source")}
    anon.update({k: {} for k in (image_cfg.get("Volumes") or {})})
    chains = list(c.config.get("chain_ids") or [])
    graph = dict(p["GraphDriver"]["Data"])
    if chains:
        graph = {"LowerDir": ":".join(engine.storage.layer_path(ch) for ch in reversed(chains)),
                 **graph}
    config: dict[str, Any] = {
        "Hostname": spec.get("hostname") or o.get("hostname") or c.id[:12],
        "Domainname": o.get("domainname", "") or "", "User": o.get("user", "") or "",
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "ExposedPorts": {f"{n}/{proto}": {} for n, proto in exposed(c, spec)} or None,
        "Tty": bool(o.get("tty")), "OpenStdin": bool(o.get("interactive")),
        "StdinOnce": bool(o.get("stdin_once")),
        "Env": list(process.get("env") or [f"{k}={v}" for k, v in (o.get("env") or {}).items()]),
        "Cmd": cmd, "Image": c.config.get("image", ""), "Volumes": anon or None,
        "WorkingDir": process.get("cwd") or o.get("workdir") or "", "Entrypoint": ep,
        "OnBuild": None, "Labels": dict(c.config.get("labels") or {}),
        "StopSignal": c.config.get("stop_signal") or "SIGTERM",
    }
    if o.get("stop_timeout") is not None:
        config["StopTimeout"] = o["stop_timeout"]
    hcj = _healthcheck_json(c.config.get("healthcheck"))
    if hcj:
        config["Healthcheck"] = hcj
    if o.get("mac_address"):
        config["MacAddress"] = o["mac_address"]
    restart = c.config.get("restart") or {"name": "no", "max_retries": 0}
    annotations = dict(c.config.get("annotations") or {})
    host_config: dict[str, Any] = {
        "Binds": binds(c), "ContainerIDFile": o.get("cidfile", ""),
        "LogConfig": {"Type": c.config.get("log_driver", "k8s-file"),
                      "Config": dict(o.get("log_opts") or {})},
        "NetworkMode": network_mode(c), "PortBindings": port_bindings(c),
        "RestartPolicy": {"Name": restart.get("name") or "no",
                          "MaximumRetryCount": restart.get("max_retries", 0)},
        "AutoRemove": bool(o.get("remove")),
        "VolumeDriver": annotations.get(VOLUME_DRIVER, ""),
        "VolumesFrom": [v for v in annotations.get(VOLUMES_FROM, "").split(",") if v] or None,
        "CapAdd": list(o.get("cap_add") or []) or None,
        "CapDrop": list(o.get("cap_drop") or []) or None,
        "CgroupnsMode": "private" if ph.get("CgroupMode") == "private" else "host",
        "Dns": list(o.get("dns") or []), "DnsOptions": list(o.get("dns_option") or []),
        "DnsSearch": list(o.get("dns_search") or []),
        "ExtraHosts": list(o.get("add_host") or []) or None,
        "GroupAdd": list(o.get("group_add") or []) or None, "IpcMode": "private",
        "Cgroup": "", "Links": None, "OomScoreAdj": o.get("oom_score_adj") or 0,
        "PidMode": "", "Privileged": bool(o.get("privileged")),
        "PublishAllPorts": bool(o.get("publish_all")),
        "ReadonlyRootfs": bool(o.get("read_only")),
        "SecurityOpt": ph.get("SecurityOpt") or None, "UTSMode": "",
        "UsernsMode": o.get("userns", "") or "", "ShmSize": ph.get("ShmSize", 65536000),
        "Runtime": "runc", "ConsoleSize": [0, 0], "Isolation": annotations.get(ISOLATION, ""),
        "CpuShares": ph.get("CpuShares", 0), "Memory": ph.get("Memory", 0),
        "NanoCpus": ph.get("NanoCpus", 0), "CgroupParent": "",
        "BlkioWeight": ph.get("BlkioWeight", 0),
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": o.get("cpu_period") or 0,
        "CpuQuota": o.get("cpu_quota") or 0,
        "CpuRealtimePeriod": ph.get("CpuRealtimePeriod", 0),
        "CpuRealtimeRuntime": ph.get("CpuRealtimeRuntime", 0),
        "CpusetCpus": o.get("cpuset_cpus", "") or "", "CpusetMems": o.get("cpuset_mems", "") or "",
        "Devices": ph.get("Devices") or [], "DeviceCgroupRules": None, "DeviceRequests": None,
        "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": ph.get("MemoryReservation", 0),
        "MemorySwap": ph.get("MemorySwap", 0), "MemorySwappiness": None,
        "OomKillDisable": False, "PidsLimit": (ph.get("PidsLimit") or 0) if (ph.get("PidsLimit") or 0) > 0 else None,
        "Ulimits": [{"Name": u["name"], "Soft": u["soft"], "Hard": u["hard"]}
                    for u in o.get("ulimits") or []] or None,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "MaskedPaths": list((spec.get("linux") or {}).get("maskedPaths") or []) or None,
        "ReadonlyPaths": list((spec.get("linux") or {}).get("readonlyPaths") or []) or None,
        "Init": bool(o.get("init")) or None,
    }
    tmpfs = {m["destination"]: ",".join(m.get("options") or [])
             for m in o.get("mounts") or [] if m.get("kind") == "tmpfs"}
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    if o.get("sysctls"):
        host_config["Sysctls"] = dict(o["sysctls"])
    pn = p["NetworkSettings"]
    net_settings = {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": port_map(c, spec),
        "SandboxKey": pn.get("SandboxKey", ""), "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None, "EndpointID": pn.get("EndpointID", ""),
        "Gateway": pn.get("Gateway", ""), "GlobalIPv6Address": pn.get("GlobalIPv6Address", ""),
        "GlobalIPv6PrefixLen": pn.get("GlobalIPv6PrefixLen", 0),
        "IPAddress": pn.get("IPAddress", ""), "IPPrefixLen": pn.get("IPPrefixLen", 0),
        "IPv6Gateway": pn.get("IPv6Gateway", ""), "MacAddress": pn.get("MacAddress", ""),
        "Networks": networks_json(c, engine)}
    out: dict[str, Any] = {
        "Id": c.id, "Created": c.config.get("created", ""),
        "Path": command[0] if command else "", "Args": command[1:], "State": state,
        "Image": c.config.get("image_id", ""), "ResolvConfPath": p["ResolvConfPath"],
        "HostnamePath": p["HostnamePath"], "HostsPath": p["HostsPath"],
        "LogPath": c.log_path, "Name": "/" + c.name,
        "RestartCount": c.state.get("restart_count", 0), "Driver": "overlay",
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": exec_ids(c) or None, "HostConfig": host_config,
        "GraphDriver": {"Data": graph, "Name": "overlay"}, "Mounts": mounts_json(c),
        "Config": config, "NetworkSettings": net_settings,
    }
    if size:
        out["SizeRw"], out["SizeRootFs"] = sizes(engine, c)
    return out


def summary_json(engine: Engine, c: Container, *, size: bool = False,
                 now: float | None = None) -> dict[str, Any]:
    """One entry of GET /containers/json (Docker's ContainerSummary)."""
    ports: list[dict[str, Any]] = []
    for key, hosts in sorted(port_map(c).items()):
        p, _, proto = key.partition("/")
        if not hosts:
            ports.append({"PrivatePort": int(p), "Type": proto})
            continue
        for h in hosts:
            ports.append({"IP": h.get("HostIp") or "0.0.0.0", "PrivatePort": int(p),
                          "PublicPort": int(h.get("HostPort") or 0), "Type": proto})
    out: dict[str, Any] = {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.config.get("image", ""),
        "ImageID": c.config.get("image_id", ""),
        "Command": " ".join(c.config.get("command") or []),
        "Created": unix_seconds(c.config.get("created", "")), "Ports": ports,
        "Labels": dict(c.config.get("labels") or {}), "State": docker_state(c.status),
        "Status": status_text(c, now), "HostConfig": {"NetworkMode": network_mode(c)},
        "NetworkSettings": {"Networks": networks_json(c, engine)}, "Mounts": mounts_json(c),
    }
    if size:
        out["SizeRw"], out["SizeRootFs"] = sizes(engine, c)
    return out


# -- top, changes, path stat --------------------------------------------------------------------
def top_json(table: list[list[str]] | str) -> dict[str, Any]:
    """engine.stats.top's answer (a table, or ps(1)'s text) as {"Titles", "Processes"}; ps's
    last column (the command) keeps its spaces."""
    if isinstance(table, str):
        lines = [ln for ln in table.splitlines() if ln.strip()]
        if not lines:
            return {"Titles": [], "Processes": []}
        titles = lines[0].split()
        return {"Titles": titles,
                "Processes": [ln.split(None, max(0, len(titles) - 1)) for ln in lines[1:]]}
    return {"Titles": list(table[0]) if table else [],
            "Processes": [list(r) for r in table[1:]]}


_KINDS = {"C": 0, "A": 1, "D": 2}


def changes_json(changes: Sequence[Any]) -> list[dict[str, Any]]:
    """engine.files.diff's changes as Docker's [{"Path", "Kind": 0 modified|1 added|2 deleted}]."""
    return [{"Path": ch.path, "Kind": _KINDS.get(ch.kind, 0)} for ch in changes]


def file_mode(st_mode: int) -> int:
    """A stat mode as Go's os.FileMode (permission bits plus its own type bits)."""
    import stat as s
    mode = st_mode & 0o777
    if s.S_ISDIR(st_mode):
        mode |= MODE_DIR
    elif s.S_ISLNK(st_mode):
        mode |= MODE_SYMLINK
    elif s.S_ISBLK(st_mode):
        mode |= MODE_DEVICE
    elif s.S_ISCHR(st_mode):
        mode |= MODE_DEVICE | MODE_CHARDEV
    elif s.S_ISFIFO(st_mode):
        mode |= MODE_PIPE
    elif s.S_ISSOCK(st_mode):
        mode |= MODE_SOCKET
    if st_mode & s.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & s.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & s.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def path_stat(name: str, st_mode: int, size: int, mtime: float, link_target: str = ""
              ) -> dict[str, Any]:
    """Docker's ContainerPathStat {name, size, mode, mtime, linkTarget}."""
    t = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)
    return {"name": name, "size": size, "mode": file_mode(st_mode),
            "mtime": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}" + "Z",
            "linkTarget": link_target}


def path_stat_header(stat: Mapping[str, Any]) -> str:
    """X-Docker-Container-Path-Stat: the stat as base64 of its JSON."""
    return base64.b64encode(json.dumps(dict(stat)).encode()).decode()


# -- stats ----------------------------------------------------------------------------------------
def _host_cpu_ns() -> int:
    """The host's CPU time (every cpu's, all states) in ns, from /proc/stat's "cpu" line:
    Docker's system_cpu_usage, the base its clients compute CPU % against."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(x) for x in line.split()[1:8])
                return ticks * (NS // os.sysconf("SC_CLK_TCK"))
    return 0


def _net_devices(pid: int) -> dict[str, dict[str, int]]:
    """Docker's "networks": per interface (lo left out, as Docker does) rx/tx figures."""
    out: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        v = rest.split()
        if name == "lo" or len(v) < 16:
            continue
        n = [int(x) for x in v]
        out[name] = {"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2],
                     "rx_dropped": n[3], "tx_bytes": n[8], "tx_packets": n[9],
                     "tx_errors": n[10], "tx_dropped": n[11]}
    return out


def _rfc3339_now() -> str:
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


_EMPTY_CPU: dict[str, Any] = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                            "usage_in_usermode": 0},
                              "throttling_data": {"periods": 0, "throttled_periods": 0,
                                                  "throttled_time": 0}}


def stats_json(c: Container, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """One of Docker's stats documents (GET /containers/{id}/stats) for container c, read
    from its cgroup and netns now; `previous` (the last document) gives precpu_stats and
    preread. A container that does not run gets Docker's zeroes."""
    from rongqi.engine import stats as st
    doc: dict[str, Any] = {
        "id": c.id, "name": "/" + c.name, "read": ZERO_TIME, "preread": ZERO_TIME,
        "pids_stats": {}, "blkio_stats": {"io_service_bytes_recursive": None,
                                          "io_serviced_recursive": None,
                                          "io_queue_recursive": None,
                                          "io_service_time_recursive": None,
                                          "io_wait_time_recursive": None,
                                          "io_merged_recursive": None,
                                          "io_time_recursive": None,
                                          "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {}, "cpu_stats": dict(_EMPTY_CPU),
        "precpu_stats": dict(_EMPTY_CPU), "memory_stats": {}}
    if previous is not None:
        doc["preread"] = previous.get("read", ZERO_TIME)
        doc["precpu_stats"] = previous.get("cpu_stats", _EMPTY_CPU)
    pid = int(c.state.get("pid") or 0)
    if not _running(c) or pid <= 0:
        return doc
    try:
        data = st.cgroup_of(pid).stats()  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return doc   # it ended while we looked
    cpu = data.get("cpu") or {}
    usage = cpu.get("usage") or {}
    thr = cpu.get("throttling") or {}
    mem = data.get("memory") or {}
    mu = mem.get("usage") or {}
    host_mem = st.host_memory()
    limit = int(mu.get("limit") or 0)
    pids = data.get("pids") or {}
    doc.update({
        "read": _rfc3339_now(),
        "pids_stats": {"current": int(pids.get("current") or 0),
                       **({"limit": int(pids["limit"])} if pids.get("limit") else {})},
        "cpu_stats": {"cpu_usage": {"total_usage": int(usage.get("total") or 0),
                                    "percpu_usage": list(usage.get("percpu") or []) or None,
                                    "usage_in_kernelmode": int(usage.get("kernel") or 0),
                                    "usage_in_usermode": int(usage.get("user") or 0)},
                      "system_cpu_usage": _host_cpu_ns(), "online_cpus": os.cpu_count() or 1,
                      "throttling_data": {"periods": int(thr.get("periods") or 0),
                                          "throttled_periods": int(thr.get("throttled_periods")
                                                                   or 0),
                                          "throttled_time": int(thr.get("throttled_time")
                                                                or 0)}},
        "memory_stats": {"usage": int(mu.get("usage") or 0), "max_usage": int(mu.get("max") or 0),
                         "stats": {str(k): int(v) for k, v in (mem.get("raw") or {}).items()},
                         "limit": host_mem if limit <= 0 or limit >= host_mem else limit},
        "networks": _net_devices(pid),
    })
    blk = data.get("blkio") or {}
    for ours, theirs in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                         ("ioServicedRecursive", "io_serviced_recursive")):
        entries = blk.get(ours)
        if entries:
            doc["blkio_stats"][theirs] = [
                {"major": int(e.get("major", 0)), "minor": int(e.get("minor", 0)),
                 "op": str(e.get("op", "")), "value": int(e.get("value", 0))} for e in entries]
    return doc
