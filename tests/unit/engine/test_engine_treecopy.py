"""Trees copied as tar entries inside a root: metadata kept, and no symlink leads outside."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from rongqi.engine.treecopy import CopyError, IdMapper, RootDir, TarSink, TreeReader, TreeWriter, \
    tar_entries

ROOT = os.geteuid() == 0


def _tree(base: str) -> None:
    os.makedirs(f"{base}/d/sub")
    with open(f"{base}/d/f", "w") as f:
        f.write("data")
    os.chmod(f"{base}/d/f", 0o640)
    os.symlink("f", f"{base}/d/link")
    os.link(f"{base}/d/f", f"{base}/d/hard")
    os.mkfifo(f"{base}/d/fifo", 0o600)
    os.chmod(f"{base}/d/sub", 0o751)
    os.utime(f"{base}/d/f", ns=(1_577_836_800_000_000_000,) * 2)
    os.utime(f"{base}/d/sub", ns=(1_577_836_800_123_456_789,) * 2)
    if ROOT:
        os.chown(f"{base}/d/f", 1234, 5678)
        os.lchown(f"{base}/d/link", 42, 43)


def _copy(src: str, src_path: str, arc: str, dst: str, base: str, **kw) -> None:
    with RootDir.open(src, "src") as s, RootDir.open(dst, "dst") as d:
        w = TreeWriter(d, base, **kw)
        for e in TreeReader(s).entries(src_path, arc):
            w.add(*e)
        w.close()


def test_copy_keeps_modes_times_links_and_owners(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    os.mkdir(dst)
    _tree(src)
    _copy(src, "/d", "d", dst, "/")
    st = os.lstat(f"{dst}/d/f")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime_ns == 1_577_836_800_000_000_000
    assert stat.S_IMODE(os.lstat(f"{dst}/d/sub").st_mode) == 0o751
    # sub-second directory times survive (PAX), to the precision of a float
    assert abs(os.lstat(f"{dst}/d/sub").st_mtime_ns - 1_577_836_800_123_456_789) < 1000
    assert os.readlink(f"{dst}/d/link") == "f"
    assert os.lstat(f"{dst}/d/hard").st_ino == st.st_ino
    assert stat.S_ISFIFO(os.lstat(f"{dst}/d/fifo").st_mode)
    if ROOT:
        assert (st.st_uid, st.st_gid) == (1234, 5678)
        ls = os.lstat(f"{dst}/d/link")
        assert (ls.st_uid, ls.st_gid) == (42, 43)


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_fixed_owner_and_id_maps(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    os.mkdir(dst)
    _tree(src)
    _copy(src, "/d", "d", dst, "/", owner=(7, 8))
    assert {(os.lstat(f"{dst}/d/{n}").st_uid, os.lstat(f"{dst}/d/{n}").st_gid)
            for n in ("f", "link", "sub", ".")} == {(7, 8)}
    dst2 = str(tmp_path / "dst2")
    os.mkdir(dst2)
    ids = IdMapper([(0, 100000, 65536)], [(0, 200000, 65536)])
    _copy(src, "/d", "d", dst2, "/", ids=ids)
    st = os.lstat(f"{dst2}/d/f")
    assert (st.st_uid, st.st_gid) == (101234, 205678)
    # and back: what the container calls 1234 is read as 1234
    with RootDir.open(dst2, "c") as r:
        names = {ti.name: ti for ti, _ in TreeReader(r, ids=ids).entries("/d", "d")}
    assert (names["d/f"].uid, names["d/f"].gid) == (1234, 5678)


def test_rename_and_contents_only(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    os.mkdir(dst)
    _tree(src)
    _copy(src, "/d", "d", dst, "/", rename=("d", "renamed"))
    assert sorted(os.listdir(f"{dst}/renamed")) == ["f", "fifo", "hard", "link", "sub"]
    os.mkdir(f"{dst}/into")
    _copy(src, "/d", "", dst, "/into")
    assert sorted(os.listdir(f"{dst}/into")) == ["f", "fifo", "hard", "link", "sub"]


def test_a_symlink_in_the_root_never_leads_outside(tmp_path):
    """The container's /evil -> / and /up -> ../../../..: writes and reads stay in the root."""
    root = str(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.makedirs(f"{root}/etc")
    os.symlink("/", f"{root}/evil")
    os.symlink("../../../../../../../../" + str(outside).lstrip("/"), f"{root}/up")
    os.symlink(str(outside), f"{root}/abs")
    src = str(tmp_path / "src")
    os.makedirs(src)
    (tmp_path / "src" / "payload").write_text("x")
    for target in ("/evil" + str(outside), "/up", "/abs"):
        with RootDir.open(src, "h") as s, RootDir.open(root, "c") as d:
            w = TreeWriter(d, target)
            for e in TreeReader(s).entries("/payload", "payload"):
                w.add(*e)
            w.close()
    assert os.listdir(outside) == []
    # each landed inside the root, where the links point to as the container sees them
    assert os.path.exists(f"{root}{outside}/payload")
    (outside / "secret").write_text("host")
    with RootDir.open(root, "c") as r:
        assert r.lstat("/abs/secret") is None
        assert r.resolve("/abs") == str(outside)
        with pytest.raises(FileNotFoundError):
            list(TreeReader(r).entries("/up/secret", "secret"))


def test_a_dangling_link_as_destination_is_not_followed_out(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root)
    victim = tmp_path / "victim"
    os.symlink(str(victim), f"{root}/out")
    with RootDir.open(root, "c") as d:
        w = TreeWriter(d, "/")
        ti = tarfile.TarInfo("out")
        ti.size = 3
        w.add(ti, lambda: io.BytesIO(b"abc"))
        w.close()
    assert not victim.exists()
    assert open(f"{root}/out").read() == "abc" and not os.path.islink(f"{root}/out")


def _tar(*members: tuple[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_archive_entries_that_climb_out_are_refused(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(f"{root}/dest")
    with RootDir.open(root, "c") as d:
        w = TreeWriter(d, "/dest")
        with pytest.raises(CopyError, match="outside the destination"):
            for e in tar_entries(_tar(("../x", b"1"))):
                w.add(*e)
    assert not os.path.exists(f"{root}/x")


def test_tar_stream_round_trip_and_missing_parents(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root)
    with RootDir.open(root, "c") as d:
        w = TreeWriter(d, "/")
        for e in tar_entries(_tar(("a/b/c.txt", b"hello"))):
            w.add(*e)
        w.close()
    assert open(f"{root}/a/b/c.txt").read() == "hello"
    out = io.BytesIO()
    with RootDir.open(root, "c") as r:
        sink = TarSink(out)
        for e in TreeReader(r).entries("/a", "a"):
            sink.add(*e)
        sink.close()
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        assert tf.getnames() == ["a", "a/b", "a/b/c.txt"]
        assert tf.extractfile("a/b/c.txt").read() == b"hello"


def test_directory_and_file_do_not_replace_each_other(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(f"{root}/d")
    (tmp_path / "root" / "f").write_text("x")
    with RootDir.open(root, "c") as d:
        with pytest.raises(CopyError, match="cannot overwrite directory"):
            TreeWriter(d, "/").add(tarfile.TarInfo("d"), lambda: io.BytesIO(b""))
        ti = tarfile.TarInfo("f")
        ti.type = tarfile.DIRTYPE
        with pytest.raises(CopyError, match="cannot overwrite non-directory"):
            TreeWriter(d, "/").add(ti, None)


def test_open_regular_refuses_what_is_not_a_regular_file(tmp_path):
    from rongqi.engine.treecopy import open_regular
    os.mkfifo(tmp_path / "fifo")
    os.symlink("/etc/passwd", tmp_path / "link")
    (tmp_path / "file").write_text("ok")
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # a fifo would block an ordinary open; a link is not followed
        with pytest.raises(CopyError):
            open_regular(d, "fifo", os.O_RDONLY)
        with pytest.raises(CopyError):
            open_regular(d, "link", os.O_RDONLY)
        fd = open_regular(d, "file", os.O_RDONLY)
        assert os.read(fd, 10) == b"ok"
        other = os.stat(tmp_path / "fifo")
        os.close(fd)
        with pytest.raises(CopyError, match="replaced"):
            open_regular(d, "file", os.O_RDONLY, expect=other)
    finally:
        os.close(d)


def test_walk_and_remove_never_follow_links(tmp_path):
    from rongqi.engine.treecopy import remove_tree_at, walk
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    os.symlink(str(outside), tree / "d" / "link")
    (tree / "d" / "f").write_text("y")
    top = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = [(rel, [n for n, _ in listing]) for rel, _, listing in walk(top)]
        assert seen == [("", ["d"]), ("d", ["f", "link"])]
        remove_tree_at(top, "d")
    finally:
        os.close(top)
    assert not (tree / "d").exists() and (outside / "keep").read_text() == "x"
