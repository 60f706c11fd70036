"""The Docker API's system endpoints: /_ping (GET, HEAD), /version, /info, /events (a stream,
with since/until/filters) and /system/df, over the same engine the CLI's `info`, `events`
and `system df` read.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from collections.abc import Iterator
from typing import Any

import rongqi
from rongqi.errors import RongqiError
from rongqi.serve.app import (API_VERSION, MIN_API_VERSION, HTTPError, Request, Response,
                              json_response, json_stream, route, version_text)


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


def _image_count(engine: Any, fallback: int) -> int:
    """dockerd's Images: every image id GET /images/json?all=1 lists (named and dangling),
    which docker-py's suite compares with that listing."""
    from rongqi.engine import imageinfo
    try:
        return len({f.id for f in imageinfo.all_images(engine.store)})
    except (RongqiError, OSError):
        return fallback


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


# -- /info ---------------------------------------------------------------------------------------
_listeners = 0  # open /events streams (Info's NEventsListener)
_listeners_lock = threading.Lock()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def info_data(engine: Any) -> dict[str, Any]:
    """dockerd's types.Info (1.41) from what `rongqi info` gathers (cli/system.py's
    info_data: the same facts, podman's shape), plus what Docker's has and podman's lacks."""
    from types import SimpleNamespace

    from rongqi.cli.system import _os_release, info_data as podman_info
    rt = engine.runtime
    pi = podman_info(SimpleNamespace(engine=engine, args=SimpleNamespace(
        runtime=None if rt.name == "rongqi" else rt.name)))
    host, store = pi["host"], pi["store"]
    counts = store["containerStore"]
    release = _os_release()
    cfg = engine.registry().config
    index = {"docker.io": {"Name": "docker.io", "Mirrors": list(cfg.mirrors.get("docker.io", [])),
                           "Secure": True, "Official": True}}
    for reg in sorted(set(cfg.insecure) | set(cfg.mirrors)):
        index[reg] = {"Name": reg, "Mirrors": list(cfg.mirrors.get(reg, [])),
                      "Secure": reg not in cfg.insecure, "Official": reg == "docker.io"}
    runtimes = {"rongqi": {"path": "rongqi (in-process)"}}
    if rt.name != "rongqi":
        runtimes[os.path.basename(rt.name)] = {"path": rt.name}
    security = ["name=seccomp,profile=default"]
    if engine.rootless:
        security.append("name=rootless")
    if host["cgroupVersion"] == "v2":
        security.append("name=cgroupns")
    with _listeners_lock:
        listeners = _listeners
    try:
        nfd = len(os.listdir("/proc/self/fd"))
    except OSError:
        nfd = 0
    return {
        "ID": _engine_id(engine),
        "Containers": counts["number"], "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"], "ContainersStopped": counts["stopped"],
        "Images": _image_count(engine, store["imageStore"]["number"]),
        "Driver": store["graphDriverName"],
        "DriverStatus": [["Backing Filesystem", _fs_type(engine.root)]],
        "SystemStatus": None,
        "Plugins": {"Volume": pi["plugins"]["volume"],
                    "Network": ["bridge", "host", "none", "container"],
                    "Authorization": None, "Log": pi["plugins"]["log"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False,
        "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward") == "1",
        "BridgeNfIptables": _read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
        "BridgeNfIp6tables": _read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
        "Debug": False, "NFd": nfd, "OomKillDisable": False,
        "NGoroutines": threading.active_count(),
        "SystemTime": _now_rfc3339(),
        "LoggingDriver": host["logDriver"],
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if host["cgroupVersion"] == "v2" else "1",
        "NEventsListener": listeners,
        "KernelVersion": host["kernel"],
        "OperatingSystem": release.get("PRETTY_NAME", "Linux"),
        "OSVersion": release.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "IndexConfigs": index,
                           "Mirrors": list(cfg.mirrors.get("docker.io", []))},
        "NCPU": host["cpus"], "MemTotal": host["memTotal"],
        "GenericResources": None,
        "DockerRootDir": engine.root,
        "HttpProxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "",
        "HttpsProxy": os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or "",
        "NoProxy": os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "",
        "Name": host["hostname"],
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": rongqi.__version__,
        "Runtimes": runtimes,
        "DefaultRuntime": "rongqi" if rt.name == "rongqi" else os.path.basename(rt.name),
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        # containers outlive the service (their monitors own them): what live-restore means
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": security,
        "Warnings": [],
    }


