"""Published ports: -p/--publish values parsed into mappings, and `port`'s lines.

Ports are recorded at create and shown as podman shows them; the forwarding (and the host
ports picked for -P and `-p 80`) is engine/networks.py's.
"""

from __future__ import annotations

from rongqi.errors import UsageError
from rongqi.values import dataclass  # on run's path (bridge): see rongqi/values.py

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int        # 0: none given (the network picks one when it publishes)
    protocol: str = "tcp"
    host_ip: str = ""

    def line(self) -> str:
        """`port CONTAINER`'s line: 80/tcp -> 0.0.0.0:8080."""
        return f"{self.container_port}/{self.protocol} -> {self.host()}"

    def host(self) -> str:
        ip = self.host_ip or "0.0.0.0"
        if ":" in ip:
            ip = f"[{ip}]"
        return f"{ip}:{self.host_port}"

    def to_json(self) -> dict:
        return {"container_port": self.container_port, "host_port": self.host_port,
                "protocol": self.protocol, "host_ip": self.host_ip}

    @classmethod
    def from_json(cls, d: dict) -> "PortMapping":
        return cls(int(d["container_port"]), int(d.get("host_port", 0)),
                   d.get("protocol", "tcp"), d.get("host_ip", ""))


def _port_range(text: str, what: str, value: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise UsageError(f"invalid {what} {text!r} in --publish {value!r}") from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise UsageError(f"invalid {what} {text!r} in --publish {value!r}: ports are 1-65535")
    return a, b


def parse_publish(value: str) -> list[PortMapping]:
    """One -p value: [[IP:][HOSTPORT]:]CONTAINERPORT[/PROTOCOL], ranges as 8000-8010:80-90."""
    spec, _, proto = value.partition("/")
    proto = (proto or "tcp").lower()
    protos = proto.split(",")
    for p in protos:
        if p not in PROTOCOLS:
            raise UsageError(f"invalid protocol {p!r} in --publish {value!r} "
                             "(tcp, udp or sctp)")
    host_ip = ""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or spec[end + 1:end + 2] != ":":
            raise UsageError(f"invalid IPv6 address in --publish {value!r}")
        host_ip, spec = spec[1:end], spec[end + 2:]
        parts = spec.split(":")
        if len(parts) != 2:
            raise UsageError(f"invalid --publish {value!r}")
        host, ctr = parts
    else:
        parts = spec.split(":")
        if len(parts) == 1:
            host, ctr = "", parts[0]
        elif len(parts) == 2:
            host, ctr = parts
        elif len(parts) == 3:
            host_ip, host, ctr = parts
        else:
            raise UsageError(f"invalid --publish {value!r}")
    if host_ip:
        import ipaddress
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise UsageError(f"invalid IP address {host_ip!r} in --publish {value!r}") from None
    if not ctr:
        raise UsageError(f"invalid --publish {value!r}: no container port")
    c_lo, c_hi = _port_range(ctr, "container port", value)
    if host:
        h_lo, h_hi = _port_range(host, "host port", value)
        if h_hi - h_lo != c_hi - c_lo:
            raise UsageError(f"--publish {value!r}: host and container port ranges differ "
                             "in size")
    else:
        h_lo = 0
    out = []
    for p in protos:
        for i in range(c_hi - c_lo + 1):
            out.append(PortMapping(c_lo + i, h_lo + i if h_lo else 0, p, host_ip))
    return out


def parse_all(values: list[str]) -> list[PortMapping]:
    out: list[PortMapping] = []
    for v in values:
        out.extend(parse_publish(v))
    return out


def container_ports(config: dict, exposed: list[str] | tuple[str, ...] = ()) -> list[PortMapping]:
    """A container's mappings from its record: the options' publish list, and with -P each
    exposed port ("80/tcp", the image's ExposedPorts) not published yet, host port 0."""
    opts = config.get("options") or {}
    maps = parse_all(list(opts.get("publish") or []))
    if opts.get("publish_all"):
        have = {(m.container_port, m.protocol) for m in maps}
        for key in sorted(exposed):
            port, _, proto = key.partition("/")
            if port.isdigit() and (int(port), proto or "tcp") not in have:
                maps.append(PortMapping(int(port), 0, proto or "tcp"))
    return maps


def exposed_ports(spec: dict) -> list[str]:
    """The image's exposed ports as the bundle recorded them (annotation io.rongqi.exposed-ports)."""
    text = (spec.get("annotations") or {}).get("io.rongqi.exposed-ports", "")
    return [p if "/" in p else p + "/tcp" for p in text.split(",") if p]


def parse_private(value: str) -> tuple[int, str]:
    """`port CONTAINER 80/tcp`'s PRIVATE_PORT[/PROTO]."""
    port, _, proto = value.partition("/")
    proto = proto or "tcp"
    try:
        n = int(port)
    except ValueError:
        raise UsageError(f'invalid port "{value}": port formats are port/protocol') from None
    if proto not in PROTOCOLS or not 0 < n <= 65535:
        raise UsageError(f'invalid port "{value}": port formats are port/protocol')
    return n, proto
