"""Escape attempts from inside real containers: the default config holds, a privileged one does not.

Every attempt runs in a container made from `rongqi-oci spec`'s config (docker's capabilities
and seccomp profile, masked and readonly paths, no_new_privs); each test asserts which call
failed and with which errno. The privileged config (all the host's capabilities, no seccomp, no
masks, no no_new_privs, all devices) runs the same attempts to show that the defences, not the
kernel or the probe, made them fail. See docs/security-tests.md for the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rongqi.linux import exeguard
from escape_probe import Outcome, Run, host_block_device, interpreter_tree, make_bundle, run_probe, shared_libraries
from support.plugin import new_id

pytestmark = pytest.mark.root

HOST_HOSTNAME_ATTEMPT = "rq-escape-pwned"
# A mask that this kernel has (kcore and sysrq-trigger are compiled out here: see
# test_kcore_is_masked) and a readonly path.
MASK = "/proc/timer_list"
RO_PATH = "/proc/sys"
# A node the runtime makes (linux.devices) that linux.resources.devices denies: creating a node
# is no permission to use it (runc adds no rule for linux.devices either).
KMSG_NODE = {"path": "/dev/rq-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}


def attempts(marker: str, sleeper: int) -> list[str]:
    return [
        # First, for a few seconds: watch for `rongqi-oci exec` processes entering the container.
        "runtime_exe=3",
        "mount",
        f"umount_mask:umount={MASK}",
        f"umount_ro:umount={RO_PATH}",
        "userns",
        "keyctl",
        f"ptrace={sleeper}",
        "reboot",
        "module",
        f"mknod_blk:mknod=b:{host_block_device()}",
        # /dev/kmsg: a char device outside the always-allowed list, readable without harm.
        "mknod_chr:mknod=c:1:11",
        # The same device, created by the runtime from linux.devices (KMSG_NODE): still denied.
        f"kmsg:devopen={KMSG_NODE['path']}",
        "proc_sys",
        "sysrq",
        "sys",
        "kcore",
        f"chroot={marker}",
        f"proc1root:stat=/proc/1/root{marker}",
        f"hostroot:stat=/proc/{sleeper}/root{marker}",
        "selfexe",
        f"hostname={HOST_HOSTNAME_ATTEMPT}",
        "time",
    ]


def _run(oci_binary, suite_root, tmp_path_factory, probe_binary, args, name, exec_while_running=False, **opts) -> Run:
    opts.setdefault("devices", [KMSG_NODE])
    bundle, _ = make_bundle(oci_binary, tmp_path_factory.mktemp(name) / "bundle", probe_binary, args, **opts)
    return run_probe(oci_binary, suite_root, bundle, exec_while_running=exec_while_running)


@pytest.fixture(scope="module")
def default(oci_binary, suite_root, tmp_path_factory, probe_binary, host_marker, host_sleeper) -> Run:
    return _run(oci_binary, suite_root, tmp_path_factory, probe_binary, attempts(host_marker, host_sleeper),
                "default", exec_while_running=True, privileged=False)


@pytest.fixture(scope="module")
def privileged(oci_binary, suite_root, tmp_path_factory, probe_binary, host_marker, host_sleeper) -> Run:
    return _run(oci_binary, suite_root, tmp_path_factory, probe_binary, attempts(host_marker, host_sleeper),
                "privileged", exec_while_running=True, privileged=True)


@pytest.fixture(scope="module")
def privileged_masked(oci_binary, suite_root, tmp_path_factory, probe_binary) -> Run:
    """Privileged, but with the masks and readonly paths kept: can full root lift them?"""
    return _run(oci_binary, suite_root, tmp_path_factory, probe_binary,
                [f"umount_mask:umount={MASK}", f"umount_ro:umount={RO_PATH}", "proc_sys"],
                "privileged-masked", privileged=True, masked=True)


@pytest.fixture(scope="module")
def privileged_host_pid(oci_binary, suite_root, tmp_path_factory, probe_binary, host_marker, host_sleeper) -> Run:
    """Privileged and in the host's pid namespace (no reboot attempt here: it would be the host's)."""
    return _run(oci_binary, suite_root, tmp_path_factory, probe_binary,
                [f"ptrace={host_sleeper}", f"hostroot:stat=/proc/{host_sleeper}/root{host_marker}"],
                "privileged-hostpid", privileged=True, host_pid=True)


@pytest.fixture(scope="module")
def setuid_default(oci_binary, suite_root, tmp_path_factory, probe_binary) -> Run:
    return _run(oci_binary, suite_root, tmp_path_factory, probe_binary, ["setuid=/bin/probe-suid"],
                "setuid-default", privileged=False, uid=1000)


@pytest.fixture(scope="module")
def setuid_privileged(oci_binary, suite_root, tmp_path_factory, probe_binary) -> Run:
    return _run(oci_binary, suite_root, tmp_path_factory, probe_binary, ["setuid=/bin/probe-suid"],
                "setuid-privileged", privileged=True, uid=1000)


def host_can_open_block_devices(tmp_path: Path) -> bool:
    """This machine's sandbox may refuse root itself the opening of block device nodes."""
    node = tmp_path / "blk"
    major, minor = (int(x) for x in host_block_device().split(":"))
    os.mknod(node, 0o600 | 0o060000, os.makedev(major, minor))
    try:
        os.close(os.open(node, os.O_RDONLY | os.O_NONBLOCK))
        return True
    except PermissionError:
        return False
    finally:
        node.unlink()


