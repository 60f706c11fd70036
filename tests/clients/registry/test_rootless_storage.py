"""Rootless image storage, for real: a throw-away user pulls from a loopback registry into its
own ~/.local/share/rongqi, lists, and makes snapshots (copy, fuse-overlayfs, or kernel overlay
in a user namespace of its own); device nodes are refused; the user and its files are removed.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import rongqi
from conftest import SKOPEO
from support.delegation import cgroup_hierarchies, remove_user
from support.delegation import delegated_cgroup as delegated_cgroup_for
from support.plugin import SESSION_TAG

pytestmark = [pytest.mark.clients, pytest.mark.root,
              pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="makes users: needs root")]

RONGQI = [sys.executable, "-m", "rongqi.cli.main"]
OVERRIDE = "user.containers.override_stat"


class User:
    def __init__(self, name: str):
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    if shutil.which("useradd") is None:
        pytest.skip("useradd is needed (apt-get install passwd)")
    name = f"rqst-{SESSION_TAG}"[:32]
    remove_user(name)
    # Subordinate ids (useradd's SUB_UID_COUNT default) so `unshare`, newuidmap and a rootless
    # rongqi-oci find the user as an ordinary login would be.
    subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    try:
        yield User(name)
    finally:
        remove_user(name)


def _unmount_under(path: Path) -> None:
    """Safety net: nothing a failed test left mounted under the user's home survives it."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f if ln.split()[4].startswith(prefix)]
    for p in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True, check=False)


@pytest.fixture
def home(user: User) -> Iterator[Path]:
    """The user's home for one test: world-traversable, owned by it, removed with all in it."""
    d = Path(tempfile.mkdtemp(prefix="rongqi-rootless-store-"))
    os.chmod(d, 0o755)
    (d / "xdg").mkdir(mode=0o700)
    os.chown(d, user.uid, user.gid)
    os.chown(d / "xdg", user.uid, user.gid)
    yield d
    _unmount_under(d)
    shutil.rmtree(d, ignore_errors=True)
    assert not d.exists()


