"""What the runtime-spec allows and runc accepts, rongqi-oci accepts too, doing what it can.

A hostname set in a uts namespace joined by path; no mount namespace (the container keeps the
runtime's); a device fileMode with the file-type bits set (podman sends 0o20666); capabilities
the runtime's own bounding set lacks (the spec: warn and go on).
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess

import pytest

from support.oci_cli import oci, wait_status

pytestmark = pytest.mark.root


def edit_config(bundle: str, change) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    change(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f)


def run(binary: str, root: str, bundle: str, cid: str, *global_flags: str, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--root", root, *global_flags, "run", "-b", bundle, cid], capture_output=True,
                          text=True, timeout=60, preexec_fn=preexec)


def init_pid(root: str, cid: str) -> int:
    with open(os.path.join(root, cid, "state.json")) as f:
        return json.load(f)["pid"]


def test_hostname_is_set_in_a_uts_namespace_joined_by_path(oci_binary, runtime_root, bundle_factory, unique_id):
    # runc: the hostname is written in the joined namespace (its validator only asks for a uts
    # namespace in the list, new or joined).
    first = bundle_factory(["sleep", "30"], hostname="first")
    r = oci(oci_binary, runtime_root, "run", "-d", "-b", first, unique_id)
    assert r.returncode == 0, r.stderr
    wait_status(oci_binary, runtime_root, unique_id, "running")
    uts = f"/proc/{init_pid(runtime_root, unique_id)}/ns/uts"
    second = bundle_factory(["hostname"], hostname="second")
    edit_config(second, lambda c: [ns.__setitem__("path", uts) for ns in c["linux"]["namespaces"]
                                   if ns["type"] == "uts"])
    r = run(oci_binary, runtime_root, second, unique_id + "-b")
    assert (r.returncode, r.stdout) == (0, "second\n"), r.stderr
    r = oci(oci_binary, runtime_root, "exec", unique_id, "hostname")
    assert r.stdout == "second\n"  # the same namespace: the first container sees it too


def test_device_file_mode_with_the_file_type_bits_is_accepted(oci_binary, runtime_root, bundle_factory, unique_id):
    # podman --privileged sends every host device with fileMode = st_mode (0o20666 for a char
    # device); runc ORs the type in and uses the rest.
    bundle = bundle_factory(["sh", "-c", "ls -ln /dev/rongqi-null; echo x > /dev/rongqi-null && echo written"])
    edit_config(bundle, lambda c: c["linux"].__setitem__("devices", [
        {"path": "/dev/rongqi-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o20640, "uid": 0, "gid": 0}]))
    r = run(oci_binary, runtime_root, bundle, unique_id)
    assert r.returncode == 0, r.stderr
    mode, _, _, _, major, minor = r.stdout.split()[:6]
    assert (mode, major, minor) == ("crw-r-----", "1,", "3"), r.stdout
    assert r.stdout.endswith("written\n")


def test_device_file_mode_of_another_file_type_is_refused(oci_binary, runtime_root, bundle_factory, unique_id):
    bundle = bundle_factory(["true"])
    edit_config(bundle, lambda c: c["linux"].__setitem__("devices", [
        {"path": "/dev/rongqi-null", "type": "c", "major": 1, "minor": 3, "fileMode": stat.S_IFBLK | 0o666}]))
    r = run(oci_binary, runtime_root, bundle, unique_id)
    assert r.returncode == 1
    assert "linux.devices[0].fileMode" in r.stderr and "block device" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


CAP_SYS_TIME = 25


def drop_from_bounding_set() -> None:
    """In the runtime's process, before exec: a bounding set without CAP_SYS_TIME, as this host's
    root lacks CAP_SYS_RESOURCE."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, CAP_SYS_TIME, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


def test_a_capability_the_runtime_lacks_is_warned_about_and_left_out(oci_binary, runtime_root, bundle_factory,
                                                                    unique_id, tmp_path):
    # runc 1.1.5 fails here ("unable to apply caps: operation not permitted"); the spec says a
    # capability that cannot be granted is logged as a warning and the container runs.
    bundle = bundle_factory(["sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"])

    def want_sys_time(c):
        for name in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][name].append("CAP_SYS_TIME")

    edit_config(bundle, want_sys_time)
    r = run(oci_binary, runtime_root, bundle, unique_id, preexec=drop_from_bounding_set)
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "CAP_SYS_TIME" in r.stderr, r.stderr
    eff, bnd = (int(line.split()[1], 16) for line in r.stdout.splitlines())
    assert not eff & (1 << CAP_SYS_TIME) and not bnd & (1 << CAP_SYS_TIME)
    assert eff & (1 << 5)  # CAP_KILL, asked for too, is granted
    # With --log, the warning is a log line (containerd's shim passes --log), not stderr.
    log = tmp_path / "log.json"
    r = run(oci_binary, runtime_root, bundle, unique_id + "-b", "--log", str(log), "--log-format", "json",
            preexec=drop_from_bounding_set)
    assert r.returncode == 0, r.stderr
    assert "CAP_SYS_TIME" not in r.stderr
    warnings = [json.loads(line) for line in log.read_text().splitlines() if '"warning"' in line]
    assert len(warnings) == 1 and "CAP_SYS_TIME" in warnings[0]["msg"], log.read_text()


