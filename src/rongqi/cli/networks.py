"""`network create/ls/inspect/rm/connect/disconnect/prune/exists/reload` (owner: net): podman 4's
flags, output shapes and exit codes over engine.networks (no such network 1 for rm/exists)."""

from __future__ import annotations

import json
import sys
from typing import Any


def register(add: Any, top: Any, groups: dict[str, Any]) -> None:
    """A "network" group with podman's subcommands."""
    net = add(["network"], None, "manage networks")
    sub = net.add_subparsers(dest="network_command", parser_class=type(net))
    groups["network"] = sub

    sp = add(["create"], cmd_create, "make a network", sub)
    sp.add_argument("name", nargs="?", default="")
    sp.add_argument("-d", "--driver", default="bridge", help="bridge")
    sp.add_argument("--subnet", action="append", default=[], help="CIDR (repeatable)")
    sp.add_argument("--gateway", action="append", default=[], help="one per --subnet")
    sp.add_argument("--ip-range", action="append", default=[], help="CIDR inside a --subnet")
    sp.add_argument("--internal", action="store_true", help="no route out")
    sp.add_argument("--ipv6", action="store_true", help="an IPv6 subnet too")
    sp.add_argument("--label", action="append", default=[], help="K=V")
    sp.add_argument("-o", "--opt", action="append", default=[], help="mtu=, vlan=, isolate=")
    sp.add_argument("--disable-dns", action="store_true", help="no aardvark-dns names")
    sp.add_argument("--dns", action="append", default=[],
                    help="upstream DNS servers for aardvark on this network")
    sp.add_argument("--interface-name", default="", help="the bridge's name")
    sp.add_argument("--ignore", action="store_true", help="no error if it exists already")

    sp = add(["ls", "list"], cmd_ls, "list networks", sub)
    sp.add_argument("-q", "--quiet", action="store_true", help="names only")
    sp.add_argument("-f", "--filter", action="append", default=[],
                    help="name=, id=, driver=, label=K[=V], until=, type=custom|builtin")
    sp.add_argument("--format", default="", help="a Go template, or json")
    sp.add_argument("--no-trunc", action="store_true")
    sp.add_argument("-n", "--noheading", action="store_true")

    sp = add(["inspect"], cmd_inspect, "show networks as JSON", sub)
    sp.add_argument("names", nargs="+")
    sp.add_argument("-f", "--format", default="", help="a Go template")

    sp = add(["rm", "remove"], cmd_rm, "remove networks", sub)
    sp.add_argument("names", nargs="+")
    sp.add_argument("-f", "--force", action="store_true",
                    help="also remove the containers on them")
    sp.add_argument("-t", "--time", type=int, default=None)

    sp = add(["prune"], cmd_prune, "remove the networks no container uses", sub)
    sp.add_argument("-f", "--force", action="store_true", help="do not ask")
    sp.add_argument("--filter", action="append", default=[])

    sp = add(["exists"], cmd_exists, "exit 0 if the network exists, 1 if not", sub)
    sp.add_argument("name")

    sp = add(["connect"], cmd_connect, "connect a container to a network", sub)
    sp.add_argument("network")
    sp.add_argument("container")
    sp.add_argument("--alias", action="append", default=[])
    sp.add_argument("--ip", default="")
    sp.add_argument("--mac-address", default="")

    sp = add(["reload"], cmd_reload, "set containers' networks up again (firewall rules)", sub)
    sp.add_argument("containers", nargs="*")
    sp.add_argument("-a", "--all", action="store_true", help="every container with a network")

    sp = add(["disconnect"], cmd_disconnect, "disconnect a container from a network", sub)
    sp.add_argument("network")
    sp.add_argument("container")
    sp.add_argument("-f", "--force", action="store_true")


def _store(ctx: Any) -> Any:
    from rongqi.engine.networks import NetworkStore
    return NetworkStore(ctx.engine.root)


def _error(e: Exception, code: int | None = None) -> int:
    print(f"Error: {e}", file=sys.stderr)
    return code if code is not None else int(getattr(e, "exit_code", 125))


