"""rongqi.serve.translate without a server: Docker's create bodies as ContainerOptions (and the
400s Docker gives), the ps STATUS words, Go's file modes, top's and diff's JSON, and the
docker-py keywords of rongqi.api going through the same mapping."""

from __future__ import annotations

import base64
import json

import pytest

from rongqi.serve import translate as t
from rongqi.serve.translate import InvalidParameter


def create(**body):
    body.setdefault("Image", "busybox")
    return t.create_options(body)[0]


def test_config_fields_reach_the_options():
    o = create(Cmd=["sh", "-c", "echo hi"], Entrypoint=None, Env=["A=1", "B=", "UNSET"],
               Labels={"k": "v"}, WorkingDir="/srv", User="1000:1000", Tty=True,
               OpenStdin=True, Hostname="h", Domainname="example.org",
               ExposedPorts={"80/tcp": {}, "53/udp": {}}, Volumes={"/data": {}},
               StopSignal="SIGINT", StopTimeout=3, MacAddress="02:42:ac:11:00:02")
    assert o.command == ["sh", "-c", "echo hi"] and o.entrypoint is None
    assert o.env == {"A": "1", "B": ""}          # a bare name unsets in Docker: nothing here
    assert o.labels == {"k": "v"} and o.workdir == "/srv" and o.user == "1000:1000"
    assert o.tty and o.interactive and o.hostname == "h" and o.domainname == "example.org"
    assert sorted(o.expose) == ["53/udp", "80/tcp"]
    assert [(m.kind, m.destination, m.source) for m in o.mounts] == [("volume", "/data", "")]
    assert o.stop_signal == "SIGINT" and o.stop_timeout == 3
    assert o.mac_address == "02:42:ac:11:00:02"
    assert o.detach and o.pull == "missing"      # busybox is the engine's built-in image


def test_a_string_command_is_one_word_and_an_empty_entrypoint_is_none():
    o = create(Cmd="echo hi", Entrypoint=[""])
    assert o.command == ["echo hi"] and o.entrypoint == []
    assert create(Entrypoint="").entrypoint == []
    assert create(Image="example.org/app:1").pull == "never"   # missing: the 404 the CLI pulls on


def test_host_config_resources_and_security():
    o = create(HostConfig={
        "Memory": 64 << 20, "MemorySwap": 128 << 20, "MemoryReservation": 32 << 20,
        "NanoCpus": 500_000_000, "CpuShares": 512, "CpusetCpus": "0", "PidsLimit": 50,
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"], "Privileged": False,
        "ReadonlyRootfs": True, "SecurityOpt": ["no-new-privileges:true", "label=disable",
                                                "seccomp=unconfined", "apparmor=unconfined"],
        "GroupAdd": ["audio"], "Init": True, "ShmSize": 1 << 26,
        "Sysctls": {"net.ipv4.ip_forward": "1"}, "OomScoreAdj": 100,
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                     "CgroupPermissions": "rw"}],
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
    assert (o.memory, o.memory_swap, o.memory_reservation) == (64 << 20, 128 << 20, 32 << 20)
    assert o.cpus == 0.5 and o.cpu_shares == 512 and o.cpuset_cpus == "0"
    assert o.pids_limit == 50
    assert [(u.name, u.soft, u.hard) for u in o.ulimits] == [("nofile", 1024, 2048)]
    assert o.cap_add == ["NET_ADMIN"] and o.cap_drop == ["ALL"] and o.read_only
    assert o.no_new_privileges and o.label_disable and o.seccomp_profile == "unconfined"
    assert o.group_add == ["audio"] and o.init and o.shm_size == 1 << 26
    assert o.sysctls == {"net.ipv4.ip_forward": "1"} and o.oom_score_adj == 100
    assert [(d.host_path, d.container_path, d.permissions) for d in o.devices] == [
        ("/dev/null", "/dev/mynull", "rw")]
    assert o.log_driver == "json-file" and o.log_opts == {"max-size": "10m"}
    assert (o.restart.name, o.restart.max_retries) == ("on-failure", 2)


