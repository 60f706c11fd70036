"""Layer tars applied to a temp dir: every entry kind, whiteouts, compression, and escapes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest
import zstandard

from rongqi.image.errors import LayerError
from rongqi.image.layer import LayerApplier

ROOT = os.geteuid() == 0


class T:
    """Builds a tar in memory, one entry at a time."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def add(self, name, kind=tarfile.REGTYPE, data=b"", **kw):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = kw.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
        ti.mtime = kw.pop("mtime", 1_600_000_000)
        for k, v in kw.items():
            setattr(ti, k, v)
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        self.tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def bytes(self):
        self.tf.close()
        return self.buf.getvalue()


def apply(root, data, **kw):
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    return LayerApplier(str(root), **kw).apply(stream)


@pytest.fixture
def box(tmp_path):
    """A layer root inside a parent dir, so writes outside the root can be seen."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    return root


def outside_is_untouched(root):
    return os.listdir(root.parent / "outside") == [] and sorted(os.listdir(root.parent)) == \
        ["outside", "root"]


def test_files_dirs_symlinks_and_hardlinks_are_recreated(box):
    t = (T().add("etc", tarfile.DIRTYPE, mode=0o750).add("etc/hosts", data=b"127.0.0.1\n",
                                                         mode=0o600)
         .add("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox")
         .add("bin/busybox", data=b"\x7fELF", mode=0o4755)
         .add("bin/ls", tarfile.LNKTYPE, linkname="bin/busybox")
         .add("run/fifo", tarfile.FIFOTYPE, mode=0o600))
    stats = apply(box, t.bytes())
    assert (box / "etc/hosts").read_bytes() == b"127.0.0.1\n"
    assert stat.S_IMODE(os.stat(box / "etc").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(box / "etc/hosts").st_mode) == 0o600
    assert os.readlink(box / "bin/sh") == "/bin/busybox"
    assert os.stat(box / "bin/ls").st_ino == os.stat(box / "bin/busybox").st_ino
    assert stat.S_IMODE(os.stat(box / "bin/busybox").st_mode) == 0o4755
    assert stat.S_ISFIFO(os.lstat(box / "run/fifo").st_mode)
    assert os.stat(box / "etc").st_mtime == 1_600_000_000
    assert stats.entries == 6


def test_diff_id_is_the_sha256_of_the_uncompressed_tar_for_every_compression(tmp_path):
    data = T().add("a", data=b"hello").bytes()
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    for i, blob in enumerate([data, gzip.compress(data),
                              zstandard.ZstdCompressor().compress(data)]):
        root = tmp_path / str(i)
        root.mkdir()
        assert apply(root, blob).diff_id == want
        assert (root / "a").read_bytes() == b"hello"


def test_multi_member_gzip_is_read_to_the_end(box):
    data = T().add("a", data=b"x" * 5000).add("b", data=b"y").bytes()
    blob = gzip.compress(data[:3000]) + gzip.compress(data[3000:])
    apply(box, blob)
    assert (box / "b").read_bytes() == b"y"


def test_truncated_gzip_is_rejected(box):
    blob = gzip.compress(T().add("a", data=os.urandom(100000)).bytes())
    with pytest.raises(LayerError, match="truncated|corrupt"):
        apply(box, blob[: len(blob) // 2])


@pytest.mark.skipif(not ROOT, reason="owners, devices and trusted xattrs need root")
def test_owners_devices_and_xattrs_are_kept(box):
    t = T()
    t.add("f", data=b"x", uid=1234, gid=5678,
          pax_headers={"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.t": "w"})
    t.add("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    apply(box, t.bytes())
    st = os.stat(box / "f")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert os.getxattr(box / "f", "user.k") == b"v"
    assert os.getxattr(box / "f", "trusted.t") == b"w"
    d = os.lstat(box / "dev/null")
    assert stat.S_ISCHR(d.st_mode) and os.major(d.st_rdev) == 1 and os.minor(d.st_rdev) == 3


def test_device_nodes_are_rejected_when_not_allowed(box):
    t = T().add("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)
    with pytest.raises(LayerError, match="device nodes are not allowed"):
        apply(box, t.bytes(), allow_devices=False)
    assert not (box / "dev/sda").exists()


def test_owners_not_set_are_recorded_as_containers_storage_does(box):
    t = T()
    t.add("d", tarfile.DIRTYPE, mode=0o750, uid=7, gid=8)
    t.add("d/f", data=b"x", mode=0o4755, uid=1234, gid=5678)
    t.add("d/p", tarfile.FIFOTYPE, mode=0o600, uid=3, gid=4)
    t.add("d/l", tarfile.SYMTYPE, linkname="f", uid=9, gid=9)
    apply(box, t.bytes(), same_owner=False)
    me = os.geteuid()
    assert os.getxattr(box / "d", "user.containers.override_stat") == b"7:8:0750:dir"
    assert os.getxattr(box / "d/f", "user.containers.override_stat") == b"1234:5678:04755:file"
    with pytest.raises(OSError):  # the kernel keeps user.* xattrs off fifos: skipped
        os.getxattr(box / "d/p", "user.containers.override_stat")
    assert all(os.lstat(box / n).st_uid == me for n in ("d", "d/f", "d/p", "d/l"))
    assert stat.S_IMODE(os.stat(box / "d/f").st_mode) == 0o4755


@pytest.mark.skipif(not ROOT, reason="setting owners needs root")
def test_owners_are_not_recorded_when_they_are_set(box):
    apply(box, T().add("f", data=b"x", uid=1234).bytes())
    assert os.stat(box / "f").st_uid == 1234
    with pytest.raises(OSError):
        os.getxattr(box / "f", "user.containers.override_stat")


def test_zero_runs_become_holes(box):
    data = b"a" + bytes(8 << 20) + b"z"
    apply(box, T().add("sparse", data=data).bytes())
    st = os.stat(box / "sparse")
    assert st.st_size == len(data)
    assert st.st_blocks * 512 < 4 << 20
    with open(box / "sparse", "rb") as f:
        assert f.read() == data


def test_gnu_sparse_member_is_expanded(tmp_path, box):
    src = tmp_path / "outside" / "s"
    with open(src, "wb") as f:
        f.write(b"head")
        f.seek(3 << 20)
        f.write(b"tail")
    tarpath = tmp_path / "s.tar"
    os.system(f"tar --sparse -C {src.parent} -cf {tarpath} s")
    os.unlink(src)
    apply(box, tarpath.read_bytes())
    with open(box / "s", "rb") as f:
        data = f.read()
    assert data[:4] == b"head" and data[-4:] == b"tail" and len(data) == (3 << 20) + 4


@pytest.mark.skipif(not ROOT, reason="overlay whiteouts are 0/0 devices and trusted xattrs")
def test_whiteouts_become_overlay_whiteouts(box):
    t = T().add("d", tarfile.DIRTYPE).add("d/.wh..wh..opq").add(".wh.gone")
    apply(box, t.bytes())
    st = os.lstat(box / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(box / "d", "trusted.overlay.opaque") == b"y"


def test_whiteouts_delete_in_a_flattened_tree(box):
    apply(box, T().add("keep", data=b"1").add("gone", data=b"2").add("d/old", data=b"3")
          .add("d2/x", data=b"4").bytes(), whiteouts="delete")
    apply(box, T().add(".wh.gone").add("d/new", data=b"5").add("d/.wh..wh..opq")
          .add(".wh.d2").bytes(), whiteouts="delete")
    assert sorted(os.listdir(box)) == ["d", "keep"]
    assert os.listdir(box / "d") == ["new"]


def test_later_entry_replaces_earlier_of_another_kind(box):
    apply(box, T().add("x", tarfile.DIRTYPE).add("x/y", data=b"1").add("x", data=b"file")
          .bytes())
    assert (box / "x").read_bytes() == b"file"


def test_symlinked_directory_inside_the_root_is_followed_inside(box):
    apply(box, T().add("usr/lib", tarfile.DIRTYPE).add("lib", tarfile.SYMTYPE, linkname="/usr/lib")
          .add("lib/libc.so", data=b"c").bytes())
    assert (box / "usr/lib/libc.so").read_bytes() == b"c"


@pytest.mark.parametrize("layer,why", [
    (T().add("../evil", data=b"x"), "escapes"),
    (T().add("a/../../evil", data=b"x"), "escapes"),
    (T().add("link", tarfile.SYMTYPE, linkname="../outside").add("link/evil", data=b"x"),
     "leads out"),
    (T().add("link", tarfile.SYMTYPE, linkname="a/../../..").add("link/outside/evil",
                                                                  data=b"x"), "leads out"),
    (T().add("h", tarfile.LNKTYPE, linkname="../outside"), "escapes"),
    (T().add("link", tarfile.SYMTYPE, linkname="..").add("h", tarfile.LNKTYPE,
                                                         linkname="link/outside"), "leads out"),
    (T().add("h", tarfile.LNKTYPE, linkname="/etc/passwd"), "not in the layer|does not exist"),
], ids=["dotdot", "inner-dotdot", "symlink-dir", "symlink-chain", "hardlink-dotdot",
        "hardlink-via-symlink", "hardlink-absolute"])
def test_escapes_are_rejected_and_nothing_is_written_outside(box, layer, why):
    with pytest.raises(LayerError, match=why) as e:
        apply(box, layer.bytes())
    assert "nothing was written outside the layer root" in str(e.value)
    assert outside_is_untouched(box)


def test_absolute_symlink_is_kept_verbatim_and_never_followed_out(box):
    host = "/rongqi-test-absent-dir"
    assert not os.path.exists(host)
    apply(box, T().add("cfg", tarfile.SYMTYPE, linkname=host).add("cfg/passwd", data=b"x")
          .bytes())
    # An absolute target means the layer's own root, as the container will see it.
    assert os.readlink(box / "cfg") == host
    assert (box / host.lstrip("/") / "passwd").read_bytes() == b"x"
    assert not os.path.exists(host)


def test_symlink_loop_is_rejected(box):
    with pytest.raises(LayerError, match="too many levels of symlinks"):
        apply(box, T().add("etc", tarfile.SYMTYPE, linkname="/etc").add("etc/passwd",
                                                                         data=b"x").bytes())


def test_streaming_a_large_layer_does_not_grow_memory(box):
    import resource

    class Gen(io.RawIOBase):
        """A 200 MB single-file tar generated on the fly, never held in memory."""

        def __init__(self):
            ti = tarfile.TarInfo("big")
            ti.size = 200 << 20
            self.parts = iter([ti.tobuf(), *([b"\x01" * (1 << 20)] * 200), bytes(1024)])
            self.cur = b""

        def readable(self):
            return True

        def readinto(self, b):
            while not self.cur:
                self.cur = next(self.parts, None)
                if self.cur is None:
                    return 0
            n = min(len(b), len(self.cur))
            b[:n] = self.cur[:n]
            self.cur = self.cur[n:]
            return n

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    apply(box, io.BufferedReader(Gen(), 1 << 20))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert os.path.getsize(box / "big") == 200 << 20
    assert grown < 64 << 10  # KiB: well under a third of the layer


def test_entry_replacing_an_implicit_parent_or_a_pending_file_wins(box):
    apply(box, T().add("a/b/c", data=b"1").add("a/b", data=b"file-now").add("x", data=b"f")
          .add("x", tarfile.DIRTYPE).add("x/y", data=b"2").add("z", data=b"old")
          .add("z", data=b"new").bytes())
    assert (box / "a/b").read_bytes() == b"file-now"
    assert (box / "x/y").read_bytes() == b"2"
    assert (box / "z").read_bytes() == b"new"


def test_many_small_files_with_hardlinks_come_out_whole(box):
    t = T()
    for i in range(3000):
        t.add(f"d{i % 7}/f{i}", data=str(i).encode() * (i % 50))
    t.add("d0/link", tarfile.LNKTYPE, linkname="d3/f2999")
    apply(box, t.bytes())
    for i in range(0, 3000, 37):
        assert (box / f"d{i % 7}/f{i}").read_bytes() == str(i).encode() * (i % 50)
    assert os.stat(box / "d0/link").st_ino == os.stat(box / "d3/f2999").st_ino
