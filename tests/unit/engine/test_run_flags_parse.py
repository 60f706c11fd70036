"""cli/run_flags without root: podman's run/create flags -> ContainerOptions, and podman's
wording for bad values."""

from __future__ import annotations

import argparse

import pytest

from rongqi.cli.run_flags import (add_create_flags, options_from_args, parse_duration,
                                  parse_size)
from rongqi.engine.options import DeviceSpec, Healthcheck, IdMap, MountSpec, RestartPolicy, Ulimit
from rongqi.errors import RongqiError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise RongqiError(message)


def opts(*argv, environ=None, cwd="/work"):
    p = _Parser(prog="rongqi run")
    add_create_flags(p)
    return options_from_args(p.parse_args(list(argv)), environ=environ or {}, cwd=cwd)


def error(*argv, **kw) -> str:
    with pytest.raises(RongqiError) as e:
        opts(*argv, **kw)
    return str(e.value)


def test_image_and_command_keep_the_commands_own_flags():
    o = opts("--rm", "-e", "A=1", "busybox", "ls", "-l", "--rm")
    assert o.image == "busybox" and o.command == ["ls", "-l", "--rm"] and o.remove


def test_go_style_bool_flags():
    assert opts("--rm=true", "img").remove is True
    assert opts("--sig-proxy=false", "img").sig_proxy is False
    assert opts("--read-only-tmpfs=false", "img").read_only_tmpfs is False
    assert opts("--tls-verify=false", "img").tls_verify is False
    assert opts("-dit", "img").detach and opts("-dit", "img").tty


def test_h_is_hostname():
    assert opts("-h", "box", "img").hostname == "box"


