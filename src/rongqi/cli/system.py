"""events, info and version (owner: fmt): podman 4's commands, output shapes and --format.

`events` reads engine/events.py's log (filters, --since/--until, --stream, follow until a
signal); `info` gathers the host, store, registries, plugins and version sections as podman's
`info` does (YAML by default); `version` prints podman's Client layout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

VERSION_TEMPLATE = """{{with .Client -}}
Client:\tRongqi Engine
Version:\t{{.Version}}
API Version:\t{{.APIVersion}}
Python Version:\t{{.PythonVersion}}
{{if .GitCommit -}}Git Commit:\t{{.GitCommit}}\n{{end -}}
Built:\t{{.BuiltTime}}
OS/Arch:\t{{.OsArch}}
{{- end}}
"""


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """Add this module's commands to the top level (`top`) and to `groups["system"]`."""
    ev = add(["events"], cmd_events, "show engine events", top)
    _events_args(ev)
    for parent in (top, groups["system"]):
        info = add(["info"], cmd_info, "display rongqi system information", parent)
        info.add_argument("-f", "--format", help="json, or a Go template")
    version = add(["version"], cmd_version, "display the rongqi version information", top)
    version.add_argument("-f", "--format", help="json, or a Go template")
    prune = add(["prune"], cmd_system_prune, "remove unused data", groups["system"])
    prune.add_argument("-a", "--all", action="store_true",
                       help="remove all unused images, not only dangling ones")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt")
    prune.add_argument("--volumes", action="store_true", help="prune volumes too")
    prune.add_argument("--build", action="store_true",
                       help="remove the build cache too (podman 4.4's flag)")
    prune.add_argument("--filter", action="append", default=[],
                       help="container filters (until=, label=)")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "t"):
        return True
    if text.lower() in ("false", "0", "no", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _events_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-f", "--filter", action="append", default=[],
                    help="container=, event=, image=, label=, type=, volume=, pod=")
    sp.add_argument("--format", help="json, or a Go template over each event")
    sp.add_argument("--no-trunc", type=_bool, nargs="?", const=True, default=True,
                    metavar="BOOL", help="full ids (default true)")
    sp.add_argument("--since", help="RFC 3339 time, Unix seconds, or a duration (10m)")
    sp.add_argument("--until", help="RFC 3339 time, Unix seconds, or a duration")
    sp.add_argument("--stream", type=_bool, nargs="?", const=True, default=True,
                    metavar="BOOL", help="follow new events (default true)")


# -- events --------------------------------------------------------------------------------------
def human_line(e: Any, no_trunc: bool = True) -> str:
    """podman's ToHumanReadable: `TIME TYPE STATUS ID (image=I, name=N, label=v...)`."""
    from rongqi.cli.output import go_time
    ident = e.id if no_trunc else e.id[:12]
    when = go_time(e.time_ns)
    if e.type in ("container", "pod"):
        text = f"{when} {e.type} {e.status} {ident} (image={e.image}, name={e.name}"
        if e.pod_id:
            text += f", pod_id={e.pod_id}"
        if e.health_status:
            text += f", health_status={e.health_status}"
        for k, v in sorted((e.attributes or {}).items()):
            text += f", {k}={v}"
        return text + ")"
    if e.type == "network":
        return f"{when} network {e.status} {ident} (container={ident}, name={e.network})"
    if e.type == "image":
        return f"{when} image {e.status} {ident} {e.name}"
    if e.type == "system":
        return f"{when} system {e.status}" + (f" {e.name}" if e.name else "")
    return f"{when} {e.type} {e.status} {e.name}"


def event_struct(e: Any) -> Any:
    """An event as templates see it: podman's events.Event (its Details promoted)."""
    from rongqi.cli.output import GoTime, Struct
    attrs = dict(e.attributes or {})
    s = Struct("*events.Event", ContainerExitCode=e.exit_code or 0, ID=e.id, Image=e.image,
               Name=e.name, Network=e.network, Status=e.status, Time=GoTime(e.time_ns),
               Type=e.type, HealthStatus=e.health_status,
               Details=Struct("events.Details", ID="", PodID=e.pod_id, Attributes=attrs))
    s.promoted = {"Attributes": attrs, "PodID": e.pod_id}
    return s


