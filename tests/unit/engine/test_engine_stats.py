"""top's descriptor table, stats' figures and podman's formatting of them, and -p parsing."""

from __future__ import annotations

import os

import pytest

from rongqi.engine import ports, stats
from rongqi.errors import UsageError


def test_go_durations_and_sizes_print_as_podman():
    assert stats.go_duration(0) == "0s"
    assert stats.go_duration(4_682_560_839) == "4.682560839s"
    assert stats.go_duration(114_697_878) == "114.697878ms"
    assert stats.go_duration(3_723_500_000_000) == "1h2m3.5s"
    assert stats.go_duration(60_000_000_000) == "1m0s"
    assert stats.go_duration(12_000) == "12µs"
    assert stats.human_size(528_400) == "528.4kB"
    assert stats.human_size(25_280_000_000) == "25.28GB"
    assert stats.human_size(0) == "0B"
    assert stats.bytes_size(528_384) == "516KiB"


def test_descriptors_parse_names_commas_and_aix_codes():
    assert stats.parse_descriptors([]) == stats.DEFAULT_DESCRIPTORS
    assert stats.parse_descriptors(["pid,user", "args"]) == ["pid", "user", "args"]
    assert stats.parse_descriptors(["%p", "%U", "%a"]) == ["pid", "user", "args"]
    # ps(1) options are not descriptors: top runs ps in the container instead
    assert stats.parse_descriptors(["-ef"]) is None
    assert stats.parse_descriptors(["pid", "bogus"]) is None


def test_table_of_this_process():
    me = stats.read_proc(os.getpid())
    assert me is not None and me.args and me.comm
    ctx = stats.TopContext(users={os.geteuid(): "someone"}, groups={}, host_users={},
                           host_groups={}, ns_pids={os.getpid(): 1, os.getppid(): 0})
    rows = stats.top_table([me], list(stats.DESCRIPTORS), ctx)
    header, row = rows
    table = dict(zip(list(stats.DESCRIPTORS), row))
    assert header[:3] == ["COMMAND", "AMBIENT CAPS", "BOUNDING CAPS"]
    assert table["user"] == "someone" and table["pid"] == str(me.ns_pid)
    assert table["hpid"] == str(os.getpid()) and table["pgid"] in ("0", "1")
    assert table["args"] == " ".join(me.args)
    assert float(table["pcpu"]) >= 0 and table["etime"].endswith("s")
    assert int(table["vsz"]) > 0 and int(table["rss"]) > 0
    assert table["seccomp"] in ("disabled", "filter", "strict")
    assert table["stime"].endswith("+0000 UTC")
    assert table["group"] == str(os.getegid())   # not in the (empty) group table


def test_read_proc_of_a_gone_process_is_none():
    assert stats.read_proc(2 ** 22 + 12345) is None


def test_tty_names():
    assert stats.tty_name(0) == "?"
    assert stats.tty_name(os.makedev(136, 3)) == "pts/3"
    assert stats.tty_name(os.makedev(4, 1)) == "tty1"


def test_net_dev_leaves_out_loopback():
    text = ("Inter-|   Receive                            |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes ...\n"
            "    lo:    500       5    0    0    0     0          0         0      500 5 0 0 0 0 0 0\n"
            "  eth0:   1000      10    0    0    0     0          0         0     2000 20 0 0 0 0 0 0\n")
    assert stats.net_dev(text) == (1000, 2000)


def test_stats_row_from_cgroup_data():
    data = {"cpu": {"usage": {"total": 500_000_000, "percpu": [250_000_000, 250_000_000]}},
            "memory": {"usage": {"usage": 10_000_000, "limit": (1 << 64) - 1},
                       "raw": {"total_inactive_file": 2_000_000}},
            "pids": {"current": 3},
            "blkio": {"ioServiceBytesRecursive": [{"op": "Read", "value": 4096},
                                                  {"op": "Write", "value": 8192}]}}
    s = stats.sample_from_cgroup(data, host_mem=16_000_000_000, now_ns=2_000_000_000)
    assert (s.mem_usage, s.mem_limit, s.pids) == (8_000_000, 16_000_000_000, 3)
    row = stats.stats_row("a" * 64, "web", s, None, started_ns=1_000_000_000)
    f = row.fields()
    assert f["CPUPerc"] == "50.00%" and f["AVGCPU"] == "50.00%"
    assert f["MemUsage"] == "8MB / 16GB" and f["MemPerc"] == "0.05%"
    assert f["BlockIO"] == "4.096kB / 8.192kB" and f["PIDS"] == "3"
    assert f["UpTime"] == "500ms" and f["ID"] == "a" * 12
    later = stats.sample_from_cgroup({"cpu": {"usage": {"total": 1_500_000_000}}},
                                     host_mem=1, now_ns=3_000_000_000)
    assert stats.stats_row("a" * 64, "web", later, s, 1_000_000_000).cpu_percent == \
        pytest.approx(100.0)
    assert set(row.json()) == {"id", "name", "cpu_time", "cpu_percent", "avg_cpu", "mem_usage",
                               "mem_percent", "net_io", "block_io", "pids"}


def test_parse_publish_forms():
    p = ports.parse_publish
    assert p("8080:80") == [ports.PortMapping(80, 8080)]
    assert p("127.0.0.1:8080:80/udp") == [ports.PortMapping(80, 8080, "udp", "127.0.0.1")]
    assert p("80") == [ports.PortMapping(80, 0)]
    assert p("127.0.0.1::80") == [ports.PortMapping(80, 0, "tcp", "127.0.0.1")]
    assert p("[::1]:53:53/udp") == [ports.PortMapping(53, 53, "udp", "::1")]
    assert [m.container_port for m in p("8000-8002:80-82")] == [80, 81, 82]
    assert p("8080:80")[0].line() == "80/tcp -> 0.0.0.0:8080"
    assert p("[::1]:53:53/udp")[0].host() == "[::1]:53"
    for bad in ("x:80", "8080:80/icmp", "1-3:80-81", "70000:80", "a:b:c:d", "300.1.1.1:80:80"):
        with pytest.raises(UsageError):
            p(bad)


def test_container_ports_from_a_record():
    cfg = {"options": {"publish": ["8080:80", "53:53/udp"], "publish_all": True}}
    exposed = ports.exposed_ports({"annotations": {"io.rongqi.exposed-ports": "9090,80/tcp"}})
    assert [m.line() for m in ports.container_ports(cfg, exposed)] == [
        "80/tcp -> 0.0.0.0:8080", "53/udp -> 0.0.0.0:53", "9090/tcp -> 0.0.0.0:0"]
    assert ports.parse_private("80") == (80, "tcp")
    with pytest.raises(UsageError):
        ports.parse_private("80/x")


def test_cgroup_path_on_v1_v2_and_hybrid():
    v2 = "0::/rongqi/abc\n"
    hybrid = ("12:memory:/rongqi/abc\n11:pids:/rongqi/abc\n3:cpu,cpuacct:/rongqi/abc\n"
              "1:name=systemd:/rongqi/abc\n0::/\n")
    v1 = "5:pids:/rongqi/abc\n4:cpu,cpuacct:/rongqi/abc\n"
    assert stats.cgroup_path(v2, "v2") == "/rongqi/abc"
    assert stats.cgroup_path(hybrid, "hybrid") == "/rongqi/abc"
    assert stats.cgroup_path(v1, "v1") == "/rongqi/abc"
    assert stats.cgroup_path("", "v2") == "/"
