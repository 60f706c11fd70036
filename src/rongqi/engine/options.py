"""What a user asks of a new container: the options of `run`/`create`, as plain values.

The CLI (cli/run_flags.py), the Python API and the HTTP service all fill a ContainerOptions;
engine.bundle turns one (with the image's config) into an OCI config.json. Names follow
podman's flags; values are already parsed (bytes, seconds, lists), never raw flag strings.
"""

from __future__ import annotations

from rongqi.values import dataclass, field


@dataclass
class MountSpec:
    """One -v/--volume, --mount or --tmpfs. kind: "bind", "volume" (named or anonymous) or "tmpfs"."""

    kind: str
    destination: str
    source: str = ""              # host path (bind), volume name ("" = anonymous), unused for tmpfs
    readonly: bool = False
    options: list[str] = field(default_factory=list)   # extra mount options: nosuid, size=64m, rprivate, z/Z...


@dataclass
class DeviceSpec:
    """--device HOST[:CONTAINER][:PERMS]."""

    host_path: str
    container_path: str
    permissions: str = "rwm"


@dataclass
class Ulimit:
    name: str        # "nofile", "nproc", ... (without RLIMIT_)
    soft: int
    hard: int


@dataclass
class IdMap:
    container_id: int
    host_id: int
    size: int


@dataclass
class Healthcheck:
    """--health-* flags, or the image's Healthcheck when the flags are absent."""

    test: list[str]              # ["CMD-SHELL", "curl ..."], ["CMD", "x", "y"] or ["NONE"]
    interval: float = 30.0       # seconds
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


@dataclass
class RestartPolicy:
    name: str = "no"             # no | on-failure | always | unless-stopped
    max_retries: int = 0         # on-failure:N (0 = unlimited)


@dataclass
class ContainerOptions:
    image: str
    command: list[str] = field(default_factory=list)        # after the image name; [] = image's Cmd
    entrypoint: list[str] | None = None                      # None = image's; [] = none (--entrypoint "")
    name: str = ""
    replace: bool = False
    cidfile: str = ""
    detach: bool = False
    interactive: bool = False
    stdin_once: bool | None = None                           # Docker's StdinOnce (the API's create): the first attach's EOF closes stdin; None: as run -i
    tty: bool = False
    remove: bool = False                                     # --rm
    sig_proxy: bool = True
    detach_keys: str | None = None                           # None = default "ctrl-p,ctrl-q"
    env: dict[str, str] = field(default_factory=dict)        # -e and --env-file, merged over the image's
    env_host: bool = False
    workdir: str = ""
    user: str = ""                                           # "name", "uid", "uid:gid", "name:group"
    group_add: list[str] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""                                     # the UTS domain name (Docker's Config.Domainname)
    mounts: list[MountSpec] = field(default_factory=list)
    read_only: bool = False
    read_only_tmpfs: bool = True                             # podman: tmpfs on /tmp, /var/tmp, /run with --read-only
    # resources (None = unset)
    memory: int | None = None                                # bytes
    memory_swap: int | None = None                           # bytes, -1 = unlimited
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_period: int | None = None                            # microseconds (--cpu-period)
    cpu_quota: int | None = None                             # microseconds (--cpu-quota)
    cpu_shares: int | None = None
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None                            # -1 = unlimited
    ulimits: list[Ulimit] = field(default_factory=list)
    # security
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    seccomp_profile: str = ""                                # "" = default, "unconfined", or a file path
    no_new_privileges: bool = False
    label_disable: bool = False
    mask: list[str] = field(default_factory=list)
    unmask: list[str] = field(default_factory=list)          # ["ALL"] or paths
    devices: list[DeviceSpec] = field(default_factory=list)
    userns: str = ""                                         # "" (host) | "host" | "keep-id" | "auto"
    uidmap: list[IdMap] = field(default_factory=list)
    gidmap: list[IdMap] = field(default_factory=list)
    init: bool = False                                       # --init: catatonit (or tini) as PID 1
    init_path: str = ""
    # lifecycle
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    stop_signal: str = ""                                    # "" = image's StopSignal or SIGTERM
    stop_timeout: int | None = None                          # None = 10
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None                   # None = the image's
    no_healthcheck: bool = False
    # logs
    log_driver: str = "k8s-file"                             # k8s-file | json-file | none | passthrough
    log_opts: dict[str, str] = field(default_factory=dict)   # max-size, max-file, path
    # image
    pull: str = "missing"                                    # missing | always | never | newer
    platform: str = ""                                       # os/arch[/variant] to pull; "" = this host's
    no_hosts: bool = False                                   # --no-hosts: the image's /etc/hosts
    tls_verify: bool = True
    # network: "" is the default (bridge on the network `podman` as root, slirp4netns rootless)
    network: str = ""                                        # none | host | bridge | slirp4netns | container:NAME | NAME[,NAME]
    network_aliases: list[str] = field(default_factory=list)
    ip: str = ""
    mac_address: str = ""
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_option: list[str] = field(default_factory=list)
    add_host: list[str] = field(default_factory=list)        # "name:ip"
    publish: list[str] = field(default_factory=list)         # raw -p values, parsed by engine.networks
    publish_all: bool = False
    expose: list[str] = field(default_factory=list)          # --expose PORT[/PROTO], beside the image's ExposedPorts
    # misc
    shm_size: int | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    oom_score_adj: int | None = None
    timeout: int = 0                                         # podman --timeout: seconds, 0 = none
