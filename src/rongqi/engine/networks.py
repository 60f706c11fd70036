"""Networks: records (podman's network JSON, as netavark takes it), IPAM leases, and each
container's network namespace set up and torn down through netavark (names by aardvark-dns).

The runtime only ever sees a netns path (linux.namespaces). Records live in ROOT/networks;
leases, the netavark lock and the netns mounts are host-wide (bridges and addresses are), under
RUNDIR (/run/rongqi/networks). docs/networks.md says why netavark and how the pieces fit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rongqi.errors import EngineError, UsageError

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.options import ContainerOptions
    from rongqi.engine.records import Container

# The default network: podman's name (so `--network podman` and podman's JSON read the same),
# but a bridge, subnet and id of its own. Sharing podman's (podman0, 10.88.0.0/16, its id)
# would put two IPAMs on one subnet (podman's ipam.db and RUNDIR/ipam: both hand out
# 10.88.0.2 first) and one set of netavark chains (named from the id) under two owners.
DEFAULT_NAME = "podman"
DEFAULT_ID = "028f80341b7f2023f364f62afae5e7dd515e612fb5af31e0259b314a1eefca05"
DEFAULT_SUBNET = "10.87.0.0/16"
DEFAULT_BRIDGE = "rongqi0"
# What roots made before kept (podman's own values); replaced by the above while no container
# on this host holds an address on it (NetworkStore._default).
PODMAN_DEFAULT_ID = "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9"
DNS_DOMAIN = "dns.podman"
RUNDIR = "/run/rongqi/networks"      # host-wide: leases, the netavark lock, netns mounts
NETNS_DIR = "/run/netns"             # where `ip netns` (and the leak check) look
ATTACH_FILE = "networks.json"        # in a container's userdata: attachments, ports, status
DRIVERS = ("bridge",)
MODES = ("none", "host", "private", "bridge", "slirp4netns", "pasta")
_PATH_ENV = "/usr/sbin:/usr/bin:/sbin:/bin"


class NetworkError(EngineError):
    """A network operation failed (netavark's error, a bad option): exit 125."""


class NoSuchNetwork(NetworkError):
    def __init__(self, ref: str):
        super().__init__(f"unable to find network with name or ID {ref}: network not found")


class NetworkInUse(NetworkError):
    exit_code = 2


class NetworkExists(NetworkError):
    def __init__(self, name: str):
        super().__init__(f"network name {name} already used: network already exists")
        self.name = name


class AlreadyConnected(NetworkError):
    """connect of a container to a network it is on already."""


class NotConnected(NetworkError):
    """disconnect of a container from a network it is not on."""


class InvalidNetworkMode(NetworkError):
    """connect/disconnect of a container whose network is not bridge (none, host, ...)."""



class PortInUse(NetworkError):
    """A published host port another process holds: podman's `run` exits 126 for it (the
    container could not be started), not 125."""

    exit_code = 126

def _find(*candidates: str) -> str:
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return shutil.which(os.path.basename(candidates[-1])) or candidates[0]


def netavark_binary() -> str:
    return os.environ.get("RONGQI_NETAVARK") or _find(
        "/usr/lib/podman/netavark", "/usr/libexec/podman/netavark", "/usr/local/lib/podman/netavark")


def aardvark_binary() -> str:
    return _find("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns",
                 "/usr/local/lib/podman/aardvark-dns")


def now_rfc3339() -> str:
    from rongqi.oci.timefmt import rfc3339nano
    return rfc3339nano(time.time_ns())


# -- network records -----------------------------------------------------------------------------
class NetworkStore:
    """ROOT/networks/NAME.json, one per network, written by temp file + rename under
    ROOT/networks/.lock; the default network `podman` (bridge rongqi0, 10.87.0.0/16) is made
    the first time it is looked at."""

    def __init__(self, root: str):
        self.dir = os.path.join(root, "networks")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        from rongqi.locking import Lock
        os.makedirs(self.dir, 0o700, exist_ok=True)
        with Lock(os.path.join(self.dir, ".lock")):
            yield

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name + ".json")

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            with open(self._path(name)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, net: dict[str, Any]) -> None:
        os.makedirs(self.dir, 0o700, exist_ok=True)
        tmp = self._path("." + net["name"] + ".tmp")
        with open(tmp, "w") as f:
            json.dump(net, f, indent=1)
        os.rename(tmp, self._path(net["name"]))

    def _default(self) -> dict[str, Any]:
        net = self._read(DEFAULT_NAME)
        if net is None or net.get("id") == PODMAN_DEFAULT_ID:
            with self.lock():
                net = self._read(DEFAULT_NAME)
                if net is None or (net.get("id") == PODMAN_DEFAULT_ID
                                   and not os.path.exists(_ipam_path(net))):
                    net = default_network()
                    self._write(net)
        return net

    def names(self) -> list[str]:
        try:
            return sorted(f[:-5] for f in os.listdir(self.dir)
                          if f.endswith(".json") and not f.startswith("."))
        except FileNotFoundError:
            return []

    def list(self) -> list[dict[str, Any]]:
        self._default()
        return [n for n in (self._read(name) for name in self.names()) if n]

    def get(self, ref: str) -> dict[str, Any]:
        """By name, full id or unique id prefix."""
        if ref == DEFAULT_NAME:
            return self._default()
        net = self._read(ref) if ref and "/" not in ref and not ref.startswith(".") else None
        if net:
            return net
        found = [n for n in self.list() if n["id"].startswith(ref)] if ref else []
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NetworkError(f"more than one result for network ID {ref}")
        raise NoSuchNetwork(ref)

    def exists(self, ref: str) -> bool:
        try:
            self.get(ref)
            return True
        except NoSuchNetwork:
            return False

    def create(self, name: str = "", *, driver: str = "bridge", subnets: list[str] | None = None,
               gateways: list[str] | None = None, ip_ranges: list[str] | None = None,
               internal: bool = False, ipv6: bool = False, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, disable_dns: bool = False,
               dns_servers: list[str] | None = None, interface_name: str = "",
               ignore: bool = False,
               docker_options: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A new network in podman's shape; subnets overlapping another network's or a route
        of the host are refused, as podman does. docker_options: the options as a Docker
        client gave them, kept to be shown back (netavark ignores the key)."""
        if driver not in DRIVERS:
            raise NetworkError(f"unsupported driver {driver}: invalid argument")
        if name:
            _check_name(name)
        for k in (options or {}):
            if k not in ("mtu", "vlan", "isolate", "metric", "com.docker.network.bridge.name"):
                raise NetworkError(f"unsupported bridge network option {k}")
        self._default()
        with self.lock():
            existing = [n for n in (self._read(x) for x in self.names()) if n]
            if name and any(n["name"] == name for n in existing):
                if ignore:
                    return next(n for n in existing if n["name"] == name)
                raise NetworkExists(name)
            if not name:
                used = {n["name"] for n in existing}
                name = next(f"podman{i}" for i in range(1, 10000) if f"podman{i}" not in used)
            nid = os.urandom(32).hex()  # as secrets.token_hex (whose import is ~10 ms)
            nets = _parse_subnets(subnets or [], gateways or [], ip_ranges or [])
            taken = [ipaddress.ip_network(s["subnet"]) for n in existing for s in n["subnets"]]
            host = host_routes()
            for s in nets:
                net = ipaddress.ip_network(s["subnet"])
                if any(net.version == t.version and net.overlaps(t) for t in taken + host):
                    raise NetworkError(f"subnet {net} is already used on the host or by "
                                       "another config")
                taken.append(net)
            if not any(ipaddress.ip_network(s["subnet"]).version == 4 for s in nets) and \
                    not (ipv6 and nets):
                nets.insert(0, _free_subnet(taken + host, 4))
            if ipv6 and not any(ipaddress.ip_network(s["subnet"]).version == 6 for s in nets):
                nets.append(_free_subnet(taken + host, 6))
            if any(ipaddress.ip_network(s["subnet"]).version == 6 for s in nets):
                ipv6 = True
            opts = dict(options or {})
            bridge = interface_name or opts.pop("com.docker.network.bridge.name", "")
            if not bridge:
                used_if = {n.get("network_interface") for n in existing} | _host_links()
                bridge = next(f"podman{i}" for i in range(1, 10000)
                              if f"podman{i}" not in used_if)
            elif any(n.get("network_interface") == bridge for n in existing):
                raise NetworkError(f"bridge name {bridge} already in use")
            net: dict[str, Any] = {
                "name": name, "id": nid, "driver": driver, "network_interface": bridge,
                "created": now_rfc3339(), "subnets": nets, "ipv6_enabled": ipv6,
                "internal": internal, "dns_enabled": not disable_dns,
            }
            if not dns_servers and not disable_dns:
                dns_servers = default_dns_servers()
            if dns_servers:
                net["network_dns_servers"] = list(dns_servers)
            if labels:
                net["labels"] = dict(labels)
            if opts:
                net["options"] = opts
            net["ipam_options"] = {"driver": "host-local"}
            if docker_options:
                net["docker_options"] = dict(docker_options)
            self._write(net)
        from rongqi.engine import events
        events.emit(os.path.dirname(self.dir), "network", "create", name=net["name"],
                    network=net["name"])
        return net

    def remove(self, ref: str, engine: Engine, force: bool = False) -> str:
        net = self.get(ref)
        if net["name"] == DEFAULT_NAME:
            raise NetworkError(f"default network {DEFAULT_NAME} cannot be removed")
        users = containers_on(engine, net["name"])
        if users and not force:
            raise NetworkInUse(f'"{net["name"]}" has associated containers with it. Use -f to '
                               "forcibly delete containers and pods: network is being used")
        for cid in users:
            with contextlib.suppress(EngineError):
                engine.remove(cid, force=True, timeout=0)
        with self.lock():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(net["name"]))
        from rongqi.engine import events
        events.emit(engine.root, "network", "remove", name=net["name"], network=net["name"])
        return net["name"]

    def prune(self, engine: Engine,
              filters: list[str] | Mapping[str, Sequence[str]] | None = None) -> list[str]:
        """Remove the networks no container is attached to (not the default); returns their
        names."""
        match = compile_filters(filters or [], prune=True)
        used = networks_in_use(engine)
        out = []
        for net in self.list():
            if net["name"] == DEFAULT_NAME or net["name"] in used or not match(net):
                continue
            with contextlib.suppress(NoSuchNetwork, NetworkInUse):
                out.append(self.remove(net["name"], engine))
        return out


# -- Docker's create fields (the Docker API's body, docker-py's keywords) -----------------------
# Docker's names that are not networks of ours to make: its three built-in ones.
DOCKER_PREDEFINED = ("bridge", "host", "none")
# Docker's bridge driver options that netavark has (others are ignored with a warning, as
# podman's compat API does).
_DOCKER_OPTIONS = {"com.docker.network.driver.mtu": "mtu", "mtu": "mtu", "vlan": "vlan",
                   "metric": "metric", "isolate": "isolate"}


class PredefinedNetwork(NetworkError):
    def __init__(self, name: str):
        # Docker's words (with its trailing space).
        super().__init__(f"operation is not permitted on predefined {name} network ")


def create_docker_style(store: NetworkStore, name: str, *, driver: str | None = None,
                        options: Mapping[str, str] | None = None,
                        ipam: Mapping[str, Any] | None = None, internal: bool = False,
                        labels: Mapping[str, str] | None = None,
                        enable_ipv6: bool = False) -> tuple[dict[str, Any], list[str]]:
    """A network from Docker's fields: IPAM {Driver, Options, Config: [{Subnet, Gateway,
    IPRange, AuxiliaryAddresses}]} (docker-py's keys, or compose's lower-case ones), Docker's
    option names. Returns the record and warnings for what was ignored."""
    if not name:
        raise UsageError("network name is required")
    if name in DOCKER_PREDEFINED:
        raise PredefinedNetwork(name)
    warnings: list[str] = []
    opts: dict[str, str] = {}
    bridge = ""
    for k, v in (options or {}).items():
        if k == "com.docker.network.bridge.name":
            bridge = str(v)
        elif k in _DOCKER_OPTIONS:
            opts[_DOCKER_OPTIONS[k]] = str(v)
        else:
            warnings.append(f'"{k}: {v}" is not a recognized option')
    ipam = ipam or {}

    def get(d: Mapping[str, Any], key: str) -> Any:
        return d.get(key) if d.get(key) is not None else d.get(key.lower())
    ipam_driver = get(ipam, "Driver") or "default"
    if ipam_driver not in ("default", "host-local"):
        raise NetworkError(f"IPAM driver {ipam_driver} is not supported: invalid argument")
    subnets, gateways, ranges = [], [], []
    for pool in get(ipam, "Config") or []:
        subnet = str(get(pool, "Subnet") or "")
        gateway = str(get(pool, "Gateway") or "")
        ip_range = str(get(pool, "IPRange") or get(pool, "ip_range") or "")
        if not subnet:
            if gateway or ip_range:
                raise NetworkError("a gateway or an IP range needs a subnet: invalid argument")
            continue
        subnets.append(subnet)
        gateways.append(gateway)
        ranges.append(ip_range)
        if get(pool, "AuxiliaryAddresses") or get(pool, "aux_addresses"):
            warnings.append(f"auxiliary addresses of {subnet} are ignored")
    net = store.create(name, driver=driver or "bridge", subnets=subnets, gateways=gateways,
                       ip_ranges=ranges, internal=bool(internal), ipv6=bool(enable_ipv6),
                       labels={str(k): str(v) for k, v in (labels or {}).items()},
                       options=opts, interface_name=bridge,
                       docker_options={str(k): str(v) for k, v in (options or {}).items()})
    return net, warnings


def default_dns_servers() -> list[str]:
    """Upstream servers for aardvark on a new network created without --dns:
    RONGQI_NETWORK_DNS (comma-separated; the host's resolv.conf when unset, as podman)."""
    return [x.strip() for x in os.environ.get("RONGQI_NETWORK_DNS", "").split(",") if x.strip()]


def default_network() -> dict[str, Any]:
    subnet = os.environ.get("RONGQI_DEFAULT_SUBNET") or DEFAULT_SUBNET
    bridge = os.environ.get("RONGQI_DEFAULT_BRIDGE") or DEFAULT_BRIDGE
    net = ipaddress.ip_network(subnet)
    return {"name": DEFAULT_NAME, "id": DEFAULT_ID, "driver": "bridge",
            "network_interface": bridge, "created": now_rfc3339(),
            "subnets": [{"subnet": str(net), "gateway": str(net.network_address + 1)}],
            "ipv6_enabled": False, "internal": False, "dns_enabled": False,
            "ipam_options": {"driver": "host-local"}}


def _check_name(name: str) -> None:
    import re
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise NetworkError(f"network name {name} invalid: names must match "
                           "[a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument")


def _parse_subnets(subnets: list[str], gateways: list[str],
                   ranges: list[str]) -> list[dict[str, Any]]:
    if len(gateways) > len(subnets):
        raise NetworkError("cannot set more gateways than subnets")
    if len(ranges) > len(subnets):
        raise NetworkError("cannot set more ranges than subnets")
    out = []
    for i, text in enumerate(subnets):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise NetworkError(f'invalid CIDR address: {text}') from None
        if net.num_addresses < 4:
            raise NetworkError(f"subnet {net} is too small")
        s: dict[str, Any] = {"subnet": str(net)}
        gw = gateways[i] if i < len(gateways) else ""
        if gw:
            try:
                g = ipaddress.ip_address(gw)
            except ValueError:
                raise NetworkError(f"gateway IP {gw} is not valid") from None
            if g not in net:
                raise NetworkError(f"gateway {gw} not in subnet {net}")
        s["gateway"] = gw or str(net.network_address + 1)
        if i < len(ranges) and ranges[i]:
            try:
                r = ipaddress.ip_network(ranges[i], strict=False)
            except ValueError:
                raise NetworkError(f"invalid CIDR address: {ranges[i]}") from None
            if not r.subnet_of(net):  # type: ignore[arg-type]
                raise NetworkError(f"ip range {ranges[i]} is not in subnet {net}")
            s["lease_range"] = {"start_ip": str(r.network_address + (1 if r.prefixlen < 31 else 0)),
                                "end_ip": str(r.broadcast_address - (1 if r.version == 4 else 0))}
        out.append(s)
    return out


def _free_subnet(taken: list[Any], version: int) -> dict[str, Any]:
    if version == 4:
        cands = (ipaddress.ip_network(f"10.89.{i}.0/24") for i in range(256))
    else:
        base = int(ipaddress.ip_address("fd00:89::"))
        cands = (ipaddress.ip_network((base + (i << 64), 64)) for i in range(1 << 16))
    for c in cands:
        if not any(c.version == t.version and c.overlaps(t) for t in taken):
            return {"subnet": str(c), "gateway": str(c.network_address + 1)}
    raise NetworkError("could not find a free subnet")


def host_routes() -> list[Any]:
    """Subnets the host routes (not default routes): a new network must not overlap them."""
    out: list[Any] = []
    with contextlib.suppress(OSError):
        with open("/proc/net/route") as f:
            for line in f.read().splitlines()[1:]:
                w = line.split()
                if len(w) < 8 or w[1] == "00000000" and w[7] == "00000000":
                    continue
                dest = socket.inet_ntoa(int(w[1], 16).to_bytes(4, "little"))
                mask = socket.inet_ntoa(int(w[7], 16).to_bytes(4, "little"))
                with contextlib.suppress(ValueError):
                    out.append(ipaddress.ip_network(f"{dest}/{mask}", strict=False))
    with contextlib.suppress(OSError):
        with open("/proc/net/ipv6_route") as f:
            for line in f.read().splitlines():
                w = line.split()
                plen = int(w[1], 16)
                if plen == 0 or w[0].startswith("fe80") or w[0].startswith("ff") or plen == 128:
                    continue
                with contextlib.suppress(ValueError):
                    out.append(ipaddress.ip_network(
                        (int(w[0], 16), plen), strict=False))
    return out


def _host_links() -> set[str]:
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


# -- filters (network ls/prune) ------------------------------------------------------------------
def compile_filters(filters: list[str] | Mapping[str, Sequence[str]], prune: bool = False,
                    used: Callable[[], set[str]] | None = None) -> Any:
    """podman's network ls/prune filters ("k=v" strings, or {k: [v, ...]}) as a predicate on
    network records: values of one key ORed, keys ANDed. `dangling` needs `used` (the names
    of the networks containers are attached to, asked for once)."""
    import re
    by: dict[str, list[str]] = {}
    allowed = ("label", "until") if prune else ("name", "id", "driver", "label", "until",
                                                 "dangling", "type")
    pairs: list[tuple[str, str]] = []
    if isinstance(filters, Mapping):
        pairs = [(k, str(v)) for k, vs in filters.items() for v in vs]
    else:
        for f in filters:
            k, sep, v = f.partition("=")
            if not sep:
                raise UsageError(f'invalid filter "{f}"')
            pairs.append((k, v))
    for k, v in pairs:
        if k not in allowed and not (k == "label!"):
            raise UsageError(f"invalid filter {k!r}")
        if k == "dangling" and v.lower() not in ("true", "1", "false", "0"):
            raise UsageError("invalid value for filter 'dangling', must be 'true' (or '1'), "
                             "or 'false' (or '0')")
        if k == "type" and v not in ("custom", "builtin"):
            raise UsageError(f"invalid filter: 'type'='{v}'")
        if k == "name":
            try:
                re.compile(v)
            except re.error as e:
                raise UsageError(f"invalid filter: name={v}: {e}") from None
        by.setdefault(k, []).append(v)
    in_use: list[set[str]] = []

    def one(k: str, v: str, net: dict[str, Any]) -> bool:
        labels = net.get("labels") or {}
        if k == "name":
            return re.search(v, net["name"]) is not None
        if k == "id":
            return net["id"].startswith(v)
        if k == "driver":
            return net["driver"] == v
        if k in ("label", "label!"):
            lk, eq, lv = v.partition("=")
            has = lk in labels and (not eq or labels[lk] == lv)
            return has if k == "label" else not has
        if k == "type":
            return v == "custom" and net["name"] != DEFAULT_NAME or \
                v == "builtin" and net["name"] == DEFAULT_NAME
        if k == "until":
            from rongqi.engine.events import parse_input_time
            return net.get("created", "") <= _rfc(parse_input_time(v, since=False))
        if k == "dangling":
            if not in_use:
                in_use.append(used() if used is not None else set())
            dangling = net["name"] != DEFAULT_NAME and net["name"] not in in_use[0]
            return dangling == (v.lower() in ("true", "1"))
        return True

    return lambda net: all(any(one(k, v, net) for v in vals) for k, vals in by.items())


def networks_in_use(engine: Engine) -> set[str]:
    """The names of the networks some container (any status) is attached to: one pass over
    the container records."""
    out: set[str] = set()
    for c in engine.records.all():
        att = load(c)
        if att:
            out.update(att.get("networks") or {})
    return out


def _rfc(ns: int) -> str:
    from rongqi.oci.timefmt import rfc3339nano
    return rfc3339nano(ns)


# -- containers' attachments ---------------------------------------------------------------------
def netns_path(cid: str) -> str:
    return os.path.join(NETNS_DIR, "rongqi-" + cid)


def mode_of(network: str, rootless: bool) -> tuple[str, list[str]]:
    """--network as given -> (mode, network names). "" and "bridge" are the default network
    (slirp4netns for an ordinary user, as podman); "a,b" is bridge on those networks."""
    net = network or ""
    if net in ("", "default"):
        net = "slirp4netns" if rootless else "bridge"
    if net in ("none", "private", "host") or net.startswith(("container:", "ns:")):
        return net, []
    if net.split(":", 1)[0] in ("slirp4netns", "pasta"):
        return net.split(":", 1)[0], []   # options: networks_rootless.split_mode
    if net == "bridge":
        return "bridge", [DEFAULT_NAME]
    if net.startswith("bridge:"):
        net = net[7:]
    names = [n for n in net.split(",") if n]
    return "bridge", list(dict.fromkeys(names))


def plan(engine: Engine | None, root: str | None, cid: str, name: str, opts: ContainerOptions,
         rootless: bool, exposed: list[str]) -> dict[str, Any] | None:
    """What create decides for a container's network (checked now, set up at start): the
    attachments with aliases, --ip and --mac-address, and the ports. None: no network of
    ours (none, host, container:NAME)."""
    from rongqi.engine import ports as portmod
    mode, names = mode_of(opts.network, rootless)
    mappings = [m.to_json() for m in portmod.parse_all(list(opts.publish))]
    if opts.publish_all:
        have = {(m["container_port"], m["protocol"]) for m in mappings}
        for key in sorted(exposed):
            p, _, proto = key.partition("/")
            if p.isdigit() and (int(p), proto or "tcp") not in have:
                mappings.append({"container_port": int(p), "host_port": 0,
                                 "protocol": proto or "tcp", "host_ip": ""})
    if mode not in ("bridge", "slirp4netns", "pasta"):
        if mappings and mode != "host":
            pass  # podman ignores -p without a network of the container's own (warns)
        if opts.network_aliases and mode != "bridge":
            raise NetworkError("invalid config provided: networks and static ip/mac address "
                               "can only be used with Bridge mode networking")
        return None
    if mode in ("slirp4netns", "pasta"):
        if opts.ip or opts.mac_address or opts.network_aliases:
            raise NetworkError("invalid config provided: networks and static ip/mac address "
                               "can only be used with Bridge mode networking")
        from rongqi.engine import networks_rootless as rl
        options = rl.split_mode(opts.network or mode)[1]
        rl.check_options(mode, options)
        return {"mode": mode, "networks": {}, "ports": mappings, "netns": "", "active": False,
                "options": options}
    if rootless:
        raise NetworkError("bridge networks need root (netavark sets them up on the host); "
                           "an ordinary user's containers use slirp4netns")
    store = NetworkStore(root) if root else None
    attach: dict[str, Any] = {}
    for i, n in enumerate(names):
        if store is None:
            # No engine (the bundle's unit tests): only the default network, not written.
            if n != DEFAULT_NAME:
                raise NoSuchNetwork(n)
            net = default_network()
        else:
            net = store.get(n)
        a: dict[str, Any] = {"interface_name": f"eth{i}", "aliases": list(opts.network_aliases)
                             if net.get("dns_enabled") else [], "static_ips": [],
                             "static_mac": ""}
        if i == 0 and opts.ip:
            ip = _check_static(net, opts.ip)
            a["static_ips"] = [ip]
        if i == 0 and opts.mac_address:
            a["static_mac"] = opts.mac_address
        attach[net["name"]] = a
    return {"mode": mode, "networks": attach, "ports": mappings, "netns": netns_path(cid),
            "active": False, "name": name}


def _check_static(net: dict[str, Any], ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise NetworkError(f"{ip} is not an ip address") from None
    for s in net["subnets"]:
        sub = ipaddress.ip_network(s["subnet"])
        if addr in sub:
            if addr in (sub.network_address, sub.broadcast_address) or \
                    str(addr) == s.get("gateway"):
                raise NetworkError(f"requested ip address {ip} is not free in network "
                                   f"{net['name']}")
            return str(addr)
    raise NetworkError(f"requested static ip {ip} not in any subnet on network {net['name']}")


def attach_path(c: Container) -> str:
    return os.path.join(c.userdata, ATTACH_FILE)


def load(c: Container) -> dict[str, Any] | None:
    if not getattr(c, "userdata", None):
        return None
    try:
        with open(attach_path(c)) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def save(c: Container, att: dict[str, Any]) -> None:
    path = attach_path(c)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(att, f)
    os.rename(tmp, path)


def write_plan(userdata: str, att: dict[str, Any] | None) -> None:
    if att is None:
        return
    with open(os.path.join(userdata, ATTACH_FILE), "w") as f:
        json.dump(att, f)


def containers_on(engine: Engine, name: str) -> list[str]:
    """Ids of the containers attached to network `name` (computed from their records)."""
    out = []
    for c in engine.records.all():
        att = load(c)
        if att and name in (att.get("networks") or {}):
            out.append(c.id)
    return out


# -- host-wide state: the lock, IPAM leases --------------------------------------------------------
def rundir() -> str:
    """Host-wide network state: /run/rongqi/networks for root; an ordinary user's own
    (XDG_RUNTIME_DIR, else /tmp/rongqi-UID) for slirp4netns' sockets."""
    if os.environ.get("RONGQI_NETWORK_RUNDIR"):
        return os.environ["RONGQI_NETWORK_RUNDIR"]
    if os.geteuid() == 0:
        return RUNDIR
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = xdg if xdg and os.path.isdir(xdg) else f"/tmp/rongqi-{os.geteuid()}"
    return os.path.join(base, "rongqi", "networks")


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """One lock around netavark calls and leases for the whole host: bridges, firewall chains
    and addresses are the host's, whatever root a container belongs to (podman does the same)."""
    from rongqi.locking import Lock
    d = rundir()
    os.makedirs(d, 0o700, exist_ok=True)
    with Lock(os.path.join(d, "lock")):
        yield


def _ipam_path(net: dict[str, Any]) -> str:
    return os.path.join(rundir(), "ipam", net["id"] + ".json")


def _read_leases(net: dict[str, Any]) -> dict[str, Any]:
    try:
        with open(_ipam_path(net)) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def _write_leases(net: dict[str, Any], leases: dict[str, Any]) -> None:
    path = _ipam_path(net)
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    if not leases:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(leases, f)
    os.rename(tmp, path)


def _lease_alive(lease: dict[str, Any]) -> bool:
    """A lease whose container record is gone (its root deleted) is stale; so is one of a
    build's RUN step (no container record: an `owner` naming the lock its build holds for its
    whole life, docs/build.md) once that lock is free, i.e. the build has ended or died.
    Applies alike to leases, port records and the host-wide active records."""
    owner = lease.get("owner")
    if isinstance(owner, dict) and owner.get("lock"):
        from rongqi.locking import LockError, is_held
        try:
            return is_held(str(owner["lock"]))
        except LockError:
            return True   # cannot tell (not ours to open): keep it
    return os.path.isdir(os.path.join(lease.get("root", "/nonexistent"), "containers",
                                      lease.get("id", "-")))


def _allocate(net: dict[str, Any], cid: str, root: str, static: list[str],
              owner: dict[str, Any] | None = None) -> list[str]:
    """One address per subnet of `net` for container `cid` (under host_lock); `owner`: a
    build step's (see _lease_alive)."""
    leases = {ip: v for ip, v in _read_leases(net).items() if _lease_alive(v)}
    mine = [ip for ip, v in leases.items() if v.get("id") == cid]
    for ip in mine:
        del leases[ip]
    out = []
    for s in net["subnets"]:
        sub = ipaddress.ip_network(s["subnet"])
        want = [ip for ip in static if ipaddress.ip_address(ip) in sub]
        if want:
            if want[0] in leases:
                raise NetworkError(f"IPAM error: requested ip address {want[0]} is already "
                                   f"allocated to container ID {leases[want[0]]['id']}")
            ip = want[0]
        else:
            lr = s.get("lease_range") or {}
            lo = int(ipaddress.ip_address(lr["start_ip"])) if lr else int(sub.network_address) + 1
            hi = int(ipaddress.ip_address(lr["end_ip"])) if lr else int(sub.broadcast_address) - (
                1 if sub.version == 4 else 0)
            gw = s.get("gateway")
            ip = ""
            for n in range(lo, hi + 1):
                cand = str(ipaddress.ip_address(n))
                if cand != gw and cand not in leases:
                    ip = cand
                    break
            if not ip:
                raise NetworkError(f"IPAM error: failed to find free IP in range: {sub}")
        leases[ip] = {"id": cid, "root": root, **({"owner": owner} if owner else {})}
        out.append(ip)
    _write_leases(net, leases)
    return out


def _release(net: dict[str, Any], cid: str) -> None:
    leases = _read_leases(net)
    kept = {ip: v for ip, v in leases.items() if v.get("id") != cid and _lease_alive(v)}
    if kept != leases:
        _write_leases(net, kept)


def leases_of(cid: str) -> list[str]:
    """Every lease held by container `cid` on this host (tests, inspect)."""
    out = []
    d = os.path.join(rundir(), "ipam")
    with contextlib.suppress(FileNotFoundError):
        for f in os.listdir(d):
            if f.endswith(".json"):
                with contextlib.suppress(OSError, ValueError):
                    with open(os.path.join(d, f)) as fh:
                        out += [ip for ip, v in json.load(fh).items() if v.get("id") == cid]
    return out


# -- published ports ---------------------------------------------------------------------------
def _ports_in_use_by_others(cid: str) -> set[tuple[str, int]]:
    """(protocol, host port) of other containers' published ports on this host."""
    used: set[tuple[str, int]] = set()
    d = os.path.join(rundir(), "ports")
    with contextlib.suppress(FileNotFoundError):
        for f in os.listdir(d):
            if f == cid or f.startswith("."):
                continue
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(d, f)) as fh:
                    doc = json.load(fh)
                if not _lease_alive(doc):
                    continue
                used |= {(m["protocol"], int(m["host_port"])) for m in doc.get("ports", [])}
    return used


def _assign_ports(cid: str, root: str, mappings: list[dict[str, Any]],
                  owner: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Host ports for the mappings: 0 becomes a free port; each is checked free on the host
    (bound for a moment) and against other containers' ports. Under host_lock."""
    used = _ports_in_use_by_others(cid)
    out = []
    for m in mappings:
        m = dict(m)
        proto = m["protocol"]
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        ip = m.get("host_ip") or ""
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        port = int(m["host_port"])
        if port and (proto, port) in used:
            raise PortInUse(f"cannot listen on the {proto.upper()} port: listen {proto}4 "
                               f"{ip}:{port}: bind: address already in use")
        if proto != "sctp":
            s = socket.socket(fam, kind)
            try:
                s.bind((ip or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), port))
                port = s.getsockname()[1]
            except OSError as err:
                import errno
                kind_err = PortInUse if err.errno == errno.EADDRINUSE else NetworkError
                raise kind_err(f"cannot listen on the {proto.upper()} port: listen "
                                   f"{proto}{'6' if fam == socket.AF_INET6 else '4'} "
                                   f"{ip}:{port}: bind: {err.strerror.lower()}") from None
            finally:
                s.close()
        m["host_port"] = port
        used.add((proto, port))
        out.append(m)
    d = os.path.join(rundir(), "ports")
    os.makedirs(d, 0o700, exist_ok=True)
    if out:
        with open(os.path.join(d, cid), "w") as f:
            json.dump({"id": cid, "root": root, "ports": out,
                       **({"owner": owner} if owner else {})}, f)
    return out


def _release_ports(cid: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(rundir(), "ports", cid))


def published(c: Container) -> list[dict[str, Any]] | None:
    """The ports as set up (host ports chosen), or None when not set up: `port`'s source."""
    att = load(c)
    if not att:
        return None
    return att.get("assigned_ports") if att.get("active") else None


# -- the netns -----------------------------------------------------------------------------------
def make_netns(path: str) -> None:
    """A new network namespace bound at `path` (as `ip netns add` does: the directory a shared
    mount so the binds propagate, the namespace made by a thread that unshares it)."""
    import threading

    from rongqi.linux import syscall as sc
    d = os.path.dirname(path)
    os.makedirs(d, 0o755, exist_ok=True)
    sys_ = sc.Syscalls()
    _make_shared(d, sys_)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    os.close(fd)
    err: list[BaseException] = []

    def worker() -> None:
        try:
            sys_.unshare(sc.CLONE_NEWNET)
            sys_.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None,
                       sc.MS_BIND)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            err.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    if err:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise NetworkError(f"creating network namespace {path}: {err[0]}")