# -- mount, umount --------------------------------------------------------------------------


def test_mount_is_refused_with_eperm(default):
    assert (default["mount"].errno, default["mount"].stage) == ("EPERM", "mount")


def test_privileged_container_can_mount(privileged):
    assert privileged["mount"].status == "ok"


def test_masks_over_proc_cannot_be_unmounted(default):
    assert (default["umount_mask"].errno, default["umount_mask"].stage) == ("EPERM", "umount")
    assert (default["umount_ro"].errno, default["umount_ro"].stage) == ("EPERM", "umount")


def test_privileged_root_can_lift_the_masks(privileged_masked):
    assert privileged_masked["umount_mask"].status == "ok"
    assert privileged_masked["umount_ro"].status == "ok"


def test_privileged_config_has_no_masks_to_lift(privileged):
    # Nothing is mounted over them: the default config's EPERM was about a real mount.
    assert privileged["umount_mask"].errno == "EINVAL"
    assert privileged["umount_ro"].errno == "EINVAL"


# -- namespaces, keys, ptrace ----------------------------------------------------------------


def test_new_user_namespace_is_refused(default):
    assert (default["userns"].errno, default["userns"].stage) == ("EPERM", "unshare")


def test_privileged_container_can_make_a_user_namespace(privileged):
    assert privileged["userns"].status == "ok"


def test_keyctl_is_refused(default):
    assert (default["keyctl"].errno, default["keyctl"].stage) == ("EPERM", "keyctl")


def test_privileged_container_can_join_a_new_keyring(privileged):
    assert privileged["keyctl"].status == "ok"


def test_outside_process_cannot_be_traced(default):
    # The host's process does not exist in the container's pid namespace.
    assert (default["ptrace"].errno, default["ptrace"].stage) == ("ESRCH", "attach")


def test_pid_namespace_hides_outside_processes_even_from_full_root(privileged):
    assert privileged["ptrace"].errno == "ESRCH"


def test_privileged_container_in_the_hosts_pid_namespace_can_trace_host_processes(privileged_host_pid):
    assert privileged_host_pid["ptrace"].status == "ok"


# -- reboot, modules, time, hostname ---------------------------------------------------------


def test_reboot_is_refused(default):
    assert (default["reboot"].errno, default["reboot"].stage) == ("EPERM", "reboot")


def test_privileged_reboot_reaches_the_pid_namespace_which_refuses_cad_off(privileged):
    # Past the capability and seccomp checks; a pid namespace accepts only restart/halt,
    # which would end the container, not the machine.
    assert privileged["reboot"].errno == "EINVAL"


def test_kernel_module_load_is_refused(default):
    assert (default["module"].errno, default["module"].stage) == ("EPERM", "init_module")


