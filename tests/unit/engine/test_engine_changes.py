"""podman diff's A/C/D from a fake overlay upper dir, and the layer tar made of it."""

from __future__ import annotations

import errno
import io
import os
import shutil
import tarfile

import pytest

from rongqi.engine.changes import Change, mount_stub_rule, tree_changes, upper_changes, \
    write_layer
from rongqi.engine.treecopy import RootDir
from rongqi.image.layer import LayerApplier


def _whiteout(path: str) -> None:
    try:
        os.mknod(path, 0o020000, os.makedev(0, 0))
    except PermissionError:
        pytest.skip("this host refuses 0/0 character devices to us (whiteouts need CAP_MKNOD)")


def _opaque(path: str) -> None:
    try:
        os.setxattr(path, "trusted.overlay.opaque", b"y")
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP):
            raise
        os.setxattr(path, "user.overlay.opaque", b"y")


def _write(path: str, text: str = "x") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def layers(tmp_path):
    """Two image layers (bottom: /bin/sh, /bin/vi, /etc/passwd, /usr/share/doc/a, /old/x;
    top: deletes /old) and an upper dir with every kind of change."""
    bottom, top, upper = (str(tmp_path / n) for n in ("bottom", "top", "upper"))
    for p in ("bin/sh", "bin/vi", "etc/passwd", "usr/share/doc/a", "old/x", "etc/hosts.orig"):
        _write(f"{bottom}/{p}")
    os.makedirs(top)
    _whiteout(f"{top}/old")
    _write(f"{top}/etc/motd")
    os.makedirs(upper)
    _whiteout(f"{upper}/bin")  # placeholder, replaced below
    os.unlink(f"{upper}/bin")
    os.makedirs(f"{upper}/bin")
    _whiteout(f"{upper}/bin/vi")                      # rm /bin/vi
    _write(f"{upper}/etc/passwd", "changed")          # echo >> /etc/passwd
    _write(f"{upper}/new/d/f")                        # mkdir -p /new/d; touch /new/d/f
    os.makedirs(f"{upper}/usr/share")                 # rm -rf /usr/share; mkdir /usr/share
    _opaque(f"{upper}/usr/share")
    _write(f"{upper}/usr/share/fresh")
    _write(f"{upper}/old", "a file where a deleted dir was")
    _write(f"{upper}/etc/hostname", "")               # a runtime's mount point stub
    os.makedirs(f"{upper}/data/vol")                  # a volume's mount point (and parent)
    return upper, [top, bottom]


def test_upper_changes_lists_podmans_letters(layers):
    upper, lowers = layers
    got = [(c.kind, c.path) for c in upper_changes(upper, lowers)]
    assert got == [
        ("C", "/bin"), ("D", "/bin/vi"),
        ("A", "/data"), ("A", "/data/vol"),
        ("C", "/etc"), ("A", "/etc/hostname"), ("C", "/etc/passwd"),
        ("A", "/new"), ("A", "/new/d"), ("A", "/new/d/f"),
        ("A", "/old"),
        ("C", "/usr"), ("C", "/usr/share"), ("A", "/usr/share/fresh"),
    ]
    assert [c for c in upper_changes(upper, lowers) if c.opaque] == [
        Change("C", "/usr/share", opaque=True)]


def test_mount_point_stubs_are_not_changes(layers):
    upper, lowers = layers
    rule = mount_stub_rule(["/etc/hostname", "/data/vol", "/proc"])
    got = [(c.kind, c.path) for c in upper_changes(upper, lowers, skip=rule)]
    assert ("A", "/etc/hostname") not in got and ("A", "/data") not in got
    assert ("A", "/data/vol") not in got
    assert ("C", "/etc") in got   # /etc/passwd changed too
    _write(f"{upper}/data/vol/written-while-stopped")
    got = [(c.kind, c.path) for c in upper_changes(upper, lowers, skip=rule)]
    assert ("A", "/data/vol/written-while-stopped") in got and ("A", "/data") in got


