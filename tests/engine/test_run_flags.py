"""run/create flags with real containers (the built-in busybox) through the `rongqi` CLI: what
each flag makes visible inside the container, and podman's one Error line for bad values."""

from __future__ import annotations

import json
import os
import re

import pytest

from support.engine_cli import Rongqi, rongqi  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real containers)")


def run(rongqi: Rongqi, *args: str, check: bool = True):
    return rongqi("run", "--rm", *args, check=check)


def out(rongqi: Rongqi, *args: str) -> str:
    return run(rongqi, *args).stdout


def one_error(p, pattern: str, code: int = 125) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code, p.stdout + p.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), p.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def nothing_left(rongqi: Rongqi) -> None:
    assert rongqi.ids() == [] and rongqi.names() == [] and rongqi.snapshots() == []
    assert rongqi.mounts() == []


# -- process ------------------------------------------------------------------------------------
def test_user_by_name_and_group_add_from_the_images_files(rongqi):
    assert out(rongqi, "-u", "nobody", "busybox", "id") == \
        "uid=65534(nobody) gid=65534(nogroup)\n"
    assert out(rongqi, "-u", "nobody", "--group-add", "tty", "busybox", "id") == \
        "uid=65534(nobody) gid=65534(nogroup) groups=5(tty),65534(nogroup)\n"
    # A uid the image does not know gets podman's "container user" entry.
    assert out(rongqi, "-u", "1234:5", "busybox", "id").startswith("uid=1234(1234) gid=5(tty)")
    assert out(rongqi, "--read-only", "-u", "4242", "busybox", "whoami") == "4242\n"


def test_unknown_user_is_one_error_and_nothing_is_left(rongqi):
    p = run(rongqi, "-u", "nosuch", "busybox", "true", check=False)
    one_error(p, r"^Error: unable to find user nosuch: no matching entries in passwd file$")
    nothing_left(rongqi)


def test_env_env_file_and_the_defaults(rongqi, tmp_path):
    f = tmp_path / "env"
    f.write_text("# a comment\nFROM_FILE=1\nFROM_HOST\nBOTH=file\n")
    rongqi.env["FROM_HOST"] = "h"
    text = out(rongqi, "--env-file", str(f), "-e", "BOTH=flag", "-e", "UNSET_HERE", "busybox",
               "env")
    env = dict(line.split("=", 1) for line in text.splitlines())
    assert env["FROM_FILE"] == "1" and env["FROM_HOST"] == "h" and env["BOTH"] == "flag"
    assert "UNSET_HERE" not in env
    assert env["container"] == "rongqi" and env["TERM"] == "xterm" and env["HOME"] == "/root"
    assert env["PATH"].startswith("/usr/local/sbin")


def test_workdir_is_created_and_entrypoint_replaces_the_images(rongqi):
    assert out(rongqi, "-w", "/new/dir", "busybox", "pwd") == "/new/dir\n"
    assert out(rongqi, "--entrypoint", '["/bin/echo", "a"]', "busybox", "b") == "a b\n"
    assert out(rongqi, "--entrypoint", "/bin/echo", "busybox") == "\n"


def test_hostname_hosts_and_resolv_conf(rongqi):
    text = out(rongqi, "-h", "box", "--name", "named", "--add-host", "db:10.1.2.3", "busybox",
               "sh", "-c", "hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf")
    lines = text.splitlines()
    assert lines[:2] == ["box", "box"]
    # The default bridge network: the container's names on its address (docs/networks.md).
    ip = next(ln.split("\t")[0] for ln in lines if ln.endswith("\tbox named"))
    assert "10.1.2.3\tdb" in lines and ip.startswith("10.87.")
    assert not any(ln.startswith("nameserver 127.") for ln in lines)  # loopback: not reachable
    # dns flags need a network of the container's own or the host's (podman's rule).
    text = out(rongqi, "--network", "host", "--dns", "192.0.2.53", "--dns-search", "example.com",
               "busybox", "cat", "/etc/resolv.conf")
    assert text.splitlines() == ["search example.com", "nameserver 192.0.2.53"]
    p = run(rongqi, "--network", "none", "--dns", "192.0.2.53", "busybox", "true", check=False)
    one_error(p, r"^Error: conflicting options: dns and the network mode: none$")
    nothing_left(rongqi)


