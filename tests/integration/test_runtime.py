"""rongqi-oci with real containers, as root: isolation, lifecycle, state, hooks, namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.oci_cli import oci, state, wait_status

pytestmark = pytest.mark.root


def run_sh(binary, root, bundle_factory, unique_id, script: str, **opts) -> subprocess.CompletedProcess:
    bundle = bundle_factory(["sh", "-c", script], **opts)
    return oci(binary, root, "run", "-b", bundle, unique_id)


def test_container_process_is_pid_1_with_its_own_hostname(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id, "echo $$; hostname", hostname="box-7")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "box-7"]


def test_host_processes_are_invisible(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id, "ls -d /proc/[0-9]* | wc -l; ps -o pid,args")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    # sh (1), and the ls/wc or ps children only: a handful, never the host's hundreds.
    assert int(lines[0]) <= 4
    pids = [line.split()[0] for line in lines[2:]]
    assert "1" in pids and all(int(p) < 10 for p in pids)


def test_mount_table_holds_only_the_containers_mounts(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id, "cat /proc/self/mountinfo")
    assert r.returncode == 0, r.stderr
    points = [line.split()[4] for line in r.stdout.splitlines()]
    allowed = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
               "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
               "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
               "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
    assert points[0] == "/"
    assert set(points) <= allowed, set(points) - allowed
    assert not any(p.startswith(("/work", "/tmp", "/run", "/home")) for p in points)


def test_exit_code_is_the_containers(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id, "exit 7")
    assert r.returncode == 7


def test_exit_code_of_killed_process_is_128_plus_signal(oci_binary, runtime_root, bundle_factory, unique_id):
    # PID 1 ignores signals it has no handler for, except SIGKILL from outside;
    # a child killed by SIGKILL shows the shell's 128+9, and PID 1 itself too:
    bundle = bundle_factory(["sleep", "30"])
    p = subprocess.Popen([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_status(oci_binary, runtime_root, unique_id, "running")
        assert oci(oci_binary, runtime_root, "kill", unique_id, "KILL").returncode == 0
        assert p.wait(timeout=20) == 137
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_root_marked_readonly_refuses_writes(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id, "touch /newfile", readonly=True)
    assert r.returncode != 0
    assert "Read-only file system" in r.stdout + r.stderr


def test_writable_root_accepts_writes(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id, "touch /tmp/ok && echo yes", readonly=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "yes"


def test_masked_paths_show_nothing(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id,
               "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l; echo x > /proc/sysrq-trigger; echo rc=$?")
    lines = r.stdout.split()
    assert lines[0] == "0" and lines[1] == "0"
    assert "rc=1" in lines  # /proc/sysrq-trigger is read-only


def test_create_then_start_runs_the_program_only_at_start(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle = bundle_factory(["sh", "-c", "echo ran > /out/marker"],
                            mounts=[{"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]}])
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    s = state(oci_binary, runtime_root, unique_id)
    assert s["status"] == "created" and s["pid"] > 0
    time.sleep(0.3)
    assert not (out / "marker").exists()
    assert oci(oci_binary, runtime_root, "start", unique_id).returncode == 0
    s = wait_status(oci_binary, runtime_root, unique_id, "stopped")
    assert s["status"] == "stopped" and s["pid"] == 0
    assert (out / "marker").read_text() == "ran\n"
    assert oci(oci_binary, runtime_root, "delete", unique_id).returncode == 0
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


def test_state_has_runcs_fields(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"], annotations={"org.example": "yes"})
    assert oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id).returncode == 0
    s = state(oci_binary, runtime_root, unique_id)
    assert list(s) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner", "annotations"]
    assert s["id"] == unique_id and s["status"] == "created"
    assert s["bundle"] == bundle and s["rootfs"] == os.path.join(bundle, "rootfs")
    assert s["annotations"] == {"org.example": "yes"}
    assert s["created"].endswith("Z") and len(s["created"].split(".")[1]) == 10  # nanoseconds + Z
    with open(f"/proc/{s['pid']}/stat") as f:
        assert f.read()  # the init exists on the host
    assert oci(oci_binary, runtime_root, "delete", unique_id).returncode == 0


def test_kill_delete_and_list(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    s = state(oci_binary, runtime_root, unique_id)
    assert s["status"] == "running"
    r = oci(oci_binary, runtime_root, "delete", unique_id)
    assert r.returncode != 0 and "not stopped" in r.stderr
    listed = json.loads(oci(oci_binary, runtime_root, "list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [unique_id]
    assert oci(oci_binary, runtime_root, "list", "-q").stdout.split() == [unique_id]
    assert oci(oci_binary, runtime_root, "kill", unique_id, "SIGKILL").returncode == 0
    assert wait_status(oci_binary, runtime_root, unique_id, "stopped")["status"] == "stopped"
    r = oci(oci_binary, runtime_root, "kill", unique_id, "9")
    assert r.returncode != 0 and "container not running" in r.stderr
    assert oci(oci_binary, runtime_root, "delete", unique_id).returncode == 0
    r = oci(oci_binary, runtime_root, "state", unique_id)
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_delete_force_kills_a_running_container(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    pid = state(oci_binary, runtime_root, unique_id)["pid"]
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("init still alive after delete --force")


HOOK = """#!/bin/sh
read -r state
echo "$1 $state" >> {log}
"""


def test_hooks_run_in_order_with_state_on_stdin(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    log = tmp_path / "hooks.log"
    host_hook = tmp_path / "hook.sh"
    host_hook.write_text(HOOK.format(log=log))
    host_hook.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    bundle = bundle_factory(["true"], readonly=False,
                            mounts=[{"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]}])
    # startContainer runs after pivot_root: its path is resolved in the container.
    in_hook = os.path.join(bundle, "rootfs", "hook.sh")
    with open(in_hook, "w") as f:
        f.write(HOOK.format(log="/out/hooks.log").replace("#!/bin/sh", "#!/bin/sh"))
    os.chmod(in_hook, 0o755)
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["hooks"] = {name: [{"path": str(host_hook), "args": ["hook.sh", name]}]
                    for name in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
    cfg["hooks"]["startContainer"] = [{"path": "/hook.sh", "args": ["hook.sh", "startContainer"]}]
    json.dump(cfg, open(cfg_path, "w"))
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    entries += [line.split(" ", 1) for line in (out / "hooks.log").read_text().splitlines()]
    order = {"prestart": 0, "createRuntime": 1, "createContainer": 2, "startContainer": 3, "poststart": 4, "poststop": 5}
    names = sorted((e[0] for e in entries), key=order.get)
    assert names == list(order)
    host_order = [e[0] for e in (line.split(" ", 1) for line in log.read_text().splitlines())]
    assert host_order == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    for name, payload in entries:
        st = json.loads(payload)
        assert st["id"] == unique_id and st["ociVersion"].startswith("1.")
        if name != "poststop":
            assert st["pid"] > 0


def test_failing_create_runtime_hook_fails_create_and_leaves_nothing(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    bundle = bundle_factory(["true"])
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    json.dump(cfg, open(cfg_path, "w"))
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert r.returncode != 0
    assert "createRuntime hook #0" in r.stderr and "nope" in r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


@pytest.fixture
def open_dir():
    """A directory every uid can traverse (pytest's tmp dirs are 0700 to root, which a
    user namespace's mapped root cannot enter)."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="rongqi-userns-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def test_user_namespace_maps_container_root_to_the_configured_host_uid(oci_binary, runtime_root, open_dir, unique_id):
    from rongqi.image.busybox import make_bundle

    bundle = make_bundle(os.path.join(open_dir, "bundle"), ["sleep", "30"], cgroups_path=f"/rongqi-test/{unique_id}",
                         namespaces=["pid", "network", "ipc", "uts", "mount", "user"])
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    json.dump(cfg, open(cfg_path, "w"))
    r = oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    pid = state(oci_binary, runtime_root, unique_id)["pid"]
    status = open(f"/proc/{pid}/status").read()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["100000"] * 4
    assert open(f"/proc/{pid}/uid_map").read().split() == ["0", "100000", "65536"]
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_joining_another_containers_namespaces_by_path(oci_binary, runtime_root, bundle_factory, unique_id):
    first = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", first, unique_id).returncode == 0
    pid = state(oci_binary, runtime_root, unique_id)["pid"]
    ns = [{"type": "mount"}, {"type": "network", "path": f"/proc/{pid}/ns/net"},
          {"type": "pid", "path": f"/proc/{pid}/ns/pid"}, {"type": "ipc"}, {"type": "uts", "path": f"/proc/{pid}/ns/uts"}]
    second = bundle_factory(["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; ps -o pid,args"],
                            namespaces=ns, hostname=None)
    cfg_path = os.path.join(second, "config.json")
    cfg = json.load(open(cfg_path))
    cfg.pop("hostname", None)
    json.dump(cfg, open(cfg_path, "w"))
    r = oci(oci_binary, runtime_root, "run", "-b", second, unique_id + "-b")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == os.readlink(f"/proc/{pid}/ns/net")
    assert lines[1] == os.readlink(f"/proc/{pid}/ns/uts")
    assert any("sleep 30" in line for line in lines[2:])  # the first container's PID 1 is visible
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_twenty_parallel_runs_all_succeed(oci_binary, runtime_root, bundle_factory, unique_id):
    bundles = [bundle_factory(["sh", "-c", "echo $$"]) for _ in range(20)]

    def one(i: int) -> subprocess.CompletedProcess:
        return oci(oci_binary, runtime_root, "run", "-b", bundles[i], f"{unique_id}-{i}", timeout=120)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    for r in results:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "1"
    assert os.listdir(runtime_root) == []


def test_environment_cwd_and_user(oci_binary, runtime_root, bundle_factory, unique_id):
    r = run_sh(oci_binary, runtime_root, bundle_factory, unique_id, "echo $FOO; pwd; id -u; id -g",
               env=["FOO=bar", "PATH=/bin"], cwd="/var/spool", uid=1000, gid=1001)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["bar", "/var/spool", "1000", "1001"]


def test_exec_joins_the_container_and_returns_the_exit_code(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sleep", "30"], hostname="exec-box")
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    r = oci(oci_binary, runtime_root, "exec", unique_id, "sh", "-c", "hostname; ps -o pid,args; exit 5")
    assert r.returncode == 5, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "exec-box"
    assert any(line.split()[:3] == ["1", "sleep", "30"] for line in lines[1:])
    r = oci(oci_binary, runtime_root, "exec", "--user", "1000:1000", "--env", "FOO=bar", "--cwd", "/tmp",
            unique_id, "sh", "-c", "echo $FOO $(pwd) $(id -u) $(id -g)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["bar", "/tmp", "1000", "1000"]
    r = oci(oci_binary, runtime_root, "exec", unique_id, "no-such-program")
    assert r.returncode != 0 and 'exec: "no-such-program": executable file not found' in r.stderr
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_exec_with_a_process_file(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    bundle = bundle_factory(["sleep", "30"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    proc = tmp_path / "process.json"
    proc.write_text(json.dumps({"args": ["sh", "-c", "echo $X; exit 3"], "cwd": "/", "env": ["X=from-file"],
                                "user": {"uid": 0, "gid": 0}}))
    r = oci(oci_binary, runtime_root, "exec", "--process", str(proc), unique_id)
    assert r.returncode == 3 and r.stdout.strip() == "from-file"
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


def test_exec_in_a_stopped_container_is_refused(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["true"])
    assert oci(oci_binary, runtime_root, "run", "--keep", "-b", bundle, unique_id).returncode == 0
    r = oci(oci_binary, runtime_root, "exec", unique_id, "true")
    assert r.returncode != 0 and "cannot exec in a stopped container" in r.stderr
    assert oci(oci_binary, runtime_root, "delete", unique_id).returncode == 0


def test_terminal_master_is_sent_over_the_console_socket(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    import socket

    bundle = bundle_factory(["sh"], terminal=True)
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(20)
    try:
        r = oci(oci_binary, runtime_root, "create", "-b", bundle, "--console-socket", path, unique_id)
        assert r.returncode == 0, r.stderr
        conn, _ = server.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        assert len(fds) == 1 and msg.decode().startswith("/dev/pts/")
        master = fds[0]
        assert oci(oci_binary, runtime_root, "start", unique_id).returncode == 0
        os.write(master, b"tty; echo pid=$$; exit 3\n")
        out = b""
        deadline = time.monotonic() + 10
        while b"pid=1" not in out and time.monotonic() < deadline:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        os.close(master)
        assert b"/dev/pts/0" in out and b"pid=1" in out
        assert wait_status(oci_binary, runtime_root, unique_id, "stopped")["status"] == "stopped"
        assert oci(oci_binary, runtime_root, "delete", unique_id).returncode == 0
    finally:
        server.close()


def test_terminal_without_console_socket_is_a_clear_error(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sh"], terminal=True)
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert r.returncode != 0 and "--console-socket" in r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


def test_linux_devices_are_created_with_their_mode_and_owner(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sh", "-c", "ls -ln /dev/fuse /dev/null"])
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o640, "uid": 7, "gid": 8}]
    json.dump(cfg, open(cfg_path, "w"))
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    fuse, null = r.stdout.splitlines()
    assert fuse.split()[0] == "crw-r-----" and fuse.split()[2:6] == ["7", "8", "10,", "229"]
    assert null.split()[0] == "crw-rw-rw-"


def test_time_namespace_offsets_shift_the_containers_clocks(oci_binary, runtime_root, bundle_factory, unique_id):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("this kernel has no time namespaces")
    bundle = bundle_factory(["cat", "/proc/uptime"],
                            namespaces=["pid", "network", "ipc", "uts", "mount", "time"])
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    json.dump(cfg, open(cfg_path, "w"))
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    inside = float(r.stdout.split()[0])
    host = float(open("/proc/uptime").read().split()[0])
    assert inside - host > 86400 * 364


def test_cgroup_namespace_shows_the_containers_cgroup_as_root(oci_binary, runtime_root, bundle_factory, unique_id):
    mount = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    bundle = bundle_factory(["sh", "-c", "cat /proc/self/cgroup; ls /sys/fs/cgroup/pids/cgroup.procs; "
                                         "echo 1 > /sys/fs/cgroup/pids/pids.max; echo rc=$?"],
                            namespaces=["pid", "network", "ipc", "uts", "mount", "cgroup"], mounts=[mount])
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    paths = [line.split(":", 2)[2] for line in lines if line.count(":") >= 2]
    assert paths and all(p == "/" for p in paths), lines
    assert "/sys/fs/cgroup/pids/cgroup.procs" in lines
    assert "rc=1" in lines  # the cgroup mount is read-only


def test_read_only_bind_mount_refuses_writes(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("hello")
    bundle = bundle_factory(["sh", "-c", "cat /data/f; touch /data/g; echo rc=$?"],
                            mounts=[{"destination": "/data", "type": "bind", "source": str(src),
                                     "options": ["rbind", "ro", "nosuid", "nodev"]}])
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hello") and "rc=1" in r.stdout
    assert not (src / "g").exists()


def test_seccomp_notify_fd_reaches_the_listener(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    import socket

    path = str(tmp_path / "agent.sock")
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(path)
    agent.listen(1)
    agent.settimeout(20)
    bundle = bundle_factory(["sh", "-c", "mkdir /tmp/x; echo rc=$?"], readonly=False)
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                               "listenerMetadata": "hello-agent",
                               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    json.dump(cfg, open(cfg_path, "w"))
    p = subprocess.Popen([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conn, _ = agent.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        conn.close()
        state = json.loads(msg)
        assert state["fds"] == ["seccompFd"] and state["metadata"] == "hello-agent"
        assert state["state"]["id"] == unique_id and state["pid"] > 0
        assert len(fds) == 1
        os.close(fds[0])  # no agent answers: the notified call fails instead of hanging
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "rc=1" in out
    finally:
        agent.close()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_process_attributes_reach_the_program(oci_binary, runtime_root, bundle_factory, unique_id):
    """domainname, umask, additionalGids, oomScoreAdj, the five capability sets, sysctl."""
    bundle = bundle_factory(["sh", "-c", "cat /proc/sys/kernel/domainname; umask; id -G; "
                                         "cat /proc/self/oom_score_adj; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; "
                                         "cat /proc/sys/net/ipv4/ip_forward"])
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["domainname"] = "example.org"
    cfg["process"]["user"].update({"umask": 0o027, "additionalGids": [5, 7]})
    cfg["process"]["oomScoreAdj"] = 500
    kill, chown = "CAP_KILL", "CAP_CHOWN"
    cfg["process"]["capabilities"] = {"bounding": [kill, chown], "effective": [kill], "permitted": [kill, chown],
                                      "inheritable": [kill], "ambient": [kill]}
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    json.dump(cfg, open(cfg_path, "w"))
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "example.org"
    assert lines[1] == "0027"
    assert lines[2].split() == ["0", "5", "7"]
    assert lines[3] == "500"
    caps = dict(line.split(":\t") for line in lines[4:9])
    bit = lambda *ns: format(sum(1 << n for n in ns), "016x")  # noqa: E731
    # CAP_CHOWN = 0, CAP_KILL = 5; the shell's execve keeps ambient caps in effective/permitted
    assert caps["CapBnd"] == bit(0, 5)
    assert caps["CapInh"] == bit(5) and caps["CapAmb"] == bit(5)
    assert caps["CapPrm"] == bit(0, 5) or caps["CapPrm"] == bit(5)
    assert lines[9] == "1"


def test_no_pivot_moves_the_root(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["sh", "-c", "echo $$; test -x /bin/busybox && echo own-root; "
                                         "test -e /work || test -e /proc/1/root/work || echo host-unreachable"])
    r = oci(oci_binary, runtime_root, "run", "--no-pivot", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "own-root", "host-unreachable"]


def test_features_lists_what_is_supported(oci_binary):
    r = subprocess.run([oci_binary, "features"], capture_output=True, text=True)
    assert r.returncode == 0
    f = json.loads(r.stdout)
    assert f["ociVersionMax"].startswith("1.2")
    assert set(f["linux"]["namespaces"]) >= {"pid", "network", "mount", "user", "cgroup", "time"}
    assert "createRuntime" in f["hooks"] and "rbind" in f["mountOptions"]
    assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]


def test_pidfd_is_sent_over_the_pidfd_socket(oci_binary, runtime_root, bundle_factory, unique_id, tmp_path):
    import socket

    path = str(tmp_path / "pidfd.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(20)
    try:
        bundle = bundle_factory(["sleep", "30"])
        r = oci(oci_binary, runtime_root, "create", "-b", bundle, "--pidfd-socket", path, unique_id)
        assert r.returncode == 0, r.stderr
        conn, _ = srv.accept()
        _, fds, _, _ = socket.recv_fds(conn, 64, 1)
        conn.close()
        assert len(fds) == 1
        pid = state(oci_binary, runtime_root, unique_id)["pid"]
        fdinfo = open(f"/proc/self/fdinfo/{fds[0]}").read()
        assert f"Pid:\t{pid}" in fdinfo
        os.close(fds[0])
        assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0
    finally:
        srv.close()


def test_cgroup_mount_without_a_cgroup_namespace_binds_the_containers_own_cgroups(
        oci_binary, runtime_root, bundle_factory, unique_id):
    mount = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    bundle = bundle_factory(["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/pids/cgroup.procs; "
                                         "grep -c . /proc/self/mountinfo; echo 1 > /sys/fs/cgroup/pids/pids.max; echo rc=$?"],
                            mounts=[mount], resources={"pids": {"limit": 42}})
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "42"  # the container's own pids cgroup, not the host's root
    assert "rc=1" in lines   # read-only
