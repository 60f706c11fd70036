"""Every controller's file writes, v1 and v2, against a fake cgroupfs in a temp dir (no root).

The fake is plain directories and files; a recorder around files.write keeps the order of writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rongqi.errors import RongqiError, SpecError
from rongqi.linux import cgroups
from rongqi.linux.cgroups import convert, files
from rongqi.linux.cgroups import v2 as v2mod
from rongqi.linux.cgroups.files import CgroupError
from rongqi.linux.cgroups.resources import (
    BlockIO,
    Cpu,
    DeviceRule,
    HugepageLimit,
    InterfacePriority,
    Memory,
    Network,
    Pids,
    RdmaLimit,
    Resources,
    ThrottleDevice,
    WeightDevice,
)

PATH = "/rongqi/c1"

V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.soft_limit_in_bytes": "",
        "memory.kmem.tcp.limit_in_bytes": "",
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        "memory.usage_in_bytes": "1000",
        "memory.max_usage_in_bytes": "2000",
        "memory.failcnt": "4",
        "memory.memsw.usage_in_bytes": "1500",
        "memory.stat": "cache 77\ntotal_cache 88\nrss 5\n",
    },
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_burst_us": "0",
        "cpu.rt_period_us": "1000000",
        "cpu.rt_runtime_us": "0",
        "cpu.idle": "0",
        "cpu.stat": "nr_periods 10\nnr_throttled 3\nthrottled_time 999\n",
    },
    "cpuacct": {
        "cpuacct.usage": "123456",
        "cpuacct.usage_percpu": "100000 23456",
        "cpuacct.usage_percpu_sys": "1 2",
        "cpuacct.usage_percpu_user": "3 4",
        "cpuacct.stat": "user 7\nsystem 2\n",
    },
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "5"},
    "freezer": {"freezer.state": "THAWED"},
    "devices": {"devices.allow": "", "devices.deny": ""},
    "blkio": {
        "blkio.bfq.weight": "100",
        "blkio.bfq.weight_device": "",
        "blkio.leaf_weight": "",
        "blkio.leaf_weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
    },
    "hugetlb": {
        "hugetlb.2MB.limit_in_bytes": "",
        "hugetlb.2MB.rsvd.limit_in_bytes": "",
        "hugetlb.2MB.usage_in_bytes": "2097152",
        "hugetlb.2MB.max_usage_in_bytes": "4194304",
        "hugetlb.2MB.failcnt": "1",
        "hugetlb.1GB.limit_in_bytes": "",
    },
    "net_cls": {"net_cls.classid": ""},
    "net_prio": {"net_prio.ifpriomap": ""},
    "rdma": {"rdma.max": ""},
    "systemd": {},
}

V2_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma",
    "cgroup.subtree_control": "",
    "cgroup.freeze": "0",
    "cgroup.events": "populated 1\nfrozen 0\n",
    "cgroup.kill": "",
    "cgroup.max.descendants": "max",
    "memory.max": "max",
    "memory.low": "0",
    "memory.swap.max": "max",
    "memory.current": "4096",
    "memory.peak": "8192",
    "memory.swap.current": "0",
    "memory.stat": "anon 1\nfile 55\n",
    "memory.events": "low 0\nhigh 0\nmax 6\noom 1\noom_kill 2\n",
    "memory.high": "max",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.max.burst": "0",
    "cpu.idle": "0",
    "cpu.stat": "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "pids.max": "max",
    "pids.current": "3",
    "io.weight": "default 100",
    "io.max": "",
    "io.stat": "8:0 rbytes=4096 wbytes=512 rios=1 wios=2 dbytes=0 dios=0\n",
    "hugetlb.2MB.max": "max",
    "hugetlb.2MB.rsvd.max": "max",
    "hugetlb.2MB.current": "0",
    "hugetlb.2MB.events": "max 0\n",
    "rdma.max": "",
}


def _populate(d: Path, content: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in content.items():
        (d / name).write_text(text)


class Recorder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.writes: list[tuple[str, str]] = []

    def __call__(self, directory: str, name: str, value: object, field: str = "") -> None:
        self.writes.append((os.path.relpath(directory + "/" + name, self.root), str(value)))
        files_write(directory, name, value, field)

    def to(self, rel: str) -> list[str]:
        return [v for p, v in self.writes if p == rel]


files_write = files.write


@pytest.fixture
def rec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder(tmp_path / "cgroupfs")
    monkeypatch.setattr(files, "write", r)
    return r


@pytest.fixture
def v1(tmp_path: Path) -> cgroups.Cgroup:
    root = tmp_path / "cgroupfs"
    for hier, content in V1_FILES.items():
        _populate(root / hier / PATH.lstrip("/"), content)
    (root / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    (root / "cpuset" / "rongqi" / "cpuset.cpus").write_text("")
    (root / "cpuset" / "rongqi" / "cpuset.mems").write_text("")
    return cgroups.Cgroup.open(PATH, mode="v1", root=str(root))


@pytest.fixture
def v2(tmp_path: Path) -> cgroups.Cgroup:
    root = tmp_path / "cgroupfs"
    _populate(root / PATH.lstrip("/"), V2_FILES)
    return cgroups.Cgroup.open(PATH, mode="v2", root=str(root))


def f(cg: cgroups.Cgroup, key: str, name: str) -> str:
    return Path(cg.dirs[key], name).read_text().strip()


# --- opening and state ------------------------------------------------------------------


def test_fake_v1_root_maps_every_hierarchy_to_the_container_dir(v1: cgroups.Cgroup, tmp_path: Path) -> None:
    assert v1.dirs["memory"] == str(tmp_path / "cgroupfs/memory/rongqi/c1")
    assert v1.dirs["name=systemd"] == str(tmp_path / "cgroupfs/systemd/rongqi/c1")
    assert cgroups.UNIFIED not in v1.dirs


def test_comounted_v1_hierarchy_serves_both_controllers(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "unified").mkdir()
    cg = cgroups.Cgroup.open("/x", mode="hybrid", root=str(tmp_path))
    assert cg.dirs["cpu"] == cg.dirs["cpuacct"] == str(tmp_path / "cpu,cpuacct/x")
    assert cg.dirs[cgroups.UNIFIED] == str(tmp_path / "unified/x")


def test_state_round_trip_keeps_every_directory(v1: cgroups.Cgroup) -> None:
    again = cgroups.Cgroup.from_dict(v1.to_dict())
    assert (again.path, again.mode, again.root, again.dirs) == (v1.path, v1.mode, v1.root, v1.dirs)


def test_open_refuses_relative_or_dotdot_paths(tmp_path: Path) -> None:
    for bad in ("rel/path", "/a/../b"):
        with pytest.raises(CgroupError):
            cgroups.Cgroup.open(bad, mode="v2", root=str(tmp_path))


# --- v1 controllers ---------------------------------------------------------------------


def test_v1_raising_memory_writes_memsw_before_the_limit(v1: cgroups.Cgroup, rec: Recorder) -> None:
    (Path(v1.dirs["memory"]) / "memory.memsw.limit_in_bytes").write_text("209715200")
    v1.apply(Resources(memory=Memory(limit=300 << 20, swap=600 << 20)))
    mem = [w for w in rec.writes if w[0].startswith("memory/")]
    assert mem == [
        ("memory/rongqi/c1/memory.memsw.limit_in_bytes", str(600 << 20)),
        ("memory/rongqi/c1/memory.limit_in_bytes", str(300 << 20)),
    ]


def test_v1_lowering_memory_writes_the_limit_before_memsw(v1: cgroups.Cgroup, rec: Recorder) -> None:
    (Path(v1.dirs["memory"]) / "memory.memsw.limit_in_bytes").write_text(str(600 << 20))
    v1.apply(Resources(memory=Memory(limit=100 << 20, swap=150 << 20)))
    assert [w[0].rsplit("/", 1)[1] for w in rec.writes] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_v1_unlimited_memory_lifts_memsw_first_with_minus_one(v1: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(Resources(memory=Memory(limit=-1)))
    assert rec.writes == [
        ("memory/rongqi/c1/memory.memsw.limit_in_bytes", "-1"),
        ("memory/rongqi/c1/memory.limit_in_bytes", "-1"),
    ]


def test_v1_raising_the_limit_above_a_set_memsw_alone_is_explained(v1: cgroups.Cgroup, rec: Recorder) -> None:
    (Path(v1.dirs["memory"]) / "memory.memsw.limit_in_bytes").write_text(str(64 << 20))
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.limit: \d+ is above the current memory\+swap limit"):
        v1.apply(Resources(memory=Memory(limit=128 << 20)))
    assert rec.writes == []


def test_v1_memory_side_settings_go_to_their_files(v1: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(Resources(memory=Memory(reservation=50 << 20, kernel_tcp=1 << 20, swappiness=10, disable_oom_killer=True, kernel=1 << 20)))
    assert f(v1, "memory", "memory.soft_limit_in_bytes") == str(50 << 20)
    assert f(v1, "memory", "memory.kmem.tcp.limit_in_bytes") == str(1 << 20)
    assert f(v1, "memory", "memory.swappiness") == "10"
    assert f(v1, "memory", "memory.oom_control") == "1"
    # kernel memory limits are deprecated and ignored, as by runc
    assert not any("memory.kmem.limit_in_bytes" in p for p, _ in rec.writes)


def test_v1_swap_without_memsw_support_is_an_error_naming_swap(v1: cgroups.Cgroup) -> None:
    os.unlink(Path(v1.dirs["memory"]) / "memory.memsw.limit_in_bytes")
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: swap accounting"):
        v1.apply(Resources(memory=Memory(limit=1 << 20, swap=2 << 20)))


def test_v1_cpu_settings_go_to_cfs_rt_and_idle_files(v1: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(Resources(cpu=Cpu(shares=512, quota=20000, period=100000, burst=1000, realtime_period=900000, realtime_runtime=5000, idle=1)))
    assert [p.rsplit("/", 1)[1] for p, _ in rec.writes] == [
        "cpu.shares",
        "cpu.cfs_period_us",
        "cpu.cfs_quota_us",
        "cpu.cfs_burst_us",
        "cpu.rt_period_us",
        "cpu.rt_runtime_us",
        "cpu.idle",
    ]
    assert f(v1, "cpu", "cpu.cfs_quota_us") == "20000"
    assert f(v1, "cpu", "cpu.shares") == "512"


def test_v1_unlimited_quota_writes_minus_one(v1: cgroups.Cgroup) -> None:
    v1.apply(Resources(cpu=Cpu(quota=-1)))
    assert f(v1, "cpu", "cpu.cfs_quota_us") == "-1"


def test_v1_cpuset_cpus_and_mems(v1: cgroups.Cgroup) -> None:
    v1.apply(Resources(cpu=Cpu(cpus="0-1", mems="0")))
    assert f(v1, "cpuset", "cpuset.cpus") == "0-1"
    assert f(v1, "cpuset", "cpuset.mems") == "0"


def test_v1_new_cpuset_cgroup_inherits_parent_cpus_and_mems(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    (root / "cpuset").mkdir(parents=True)
    (root / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    cg = cgroups.Cgroup.open("/new", mode="v1", root=str(root))
    # A real kernel creates the files on mkdir; the fake needs them made in between.
    real_mkdir = os.mkdir

    def mkdir_with_files(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        for name in ("cpuset.cpus", "cpuset.mems"):
            Path(path, name).write_text("")

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "mkdir", mkdir_with_files)
    try:
        cg.create()
    finally:
        mp.undo()
    assert f(cg, "cpuset", "cpuset.cpus") == "0-3"
    assert f(cg, "cpuset", "cpuset.mems") == "0"


@pytest.mark.parametrize("limit,expected", [(100, "100"), (-1, "max"), (0, "max")])
def test_v1_pids_limit_zero_or_negative_means_max(v1: cgroups.Cgroup, limit: int, expected: str) -> None:
    v1.apply(Resources(pids=Pids(limit=limit)))
    assert f(v1, "pids", "pids.max") == expected


def test_v1_blkio_uses_bfq_files_when_cfq_is_absent(v1: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(
        Resources(
            block_io=BlockIO(
                weight=300,
                leaf_weight=200,
                weight_device=[WeightDevice(major=8, minor=0, weight=500, leaf_weight=100)],
                throttle_read_bps_device=[ThrottleDevice(major=8, minor=0, rate=1000)],
                throttle_write_bps_device=[ThrottleDevice(major=8, minor=0, rate=2000)],
                throttle_read_iops_device=[ThrottleDevice(major=8, minor=16, rate=30)],
                throttle_write_iops_device=[ThrottleDevice(major=8, minor=16, rate=40)],
            )
        )
    )
    got = {p.rsplit("/", 1)[1]: v for p, v in rec.writes}
    assert got == {
        "blkio.bfq.weight": "300",
        "blkio.leaf_weight": "200",
        "blkio.bfq.weight_device": "8:0 500",
        "blkio.leaf_weight_device": "8:0 100",
        "blkio.throttle.read_bps_device": "8:0 1000",
        "blkio.throttle.write_bps_device": "8:0 2000",
        "blkio.throttle.read_iops_device": "8:16 30",
        "blkio.throttle.write_iops_device": "8:16 40",
    }


def test_v1_blkio_prefers_cfq_weight_when_present(v1: cgroups.Cgroup) -> None:
    Path(v1.dirs["blkio"], "blkio.weight").write_text("500")
    v1.apply(Resources(block_io=BlockIO(weight=700)))
    assert f(v1, "blkio", "blkio.weight") == "700"
    assert f(v1, "blkio", "blkio.bfq.weight") == "100"


def test_v1_hugetlb_limits_per_page_size_including_reservations(v1: cgroups.Cgroup) -> None:
    v1.apply(Resources(hugepage_limits=[HugepageLimit(page_size="2MB", limit=4 << 20), HugepageLimit(page_size="1GB", limit=0)]))
    assert f(v1, "hugetlb", "hugetlb.2MB.limit_in_bytes") == str(4 << 20)
    assert f(v1, "hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes") == str(4 << 20)
    assert f(v1, "hugetlb", "hugetlb.1GB.limit_in_bytes") == "0"


def test_v1_device_rules_are_written_in_order_to_allow_and_deny(v1: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(
        Resources(
            devices=[
                DeviceRule(allow=False, access="rwm"),
                DeviceRule(allow=True, type="c", major=1, minor=3, access="rwm"),
                DeviceRule(allow=True, type="c", major=136, minor=None, access="rw"),
                DeviceRule(allow=False, type="b", major=8, minor=0, access="m"),
            ]
        )
    )
    assert rec.writes == [
        ("devices/rongqi/c1/devices.deny", "a *:* rwm"),
        ("devices/rongqi/c1/devices.allow", "c 1:3 rwm"),
        ("devices/rongqi/c1/devices.allow", "c 136:* rw"),
        ("devices/rongqi/c1/devices.deny", "b 8:0 m"),
    ]


def test_v1_network_class_and_priorities(v1: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(Resources(network=Network(class_id=0x100001, priorities=[InterfacePriority(name="eth0", priority=5), InterfacePriority(name="lo", priority=2)])))
    assert f(v1, "net_cls", "net_cls.classid") == str(0x100001)
    assert rec.to("net_prio/rongqi/c1/net_prio.ifpriomap") == ["eth0 5", "lo 2"]


def test_v1_rdma_limits(v1: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(Resources(rdma={"mlx4_0": RdmaLimit(hca_handles=2, hca_objects=2000), "ocrdma1": RdmaLimit(hca_handles=3)}))
    assert rec.to("rdma/rongqi/c1/rdma.max") == ["mlx4_0 hca_handle=2 hca_object=2000", "ocrdma1 hca_handle=3"]


def test_v1_missing_controller_names_the_field(v1: cgroups.Cgroup) -> None:
    del v1.dirs["hugetlb"]
    with pytest.raises(CgroupError, match=r"^linux\.resources\.hugepageLimits: the hugetlb cgroup controller is not mounted"):
        v1.apply(Resources(hugepage_limits=[HugepageLimit(page_size="2MB", limit=1)]))


def test_unified_on_a_v1_or_hybrid_host_is_an_invalid_configuration(v1: cgroups.Cgroup) -> None:
    # runc's words; on hybrid too (the cgroup2 tree beside the v1 controllers is not used for limits).
    with pytest.raises(CgroupError, match=r"^linux\.resources\.unified: invalid configuration: cannot use unified on cgroup v1"):
        v1.apply(Resources(unified={"memory.high": "1000"}))
    v1.mode = "hybrid"
    v1.dirs["unified"] = v1.root + "/unified/rongqi/c1"
    with pytest.raises(CgroupError, match=r"invalid configuration: cannot use unified on cgroup v1"):
        v1.apply(Resources(unified={"cgroup.max.depth": "3"}))


def test_kernel_refusing_a_write_gives_one_line_naming_the_field(v1: cgroups.Cgroup) -> None:
    target = Path(v1.dirs["pids"], "pids.max")
    target.unlink()
    target.mkdir()  # opening a directory for writing fails like a kernel refusal would
    with pytest.raises(CgroupError) as info:
        v1.apply(Resources(pids=Pids(limit=10)))
    msg = str(info.value)
    assert msg.startswith("linux.resources.pids.limit: cannot write '10' to ") and "\n" not in msg
    assert isinstance(info.value, RongqiError)


def test_empty_resources_write_nothing(v1: cgroups.Cgroup, v2: cgroups.Cgroup, rec: Recorder) -> None:
    v1.apply(Resources(memory=Memory(), cpu=Cpu(), block_io=BlockIO()))
    v2.apply(Resources(memory=Memory(), cpu=Cpu(), block_io=BlockIO()))
    assert rec.writes == []


def test_v1_stats_follow_runc_shape(v1: cgroups.Cgroup) -> None:
    s = v1.stats()
    assert s["cpu"]["usage"]["total"] == 123456
    assert s["cpu"]["usage"]["percpu"] == [100000, 23456]
    assert s["cpu"]["usage"]["user"] == 7 * 10_000_000
    assert s["cpu"]["throttling"] == {"periods": 10, "throttled_periods": 3, "throttled_time": 999}
    assert s["memory"]["usage"]["usage"] == 1000
    assert s["memory"]["usage"]["max"] == 2000
    assert s["memory"]["usage"]["failcnt"] == 4
    assert s["memory"]["swap"]["usage"] == 1500
    assert s["memory"]["cache"] == 88
    assert s["memory"]["raw"]["rss"] == 5
    assert s["pids"] == {"current": 5, "limit": 0}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 8192},
    ]
    assert s["hugetlb"]["2MB"] == {"usage": 2097152, "max": 4194304, "failcnt": 1}
    assert v1.oom_kill_count() == 3


def test_v1_freeze_and_thaw_write_freezer_state(v1: cgroups.Cgroup) -> None:
    v1.freeze()
    assert v1.is_frozen()
    v1.thaw()
    assert f(v1, "freezer", "freezer.state") == "THAWED"
    assert not v1.is_frozen()


# --- v2 controllers ---------------------------------------------------------------------


def test_v2_memory_limit_reservation_and_swap_is_total_minus_memory(v2: cgroups.Cgroup, rec: Recorder) -> None:
    v2.apply(Resources(memory=Memory(limit=100 << 20, reservation=50 << 20, swap=300 << 20)))
    assert f(v2, cgroups.UNIFIED, "memory.max") == str(100 << 20)
    assert f(v2, cgroups.UNIFIED, "memory.low") == str(50 << 20)
    assert f(v2, cgroups.UNIFIED, "memory.swap.max") == str(200 << 20)


def test_v2_unlimited_memory_and_swap_write_max(v2: cgroups.Cgroup) -> None:
    v2.apply(Resources(memory=Memory(limit=-1, swap=-1)))
    assert f(v2, cgroups.UNIFIED, "memory.max") == "max"
    assert f(v2, cgroups.UNIFIED, "memory.swap.max") == "max"


def test_v2_swap_update_uses_the_current_memory_limit(v2: cgroups.Cgroup) -> None:
    Path(v2.dirs[cgroups.UNIFIED], "memory.max").write_text(str(64 << 20))
    v2.apply(Resources(memory=Memory(swap=100 << 20)))
    assert f(v2, cgroups.UNIFIED, "memory.swap.max") == str(36 << 20)


def test_v2_swap_without_a_memory_limit_is_refused(v2: cgroups.Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: cannot set a swap limit without a memory limit"):
        v2.apply(Resources(memory=Memory(swap=100 << 20)))


def test_v2_swap_below_memory_is_refused(v2: cgroups.Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: memory\+swap"):
        v2.apply(Resources(memory=Memory(limit=200, swap=100)))


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_v2_cpu_weight_is_converted_from_shares_as_runc_does(v2: cgroups.Cgroup, shares: int, weight: int) -> None:
    assert convert.shares_to_weight(shares) == weight
    v2.apply(Resources(cpu=Cpu(shares=shares)))
    assert f(v2, cgroups.UNIFIED, "cpu.weight") == str(weight)


def test_v2_cpu_max_holds_quota_and_period(v2: cgroups.Cgroup) -> None:
    v2.apply(Resources(cpu=Cpu(quota=20000, period=50000)))
    assert f(v2, cgroups.UNIFIED, "cpu.max") == "20000 50000"
    v2.apply(Resources(cpu=Cpu(period=100000)))  # an update naming only the period keeps the quota
    assert f(v2, cgroups.UNIFIED, "cpu.max") == "20000 100000"
    v2.apply(Resources(cpu=Cpu(quota=-1)))
    assert f(v2, cgroups.UNIFIED, "cpu.max") == "max 100000"


def test_v2_cpu_burst_idle_cpuset_and_pids(v2: cgroups.Cgroup) -> None:
    v2.apply(Resources(cpu=Cpu(burst=5000, idle=1, cpus="1", mems="0"), pids=Pids(limit=-1)))
    assert f(v2, cgroups.UNIFIED, "cpu.max.burst") == "5000"
    assert f(v2, cgroups.UNIFIED, "cpu.idle") == "1"
    assert f(v2, cgroups.UNIFIED, "cpuset.cpus") == "1"
    assert f(v2, cgroups.UNIFIED, "cpuset.mems") == "0"
    assert f(v2, cgroups.UNIFIED, "pids.max") == "max"


def test_v2_realtime_cpu_limits_are_refused(v2: cgroups.Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.realtimeRuntime: real-time"):
        v2.apply(Resources(cpu=Cpu(realtime_runtime=1000)))


def test_v2_io_weight_is_converted_without_bfq(v2: cgroups.Cgroup, rec: Recorder) -> None:
    v2.apply(
        Resources(
            block_io=BlockIO(
                weight=500,
                weight_device=[WeightDevice(major=8, minor=0, weight=10)],
                throttle_read_bps_device=[ThrottleDevice(major=8, minor=0, rate=1 << 20)],
                throttle_write_bps_device=[ThrottleDevice(major=8, minor=0, rate=0)],
                throttle_read_iops_device=[ThrottleDevice(major=8, minor=0, rate=100)],
                throttle_write_iops_device=[ThrottleDevice(major=8, minor=0, rate=200)],
            )
        )
    )
    assert rec.to("rongqi/c1/io.weight") == [f"default {1 + 490 * 9999 // 990}", "8:0 1"]
    assert rec.to("rongqi/c1/io.max") == [f"8:0 rbps={1 << 20}", "8:0 wbps=max", "8:0 riops=100", "8:0 wiops=200"]


def test_v2_io_weight_goes_to_bfq_unconverted_when_bfq_is_there(v2: cgroups.Cgroup, rec: Recorder) -> None:
    Path(v2.dirs[cgroups.UNIFIED], "io.bfq.weight").write_text("default 100")
    v2.apply(Resources(block_io=BlockIO(weight=500, weight_device=[WeightDevice(major=8, minor=0, weight=20)])))
    assert rec.to("rongqi/c1/io.bfq.weight") == ["500", "8:0 20"]


def test_v2_hugetlb_and_rdma(v2: cgroups.Cgroup, rec: Recorder) -> None:
    v2.apply(Resources(hugepage_limits=[HugepageLimit(page_size="2MB", limit=2 << 20)], rdma={"mlx5_1": RdmaLimit(hca_objects=7)}))
    assert f(v2, cgroups.UNIFIED, "hugetlb.2MB.max") == str(2 << 20)
    assert f(v2, cgroups.UNIFIED, "hugetlb.2MB.rsvd.max") == str(2 << 20)
    assert f(v2, cgroups.UNIFIED, "rdma.max") == "mlx5_1 hca_object=7"


def test_v2_unified_keys_are_written_as_given(v2: cgroups.Cgroup) -> None:
    v2.apply(Resources(unified={"memory.high": "1000000", "cgroup.max.descendants": "10"}))
    assert f(v2, cgroups.UNIFIED, "memory.high") == "1000000"
    assert f(v2, cgroups.UNIFIED, "cgroup.max.descendants") == "10"


def test_v2_unified_key_of_a_disabled_controller_names_the_key(v2: cgroups.Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.unified\.misc\.max: the misc controller is not enabled"):
        v2.apply(Resources(unified={"misc.max": "res 1"}))


def test_v2_unified_key_without_a_file_names_the_key(v2: cgroups.Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.unified\.memory\.nosuch: no such cgroup v2 file"):
        v2.apply(Resources(unified={"memory.nosuch": "1"}))


def test_v2_controller_not_enabled_names_the_field_and_writes_nothing(v2: cgroups.Cgroup, rec: Recorder) -> None:
    Path(v2.dirs[cgroups.UNIFIED], "cgroup.controllers").write_text("cpu pids")
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory: the memory controller is not enabled"):
        v2.apply(Resources(memory=Memory(limit=1 << 20)))
    assert rec.writes == []


def test_v2_network_limits_are_refused(v2: cgroups.Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.network: net_cls and net_prio are cgroup v1"):
        v2.apply(Resources(network=Network(class_id=1)))


def test_v2_create_delegates_what_the_root_delegates_and_leaves_the_root_alone(tmp_path: Path, rec: Recorder) -> None:
    root = tmp_path / "cgroupfs"
    _populate(root, {"cgroup.controllers": "cpu memory pids io", "cgroup.subtree_control": "memory pids"})
    _populate(root / "rongqi", {"cgroup.controllers": "memory pids", "cgroup.subtree_control": ""})
    cg = cgroups.Cgroup.open(PATH, mode="v2", root=str(root))
    cg.create()
    assert (root / "rongqi" / "c1").is_dir()
    assert rec.writes == [("rongqi/cgroup.subtree_control", "+memory +pids")]


def test_v2_stats_follow_runc_shape(v2: cgroups.Cgroup) -> None:
    s = v2.stats()
    assert s["cpu"]["usage"] == {"total": 5000, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 2000, "user": 3000}
    assert s["cpu"]["throttling"] == {"periods": 4, "throttled_periods": 1, "throttled_time": 7000}
    assert s["memory"]["usage"] == {"usage": 4096, "max": 8192, "limit": (1 << 64) - 1, "failcnt": 6}
    assert s["memory"]["cache"] == 55
    assert s["pids"] == {"current": 3, "limit": 0}
    assert {"major": 8, "minor": 0, "op": "Read", "value": 4096} in s["blkio"]["ioServiceBytesRecursive"]
    assert {"major": 8, "minor": 0, "op": "Write", "value": 2} in s["blkio"]["ioServicedRecursive"]
    assert s["hugetlb"]["2MB"]["usage"] == 0
    assert v2.oom_kill_count() == 2


def test_v2_freeze_waits_for_the_frozen_event(v2: cgroups.Cgroup, monkeypatch: pytest.MonkeyPatch) -> None:
    events = Path(v2.dirs[cgroups.UNIFIED], "cgroup.events")
    reads = []
    real = v2mod.read_keyed  # files.read_keyed, which the freezer reads cgroup.events with

    def fake_read_keyed(d: str, name: str) -> dict:
        reads.append(name)
        if name == "cgroup.events" and len(reads) >= 3:
            events.write_text("populated 1\nfrozen 1\n")
        return real(d, name)

    from rongqi.linux.cgroups import freezer

    monkeypatch.setattr(freezer, "read_keyed", fake_read_keyed)
    v2.freeze()
    assert f(v2, cgroups.UNIFIED, "cgroup.freeze") == "1"
    assert reads.count("cgroup.events") >= 3
    v2.thaw()
    assert f(v2, cgroups.UNIFIED, "cgroup.freeze") == "0"


def test_kill_all_with_sigkill_uses_cgroup_kill_on_v2(v2: cgroups.Cgroup) -> None:
    v2.kill_all(9)
    assert f(v2, cgroups.UNIFIED, "cgroup.kill") == "1"


# --- cgroupsPath and mode detection ---------------------------------------------------

HYBRID_MOUNTINFO = """\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
V2_MOUNTINFO = "31 23 0:28 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
V1_MOUNTINFO = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"