# -- storage ------------------------------------------------------------------------------------
def test_read_only_root_with_its_tmpfs_dirs(rongqi):
    text = out(rongqi, "--read-only", "busybox", "sh", "-c",
               "touch /x 2>&1; touch /tmp/t /var/tmp/t /run/t && echo writable")
    assert "Read-only file system" in text and "writable" in text
    text = out(rongqi, "--read-only", "--read-only-tmpfs=false", "busybox", "sh", "-c",
               "touch /tmp/t 2>&1 || true")
    assert "Read-only file system" in text


def test_tmpfs_with_options(rongqi):
    text = out(rongqi, "--tmpfs", "/scratch:size=1m,mode=1777", "busybox", "sh", "-c",
               "stat -c %a /scratch; df -k /scratch | tail -1")
    mode, df = text.splitlines()
    assert mode == "1777" and df.split()[1] == "1024"


def test_bind_mount_ro_and_rw(rongqi, tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    (d / "in").write_text("from the host\n")
    text = out(rongqi, "-v", f"{d}:/mnt:ro", "busybox", "sh", "-c",
               "cat /mnt/in; touch /mnt/x 2>&1 || true")
    assert text.startswith("from the host\n") and "Read-only file system" in text
    run(rongqi, "--mount", f"type=bind,src={d},dst=/mnt", "busybox", "sh", "-c",
        "echo back > /mnt/out")
    assert (d / "out").read_text() == "back\n"


def test_bind_source_that_does_not_exist_is_one_error_and_nothing_is_left(rongqi):
    p = run(rongqi, "-v", "/nonexistent/src:/x", "busybox", "true", check=False)
    one_error(p, r"^Error: statfs /nonexistent/src: no such file or directory$")
    nothing_left(rongqi)
    assert rongqi("volume", "ls", "-q").stdout == ""


# -- resources ------------------------------------------------------------------------------------
def _cgroup_file(v1: str, v2: str) -> str:
    return f"cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}"


def test_memory_limit_is_visible_in_the_containers_cgroup(rongqi):
    text = out(rongqi, "-m", "64m", "busybox", "sh", "-c",
               _cgroup_file("memory/memory.limit_in_bytes", "memory.max"))
    assert text == f"{64 << 20}\n"


def test_cpus_and_pids_limit(rongqi):
    text = out(rongqi, "--cpus", "0.5", "--pids-limit", "10", "busybox", "sh", "-c",
               _cgroup_file("cpu/cpu.cfs_quota_us", "cpu.max") + ";"
               + _cgroup_file("pids/pids.max", "pids.max"))
    cpu, pids = text.splitlines()
    assert cpu.split()[0] == "50000" and pids == "10"


def test_memory_reservation_cpu_shares_z_label_stop_signal_timeout_and_start_period(
        rongqi, tmp_path):
    text = out(rongqi, "--memory-reservation", "32m", "--cpu-shares", "512", "busybox", "sh",
               "-c", _cgroup_file("memory/memory.soft_limit_in_bytes", "memory.low") + ";"
               + _cgroup_file("cpu/cpu.shares", "cpu.weight"))
    low, shares = text.splitlines()
    assert low == str(32 << 20) and shares in ("512", "20")  # v2: the weight of 512 shares
    # :Z and label=disable are accepted (no SELinux here), silently as podman 4.3.1 does
    # (podman's 075-exec "exec/run - missing output" compares run's 2>&1 with the file)
    d = tmp_path / "labelled"
    d.mkdir()
    p = run(rongqi, "-v", f"{d}:/mnt:Z", "--security-opt", "label=disable", "busybox", "sh",
            "-c", "echo ok > /mnt/f")
    assert p.stderr == "" and (d / "f").read_text() == "ok\n"
    rongqi("run", "-d", "--name", "stops", "--stop-signal", "SIGUSR1", "--stop-timeout", "5",
           "--health-cmd", "true", "--health-start-period", "1m30s", "--annotation", "team=a",
           "busybox", "sh", "-c",
           "trap 'echo got usr1; exit 3' USR1; while :; do sleep 0.1; done")
    doc = json.loads(rongqi("inspect", "stops").stdout)[0]
    assert doc["Config"]["StopSignal"] == 10 and doc["Config"]["StopTimeout"] == 5
    assert doc["Config"]["Annotations"]["team"] == "a"
    assert doc["Config"]["Healthcheck"]["StartPeriod"] == 90 * 10**9
    rongqi("stop", "stops")  # SIGUSR1, which the trap turns into exit 3 (not the timeout's KILL)
    assert rongqi("inspect", "-f", "{{.State.ExitCode}}", "stops").stdout == "3\n"
    assert "got usr1" in rongqi("logs", "stops").stdout


def test_ulimits(rongqi):
    assert out(rongqi, "--ulimit", "nofile=100:200", "busybox", "sh", "-c",
               "ulimit -n; ulimit -Hn") == "100\n200\n"
    # -1 is unlimited (the spec's uint64 maximum); host is this process's own limits.
    assert out(rongqi, "--ulimit", "core=-1", "busybox", "sh", "-c", "ulimit -Hc") == \
        "unlimited\n"
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert out(rongqi, "--ulimit", "host", "busybox", "sh", "-c", "ulimit -n") == f"{soft}\n"


def test_bad_values_are_podmans_errors(rongqi):
    one_error(run(rongqi, "--memory", "10x", "busybox", "true", check=False),
              r"^Error: invalid value for memory: invalid size: '10x'$")
    one_error(run(rongqi, "--ulimit", "nofile=5:2", "busybox", "true", check=False),
              r"ulimit soft limit must be less than or equal to hard limit: 5 > 2$")
    one_error(run(rongqi, "--cap-add", "foo", "busybox", "true", check=False),
              r'^Error: "CAP_FOO": unknown capability$')
    nothing_left(rongqi)


# -- security -------------------------------------------------------------------------------------
def _caps(text: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", text, re.M)}


def test_capabilities_default_add_drop_and_privileged(rongqi):
    from rongqi.linux.caps import CAPABILITIES, mask
    from rongqi.oci.profile import DEFAULT_CAPABILITIES
    caps = _caps(out(rongqi, "busybox", "cat", "/proc/self/status"))
    assert caps["CapEff"] == mask(DEFAULT_CAPABILITIES)
    caps = _caps(out(rongqi, "--cap-drop", "all", "--cap-add", "net_admin", "busybox", "cat",
                     "/proc/self/status"))
    assert caps["CapEff"] == caps["CapBnd"] == 1 << CAPABILITIES["CAP_NET_ADMIN"]
    caps = _caps(out(rongqi, "--privileged", "busybox", "cat", "/proc/self/status"))
    assert caps["CapEff"] & (1 << CAPABILITIES["CAP_SYS_ADMIN"])


def test_privileged_has_rw_sys_and_no_masked_paths(rongqi):
    text = out(rongqi, "--privileged", "busybox", "sh", "-c",
               "grep ' /sys ' /proc/self/mounts; head -c1 /proc/timer_list | wc -c")
    assert " rw," in text.splitlines()[0] and text.splitlines()[1].strip() == "1"
    text = out(rongqi, "busybox", "sh", "-c", "head -c1 /proc/timer_list | wc -c")
    assert text.strip() == "0"


def test_device_with_its_cgroup_rule(rongqi):
    text = out(rongqi, "--device", "/dev/null:/dev/mynull:rw", "busybox", "sh", "-c",
               "ls -l /dev/mynull; echo x > /dev/mynull && echo written")
    assert text.startswith("crw") and "1,   3" in text and "written" in text
    # cpu_dma_latency is none of the devices every container gets: its rule is the flag's.
    text = out(rongqi, "--device", "/dev/cpu_dma_latency:/dev/k:r", "busybox", "sh", "-c",
               ": < /dev/k && echo opened; (echo x > /dev/k) 2>&1 || echo refused")
    assert text.splitlines()[0] == "opened" and text.splitlines()[-1] == "refused"
    assert "Operation not permitted" in text
    p = run(rongqi, "--device", "/dev/nope", "busybox", "true", check=False)
    one_error(p, r"^Error: stat /dev/nope: no such file or directory$")
    nothing_left(rongqi)


def test_security_opts(rongqi, tmp_path):
    prof = tmp_path / "seccomp.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", '
                    '"mkdirat"], "action": "SCMP_ACT_ERRNO"}]}')
    text = out(rongqi, "--security-opt", f"seccomp={prof}", "busybox", "sh", "-c",
               "mkdir /d 2>&1 || true")
    assert "Operation not permitted" in text
    text = out(rongqi, "--security-opt", "no-new-privileges", "--security-opt", "mask=/etc/hostname",
               "busybox", "sh", "-c", "grep NoNewPrivs /proc/self/status; cat /etc/hostname | wc -c")
    assert text.splitlines()[0].split() == ["NoNewPrivs:", "1"] and text.splitlines()[1] == "0"
    text = out(rongqi, "--security-opt", "unmask=/proc/timer_list", "busybox", "sh", "-c",
               "head -c1 /proc/timer_list | wc -c")
    assert text.strip() == "1"


def test_userns_with_uidmap_and_keep_id_as_root(rongqi):
    text = out(rongqi, "--uidmap", "0:300000:65536", "busybox", "sh", "-c",
               "cat /proc/self/uid_map; id -u; touch /x && stat -c %u /x /etc/passwd")
    lines = [ln.split() for ln in text.splitlines()]
    assert lines[0] == ["0", "300000", "65536"]
    assert lines[1:] == [["0"], ["0"], ["0"]]
    p = run(rongqi, "--userns", "keep-id", "busybox", "true", check=False)
    one_error(p, r"^Error: keep-id is only supported in rootless mode$")
    nothing_left(rongqi)


def test_sysctl_and_oom_score_adj(rongqi):
    text = out(rongqi, "--sysctl", "net.ipv4.ip_forward=1", "--oom-score-adj", "200", "busybox",
               "sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj")
    assert text == "1\n200\n"


# -- namespaces and init ----------------------------------------------------------------------------
def test_network_none_host_and_container(rongqi):
    assert out(rongqi, "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net") == "lo\n"
    assert out(rongqi, "busybox", "ls", "/sys/class/net") == "eth0\nlo\n"  # the default bridge
    # The host's own network namespace (its identity, not its links: other tests on this
    # machine add and remove links at any moment).
    assert out(rongqi, "--network", "host", "busybox", "readlink", "/proc/self/ns/net").strip() \
        == os.readlink("/proc/self/ns/net")
    rongqi("run", "-d", "--name", "peer", "busybox", "sleep", "60")
    pid = rongqi.inspect("peer")["State"]["Pid"]
    peer_ns = os.readlink(f"/proc/{pid}/ns/net")
    assert out(rongqi, "--network", "container:peer", "busybox", "readlink",
               "/proc/self/ns/net").strip() == peer_ns
    rongqi("rm", "-f", "-t", "0", "peer")


def test_init_is_pid_1_and_reaps(rongqi):
    text = out(rongqi, "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert text.startswith("/run/rongqi-init -- sh -c")


# -- the image's config ---------------------------------------------------------------------------
@pytest.fixture
def configured_image(rongqi: Rongqi, tmp_path) -> str:
    """busybox plus a layer with /srv/seed, and a config that sets every field run honours."""
    from rongqi.image.archive import add_layer_file, create_image, layer_from_dir
    from rongqi.image.busybox import make_rootfs
    from rongqi.image.store import ImageStore
    store = ImageStore(rongqi.root)
    layers = []
    base = tmp_path / "base"
    base.mkdir()
    make_rootfs(str(base))
    extra = tmp_path / "extra"
    (extra / "srv").mkdir(parents=True)
    (extra / "srv" / "seed").write_text("seeded\n")
    for d in (base, extra):
        tar = tmp_path / f"{d.name}.tar.gz"
        with open(tar, "wb") as f:
            layer_from_dir(str(d), f)
        with open(tar, "rb") as f:
            layers.append(add_layer_file(store, f))
    name = "localhost/configured:latest"
    create_image(store, layers, name, config={
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["id -un; pwd; echo $GREETING; ls /srv"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "GREETING=hello"],
        "User": "nobody", "WorkingDir": "/work", "Volumes": {"/srv": {}},
        "StopSignal": "SIGQUIT", "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.example.role": "test"},
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                        "Retries": 2}})
    return name


