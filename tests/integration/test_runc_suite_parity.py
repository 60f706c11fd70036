"""Behaviours runc's own integration suite (tests/integration/*.bats) checks, where rongqi-oci differed.

Each test names the bats case it mirrors; they were found by running that suite against both
runtimes (docs/runtime.md, "runc's integration suite"). Written fresh: none of the suite's code.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from support.oci_cli import oci, wait_status

pytestmark = pytest.mark.root


def _on_a_terminal(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run argv with a pty as stdin (so a foreground terminal is set up) and stdout a pipe."""
    master, slave = os.openpty()
    try:
        return subprocess.run(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    finally:
        os.close(slave)
        os.close(master)


def test_foreground_terminal_output_keeps_bare_newlines(oci_binary, runtime_root, bundle_factory, unique_id):
    """run.bats "runc run with tmpfs perms", env.bats "env var override": `run` of a terminal
    process, output read by a script. runc clears ONLCR on the pty it relays, so the lines
    end in "\\n" (bats compares ${lines[0]} to "444"); with the pty's default "\\r\\n" every
    such comparison failed. exec -t relays the same way."""
    bundle = bundle_factory(["sh", "-c", "echo one; echo two"], terminal=True)
    r = _on_a_terminal([oci_binary, "--root", runtime_root, "run", "-b", bundle, unique_id])
    assert r.returncode == 0, r.stderr
    assert b"\r" not in r.stdout, r.stdout
    assert r.stdout.endswith(b"one\ntwo\n"), r.stdout

    bundle2 = bundle_factory(["sleep", "60"])
    cid = unique_id + "x"
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle2, cid).returncode == 0
    try:
        r = _on_a_terminal([oci_binary, "--root", runtime_root, "exec", "-t", cid, "sh", "-c", "echo a; echo b"])
        assert r.returncode == 0, r.stderr
        assert b"\r" not in r.stdout, r.stdout
        assert r.stdout.endswith(b"a\nb\n"), r.stdout
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", cid)


def test_an_empty_home_is_the_users_home(oci_binary, runtime_root, bundle_factory, unique_id):
    """env.bats "empty HOME env var is overridden" (and "... with multiple overrides"): HOME=""
    in process.env is replaced by the user's home from the container's /etc/passwd, as an
    unset HOME is; a non-empty one is kept. exec builds its environment the same way."""
    env = ["PATH=/bin:/usr/bin", "HOME=/override", "HOME="]
    bundle = bundle_factory(["sh", "-c", "echo \"[$HOME]\""], env=env)
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[/root]\n"

    bundle2 = bundle_factory(["sleep", "60"], env=["PATH=/bin:/usr/bin", "HOME="])
    cid = unique_id + "x"
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle2, cid).returncode == 0
    try:
        r = oci(oci_binary, runtime_root, "exec", cid, "sh", "-c", "echo \"[$HOME]\"")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "[/root]\n"
        r = oci(oci_binary, runtime_root, "exec", "-e", "HOME=/kept", cid, "sh", "-c", "echo \"[$HOME]\"")
        assert r.stdout == "[/kept]\n"
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", cid)


def _cgroup_procs(cgroups_path: str) -> list[int]:
    base = "/sys/fs/cgroup/pids" if os.path.isdir("/sys/fs/cgroup/pids") else "/sys/fs/cgroup"
    with open(f"{base}{cgroups_path}/cgroup.procs") as f:
        return [int(x) for x in f.read().split()]