def test_the_default_log_driver_is_dockers_json_file_here_and_the_engines_in_the_api():
    from rongqi import api
    assert create().log_driver == "json-file"
    assert create(HostConfig={"LogConfig": {"Type": "", "Config": {}}}).log_driver == "json-file"
    assert api.options("busybox").log_driver == "k8s-file"


def test_cpu_quota_over_period_is_cpus_and_zero_pids_limit_is_unlimited():
    o = create(HostConfig={"CpuQuota": 150_000, "CpuPeriod": 100_000, "PidsLimit": 0})
    assert o.cpus == 1.5 and o.pids_limit is None
    assert create(HostConfig={"PidsLimit": -1}).pids_limit is None


def test_mounts_binds_and_tmpfs(tmp_path):
    o = create(HostConfig={
        "Binds": [f"{tmp_path}:/mnt:ro,rshared", "data:/data", "cache:/c:nocopy"],
        "Mounts": [{"Type": "bind", "Source": str(tmp_path), "Target": "/b", "ReadOnly": True,
                    "BindOptions": {"Propagation": "rslave"}},
                   {"Type": "volume", "Source": "v1", "Target": "/v",
                    "VolumeOptions": {"NoCopy": True}},
                   {"Type": "tmpfs", "Target": "/scratch",
                    "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}],
        "Tmpfs": {"/run": "rw,noexec,size=64m"}})
    got = [(m.kind, m.destination, m.source, m.readonly, m.options) for m in o.mounts]
    assert got == [("bind", "/mnt", str(tmp_path), True, ["rshared"]),
                   ("volume", "/data", "data", False, []),
                   ("volume", "/c", "cache", False, ["nocopy"]),
                   ("bind", "/b", str(tmp_path), True, ["rslave"]),
                   ("volume", "/v", "v1", False, ["nocopy"]),
                   ("tmpfs", "/scratch", "", False, ["size=1048576", "mode=1777"]),
                   ("tmpfs", "/run", "", False, ["noexec", "size=64m"])]


def test_port_bindings_become_publish_values():
    o = create(HostConfig={"PortBindings": {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "81"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}], "443": None,
        "8443/tcp": [{"HostIp": "::1", "HostPort": ""}]}, "PublishAllPorts": True})
    assert o.publish == ["8080:80/tcp", "127.0.0.1:81:80/tcp", "53/udp", "443/tcp",
                         "[::1]::8443/tcp"]
    assert o.publish_all


def test_network_modes_and_endpoints():
    assert create(HostConfig={"NetworkMode": "default"}).network == ""
    assert create(HostConfig={"NetworkMode": "bridge"}).network == "bridge"
    assert create(HostConfig={"NetworkMode": "host"}).network == "host"
    assert create(HostConfig={"NetworkMode": "none"}).network == "none"
    assert create(NetworkDisabled=True).network == "none"
    assert create(HostConfig={"NetworkMode": "container:abc"}).network == "container:abc"
    o = create(HostConfig={"NetworkMode": "appnet"}, NetworkingConfig={"EndpointsConfig": {
        "appnet": {"Aliases": ["web", "www"], "IPAMConfig": {"IPv4Address": "10.89.0.5"}},
        "other": {}}})
    assert o.network == "appnet,other" and o.network_aliases == ["web", "www"]
    assert o.ip == "10.89.0.5"


def test_healthcheck_durations_are_nanoseconds():
    o = create(Healthcheck={"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000,
                            "Timeout": 1_000_000_000, "Retries": 5, "StartPeriod": 0})
    hc = o.healthcheck
    assert (hc.test, hc.interval, hc.timeout, hc.retries) == (["CMD-SHELL", "true"], 2, 1, 5)
    o = create(Healthcheck={"Test": ["NONE"]})
    assert o.healthcheck is None and o.no_healthcheck
    assert create(Healthcheck={"Test": []}).healthcheck is None   # the image's


