"""--no-pivot: a container must not be able to mount a fresh procfs (or sysfs), as under runc.

runc's own test (tests/integration/no_pivot.bats, "must not expose bare /proc"): inside the
container, `unshare -mrpf` makes a new user, mount and pid namespace and mounts proc. The kernel
allows that only if a procfs is already fully visible in the mount namespace
(mount_too_revealing). After pivot_root only the container's own, masked /proc is there; after
--no-pivot's MS_MOVE the host's /proc and /sys were still there under the moved root, until the
runtime unmounted them first (as runc does). runc itself is run on the same bundle to compare.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from rongqi.image.busybox import make_bundle
from support.plugin import new_id

pytestmark = pytest.mark.root

MOUNT_PROC = "mkdir -p /tmp/p && mount -t proc none /tmp/p && echo MOUNTED"
MOUNT_SYS = "mkdir -p /tmp/s && mount -t sysfs none /tmp/s && echo MOUNTED"


def _bundle(tmp_path, script: str) -> str:
    # sysfs also needs a network namespace that the new user namespace owns (sysfs_get_tree):
    # without -n its mount is refused whatever the runtime left visible.
    unshare = "-mrpfn" if script == MOUNT_SYS else "-mrpf"
    bundle = make_bundle(str(tmp_path / "bundle"), ["unshare", unshare, "sh", "-c", script],
                         cgroups_path=f"/rongqi-test/{new_id('np')}")
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    # runc spec's capabilities plus CAP_SETFCAP (to map root in the new user namespace), no
    # seccomp: what runc's test uses. A writable /tmp for the mount point.
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP"]
    cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    cfg["linux"].pop("seccomp", None)
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]})
    json.dump(cfg, open(cfg_path, "w"))
    return bundle


def _run(runtime: str, root: str, bundle: str, *flags: str) -> subprocess.CompletedProcess:
    cid = new_id("np")
    try:
        return subprocess.run([runtime, "--root", root, "run", *flags, "-b", bundle, cid], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run([runtime, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)


def _host_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if line.split(" - ")[1].split()[0] in ("proc", "sysfs")}


@pytest.mark.parametrize("script", [MOUNT_PROC, MOUNT_SYS], ids=["proc", "sysfs"])
@pytest.mark.parametrize("flags", [("--no-pivot",), ()], ids=["no-pivot", "pivot"])
def test_new_user_namespace_in_the_container_cannot_mount_a_fresh_procfs_or_sysfs(oci_binary, tmp_path, flags, script):
    before = _host_mounts()
    bundle = _bundle(tmp_path, script)
    r = _run(oci_binary, str(tmp_path / "root"), bundle, *flags)
    assert "MOUNTED" not in r.stdout, r.stdout + r.stderr
    assert r.returncode != 0 and "permission denied" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    # The host's own /proc and /sys were unmounted in the container's namespace only.
    assert _host_mounts() == before


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
@pytest.mark.parametrize("flags", [("--no-pivot",), ()], ids=["no-pivot", "pivot"])
def test_runc_refuses_the_same_mount(tmp_path, flags):
    # The reference: runc gives the same answer on this bundle.
    r = _run("runc", str(tmp_path / "runc-root"), _bundle(tmp_path, MOUNT_PROC), *flags)
    assert "MOUNTED" not in r.stdout and "permission denied" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def test_no_pivot_still_runs_the_container_in_its_own_root_with_its_own_proc(oci_binary, tmp_path):
    bundle = make_bundle(str(tmp_path / "bundle"), ["sh", "-c", "test -x /bin/busybox && echo own-root; "
                                                                "grep -c . /proc/self/mountinfo >/dev/null && echo proc-ok; "
                                                                "ls /sys/kernel >/dev/null && echo sys-ok"],
                         cgroups_path=f"/rongqi-test/{new_id('np')}")
    r = _run(oci_binary, str(tmp_path / "root"), bundle, "--no-pivot")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["own-root", "proc-ok", "sys-ok"]