def without_mount_namespace(c: dict) -> None:
    c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "mount"]
    c["mounts"] = []
    c["linux"].pop("maskedPaths", None)
    c["linux"].pop("readonlyPaths", None)
    c["root"]["readonly"] = False


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def test_without_a_mount_namespace_the_container_keeps_the_runtimes(oci_binary, runtime_root, bundle_factory,
                                                                   unique_id):
    # The spec: a namespace not in the list is the runtime's. runc then chroots into the root
    # (and, with mounts in the config, mounts them in the host's namespace and leaves them
    # there); rongqi-oci chroots and mounts nothing (the config may not ask it to).
    bundle = bundle_factory(["sleep", "30"])
    edit_config(bundle, without_mount_namespace)
    r = oci(oci_binary, runtime_root, "run", "-d", "-b", bundle, unique_id)
    assert r.returncode == 0, r.stderr
    wait_status(oci_binary, runtime_root, unique_id, "running")
    pid = init_pid(runtime_root, unique_id)
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    assert os.path.realpath(f"/proc/{pid}/root") == os.path.realpath(os.path.join(bundle, "rootfs"))
    r = oci(oci_binary, runtime_root, "exec", unique_id, "sh", "-c",
            "test -e /linuxrc && echo in-root; test -e /etc/debian_version || echo not-the-host")
    assert (r.returncode, r.stdout) == (0, "in-root\nnot-the-host\n"), r.stderr
    assert mounts_under(bundle) == []
    assert oci(oci_binary, runtime_root, "delete", "--force", unique_id).returncode == 0


@pytest.mark.parametrize("change, words", [
    (lambda c: c["mounts"].append({"destination": "/proc", "type": "proc", "source": "proc"}),
     "mounts[0]: needs a mount namespace"),
    (lambda c: c["linux"].__setitem__("maskedPaths", ["/proc/kcore"]), "linux.maskedPaths: needs a mount namespace"),
    (lambda c: c["root"].__setitem__("readonly", True), "root.readonly: needs a mount namespace"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3}]),
     "linux.devices: needs a mount namespace"),
])
def test_without_a_mount_namespace_what_needs_one_is_refused(oci_binary, runtime_root, bundle_factory, unique_id,
                                                             change, words):
    # runc refuses masked and read-only paths here ("unable to restrict sys entries without a
    # private MNT namespace") and mounts the rest into the host's namespace, for good; rongqi-oci
    # refuses each thing that would change the host's mounts or the bundle's files.
    bundle = bundle_factory(["true"])
    edit_config(bundle, without_mount_namespace)
    edit_config(bundle, change)
    r = oci(oci_binary, runtime_root, "run", "-b", bundle, unique_id)
    assert r.returncode == 1 and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert mounts_under(bundle) == []


def test_a_hostname_in_the_runtimes_own_uts_namespace_is_refused(oci_binary, runtime_root, bundle_factory, unique_id):
    # Joining the runtime's own uts namespace by path and naming a hostname would rename the
    # host (runc does it); refused, naming the field. The name asked for is the host's own, so
    # that a regression fails this test without renaming the machine.
    before = os.uname().nodename
    bundle = bundle_factory(["true"], hostname=before)
    edit_config(bundle, lambda c: [ns.__setitem__("path", f"/proc/{os.getpid()}/ns/uts")
                                   for ns in c["linux"]["namespaces"] if ns["type"] == "uts"])
    r = run(oci_binary, runtime_root, bundle, unique_id)
    assert r.returncode == 1 and "hostname:" in r.stderr and "runtime's own" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


def test_a_sysctl_in_the_runtimes_own_namespace_is_refused(oci_binary, runtime_root, bundle_factory, unique_id):
    # runc: `sysctl "net...." not allowed in host network namespace` when the netns joined by
    # path is the runtime's. The value asked for is the host's current one, so that a regression
    # fails this test without changing the machine.
    current = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    bundle = bundle_factory(["true"])

    def change(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{os.getpid()}/ns/net"
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": current}

    edit_config(bundle, change)
    r = run(oci_binary, runtime_root, bundle, unique_id)
    assert r.returncode == 1 and "linux.sysctl.net.ipv4.ip_forward" in r.stderr and "runtime's own" in r.stderr, \
        r.stderr
    assert not os.path.exists(os.path.join(runtime_root, unique_id))


def test_a_container_without_a_proc_mount_is_started_through_a_procfs_of_its_own(oci_binary, runtime_root,
                                                                                 bundle_factory, unique_id):
    # The init reopens exec.fifo from its O_PATH fd through /proc/PID/fd (it holds no directory
    # of the host while it waits for start): with no procfs at /proc in the container, through a
    # procfs mounted nowhere (fsopen). The image's /proc is an empty directory here.
    bundle = bundle_factory(["sh", "-c", "ls -A /proc | wc -l"])
    edit_config(bundle, lambda c: (c.__setitem__("mounts", [m for m in c["mounts"] if m["destination"] != "/proc"]),
                                   c["linux"].__setitem__("maskedPaths", []),
                                   c["linux"].__setitem__("readonlyPaths", [])))
    r = run(oci_binary, runtime_root, bundle, unique_id)
    assert (r.returncode, r.stdout) == (0, "0\n"), r.stderr