def _bind_netns(source: str, path: str) -> None:
    """Bind an existing netns (the runtime's, by /proc/PID/ns/net) at `path`."""
    from rongqi.linux import syscall as sc
    d = os.path.dirname(path)
    os.makedirs(d, 0o755, exist_ok=True)
    sys_ = sc.Syscalls()
    _make_shared(d, sys_)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    try:
        sys_.mount(source, path, None, sc.MS_BIND)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise NetworkError(f"binding network namespace {source}: {err}") from None


_shared_done: set[str] = set()


def _make_shared(d: str, sys_: Any) -> None:
    if d in _shared_done:
        return
    from rongqi.linux import syscall as sc
    mounted = False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            w = line.split()
            if len(w) > 4 and w[4] == d:
                mounted = True
    if not mounted:
        sys_.mount(d, d, None, sc.MS_BIND | sc.MS_REC)
    with contextlib.suppress(OSError):
        sys_.mount("none", d, None, sc.MS_SHARED | sc.MS_REC)
    _shared_done.add(d)


def remove_netns(path: str) -> None:
    from rongqi.linux import syscall as sc
    with contextlib.suppress(OSError):
        sc.Syscalls().umount2(path, sc.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# -- netavark ------------------------------------------------------------------------------------
def _net_options(c: Container, att: dict[str, Any], nets: dict[str, dict[str, Any]],
                 ips: dict[str, list[str]], ports: list[dict[str, Any]]) -> dict[str, Any]:
    networks = {}
    for name, a in att["networks"].items():
        if name not in nets:
            continue
        per = {"interface_name": a["interface_name"], "static_ips": ips.get(name, []),
               "aliases": list(a.get("aliases") or []) + [c.id[:12]]
               if nets[name].get("dns_enabled") else []}
        if a.get("static_mac"):
            per["static_mac"] = a["static_mac"]
        networks[name] = per
    pm = [{"host_ip": m.get("host_ip") or "", "container_port": int(m["container_port"]),
           "host_port": int(m["host_port"]), "range": 1, "protocol": m["protocol"]}
          for m in ports]
    return {"container_id": c.id, "container_name": c.name, "port_mappings": pm,
            "networks": networks, "network_info": nets}


def _die_with_parent() -> Any:
    """netavark's preexec: SIGKILL when its parent dies. netavark takes no lock of its own;
    ours (host_lock) is the caller's and goes with it, so a netavark outliving a killed CLI
    would run beside the next one. Killed with it, it leaves what the active record (written
    before it ran) lets the next teardown undo."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
        if os.getppid() != parent:  # the parent died before the prctl: nobody to run for
            os._exit(137)
    return preexec


def _netavark(engine: Engine | str, command: str, netns: str,
              doc: dict[str, Any]) -> dict[str, Any]:
    conf = engine if isinstance(engine, str) else os.path.join(engine.runroot, "networks")
    os.makedirs(os.path.join(conf, "aardvark-dns"), 0o700, exist_ok=True)
    argv = [netavark_binary(), "--config", conf, "--aardvark-binary", aardvark_binary(),
            command, netns]
    env = {"PATH": _PATH_ENV, "RUST_LOG": os.environ.get("RONGQI_NETAVARK_LOG", "error")}
    try:
        p = subprocess.run(argv, input=json.dumps(doc).encode(), capture_output=True, env=env,
                           timeout=120, preexec_fn=_die_with_parent())
    except FileNotFoundError:
        raise NetworkError(f"netavark not found at {argv[0]}: install netavark") from None
    out = p.stdout.decode(errors="replace").strip()
    if p.returncode != 0:
        msg = out or p.stderr.decode(errors="replace").strip()
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            msg = json.loads(msg).get("error", msg)
        raise NetworkError(f"netavark: {msg}")
    if command == "setup":
        try:
            return json.loads(out) if out else {}
        except ValueError:
            return {}
    return {}


def setup(engine: Engine, c: Container, late: bool = False) -> None:
    """Before the container's process runs: its netns made and plugged into its networks
    (addresses leased, ports checked and forwarded), then /etc/hosts and resolv.conf written.
    On any error nothing is left. The caller holds the container's lock (or is its monitor,
    between create and start, for `late`: the netns is the runtime's, already bound)."""
    att = load(c)
    if not att or att.get("mode") != "bridge" or bool(att.get("late")) != late:
        return
    if att.get("active") or not late and os.path.exists(_active_path(c.id)):
        teardown(engine, c)  # the last run's, or what a setup cut short left
        att = load(c) or att
    store = NetworkStore(engine.root)
    nets = {name: store.get(name) for name in att["networks"]}
    conf = os.path.join(engine.runroot, "networks")
    with host_lock():
        sweep_orphans()
        # The host-wide record comes first, so a CLI (or monitor) killed anywhere from here
        # on leaves what the next teardown needs: first the networks (leases and ports are
        # released by container id), then, once addresses are chosen, netavark's document.
        owner = att.get("owner")   # a build step's: no container record (docs/build.md)
        root = _record_root(engine, owner)
        _write_active(root, conf, c.id, att["netns"],
                      {"container_id": c.id, "network_info": nets}, owner)
        made: list[Any] = [("active", None)]
        try:
            ips: dict[str, list[str]] = {}
            for name, a in att["networks"].items():
                ips[name] = _allocate(nets[name], c.id, root, a.get("static_ips") or [], owner)
                made.append(("lease", nets[name]))
            ports = _assign_ports(c.id, root, att.get("ports") or [], owner)
            made.append(("ports", None))
            doc = _net_options(c, att, nets, ips, ports)
            _write_active(root, conf, c.id, att["netns"], doc, owner)
            if not late:
                remove_netns(att["netns"])
                make_netns(att["netns"])
                made.append(("netns", att["netns"]))
            try:
                status = _netavark(engine, "setup", att["netns"], doc)
            except BaseException:
                # netavark can stop half-way (rules made, the bridge up): undo what it did.
                with contextlib.suppress(NetworkError):
                    _netavark(engine, "teardown", att["netns"], doc)
                raise
        except BaseException:
            for kind, what in reversed(made):
                if kind == "lease":
                    _release(what, c.id)
                elif kind == "ports":
                    _release_ports(c.id)
                elif kind == "netns":
                    remove_netns(what)
                else:
                    _unlink_active(c.id)
            raise
        att.update(active=True, status=status, assigned_ports=ports, ips=ips,
                   network_info={n: {"id": v["id"]} for n, v in nets.items()})
        att["teardown"] = doc
        save(c, att)
    write_etc(c, att)


def _record_root(engine: Engine, owner: dict[str, Any] | None) -> str:
    """The `root` of a host-wide record: the engine's; a build step's own dir (which holds
    containers/ID while the step runs), so that a rongqi from before owners (whose liveness
    test is only ROOT/containers/ID) takes the step for a live container, not an orphan."""
    return str(owner["root"]) if owner and owner.get("root") else engine.root


# What is (being) set up is also recorded host-wide (RUNDIR/active/CID.json), written before
# anything is made: it is what teardown undoes, so that happens even when the setup was cut
# short (its CLI killed) or the container's record is gone (its root deleted, `rm` given up
# on a monitor still waiting for the lock: the next setup sweeps such orphans).
def _active_path(cid: str) -> str:
    return os.path.join(rundir(), "active", cid + ".json")


def _write_active(root: str, conf: str, cid: str, netns: str, doc: dict[str, Any],
                  owner: dict[str, Any] | None = None) -> None:
    path = _active_path(cid)
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"id": cid, "root": root, "netns": netns, "conf": conf, "doc": doc,
                   **({"owner": owner} if owner else {})}, f)
    os.rename(tmp, path)