def test_a_copied_up_directory_alone_is_not_a_change(tmp_path):
    lower, upper = str(tmp_path / "l"), str(tmp_path / "u")
    _write(f"{lower}/etc/passwd")
    os.makedirs(f"{upper}/etc")
    shutil.copystat(f"{lower}/etc", f"{upper}/etc")
    _write(f"{upper}/etc/resolv.conf", "")
    assert upper_changes(upper, [lower], skip=mount_stub_rule(["/etc/resolv.conf"])) == []
    os.chmod(f"{upper}/etc", 0o700)
    assert upper_changes(upper, [lower], skip=mount_stub_rule(["/etc/resolv.conf"])) == [
        Change("C", "/etc")]


def _names(buf: io.BytesIO) -> list[str]:
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        return tf.getnames()


def test_layer_has_whiteouts_and_opaque_markers_and_applies_back(layers, tmp_path):
    upper, lowers = layers
    changes = upper_changes(upper, lowers)
    buf = io.BytesIO()
    with RootDir.open(upper, "upper") as tree:
        write_layer(changes, tree, buf)
    names = _names(buf)
    assert "bin/.wh.vi" in names and "usr/share/.wh..wh..opq" in names
    assert names.index("usr/share") < names.index("usr/share/.wh..wh..opq") \
        < names.index("usr/share/fresh")
    assert "old" in names and "etc/passwd" in names
    # image layers flattened, then the new layer on top: the container's view
    flat = str(tmp_path / "flat")
    os.makedirs(flat)
    for layer in reversed(lowers):
        b = io.BytesIO()
        with RootDir.open(layer, "l") as t:
            from rongqi.engine.changes import LowerView  # noqa: F401 - the view is the layers'
            write_layer(upper_changes(layer, []), t, b)
        b.seek(0)
        LayerApplier(flat, whiteouts="delete").apply(b)
    buf.seek(0)
    LayerApplier(flat, whiteouts="delete").apply(buf)
    assert not os.path.exists(f"{flat}/bin/vi") and os.path.exists(f"{flat}/bin/sh")
    assert open(f"{flat}/etc/passwd").read() == "changed"
    assert os.listdir(f"{flat}/usr/share") == ["fresh"]
    assert os.path.isfile(f"{flat}/old") and os.path.exists(f"{flat}/etc/motd")


def test_tree_changes_of_a_flattened_copy(tmp_path):
    lower, tree = str(tmp_path / "l"), str(tmp_path / "t")
    for p in ("bin/sh", "bin/vi", "etc/passwd", "var/cache/x"):
        _write(f"{lower}/{p}")
    shutil.copytree(lower, tree, symlinks=True)
    os.unlink(f"{tree}/bin/vi")
    _write(f"{tree}/etc/passwd", "more")
    shutil.rmtree(f"{tree}/var/cache")
    _write(f"{tree}/new")
    got = [(c.kind, c.path) for c in tree_changes(tree, [lower])]
    assert got == [("C", "/bin"), ("D", "/bin/vi"), ("C", "/etc"), ("C", "/etc/passwd"),
                   ("A", "/new"), ("C", "/var"), ("D", "/var/cache")]
    buf = io.BytesIO()
    with RootDir.open(tree, "t") as t:
        write_layer(tree_changes(tree, [lower]), t, buf)
    assert {"bin/.wh.vi", "var/.wh.cache", "new", "etc/passwd"} <= set(_names(buf))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to other ids needs root")
def test_owners_shifted_for_a_user_namespace_are_not_changes(tmp_path):
    lower, upper = str(tmp_path / "l"), str(tmp_path / "u")
    _write(f"{lower}/bin/sh", "sh")
    _write(f"{lower}/etc/passwd", "root")
    shutil.copytree(lower, upper, copy_function=shutil.copy2)
    for dirpath, dirnames, filenames in os.walk(upper):
        for n in dirnames + filenames + ["."]:
            os.lchown(os.path.join(dirpath, n), 100000, 100000)
    _write(f"{upper}/etc/passwd", "changed")
    os.lchown(f"{upper}/etc/passwd", 100000, 100000)

    def unshift(uid: int, gid: int) -> tuple[int, int]:
        return uid - 100000, gid - 100000
    got = [(c.kind, c.path) for c in upper_changes(upper, [lower], unshift=unshift)]
    assert got == [("C", "/etc"), ("C", "/etc/passwd")]
    # without the shift every copied-up entry would be a change
    assert ("C", "/bin/sh") in [(c.kind, c.path) for c in upper_changes(upper, [lower])]