@pytest.mark.parametrize("body, message", [
    ({"HostConfig": {"Memory": 1024}}, "Minimum memory limit allowed is 6MB"),
    ({"HostConfig": {"MemorySwap": 1 << 30}},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"HostConfig": {"Memory": 1 << 30, "MemorySwap": 1 << 29}},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"HostConfig": {"NanoCpus": 10**9, "CpuQuota": 50000}},
     "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"HostConfig": {"NanoCpus": 10**12}}, "Range of CPUs is from 0.01 to"),
    ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "invalid restart policy 'sometimes'"),
    ({"HostConfig": {"RestartPolicy": {"Name": "always"}, "AutoRemove": True}},
     "can't create 'AutoRemove' container with restart policy"),
    ({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}},
     "maximum retry count cannot be used with restart policy 'always'"),
    ({"HostConfig": {"PidMode": "host"}}, 'PidMode "host" is not supported'),
    ({"HostConfig": {"IpcMode": "host"}}, 'IpcMode "host" is not supported'),
    ({"HostConfig": {"UTSMode": "host"}}, 'UTSMode "host" is not supported'),
    ({"HostConfig": {"BlkioWeight": 300}}, "HostConfig.BlkioWeight is not supported"),
    ({"HostConfig": {"Binds": ["/only"]}}, "invalid volume specification: '/only'"),
    ({"HostConfig": {"Binds": ["/a:rel"]}}, "mount path must be absolute"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/no/such/dir", "Target": "/x"}]}},
     'invalid mount config for type "bind": bind source path does not exist: /no/such/dir'),
    ({"HostConfig": {"LogConfig": {"Type": "syslog"}}},
     "no log driver named 'syslog' is registered"),
    ({"HostConfig": {"CapAdd": ["NOT_A_CAP"]}}, 'invalid capability: "NOT_A_CAP"'),
    ({"HostConfig": {"Runtime": "kata"}}, "Unknown runtime specified kata"),
    ({"HostConfig": {"Binds": ["/a:/x", "/b:/x"]}}, "Duplicate mount point: /x"),
    ({"WorkingDir": "rel"}, "the working directory 'rel' is invalid, it needs to be an "
                            "absolute path"),
    ({"StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"Image": ""}, "No command specified"),
    ({"Cmd": 3}, "cannot unmarshal int"),
    ({"HostConfig": {"PortBindings": {"http/tcp": []}}}, "invalid containerPort: http"),
])
def test_what_docker_refuses_is_a_400_in_its_words(body, message):
    body = dict(body)
    body.setdefault("Image", "busybox")
    with pytest.raises(InvalidParameter) as ei:
        t.create_options(body)
    assert message in str(ei.value)


def test_container_name_is_checked_as_docker_does():
    assert t.create_options({"Image": "busybox"}, "/web")[0].name == "web"
    with pytest.raises(InvalidParameter, match=r"Invalid container name \(-x\)"):
        t.create_options({"Image": "busybox"}, "-x")


def test_what_is_discarded_is_a_warning():
    o, warnings = t.create_options({"Image": "busybox", "HostConfig": {
        "OomKillDisable": True, "MemorySwappiness": 10, "KernelMemory": 1 << 26}})
    assert len(warnings) == 3
    assert any("OomKillDisable discarded" in w for w in warnings)


def test_human_duration_is_go_units():
    h = t.human_duration
    assert [h(0.2), h(1), h(3), h(59), h(61), h(600), h(3600), h(7200), h(3 * 86400),
            h(20 * 86400), h(90 * 86400), h(3 * 365 * 86400)] == [
        "Less than a second", "1 second", "3 seconds", "59 seconds", "About a minute",
        "10 minutes", "About an hour", "2 hours", "3 days", "2 weeks", "3 months", "3 years"]


class _Rec:
    def __init__(self, status, state, config=None):
        self.status = status
        self.state = state
        self.config = config or {}


