"""engine.bundle without root: image config + ContainerOptions -> config.json, users from the
image's files, hosts/resolv.conf, mounts and volumes, resources, security, namespaces."""

from __future__ import annotations

import os

import pytest

from rongqi.engine import bundle as b
from rongqi.engine.bundle import BundleError, BundleInput, build
from rongqi.engine.options import (ContainerOptions, DeviceSpec, Healthcheck, IdMap, MountSpec,
                                   Ulimit)
from rongqi.engine.volumes import VolumeStore

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
web:x:1000:1000:Web:/home/web:/bin/sh
"""
GROUP = """root:x:0:
wheel:x:10:web
staff:x:50:other,web
web:x:1000:
"""


@pytest.fixture
def env(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text(PASSWD)
    (rootfs / "etc" / "group").write_text(GROUP)
    (rootfs / "data").mkdir()
    (rootfs / "data" / "seed.txt").write_text("from the image\n")
    os.chmod(rootfs / "data", 0o750)
    store = VolumeStore(str(tmp_path / "root"))

    def make(opts: ContainerOptions | None = None, config: dict | None = None, **kw) -> b.BundleOutput:
        inp = BundleInput(container_id="ab" * 32, name="web1", opts=opts or ContainerOptions(image="img"),
                          image_config={"config": config if config is not None else {"Cmd": ["sh"]}},
                          rootfs=str(rootfs), userdata=str(tmp_path / "userdata"), volumes=store, **kw)
        return build(inp)
    make.rootfs = rootfs
    make.store = store
    make.userdata = tmp_path / "userdata"
    make.tmp = tmp_path
    return make


def mounts_by_dest(spec):
    return {m["destination"]: m for m in spec["mounts"]}


def test_image_entrypoint_and_cmd_make_the_command(env):
    out = env(config={"Entrypoint": ["/bin/ep"], "Cmd": ["a", "b"]})
    assert out.command == ["/bin/ep", "a", "b"]
    assert out.spec["process"]["args"] == ["/bin/ep", "a", "b"]


def test_user_command_replaces_cmd_but_keeps_entrypoint(env):
    out = env(ContainerOptions(image="i", command=["x"]), config={"Entrypoint": ["/ep"], "Cmd": ["a"]})
    assert out.command == ["/ep", "x"]


def test_user_entrypoint_drops_the_image_cmd_and_empty_clears(env):
    out = env(ContainerOptions(image="i", entrypoint=["/bin/true"]), config={"Entrypoint": ["/ep"], "Cmd": ["a"]})
    assert out.command == ["/bin/true"]
    out = env(ContainerOptions(image="i", entrypoint=[], command=["echo"]), config={"Entrypoint": ["/ep"]})
    assert out.command == ["echo"]


def test_no_command_at_all_is_podmans_error(env):
    with pytest.raises(BundleError, match="no command or entrypoint provided"):
        env(config={})


def test_env_merges_image_then_user_with_podmans_defaults(env):
    out = env(ContainerOptions(image="i", env={"A": "user", "B": "2"}),
              config={"Cmd": ["sh"], "Env": ["A=image", "PATH=/img/bin", "C=3"]})
    e = dict(x.split("=", 1) for x in out.spec["process"]["env"])
    assert e["A"] == "user" and e["B"] == "2" and e["C"] == "3"
    assert e["PATH"] == "/img/bin"
    assert e["TERM"] == "xterm" and e["container"] == "rongqi"
    assert e["HOSTNAME"] == "ab" * 6 == out.spec["hostname"]
    assert e["HOME"] == "/root"


def test_user_by_name_gets_uid_gid_home_and_groups_listing_it(env):
    out = env(ContainerOptions(image="i", user="web"))
    u = out.spec["process"]["user"]
    assert (u["uid"], u["gid"]) == (1000, 1000)
    assert u["additionalGids"] == [1000, 10, 50]
    assert "HOME=/home/web" in out.spec["process"]["env"]
    # A non-root user keeps only the bounding set, as under podman.
    caps = out.spec["process"]["capabilities"]
    assert "CAP_CHOWN" in caps["bounding"] and "effective" not in caps


def test_image_user_is_the_default_and_numeric_ids_need_no_entry(env):
    out = env(config={"Cmd": ["sh"], "User": "daemon"})
    assert out.spec["process"]["user"]["uid"] == 1 and out.opts.user == "daemon"
    out = env(ContainerOptions(image="i", user="4321:99"))
    assert out.spec["process"]["user"] == {"uid": 4321, "gid": 99, "umask": 0o022}
    assert "HOME=/" in out.spec["process"]["env"]


def test_group_add_by_name_and_number(env):
    out = env(ContainerOptions(image="i", user="0:staff", group_add=["wheel", "77"]))
    u = out.spec["process"]["user"]
    assert u["gid"] == 50 and u["additionalGids"] == [50, 10, 77]


@pytest.mark.parametrize("user,message", [
    ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
    ("0:nogrp", "unable to find group nogrp: no matching entries in group file"),
])
def test_unknown_user_or_group_is_podmans_error(env, user, message):
    with pytest.raises(BundleError) as e:
        env(ContainerOptions(image="i", user=user))
    assert str(e.value) == message
    assert not os.path.exists(env.userdata / "hosts")


def test_passwd_symlink_out_of_the_root_is_resolved_inside_it(env, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    os.unlink(env.rootfs / "etc" / "passwd")
    os.symlink(f"../../../../../../{outside}/passwd", env.rootfs / "etc" / "passwd")
    with pytest.raises(BundleError, match="unable to find user evil"):
        env(ContainerOptions(image="i", user="evil"))


def test_workdir_from_image_or_flag_created_inside_the_root(env):
    os.symlink("/", env.rootfs / "escape")
    out = env(ContainerOptions(image="i", workdir="/escape/new/dir"))
    assert out.spec["process"]["cwd"] == "/escape/new/dir"
    assert (env.rootfs / "new" / "dir").is_dir()
    out = env(config={"Cmd": ["sh"], "WorkingDir": "/srv"})
    assert out.spec["process"]["cwd"] == "/srv" and (env.rootfs / "srv").is_dir()


def test_hosts_hostname_resolv_conf_written_and_bound(env, monkeypatch):
    real_read = b._read_host
    monkeypatch.setattr(b, "_read_host", lambda p: "nameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                        "search example.com\n" if p == "/etc/resolv.conf" else real_read(p))
    out = env(ContainerOptions(image="i", hostname="box", add_host=["db:10.1.2.3"]))
    m = mounts_by_dest(out.spec)
    for dest, name in (("/etc/hosts", "hosts"), ("/etc/hostname", "hostname"),
                       ("/etc/resolv.conf", "resolv.conf")):
        assert m[dest]["source"] == str(env.userdata / name)
        assert m[dest]["type"] == "bind"
    hosts = (env.userdata / "hosts").read_text()
    assert hosts.startswith("10.1.2.3\tdb\n")
    assert "127.0.0.1\tbox web1" in hosts
    assert (env.userdata / "hostname").read_text() == "box\n"
    resolv = (env.userdata / "resolv.conf").read_text()
    assert "127.0.0.53" not in resolv and "nameserver 10.0.0.2" in resolv
    assert "search example.com" in resolv


def test_network_flags_a_network_of_its_own_needs(env):
    with pytest.raises(BundleError, match="^conflicting options: dns and the network mode: none$"):
        env(ContainerOptions(image="i", network="none", dns=["1.1.1.1"]))
    with pytest.raises(BundleError, match="^--ip can only be set when the network mode is bridge"):
        env(ContainerOptions(image="i", network="none", ip="10.0.0.2"))
    out = env(ContainerOptions(image="i", network="none", publish=["80:80"]))
    assert out.warnings == ["Port mappings have been discarded as one of the Host, Container, "
                            "Pod, and None network modes are in use"]
    out = env(ContainerOptions(image="i", network="host", dns=["192.0.2.1"]))
    assert (env.userdata / "resolv.conf").read_text() .splitlines()[-1] == "nameserver 192.0.2.1"


def test_dns_flags_replace_the_hosts_resolvers():
    o = ContainerOptions(image="i", dns=["1.1.1.1"], dns_search=["a.b"], dns_option=["ndots:2"])
    text = b.resolv_conf(o, "nameserver 10.0.0.1\nsearch x.y\noptions rotate\n")
    assert text == "search a.b\nnameserver 1.1.1.1\noptions ndots:2\n"


def test_defaults_match_podman(env):
    out = env()
    spec = out.spec
    m = mounts_by_dest(spec)
    for d in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"):
        assert d in m
    assert "ro" in m["/sys"]["options"]
    from rongqi.oci.profile import DEFAULT_CAPABILITIES
    assert spec["process"]["capabilities"]["effective"] == DEFAULT_CAPABILITIES
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert spec["linux"]["resources"]["pids"] == {"limit": 2048}
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    types = [n["type"] for n in spec["linux"]["namespaces"]]
    assert {"pid", "ipc", "uts", "mount", "network"} <= set(types) and "user" not in types
    assert spec["linux"]["sysctl"] == {"net.ipv4.ping_group_range": "0 0"}
    assert spec["root"] == {"path": str(env.rootfs), "readonly": False}
    assert {r["type"] for r in spec["process"]["rlimits"]} == {"RLIMIT_NOFILE", "RLIMIT_NPROC"}


def test_bind_mounts_and_options(env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    out = env(ContainerOptions(image="i", mounts=[
        MountSpec("bind", "/mnt/a", str(src), readonly=True, options=["z"]),
        MountSpec("bind", "/mnt/b", str(src), options=["rshared", "noexec"])]))
    m = mounts_by_dest(out.spec)
    assert m["/mnt/a"]["source"] == str(src) and "ro" in m["/mnt/a"]["options"]
    assert "rbind" in m["/mnt/a"]["options"] and "z" not in m["/mnt/a"]["options"]
    assert "rshared" in m["/mnt/b"]["options"] and "rprivate" not in m["/mnt/b"]["options"]
    assert [x["Destination"] for x in out.mounts] == ["/mnt/a", "/mnt/b"]
    assert out.mounts[0]["RW"] is False and out.mounts[1]["RW"] is True


def test_missing_bind_source_is_podmans_error_and_nothing_is_made(env):
    with pytest.raises(BundleError) as e:
        env(ContainerOptions(image="i", mounts=[MountSpec("volume", "/v", "early"),
                                                MountSpec("bind", "/x", "/nonexistent/path")]))
    assert str(e.value) == "statfs /nonexistent/path: no such file or directory"
    assert env.store.list() == []
    assert not os.path.exists(env.userdata / "hosts")


def test_duplicate_destination_refused(env):
    with pytest.raises(BundleError, match="/x: duplicate mount destination"):
        env(ContainerOptions(image="i", mounts=[MountSpec("tmpfs", "/x"), MountSpec("volume", "/x/")]))


def test_named_volume_created_and_copied_up_from_the_image_once(env):
    out = env(ContainerOptions(image="i", mounts=[MountSpec("volume", "/data", "vol1")]))
    assert out.named_volumes == ["vol1"] and out.anonymous_volumes == []
    vol = env.store.get("vol1")
    assert open(os.path.join(vol.mountpoint, "seed.txt")).read() == "from the image\n"
    assert os.stat(vol.mountpoint).st_mode & 0o777 == 0o750
    assert mounts_by_dest(out.spec)["/data"]["source"] == vol.mountpoint
    assert out.mounts[0]["Name"] == "vol1" and out.mounts[0]["Type"] == "volume"
    # Copy-up happens once: a file the first container removed stays removed.
    os.unlink(os.path.join(vol.mountpoint, "seed.txt"))
    env(ContainerOptions(image="i", mounts=[MountSpec("volume", "/data", "vol1")]))
    assert os.listdir(vol.mountpoint) == []


def test_anonymous_volumes_from_flags_and_image_volumes(env):
    out = env(ContainerOptions(image="i", mounts=[MountSpec("volume", "/scratch")]),
              config={"Cmd": ["sh"], "Volumes": {"/data": {}, "/scratch": {}}})
    assert len(out.anonymous_volumes) == 2 and out.named_volumes == out.anonymous_volumes
    for name in out.anonymous_volumes:
        assert len(name) == 64 and env.store.get(name).anonymous
    data = next(m for m in out.mounts if m["Destination"] == "/data")
    assert os.listdir(env.store.get(data["Name"]).mountpoint) == ["seed.txt"]


def test_tmpfs_volume_options_become_the_mount(env):
    env.store.create("tv", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    out = env(ContainerOptions(image="i", mounts=[MountSpec("volume", "/t", "tv")]))
    m = mounts_by_dest(out.spec)["/t"]
    assert m["type"] == "tmpfs" and "size=1m" in m["options"]


def test_tmpfs_and_read_only_with_its_tmpfs_dirs(env):
    out = env(ContainerOptions(image="i", read_only=True,
                               mounts=[MountSpec("tmpfs", "/cache", options=["size=1m", "mode=700"])]))
    m = mounts_by_dest(out.spec)
    assert out.spec["root"]["readonly"] is True
    assert m["/cache"]["type"] == "tmpfs" and "size=1m" in m["/cache"]["options"]
    for d in ("/tmp", "/var/tmp", "/run"):
        assert m[d]["type"] == "tmpfs"
    assert "ro" in m["/etc/hosts"]["options"]
    out = env(ContainerOptions(image="i", read_only=True, read_only_tmpfs=False))
    assert "/tmp" not in mounts_by_dest(out.spec)


def test_resources(env):
    out = env(ContainerOptions(image="i", memory=64 << 20, memory_swap=128 << 20,
                               memory_reservation=32 << 20, cpus=1.5, cpu_shares=512,
                               cpuset_cpus="0", cpuset_mems="0", pids_limit=100,
                               ulimits=[Ulimit("nofile", 100, 200)]))
    r = out.spec["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20}
    assert r["cpu"] == {"quota": 150000, "period": 100000, "shares": 512, "cpus": "0", "mems": "0"}
    assert r["pids"] == {"limit": 100}
    assert {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100} in out.spec["process"]["rlimits"]
    out = env(ContainerOptions(image="i", pids_limit=-1))
    assert "pids" not in out.spec["linux"]["resources"]
    import resource
    out = env(ContainerOptions(image="i", ulimits=[Ulimit("host", -1, -1)]))
    stack = next(r for r in out.spec["process"]["rlimits"] if r["type"] == "RLIMIT_STACK")
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    assert stack["soft"] == (2**64 - 1 if soft == resource.RLIM_INFINITY else soft)


@pytest.mark.parametrize("kw,message", [
    ({"memory_swap": 1 << 20}, "you should always set a memory limit when using a memoryswap limit"),
    ({"memory": 10 << 20, "memory_swap": 5 << 20}, "minimum memoryswap limit should be larger"),
])
def test_memory_swap_rules(env, kw, message):
    with pytest.raises(BundleError, match=message):
        env(ContainerOptions(image="i", **kw))


def test_privileged(env):
    out = env(ContainerOptions(image="i", privileged=True))
    spec = out.spec
    from rongqi.engine.bundle import _own_bounding_set
    from rongqi.linux.caps import CAPABILITIES
    # all of them this process can give (this host's root lacks CAP_SYS_RESOURCE)
    assert spec["process"]["capabilities"]["bounding"] == [
        c for c in CAPABILITIES if c in _own_bounding_set(CAPABILITIES)]
    assert "seccomp" not in spec["linux"] and "maskedPaths" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in mounts_by_dest(spec)["/sys"]["options"]
    assert any(d["path"] == "/dev/null" for d in spec["linux"]["devices"])


def test_cap_add_drop_and_all(env):
    caps = env(ContainerOptions(image="i", cap_add=["sys_admin"], cap_drop=["CAP_CHOWN", "net_raw"])).spec[
        "process"]["capabilities"]["effective"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_NET_RAW" not in caps
    caps = env(ContainerOptions(image="i", cap_drop=["all"], cap_add=["kill"])).spec["process"][
        "capabilities"]
    assert caps["bounding"] == ["CAP_KILL"]
    with pytest.raises(BundleError, match='"CAP_FOO": unknown capability'):
        env(ContainerOptions(image="i", cap_add=["foo"]))


def test_cap_add_for_a_non_root_user_goes_to_the_ambient_set(env):
    caps = env(ContainerOptions(image="i", user="web", cap_add=["NET_ADMIN"])).spec["process"]["capabilities"]
    assert caps["ambient"] == ["CAP_NET_ADMIN"] == caps["effective"]


def test_security_opts(env, tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64",'
                    ' "subArchitectures": ["SCMP_ARCH_X86"]}], "syscalls": [{"names": ["mkdir"],'
                    ' "action": "SCMP_ACT_ERRNO"}, {"names": ["reboot"], "action": "SCMP_ACT_ALLOW",'
                    ' "includes": {"caps": ["CAP_SYS_BOOT"]}}]}')
    out = env(ContainerOptions(image="i", seccomp_profile=str(prof), no_new_privileges=True,
                               mask=["/secret"], unmask=["/proc/kcore", "/proc/sys"]))
    lin = out.spec["linux"]
    assert lin["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"
    assert [r["names"] for r in lin["seccomp"]["syscalls"]] == [["mkdir"]]
    assert out.spec["process"]["noNewPrivileges"] is True
    assert "/secret" in lin["maskedPaths"] and "/proc/kcore" not in lin["maskedPaths"]
    assert "/proc/sys" not in lin["readonlyPaths"]
    out = env(ContainerOptions(image="i", seccomp_profile="unconfined", unmask=["ALL"]))
    assert "seccomp" not in out.spec["linux"] and out.spec["linux"]["maskedPaths"] == []
    with pytest.raises(BundleError, match="opening seccomp profile failed: open /nope"):
        env(ContainerOptions(image="i", seccomp_profile="/nope"))


def test_devices_with_cgroup_rules(env):
    out = env(ContainerOptions(image="i", devices=[DeviceSpec("/dev/null", "/dev/mynull", "r")]))
    d = out.spec["linux"]["devices"]
    assert d == [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                  "fileMode": d[0]["fileMode"], "uid": 0, "gid": 0}]
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"} in \
        out.spec["linux"]["resources"]["devices"]
    with pytest.raises(BundleError, match="stat /dev/nope: no such file or directory"):
        env(ContainerOptions(image="i", devices=[DeviceSpec("/dev/nope", "/dev/nope")]))


def test_uidmap_makes_a_user_namespace_and_shifts_the_snapshots_owners(env, monkeypatch):
    chowned = {}
    monkeypatch.setattr(os, "geteuid", lambda: 0)   # a root engine's namespace, without root
    monkeypatch.setattr(os, "chown", lambda p, u, g, **k: chowned.__setitem__(str(p), (u, g)))
    monkeypatch.setattr(os, "lchown", lambda p, u, g: chowned.__setitem__(str(p), (u, g)))
    out = env(ContainerOptions(image="i", uidmap=[IdMap(0, 100000, 65536)]))
    lin = out.spec["linux"]
    assert {"type": "user"} in lin["namespaces"]
    assert lin["uidMappings"] == lin["gidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    st = os.lstat(env.rootfs / "etc" / "passwd")
    assert chowned[str(env.rootfs / "etc" / "passwd")] == (100000 + st.st_uid, 100000 + st.st_gid)
    assert chowned[str(env.userdata / "hosts")] == (100000, 100000)


def test_keep_id_as_root_is_podmans_error_and_rootless_maps_the_user(env, monkeypatch, tmp_path):
    with pytest.raises(BundleError, match="keep-id is only supported in rootless mode"):
        env(ContainerOptions(image="i", userns="keep-id"))
    sub = tmp_path / "subid"
    sub.write_text(f"{os.geteuid()}:200000:65536\n")
    monkeypatch.setattr(b, "SUBUID", str(sub))
    monkeypatch.setattr(b, "SUBGID", str(sub))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    sub.write_text("1000:200000:65536\n")
    monkeypatch.setattr(os, "chown", lambda *a, **k: None)
    out = env(ContainerOptions(image="i", userns="keep-id"), rootless=True)
    assert out.spec["linux"]["uidMappings"] == [
        {"containerID": 0, "hostID": 200000, "size": 1000},
        {"containerID": 1000, "hostID": 1000, "size": 1},
        {"containerID": 1001, "hostID": 201000, "size": 64536}]
    assert out.spec["process"]["user"]["uid"] == 1000
    assert "HOME=/home/web" in out.spec["process"]["env"]


def test_userns_auto_takes_a_free_block_of_the_containers_ranges(env, monkeypatch, tmp_path):
    sub = tmp_path / "subuid"
    monkeypatch.setattr(b, "SUBUID", str(sub))
    with pytest.raises(BundleError, match='cannot find mappings for user "containers"'):
        env(ContainerOptions(image="i", userns="auto"))
    sub.write_text("containers:300000:5000\n")
    monkeypatch.setattr(os, "chown", lambda *a, **k: None)
    monkeypatch.setattr(os, "lchown", lambda *a, **k: None)

    class C:
        id = "other"
        config = {"options": {"uidmap": [{"container_id": 0, "host_id": 300000, "size": 2000}]}}

    class E:
        def list(self, all=False):
            return [C()]
    out = env(ContainerOptions(image="i", userns="auto"), engine=E())
    assert out.spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 302000, "size": 1024}]
    with pytest.raises(BundleError, match="could not find enough available IDs"):
        env(ContainerOptions(image="i", userns="auto:size=4000"), engine=E())


def test_network_modes(env):
    out = env(ContainerOptions(image="i", network="host"))
    assert "network" not in [n["type"] for n in out.spec["linux"]["namespaces"]]
    assert out.spec["hostname"] == os.uname().nodename

    class C:
        id = "c1"
        state = {"pid": 4242, "status": "running"}

    class E:
        def get(self, ref):
            return C()
    out = env(ContainerOptions(image="i", network="container:peer"), engine=E())
    assert {"type": "network", "path": "/proc/4242/ns/net"} in out.spec["linux"]["namespaces"]
    from rongqi.engine.networks import NoSuchNetwork
    with pytest.raises(NoSuchNetwork, match="unable to find network with name or ID mynet"):
        env(ContainerOptions(image="i", network="mynet"))
    # bridge (the default as root): a netns rongqi makes at start, at a path fixed now
    out = env(ContainerOptions(image="i"))
    (net,) = [n for n in out.spec["linux"]["namespaces"] if n["type"] == "network"]
    assert net["path"].startswith("/run/netns/rongqi-")


def test_sysctls_oom_shm(env):
    out = env(ContainerOptions(image="i", sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"},
                               oom_score_adj=100, shm_size=1 << 20))
    assert out.spec["linux"]["sysctl"]["net.ipv4.ip_forward"] == "1"
    assert out.spec["process"]["oomScoreAdj"] == 100
    assert "size=1024k" in mounts_by_dest(out.spec)["/dev/shm"]["options"]
    with pytest.raises(BundleError, match="sysctl 'kernel.domainname' is not allowed"):
        env(ContainerOptions(image="i", sysctls={"kernel.domainname": "x"}))


def test_image_stop_signal_healthcheck_labels_ports(env):
    cfg = {"Cmd": ["sh"], "StopSignal": "SIGQUIT", "Labels": {"a": "1", "b": "2"},
           "ExposedPorts": {"80/tcp": {}},
           "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}}
    out = env(ContainerOptions(image="i", labels={"b": "user"}), config=cfg)
    assert out.opts.stop_signal == "SIGQUIT"
    assert out.spec["annotations"]["org.opencontainers.image.stopSignal"] == "3"
    assert out.opts.labels == {"a": "1", "b": "user"}
    assert out.opts.healthcheck == Healthcheck(test=["CMD-SHELL", "true"], interval=5.0, retries=2)
    assert env(ContainerOptions(image="i", no_healthcheck=True), config=cfg).opts.healthcheck is None
    assert env(ContainerOptions(image="i", healthcheck=Healthcheck(test=["NONE"])),
               config=cfg).opts.healthcheck is None
    with pytest.raises(BundleError, match="invalid signal: FOO"):
        env(ContainerOptions(image="i", stop_signal="FOO"))


def test_init_binds_a_static_init_as_pid_1(env, tmp_path):
    init = tmp_path / "init"
    init.write_text("")
    out = env(ContainerOptions(image="i", init=True, init_path=str(init), command=["sleep", "1"]))
    assert out.spec["process"]["args"] == ["/run/rongqi-init", "--", "sleep", "1"]
    assert out.command == ["sleep", "1"]
    assert mounts_by_dest(out.spec)["/run/rongqi-init"]["source"] == str(init)
    with pytest.raises(BundleError, match="container-init binary not found on the host: stat /nope"):
        env(ContainerOptions(image="i", init=True, init_path="/nope"))


def test_rootless_default_namespace_maps_root_to_the_user_then_their_subids(env, monkeypatch, tmp_path):
    sub = tmp_path / "subid"
    sub.write_text("1000:100000:65536\n")
    monkeypatch.setattr(b, "SUBUID", str(sub))
    monkeypatch.setattr(b, "SUBGID", str(sub))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    monkeypatch.setattr(os, "chown", lambda *a, **k: None)
    out = env(ContainerOptions(image="i", memory=64 << 20), rootless=True)
    lin = out.spec["linux"]
    assert lin["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1},
                                  {"containerID": 1, "hostID": 100000, "size": 65536}]
    assert "devices" not in lin.get("resources", {})   # device rules need the host's root
    assert mounts_by_dest(out.spec)["/sys"]["type"] == "bind"
    # --uidmap of a rootless user names ids of their own namespace: 0 is the user.
    out = env(ContainerOptions(image="i", uidmap=[IdMap(0, 1, 1000), IdMap(1000, 0, 1)]), rootless=True)
    assert out.spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 1000},
                                                {"containerID": 1000, "hostID": 1000, "size": 1}]


def test_a_fifo_or_device_as_the_images_passwd_is_not_read(env):
    os.unlink(env.rootfs / "etc" / "passwd")
    os.mkfifo(env.rootfs / "etc" / "passwd")   # open() of it would block for ever
    with pytest.raises(BundleError, match="unable to find user web"):
        env(ContainerOptions(image="i", user="web"))
    assert env(ContainerOptions(image="i", user="0")).spec["process"]["user"]["uid"] == 0


def test_a_uid_the_image_does_not_know_gets_podmans_entries(env):
    env(ContainerOptions(image="i", user="4321:99"))
    assert (env.rootfs / "etc" / "passwd").read_text().splitlines()[-1] == \
        "4321:*:4321:99:container user:/:/bin/sh"
    assert (env.rootfs / "etc" / "group").read_text().splitlines()[-1] == "99:x:99:4321"
    before = (env.rootfs / "etc" / "passwd").read_text()
    env(ContainerOptions(image="i", user="web"))            # known: nothing added
    assert (env.rootfs / "etc" / "passwd").read_text() == before
    out = env(ContainerOptions(image="i", user="777", read_only=True))
    m = mounts_by_dest(out.spec)["/etc/passwd"]
    assert m["source"] == str(env.userdata / "passwd") and "ro" in m["options"]
    assert (env.userdata / "passwd").read_text().endswith("777:*:777:0:container user:/:/bin/sh\n")
    assert "777:" not in (env.rootfs / "etc" / "passwd").read_text()