def test_privileged_module_load_reaches_the_kernel(privileged):
    # The empty image gets past the caller checks: ENOEXEC, or ENOSYS on a kernel built
    # without modules (this one). Either is the kernel's answer, not a policy's.
    assert privileged["module"].errno in ("ENOEXEC", "ENOSYS")


def test_clock_cannot_be_set(default):
    assert (default["time"].errno, default["time"].stage) == ("EPERM", "settimeofday")


def test_privileged_container_passes_the_clock_permission_check(privileged):
    assert privileged["time"].status == "ok"


def test_hostname_cannot_be_changed(default):
    assert (default["hostname"].errno, default["hostname"].stage) == ("EPERM", "sethostname")
    assert default.host_hostname_after == default.host_hostname_before


def test_privileged_hostname_change_stays_in_the_uts_namespace(privileged):
    assert privileged["hostname"].status == "ok"
    assert privileged["proc_sys"].status == "ok"  # /proc/sys/kernel/hostname written too
    assert privileged.host_hostname_after == privileged.host_hostname_before != HOST_HOSTNAME_ATTEMPT


# -- devices, /proc, /sys --------------------------------------------------------------------


def test_block_device_node_can_be_made_but_not_opened(default):
    # CAP_MKNOD is in docker's default set; the devices cgroup refuses the open.
    assert (default["mknod_blk"].errno, default["mknod_blk"].stage) == ("EPERM", "open")


def test_char_device_outside_the_allowed_list_cannot_be_opened(default):
    assert (default["mknod_chr"].errno, default["mknod_chr"].stage) == ("EPERM", "open")


def test_device_node_from_linux_devices_is_denied_by_the_deny_all_rule(default):
    # The runtime made the node (linux.devices) but the config's devices cgroup denies it.
    assert (default["kmsg"].errno, default["kmsg"].stage) == ("EPERM", "open")


def test_privileged_container_can_open_the_device_node_the_runtime_made(privileged):
    assert privileged["kmsg"].status == "ok"


def test_privileged_container_can_read_a_device_it_made(privileged):
    assert privileged["mknod_chr"].status == "ok" and int(privileged["mknod_chr"].field("read")) > 0


def test_privileged_container_can_read_a_block_device(privileged, tmp_path):
    if not host_can_open_block_devices(tmp_path):
        pytest.skip("this machine refuses root itself the opening of block device nodes")
    assert privileged["mknod_blk"].status == "ok"


def test_proc_sys_is_read_only(default):
    assert (default["proc_sys"].errno, default["proc_sys"].stage) == ("EROFS", "open")


def test_sys_is_read_only(default):
    assert (default["sys"].errno, default["sys"].stage) == ("EROFS", "open")


def test_privileged_container_can_open_sys_for_writing(privileged):
    assert privileged["sys"].status == "ok"


def test_sysrq_trigger_cannot_be_written(default):
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off)")
    assert (default["sysrq"].errno, default["sysrq"].stage) == ("EROFS", "open")
    assert default["sysrq"].status == "err"


def test_privileged_container_can_open_sysrq_trigger(privileged):
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off)")
    assert privileged["sysrq"].status == "ok"


def test_kcore_is_masked(default):
    if not os.path.exists("/proc/kcore"):
        pytest.skip("this kernel has no /proc/kcore (CONFIG_PROC_KCORE off)")
    k = default["kcore"]
    assert (k.field("read"), k.field("chardev")) == ("0", "1:3")  # /dev/null bound over it


def test_privileged_container_reads_kcore(privileged):
    if not os.path.exists("/proc/kcore"):
        pytest.skip("this kernel has no /proc/kcore (CONFIG_PROC_KCORE off)")
    assert privileged["kcore"].field("elf") == "1"


# -- the root: chroot, /proc/PID/root, /proc/self/exe ---------------------------------------


def test_chroot_escape_ends_at_the_containers_root(default):
    # chroot itself is allowed (CAP_SYS_CHROOT): the walk up stops at the pivoted root.
    assert (default["chroot"].errno, default["chroot"].stage) == ("ENOENT", "stat-marker")