def cmd_events(ctx: Any, a: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from rongqi.cli import gotemplate
    from rongqi.engine import events

    filters = events.parse_filters(a.filter)
    since = events.parse_input_time(a.since, since=True) if a.since else None
    until = events.parse_input_time(a.until, since=False) if a.until else None
    template = None
    as_json = bool(a.format) and gotemplate.is_json(a.format)
    if a.format and not as_json:
        template, _ = gotemplate.compile_format(a.format, "events", lambda t, _: t)
    stop = threading.Event()
    opts = events.ReadOptions(filters=filters, since_ns=since, until_ns=until,
                              stream=a.stream, stop=stop)
    # A stream ends on SIGINT or SIGTERM: the reader stops at its next wait, output flushed.
    previous = {}
    if a.stream:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    out = sys.stdout
    try:
        for e in events.read(ctx.engine.root, opts):
            if as_json:
                line = json.dumps(e.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
            elif template is not None:
                line = template.execute(event_struct(e))
            else:
                line = human_line(e, a.no_trunc) + "\n"
            out.write(line)
            if a.stream:
                out.flush()
    except BrokenPipeError:
        # `rongqi events | head -1`: the reader went away; that is the end, not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


# -- system prune --------------------------------------------------------------------------------
_PRUNE_WARNING = """WARNING! This command removes:
\t- all stopped containers
\t- all networks not used by at least one container{volumes}
\t- {images}
\t- {cache}

Are you sure you want to continue? [y/N] """


def cmd_system_prune(ctx: Any, a: argparse.Namespace) -> int:
    """podman's `system prune`: stopped containers, then (with --volumes) unused volumes,
    then images (dangling ones; with -a all that no container uses), then the networks no
    container is attached to, each list under its heading, and the space reclaimed."""
    from rongqi.cli.main import prune_images
    from rongqi.engine import events
    if not a.force:
        sys.stdout.write(_PRUNE_WARNING.format(
            volumes="\n\t- all volumes not used by at least one container" if a.volumes else "",
            images="all images without at least one container associated with them" if a.all
            else "all dangling images",
            cache="all build cache" if a.all else "all dangling build cache"))
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    engine = ctx.engine
    containers = engine.prune(a.filter)
    if containers:
        print("Deleted Containers")
        for cid in containers:
            print(cid)
    if a.volumes:
        volumes = engine.volumes.prune(engine)
        if volumes:
            print("Deleted Volumes")
            for name in volumes:
                events.emit(engine.root, "volume", "prune", name=name)
                print(name)
    cache_freed = 0
    if a.build:
        from rongqi.engine.build import prune_cache
        _, cache_freed = prune_cache(engine)
    untagged, _, freed = prune_images(ctx, a.all)
    freed += cache_freed
    removed_ids = []
    for name, image_id in untagged:
        if name:
            events.emit(engine.root, "image", "untag", id=image_id.partition(":")[2],
                        name=name)
        if image_id not in removed_ids and not any(
                ctx.store.manifest(d)["config"]["digest"] == image_id
                for _, d in ctx.store.names()):
            removed_ids.append(image_id)
    if removed_ids:
        print("Deleted Images")
        for image_id in removed_ids:
            events.emit(engine.root, "image", "remove", id=image_id.partition(":")[2])
            print(image_id.partition(":")[2])
    # podman's: networks no container is attached to (never the default), after the images
    from rongqi.engine.networks import NetworkStore
    networks = NetworkStore(engine.root).prune(engine, a.filter)
    if networks:
        print("Deleted Networks")
        for name in networks:
            print(name)
    from rongqi.cli.output import go_units_size
    print(f"Total reclaimed space: {go_units_size(freed)}")
    return 0


# -- version -------------------------------------------------------------------------------------
def version_info() -> Any:
    """podman's define.Version for the client (rongqi is daemonless: no Server part)."""
    import platform
    import time

    import rongqi
    from rongqi.cli.output import Struct
    package_dir = os.path.dirname(rongqi.__file__)
    built = int(os.stat(package_dir).st_mtime)
    version = Struct("define.Version", Client=Struct(
        "*define.Version", APIVersion=rongqi.__version__, Version=rongqi.__version__,
        PythonVersion=f"python{platform.python_version()}", GitCommit="",
        BuiltTime=time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(built)), Built=built,
        OsArch=f"linux/{_go_arch()}", Os="linux"))
    # podman's Server is nil without a service: `{{if .Server}}` works, JSON leaves it out
    version.promoted = {"Server": None}
    return version


def cmd_version(ctx: Any, a: argparse.Namespace) -> int:
    import json

    from rongqi.cli import gotemplate
    from rongqi.cli.output import _plain, render_one, tabwrite
    v = version_info()
    if a.format and gotemplate.is_json(a.format):
        print(json.dumps(_plain(v), ensure_ascii=False, separators=(",", ":")))
    elif a.format:
        sys.stdout.write(render_one(v, a.format, name="version"))
    else:
        # podman's own template goes through its tabwriter
        sys.stdout.write(tabwrite(render_one(v, VERSION_TEMPLATE, name="version")))
    return 0


def _go_arch() -> str:
    import platform
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


# -- info ----------------------------------------------------------------------------------------
def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    except OSError:
        pass
    return out


def _os_release() -> dict[str, str]:
    out = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as f:
                for line in f:
                    k, sep, v = line.strip().partition("=")
                    if sep:
                        out[k] = v.strip('"')
            break
        except OSError:
            continue
    return out


def _cpu_utilization() -> dict[str, float]:
    """podman's: user, system and idle shares of all CPU time since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return {"idlePercent": 0.0, "systemPercent": 0.0, "userPercent": 0.0}
    total = sum(fields) or 1
    pct = [round(fields[i] / total * 100, 2) if len(fields) > i else 0.0 for i in (3, 2, 0)]
    return {"idlePercent": pct[0], "systemPercent": pct[1], "userPercent": pct[2]}


def _uptime() -> str:
    try:
        with open("/proc/uptime") as f:
            secs = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return ""
    hours = int(secs // 3600)
    secs = float(int(secs))  # podman reads whole seconds: "0h 18m 28.00s"
    text = f"{hours}h {int(secs % 3600 // 60)}m {secs % 60:.2f}s"
    if hours > 24:
        text += f" (Approximately {hours / 24:.2f} days)"
    return text


def _cgroup_controllers(version: str) -> list[str]:
    if version == "v2":
        try:
            with open("/sys/fs/cgroup/cgroup.controllers") as f:
                return f.read().split()
        except OSError:
            return []
    names = []
    try:
        with open("/proc/cgroups") as f:
            for line in f:
                if not line.startswith("#"):
                    parts = line.split()
                    if len(parts) >= 4 and parts[3] == "1" and \
                            os.path.isdir(f"/sys/fs/cgroup/{parts[0]}"):
                        names.append(parts[0])
    except OSError:
        pass
    return names


def _package_of(path: str) -> str:
    """The Debian package that holds path, as podman shows it ("runc_1.1.5+ds1-1_amd64")."""
    import subprocess
    try:
        owner = subprocess.run(["dpkg-query", "-S", os.path.realpath(path)],
                               capture_output=True, text=True, timeout=5)
        if owner.returncode != 0:
            return "Unknown"
        pkg = owner.stdout.split(":")[0].strip()
        ver = subprocess.run(["dpkg-query", "-W", "-f",
                              "${Package}_${Version}_${Architecture}", pkg],
                             capture_output=True, text=True, timeout=5)
        return ver.stdout.strip() or "Unknown"
    except (OSError, subprocess.SubprocessError):
        return "Unknown"


def _oci_runtime(ctx: Any) -> dict[str, str]:
    import subprocess

    import rongqi
    runtime = getattr(ctx.args, "runtime", None)
    if not runtime:
        from rongqi.oci import cli as oci_cli
        launcher = os.path.join(os.path.dirname(sys.executable), "rongqi-oci")
        return {"name": "rongqi-oci", "package": f"rongqi_{rongqi.__version__}",
                "path": launcher if os.path.exists(launcher) else "(in-process)",
                "version": oci_cli._version_text().rstrip("\n")}
    import shutil
    path = shutil.which(runtime) or runtime
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        version = r.stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        version = f"(cannot run it: {e})"
    return {"name": os.path.basename(runtime), "package": _package_of(path), "path": path,
            "version": version}


def _id_mappings(rootless: bool) -> dict[str, Any]:
    if not rootless:
        return {"gidmap": None, "uidmap": None}
    import pwd
    user = pwd.getpwuid(os.getuid()).pw_name

    def maps(path: str, own: int) -> list[dict[str, int]]:
        out = [{"container_id": 0, "host_id": own, "size": 1}]
        try:
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[0] in (user, str(own)):
                        out.append({"container_id": 1, "host_id": int(parts[1]),
                                    "size": int(parts[2])})
                        break
        except (OSError, ValueError):
            pass
        return out
    return {"gidmap": maps("/etc/subgid", os.getgid()), "uidmap": maps("/etc/subuid",
                                                                         os.getuid())}


def _security(rootless: bool) -> dict[str, Any]:
    from rongqi.oci.profile import DEFAULT_CAPABILITIES

    def flag(path: str, want: str) -> bool:
        try:
            with open(path) as f:
                return f.read().strip() == want
        except OSError:
            return False
    seccomp = False
    try:
        with open("/proc/self/status") as f:
            seccomp = any(line.startswith("Seccomp:") for line in f)
    except OSError:
        pass
    return {"apparmorEnabled": flag("/sys/module/apparmor/parameters/enabled", "Y"),
            "capabilities": ",".join(sorted(DEFAULT_CAPABILITIES)),
            "rootless": rootless, "seccompEnabled": seccomp,
            "seccompProfilePath": "",  # the built-in profile (docker's); no file
            "selinuxEnabled": os.path.exists("/sys/fs/selinux/enforce")}


def _container_counts(ctx: Any) -> dict[str, int]:
    counts = {"number": 0, "paused": 0, "running": 0, "stopped": 0}
    for c in ctx.engine.list(all=True):
        counts["number"] += 1
        status = c.status
        if status == "running":
            counts["running"] += 1
        elif status == "paused":
            counts["paused"] += 1
        else:
            counts["stopped"] += 1
    return counts


def info_data(ctx: Any) -> dict[str, Any]:
    """The sections podman's `info` has (host, plugins, registries, store, version), with
    podman's JSON keys; each value as rongqi has it."""
    import platform
    import socket

    import rongqi
    from rongqi.cli.output import _plain
    from rongqi.linux.cgroups import detect_mode
    engine = ctx.engine
    rootless = bool(engine.rootless)
    try:
        mode = detect_mode()
    except Exception:  # noqa: BLE001 - no cgroup fs: say so in the field, not as an error
        mode = "none"
    cgroup_version = "v2" if mode == "v2" else "v1"
    mem = _meminfo()
    release = _os_release()
    probe = engine.root
    while not os.path.isdir(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)  # a root not made yet: the filesystem it will be on
    st = os.statvfs(probe)
    images = {d.digest for _, d in engine.store.names()}
    cfg = engine.registry().config
    registries: dict[str, Any] = {}
    for host in sorted(set(cfg.insecure) | set(cfg.mirrors)):
        registries[host] = {
            "Blocked": False, "Insecure": host in cfg.insecure, "Location": host,
            "MirrorByDigestOnly": False, "Prefix": host, "PullFromMirror": "",
            "Mirrors": [{"Insecure": m in cfg.insecure, "Location": m}
                        for m in cfg.mirrors.get(host, [])] or None}
    registries["search"] = ["docker.io"]
    version = _plain(version_info())["Client"]
    return {
        "host": {
            "arch": _go_arch(),
            "cgroupControllers": _cgroup_controllers(cgroup_version),
            "cgroupManager": "cgroupfs",
            "cgroupVersion": cgroup_version,
            "cpuUtilization": _cpu_utilization(),
            "cpus": len(os.sched_getaffinity(0)),
            "distribution": {"codename": release.get("VERSION_CODENAME", ""),
                             "distribution": release.get("ID", "unknown"),
                             "version": release.get("VERSION_ID", "")},
            "eventLogger": "file",
            "hostname": socket.gethostname(),
            "idMappings": _id_mappings(rootless),
            "kernel": platform.release(),
            "logDriver": "k8s-file",
            "memFree": mem.get("MemFree", 0),
            "memTotal": mem.get("MemTotal", 0),
            "ociRuntime": _oci_runtime(ctx),
            "os": "linux",
            "security": _security(rootless),
            "serviceIsRemote": False,
            "swapFree": mem.get("SwapFree", 0),
            "swapTotal": mem.get("SwapTotal", 0),
            "uptime": _uptime(),
        },
        "plugins": {"authorization": None,
                    "log": ["k8s-file", "json-file", "none", "passthrough"],
                    "network": ["none", "host", "container"],
                    "volume": ["local"]},
        "registries": registries,
        "store": {
            "containerStore": _container_counts(ctx),
            "graphDriverName": engine.storage.mode if engine.storage.mode != "auto"
            else "overlay",
            "graphOptions": {},
            "graphRoot": engine.root,
            "graphRootAllocated": st.f_blocks * st.f_frsize,
            "graphRootUsed": (st.f_blocks - st.f_bfree) * st.f_frsize,
            "graphStatus": {},
            "imageCopyTmpDir": engine.store.ingest_dir,
            "imageStore": {"number": len(images)},
            "runRoot": engine.runroot,
            "volumePath": os.path.join(engine.root, "volumes"),
        },
        "version": version | {"Version": rongqi.__version__},
    }


# podman's Go field names where they are not the JSON key capitalized.
_GO_NAMES = {"cgroupVersion": "CgroupsVersion", "cpus": "CPUs", "cpuUtilization":
             "CPUUtilization", "idMappings": "IDMappings", "gidmap": "GIDMap", "uidmap": "UIDMap",
             "ociRuntime": "OCIRuntime", "os": "OS", "apparmorEnabled": "AppArmorEnabled",
             "capabilities": "DefaultCapabilities", "seccompEnabled": "SECCOMPEnabled",
             "seccompProfilePath": "SECCOMPProfilePath", "selinuxEnabled": "SELinuxEnabled",
             "container_id": "ContainerID", "host_id": "HostID"}
# podman's type names for the sections, as its errors name them.
_GO_TYPES = {"host": "*define.HostInfo", "store": "*define.StoreInfo", "version":
             "define.Version", "plugins": "define.Plugins", "security": "define.SecurityInfo",
             "ociRuntime": "*define.OCIRuntimeInfo", "distribution": "define.DistributionInfo",
             "idMappings": "define.IDMappings", "cpuUtilization": "*define.CPUUsage",
             "containerStore": "define.ContainerStore", "imageStore": "define.ImageStore"}
# Sections that are maps in podman (their keys are data, not fields).
_MAPS = {"registries", "graphOptions", "graphStatus"}


def go_view(data: Any, key: str = "", type_name: str = "define.Info") -> Any:
    """podman's typed Info for templates: JSON keys become Go field names, structs are Structs
    (a misspelt field is an error, as with podman)."""
    from rongqi.cli.output import Struct
    if isinstance(data, dict) and key not in _MAPS:
        return Struct(_GO_TYPES.get(key, type_name),
                      {(_GO_NAMES.get(k) or k[:1].upper() + k[1:]): go_view(v, k, k)
                       for k, v in data.items()})
    if isinstance(data, list):
        return [go_view(x, key, key) for x in data]
    return data


def cmd_info(ctx: Any, a: argparse.Namespace) -> int:
    import json

    from rongqi.cli import gotemplate
    from rongqi.cli.output import render_one, to_yaml
    data = info_data(ctx)
    if a.format and gotemplate.is_json(a.format):
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif a.format:
        sys.stdout.write(render_one(go_view(data), a.format, name="info"))
    else:
        sys.stdout.write(to_yaml(data))
    return 0