def _read_active(cid: str) -> dict[str, Any] | None:
    try:
        with open(_active_path(cid)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        return {"id": cid}  # torn (not renamed into place that way): nothing but the id


def _unlink_active(cid: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_active_path(cid))


def _undo(conf: str, cid: str, netns: str, doc: dict[str, Any]) -> NetworkError | None:
    """netavark teardown, leases and ports released, the netns removed (under host_lock)."""
    err: NetworkError | None = None
    if doc.get("networks") and netns and os.path.exists(netns):
        try:
            _netavark(conf, "teardown", netns, doc)
        except NetworkError as e:
            err = e
    for info in (doc.get("network_info") or {}).values():
        _release(info, cid)
    _release_ports(cid)
    if netns:
        remove_netns(netns)
    _unlink_active(cid)
    return err


def sweep_orphans() -> list[str]:
    """Undo the setups of containers whose record no longer exists, and of build steps
    whose build has ended or died (its lock free: _lease_alive), under host_lock."""
    d = os.path.join(rundir(), "active")
    try:
        names = [n for n in os.listdir(d) if n.endswith(".json")]
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        try:
            with open(os.path.join(d, n)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if _lease_alive(rec):
            continue
        _undo(rec.get("conf") or "", rec["id"], rec.get("netns") or "", rec.get("doc") or {})
        out.append(rec["id"])
    return out


def teardown(engine: Engine, c: Container) -> None:
    """Undo setup: netavark teardown, leases and ports released, the netns removed. Safe to
    call at any time and more than once (the monitor's end, rm, the sync after a crash).

    The host-wide record says what to undo, so a setup cut short is undone too; the
    container's own networks.json (its `active`) is only what inspect and port show."""
    att = load(c)
    if att is not None and att.get("mode") in ("slirp4netns", "pasta"):
        from rongqi.engine import networks_rootless
        networks_rootless.teardown(c, att)
        return
    if not (att and att.get("active")) and not os.path.exists(_active_path(c.id)):
        return
    err: NetworkError | None = None
    with host_lock():
        host = _read_active(c.id)
        att = load(c)
        if host is not None:
            err = _undo(host.get("conf") or "", c.id, host.get("netns") or "",
                        host.get("doc") or {})
        elif att and att.get("active"):
            # Set up before the host-wide record was written first (an older rongqi).
            err = _undo(os.path.join(engine.runroot, "networks"), c.id, att["netns"],
                        att.get("teardown") or {})
        if att and att.get("active"):
            att.update(active=False, status={}, assigned_ports=[], ips={})
            att.pop("teardown", None)
            save(c, att)
    if err is not None and "IO error" not in str(err):
        raise err


# -- reload ----------------------------------------------------------------------------------------
def reload(engine: Engine, ref: str) -> str:
    """podman's `network reload`: a container's network made again through netavark (teardown,
    its errors forgiven: the rules may be gone, then setup) with the addresses, MACs and host
    ports it has, so the firewall rules something flushed (firewall-cmd --reload, iptables -F)
    are back. Returns the container's id."""
    with engine.locked(ref) as c:
        att = load(c)
        if not att or att.get("mode") != "bridge" or not att.get("active") or \
                not att.get("teardown"):
            raise NetworkError(f"container {c.id} network is not configured, refusing to reload")
        doc = att["teardown"]
        status = att.get("status") or {}
        for name, per in doc.get("networks", {}).items():
            iface = ((status.get(name) or {}).get("interfaces") or {}).get(
                per.get("interface_name", "")) or {}
            if iface.get("mac_address"):
                per["static_mac"] = iface["mac_address"]  # the same MAC, as podman keeps it
        with host_lock():
            with contextlib.suppress(NetworkError):
                _netavark(engine, "teardown", att["netns"], doc)
            att["status"] = _netavark(engine, "setup", att["netns"], doc)
            att["teardown"] = doc
            save(c, att)
            _write_active(engine.root, os.path.join(engine.runroot, "networks"), c.id,
                          att["netns"], doc)
        write_etc(c, att)
        return c.id


def reloadable(engine: Engine) -> list[str]:
    """Ids of the containers whose bridge network is set up (`network reload --all`)."""
    out = []
    for c in engine.records.all():
        att = load(c)
        if att and att.get("mode") == "bridge" and att.get("active"):
            out.append(c.id)
    return out


# -- connect / disconnect --------------------------------------------------------------------------
def connect(engine: Engine, ref: str, network: str, *, aliases: list[str] | None = None,
            ip: str = "", mac: str = "") -> None:
    store = NetworkStore(engine.root)
    net = store.get(network)
    with engine.locked(ref) as c:
        att = load(c)
        if not att or att.get("mode") != "bridge":
            raise InvalidNetworkMode(f'"{network}" is not supported: invalid network mode')
        if net["name"] in att["networks"]:
            raise AlreadyConnected(f"container {c.id} is already connected to network "
                               f'"{net["name"]}": network is already connected')
        used = {a["interface_name"] for a in att["networks"].values()}
        ifname = next(f"eth{i}" for i in range(1000) if f"eth{i}" not in used)
        a = {"interface_name": ifname, "aliases": list(aliases or []) if net.get("dns_enabled")
             else [], "static_ips": [_check_static(net, ip)] if ip else [], "static_mac": mac}
        if att.get("active"):
            conf = os.path.join(engine.runroot, "networks")
            with host_lock():
                # Recorded host-wide before it is made, as setup does: the network (its
                # lease goes by container id), then the addresses netavark is given.
                td = att["teardown"]
                td["network_info"][net["name"]] = net
                _write_active(engine.root, conf, c.id, att["netns"], td)
                ips: dict[str, list[str]] = {}
                try:
                    ips = {net["name"]: _allocate(net, c.id, engine.root, a["static_ips"])}
                    one = dict(att, networks={net["name"]: a})
                    doc = _net_options(c, one, {net["name"]: net}, ips, [])
                    td["networks"].update(doc["networks"])
                    _write_active(engine.root, conf, c.id, att["netns"], td)
                    try:
                        status = _netavark(engine, "setup", att["netns"], doc)
                    except BaseException:
                        with contextlib.suppress(NetworkError):
                            _netavark(engine, "teardown", att["netns"], doc)
                        raise
                except BaseException:
                    _drop_ip(net, c.id, ips)
                    td["networks"].pop(net["name"], None)
                    del td["network_info"][net["name"]]
                    _write_active(engine.root, conf, c.id, att["netns"], td)
                    raise
                att["networks"][net["name"]] = a
                att["status"].update(status)
                att["ips"].update(ips)
            save(c, att)
            write_etc(c, att)
        else:
            att["networks"][net["name"]] = a
            save(c, att)
    from rongqi.engine import events
    events.emit(engine.root, "network", "connect", id=c.id, name=net["name"], network=net["name"])


def _drop_ip(net: dict[str, Any], cid: str, ips: dict[str, list[str]]) -> None:
    leases = _read_leases(net)
    for ip in ips.get(net["name"], []):
        leases.pop(ip, None)
    _write_leases(net, leases)


def disconnect(engine: Engine, ref: str, network: str, force: bool = False) -> None:
    store = NetworkStore(engine.root)
    net = store.get(network)
    with engine.locked(ref) as c:
        att = load(c)
        if not att or net["name"] not in (att.get("networks") or {}):
            raise NotConnected(f"container {c.id} is not connected to network {net['name']}")
        if att.get("active"):
            with host_lock():
                td = att["teardown"]
                one = {"container_id": c.id, "container_name": c.name,
                       "port_mappings": td["port_mappings"] if len(att["networks"]) == 1 else [],
                       "networks": {net["name"]: td["networks"][net["name"]]},
                       "network_info": {net["name"]: td["network_info"][net["name"]]}}
                _netavark(engine, "teardown", att["netns"], one)
                _release(td["network_info"][net["name"]], c.id)
                del td["networks"][net["name"]]
                del td["network_info"][net["name"]]
                att["status"].pop(net["name"], None)
                att["ips"].pop(net["name"], None)
                _write_active(engine.root, os.path.join(engine.runroot, "networks"), c.id,
                              att["netns"], td)
        del att["networks"][net["name"]]
        save(c, att)
        if att.get("active"):
            write_etc(c, att)
    from rongqi.engine import events
    events.emit(engine.root, "network", "disconnect", id=c.id, name=net["name"],
                network=net["name"])


# -- /etc/hosts and resolv.conf ------------------------------------------------------------------
def write_etc(c: Container, att: dict[str, Any]) -> None:
    """The container's own names on its addresses, host.containers.internal on the first
    gateway, and aardvark's address as the nameserver on a network with DNS. Written in place:
    a running container sees the change (connect, disconnect)."""
    opts = c.config.get("options") or {} if c.config else {}
    status = att.get("status") or {}
    my_ips, gateways, dns_ips, search = [], [], [], []
    for name in att["networks"]:
        st_ = status.get(name) or {}
        for iface in (st_.get("interfaces") or {}).values():
            for s in iface.get("subnets") or []:
                my_ips.append(s["ipnet"].split("/")[0])
                if s.get("gateway"):
                    gateways.append(s["gateway"])
        dns_ips += st_.get("dns_server_ips") or []
        search += st_.get("dns_search_domains") or []
    hostname = ""
    with contextlib.suppress(OSError):
        with open(os.path.join(c.userdata, "hostname")) as f:
            hostname = f.read().strip()
    names = " ".join(dict.fromkeys(n for n in (hostname, c.name) if n))
    path = os.path.join(c.userdata, "hosts")
    with contextlib.suppress(FileNotFoundError):
        with open(path, "r+") as f:
            # The container may write its /etc/hosts: read a bounded amount of it.
            lines = [ln for ln in f.read(1 << 20).splitlines()
                     if not (ln.split("\t", 1)[-1] == names and "\t" in ln)
                     and not ln.endswith("\thost.containers.internal")
                     and not ln.endswith("\t# rongqi")]
            if opts.get("add_host"):
                pass  # kept: they came first
            lines += [f"{ip}\t{names}" for ip in dict.fromkeys(my_ips)]
            if gateways:
                lines.append(f"{gateways[0]}\thost.containers.internal")
            f.seek(0)
            f.write("\n".join(lines) + "\n")
            f.truncate()
    if dns_ips and not opts.get("dns"):
        rpath = os.path.join(c.userdata, "resolv.conf")
        with contextlib.suppress(FileNotFoundError):
            with open(rpath, "r+") as f:
                old = f.read(1 << 20).splitlines()
                keep_search: list[str] = []
                options = []
                for ln in old:
                    w = ln.split()
                    if w and w[0] in ("search", "domain"):
                        keep_search = w[1:]
                    elif w and w[0] == "options":
                        options.append(ln)
                doms = list(dict.fromkeys(search + [s for s in keep_search if s != DNS_DOMAIN]))
                out = ([f"search {' '.join(doms)}"] if doms else []) + \
                    [f"nameserver {ip}" for ip in dict.fromkeys(dns_ips)] + options
                f.seek(0)
                f.write("\n".join(out) + "\n")
                f.truncate()


# -- inspect's NetworkSettings --------------------------------------------------------------------
def settings(c: Container) -> dict[str, Any]:
    """podman inspect's NetworkSettings for a container attached to networks."""
    att = load(c) or {}
    status = att.get("status") or {}
    ports: dict[str, Any] = {}
    for m in att.get("assigned_ports") or att.get("ports") or []:
        key = f"{m['container_port']}/{m['protocol']}"
        ports.setdefault(key, []).append({"HostIp": m.get("host_ip") or "",
                                          "HostPort": str(m["host_port"])})
    nets: dict[str, Any] = {}
    first: dict[str, Any] = {}
    for name, a in (att.get("networks") or {}).items():
        st_ = status.get(name) or {}
        iface = (st_.get("interfaces") or {}).get(a["interface_name"]) or {}
        v4 = [s for s in iface.get("subnets") or [] if "." in s["ipnet"]]
        v6 = [s for s in iface.get("subnets") or [] if ":" in s["ipnet"]]
        d = {"EndpointID": "", "Gateway": v4[0].get("gateway", "") if v4 else "",
             "IPAddress": v4[0]["ipnet"].split("/")[0] if v4 else "",
             "IPPrefixLen": int(v4[0]["ipnet"].split("/")[1]) if v4 else 0,
             "IPv6Gateway": v6[0].get("gateway", "") if v6 else "",
             "GlobalIPv6Address": v6[0]["ipnet"].split("/")[0] if v6 else "",
             "GlobalIPv6PrefixLen": int(v6[0]["ipnet"].split("/")[1]) if v6 else 0,
             "MacAddress": iface.get("mac_address", ""), "NetworkID": name,
             "DriverOpts": None, "IPAMConfig": None, "Links": None,
             "Aliases": list(a.get("aliases") or []) + [c.id[:12]]}
        nets[name] = d
        if not first:
            first = d
    out = {"EndpointID": "", "Gateway": first.get("Gateway", ""),
           "IPAddress": first.get("IPAddress", ""), "IPPrefixLen": first.get("IPPrefixLen", 0),
           "IPv6Gateway": first.get("IPv6Gateway", ""),
           "GlobalIPv6Address": first.get("GlobalIPv6Address", ""),
           "GlobalIPv6PrefixLen": first.get("GlobalIPv6PrefixLen", 0),
           "MacAddress": first.get("MacAddress", ""), "Bridge": "", "SandboxID": "",
           "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
           "Ports": ports, "SandboxKey": att.get("netns", "") if att.get("active") else ""}
    if att.get("mode") == "bridge":
        out["Networks"] = nets
    return out


# -- rootless: slirp4netns or pasta (engine/networks_rootless.py) ---------------------------------
# Started by the monitor before the runtime's create (networks_rootless.before_create); this
# module keeps what the monitor carries through its slim re-exec: container id -> (pid, fd),
# the fd slirp4netns' exit pipe or pasta's pidfd.
_slirp: dict[str, tuple[int, int]] = {}


def helper_pid(c: Container) -> int | None:
    """The pid of the slirp4netns or pasta this process started for `c` (a build reaps its
    steps' own; the monitor's wait loop reaps a container's)."""
    entry = _slirp.get(c.id)
    return entry[0] if entry else None


def tun_usable() -> bool:
    """Whether this process may open /dev/net/tun (slirp4netns and pasta need it)."""
    from rongqi.engine import networks_rootless
    return networks_rootless.tun_usable()


def before_create(engine: Engine, c: Container) -> Any:
    """The monitor, before the runtime's create: a rootless stack's namespaces and helper
    (networks_rootless.Prepared, released after create), or None."""
    att = load(c)
    if not att or att.get("mode") not in ("slirp4netns", "pasta"):
        return None
    from rongqi.engine import networks_rootless
    return networks_rootless.before_create(engine, c)


def process_started(engine: Engine, c: Container, pid: int) -> None:
    """Called by the monitor between the runtime's create and start: a bridge network for a
    container in a user namespace (its netns the runtime's own), or slirp4netns for a
    container made before its namespaces were held for it (see before_create)."""
    att = load(c)
    if not att:
        return
    if att.get("mode") == "bridge" and att.get("late"):
        if att.get("active") or os.path.exists(_active_path(c.id)):
            teardown(engine, c)  # what a killed monitor's run left
        # Recorded before the bind, so a monitor killed from here on leaves nothing behind
        # that the next teardown does not find (setup adds the rest to it).
        _write_active(_record_root(engine, att.get("owner")),
                      os.path.join(engine.runroot, "networks"), c.id, att["netns"],
                      {"container_id": c.id}, att.get("owner"))
        remove_netns(att["netns"])
        try:
            _bind_netns(f"/proc/{pid}/ns/net", att["netns"])
            setup(engine, c, late=True)
        except BaseException:
            remove_netns(att["netns"])
            _unlink_active(c.id)
            raise
        return
    if att.get("mode") not in ("slirp4netns", "pasta") or c.id in _slirp:
        return
    from rongqi.engine import networks_rootless as rl
    # The init's namespaces by pid: only root may open them (the init is non-dumpable). Root
    # holds every capability over them, so the netns alone is joined.
    rl.check_tun(att["mode"])
    if att["mode"] == "slirp4netns":
        rl.start_slirp(c, att, rl.slirp_options(att.get("options") or []), pid=pid)
    else:
        rl.start_pasta(c, att, att.get("options") or [], netns=f"/proc/{pid}/ns/net",
                       userns="")


def process_ended(c: Container, engine: Engine | None = None) -> None:
    """The run ended (the monitor's exit path): slirp4netns or pasta told to go, and reaped
    by the monitor's own wait loop; a late bridge setup undone (the next run has a new netns)."""
    if engine is not None:
        att = load(c)
        if att and att.get("late") and att.get("active"):
            with contextlib.suppress(NetworkError, OSError):
                teardown(engine, c)
    if c.id not in _slirp:
        att = load(c)
        if not att or att.get("mode") not in ("slirp4netns", "pasta"):
            return
    from rongqi.engine import networks_rootless
    networks_rootless.process_ended(c)
