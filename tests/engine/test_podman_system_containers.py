"""Container commands as podman's system tests use them (test/system/035-logs, 040-ps,
045-start, 050-stop, 055-rm, 130-kill): the flags, filters, messages and exit codes each
case checks, one short container per test."""

from __future__ import annotations

import os
import re

from support.engine_cli import Rongqi, rongqi  # noqa: F401 - the fixture


def test_rm_force_of_a_missing_container_is_quiet_and_wait_ignore_prints_minus_one(rongqi):
    """055-rm "podman container rm --force bogus" and "podman rm" (wait --ignore). The
    wording is podman 4.3.1's ("name or ID"; the stored case has a later podman's)."""
    p = rongqi("container", "rm", "bogus", check=False)
    assert (p.returncode, p.stderr) == (
        1, 'Error: no container with name or ID "bogus" found: no such container\n')
    p = rongqi("container", "rm", "--force", "bogus", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert rongqi("wait", "--ignore", "bogus").stdout == "-1\n"
    assert rongqi("wait", "--ignore", "--latest").stdout == "-1\n"  # no container at all
    assert rongqi("wait", "bogus", check=False).returncode == 125


def test_kill_reads_signals_as_podman(rongqi):
    """130-kill "rejects invalid args": podman's messages; a leading dash is dropped
    ("-HUP", "-1" are signals, not options)."""
    for s, msg in [("0", "invalid signal: 0"), ("SIGBADSIG", "invalid signal: SIGBADSIG"),
                   ("-0", "invalid signal: 0"), ("-BADSIG", "invalid signal: BADSIG"),
                   ("-", "invalid signal: "), ("65", "valid signals are 1 through 64"),
                   ("-65", "valid signals are 1 through 64"),
                   ("99999999", "valid signals are 1 through 64")]:
        p = rongqi("kill", "-s", s, "nosuchcontainer", check=False)
        assert (p.returncode, p.stderr) == (125, f"Error: {msg}\n"), s
    p = rongqi("create", "--stop-signal=99", "busybox", check=False)
    assert (p.returncode, p.stderr) == (125, "Error: valid signals are 1 through 64\n")
    cid = rongqi("run", "-d", "busybox", "sh", "-c",
                 "for i in 1 2 3 10 15; do trap \"echo got: $i\" $i; done; echo READY; "
                 "while :; do sleep 0.1; done").stdout.strip()
    _wait_log(rongqi, cid, "READY")
    # 130-kill "test signal handling in containers": HUP INT QUIT were ignored from the
    # monitor on (an ignored signal cannot be trapped by sh), so these never arrived
    for sig, num in (("-HUP", 1), ("INT", 2), ("-SIGQUIT", 3), ("USR1", 10), ("15", 15)):
        assert rongqi("kill", "-s", sig, cid).stdout.strip() == cid
        _wait_log(rongqi, cid, f"got: {num}")
    # nor may an exec'd process start with signals ignored (podman's: none)
    status = rongqi("exec", cid, "cat", "/proc/self/status").stdout
    assert "SigIgn:\t0000000000000000" in status, status
    rongqi("rm", "-f", "-t", "0", cid)


def _wait_log(rongqi, cid: str, text: str, timeout: float = 15.0) -> None:
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in rongqi("logs", cid).stdout:
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never in the logs of {cid}")


def test_start_all_filters_and_its_conflict(rongqi):
    """045-start: --all starts only what is not running, --all with names is podman's error,
    --filter narrows the named containers, a bad restart policy is refused."""
    p = rongqi("start", "--all", "12333", check=False)
    assert (p.returncode, p.stderr) == (125, "Error: either start all containers or the "
                                             "container(s) provided in the arguments\n")
    done = rongqi("create", "busybox", "true").stdout.strip()
    up = rongqi("run", "-d", "busybox", "sleep", "60").stdout.strip()
    assert rongqi("start", "--all").stdout.split() == [done]
    rongqi("wait", done)
    assert rongqi("start", "--filter", "restart-policy=always", done).stdout == ""
    assert rongqi("start", "--filter", "restart-policy=none", done).stdout == done + "\n"
    p = rongqi("start", "--filter", "restart-policy=fakepolicy", done, check=False)
    assert (p.returncode, p.stderr) == (125, "Error: fakepolicy invalid restart policy\n")
    rongqi("rm", "-f", "-t", "0", up, done)


def test_ps_id_filter_label_method_and_since_in_the_future(rongqi):
    """040-ps "--filter" (id: hex is a prefix in either case, else a regex) and "--format
    label" ({{.Label "k"}}); 035-logs "--since --follow" (--since -1s: nothing yet)."""
    cid = rongqi("run", "--name", "lab", "--label", "mylabel=v1", "busybox",
                 "echo", "hi").stdout and rongqi("inspect", "-f", "{{.Id}}", "lab").stdout.strip()
    for f in (cid[:3], cid[:3].upper(), "^" + cid[:2], "[0-9a-f]"):
        assert rongqi("ps", "-a", "--filter", f"id={f}", "--format", "{{.Names}}").stdout \
            == "lab\n", f
    assert rongqi("ps", "-a", "--filter", f"id=^[^{cid[0]}]", "--noheading").stdout == ""
    assert rongqi("ps", "-a", "--format", '{{.Label "mylabel"}}|{{.Label "no"}}').stdout \
        == "v1|\n"
    assert rongqi("logs", "--since", "-1s", "-f", "lab").stdout == ""
    assert rongqi("logs", "--since", "60s", "lab").stdout == "hi\n"


def test_stop_of_a_run_rm_container_warns_and_succeeds(rongqi):
    """050-stop "podman stop -t 1 Generate warning": the SIGKILL fallback is logged as
    podman's warning, and the container that --rm removed meanwhile is no error."""
    rongqi("run", "--rm", "-d", "--name", "stopme", "busybox", "sleep", "100")
    p = rongqi("stop", "--timeout=1", "stopme")  # "can trap signal": podman's other spelling
    assert p.stdout == "stopme\n"
    assert re.search(r"level=warning msg=\"StopSignal SIGTERM failed to stop container stopme "
                     r"in 1 seconds, resorting to SIGKILL\"", p.stderr), p.stderr


def test_option_conflicts_in_podmans_words(rongqi):
    """620-option-conflicts "options that cannot be set together": --cpu-period/--cpu-quota
    with --cpus, --no-hosts with --add-host, --platform with --arch/--os (create and pull),
    either order; nothing is made."""
    for cmd in ("create", "run"):
        for a, b, name in (("--cpu-period=1", "--cpus=2", "--cpu-period"),
                           ("--cpu-quota=1", "--cpus=2", "--cpu-quota"),
                           ("--no-hosts", "--add-host=foo:1.1.1.1", "--no-hosts")):
            other = "--add-host" if name == "--no-hosts" else "--cpus"
            for args in ((a, b), (b, a)):
                p = rongqi(cmd, *args, "busybox", check=False)
                assert (p.returncode, p.stderr) == (
                    125, f"Error: {name} and {other} cannot be set together\n"), args
    for opt in ("--arch=bar", "--os=bar"):
        for cmd in ("create", "pull"):
            p = rongqi(cmd, "--platform=foo", opt, "sdfsdf", check=False)
            assert (p.returncode, p.stderr) == (
                125, "Error: --platform option can not be specified with --arch or --os\n")
    assert rongqi.ids() == []


def test_cpu_period_quota_and_no_hosts_take_effect(rongqi):
    """The flags of 620-option-conflicts work alone: the CFS quota and period reach the
    cgroup (and inspect), --no-hosts leaves the image's /etc/hosts in place."""
    out = rongqi("run", "--name", "cpu", "--cpu-period=50000", "--cpu-quota=25000", "busybox",
                 "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                 "/sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || "
                 "cat /sys/fs/cgroup/cpu.max").stdout.split()
    assert out == ["25000", "50000"], out
    assert rongqi("inspect", "-f", "{{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}}",
                  "cpu").stdout == "25000 50000\n"
    mine = rongqi("run", "--rm", "busybox", "cat", "/etc/hosts").stdout
    theirs = rongqi("run", "--rm", "--no-hosts", "busybox", "cat", "/etc/hosts", check=False)
    assert "localhost" in mine and theirs.stdout != mine


def test_run_details_as_podmans_030_run_checks_them(rongqi, tmp_path):
    """030-run: "user namespace preserved root ownership" (--privileged says nothing on
    stderr: no capability the runtime lacks is asked for), "Verify /run/.containerenv exist"
    (empty unless --privileged), "--net=host and --port prints warning", "--kernel-memory
    warning", "create --security-opt" (no-new-privileges:true), "--attach stdin prints
    container ID", "with log-opt option" (LogConfig.Size as podman prints it), "--log-driver"
    (none: no LogPath); "save --quiet"; "failed --rm" (a port in use is exit 126)."""
    p = rongqi("run", "--rm", "--privileged", "busybox", "stat", "-c", "%u:%g:%n", "/etc")
    assert (p.stdout, p.stderr) == ("0:0:/etc\n", "")
    assert rongqi("run", "--rm", "busybox", "stat", "-c", "%s", "/run/.containerenv").stdout \
        == "0\n"
    assert "name=" in rongqi("run", "--rm", "--privileged", "busybox", "cat",
                             "/run/.containerenv").stdout
    p = rongqi("run", "--rm", "-p", "8080", "--net=host", "busybox", "echo", "hi")
    assert p.stdout == "hi\n" and p.stderr.startswith(
        "Port mappings have been discarded as one of the Host, Container, Pod, and None "
        "network modes are in use\n")
    p = rongqi("run", "--rm", "--kernel-memory", "100", "busybox", "true")
    assert "The --kernel-memory flag is no longer supported. This flag is a noop." in p.stderr
    for opt in ("no-new-privileges=true", "no-new-privileges:true", "no-new-privileges"):
        rongqi("rm", rongqi("create", "--security-opt", opt, "busybox").stdout.strip())
    p = rongqi("run", "--name", "ai", "--attach", "stdin", "busybox", "echo", "hello")
    assert p.stdout == rongqi("inspect", "-f", "{{.Id}}", "ai").stdout
    rongqi("run", "--name", "sz", "--log-opt", "max-size=7.047m", "busybox", "true")
    assert rongqi("inspect", "-f", "{{.HostConfig.LogConfig.Size}}", "sz").stdout == "7.047MB\n"
    rongqi("run", "--name", "nolog", "--log-driver", "none", "busybox", "true")
    assert rongqi("inspect", "-f", "[{{.HostConfig.LogConfig.Path}}]", "nolog").stdout == "[]\n"
    assert rongqi("save", "--quiet", "busybox", "-o", str(tmp_path / "a.tar")).stdout == ""
    import socket
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    try:
        p = rongqi("run", "-d", "-p", f"{s.getsockname()[1]}:80", "busybox", "true", check=False)
    finally:
        s.close()
    assert p.returncode == 126 and "address already in use" in p.stderr, p.stderr
    rongqi("rm", "-f", "ai", "sz", "nolog")


def test_a_mount_given_twice_noexec_volume_and_cpus_above_the_hosts(rongqi, tmp_path):
    """160-volumes "volume duplicates" (the same -v twice is one mount; two different ones
    on one destination are refused) and "exec/noexec" (a script on a noexec volume: 126,
    permission denied, not 127); 280-update "test all options" (--cpus above the host's
    count, as podman allows)."""
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    rongqi("run", "--rm", "-v", f"{d1}:/vol1", "-v", f"{d1}:/vol1", "busybox", "true")
    p = rongqi("run", "--rm", "-v", f"{d1}:/vol1", "-v", f"{d2}:/vol1", "busybox", "true",
               check=False)
    assert (p.returncode, p.stderr) == (125, "Error: /vol1: duplicate mount destination\n")
    rongqi("volume", "create", "nx")
    mp = rongqi("volume", "inspect", "--format", "{{.Mountpoint}}", "nx").stdout.strip()
    with open(f"{mp}/myscript", "w") as f:
        f.write("#!/bin/sh\necho got here\n")
    os.chmod(f"{mp}/myscript", 0o755)
    p = rongqi("run", "--rm", "-v", "nx:/vol:noexec", "busybox", "/vol/myscript", check=False)
    assert p.returncode == 126 and re.search("exec.* permission denied", p.stderr), p.stderr
    assert rongqi("run", "--rm", "-v", "nx:/vol", "busybox", "/vol/myscript").stdout \
        == "got here\n"
    cid = rongqi("run", "-d", "busybox", "sleep", "60").stdout.strip()
    many = (os.cpu_count() or 1) + 3
    rongqi("update", f"--cpus={many}", cid)
    quota = rongqi("exec", cid, "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null"
                   " || cut -d' ' -f1 /sys/fs/cgroup/cpu.max").stdout.strip()
    assert quota == str(many * 100000)
    rongqi("rm", "-f", "-t", "0", cid)
    rongqi("volume", "rm", "nx")
