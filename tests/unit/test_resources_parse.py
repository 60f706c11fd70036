"""linux.resources validation and `rongqi-oci update` flag parsing (rongqi.oci.resources)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from rongqi.errors import SpecError, UsageError
from rongqi.linux.cgroups.resources import Cpu, DeviceRule, Memory, Pids, Resources
from rongqi.oci.resources import parse_resources, parse_size, resources_from_update_flags, to_oci

FULL = {
    "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200, "kernelTCP": 1048576, "swappiness": 0, "disableOOMKiller": False},
    "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 1000, "cpus": "0-1", "mems": "0", "idle": 0},
    "pids": {"limit": 32},
    "blockIO": {
        "weight": 500,
        "leafWeight": 300,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 100}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
    },
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
    "unified": {"memory.high": "90000000"},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
    "somethingNew": {"ignored": True},
}


def test_a_full_block_parses_into_values() -> None:
    r = parse_resources(FULL)
    assert r.memory.limit == 104857600 and r.memory.swap == 209715200 and r.memory.kernel_tcp == 1048576
    assert r.cpu.shares == 1024 and r.cpu.quota == 20000 and r.cpu.cpus == "0-1"
    assert r.pids.limit == 32
    assert r.block_io.weight_device[0].weight == 600
    assert r.block_io.throttle_read_bps_device[0].rate == 1048576
    assert r.hugepage_limits[0].page_size == "2MB"
    assert r.devices == [
        DeviceRule(allow=False, type="a", major=None, minor=None, access="rwm"),
        DeviceRule(allow=True, type="c", major=1, minor=3, access="rw"),
    ]
    assert r.unified == {"memory.high": "90000000"}
    assert r.rdma["mlx5_1"].hca_objects == 10000
    assert r.network.priorities[0].name == "eth0"


def test_to_oci_round_trips() -> None:
    r = parse_resources(FULL)
    assert parse_resources(to_oci(r)) == r


def test_pids_limit_zero_or_negative_means_unlimited() -> None:
    assert parse_resources({"pids": {"limit": 0}}).pids.limit == -1
    assert parse_resources({"pids": {"limit": -5}}).pids.limit == -1


def test_swappiness_minus_one_means_unset() -> None:
    assert parse_resources({"memory": {"swappiness": -1}}).memory.swappiness is None


@pytest.mark.parametrize(
    "obj,message",
    [
        ([], r"^linux\.resources: must be an object, not an array$"),
        ({"memory": {"limit": -2}}, r"^linux\.resources\.memory\.limit: -2 is out of range"),
        ({"memory": {"limit": 1 << 64}}, r"^linux\.resources\.memory\.limit: \d+ is out of range"),
        ({"memory": {"limit": "100M"}}, r"^linux\.resources\.memory\.limit: must be an integer, not a string$"),
        ({"memory": {"limit": True}}, r"^linux\.resources\.memory\.limit: must be an integer, not a boolean$"),
        ({"memory": {"limit": 100}}, r"^linux\.resources\.memory\.limit: 100 bytes is below one page"),
        ({"memory": {"limit": 1 << 30, "swap": 1 << 20}}, r"^linux\.resources\.memory\.swap: \d+ is less than memory\.limit"),
        ({"memory": {"limit": 1 << 20, "reservation": 1 << 30}}, r"^linux\.resources\.memory\.reservation: .* above"),
        ({"memory": {"swappiness": 101}}, r"^linux\.resources\.memory\.swappiness: 101 is out of range"),
        ({"cpu": {"shares": 1}}, r"^linux\.resources\.cpu\.shares: 1 is out of range \(2\.\.262144\)$"),
        ({"cpu": {"shares": 1 << 20}}, r"^linux\.resources\.cpu\.shares"),
        ({"cpu": {"quota": 500}}, r"^linux\.resources\.cpu\.quota: 500 is below"),
        ({"cpu": {"quota": -7}}, r"^linux\.resources\.cpu\.quota: -7 is out of range"),
        ({"cpu": {"period": 2000000}}, r"^linux\.resources\.cpu\.period: 2000000 is out of range"),
        ({"cpu": {"cpus": "0-a"}}, r'^linux\.resources\.cpu\.cpus: \'0-a\' is not a list like "0-3,5"'),
        ({"cpu": {"cpus": "3-1"}}, r"^linux\.resources\.cpu\.cpus"),
        ({"cpu": {"idle": 2}}, r"^linux\.resources\.cpu\.idle: 2 is out of range"),
        ({"blockIO": {"weight": 5}}, r"^linux\.resources\.blockIO\.weight: 5 is out of range"),
        ({"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}}, r"^linux\.resources\.blockIO\.weightDevice\[0\]: major and minor are required"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}}, r"^linux\.resources\.blockIO\.throttleReadBpsDevice\[0\]\.rate"),
        ({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, r"^linux\.resources\.hugepageLimits\[0\]\.pageSize: '3MB' is not a power of two"),
        ({"hugepageLimits": [{"pageSize": "big", "limit": 1}]}, r"^linux\.resources\.hugepageLimits\[0\]\.pageSize"),
        ({"devices": [{"allow": True, "type": "x"}]}, r'^linux\.resources\.devices\[0\]\.type: unknown device type "x"'),
        ({"devices": [{"allow": True, "access": "rwx"}]}, r"^linux\.resources\.devices\[0\]\.access"),
        ({"devices": [{"type": "c"}]}, r"^linux\.resources\.devices\[0\]\.allow: required"),
        ({"devices": {"allow": True}}, r"^linux\.resources\.devices: must be an array"),
        ({"unified": {"memory": "1"}}, r'^linux\.resources\.unified\.memory: "memory" is not a cgroup v2 file name'),
        ({"unified": {"../memory.max": "1"}}, r"^linux\.resources\.unified\."),
        ({"unified": {"cgroup.procs": "1"}}, r"^linux\.resources\.unified\.cgroup\.procs: cgroup\.procs is managed by the runtime"),
        ({"unified": {"memory.high": 5}}, r"^linux\.resources\.unified\.memory\.high: must be a string, not a number$"),
        ({"network": {"priorities": [{"name": "eth0"}]}}, r"^linux\.resources\.network\.priorities\[0\]\.priority: required"),
        ({"rdma": {"mlx 5": {}}}, r"^linux\.resources\.rdma\.mlx 5"),
    ],
)
def test_bad_values_name_the_json_path(obj: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_resources(obj)


def test_the_path_prefix_follows_where() -> None:
    with pytest.raises(SpecError, match=r"^resources\.pids\.limit: must be an integer"):
        parse_resources({"pids": {"limit": "x"}}, "resources")


# --- update flags ----------------------------------------------------------------------


def flags(**kw: object) -> dict:
    # The shape oci/cli.py's parser hands over: every update flag present, "" or None when unset.
    base = {
        "resources": "", "blkio-weight": None, "cpu-period": "", "cpu-quota": "", "cpu-share": "",
        "cpu-rt-period": "", "cpu-rt-runtime": "", "cpuset-cpus": "", "cpuset-mems": "", "cpu-idle": "",
        "memory": "", "memory-reservation": "", "memory-swap": "", "kernel-memory": "",
        "kernel-memory-tcp": "", "pids-limit": None, "l3-cache-schema": "", "mem-bw-schema": "",
    }
    base.update({k.replace("_", "-"): v for k, v in kw.items()})
    return base


@pytest.mark.parametrize(
    "text,value",
    [("1024", 1024), ("100M", 100 << 20), ("100m", 100 << 20), ("1.5g", 3 << 29), ("512k", 512 << 10), ("64MiB", 64 << 20), ("2GB", 2 << 30), ("10b", 10), ("-1", -1)],
)
def test_sizes_parse_like_docker(text: str, value: int) -> None:
    assert parse_size(text, "memory") == value


@pytest.mark.parametrize("text", ["", "10q", "m", "1..5m", "-5m", "ten", "10 m"])
def test_bad_sizes_are_usage_errors_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match=r"for flag --memory"):
        parse_size(text, "memory")


def test_no_flags_give_empty_resources() -> None:
    assert resources_from_update_flags(flags()).is_empty()


def test_memory_and_cpu_flags_fill_only_their_fields() -> None:
    r = resources_from_update_flags(flags(memory="100M", memory_swap="200M", cpu_quota="20000", cpu_period="100000", cpu_share="512", cpuset_cpus="0", pids_limit=20, blkio_weight=300))
    assert r.memory == Memory(limit=100 << 20, swap=200 << 20)
    assert r.cpu == Cpu(quota=20000, period=100000, shares=512, cpus="0")
    assert r.pids == Pids(limit=20)
    assert r.block_io.weight == 300
    assert r.hugepage_limits is None and r.devices is None


def test_lifting_the_memory_limit_lifts_swap_too() -> None:
    assert resources_from_update_flags(flags(memory="-1")).memory == Memory(limit=-1, swap=-1)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"memory": "100M", "memory_swap": "50M"}, "--memory-swap"),
        ({"cpu_quota": "10"}, "--cpu-quota"),
        ({"cpu_share": "abc"}, "--cpu-share"),
        ({"cpu_period": "5"}, "--cpu-period"),
        ({"cpuset_cpus": "0-x"}, "--cpuset-cpus"),
        ({"blkio_weight": 5}, "--blkio-weight"),
        ({"pids_limit": "many"}, "--pids-limit"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(kw: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resources_from_update_flags(flags(**kw))


def test_resources_file_replaces_the_flags(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text('{"memory": {"limit": 67108864}, "pids": {"limit": 9}}')
    r = resources_from_update_flags(flags(resources=str(p), memory="1G"))
    assert r == Resources(memory=Memory(limit=64 << 20), pids=Pids(limit=9))


def test_resources_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"cpu": {"shares": 100}}')))
    assert resources_from_update_flags(flags(resources="-")).cpu == Cpu(shares=100)


def test_bad_resources_json_names_the_path(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text('{"memory": {"limit": -3}}')
    with pytest.raises(SpecError, match=r"^resources\.memory\.limit: -3 is out of range"):
        resources_from_update_flags(flags(resources=str(p)))
    p.write_text("{not json")
    with pytest.raises(SpecError, match=r"not valid JSON"):
        resources_from_update_flags(flags(resources=str(p)))
    with pytest.raises(UsageError, match="cannot read resources from"):
        resources_from_update_flags(flags(resources=str(tmp_path / "missing.json")))
