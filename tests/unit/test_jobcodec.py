"""rongqi.oci.jobcodec: the helper's job round-trips through marshal, identity and cycles kept."""

from __future__ import annotations

from rongqi.oci import jobcodec
from rongqi.oci.creation import _InitJob, _InitStateJson
from rongqi.oci.init import InitConfig, Sync
from rongqi.oci.spec import parse
from rongqi.linux import syscall as sysc
from rongqi.oci import statedir as statemod


def _spec():
    return parse({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                  "process": {"args": ["sh", "-c", "true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                              "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
                  "hostname": "h", "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
                  "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "network"}],
                            "sysctl": {"net.ipv4.ip_forward": "1"}, "maskedPaths": ["/proc/kcore"]}}, "/b")


def test_an_init_job_round_trips_with_its_cycle_and_bound_methods():
    c = InitConfig()
    c.spec = _spec()
    c.sync = Sync(5, 6)
    c.late_joins = [("net", "/proc/1/ns/net")]
    c.cgroup_dirs = {"memory": "/sys/fs/cgroup/memory/x"}
    st = statemod.State("/run/x", "cid")
    c.state_json = _InitStateJson(st, c)  # c -> state_json -> c
    job = _InitJob(sysc.SYSCALLS, c, True)
    data = jobcodec.dumps(([3, 4], ("rongqi.oci.init",), job.prepare, job.main))
    assert data[:1] == b"M"  # marshal, not the pickle fallback
    cloexec, modules, prepare, main = jobcodec.loads(data)
    assert cloexec == [3, 4] and modules == ("rongqi.oci.init",)
    assert prepare.__self__ is main.__self__  # one job, shared
    c2 = main.__self__.c
    assert c2.state_json.c is c2 and c2.state_json.st.id == "cid"
    assert (c2.sync.rfd, c2.sync.wfd) == (5, 6) and c2.late_joins == [("net", "/proc/1/ns/net")]
    assert c2.spec.hostname == "h" and c2.spec.linux.sysctl == {"net.ipv4.ip_forward": "1"}
    assert c2.spec.process.rlimits[0].soft == 1024 and c2.spec.mounts[0].destination == "/proc"
    assert isinstance(main.__self__.sc, sysc.Syscalls) and main.__self__.new_time is True


class _Local:
    pass


def test_a_value_the_codec_does_not_know_goes_through_pickle():
    data = jobcodec.dumps({"when": complex(1, 2), "b": b"x"})
    assert data[:1] == b"P" and jobcodec.loads(data) == {"when": complex(1, 2), "b": b"x"}
    assert jobcodec.loads(jobcodec.dumps({1, 2, frozenset({3})})) == {1, 2, frozenset({3})}
