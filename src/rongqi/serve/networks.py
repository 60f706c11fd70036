"""Docker's /networks endpoints (list, inspect, create, remove, connect, disconnect, prune):
Docker's network JSON over engine/networks.py's records (podman's shape), with its status codes.

rongqi's default network (`podman`, as podman's own) is Docker's `bridge` here, as podman's
compat API answers: asked for by "bridge" (or its name or id), shown as "bridge".
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from rongqi.engine import networks as nets
from rongqi.errors import UsageError
from rongqi.serve.app import HTTPError, Request, Response, json_response, route

DOCKER_DEFAULT = "bridge"
LIST_FILTERS = ("name", "id", "label", "driver", "type", "dangling", "scope")
PRUNE_FILTERS = ("until", "label", "label!")


def engine_ref(ref: str) -> str:
    """A network named the Docker way: "bridge" is rongqi's default network."""
    return nets.DEFAULT_NAME if ref == DOCKER_DEFAULT else ref


def docker_name(net: dict[str, Any]) -> str:
    return DOCKER_DEFAULT if net["name"] == nets.DEFAULT_NAME else net["name"]


def _not_found(ref: str) -> HTTPError:
    return HTTPError(404, f"network {ref} not found")


def _get(store: nets.NetworkStore, ref: str) -> dict[str, Any]:
    try:
        return store.get(engine_ref(ref))
    except nets.NoSuchNetwork:
        raise _not_found(ref) from None
    except nets.NetworkError as e:  # an ambiguous id prefix
        raise HTTPError(400, str(e)) from None


# -- the JSON -----------------------------------------------------------------------------------
def ip_range_cidr(lease_range: dict[str, str]) -> str:
    """A lease range back as the CIDR it was made from (engine/networks._parse_subnets keeps
    its first and last usable addresses): the smallest network holding both ends."""
    start = ipaddress.ip_address(lease_range["start_ip"])
    end = ipaddress.ip_address(lease_range["end_ip"])
    for plen in range(start.max_prefixlen, -1, -1):
        net = ipaddress.ip_network((start, plen), strict=False)
        if end in net:
            return str(net)
    return ""  # not reached: /0 holds every address


def endpoint_id(cid: str, net_id: str) -> str:
    """A stable 64-hex id for a container's attachment (Docker's EndpointID)."""
    return hashlib.sha256(f"{cid}/{net_id}".encode()).hexdigest()


def endpoints(engine: Any) -> dict[str, dict[str, Any]]:
    """Network name -> Docker's Containers map ({id: {Name, EndpointID, MacAddress,
    IPv4Address, IPv6Address}}) of the containers whose network is set up (running ones:
    Docker's endpoints), from one pass over the records."""
    out: dict[str, dict[str, Any]] = {}
    for c in engine.records.all():
        att = nets.load(c)
        if not att or att.get("mode") != "bridge" or not att.get("active"):
            continue
        status = att.get("status") or {}
        for name, a in (att.get("networks") or {}).items():
            iface = ((status.get(name) or {}).get("interfaces") or {}).get(
                a.get("interface_name", "")) or {}
            v4 = v6 = ""
            for s in iface.get("subnets") or []:
                if ":" in s.get("ipnet", ""):
                    v6 = v6 or s["ipnet"]
                else:
                    v4 = v4 or s.get("ipnet", "")
            net_id = ((att.get("network_info") or {}).get(name) or {}).get("id", name)
            out.setdefault(name, {})[c.id] = {
                "Name": c.name, "EndpointID": endpoint_id(c.id, net_id),
                "MacAddress": iface.get("mac_address", ""), "IPv4Address": v4,
                "IPv6Address": v6}
    return out