def test_chroot_escape_fails_for_full_root_too(privileged):
    # The wall is pivot_root, not a capability: no config flag lifts it.
    assert (privileged["chroot"].errno, privileged["chroot"].stage) == ("ENOENT", "stat-marker")


def test_proc_1_root_is_the_containers_own_root(default, privileged):
    assert default["proc1root"].errno == "ENOENT"
    assert privileged["proc1root"].errno == "ENOENT"


def test_host_process_root_is_out_of_reach(default):
    assert default["hostroot"].errno == "ENOENT"  # no such pid in the container


def test_privileged_container_in_the_hosts_pid_namespace_reaches_the_host_through_proc(privileged_host_pid):
    assert privileged_host_pid["hostroot"].status == "ok"


def test_proc_self_exe_is_the_containers_own_binary_and_busy(default):
    s = default["selfexe"]
    assert s.status == "err" and s.words[0] in ("ETXTBSY", "EROFS")
    assert s.field("target") == "/bin/probe"


# -- the runtime's executable during exec (CVE-2019-5736 class) ------------------------------


def test_runtime_executable_cannot_be_opened_from_inside_during_exec(default):
    r = default["runtime_exe"]
    assert default.execs > 0
    seen = int(r.field("hidden")) + int(r.field("visible"))
    assert seen > 0, "no `rongqi-oci exec` process was caught in the container: the check proved nothing"
    assert r.field("write_opened") == "0" and r.field("read_opened") == "0"
    # Nor its open files (the launcher script) or its root (the host's /).
    assert r.field("fds_opened") == "0" and r.field("root_opened") == "0"
    # Non-dumpable: even readlink of /proc/PID/exe is refused.
    assert r.field("visible") == "0"
    assert {e.split(":")[0] for e in r.field("write_errnos").split(",")} <= {"EACCES", "EPERM"}


def test_privileged_container_can_reach_the_runtime_executable_during_exec(privileged):
    # CAP_SYS_PTRACE crosses the non-dumpable guard; the kernel's ETXTBSY is then the only
    # thing between the container and the host's interpreter.
    r = privileged["runtime_exe"]
    assert int(r.field("read_opened")) > 0
    assert int(r.field("fds_opened")) > 0 and int(r.field("root_opened")) > 0
    assert r.field("write_opened") == "0"


# -- setuid under no_new_privs ---------------------------------------------------------------


def _euid(run: Run) -> int:
    for line in run.output.splitlines():
        if line.startswith("euid "):
            return int(line.split()[1])
    raise AssertionError(f"the setuid probe printed no euid:\n{run.output}")


def test_setuid_binary_does_not_raise_privileges_under_no_new_privs(setuid_default):
    assert setuid_default["setuid"].field("uid") == "1000"
    assert _euid(setuid_default) == 1000


def test_setuid_binary_gives_root_without_no_new_privs(setuid_privileged):
    assert _euid(setuid_privileged) == 0


# -- CVE-2019-5736: a `#!/proc/self/exe` script, then the runtime's executable reopened -------

EXE_ATTACK_EXECS = 25


def _launcher_of(oci_binary: str, interpreter: str) -> list[str]:
    with open(oci_binary, "rb") as f:
        first = f.readline()
    if not (first.startswith(b"#!") and b"python" in first):
        pytest.skip(f"{oci_binary} is not a Python launcher script; the attack is aimed at its interpreter")
    return [interpreter, "-IS", oci_binary]


def _exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, interpreter: str, name: str,
                privileged: bool = False) -> Run:
    """The probe watches for a process of the container whose executable is the runtime's,
    while `rongqi-oci exec` (started by interpreter) runs /evil (`#!/proc/self/exe`) 25 times:
    each time the kernel runs the exec's own executable, the runtime's interpreter, as a
    process of the container (which starts with the image's C library, finds no Python
    library and exits)."""
    bundle, _ = make_bundle(oci_binary, tmp_path_factory.mktemp(name) / "bundle", probe_binary,
                            ["exe_reopen=60"], privileged=privileged, files={"/evil": "#!/proc/self/exe\n"},
                            # An image with a C library, as most are: the interpreter can start.
                            host_files=shared_libraries(interpreter))
    return run_probe(oci_binary, suite_root, bundle, exec_while_running=True,
                     launcher=_launcher_of(oci_binary, interpreter), exec_argv=("/evil",),
                     max_execs=EXE_ATTACK_EXECS, after_execs=lambda: Path(bundle, "rootfs", "exe-attack-done").touch())


