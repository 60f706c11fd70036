"""Device rules a container gets: linux.devices creates nodes, only linux.resources.devices allows them.

runc's rule: the config's resource rules, then runc's always-allowed defaults; a node listed in
linux.devices gets no implicit allow. Checked on the rules themselves, and against the kernel on
both enforcement paths: the v1 devices controller (this host's, in a real container: see
tests/security) and the v2 eBPF filter (in the hybrid host's cgroup2 tree).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from rongqi.linux import cgroups
from rongqi.linux.cgroups import Cgroup
from rongqi.oci.creation import _with_default_devices
from rongqi.oci.spec import parse as parse_spec
from support.plugin import new_id

UNIFIED_ROOT = "/sys/fs/cgroup/unified"
KMSG = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}


def _spec(devices: list[dict], rules: list[dict]):
    return parse_spec({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                       "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                       "linux": {"namespaces": [{"type": "mount"}], "devices": devices,
                                 "resources": {"devices": rules}}})


def _allows(rules, type_: str, major: int, minor: int, access: str) -> bool:
    """The last matching rule decides, as in the kernel's v1 lists and runc's eBPF program."""
    verdict = False
    for r in rules:
        if r.type not in ("a", type_) or r.major not in (None, major) or r.minor not in (None, minor):
            continue
        if r.allow and set(access) <= set(r.access):
            verdict = True
        elif not r.allow and set(access) & set(r.access):
            verdict = False
    return verdict


def test_a_node_in_linux_devices_gets_no_implicit_allow_rule():
    res = _with_default_devices(_spec([KMSG], [{"allow": False, "access": "rwm"}]))
    assert not _allows(res.devices, "c", 1, 11, "w")
    assert not _allows(res.devices, "c", 1, 11, "r")
    # runc's defaults stay allowed after the deny-all: /dev/null, /dev/zero, the pty master.
    assert _allows(res.devices, "c", 1, 3, "rw") and _allows(res.devices, "c", 1, 5, "rw")
    assert _allows(res.devices, "c", 5, 2, "rw")


def test_an_explicit_allow_rule_lets_the_node_be_used():
    res = _with_default_devices(_spec([KMSG], [{"allow": False, "access": "rwm"},
                                               {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"}]))
    assert _allows(res.devices, "c", 1, 11, "w")


@pytest.fixture
def v2_cg() -> Iterator[Cgroup]:
    if not os.path.isdir(UNIFIED_ROOT + "/"):
        pytest.skip("no cgroup2 tree at /sys/fs/cgroup/unified on this host")
    cg = Cgroup.open(f"/rongqi-test/{new_id('dev')}", mode="v2", root=UNIFIED_ROOT)
    cg.create()
    try:
        yield cg
    finally:
        cg.destroy()


OPEN_CODE = (
    "import os, sys\nsys.stdin.readline()\nres = []\n"
    "for dev, mode in (('/dev/kmsg', os.O_WRONLY), ('/dev/kmsg', os.O_RDONLY | os.O_NONBLOCK), ('/dev/null', os.O_WRONLY)):\n"
    "    try:\n        os.close(os.open(dev, mode)); res.append('ok')\n"
    "    except PermissionError:\n        res.append('denied')\n"
    "print(*res)\n"
)


@pytest.mark.root
def test_v2_filter_denies_a_node_from_linux_devices_under_deny_all(v2_cg: Cgroup):
    # The rules the runtime computes for the container, enforced by the kernel's eBPF hook.
    res = _with_default_devices(_spec([KMSG], [{"allow": False, "access": "rwm"}]))
    res_devices_only = type(res)()
    res_devices_only.devices = res.devices
    v2_cg.apply(res_devices_only)
    p = subprocess.Popen(["/usr/bin/python3.11", "-I", "-S", "-c", OPEN_CODE], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        v2_cg.add_pid(p.pid)
        out, _ = p.communicate("go\n", timeout=30)  # /dev/kmsg is opened, never written
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert out.split() == ["denied", "denied", "ok"]
    assert cgroups.UNIFIED in v2_cg.dirs
