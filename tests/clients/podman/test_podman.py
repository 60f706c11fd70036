"""podman (with conmon) runs containers through the runtime under test: run, -it, -d, exec, logs,
stop, rm, resource limits, read-only root, users, volumes, and networks.

Each case runs with runc (the harness's proof) and rongqi-oci, in a private podman storage.
"""

from __future__ import annotations

import json
import time

import pytest

from podman_harness import IMAGE, Podman
from support.terminal import Terminal as Pty

def inspect(pm: Podman, name: str) -> dict:
    r = pm("inspect", name, check=True)
    return json.loads(r.stdout)[0]


def wait_state(pm: Podman, name: str, want: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = inspect(pm, name)["State"]
        if st["Status"] == want:
            return st
        if time.monotonic() > deadline:
            pytest.fail(f"{name} is {st['Status']}, never {want}")
        time.sleep(0.1)


def test_run_exits_with_the_containers_code_and_output(pm):
    pm.calls.write_text("")
    r = pm.run("--rm", IMAGE, "sh", "-c", "echo out-$((6*7)); exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out-42\n"
    calls = pm.calls.read_text()
    assert "create --bundle" in calls and "start " in calls


def test_run_it_gives_an_interactive_shell_on_a_pty(pm):
    t = Pty(pm.argv("run", "-it", "--rm", *pm.run_flags(), IMAGE, "sh"), pm.env())
    try:
        t.read_until(b"# ")
        t.type("echo pid=$$; tty; exit 4\r")
        assert t.wait() == 4
        assert b"pid=1\r\n" in t.out
        assert b"/dev/pts/0\r\n" in t.out
    finally:
        t.close()
    assert "--console-socket" in pm.calls.read_text()


def test_detached_container_runs_and_takes_execs_and_keeps_logs(pm):
    r = pm.run("-d", "--name", "det", IMAGE, "sh", "-c", "echo started; exec sleep 100")
    assert r.returncode == 0, r.stderr
    wait_state(pm, "det", "running")
    r = pm("exec", "det", "sh", "-c", "echo sum=$((1+1)); cat /proc/1/comm; exit 5")
    assert r.returncode == 5, r.stderr
    assert r.stdout.split() == ["sum=2", "sleep"]
    r = pm("logs", "det")
    assert r.stdout == "started\n"
    assert "exec --pid-file" in pm.calls.read_text()


def test_exec_it_gives_a_shell_in_a_running_container(pm):
    assert pm.run("-d", "--name", "exit", IMAGE, "sleep", "100").returncode == 0
    wait_state(pm, "exit", "running")
    t = Pty(pm.argv("exec", "-it", "exit", "sh"), pm.env())
    try:
        t.read_until(b"# ")
        t.type("tty; exit 6\r")
        assert t.wait() == 6
        assert b"/dev/pts/" in t.out
    finally:
        t.close()


def test_stop_sends_sigterm_to_pid_1_and_rm_removes_the_container(pm):
    script = 'trap "echo got-term; exit 0" TERM; while :; do sleep 0.1; done'
    assert pm.run("-d", "--name", "stp", IMAGE, "sh", "-c", script).returncode == 0
    wait_state(pm, "stp", "running")
    r = pm("stop", "--time", "20", "stp")
    assert r.returncode == 0, r.stderr
    st = inspect(pm, "stp")["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 0
    assert "got-term" in pm("logs", "stp").stdout
    cid = inspect(pm, "stp")["Id"]
    assert pm("rm", "stp").returncode == 0
    assert pm("ps", "-a", "-q").stdout.strip() == ""
    assert not (pm.base / "runtime-state" / cid).exists()


def test_stop_kills_a_pid_1_that_ignores_sigterm(pm):
    assert pm.run("-d", "--name", "stk", IMAGE, "sleep", "100").returncode == 0
    wait_state(pm, "stk", "running")
    assert pm("stop", "--time", "1", "stk").returncode == 0
    assert inspect(pm, "stk")["State"]["ExitCode"] == 137


def test_memory_and_pids_limits_reach_the_containers_cgroup(pm):
    r = pm.run("--rm", "--memory", "64m", "--pids-limit", "20", IMAGE, "sh", "-c",
               "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(64 << 20), "20"]


def test_pids_limit_stops_a_fork_flood(pm):
    # The shell counts the processes it made and dies at the first fork the kernel refuses.
    r = pm.run("--rm", "--pids-limit", "10", IMAGE, "sh", "-c", "for i in $(seq 30); do sleep 5 & echo $i; done")
    assert r.returncode != 0
    assert "can't fork" in r.stderr
    assert 0 < int(r.stdout.split()[-1]) < 10


def test_read_only_root_refuses_writes_but_tmp_is_writable(pm):
    r = pm.run("--rm", "--read-only", IMAGE, "sh", "-c", "touch /x 2>&1; touch /tmp/ok && echo tmp-ok")
    assert r.returncode == 0, r.stderr
    assert "Read-only file system" in r.stdout and "tmp-ok" in r.stdout


def test_user_flag_sets_uid_and_gid(pm):
    r = pm.run("--rm", "--user", "1000:1001", IMAGE, "id")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("uid=1000(1000) gid=1001(1001)")


def test_bind_volume_is_shared_with_the_host(pm, tmp_path):
    (tmp_path / "in").write_text("from-host\n")
    r = pm.run("--rm", "-v", f"{tmp_path}:/data", IMAGE, "sh", "-c", "cat /data/in; echo from-box > /data/out")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from-host\n"
    assert (tmp_path / "out").read_text() == "from-box\n"


def test_network_none_has_only_loopback(pm):
    r = pm.run("--rm", "--network", "none", IMAGE, "sh", "-c", "ls /sys/class/net")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["lo"]


def test_default_network_gives_an_interface_with_an_address(pm):
    # No traffic leaves the container: the address is checked, nothing is sent to it.
    r = pm.run("--rm", IMAGE, "sh", "-c", "ls /sys/class/net; ip -4 -o addr show eth0")
    assert r.returncode == 0, r.stderr
    assert "eth0" in r.stdout.split() and " inet " in r.stdout


def test_cgroup_mount_without_cgroup_namespace(pm):
    r = pm.run("--rm", "--cgroupns", "host", "--memory", "32m", IMAGE, "sh", "-c",
               "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; touch /sys/fs/cgroup/memory/x 2>&1; true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(32 << 20)
    assert "Read-only file system" in r.stdout


def bounding_set() -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith("CapBnd:"))


def test_privileged_container_gets_every_capability_device_and_mount(pm):
    # podman --privileged: every capability podman itself holds (it leaves out what its own
    # bounding set lacks, CAP_SYS_RESOURCE on this host, so runc runs it too), every host device
    # sent in linux.devices with fileMode = st_mode (0o20666: rongqi-oci once refused it), all
    # devices allowed, no seccomp, no masked paths.
    r = pm.run("--rm", "--privileged", IMAGE, "sh", "-c",
               "grep ^CapEff: /proc/self/status; head -c 0 /dev/kmsg && echo kmsg; test -c /dev/tty0 && echo tty0; "
               "mount -t tmpfs none /mnt && echo mounted; grep ^Seccomp: /proc/self/status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0].split()[1] == bounding_set(), r.stdout
    assert lines[1:4] == ["kmsg", "tty0", "mounted"], r.stdout
    assert lines[4].split() == ["Seccomp:", "0"], r.stdout
