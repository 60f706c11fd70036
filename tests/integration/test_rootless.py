"""rongqi-oci run by an ordinary user: subordinate ids, newuidmap/newgidmap, state under $XDG_RUNTIME_DIR.

The suite (as root) makes throw-away users with useradd, gives them /etc/subuid and /etc/subgid
ranges, runs the runtime and rongqi.linux.idmap as them, and removes users and entries after.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.delegation import SUBGID, SUBUID, cgroup_hierarchies, drop_sub_entries, remove_user
from support.delegation import delegated_cgroup as delegated_cgroup_for
from support.plugin import SESSION_TAG

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
SRC = str(REPO / "src")


class User:
    def __init__(self, name: str):
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid

    def ranges(self, path: str) -> list[tuple[int, int]]:
        out = []
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] == self.name:
                    out.append((int(parts[1]), int(parts[2])))
        return out


def _make_user(name: str, subordinate: bool) -> User:
    if shutil.which("useradd") is None:
        pytest.skip("useradd is needed (apt-get install passwd)")
    remove_user(name)
    # useradd gives the user a free range in /etc/subuid and /etc/subgid (SUB_UID_COUNT in
    # login.defs), or none with the counts at 0.
    count = [] if subordinate else ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
    subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", *count, name], check=True,
                   capture_output=True)
    user = User(name)
    if subordinate and not (user.ranges(SUBUID) and user.ranges(SUBGID)):
        remove_user(name)
        pytest.skip("useradd gave no subordinate ids (SUB_UID_COUNT in /etc/login.defs)")
    if not subordinate:
        drop_sub_entries(name)
    return user


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    name = f"rqrl-{SESSION_TAG}"[:32]
    u = _make_user(name, subordinate=True)
    yield u
    remove_user(name)


@pytest.fixture(scope="module")
def user_without_subids() -> Iterator[User]:
    name = f"rqns-{SESSION_TAG}"[:32]
    u = _make_user(name, subordinate=False)
    yield u
    remove_user(name)


@pytest.fixture
def home(user: User) -> Iterator[Path]:
    """A world-traversable dir owned by the user (pytest's tmp dirs are root's and 0700)."""
    d = Path(tempfile.mkdtemp(prefix="rongqi-rootless-"))
    os.chmod(d, 0o755)
    (d / "xdg").mkdir(mode=0o700)
    os.chown(d, user.uid, user.gid)
    os.chown(d / "xdg", user.uid, user.gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_user(user: User, argv: list[str], home: Path | None = None, timeout: float = 60,
            detached: bool = False, cgroup: str | None = None, **kw) -> subprocess.CompletedProcess:
    """Run argv as the user; with cgroup, from inside that (delegated) cgroup in every hierarchy."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home or "/"),
           "USER": user.name, "LOGNAME": user.name}
    if home is not None:
        env["XDG_RUNTIME_DIR"] = str(home / "xdg")
    opts = {"env": env, "timeout": timeout, "text": True, "cwd": str(home) if home is not None else "/"}
    if cgroup is None:
        opts.update(user=user.uid, group=user.gid, extra_groups=[])
    else:
        # cgroup v2 lets a user move a process only between cgroups under one it may write:
        # as under systemd's Delegate=, the user's processes must start inside its subtree.
        # Root moves the shell there, which then becomes the user.
        procs = " ".join(f"/sys/fs/cgroup/{h}{cgroup}/cgroup.procs" for h in cgroup_hierarchies())
        argv = ["sh", "-c", f'for p in {procs}; do echo $$ > $p || exit 125; done; exec "$@"', "sh",
                "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "--", *argv]
    opts.update(kw)
    if detached:
        # A detached container inherits stdio: never a pipe (the call would wait for it).
        with tempfile.TemporaryFile("w+") as err:
            r = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, **opts)
            err.seek(0)
            r.stderr, r.stdout = err.read(), ""
            return r
    return subprocess.run(argv, check=False, capture_output=True, stdin=subprocess.DEVNULL, **opts)