def test_status_text_as_docker_ps_prints_it():
    from rongqi.engine.records import now
    import time as _t
    started = now()
    at = _t.time() + 3
    assert t.status_text(_Rec("running", {"started_at": started}), at) == "Up 3 seconds"
    assert t.status_text(_Rec("paused", {"started_at": started}), at) == "Up 3 seconds (Paused)"
    assert t.status_text(_Rec("exited", {"finished_at": started, "exit_code": 137}), at) == \
        "Exited (137) 3 seconds ago"
    assert t.status_text(_Rec("created", {}), at) == "Created"
    hc = {"healthcheck": {"test": ["CMD", "true"]}}
    assert t.status_text(_Rec("running", {"started_at": started, "health": {
        "status": "healthy"}}, hc), at) == "Up 3 seconds (healthy)"
    assert t.status_text(_Rec("running", {"started_at": started}, hc), at) == \
        "Up 3 seconds (health: starting)"


def test_path_stat_is_gos_file_mode_in_base64_json():
    import stat
    st = t.path_stat("d", stat.S_IFDIR | 0o755, 4096, 0)
    assert st["mode"] == (1 << 31) | 0o755 and st["mtime"].startswith("1970-01-01T00:00:00")
    assert t.file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert t.file_mode(stat.S_IFREG | 0o4755) == (1 << 23) | 0o755
    assert json.loads(base64.b64decode(t.path_stat_header(st))) == st


def test_top_json_keeps_the_commands_spaces():
    text = "PID   USER     TIME  COMMAND\n    1 root      0:00 sleep 600\n"
    assert t.top_json(text) == {"Titles": ["PID", "USER", "TIME", "COMMAND"],
                                "Processes": [["1", "root", "0:00", "sleep 600"]]}
    table = [["USER", "PID", "COMMAND"], ["root", "1", "sleep 600"]]
    assert t.top_json(table) == {"Titles": ["USER", "PID", "COMMAND"],
                                 "Processes": [["root", "1", "sleep 600"]]}


def test_changes_json_kinds():
    from rongqi.engine.changes import Change
    got = t.changes_json([Change("C", "/tmp"), Change("A", "/tmp/x"), Change("D", "/etc/y")])
    assert got == [{"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/x", "Kind": 1},
                   {"Path": "/etc/y", "Kind": 2}]


def test_docker_py_keywords_go_through_the_same_mapping(tmp_path, monkeypatch):
    from rongqi import api
    from rongqi.errors import APIError
    monkeypatch.chdir(tmp_path)
    o = api.options("busybox", "echo hi", environment={"X": "y"}, ports={"80/tcp": 8080,
                    2222: ("127.0.0.1", 22), "53/udp": None},
                    volumes={"./rel": {"bind": "/r", "mode": "ro"}, "data": {"bind": "/d"}},
                    mem_limit="64m", nano_cpus=10**9, healthcheck={"test": "true",
                                                                 "interval": 10**9},
                    restart_policy={"Name": "always"}, tmpfs=["/run:size=1m"],
                    ulimits=[{"Name": "nofile", "Soft": 10, "Hard": 20}],
                    devices=["/dev/null:/dev/n:r"], extra_hosts={"h": "10.0.0.1"})
    assert o.command == ["echo", "hi"] and o.env == {"X": "y"}
    assert o.publish == ["8080:80/tcp", "127.0.0.1:22:2222/tcp", "53/udp"]
    assert [(m.kind, m.source, m.destination, m.readonly) for m in o.mounts] == [
        ("bind", str(tmp_path / "rel"), "/r", True), ("volume", "data", "/d", False),
        ("tmpfs", "", "/run", False)]
    assert o.memory == 64 << 20 and o.cpus == 1.0 and o.healthcheck.interval == 1.0
    assert o.restart.name == "always" and o.ulimits[0].hard == 20
    assert o.devices[0].permissions == "r" and o.add_host == ["h:10.0.0.1"]
    assert o.pull == "missing"
    with pytest.raises(APIError, match="invalid --security-opt"):
        api.options("busybox", security_opt=["bogus"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        api.options("busybox", nope=1)
