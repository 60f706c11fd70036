"""Tests of the built-in busybox rootfs and bundle builder (rongqi.image.busybox).

No root needed: the rootfs is a plain directory tree and the static busybox runs on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from rongqi.errors import RongqiError
from rongqi.image import busybox
from rongqi.image.busybox import make_bundle, make_rootfs, make_spec

pytestmark = pytest.mark.skipif(
    not os.path.exists("/bin/busybox"), reason="needs busybox-static (/bin/busybox)"
)


def test_rootfs_has_one_link_per_applet_all_resolving_to_the_copied_busybox(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(str(root))
    applets = busybox.busybox_applets()
    assert len(applets) > 100
    target = os.path.realpath(root / "bin" / "busybox")
    assert not os.path.islink(root / "bin" / "busybox")
    for rel in applets:
        if rel == "bin/busybox":
            continue
        path = root / rel
        assert os.path.islink(path), rel
        assert os.path.realpath(path) == target, rel
        # Relative links keep working once the rootfs is the container's /.
        assert not os.readlink(path).startswith("/"), rel


def test_applet_links_dispatch_to_busybox_by_name(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(str(root))
    out = subprocess.run(
        [str(root / "bin" / "sh"), "-c", "echo hello from $0"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out == f"hello from {root / 'bin' / 'sh'}\n"
    out = subprocess.run([str(root / "usr" / "bin" / "basename"), "/a/b/c"], capture_output=True, text=True)
    assert out.stdout == "c\n"


def test_rootfs_has_standard_dirs_with_conventional_modes(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(str(root))
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var/run",
              "usr/bin", "usr/sbin"):
        assert (root / d).is_dir(), d
    assert os.stat(root / "tmp").st_mode & 0o7777 == 0o1777
    assert os.stat(root / "root").st_mode & 0o777 == 0o700


def test_rootfs_etc_files_name_root_and_nobody(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(str(root))
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    assert passwd[0].startswith("root:x:0:0:")
    assert any(line.startswith("nobody:x:65534:65534:") for line in passwd)
    assert (root / "etc" / "group").read_text().startswith("root:x:0:")
    assert (root / "etc" / "hostname").read_text().strip()
    assert "localhost" in (root / "etc" / "hosts").read_text()
    assert (root / "etc" / "resolv.conf").exists()


def test_make_rootfs_twice_changes_nothing_and_repairs_damage(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(str(root))
    before = {p: os.lstat(p).st_ino for p in map(str, root.rglob("*"))}
    make_rootfs(str(root))
    after = {p: os.lstat(p).st_ino for p in map(str, root.rglob("*"))}
    assert before == after

    (root / "bin" / "sh").unlink()
    (root / "bin" / "ls").unlink()
    os.symlink("/nowhere", root / "bin" / "ls")
    (root / "etc" / "passwd").write_text("garbage\n")
    make_rootfs(str(root))
    assert os.path.realpath(root / "bin" / "sh") == str(root / "bin" / "busybox")
    assert os.path.realpath(root / "bin" / "ls") == str(root / "bin" / "busybox")
    assert (root / "etc" / "passwd").read_text().startswith("root:")


def test_missing_busybox_is_one_clear_error_naming_the_package(tmp_path):
    with pytest.raises(RongqiError, match=r"apt-get install busybox-static"):
        make_rootfs(str(tmp_path / "rootfs"), busybox=str(tmp_path / "no-busybox"))
    assert not (tmp_path / "rootfs").exists()


def test_dynamically_linked_busybox_is_refused(tmp_path):
    # A dynamic ELF that answers --list-full like busybox: the loader check must catch it.
    fake = tmp_path / "busybox"
    shutil.copy("/bin/busybox", fake)
    if shutil.which("ls") is None:
        pytest.skip("no dynamic binary to compare with")
    assert busybox._is_static(str(fake))
    assert not busybox._is_static(shutil.which("ls"))
    with pytest.raises(RongqiError, match="busybox-static"):
        make_rootfs(str(tmp_path / "rootfs"), busybox=shutil.which("true"))


def test_spec_has_runc_default_shape():
    spec = make_spec(["/bin/true"])
    assert spec["process"]["terminal"] is False
    assert spec["process"]["args"] == ["/bin/true"]
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert [m["destination"] for m in spec["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"
    ]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["linux"]["cgroupsPath"].startswith("/rongqi-test/")


@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc to compare with")
def test_spec_matches_runc_spec_except_terminal_args_and_cgroup_mount(tmp_path):
    subprocess.run(["runc", "spec", "--bundle", str(tmp_path)], check=True)
    theirs = json.loads((tmp_path / "config.json").read_text())
    ours = make_spec(["sh"], hostname="runc")
    assert ours["process"]["capabilities"] == theirs["process"]["capabilities"]
    assert ours["process"]["rlimits"] == theirs["process"]["rlimits"]
    assert ours["linux"]["namespaces"] == theirs["linux"]["namespaces"]
    assert ours["linux"]["maskedPaths"] == theirs["linux"]["maskedPaths"]
    assert ours["linux"]["readonlyPaths"] == theirs["linux"]["readonlyPaths"]
    assert ours["linux"]["resources"] == theirs["linux"]["resources"]
    assert ours["mounts"] == [m for m in theirs["mounts"] if m["type"] != "cgroup"]
    assert ours["process"]["env"] == theirs["process"]["env"]


def test_spec_options_are_applied_and_unknown_ones_refused():
    spec = make_spec(
        ["sh"], hostname="h1", env=["A=1"], cwd="/tmp", uid=65534, gid=65534, readonly=False,
        cgroups_path=None, namespaces=["pid", {"type": "network", "path": "/proc/1/ns/net"}],
        mounts=[{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind"]}],
        annotations={"k": "v"},
    )
    assert spec["hostname"] == "h1"
    assert spec["process"]["env"] == ["A=1"]
    assert spec["process"]["cwd"] == "/tmp"
    assert spec["process"]["user"] == {"uid": 65534, "gid": 65534}
    assert spec["root"]["readonly"] is False
    assert "cgroupsPath" not in spec["linux"]
    assert spec["linux"]["namespaces"][1] == {"type": "network", "path": "/proc/1/ns/net"}
    assert spec["mounts"][-1]["destination"] == "/x"
    assert spec["annotations"] == {"k": "v"}
    with pytest.raises(TypeError, match="hostnme"):
        make_spec(["sh"], hostnme="x")
    with pytest.raises(ValueError):
        make_spec([])


def test_make_bundle_writes_config_and_rootfs(tmp_path):
    dest = make_bundle(str(tmp_path / "b"), ["/bin/echo", "hi"], cgroups_path="/rongqi-test/x")
    assert dest == str(tmp_path / "b")
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/echo", "hi"]
    assert config["linux"]["cgroupsPath"] == "/rongqi-test/x"
    assert (tmp_path / "b" / "rootfs" / "bin" / "busybox").is_file()
    assert not (tmp_path / "b" / ".config.json.tmp").exists()
    # Rewriting the bundle keeps the rootfs and replaces the config.
    make_bundle(dest, ["/bin/true"])
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/true"]


def test_two_bundles_get_distinct_default_cgroup_paths(tmp_path):
    a = make_spec(["true"])["linux"]["cgroupsPath"]
    b = make_spec(["true"])["linux"]["cgroupsPath"]
    assert a != b