def test_env_forms(tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\nFROM_FILE=1\nHOSTVAR\nA=file\n")
    o = opts("--env-file", str(f), "-e", "A=flag", "-e", "MISSING", "-e", "HOSTVAR", "-e", "X_*",
             "img", environ={"HOSTVAR": "h", "X_1": "a", "X_2": "b"})
    assert o.env == {"FROM_FILE": "1", "HOSTVAR": "h", "A": "flag", "X_1": "a", "X_2": "b"}
    assert error("-e", "=x", "img") == 'invalid environment variable: "=x"'
    assert error("--env-file", "/nonexist", "img") == \
        'parsing env file "/nonexist": open /nonexist: no such file or directory'


def test_entrypoint_string_json_and_empty():
    assert opts("--entrypoint", "/bin/sh", "img").entrypoint == ["/bin/sh"]
    assert opts("--entrypoint", '["/bin/sh", "-c"]', "img").entrypoint == ["/bin/sh", "-c"]
    assert opts("--entrypoint", "", "img").entrypoint == []
    assert opts("img").entrypoint is None


def test_volumes():
    o = opts("-v", "/data", "-v", "/h:/c:ro,z", "-v", "./rel:/r", "-v", "vol:/v:rw,nocopy",
             "-v", "/anon:ro", "img")
    assert o.mounts == [
        MountSpec("volume", "/data"),
        MountSpec("bind", "/c", "/h", readonly=True, options=["z"]),
        MountSpec("bind", "/r", "/work/rel"),
        MountSpec("volume", "/v", "vol", options=["nocopy"]),
        MountSpec("volume", "/anon", readonly=True),
    ]
    assert error("-v", "a:b", "img") == 'invalid container path "b", must be an absolute path'
    assert error("-v", "/tmp:/x:bogus", "img") == 'invalid option type "bogus"'
    assert error("-v", "/tmp:/x:ro,rw", "img") == \
        "invalid options \"ro, rw\", can only specify 1 'rw' or 'ro' option"
    assert error("-v", ":/x", "img") == "host directory cannot be empty"


def test_mount_and_tmpfs():
    o = opts("--mount", "type=bind,src=/h,dst=/c,ro,bind-propagation=rshared",
             "--mount", "type=volume,source=v,target=/v,readonly=false",
             "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1777",
             "--tmpfs", "/run/x:size=2m,noexec", "img")
    assert o.mounts == [
        MountSpec("bind", "/c", "/h", readonly=True, options=["rshared"]),
        MountSpec("volume", "/v", "v"),
        MountSpec("tmpfs", "/t", options=[f"size={1 << 20}", "mode=1777"]),
        MountSpec("tmpfs", "/run/x", options=["size=2m", "noexec"]),
    ]
    assert error("--mount", "type=foo,dst=/x", "img") == 'invalid filesystem type "foo"'
    assert error("--mount", "type=bind,src=/tmp", "img") == "must set volume destination"
    assert error("--mount", "type=bind,src=/tmp,dst=/x,foo=1", "img") == "foo: invalid mount option"
    assert error("--mount", "dst=/x", "img").startswith("incorrect mount format")
    assert error("--tmpfs", "rel", "img") == 'invalid container path "rel", must be an absolute path'


def test_sizes_and_resources():
    assert parse_size("64m") == 64 << 20 and parse_size("1.5g") == 3 << 29 and parse_size("10MiB") == 10 << 20
    o = opts("-m", "64m", "--memory-swap", "-1", "--memory-reservation", "32m", "--cpus", "0.5",
             "-c", "512", "--cpuset-cpus", "0-1", "--pids-limit", "50", "--shm-size", "1g",
             "--ulimit", "nofile=100:200", "--ulimit", "nproc=10", "img")
    assert (o.memory, o.memory_swap, o.memory_reservation) == (64 << 20, -1, 32 << 20)
    assert (o.cpus, o.cpu_shares, o.cpuset_cpus, o.pids_limit, o.shm_size) == (0.5, 512, "0-1", 50, 1 << 30)
    assert o.ulimits == [Ulimit("nofile", 100, 200), Ulimit("nproc", 10, 10)]
    assert error("--memory", "10x", "img") == "invalid value for memory: invalid size: '10x'"
    assert error("--cpus", "abc", "img") == \
        'invalid argument "abc" for "--cpus" flag: strconv.ParseFloat: parsing "abc": invalid syntax'
    assert error("--shm-size", "1q", "img") == "unable to translate --shm-size: invalid size: '1q'"
    assert error("--ulimit", "foo=1", "img") == \
        'ulimit option "foo=1" requires name=SOFT:HARD, failed to be parsed: invalid ulimit type: foo'
    assert error("--ulimit", "nofile=5:2", "img").endswith(
        "ulimit soft limit must be less than or equal to hard limit: 5 > 2")


def test_security_flags(tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text("{}")
    o = opts("--cap-add", "net_admin,sys_time", "--cap-drop", "ALL", "--privileged",
             "--security-opt", f"seccomp={prof}", "--security-opt", "no-new-privileges",
             "--security-opt", "label=disable", "--security-opt", "mask=/a:/b",
             "--security-opt", "unmask=ALL", "--device", "/dev/null:/dev/n:r",
             "--device", "/dev/zero", "img")
    assert o.cap_add == ["net_admin", "sys_time"] and o.cap_drop == ["ALL"] and o.privileged
    assert o.seccomp_profile == str(prof) and o.no_new_privileges and o.label_disable
    assert o.mask == ["/a", "/b"] and o.unmask == ["ALL"]
    assert o.devices == [DeviceSpec("/dev/null", "/dev/n", "r"), DeviceSpec("/dev/zero", "/dev/zero")]
    assert error("--cap-add", "foo", "img") == '"CAP_FOO": unknown capability'
    assert error("--security-opt", "bogus", "img") == 'invalid --security-opt 1: "bogus"'
    assert error("--security-opt", "seccomp=/nonexist", "img") == \
        "opening seccomp profile failed: open /nonexist: no such file or directory"
    assert error("--device", "/dev/null:/dev/x:q", "img") == "invalid device mode: q"


def test_userns_and_maps():
    o = opts("--uidmap", "0:100000:65536", "--gidmap", "0:200000:1000", "img")
    assert o.uidmap == [IdMap(0, 100000, 65536)] and o.gidmap == [IdMap(0, 200000, 1000)]
    assert opts("--userns", "keep-id", "img").userns == "keep-id"
    assert opts("--userns", "auto:size=2000", "img").userns == "auto:size=2000"
    assert error("--userns", "bogus", "img") == "unrecognized namespace mode bogus passed"
    assert error("--uidmap", "0:1", "img") == \
        'initializing ID mappings: UID setting is malformed expected ["uint32:uint32:uint32"]: ["0:1"]'


def test_lifecycle_flags(tmp_path):
    lf = tmp_path / "labels"
    lf.write_text("a=file\nb=2\n")
    o = opts("--restart", "on-failure:3", "--stop-signal", "SIGINT", "--stop-timeout", "5",
             "--label-file", str(lf), "-l", "a=flag", "--annotation", "k=v",
             "--health-cmd", "true", "--health-interval", "1m30s", "--health-retries", "5",
             "--health-timeout", "2s", "--health-start-period", "500ms", "img")
    assert o.restart == RestartPolicy("on-failure", 3)
    assert (o.stop_signal, o.stop_timeout) == ("SIGINT", 5)
    assert o.labels == {"a": "flag", "b": "2"} and o.annotations == {"k": "v"}
    assert o.healthcheck == Healthcheck(["CMD-SHELL", "true"], 90.0, 2.0, 5, 0.5)
    assert opts("--health-cmd", '["CMD", "x"]', "img").healthcheck.test == ["CMD", "x"]
    assert error("--restart", "bogus", "img") == \
        'running container create option: "bogus" is not a valid restart policy: invalid argument'
    assert error("--restart", "always:3", "img") == \
        "restart policy retries can only be specified with on-failure restart policy"
    assert error("--rm", "--restart", "always", "img").startswith("the --rm option conflicts with --restart")
    assert error("--stop-signal", "FOO", "img") == "invalid signal: FOO"
    assert error("--health-cmd", "true", "--health-interval", "xyz", "img") == \
        'invalid healthcheck-interval: time: invalid duration "xyz"'
    assert error("--label-file", "/nope", "img") == \
        "unable to process labels: open /nope: no such file or directory"
    assert parse_duration("1h2m3s") == 3723.0


def test_log_pull_network_flags():
    o = opts("--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=3",
             "--pull", "never", "--network", "host", "--dns", "1.1.1.1", "--dns-search", "x.y",
             "--dns-option", "ndots:1", "--add-host", "db:10.0.0.1", "-p", "8080:80/tcp", "-P",
             "--ip", "10.0.0.5", "--mac-address", "02:42:ac:11:00:02", "--sysctl", "net.ipv4.ip_forward=1",
             "--oom-score-adj", "-500", "img")
    assert o.log_driver == "json-file" and o.log_opts == {"max-size": "1m", "max-file": "3"}
    assert (o.pull, o.network, o.dns, o.dns_search, o.dns_option) == \
        ("never", "host", ["1.1.1.1"], ["x.y"], ["ndots:1"])
    # podman discards the ports of a host-network container (and says so on stderr)
    assert o.add_host == ["db:10.0.0.1"] and o.publish == [] and not o.publish_all
    o = opts("-p", "8080:80/tcp", "-P", "img")
    assert o.publish == ["8080:80/tcp"] and o.publish_all
    o = opts("--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=3",
             "--pull", "never", "--network", "host", "--dns", "1.1.1.1", "--dns-search", "x.y",
             "--dns-option", "ndots:1", "--add-host", "db:10.0.0.1",
             "--ip", "10.0.0.5", "--mac-address", "02:42:ac:11:00:02", "--sysctl", "net.ipv4.ip_forward=1",
             "--oom-score-adj", "-500", "img")
    assert o.sysctls == {"net.ipv4.ip_forward": "1"} and o.oom_score_adj == -500
    assert error("--log-driver", "foo", "img") == \
        "running container create option: invalid log driver: invalid argument"
    assert error("--pull", "foo", "img") == 'unsupported pull policy "foo"'
    assert error("--add-host", "bad", "img") == 'bad format for add-host: "bad"'
    assert error("--add-host", "a:bad", "img") == 'invalid IP address in add-host: "bad"'
    assert error("--dns", "bad", "img") == "bad is not an ip address"
    assert error("--ip", "bad", "img") == '"bad" is not an ip address'
    assert error("--mac-address", "x", "img") == "address x: invalid MAC address"
    assert error("-p", "99999:80", "img") == \
        "parsing host port: port numbers must be between 1 and 65535 (inclusive), got 99999"
    assert error("--sysctl", "net.x", "img") == \
        "net.x is invalid, sysctl values must be in the form of KEY=VALUE"