def rootless_bundle(oci_binary: str, user: User, home: Path, args: list[str], **linux) -> Path:
    """`rongqi-oci spec --rootless` run as the user, over a busybox rootfs the user owns."""
    from rongqi.image.busybox import make_rootfs

    bundle = home / "bundle"
    bundle.mkdir()
    make_rootfs(str(bundle / "rootfs"))
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(bundle)], check=True)
    r = as_user(user, [oci_binary, "spec", "--rootless", "-b", str(bundle)], home)
    assert r.returncode == 0, r.stderr
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = args
    spec["process"]["terminal"] = False  # the template's is true (runc's); these tests use pipes
    spec["linux"].update(linux)
    (bundle / "config.json").write_text(json.dumps(spec))
    os.chown(bundle / "config.json", user.uid, user.gid)
    return bundle


def cleanup_containers(oci_binary: str, user: User, home: Path) -> None:
    root = home / "xdg" / "rongqi"
    if not root.is_dir():
        return
    for cid in os.listdir(root):
        if (root / cid / "state.json").exists():
            as_user(user, [oci_binary, "delete", "--force", cid], home)


# -- the spec ---------------------------------------------------------------------------------


def test_spec_rootless_maps_the_user_to_root_without_cgroup_mount_or_network_namespace(oci_binary, user, home):
    r = as_user(user, [oci_binary, "spec", "--rootless", "-b", str(home)], home)
    assert r.returncode == 0, r.stderr
    spec = json.loads((home / "config.json").read_text())
    lin = spec["linux"]
    assert lin["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert lin["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    kinds = [n["type"] for n in lin["namespaces"]]
    assert "user" in kinds and "network" not in kinds
    assert all(m["destination"] != "/sys/fs/cgroup" for m in spec["mounts"])
    assert "resources" not in lin


# -- rongqi.linux.idmap, as the user ----------------------------------------------------------

_IDMAP_SCRIPT = textwrap.dedent("""
    import ctypes, json, os, sys
    sys.path.insert(0, {src!r})
    from rongqi.errors import RongqiError
    from rongqi.linux import idmap

    libc = ctypes.CDLL(None, use_errno=True)
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.close(ready_r)
        if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
            os._exit(3)
        os.write(ready_w, b"x")
        os.read(r, 1)  # until the parent has looked at our maps
        os._exit(0)
    os.close(r)
    os.close(ready_w)
    os.read(ready_r, 1)
    out = {{}}
    try:
        idmap.write_maps_unprivileged(pid, {uid_map!r}, {gid_map!r})
        for name in ("uid_map", "gid_map", "setgroups"):
            with open(f"/proc/{{pid}}/{{name}}") as f:
                out[name] = f.read()
    except RongqiError as err:
        out["error"] = str(err)
    os.close(w)
    os.waitpid(pid, 0)
    print(json.dumps(out))
""")


def write_maps_as(user: User, uid_map: str, gid_map: str, wrap: list[str] | None = None) -> dict:
    script = _IDMAP_SCRIPT.format(src=SRC, uid_map=uid_map, gid_map=gid_map)
    argv = ["/usr/bin/python3", "-I", "-c", script]
    if wrap:
        # Run as root in a private mount namespace, which then becomes the user (runuser).
        argv = [*wrap, "runuser", "-u", user.name, "--", *argv]
        r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    else:
        r = as_user(user, argv)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _norm(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_newuidmap_maps_the_users_own_id_and_its_subordinate_range(user):
    (ustart, ucount), (gstart, gcount) = user.ranges(SUBUID)[0], user.ranges(SUBGID)[0]
    out = write_maps_as(user, f"0 {user.uid} 1\n1 {ustart} {ucount}\n", f"0 {user.gid} 1\n1 {gstart} {gcount}\n")
    assert "error" not in out, out
    assert _norm(out["uid_map"]) == [["0", str(user.uid), "1"], ["1", str(ustart), str(ucount)]]
    assert _norm(out["gid_map"]) == [["0", str(user.gid), "1"], ["1", str(gstart), str(gcount)]]


def test_mapping_without_a_subuid_entry_names_the_user_and_the_file(user_without_subids):
    u = user_without_subids
    out = write_maps_as(u, f"0 {u.uid} 1\n1 400000 1000\n", f"0 {u.gid} 1\n")
    assert "error" in out, out
    assert f"user {u.name} has no entry in /etc/subuid" in out["error"]
    assert out["error"].startswith("linux.uidMappings: ")


def test_mapping_without_a_subgid_entry_names_the_file(user_without_subids):
    u = user_without_subids
    out = write_maps_as(u, f"0 {u.uid} 1\n", f"0 {u.gid} 1\n1 400000 1000\n")
    assert f"user {u.name} has no entry in /etc/subgid" in out["error"]


def test_range_outside_the_users_subordinate_ids_is_refused_with_its_ranges(user):
    start, count = user.ranges(SUBUID)[0]
    out = write_maps_as(user, f"0 {user.uid} 1\n1 {start + count} 10\n", f"0 {user.gid} 1\n")
    assert f"host uids {start + count}-{start + count + 9} are not in user {user.name}'s ranges in /etc/subuid" \
        in out["error"]


def test_missing_newuidmap_is_named_with_its_package(user):
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare needed")
    start, count = user.ranges(SUBUID)[0]
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            "for b in /usr/bin/newuidmap /usr/bin/newgidmap; do mount --bind /dev/null $b; done; exec \"$@\"", "sh"]
    out = write_maps_as(user, f"0 {user.uid} 1\n1 {start} {count}\n", f"0 {user.gid} 1\n", wrap=hide)
    assert "newuidmap not found" in out["error"] and "apt-get install uidmap" in out["error"]


def test_own_id_alone_is_mapped_without_the_helpers_and_setgroups_denied(user):
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            "for b in /usr/bin/newuidmap /usr/bin/newgidmap; do mount --bind /dev/null $b; done; exec \"$@\"", "sh"]
    out = write_maps_as(user, f"0 {user.uid} 1\n", f"0 {user.gid} 1\n", wrap=hide)
    assert "error" not in out, out
    assert _norm(out["uid_map"]) == [["0", str(user.uid), "1"]]
    assert _norm(out["gid_map"]) == [["0", str(user.gid), "1"]]
    assert out["setgroups"].strip() == "deny"