def _init_exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, interpreter: str, name: str) -> Run:
    """The same attack on a container's init: while the probe watches, a second container is
    run again and again in the probe's pid namespace (as a pod's containers share one) whose
    process is /evil, so each time the kernel runs the init's own executable, the runtime's
    interpreter, as a process the probe can see."""
    base = tmp_path_factory.mktemp(name)
    bundle, _ = make_bundle(oci_binary, base / "bundle", probe_binary, ["exe_reopen=60"], privileged=False,
                            files={"/evil": "#!/proc/self/exe\n"}, host_files=shared_libraries(interpreter))
    launcher = _launcher_of(oci_binary, interpreter)
    spec = json.loads(Path(bundle, "config.json").read_text())
    rounds = iter(range(1000))

    def run_evil(pid: int) -> None:
        b = base / f"evil{next(rounds)}"
        b.mkdir()
        cfg = json.loads(json.dumps(spec))
        cfg["root"]["path"] = os.path.join(bundle, "rootfs")  # the probe's own files
        cfg["process"]["args"] = ["/evil"]
        cfg["linux"]["cgroupsPath"] = f"/rongqi-test/{new_id('sec')}"
        cfg["linux"]["namespaces"] = [n if n["type"] != "pid" else {"type": "pid", "path": f"/proc/{pid}/ns/pid"}
                                      for n in cfg["linux"]["namespaces"]]
        (b / "config.json").write_text(json.dumps(cfg))
        cid = new_id("sec")
        try:
            subprocess.run([*launcher, "--root", suite_root, "run", "-b", str(b), cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=30)
        finally:
            subprocess.run([oci_binary, "--root", suite_root, "delete", "--force", cid], capture_output=True,
                           check=False, timeout=60)

    return run_probe(oci_binary, suite_root, bundle, exec_while_running=True, launcher=launcher,
                     max_execs=EXE_ATTACK_RUNS, instead_of_exec=run_evil,
                     after_execs=lambda: Path(bundle, "rootfs", "exe-attack-done").touch())


EXE_ATTACK_RUNS = 15


@pytest.fixture(scope="module")
def init_exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, private_interpreter) -> Run:
    return _init_exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, private_interpreter,
                            "init-exe-attack")


@pytest.fixture(scope="module")
def exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, private_interpreter) -> Run:
    """The runtime started from a writable interpreter: it must protect itself (re-exec)."""
    return _exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, private_interpreter, "exe-attack")