@pytest.mark.parametrize("text,mode", [(HYBRID_MOUNTINFO, "hybrid"), (V2_MOUNTINFO, "v2"), (V1_MOUNTINFO, "v1")])
def test_mode_is_detected_from_mountinfo(text: str, mode: str) -> None:
    assert cgroups.detect_mode(text) == mode


def test_no_cgroup_mount_is_a_clear_error() -> None:
    with pytest.raises(RongqiError, match="no cgroup filesystem"):
        cgroups.detect_mode("25 30 0:23 / /sys rw - sysfs sysfs rw\n")


def test_missing_cgroups_path_is_rongqi_slash_id_not_relative_to_the_caller() -> None:
    assert cgroups.resolve_path(None, "abc") == "/rongqi/abc"
    assert cgroups.resolve_path("", "abc") == "/rongqi/abc"


def test_absolute_cgroups_path_is_used_as_given() -> None:
    assert cgroups.resolve_path("/a//b/./c/", "x") == "/a/b/c"


def test_relative_cgroups_path_is_under_the_callers_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "detect_mode", lambda: "v2")
    monkeypatch.setattr(cgroups, "current_cgroup", lambda h="": "/user.slice/session-1.scope")
    assert cgroups.resolve_path("ctr/x", "x") == "/user.slice/session-1.scope/ctr/x"