def _kv(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def cmd_create(ctx: Any, a: Any) -> int:
    net = _store(ctx).create(
        a.name, driver=a.driver, subnets=a.subnet, gateways=a.gateway, ip_ranges=a.ip_range,
        internal=a.internal, ipv6=a.ipv6, labels=_kv(a.label), options=_kv(a.opt),
        disable_dns=a.disable_dns, dns_servers=a.dns, interface_name=a.interface_name,
        ignore=a.ignore)
    print(net["name"])
    return 0


class _Row:
    """network ls's row: podman's fields (ListPrintReports)."""

    def __init__(self, net: dict[str, Any], trunc: bool):
        self.net = net
        self.ID = net["id"][:12] if trunc else net["id"]
        self.Name = net["name"]
        self.Driver = net["driver"]
        self.NetworkInterface = net.get("network_interface", "")
        self.Created = net.get("created", "")
        self.Internal = net.get("internal", False)
        self.IPv6Enabled = net.get("ipv6_enabled", False)
        self.DNSEnabled = net.get("dns_enabled", False)
        self.Subnets = net.get("subnets", [])
        self.Options = net.get("options") or {}
        self.IPAMOptions = net.get("ipam_options") or {}
        self.Labels = ",".join(f"{k}={v}" for k, v in (net.get("labels") or {}).items())


def cmd_ls(ctx: Any, a: Any) -> int:
    from rongqi.engine.networks import compile_filters, networks_in_use
    match = compile_filters(a.filter, used=lambda: networks_in_use(ctx.engine))
    nets = [n for n in _store(ctx).list() if match(n)]
    if a.quiet:
        for n in nets:
            print(n["name"])
        return 0
    if a.format in ("json", "{{json .}}"):
        print(json.dumps([_public(n) for n in nets], indent=2) if nets else "[]")
        return 0
    from rongqi.cli import output
    rows = [_Row(n, not a.no_trunc) for n in nets]
    sys.stdout.write(output.render(rows, a.format, default="table {{.ID}}\t{{.Name}}\t{{.Driver}}",
                                   headers={"ID": "NETWORK ID"}, fields=["ID", "Name", "Driver"],
                                   noheading=a.noheading))
    return 0


def cmd_inspect(ctx: Any, a: Any) -> int:
    from rongqi.engine.networks import NoSuchNetwork
    store = _store(ctx)
    found, missing = [], []
    for ref in a.names:
        try:
            found.append(store.get(ref))
        except NoSuchNetwork as e:
            missing.append(e)
    if a.format:
        from rongqi.cli import output
        if found:
            sys.stdout.write(output.render_each([_Inspect(n) for n in found], a.format))
    else:
        print(_dump([_public(n) for n in found]))
    for e in missing:
        print(f"Error: {e}", file=sys.stderr)
    return 125 if missing else 0


class _Inspect(dict):
    """A network record that templates read by podman's Go field names ({{.Name}})."""

    _FIELDS = {"Name": "name", "ID": "id", "Id": "id", "Driver": "driver",
               "NetworkInterface": "network_interface", "Created": "created",
               "Subnets": "subnets", "IPv6Enabled": "ipv6_enabled", "Internal": "internal",
               "DNSEnabled": "dns_enabled", "Labels": "labels", "Options": "options",
               "IPAMOptions": "ipam_options", "NetworkDNSServers": "network_dns_servers"}

    def __init__(self, net: dict[str, Any]):
        super().__init__({k: net.get(v) for k, v in self._FIELDS.items()})


def _public(net: dict[str, Any]) -> dict[str, Any]:
    """A record as podman prints it: without what only rongqi serve reads (docker_options)."""
    return {k: v for k, v in net.items() if k != "docker_options"}


def _dump(items: list[Any]) -> str:
    """podman's inspect JSON: 5-space indentation."""
    return json.dumps(items, indent=5) if items else "[]"


def cmd_rm(ctx: Any, a: Any) -> int:
    from rongqi.engine.networks import NetworkInUse, NoSuchNetwork
    store = _store(ctx)
    code = 0
    for ref in a.names:
        try:
            print(store.remove(ref, ctx.engine, force=a.force))
        except NoSuchNetwork as e:
            code = _error(e, 1)
        except NetworkInUse as e:
            code = _error(e, 2)
        except Exception as e:  # noqa: BLE001 - one line per network, as podman
            from rongqi.errors import RongqiError
            if not isinstance(e, RongqiError):
                raise
            code = _error(e)
    return code


def cmd_prune(ctx: Any, a: Any) -> int:
    if not a.force:
        sys.stdout.write("WARNING! This will remove all networks not used by at least one "
                         "container.\nAre you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    for name in _store(ctx).prune(ctx.engine, a.filter):
        print(name)
    return 0


def cmd_exists(ctx: Any, a: Any) -> int:
    return 0 if _store(ctx).exists(a.name) else 1


def cmd_connect(ctx: Any, a: Any) -> int:
    from rongqi.engine import networks
    networks.connect(ctx.engine, a.container, a.network, aliases=a.alias, ip=a.ip,
                     mac=a.mac_address)
    return 0


def cmd_reload(ctx: Any, a: Any) -> int:
    """podman's: each container's id as it is reloaded, one Error: line for each that is
    not (exit 125)."""
    from rongqi.engine import networks
    from rongqi.errors import RongqiError
    if a.all and a.containers:
        return _error(Exception("--all and containers cannot be used together"))
    if not a.all and not a.containers:
        return _error(Exception("network reload needs a container name or id, or --all"))
    refs = networks.reloadable(ctx.engine) if a.all else a.containers
    code = 0
    for ref in refs:
        try:
            print(networks.reload(ctx.engine, ref))
        except RongqiError as e:
            code = _error(e, 125)
    return code


def cmd_disconnect(ctx: Any, a: Any) -> int:
    from rongqi.engine import networks
    networks.disconnect(ctx.engine, a.container, a.network, force=a.force)
    return 0
