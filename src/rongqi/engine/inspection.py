"""`inspect` for containers: podman 4's JSON shape, built from a container's record.

Field names and nesting are podman's (libpod/define InspectContainerData), so templates
users wrote for podman (`{{.State.Status}}`, `{{.Config.Env}}`, `{{.HostConfig.Memory}}`) work.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rongqi.engine import status as st

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.records import Container

ZERO_TIME = "0001-01-01T00:00:00Z"



def _log_size(text: str) -> str:
    """--log-opt max-size as podman's inspect shows it: go-units' FromHumanSize (decimal:
    "7.047m" is 7047000 bytes) printed by HumanSize ("7.047MB"); "0B" when unset."""
    import re
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?\s*", text or "")
    if not m:
        return text or "0B"
    n = float(m.group(1)) * 1000 ** " kmgtp".index(m.group(2).lower() or " ")
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"

def _health(c: Container) -> dict[str, Any]:
    """podman 4.3 shows State.Health always (Status "" without a health check)."""
    h = c.state.get("health")
    if not c.config.get("healthcheck") and not h:
        return {"Status": "", "FailingStreak": 0, "Log": None}
    h = h or {}
    log = [{"Start": e.get("start", ""), "End": e.get("end", ""),
            "ExitCode": e.get("exit_code", 0), "Output": e.get("output", "")}
           for e in h.get("log") or []]
    return {"Status": h.get("status", "starting" if c.status == st.RUNNING else ""),
            "FailingStreak": h.get("failing_streak", 0), "Log": log or None}


def _state(c: Container, oci_version: str, cgroup: str) -> dict[str, Any]:
    s = c.state
    out: dict[str, Any] = {
        "OciVersion": oci_version,
        "Status": c.status,
        "Running": c.status in (st.RUNNING, st.STOPPING),
        "Paused": c.status == st.PAUSED,
        "Restarting": False,
        "OOMKilled": bool(s.get("oom_killed")),
        "Dead": False,
        "Pid": s.get("pid", 0) if c.status in st.ALIVE else 0,
        "ConmonPid": s.get("monitor_pid", 0) if c.status in st.ALIVE else 0,
        "ExitCode": s.get("exit_code", 0),
        "Error": s.get("error", "") or s.get("reason", ""),
        "StartedAt": s.get("started_at") or ZERO_TIME,
        "FinishedAt": s.get("finished_at") or ZERO_TIME,
        "CheckpointedAt": ZERO_TIME,
        "RestoredAt": ZERO_TIME,
        "Health": _health(c),
        "CgroupPath": cgroup if c.status in st.ALIVE else "",
    }
    return out


def _healthcheck(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not hc:
        return None
    ns = 1_000_000_000
    return {"Test": hc.get("test", []), "StartPeriod": int(hc.get("start_period", 0) * ns),
            "Interval": int(hc.get("interval", 30) * ns),
            "Timeout": int(hc.get("timeout", 30) * ns), "Retries": hc.get("retries", 3)}


def _ulimits(o: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Name": "RLIMIT_" + u["name"].upper(), "Soft": u["soft"], "Hard": u["hard"]}
            for u in o.get("ulimits", [])]


def container_json(engine: Engine, c: Container) -> dict[str, Any]:
    cfg = c.config
    o: dict[str, Any] = cfg.get("options", {})
    spec: dict[str, Any] = {}
    try:
        from rongqi.engine.records import read_json
        spec = read_json(os.path.join(c.bundle, "config.json"))
    except (OSError, ValueError):
        pass
    process = spec.get("process") or {}
    command = cfg.get("command", [])
    entrypoint = o.get("entrypoint")
    restart = cfg.get("restart") or {"name": "no", "max_retries": 0}
    snap_dir = os.path.join(engine.storage.snap_dir, cfg.get("snapshot") or c.id)
    caps = (process.get("capabilities") or {})
    resources = (spec.get("linux") or {}).get("resources") or {}
    memory = resources.get("memory") or {}
    cpu = resources.get("cpu") or {}
    blkio = resources.get("blockIO") or {}
    nano_cpus = int(o.get("cpus") * 1e9) if o.get("cpus") else 0
    mounts = cfg.get("mounts", [])
    log_size = _log_size(o.get("log_opts", {}).get("max-size", ""))
    return {
        "Id": c.id,
        "Created": cfg.get("created", ""),
        "Path": command[0] if command else "",
        "Args": command[1:],
        "State": _state(c, spec.get("ociVersion", "1.2.0"), _cgroup_path(spec, c.id)),
        "Image": cfg.get("image_id", "").removeprefix("sha256:"),
        "ImageDigest": cfg.get("image_digest", ""),
        "ImageName": cfg.get("image_name", ""),
        "Rootfs": "",
        "Pod": "",
        "ResolvConfPath": os.path.join(c.userdata, "resolv.conf"),
        "HostnamePath": os.path.join(c.userdata, "hostname"),
        "HostsPath": os.path.join(c.userdata, "hosts"),
        "StaticDir": c.userdata,
        "OCIConfigPath": os.path.join(c.bundle, "config.json"),
        "OCIRuntime": os.path.basename(cfg.get("runtime", "rongqi")),
        "ConmonPidFile": os.path.join(c.run_dir, "monitor.pid"),
        "PidFile": "",
        "Name": c.name,
        "RestartCount": c.state.get("restart_count", 0),
        "Driver": "overlay",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "EffectiveCaps": sorted(caps.get("effective", [])),
        "BoundingCaps": sorted(caps.get("bounding", [])),
        "ExecIDs": c.state.get("exec_ids", []),
        "GraphDriver": {"Name": "overlay", "Data": {
            "UpperDir": os.path.join(snap_dir, "upper"),
            "WorkDir": os.path.join(snap_dir, "work"),
            "MergedDir": os.path.join(snap_dir, "rootfs")}},
        "Mounts": mounts,
        "Dependencies": [],
        "NetworkSettings": _network_settings(c),
        "Namespace": "",
        "IsInfra": False,
        "IsService": False,
        "Config": {
            "Hostname": spec.get("hostname", "") or o.get("hostname", "") or c.id[:12],
            "Domainname": "",
            "User": o.get("user", ""),
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "Tty": bool(o.get("tty")),
            "OpenStdin": bool(o.get("interactive")),
            "StdinOnce": False,
            "Env": process.get("env", [f"{k}={v}" for k, v in o.get("env", {}).items()]),
            "Cmd": o.get("command") or command[len(entrypoint or []):] or None,
            "Image": cfg.get("image_name", ""),
            "Volumes": None,
            "WorkingDir": process.get("cwd", o.get("workdir") or "/"),
            "Entrypoint": " ".join(entrypoint) if entrypoint else "",
            "OnBuild": None,
            "Labels": cfg.get("labels") or None,
            "Annotations": cfg.get("annotations") or {},
            "StopSignal": _signal_number(cfg.get("stop_signal", "SIGTERM")),
            **({"Healthcheck": _healthcheck(cfg["healthcheck"])} if cfg.get("healthcheck")
               else {}),
            "HealthcheckOnFailureAction": "none",
            "CreateCommand": cfg.get("create_command", []),
            "Umask": "0022",
            "Timeout": o.get("timeout", 0),
            "StopTimeout": cfg.get("stop_timeout", 10),
            "Passwd": True,
            "sdNotifyMode": "container",
        },
        "HostConfig": {
            "Binds": [f"{m.get('Source', '')}:{m.get('Destination', '')}"
                      for m in mounts if m.get("Type") in ("bind", "volume")],
            "CgroupManager": "cgroupfs",
            "CgroupMode": "private" if any(n.get("type") == "cgroup" for n in
                                           (spec.get("linux") or {}).get("namespaces", []))
            else "host",
            "ContainerIDFile": o.get("cidfile", ""),
            "LogConfig": {"Type": cfg.get("log_driver", "k8s-file"),
                          "Config": o.get("log_opts") or None,
                          # podman: no log file (and no path) with the none driver
                          "Path": "" if cfg.get("log_driver") == "none"
                          else cfg.get("log_path", ""), "Tag": "", "Size": log_size},
            "NetworkMode": _network_mode(c, o),
            "PortBindings": _port_bindings(c),
            "RestartPolicy": {"Name": "" if restart.get("name") == "no" else restart.get("name"),
                              "MaximumRetryCount": restart.get("max_retries", 0)},
            "AutoRemove": bool(o.get("remove")),
            "VolumeDriver": "",
            "VolumesFrom": None,
            "CapAdd": o.get("cap_add", []),
            "CapDrop": o.get("cap_drop", []),
            "Dns": o.get("dns", []),
            "DnsOptions": o.get("dns_option", []),
            "DnsSearch": o.get("dns_search", []),
            "ExtraHosts": o.get("add_host", []),
            "GroupAdd": o.get("group_add", []),
            "IpcMode": "private",
            "Cgroup": "",
            "Cgroups": "default",
            "Links": None,
            "OomScoreAdj": o.get("oom_score_adj") or 0,
            "PidMode": "private",
            "Privileged": bool(o.get("privileged")),
            "PublishAllPorts": bool(o.get("publish_all")),
            "ReadonlyRootfs": bool(o.get("read_only")),
            "SecurityOpt": _security_opt(o),
            "Tmpfs": {m["destination"]: ",".join(m.get("options", []))
                      for m in o.get("mounts", []) if m.get("kind") == "tmpfs"},
            "UTSMode": "private",
            "UsernsMode": o.get("userns", ""),
            "ShmSize": o.get("shm_size") or 65536000,
            "Runtime": "oci",
            "ConsoleSize": [0, 0],
            "Isolation": "",
            "CpuShares": o.get("cpu_shares") or cpu.get("shares", 0) or 0,
            "Memory": o.get("memory") or max(memory.get("limit", 0) or 0, 0),
            "NanoCpus": nano_cpus,
            "CgroupParent": "",
            "BlkioWeight": blkio.get("weight", 0) or 0,
            "BlkioWeightDevice": _device_rules(blkio.get("weightDevice"), "Weight", "weight"),
            "BlkioDeviceReadBps": _device_rules(blkio.get("throttleReadBpsDevice")),
            "BlkioDeviceWriteBps": _device_rules(blkio.get("throttleWriteBpsDevice")),
            "BlkioDeviceReadIOps": _device_rules(blkio.get("throttleReadIOPSDevice")),
            "BlkioDeviceWriteIOps": _device_rules(blkio.get("throttleWriteIOPSDevice")),
            "CpuPeriod": cpu.get("period", 0) or 0,
            "CpuQuota": max(cpu.get("quota", 0) or 0, 0),
            "CpuRealtimePeriod": cpu.get("realtimePeriod", 0) or 0,
            "CpuRealtimeRuntime": cpu.get("realtimeRuntime", 0) or 0,
            "CpusetCpus": o.get("cpuset_cpus", ""),
            "CpusetMems": o.get("cpuset_mems", ""),
            "Devices": [{"PathOnHost": d["host_path"], "PathInContainer": d["container_path"],
                         "CgroupPermissions": d.get("permissions", "rwm")}
                        for d in o.get("devices", [])],
            "DiskQuota": 0,
            "KernelMemory": 0,
            "MemoryReservation": o.get("memory_reservation") or 0,
            "MemorySwap": o.get("memory_swap") or memory.get("swap", 0) or 0,
            "MemorySwappiness": memory.get("swappiness", -1),
            "OomKillDisable": False,
            "PidsLimit": o.get("pids_limit") or ((resources.get("pids") or {}).get("limit", 0)),
            "Ulimits": _ulimits(o),
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "CgroupConf": None,
        },
    }


def _device_rules(rules: list[dict[str, Any]] | None, key: str = "Rate",
                  field: str = "rate") -> list[dict[str, Any]] | None:
    """blockIO's per-device rules as podman's inspect shows them ({Path, Rate|Weight}): the
    path is the device node with those numbers, as /dev has it."""
    if not rules:
        return None
    return [{"Path": _device_path(r.get("major", 0), r.get("minor", 0)), key: r.get(field, 0)}
            for r in rules]


def _device_path(major: int, minor: int) -> str:
    link = f"/sys/dev/block/{major}:{minor}"
    try:
        return "/dev/" + os.path.basename(os.readlink(link))
    except OSError:
        return f"{major}:{minor}"


def _cgroup_path(spec: dict[str, Any], cid: str) -> str:
    path = (spec.get("linux") or {}).get("cgroupsPath") or ""
    if path.startswith("/"):
        return path
    return f"/rongqi/{cid}" if not path else path


def _network_settings(c: Container) -> dict[str, Any]:
    from rongqi.engine import networks
    return networks.settings(c)


def _network_mode(c: Container, o: dict[str, Any]) -> str:
    from rongqi.engine import networks
    mode, _ = networks.mode_of(o.get("network", ""), bool(c.config.get("rootless")))
    return mode


def _port_bindings(c: Container) -> dict[str, Any]:
    from rongqi.engine import networks
    return networks.settings(c)["Ports"]


def _security_opt(o: dict[str, Any]) -> list[str]:
    out = []
    if o.get("seccomp_profile"):
        out.append(f"seccomp={o['seccomp_profile']}")
    if o.get("no_new_privileges"):
        out.append("no-new-privileges")
    if o.get("label_disable"):
        out.append("label=disable")
    return out


def _signal_number(name: str) -> int:
    from rongqi.engine.runtime import signal_number
    try:
        return signal_number(name)
    except Exception:  # noqa: BLE001 - a record from a newer version: show 15, not a traceback
        return 15