def test_kill_all_of_a_stopped_container_succeeds_and_reaches_what_is_left(oci_binary, runtime_root,
                                                                        bundle_factory, unique_id):
    """kill.bats "kill detached busybox": once the container stopped, `kill ID 0` fails with
    "container not running" but `kill -a ID 0` exits 0 (runc: --all signals what its cgroup
    still holds). Without a pid namespace the init can die alone (delete.bats "[host pidns +
    init gone]"): `kill -a ID KILL` then still kills the exec'd processes left behind."""
    cg = f"/rongqi-test/{unique_id}"
    bundle = bundle_factory(["sleep", "600"], cgroups_path=cg,
                            namespaces=["ipc", "uts", "mount", "network"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    try:
        # A detached exec inherits our stdio: no pipes, or the call waits for the sleep.
        subprocess.run([oci_binary, "--root", runtime_root, "exec", "-d", unique_id, "sleep", "601"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        procs = _cgroup_procs(cg)
        assert len(procs) == 2, procs
        init = int(oci(oci_binary, runtime_root, "state", unique_id).stdout.split('"pid": ')[1].split(",")[0])
        os.kill(init, 9)
        wait_status(oci_binary, runtime_root, unique_id, "stopped")

        r = oci(oci_binary, runtime_root, "kill", unique_id, "0")
        assert r.returncode == 1 and "container not running" in r.stderr
        r = oci(oci_binary, runtime_root, "kill", "-a", unique_id, "0")
        assert r.returncode == 0, r.stderr
        assert len(_cgroup_procs(cg)) == 1, "signal 0 kills nobody"

        r = oci(oci_binary, runtime_root, "kill", "--all", unique_id, "KILL")
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 10
        while _cgroup_procs(cg) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cgroup_procs(cg) == []
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)


def test_a_tmpfs_over_an_image_directory_keeps_its_mode(oci_binary, runtime_root, bundle_factory, unique_id):
    """run.bats "runc run with tmpfs" and "runc run with tmpfs perms": a tmpfs mounted over a
    directory of the image gets that directory's mode (setuid/setgid/sticky included) unless
    the mount's options give a mode=, which wins; over a directory the runtime makes, tmpfs's
    own default."""
    mounts = [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
              {"destination": "/srv/a", "type": "tmpfs", "source": "tmpfs", "options": []},
              {"destination": "/srv/b", "type": "tmpfs", "source": "tmpfs", "options": ["mode=0410"]},
              {"destination": "/srv/new", "type": "tmpfs", "source": "tmpfs", "options": []}]
    bundle = bundle_factory(["stat", "-c", "%n %a", "/tmp", "/srv/a", "/srv/b", "/srv/new"], mounts=mounts)
    rootfs = os.path.join(bundle, "rootfs")
    os.chmod(os.path.join(rootfs, "tmp"), 0o7777)
    for name in ("a", "b"):
        os.makedirs(os.path.join(rootfs, "srv", name))
        os.chmod(os.path.join(rootfs, "srv", name), 0o710)
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:4] == ["/tmp 7777", "/srv/a 710", "/srv/b 410", "/srv/new 1777"]


def test_exec_process_file_may_be_a_pipe(oci_binary, runtime_root, bundle_factory, unique_id):
    """tty.bats "runc exec [tty consolesize]": `exec -p <(echo "$json")` hands the process over
    a pipe, which reads once. exec read it a first time to learn whether the process wants a
    terminal and then found it empty ("malformed JSON ... at character 0")."""
    bundle = bundle_factory(["sleep", "60"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    try:
        r_fd, w_fd = os.pipe()
        os.write(w_fd, b'{"args": ["sh", "-c", "echo from-a-pipe"], "cwd": "/", "env": ["PATH=/bin"]}')
        os.close(w_fd)
        try:
            r = subprocess.run([oci_binary, "--root", runtime_root, "exec", "-p", f"/dev/fd/{r_fd}", unique_id],
                               pass_fds=(r_fd,), capture_output=True, text=True, timeout=60)
        finally:
            os.close(r_fd)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "from-a-pipe\n"
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)


def test_exec_says_an_execve_failure_in_runcs_words(oci_binary, runtime_root, bundle_factory, unique_id):
    """exec.bats "runc exec [execve error]" (run.bats has the same case for run): a script
    whose interpreter does not exist fails its execve with ENOENT. One line on stderr, which
    names the program as runc does: "exec /run.sh: no such file or directory" (run said so
    already; exec said "/run.sh: No such file or directory")."""
    bundle = bundle_factory(["sleep", "60"])
    script = os.path.join(bundle, "rootfs", "run.sh")
    with open(script, "w") as f:
        f.write("#!/mmnnttbb foo bar\nsh\n")
    os.chmod(script, 0o755)
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    try:
        r = oci(oci_binary, runtime_root, "exec", unique_id, "/run.sh")
        assert r.returncode == 255
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].endswith("exec /run.sh: no such file or directory"), r.stderr
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)


def _status_caps(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k.startswith("Cap")}


def test_an_unknown_capability_is_warned_about_and_left_out(oci_binary, runtime_root, bundle_factory, unique_id):
    """capabilities.bats "runc run with unknown capability": names no kernel defines in a
    capability set ("CAP_UNKNOWN", "UNKNOWN_CAP") do not fail the container; runc warns
    ("ignoring unknown or unavailable capabilities") and grants the known ones."""
    caps = ["CAP_KILL", "CAP_UNKNOWN", "UNKNOWN_CAP"]
    bundle = bundle_factory(["cat", "/proc/self/status"], capabilities=caps)
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    assert "unknown capabilities: CAP_UNKNOWN, UNKNOWN_CAP" in r.stderr
    got = _status_caps(r.stdout)
    assert got["CapBnd"] == got["CapEff"] == got["CapPrm"] == f"{1 << 5:016x}", got  # CAP_KILL only


def test_exec_cap_is_never_inheritable(oci_binary, runtime_root, bundle_factory, unique_id):
    """capabilities.bats "runc exec --cap": --cap adds to the bounding, effective and permitted
    sets only. It also filled inheritable and ambient, which runc stopped doing in its fix of
    CVE-2022-29162: an inheritable capability is kept across the execve of a program with
    inheritable file capabilities, and an ambient one by every program, even non-root."""
    bundle = bundle_factory(["sleep", "60"], capabilities=[])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    try:
        r = oci(oci_binary, runtime_root, "exec", "--cap", "CAP_KILL", "--cap", "CAP_AUDIT_WRITE", unique_id,
                "cat", "/proc/self/status")
        assert r.returncode == 0, r.stderr
        got = _status_caps(r.stdout)
        want = f"{(1 << 5) | (1 << 29):016x}"
        assert (got["CapBnd"], got["CapEff"], got["CapPrm"]) == (want, want, want), got
        assert got["CapInh"] == got["CapAmb"] == "0" * 16, got
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)


