"""--network slirp4netns[:OPTIONS] and pasta[:OPTIONS]: podman's defaults, words and command
lines, without running anything."""

from __future__ import annotations

import pytest

from rongqi.engine import networks
from rongqi.engine import networks_rootless as rl


def test_slirp4netns_defaults_are_podman_4s():
    o = rl.slirp_options([])
    assert o["allow_host_loopback"] is False and o["enable_ipv6"] is True
    assert o["mtu"] == 65520 and o["cidr"] == ""
    assert rl.slirp_addresses("") == ("10.0.2.100", "10.0.2.2", "10.0.2.3")
    assert rl.slirp_addresses("10.41.0.0/24") == ("10.41.0.100", "10.41.0.2", "10.41.0.3")


def test_modes_and_their_options_are_split():
    assert networks.mode_of("slirp4netns:mtu=1500,cidr=10.1.0.0/24", False) == \
        ("slirp4netns", [])
    assert networks.mode_of("pasta", True) == ("pasta", [])
    assert networks.mode_of("", True) == ("slirp4netns", [])
    assert rl.split_mode("slirp4netns:mtu=1500,cidr=10.1.0.0/24") == \
        ("slirp4netns", ["mtu=1500", "cidr=10.1.0.0/24"])
    assert rl.split_mode("pasta:-T,8080,--map-gw") == ("pasta", ["-T", "8080", "--map-gw"])


@pytest.mark.parametrize("opt,msg", [
    ("outbound_addr6=::1", "enable_ipv6=true is required for outbound_addr6"),
    ("outbound_addr=nope0", 'invalid outbound_addr "nope0"'),
    ("enable_ipv6", 'unknown option for slirp4netns: "enable_ipv6"'),
    ("port_handler=x", 'unknown port_handler for slirp4netns: "x"'),
    ("allow_host_loopback=yes", 'invalid value of allow_host_loopback for slirp4netns: "yes"'),
    ("cidr=10.0.2.0", 'invalid cidr "10.0.2.0"'),
    ("cidr=fd00::/64", 'invalid cidr "fd00::/64"'),
])
def test_bad_slirp4netns_options(opt, msg):
    opts = [opt] if not opt.startswith("outbound_addr6") else [opt, "enable_ipv6=false"]
    with pytest.raises(networks.NetworkError) as e:
        rl.slirp_options(opts)
    assert str(e.value) == msg


def test_pasta_command_line_is_podmans():
    ports = [{"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"},
             {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53,
              "protocol": "udp"}]
    argv = rl.pasta_argv("/usr/bin/pasta", ports, [], "/proc/self/fd/5", "", "/run/p.pid")
    assert argv[:6] == ["/usr/bin/pasta", "--config-net", "-t", "8080:80", "-u",
                        "127.0.0.1/5353:53"]
    assert argv[6:10] == ["-T", "none", "-U", "none"] and "--no-map-gw" in argv
    assert argv[-2:] == ["--netns", "/proc/self/fd/5"]
    argv = rl.pasta_argv("pasta", [], ["--map-gw", "-T", "9000"], "N", "U", "P")
    assert "--no-map-gw" not in argv and "--map-gw" not in argv
    assert argv.count("-T") == 1 and ["-t", "none"] == argv[argv.index("-t"):][:2]
    assert argv[-4:] == ["--userns", "U", "--netns", "N"]


def test_resolv_conf_gets_slirps_dns_first():
    text = "search example.org\nnameserver 192.0.2.53\noptions ndots:2\n"
    assert rl.resolv_with_slirp_dns(text, []) == \
        "search example.org\nnameserver 10.0.2.3\nnameserver 192.0.2.53\noptions ndots:2\n"
    assert rl.resolv_with_slirp_dns("", ["cidr=10.9.0.0/24"]) == "nameserver 10.9.0.3\n"


def test_hosts_put_the_names_on_the_tap_address_and_the_host_on_its_own(monkeypatch):
    base = "127.0.0.1\tlocalhost\n127.0.0.1\tabc web\n"
    monkeypatch.setattr(rl, "host_ipv4", lambda: "192.0.2.7")
    assert rl.hosts_for_slirp(base, [], True) == \
        "127.0.0.1\tlocalhost\n192.0.2.7\thost.containers.internal\n10.0.2.100\tabc web\n"
    assert rl.hosts_for_slirp(base, ["cidr=10.5.0.0/24"], False) == \
        "127.0.0.1\tlocalhost\n10.5.0.100\tabc web\n"