def _engine_id(engine: Any) -> str:
    """dockerd's ID is a key fingerprint kept in its root; ours is the root's, made once."""
    import secrets
    path = os.path.join(engine.root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    except OSError:
        return ""
    ident = ":".join(secrets.token_hex(2).upper() for _ in range(12))
    try:
        os.makedirs(engine.root, 0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "w") as f:
            f.write(ident + "\n")
        os.link(tmp, path)  # the first one made wins; a racing request reads it
    except FileExistsError:
        with open(path) as f:
            ident = f.read().strip()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)
    return ident


def _fs_type(path: str) -> str:
    """The filesystem type under path (the longest mount point containing it)."""
    best, kind = "", ""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and (path == parts[1] or path.startswith(
                        parts[1].rstrip("/") + "/")) and len(parts[1]) >= len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def _now_rfc3339() -> str:
    from rongqi.oci.timefmt import rfc3339nano
    return rfc3339nano(time.time_ns())


@route("GET", "/info")
def info(req: Request) -> Response:
    return json_response(info_data(req.engine))


# -- /events -------------------------------------------------------------------------------------
# podman's action names where Docker's differ, both ways (the engine's log has podman's).
_TO_DOCKER = {("container", "died"): "die", ("container", "remove"): "destroy",
              ("image", "remove"): "delete", ("volume", "remove"): "destroy",
              ("network", "remove"): "destroy", ("image", "loadfromarchive"): "load"}
_FROM_DOCKER = {"die": "died", "destroy": "remove", "delete": "remove",
                "load": "loadfromarchive"}
# Docker's filter keys the engine's log can answer, and those it answers with "nothing"
# (rongqi has no daemon, plugin or swarm events).
_DOCKER_FILTERS = {"container", "event", "image", "label", "type", "volume", "network"}
_EMPTY_FILTERS = {"daemon", "plugin", "node", "service", "secret", "config"}