def as_user(user: User, home: Path, argv: list[str], timeout: float = 120,
            env: dict | None = None) -> subprocess.CompletedProcess:
    # PYTHONPATH: the rongqi under test (this checkout), not a copy installed in the venv.
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home),
            "PYTHONPATH": os.path.dirname(os.path.dirname(rongqi.__file__)),
            "USER": user.name, "LOGNAME": user.name, "XDG_RUNTIME_DIR": str(home / "xdg")}
    return subprocess.run(argv, user=user.uid, group=user.gid, extra_groups=[],
                          env={**base, **(env or {})}, cwd=str(home), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def rongqi_as(user: User, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = as_user(user, home, [*RONGQI, *args])
    if check:
        assert r.returncode == 0, f"rongqi {' '.join(args)}: {r.stderr}"
    return r


def layer(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti, data = (e, None) if isinstance(e, tarfile.TarInfo) else e
            ti.mtime = 1_700_000_000
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, uid: int = 0,
          gid: int = 0, **kw) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid = kind, mode, uid, gid
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


@pytest.fixture
def image(registry, layout, rootfs) -> str:
    """busybox + a layer with files, owners rootless cannot set, a setuid file and an opaque
    dir's old content + a layer with a whiteout and an opaque dir; pushed by skopeo."""
    second = layer([
        (entry("gone"), b"lower\n"),
        entry("opq", tarfile.DIRTYPE, 0o755),
        (entry("opq/old"), b"old\n"),
        (entry("etc/owned", mode=0o640, uid=1234, gid=5678), b"secret\n"),
        (entry("bin/suid", mode=0o4755), b"#!/bin/sh\n"),
        entry("ro", tarfile.DIRTYPE, 0o555),
        (entry("ro/file", mode=0o444), b"read only\n"),
    ])
    third = layer([
        (entry(".wh.gone"), b""),
        entry("opq", tarfile.DIRTYPE, 0o755),
        (entry("opq/.wh..wh..opq"), b""),
        (entry("opq/new"), b"new\n"),
    ])
    layout.image_from_dir(rootfs, "rl", extra_layers=[second, third])
    registry.skopeo_push(str(layout.path), "rl", "rootless/img:1")
    return f"{registry.host}/rootless/img:1"


def _fuse_usable_by_users() -> bool:
    # fuse-overlayfs opens /dev/fuse itself (libfuse only falls back to the setuid fusermount3
    # when the device is missing), so an ordinary user needs it world read-writable.
    try:
        return shutil.which("fuse-overlayfs") is not None and \
            os.stat("/dev/fuse").st_mode & 0o006 == 0o006
    except FileNotFoundError:
        return False


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(ln.split()[4] == str(path) for ln in f)


def _owned_by(top: Path, uid: int) -> list[str]:
    """Entries under top not owned by uid."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.lstat(p).st_uid != uid:
                bad.append(p)
    return bad


def test_user_pulls_into_its_own_store_lists_it_and_owners_are_recorded(user, home, image):
    r = rongqi_as(user, home, "pull", "-q", image)
    store = home / ".local/share/rongqi"
    assert (store / "index.json").is_file() and (store / "oci-layout").is_file()
    assert _owned_by(store, user.uid) == []

    out = rongqi_as(user, home, "images").stdout
    assert f"{image.rsplit(':', 1)[0]} " in out and " 1 " in out, out
    listed = json.loads(rongqi_as(user, home, "images", "--format", "json").stdout)
    assert len(listed) == 1

    layers = store / "overlay" / "layers"
    diffs = {p.parent.name: p for p in layers.glob("*/diff")}
    assert len(diffs) == 3, r.stderr
    owned = next(p / "etc/owned" for p in diffs.values() if (p / "etc/owned").exists())
    # The owner the user could not set is recorded (containers/storage's force_mask format)
    # and the file itself belongs to the user, with the layer's mode.
    assert os.getxattr(owned, OVERRIDE) == b"1234:5678:0640:file"
    st = owned.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, 0o640)
    suid = next(p / "bin/suid" for p in diffs.values() if (p / "bin/suid").exists())
    assert os.getxattr(suid, OVERRIDE) == b"0:0:04755:file"
    top = next(p for p in diffs.values() if (p / "opq/new").exists())
    # Unprivileged overlay markers: user.overlay.opaque (trusted.* is root's) and a 0/0
    # character device, which the kernel lets anyone make.
    assert os.getxattr(top / "opq", "user.overlay.opaque") == b"y"
    with pytest.raises(OSError):
        os.getxattr(top / "opq", "trusted.overlay.opaque")
    wh = os.lstat(top / "gone")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0


def test_user_snapshot_falls_back_with_a_message_naming_the_way_taken(user, home, image):
    rongqi_as(user, home, "pull", "-q", image)
    r = rongqi_as(user, home, "image", "mount", image, "snap1")
    rootfs = Path(r.stdout.strip())
    assert rootfs == home / ".local/share/rongqi/overlay/snapshots/snap1/rootfs"
    note = r.stderr.strip()
    assert len(note.splitlines()) == 1
    mounted = _mounted(rootfs)
    if _fuse_usable_by_users():
        assert note == "rongqi: snapshot snap1: fuse-overlayfs " \
                       f"({shutil.which('fuse-overlayfs')})"
        assert mounted
    elif shutil.which("fuse-overlayfs"):
        # Here /dev/fuse is root's alone: the fallback says so and copies.
        assert note.startswith("rongqi: snapshot snap1: copy, as fuse-overlayfs failed (")
        assert "failed to open /dev/fuse: Permission denied" in note, note
        assert not mounted
    else:
        assert note.startswith("rongqi: snapshot snap1: rootless: copy, as kernel "
                               "overlayfs needs a user namespace")
    # The merged view either way: whiteout and opaque dir applied, every layer's content.
    assert (rootfs / "bin/busybox").is_file()
    assert not os.path.lexists(rootfs / "gone")
    assert sorted(os.listdir(rootfs / "opq")) == ["new"]
    assert (rootfs / "etc/owned").read_text() == "secret\n"
    assert (rootfs / "ro/file").read_text() == "read only\n"

    assert rongqi_as(user, home, "image", "unmount", "snap1").stdout.strip() == "snap1"
    assert not (home / ".local/share/rongqi/overlay/snapshots/snap1").exists()
    assert not _mounted(rootfs)
    # Layers with read-only dirs go too when the image does (the user's own rmtree).
    rongqi_as(user, home, "rmi", image)
    assert os.listdir(home / ".local/share/rongqi/overlay/layers") == []


_USERNS_SCRIPT = textwrap.dedent("""
    import json, os
    from rongqi.storage.overlay import LayerStorage, in_user_namespace
    from rongqi.image.store import ImageStore
    root = os.path.expanduser("~/.local/share/rongqi")
    store, storage = ImageStore(root), LayerStorage(root + "/overlay")
    _, desc = store.resolve({image!r})
    snap = storage.create_snapshot("inns", storage.unpack_image(store, desc.digest))
    fs = [ln.split(" - ")[1].split()[0] for ln in open("/proc/self/mountinfo")
          if ln.split()[4] == snap.rootfs]
    with open(snap.rootfs + "/written", "w") as f:
        f.write("upper")
    out = dict(mode=snap.mode, note=snap.note, fs=fs, userns=in_user_namespace(),
               gone=os.path.lexists(snap.rootfs + "/gone"), opq=sorted(os.listdir(snap.rootfs + "/opq")),
               upper=open(snap.upper + "/written").read())
    storage.remove_snapshot("inns")
    out["left"] = os.path.exists(snap.path)
    print(json.dumps(out))
""")


def test_user_snapshot_in_its_own_user_namespace_is_kernel_overlay(user, home, image):
    rongqi_as(user, home, "pull", "-q", image)
    r = as_user(user, home, ["unshare", "--user", "--map-root-user", "--mount", sys.executable,
                             "-c", _USERNS_SCRIPT.format(image=image)])
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got == {"mode": "userns", "note": "kernel overlayfs in this user namespace (userxattr)",
                   "fs": ["overlay"], "userns": True, "gone": False, "opq": ["new"],
                   "upper": "upper", "left": False}


def test_user_asking_for_kernel_overlay_outside_a_user_namespace_gets_one_line(user, home, image):
    rongqi_as(user, home, "pull", "-q", image)
    r = rongqi_as(user, home, "--storage-mode", "userns", "image", "mount", image, "s",
                  check=False)
    assert r.returncode == 125
    assert r.stderr.strip() == ("Error: cannot mount overlay for snapshot s: Operation "
                                "not permitted; kernel overlay without root needs the user "
                                "namespace that will run the container (storage mode userns)")
    assert not (home / ".local/share/rongqi/overlay/snapshots/s").exists()


def test_user_pull_of_a_layer_with_a_device_node_is_refused(user, home, registry, layout, rootfs):
    dev = entry("dev/evil", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3)
    layout.image_from_dir(rootfs, "dev", extra_layers=[layer([dev])])
    registry.skopeo_push(str(layout.path), "dev", "rootless/dev:1")
    r = rongqi_as(user, home, "pull", "-q", f"{registry.host}/rootless/dev:1", check=False)
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1
    assert "layer entry 'dev/evil': device nodes are not allowed here (rootless or untrusted)" \
        in r.stderr
    store = home / ".local/share/rongqi"
    assert json.loads((store / "index.json").read_text()).get("manifests", []) == []
    assert os.listdir(store / "overlay" / "tmp") == []
    assert not list((store / "overlay" / "layers").glob("*/diff/dev/evil"))


def test_user_runs_its_image_as_a_rootless_container(user, home, image, oci_binary):
    rongqi_as(user, home, "pull", "-q", image)
    rootfs = rongqi_as(user, home, "image", "mount", image, "run1").stdout.strip()
    bundle = home / "bundle"
    try:
        r = as_user(user, home, [oci_binary, "spec", "--rootless", "-b", str(home)])
        assert r.returncode == 0, r.stderr
        spec = json.loads((home / "config.json").read_text())
        # The rootless spec maps the user to root: the files the user owns on disk (all of
        # the snapshot) are root's inside, so the recorded 1234:5678 file is readable.
        script = "id -u; cat /etc/owned /opq/new; test -e /gone || echo gone; echo w > /written; exit 5"
        spec["process"]["args"] = ["sh", "-c", script]
        spec["root"] = {"path": rootfs, "readonly": False}
        spec["process"]["terminal"] = False
        bundle.mkdir()
        os.chown(bundle, user.uid, user.gid)
        (bundle / "config.json").write_text(json.dumps(spec))
        cid = f"rqst-{SESSION_TAG}"
        r = as_user(user, home, [oci_binary, "run", "-b", str(bundle), cid])
        assert (r.returncode, r.stdout, r.stderr) == (5, "0\nsecret\nnew\ngone\n", "")
        assert Path(rootfs, "written").read_text() == "w\n"
    finally:
        as_user(user, home, [oci_binary, "delete", "--force", f"rqst-{SESSION_TAG}"])
        rongqi_as(user, home, "image", "unmount", "run1")
    assert not Path(rootfs).exists()


@pytest.fixture
def delegated_cgroup(user: User) -> Iterator[str]:
    """/rongqi-test/<tag>-st owned by the user in every hierarchy (systemd's Delegate=):
    inside a user namespace the runtime believes it is root and makes its cgroup, so it
    needs one it may write."""
    with delegated_cgroup_for(f"rongqi-test/{SESSION_TAG}-st", user.uid, user.gid) as rel:
        yield rel


_HOLDER_SCRIPT = textwrap.dedent("""
    import os, sys
    from rongqi.storage.overlay import LayerStorage
    from rongqi.image.store import ImageStore
    root = os.path.expanduser("~/.local/share/rongqi")
    store, storage = ImageStore(root), LayerStorage(root + "/overlay")
    _, desc = store.resolve({image!r})
    snap = storage.create_snapshot({snap!r}, storage.unpack_image(store, desc.digest))
    print(snap.mode, snap.rootfs, flush=True)
    sys.stdin.read()  # until the test is done with the namespace
    storage.remove_snapshot({snap!r})
    print("removed", flush=True)
""")


def test_user_runs_a_container_on_kernel_overlay_in_its_user_namespace(user, home, image,
                                                                       oci_binary,
                                                                       delegated_cgroup):
    """The shape an engine can use rootless without fuse: a holder process in a user+mount
    namespace the user owns mounts the snapshot (kernel overlay, userxattr); the runtime runs
    inside that namespace (nsenter), where the mount is visible."""
    rongqi_as(user, home, "pull", "-q", image)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home),
           "USER": user.name, "XDG_RUNTIME_DIR": str(home / "xdg")}
    holder = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
         sys.executable, "-c", _HOLDER_SCRIPT.format(image=image, snap="k1")],
        user=user.uid, group=user.gid, extra_groups=[], env=env, cwd=str(home),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        mode, rootfs = holder.stdout.readline().split()
        assert mode == "userns", holder.stderr.read() if holder.poll() is not None else mode
        r = as_user(user, home, [oci_binary, "spec", "--rootless", "-b", str(home)])
        assert r.returncode == 0, r.stderr
        spec = json.loads((home / "config.json").read_text())
        # The root mount's fs type: the field after the " - " separator of mountinfo.
        script = ("id -u; awk '$5 == \"/\" {for (i = 7; i <= NF; i++) if ($i == \"-\") "
                  "{print $(i+1); exit}}' /proc/self/mountinfo; cat /opq/new; "
                  "echo w > /written; exit 4")
        spec["process"]["args"] = ["sh", "-c", script]
        spec["process"]["terminal"] = False
        spec["root"] = {"path": rootfs, "readonly": False}
        spec["process"]["terminal"] = False
        spec["linux"]["cgroupsPath"] = delegated_cgroup + "/k1"
        # Inside the holder's namespace the user is already root: the container's own user
        # namespace maps that root (0) only.
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        bundle = home / "kbundle"
        bundle.mkdir()
        os.chown(bundle, user.uid, user.gid)
        (bundle / "config.json").write_text(json.dumps(spec))
        nsenter = ["nsenter", "-t", str(holder.pid), "--user", "--mount",
                   "--preserve-credentials"]
        state = str(home / "xdg" / "kroot")
        # cgroup v2 lets the user move processes only within a subtree it owns: root puts
        # the shell there first, which then becomes the user (as a systemd user session is).
        procs = " ".join(f"/sys/fs/cgroup/{h}{delegated_cgroup}/cgroup.procs"
                         for h in cgroup_hierarchies())
        r = subprocess.run(
            ["sh", "-c", f'for p in {procs}; do echo $$ > $p || exit 125; done; exec "$@"',
             "sh", "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
             "--", *nsenter, oci_binary, "--root", state, "run", "-b", str(bundle), "k1"],
            env=env, cwd=str(home), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL, check=False)
        assert (r.returncode, r.stdout, r.stderr) == (4, "0\noverlay\nnew\n", ""), r.stderr
        upper = home / ".local/share/rongqi/overlay/snapshots/k1/upper"
        assert (upper / "written").read_text() == "w\n"
        as_user(user, home, [*nsenter, oci_binary, "--root", state, "delete", "--force", "k1"])
        out, err = holder.communicate("", timeout=60)
        assert holder.returncode == 0 and out.strip() == "removed", err
        assert not (home / ".local/share/rongqi/overlay/snapshots/k1").exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