def test_dotdot_in_cgroups_path_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r'^linux\.cgroupsPath: "/a/\.\./b" must not contain "\.\."'):
        cgroups.resolve_path("/a/../b", "x")
    with pytest.raises(SpecError, match=r"^linux\.cgroupsPath"):
        cgroups.resolve_path("../escape", "x")


def test_systemd_cgroups_path_without_systemd_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "_systemd_booted", lambda: False)
    with pytest.raises(RongqiError, match=r"^linux\.cgroupsPath: .*systemd is not running as PID 1"):
        cgroups.resolve_path("system.slice:docker:abc", "abc", systemd=True)


def test_systemd_cgroups_path_expands_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "_systemd_booted", lambda: True)
    assert cgroups.resolve_path("machine-a.slice:libpod:abc", "abc", systemd=True) == "/machine.slice/machine-a.slice/libpod-abc.scope"
    assert cgroups.resolve_path(None, "abc", systemd=True) == "/system.slice/rongqi-abc.scope"
    with pytest.raises(SpecError, match=r"^linux\.cgroupsPath: .*slice:prefix:name"):
        cgroups.resolve_path("/plain/path", "abc", systemd=True)


def test_current_cgroup_reads_the_named_hierarchy() -> None:
    text = "4:memory:/process_api/x\n1:name=systemd:/user\n0::/\n"
    assert cgroups.current_cgroup("memory", text) == "/process_api/x"
    assert cgroups.current_cgroup("name=systemd", text) == "/user"
    assert cgroups.current_cgroup("", text) == "/"