@pytest.mark.parametrize("init_gone", [False, True], ids=["init-alive", "init-gone"])
def test_sigkill_without_a_pid_namespace_kills_the_whole_container(oci_binary, runtime_root, bundle_factory,
                                                                  unique_id, init_gone):
    """kill.bats "kill KILL [host pidns]" and "kill KILL [host pidns + init gone]": in the
    host's pid namespace the init's death takes nobody with it, so `kill ID KILL` (no --all)
    must reach every process of the container's cgroup, even when the init is already gone;
    exec'd processes were left running."""
    cg = f"/rongqi-test/{unique_id}"
    bundle = bundle_factory(["sleep", "600"], cgroups_path=cg, namespaces=["ipc", "uts", "mount", "network"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    try:
        for _ in range(2):
            subprocess.run([oci_binary, "--root", runtime_root, "exec", "-d", unique_id, "sleep", "601"], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        assert len(_cgroup_procs(cg)) == 3
        if init_gone:
            init = int(oci(oci_binary, runtime_root, "state", unique_id).stdout.split('"pid": ')[1].split(",")[0])
            os.kill(init, 9)
            wait_status(oci_binary, runtime_root, unique_id, "stopped")
        r = oci(oci_binary, runtime_root, "kill", unique_id, "KILL")
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 10
        while _cgroup_procs(cg) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cgroup_procs(cg) == []
        wait_status(oci_binary, runtime_root, unique_id, "stopped")
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)


def test_sigkill_with_a_pid_namespace_still_signals_only_the_init(oci_binary, runtime_root, bundle_factory,
                                                                 unique_id):
    """The other side of the kill.bats cases: with its own pid namespace the kernel takes the
    namespace down with its init, and a stopped container's `kill ID KILL` stays runc's error."""
    bundle = bundle_factory(["sleep", "600"])
    assert oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id).returncode == 0
    try:
        assert oci(oci_binary, runtime_root, "kill", unique_id, "KILL").returncode == 0
        wait_status(oci_binary, runtime_root, unique_id, "stopped")
        r = oci(oci_binary, runtime_root, "kill", unique_id, "KILL")
        assert r.returncode == 1 and "container not running" in r.stderr
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)