@pytest.fixture(scope="module")
def exe_attack_protected_launcher(oci_binary, suite_root, tmp_path_factory, probe_binary, private_interpreter) -> Iterator[Run]:
    """The runtime started from a read-only bind of the interpreter (what install.sh lays over
    the virtualenv's bin/python3): already protected, nothing to re-exec."""
    ro = interpreter_tree(tmp_path_factory.mktemp("ro-interp")) / "python3"
    ro.touch(mode=0o755)
    subprocess.run(["mount", "--bind", private_interpreter, str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro,nosuid,nodev", str(ro)], check=True)
        yield _exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, str(ro), "exe-attack-ro")
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


@pytest.fixture(scope="module")
def exe_attack_privileged(oci_binary, suite_root, tmp_path_factory, probe_binary, private_interpreter) -> Run:
    """The same from a privileged container: CAP_SYS_PTRACE also reaches the runtime's
    processes before their execve (non-dumpable is no wall for it), CAP_SYS_ADMIN could
    remount what it can reach."""
    return _exe_attack(oci_binary, suite_root, tmp_path_factory, probe_binary, private_interpreter,
                       "exe-attack-priv", privileged=True)


def _assert_never_opened_for_writing(run: Run, execs: int = EXE_ATTACK_EXECS) -> None:
    r = run["exe_reopen"]
    assert run.execs == execs
    # The attack reached the runtime's executable (else the test proves nothing) ...
    assert int(r.field("caught")) > 0, run.output
    # ... and never opened it for writing: each one held ends in EROFS, a read-only mount
    # (ETXTBSY only while a runtime process still ran the file).
    assert r.field("write_opened") == "0", r.line
    errnos = dict(e.split(":") for e in r.field("reopen_errnos").split(",") if e)
    assert set(errnos) <= {"EROFS", "ETXTBSY"} and int(errnos.get("EROFS", 0)) == int(r.field("caught")), r.line


def test_runtime_executable_cannot_be_reopened_for_writing_after_a_proc_self_exe_script(exe_attack):
    _assert_never_opened_for_writing(exe_attack)
    # The exec's process ran a protected interpreter that the runtime re-exec'd its helper through.
    assert exe_attack["exe_reopen"].field("exe").startswith(exeguard.GUARD_DIR + "/python-")


def test_a_containers_process_that_is_a_proc_self_exe_script_cannot_reopen_the_runtime_for_writing(
        init_exe_attack):
    # Issue 9's case: the container's own process is `#!/proc/self/exe`, run by its init.
    _assert_never_opened_for_writing(init_exe_attack, EXE_ATTACK_RUNS)
    assert init_exe_attack["exe_reopen"].field("exe").startswith(exeguard.GUARD_DIR + "/python-")


def test_runtime_started_from_a_protected_interpreter_is_not_reexecuted(exe_attack_protected_launcher):
    _assert_never_opened_for_writing(exe_attack_protected_launcher)
    # The exec's process ran the launcher's own (read-only) interpreter: no re-exec was needed.
    assert exe_attack_protected_launcher["exe_reopen"].field("exe").endswith("/ro-interp0/bin/python3")


# -- CVE-2019-16884: a rootfs whose /proc or /sys is a symlink -----------------------------


@pytest.mark.parametrize(("directory", "fstype"), [("proc", "proc"), ("sys", "sysfs")])
def test_rootfs_whose_proc_or_sys_is_a_symlink_is_refused(oci_binary, suite_root, tmp_path, probe_binary,
                                                         directory, fstype):
    # The image links /proc (or /sys) to a directory of its own, where it could keep fake
    # attr/exec or sysctl files for the runtime to write its labels and settings into.
    bundle, _ = make_bundle(oci_binary, tmp_path / "bundle", probe_binary, ["selfexe"], privileged=False)
    rootfs = Path(bundle, "rootfs")
    (rootfs / directory).rmdir()
    (rootfs / f"fake{directory}").mkdir()
    (rootfs / directory).symlink_to(f"fake{directory}")
    cid = new_id("sec")
    r = subprocess.run([oci_binary, "--root", suite_root, "run", "-d", "-b", bundle, cid],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    # runc: `error mounting "proc" to rootfs at "/proc": filesystem "proc" must be mounted on ordinary directory`
    assert f'filesystem "{fstype}" must be mounted on ordinary directory' in r.stderr
    assert not os.path.exists(os.path.join(suite_root, cid))  # nothing half-made stays
    assert not any((rootfs / f"fake{directory}").iterdir())  # and nothing was mounted or written there


def test_privileged_container_cannot_reopen_the_runtime_executable_for_writing_either(exe_attack_privileged):
    _assert_never_opened_for_writing(exe_attack_privileged)


# -- a container holding CAP_SYS_PTRACE (docker's --cap-add SYS_PTRACE) -----------------------
# CAP_SYS_PTRACE crosses the runtime's non-dumpable guard: a process of the container may open
# /proc/PID/root, cwd and fd/N of the runtime's processes it can see. What it finds there must be
# the container's own, never a directory of the host (the CVE-2016-9962 class: runc's init once
# held a dirfd of the host; its exec once showed up in the container before joining its mounts).


def test_a_created_containers_init_holds_no_directory_of_the_host(oci_binary, suite_root, tmp_path, probe_binary,
                                                                   host_marker):
    # The init waits for `start` (the container is "created") as the container's user, with
    # its capabilities: an exec'd process with CAP_SYS_PTRACE opens whatever fds it holds.
    # It held the state dir (the host's /run/...), from which ".." led to the host's root.
    bundle, _ = make_bundle(oci_binary, tmp_path / "bundle", probe_binary, ["selfexe"], privileged=False,
                            caps_add=("CAP_SYS_PTRACE",))
    cid = new_id("sec")
    oci = [oci_binary, "--root", suite_root]
    try:
        with tempfile.TemporaryFile("w+") as err:  # the init holds it: never a pipe
            r = subprocess.run([*oci, "create", "-b", bundle, cid], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err, timeout=60)
            err.seek(0)
            assert r.returncode == 0, err.read()
        r = subprocess.run([*oci, "exec", cid, "/bin/probe", f"reach_host=0,{host_marker}"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        o = Outcome(r.stdout.strip().splitlines()[-1])
        assert int(o.field("seen")) >= 1 and int(o.field("opened")) > 0, o.line  # the init's root, cwd, fds
        assert (o.field("reached"), o.field("via")) == ("0", "-"), o.line
    finally:
        subprocess.run([*oci, "delete", "--force", cid], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def ptrace_exec(oci_binary, suite_root, tmp_path_factory, probe_binary, host_marker) -> Run:
    return _run(oci_binary, suite_root, tmp_path_factory, probe_binary, [f"reach_host=8,{host_marker}"],
                "ptrace-exec", exec_while_running=True, privileged=False, caps_add=("CAP_SYS_PTRACE",))


def test_an_exec_is_seen_in_the_container_only_once_inside_its_root(ptrace_exec):
    # An exec's process is visible in the container's pid namespace from its clone on: it must
    # be born in the container's mount namespace and root, not join them later (its root and
    # cwd were the host's until then).
    o = ptrace_exec["reach_host"]
    assert ptrace_exec.execs > 0 and int(o.field("seen")) > 0, o.line  # the check saw exec processes
    assert (o.field("reached"), o.field("via")) == ("0", "-"), o.line


def test_an_in_process_callers_other_fds_never_reach_an_exec(oci_binary, suite_root, tmp_path, probe_binary,
                                                              host_marker):
    # The engine in `rongqi serve` calls the runtime in-process, from threads: what its process
    # holds open at the time (another container's state dir under its lock, pipes, a
    # cgroup.procs being written) was in every exec'd process until that closed its fds before
    # execve, visible to a container holding CAP_SYS_PTRACE. Here the caller holds a directory
    # of the host's while it execs into the container again and again.
    import time

    from rongqi.oci.inprocess import InProcessRuntime

    bundle, _ = make_bundle(oci_binary, tmp_path / "bundle", probe_binary, [f"reach_host=6,{host_marker}"],
                            privileged=False, caps_add=("CAP_SYS_PTRACE",))
    rt = InProcessRuntime(suite_root)
    cid = new_id("sec")
    held = os.open(os.path.dirname(host_marker), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDWR)
    proc = {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]}
    execs = 0
    with tempfile.TemporaryFile("w+") as out:
        try:
            rt.create(cid, bundle, stdio=(null, out.fileno(), out.fileno()))
            rt.start(cid)
            deadline = time.monotonic() + 30
            while rt.state(cid)["status"] == "running":
                assert time.monotonic() < deadline, "the probe container never stopped"
                try:
                    pid = rt.exec(cid, proc, stdio=(null, null, null))
                except Exception:  # noqa: BLE001 - the container stopped meanwhile
                    break
                os.waitpid(pid, 0)
                execs += 1
        finally:
            rt.delete(cid, force=True)
            os.close(held)
            os.close(null)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("reach_host ")]
    assert lines, "the probe printed nothing"
    o = Outcome(lines[-1])
    assert execs > 0 and int(o.field("seen")) > 0, o.line
    assert (o.field("reached"), o.field("via")) == ("0", "-"), o.line