def docker_event(e: Any) -> dict[str, Any]:
    """An engine event (podman's fields) as dockerd's events.Message."""
    action = _TO_DOCKER.get((e.type, e.status), e.status)
    attrs: dict[str, str] = {}
    actor_id = e.id
    if e.type == "container":
        if e.image:
            attrs["image"] = e.image
        if e.name:
            attrs["name"] = e.name
        if e.status == "died":
            attrs["exitCode"] = str(e.exit_code or 0)
        if e.status == "health_status" and e.health_status:
            action = f"health_status: {e.health_status}"
    elif e.type == "image":
        actor_id = e.name or e.id
        if e.name:
            attrs["name"] = e.name
    elif e.type == "volume":
        actor_id = e.name
        attrs["driver"] = "local"
    elif e.type == "network":
        actor_id = e.network or e.name
        attrs["name"] = e.network or e.name
        attrs["type"] = "bridge"
        if e.id:
            attrs["container"] = e.id
    for k, v in (e.attributes or {}).items():
        attrs.setdefault(k, v)
    msg: dict[str, Any] = {}
    if e.type in ("container", "image"):
        # the fields before 1.22's Type/Action/Actor, which docker's CLI still prints
        msg["status"] = action
        msg["id"] = actor_id
        if e.type == "container" and e.image:
            msg["from"] = e.image
    msg.update({"Type": e.type, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                "scope": "local", "time": e.time_ns // 1_000_000_000, "timeNano": e.time_ns})
    return msg


def event_filters(req: Request) -> dict[str, list[str]] | None:
    """The request's filters for the engine's reader; None when one can match nothing."""
    out: dict[str, list[str]] = {}
    for key, values in req.filters().items():
        if key in _EMPTY_FILTERS:
            return None
        if key == "scope":
            if "local" not in values:
                return None
            continue
        if key not in _DOCKER_FILTERS:
            raise HTTPError(400, f"invalid filter '{key}'")
        if key == "event":
            values = [_FROM_DOCKER.get(v, v) for v in values]
            # "health_status: healthy" filters on the action without the status
            values = [v.partition(":")[0] for v in values]
        out[key] = values
    return out


def _time_arg(req: Request, name: str) -> int | None:
    from rongqi.engine.events import parse_input_time
    from rongqi.errors import UsageError
    text = req.arg(name)
    if not text:
        return None
    try:
        return parse_input_time(text, since=name == "since")
    except UsageError as e:
        raise HTTPError(400, str(e)) from None


class _StreamEnd:
    """The reader's `stop`: set when the service shuts down or the client has gone (checked
    at each of the reader's polls, so a stream nobody reads does not live forever)."""

    def __init__(self, req: Request):
        self.req = req

    def is_set(self) -> bool:
        return self.req.stopping.is_set() or self.req.disconnected()

    def wait(self, timeout: float | None = None) -> bool:
        self.req.stopping.wait(timeout)
        return self.is_set()


@route("GET", "/events")
def events(req: Request) -> Response:
    """dockerd's: with neither since nor until, new events until the client leaves; with
    since, the log's events from then on first; with until, the stream ends then (at once,
    after the history, when it has passed)."""
    from rongqi.engine import events as ev
    since = _time_arg(req, "since")
    until = _time_arg(req, "until")
    filters = event_filters(req)
    stream = until is None or until > time.time_ns()
    if since is None and until is not None:
        since = 0  # dockerd sends what it kept up to `until`
    root = req.engine.root
    stop = _StreamEnd(req)
    opts = ev.ReadOptions(filters=filters or {}, since_ns=since, until_ns=until, stream=stream,
                          stop=stop,  # type: ignore[arg-type]
                          poll_interval=0.2)

    def messages() -> Iterator[dict[str, Any]]:
        global _listeners
        with _listeners_lock:
            _listeners += 1
        try:
            if filters is None:
                # a filter nothing can match: an open stream with nothing in it
                while stream and not stop.is_set() and (until is None or time.time_ns() < until):
                    stop.wait(0.2)
                return
            for e in ev.read(root, opts):
                yield docker_event(e)
        finally:
            with _listeners_lock:
                _listeners -= 1

    return json_stream(messages())


# -- /system/df ----------------------------------------------------------------------------------
@route("GET", "/system/df")
def system_df(req: Request) -> Response:
    """dockerd's DiskUsage: LayersSize, images (with SharedSize and their containers),
    containers (with SizeRw and SizeRootFs), volumes (with UsageData), no build cache. Each
    entry is what its own list answers (/images/json, /containers/json?size=1, /volumes),
    the shared sizes and counts engine/usage.py's, which `rongqi system df` shows too."""
    from rongqi.engine import imageinfo
    from rongqi.engine.usage import disk_usage
    from rongqi.serve.translate import summary_json
    from rongqi.serve.volumes import disk_usage as volume_size, docker_volume
    engine = req.engine
    u = disk_usage(engine)
    image_use = {i.id: i for i in u.images}
    images = []
    for facts in imageinfo.all_images(engine.store):
        iu = image_use.get(facts.id)
        entry = imageinfo.list_entry(facts, containers=iu.containers if iu else 0,
                                     engine=engine)
        entry["SharedSize"] = iu.shared_size if iu else 0
        images.append(entry)
    containers = [summary_json(engine, c, size=True) for c in engine.list(all=True)]
    links = {v.name: v.links for v in u.volumes}
    volumes = [docker_volume(v, {"Size": volume_size(v.mountpoint),
                                 "RefCount": links.get(v.name, 0)})
               for v in engine.volumes.list()]
    return json_response({"LayersSize": u.layers_size, "Images": images,
                          "Containers": containers, "Volumes": volumes, "BuildCache": []})