def docker_network(net: dict[str, Any], containers: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Docker's NetworkResource for one of engine/networks.py's records."""
    config = []
    for s in net.get("subnets") or []:
        pool = {"Subnet": s["subnet"]}
        if s.get("gateway"):
            pool["Gateway"] = s["gateway"]
        if s.get("lease_range"):
            pool["IPRange"] = ip_range_cidr(s["lease_range"])
        config.append(pool)
    # Docker shows the options as its client gave them (compose compares them with its
    # driver_opts on every `up`); a network made by rongqi's CLI shows its own, less podman's
    # `isolate` (how netavark keeps bridges apart, which Docker does always).
    if "docker_options" in net:
        options = dict(net["docker_options"])
    else:
        options = {k: v for k, v in (net.get("options") or {}).items() if k != "isolate"}
    return {
        "Name": docker_name(net), "Id": net["id"], "Created": net.get("created", ""),
        "Scope": "local", "Driver": net.get("driver", "bridge"),
        "EnableIPv6": bool(net.get("ipv6_enabled")),
        # Options {}: compose compares them with its own ipam options, and host-local is
        # Docker's "default" driver.
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": bool(net.get("internal")), "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": dict(containers or {}), "Options": options,
        "Labels": dict(net.get("labels") or {}),
    }


# -- list and inspect ---------------------------------------------------------------------------
def _check_filters(flt: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
    for k in flt:
        if k not in allowed:
            raise HTTPError(400, f"invalid filter '{k}'")


@route("GET", "/networks")
def list_networks(req: Request) -> Response:
    flt = req.filters()
    _check_filters(flt, LIST_FILTERS)
    scopes = flt.pop("scope", [])
    if any(s not in ("local", "swarm", "global") for s in scopes):
        raise HTTPError(400, f"invalid filter: 'scope'='{scopes[0]}'")
    # Docker matches names as a regexp on its own names: "bridge", not the record's "podman".
    names = flt.pop("name", [])
    engine = req.engine
    try:
        match = nets.compile_filters(flt, used=lambda: nets.networks_in_use(engine))
    except UsageError as e:
        raise HTTPError(400, str(e)) from None
    if names:
        name_match = nets.compile_filters({"name": names})
    eps = endpoints(engine)
    out = []
    for net in nets.NetworkStore(engine.root).list():
        if scopes and "local" not in scopes:
            continue
        if names and not name_match(dict(net, name=docker_name(net))):
            continue
        if match(net):
            out.append(docker_network(net, eps.get(net["name"])))
    return json_response(out)


@route("GET", "/networks/{id}")
def inspect_network(req: Request) -> Response:
    ref = req.params["id"]
    scope = req.arg("scope") or ""
    net = _get(nets.NetworkStore(req.engine.root), ref)
    if scope not in ("", "local"):
        raise _not_found(ref)  # swarm and global networks: none here
    return json_response(docker_network(net, endpoints(req.engine).get(net["name"])))


# -- create and remove --------------------------------------------------------------------------
def _obj(body: Any, key: str) -> dict[str, Any]:
    v = body.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise HTTPError(400, f"{key}: expected a JSON object")
    return v


@route("POST", "/networks/create")
def create_network(req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        raise HTTPError(400, "the body must be a JSON object (NetworkCreateRequest)")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise HTTPError(400, "network name is required")
    for swarm_only in ("Ingress", "ConfigOnly"):
        if body.get(swarm_only):
            raise HTTPError(400, f"{swarm_only} networks need swarm mode, which rongqi has not")
    if (_obj(body, "ConfigFrom") or {}).get("Network"):
        raise HTTPError(400, "ConfigFrom networks need swarm mode, which rongqi has not")
    if body.get("Scope") not in (None, "", "local"):
        raise HTTPError(400, f"scope {body['Scope']} needs swarm mode; only local networks "
                             "exist here")
    store = nets.NetworkStore(req.engine.root)
    # CheckDuplicate is always true here: networks are kept by name.
    try:
        net, warnings = nets.create_docker_style(
            store, name, driver=body.get("Driver") or None, options=_obj(body, "Options"),
            ipam=_obj(body, "IPAM"), internal=bool(body.get("Internal")),
            labels=_obj(body, "Labels"), enable_ipv6=bool(body.get("EnableIPv6")))
    except nets.NetworkExists:
        raise HTTPError(409, f"network with name {name} already exists") from None
    except nets.PredefinedNetwork as e:
        raise HTTPError(403, str(e)) from None
    except (nets.NetworkError, UsageError) as e:
        raise HTTPError(400, str(e)) from None
    return json_response({"Id": net["id"], "Warning": "; ".join(warnings)}, 201)


@route("DELETE", "/networks/{id}")
def remove_network(req: Request) -> Response:
    ref = req.params["id"]
    store = nets.NetworkStore(req.engine.root)
    net = _get(store, ref)
    if net["name"] == nets.DEFAULT_NAME:
        raise HTTPError(403, f"{DOCKER_DEFAULT} is a pre-defined network and cannot be removed")
    try:
        store.remove(net["name"], req.engine)
    except nets.NoSuchNetwork:
        raise _not_found(ref) from None
    except nets.NetworkInUse:
        # Docker's libnetwork words and status (403, Forbidden).
        raise HTTPError(403, f"error while removing network: network {net['name']} id "
                             f"{net['id']} has active endpoints") from None
    return Response(204)


@route("POST", "/networks/prune")
def prune_networks(req: Request) -> Response:
    flt = req.filters()
    _check_filters(flt, PRUNE_FILTERS)
    try:
        gone = nets.NetworkStore(req.engine.root).prune(req.engine, flt)
    except UsageError as e:
        raise HTTPError(400, str(e)) from None
    return json_response({"NetworksDeleted": gone})


# -- connect and disconnect ---------------------------------------------------------------------
def _container_ref(body: Any) -> str:
    if not isinstance(body, dict):
        raise HTTPError(400, "the body must be a JSON object")
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise HTTPError(400, "no container given (Container)")
    return ref


def _container_name(engine: Any, ref: str) -> str:
    try:
        return str(engine.get(ref).name)
    except Exception:  # noqa: BLE001 - only for the message
        return ref


@route("POST", "/networks/{id}/connect")
def connect(req: Request) -> Response:
    body = req.json()
    ref = _container_ref(body)
    epc = _obj(body, "EndpointConfig")
    ipam = epc.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise HTTPError(400, "EndpointConfig.IPAMConfig: expected a JSON object")
    aliases = epc.get("Aliases") or []
    if not isinstance(aliases, list):
        raise HTTPError(400, "EndpointConfig.Aliases: expected a list")
    ip = ipam.get("IPv4Address") or epc.get("IPAddress") or ""
    net = _get(nets.NetworkStore(req.engine.root), req.params["id"])
    try:
        nets.connect(req.engine, ref, net["name"], aliases=[str(a) for a in aliases],
                     ip=str(ip), mac=str(epc.get("MacAddress") or ""))
    except nets.AlreadyConnected:
        raise HTTPError(403, f"endpoint with name {_container_name(req.engine, ref)} already "
                             f"exists in network {docker_name(net)}") from None
    except nets.NoSuchNetwork:
        raise _not_found(req.params["id"]) from None
    except nets.InvalidNetworkMode:
        raise HTTPError(400, "container cannot be connected to network "
                             f"{docker_name(net)}: its network mode is not bridge") from None
    except nets.NetworkError as e:
        # A bad address or a full subnet is the client's; netavark failing is ours.
        raise HTTPError(500 if str(e).startswith("netavark") else 400, str(e)) from None
    return Response(200)


@route("POST", "/networks/{id}/disconnect")
def disconnect(req: Request) -> Response:
    body = req.json()
    ref = _container_ref(body)
    net = _get(nets.NetworkStore(req.engine.root), req.params["id"])
    try:
        nets.disconnect(req.engine, ref, net["name"], force=bool(body.get("Force")))
    except nets.NotConnected:
        # Docker's words; podman's compat status (its ErrNoSuchNetwork: 404).
        raise HTTPError(404, f"container {ref} is not connected to network "
                             f"{docker_name(net)}") from None
    except nets.NoSuchNetwork:
        raise _not_found(req.params["id"]) from None
    return Response(200)