def _with_hooks(bundle: str, hooks: dict) -> None:
    import json

    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["hooks"] = hooks
    with open(path, "w") as f:
        json.dump(cfg, f)


def test_a_failing_hook_is_reported_in_runcs_words(oci_binary, runtime_root, bundle_factory, unique_id):
    """hooks.bats "runc create [second createRuntime hook fails]" / "[hook fails]": create fails
    with "error running createRuntime hook #1:" (the hooks counted from 0, as runc counts);
    a hook killed by a signal is said as Go says it ("signal: killed"), which seccomp.bats's
    startContainer case matches ("bad system call")."""
    bundle = bundle_factory(["true"])
    _with_hooks(bundle, {"createRuntime": [{"path": "/bin/true"}, {"path": "/bin/false"}]})
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert r.returncode == 1
    assert "error running createRuntime hook #1: /bin/false: exit status 1" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))

    _with_hooks(bundle, {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $$"]}]})
    r = oci(oci_binary, runtime_root, "create", "-b", bundle, unique_id)
    assert r.returncode == 1
    assert "error running prestart hook #0: /bin/sh: signal: killed" in r.stderr, r.stderr


def test_a_32_bit_personality_with_a_seccomp_filter(oci_binary, runtime_root, bundle_factory, unique_id):
    """personality.bats "runc run personality for i686" and "... with exec for i686", on a
    config with a seccomp filter (rongqi-oci spec's has docker's profile): under LINUX32
    uname(2) says "i686", and the filter was loaded with i386's seccomp(2) number, which an
    x86_64 kernel answers with ENOSYS ("seccomp: load the filter: Function not implemented")."""
    if os.uname().machine != "x86_64":
        pytest.skip("the LINUX32 personality's machine name is checked on x86_64")
    import json

    bundle = bundle_factory(["sh", "-c", "uname -m; sleep 60"])
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["linux"]["personality"] = {"domain": "LINUX32"}
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    with open(path, "w") as f:
        json.dump(cfg, f)
    out, err = os.path.join(bundle, "out"), os.path.join(bundle, "err")
    # Files, not pipes: the detached container keeps its stdio open.
    with open(out, "w") as f, open(err, "w") as e:
        r = subprocess.run([oci_binary, "--root", runtime_root, "run", "-d", "-b", bundle, unique_id],
                           stdin=subprocess.DEVNULL, stdout=f, stderr=e, timeout=60)
    try:
        assert r.returncode == 0, open(err).read()
        deadline = time.monotonic() + 10
        while not open(out).read() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open(out).read() == "i686\n"
        r = oci(oci_binary, runtime_root, "exec", unique_id, "sh", "-c", "uname -m; mkdir /tmp/x")
        assert r.stdout == "i686\n", r.stderr
        assert "Operation not permitted" in r.stderr, "the filter is loaded in exec's process too"
    finally:
        oci(oci_binary, runtime_root, "delete", "--force", unique_id)