def test_the_images_config_is_honoured(rongqi, configured_image):
    text = out(rongqi, "--pull", "never", configured_image)
    assert text == "nobody\n/work\nhello\nseed\n"   # /srv an anonymous volume, copied up
    cid = rongqi("create", "--pull", "never", configured_image).stdout.strip()
    info = rongqi.inspect(cid)
    cfg = info["Config"]
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/work"
    assert cfg["StopSignal"] in ("SIGQUIT", 3, "3")
    assert cfg["Labels"]["org.example.role"] == "test"
    assert "GREETING=hello" in cfg["Env"]
    assert [m["Destination"] for m in info["Mounts"]] == ["/srv"]
    assert info["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    # The user's flags win over the image's.
    assert out(rongqi, "--pull", "never", "-u", "root", "-w", "/", "-e", "GREETING=bye",
               configured_image) == "root\n/\nbye\nseed\n"


# -- rootless: --userns keep-id -------------------------------------------------------------------
@pytest.fixture
def ordinary_user(tmp_path):
    """A throw-away user with subordinate ids, and a home it owns (pytest's dirs are 0700)."""
    import pwd
    import shutil
    import subprocess
    import tempfile

    from support.delegation import remove_user
    from support.plugin import SESSION_TAG
    if shutil.which("useradd") is None or shutil.which("newuidmap") is None:
        pytest.skip("useradd and newuidmap are needed (passwd, uidmap)")
    name = f"rqkid-{SESSION_TAG}"[:32]
    remove_user(name)
    subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    pw = pwd.getpwnam(name)
    with open("/etc/subuid") as f:
        if not any(line.startswith(name + ":") for line in f):
            remove_user(name)
            pytest.skip("useradd gave no subordinate ids (SUB_UID_COUNT in /etc/login.defs)")
    home = tempfile.mkdtemp(prefix="rongqi-keepid-")
    os.chmod(home, 0o755)
    os.mkdir(os.path.join(home, "xdg"), 0o700)
    for d in (home, os.path.join(home, "xdg")):
        os.chown(d, pw.pw_uid, pw.pw_gid)
    yield pw, home
    remove_user(name)
    shutil.rmtree(home, ignore_errors=True)


def test_keep_id_rootless_keeps_the_users_id_inside(ordinary_user):
    import subprocess
    import sys

    from support.engine_cli import SRC
    pw, home = ordinary_user
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": home,
           "XDG_RUNTIME_DIR": os.path.join(home, "xdg"), "PYTHONPATH": SRC}
    argv = [sys.executable, "-m", "rongqi.cli.main", "--root", os.path.join(home, "root"),
            "run", "--rm", "--userns", "keep-id", "busybox", "sh", "-c",
            "id -u; id -g; cat /proc/self/uid_map; touch /tmp/f && stat -c %u /tmp/f"]
    p = subprocess.run(argv, env=env, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                       cwd=home, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:2] == [str(pw.pw_uid), str(pw.pw_gid)]
    maps = [ln.split() for ln in lines[2:-1]]
    assert [str(pw.pw_uid), str(pw.pw_uid), "1"] in maps     # the user is the same id inside
    assert maps[0][:2] == ["0", maps[0][1]] and maps[0][1] != str(pw.pw_uid)  # root is not
    assert lines[-1] == str(pw.pw_uid)


def test_timeout_kills_the_container_after_its_seconds(rongqi):
    import time
    t = time.monotonic()
    p = run(rongqi, "--timeout", "1", "busybox", "sleep", "30", check=False)
    assert p.returncode == 137, p.stderr
    assert time.monotonic() - t < 15
    assert rongqi.ids() == []