# -- containers, as the user ------------------------------------------------------------------


def test_rootless_run_is_root_inside_and_the_user_outside(oci_binary, user, home):
    bundle = rootless_bundle(oci_binary, user, home, ["sh", "-c", "id -u; cat /proc/self/uid_map"])
    try:
        r = as_user(user, [oci_binary, "run", "-b", str(bundle), "rl-run"], home)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "0"
        assert lines[1].split() == ["0", str(user.uid), "1"]
    finally:
        cleanup_containers(oci_binary, user, home)


def test_rootless_detached_run_exec_kill_delete_with_state_under_xdg_runtime_dir(oci_binary, user, home):
    bundle = rootless_bundle(oci_binary, user, home, ["sleep", "60"])
    cid = "rl-life"
    try:
        r = as_user(user, [oci_binary, "run", "-d", "-b", str(bundle), cid], home, detached=True)
        assert r.returncode == 0, r.stderr
        assert (home / "xdg" / "rongqi" / cid / "state.json").is_file()
        st = json.loads(as_user(user, [oci_binary, "state", cid], home).stdout)
        assert st["status"] == "running"
        with open(f"/proc/{st['pid']}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {str(user.uid)}
        r = as_user(user, [oci_binary, "exec", cid, "sh", "-c", "id -u; echo exec-ok"], home)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["0", "exec-ok"]
        assert as_user(user, [oci_binary, "kill", cid, "KILL"], home).returncode == 0
        deadline = time.monotonic() + 10
        while json.loads(as_user(user, [oci_binary, "state", cid], home).stdout)["status"] != "stopped":
            assert time.monotonic() < deadline, "never stopped after SIGKILL"
            time.sleep(0.05)
        r = as_user(user, [oci_binary, "delete", cid], home)
        assert r.returncode == 0, r.stderr
        assert not (home / "xdg" / "rongqi" / cid).exists()
    finally:
        cleanup_containers(oci_binary, user, home)


def test_rootless_container_gets_the_users_subordinate_ids(oci_binary, user, home):
    (ustart, ucount), (gstart, gcount) = user.ranges(SUBUID)[0], user.ranges(SUBGID)[0]
    bundle = rootless_bundle(
        oci_binary, user, home, ["cat", "/proc/self/uid_map", "/proc/self/gid_map"],
        uidMappings=[{"containerID": 0, "hostID": user.uid, "size": 1},
                     {"containerID": 1, "hostID": ustart, "size": ucount}],
        gidMappings=[{"containerID": 0, "hostID": user.gid, "size": 1},
                     {"containerID": 1, "hostID": gstart, "size": gcount}])
    try:
        r = as_user(user, [oci_binary, "run", "-b", str(bundle), "rl-sub"], home)
        assert r.returncode == 0, r.stderr
        assert _norm(r.stdout) == [["0", str(user.uid), "1"], ["1", str(ustart), str(ucount)],
                                   ["0", str(user.gid), "1"], ["1", str(gstart), str(gcount)]]
    finally:
        cleanup_containers(oci_binary, user, home)


def test_rootless_mapping_beyond_the_users_ranges_fails_with_one_clear_line(oci_binary, user, home):
    start, count = user.ranges(SUBUID)[0]
    bundle = rootless_bundle(
        oci_binary, user, home, ["true"],
        uidMappings=[{"containerID": 0, "hostID": user.uid, "size": 1},
                     {"containerID": 1, "hostID": start + count, "size": 10}])
    try:
        r = as_user(user, [oci_binary, "run", "-b", str(bundle), "rl-bad"], home)
        assert r.returncode != 0
        assert "/etc/subuid" in r.stderr and user.name in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not (home / "xdg" / "rongqi" / "rl-bad").exists()
    finally:
        cleanup_containers(oci_binary, user, home)


@pytest.fixture
def delegated_cgroup(user: User) -> Iterator[str]:
    """/rongqi-test/<tag>-rl owned by the user in every hierarchy (what systemd's Delegate= does)."""
    with delegated_cgroup_for(f"rongqi-test/{SESSION_TAG}-rl", user.uid, user.gid) as rel:
        yield rel


def test_rootless_container_gets_its_limits_in_a_delegated_cgroup(oci_binary, user, home, delegated_cgroup):
    bundle = rootless_bundle(oci_binary, user, home, ["sleep", "60"],
                             cgroupsPath=delegated_cgroup + "/box", resources={"pids": {"limit": 20}})
    cid = "rl-cg"
    try:
        r = as_user(user, [oci_binary, "run", "-d", "-b", str(bundle), cid], home, detached=True,
                    cgroup=delegated_cgroup)
        assert r.returncode == 0, r.stderr
        pid = json.loads(as_user(user, [oci_binary, "state", cid], home).stdout)["pid"]
        with open(f"/sys/fs/cgroup/pids{delegated_cgroup}/box/pids.max") as f:
            assert f.read().strip() == "20"
        with open(f"/sys/fs/cgroup/pids{delegated_cgroup}/box/cgroup.procs") as f:
            assert str(pid) in f.read().split()
        assert as_user(user, [oci_binary, "delete", "--force", cid], home).returncode == 0
        assert not os.path.exists(f"/sys/fs/cgroup/pids{delegated_cgroup}/box")
    finally:
        cleanup_containers(oci_binary, user, home)


def test_rootless_limits_without_a_delegated_cgroup_fail_with_one_line_naming_the_cgroup(oci_binary, user, home):
    bundle = rootless_bundle(oci_binary, user, home, ["true"], resources={"pids": {"limit": 20}})
    try:
        r = as_user(user, [oci_binary, "run", "-b", str(bundle), "rl-nodeleg"], home)
        assert r.returncode != 0
        assert "cgroup" in r.stderr and "Permission denied" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not (home / "xdg" / "rongqi" / "rl-nodeleg").exists()
    finally:
        cleanup_containers(oci_binary, user, home)
