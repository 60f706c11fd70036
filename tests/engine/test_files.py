"""cp (both ways, tar streams, owners and modes, podman's path rules, and no way out through a
container's symlinks), diff, commit (a runnable image) and export, with real containers."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


@pytest.fixture
def box(rq):
    rq("run", "-d", "--name", "box", "busybox", "sleep", "600", check=True)
    return rq


def _tree(base) -> None:
    (base / "sub").mkdir(parents=True)
    (base / "f").write_text("data\n")
    os.chown(base / "f", 1234, 5678)
    os.chmod(base / "f", 0o640)
    os.symlink("f", base / "link")
    os.link(base / "f", base / "hard")
    os.chmod(base / "sub", 0o751)
    os.utime(base / "f", (1_577_836_800, 1_577_836_800))


def _ls(rq, ref: str, path: str) -> dict[str, tuple[str, str, str]]:
    """name -> (mode, uid:gid, mtime) inside the container (busybox stat)."""
    out = rq("exec", ref, "sh", "-c", f"cd {path} && stat -c '%n %A %u:%g %Y' *",
             check=True).stdout
    return {n: (m, o, t) for n, m, o, t in (line.split() for line in out.splitlines())}


def test_cp_into_a_running_container_keeps_modes_and_times_and_owns_to_its_user(box, tmp_path):
    _tree(tmp_path / "src")
    box("cp", str(tmp_path / "src"), "box:/c1", check=True)
    got = _ls(box, "box", "/c1")
    assert got["f"] == ("-rw-r-----", "0:0", "1577836800")
    assert got["sub"][0] == "drwxr-x--x" and got["link"][0].startswith("l")
    inodes = box("exec", "box", "stat", "-c", "%i", "/c1/f", "/c1/hard", check=True).stdout
    assert len(set(inodes.split())) == 1          # the hardlink is one
    assert box("exec", "box", "readlink", "/c1/link", check=True).stdout == "f\n"
    # -a keeps the owners
    box("cp", "-a", str(tmp_path / "src"), "box:/c2", check=True)
    assert _ls(box, "box", "/c2")["f"][1] == "1234:5678"


def test_cp_out_of_a_container_keeps_modes_and_owners_with_a(box, tmp_path):
    box("exec", "box", "sh", "-c", "mkdir -p /d/s && echo x > /d/f && chmod 604 /d/f && "
        "chown 42:43 /d/f && touch -d '2021-02-03 04:05:06' /d/f && ln -s f /d/l", check=True)
    box("cp", "-a", "box:/d", str(tmp_path / "out"), check=True)
    st = os.lstat(tmp_path / "out" / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o604, 42, 43)
    assert os.readlink(tmp_path / "out" / "l") == "f"
    assert (tmp_path / "out" / "s").is_dir()
    box("cp", "box:/d", str(tmp_path / "plain"), check=True)
    st = os.lstat(tmp_path / "plain" / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o604, 0, 0)


def test_cp_tar_streams_both_ways(box, tmp_path):
    box("exec", "box", "sh", "-c", "mkdir /d && echo x > /d/f && chown 7:8 /d/f", check=True)
    r = box("cp", "box:/d", "-", input=b"")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert set(members) == {"d", "d/f"}
        assert (members["d/f"].uid, members["d/f"].gid) == (7, 8)
        assert tf.extractfile("d/f").read() == b"x\n"
    r = box("cp", "box:/d/.", "-", input=b"")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert tf.getnames() == ["f"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("in/g")
        ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = 3, 0o611, 99, 98, 1_000_000_000
        tf.addfile(ti, io.BytesIO(b"abc"))
    box("cp", "-a", "-", "box:/tmp", input=buf.getvalue(), check=True)
    assert _ls(box, "box", "/tmp/in")["g"] == ("-rw---x--x", "99:98", "1000000000")
    r = box("cp", "-", "box:/nonexistent", input=buf.getvalue())
    assert r.returncode == 125
    assert r.stderr == b"Error: destination must be a directory when copying from stdin\n"


def test_cp_path_rules(box, tmp_path):
    box("exec", "box", "sh", "-c", "mkdir -p /d/s && echo x > /d/f", check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    box("cp", "box:/d", str(dest), check=True)          # into an existing dir, by its name
    assert (dest / "d" / "f").read_text() == "x\n"
    box("cp", "box:/d/.", str(dest / "contents"), check=True)   # a new dir of its contents
    assert sorted(os.listdir(dest / "contents")) == ["f", "s"]
    box("cp", "box:/d/.", str(dest), check=True)        # contents into an existing dir
    assert (dest / "f").read_text() == "x\n"
    box("cp", "box:/d/f", str(dest / "renamed"), check=True)
    assert (dest / "renamed").read_text() == "x\n"
    r = box("cp", "box:/d", str(dest / "renamed"))
    assert r.stderr == "Error: destination must be a directory when copying a directory\n"
    r = box("cp", "box:/nope", str(dest))
    assert (r.returncode, r.stderr) == (125, 'Error: "/nope" could not be found on container '
                                             'box: no such file or directory\n')
    r = box("cp", "box:/d/f", str(dest / "no" / "such"))
    assert r.returncode == 125 and "could not be found on the host" in r.stderr
    r = box("cp", "nosuch:/d", str(dest))
    assert r.stderr == 'Error: container "nosuch" does not exist\n'
    (tmp_path / "hostfile").write_text("h")
    box("cp", str(tmp_path / "hostfile"), "box:/d/", check=True)
    assert box("exec", "box", "cat", "/d/hostfile", check=True).stdout == "h"


def test_cp_never_follows_a_container_symlink_to_the_host(box, tmp_path):
    """The container's /evil -> /, /escape -> ../../..<tmp_path>, /shadow -> /etc/shadow:
    reads give the container's files, writes land in the container, the host is untouched."""
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    target = tmp_path / "target"
    target.mkdir()
    box("exec", "box", "sh", "-c", f"ln -s / /evil; ln -s {secret} /abs; "
        f"ln -s ../../../../../../../..{target} /escape; ln -s /etc/shadow /shadow",
        check=True)
    for src in ("box:/abs", f"box:/evil{secret}", "box:/escape/../secret"):
        r = box("cp", src, str(tmp_path / "got"))
        assert r.returncode == 125 and "could not be found on container" in r.stderr, src
        assert not (tmp_path / "got").exists()
    r = box("cp", "box:/shadow", "-", input=b"")
    assert b"root:" not in r.stdout          # the host's /etc/shadow was not read
    (tmp_path / "payload").write_text("p")
    for dst in ("box:/escape/pwned", f"box:/evil{target}/pwned", "box:/escape/"):
        box("cp", str(tmp_path / "payload"), dst)
    assert os.listdir(target) == []
    # a destination the container made a link to a host file: written in the container, at
    # the link's target as the container sees it, never through to the host's file
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    box("exec", "box", "sh", "-c", f"mkdir -p {tmp_path} && ln -s {victim} /tmp/planted",
        check=True)
    box("cp", str(tmp_path / "payload"), "box:/tmp/planted", check=True)
    assert victim.read_text() == "untouched"
    assert box("exec", "box", "cat", str(victim), check=True).stdout == "p"
    # the same through the snapshot of a stopped container
    box.engine().stop("box", timeout=0)
    box("cp", str(tmp_path / "payload"), "box:/escape/pwned")
    r = box("cp", "box:/abs", str(tmp_path / "got"))
    assert r.returncode == 125 and os.listdir(target) == [] and not (tmp_path / "got").exists()


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def test_cp_with_a_created_container_mounts_its_snapshot_only_meanwhile(rq, tmp_path):
    from rongqi.engine.options import ContainerOptions
    e = rq.engine()
    e.create(ContainerOptions(image="busybox", name="c", command=["cat", "/from-host"]))
    (tmp_path / "from-host").write_text("put before start\n")
    rq("cp", str(tmp_path / "from-host"), "c:/", check=True)
    rq("cp", "c:/etc/passwd", str(tmp_path / "passwd"), check=True)
    assert "root:" in (tmp_path / "passwd").read_text()
    snap = e.storage.get_snapshot(e.get("c").config["snapshot"])
    assert not _mounted(snap.rootfs)
    e.start("c")
    rq.wait_for(lambda: rq.state("c")["status"] == "exited", what="c to exit")
    assert rq("logs", "c", check=True).stdout == "put before start\n"
    rq("cp", "c:/from-host", str(tmp_path / "back"), check=True)
    assert (tmp_path / "back").read_text() == "put before start\n"


def test_diff_shows_added_changed_deleted(box):
    box("exec", "box", "sh", "-c", "mkdir -p /new/d && echo hi > /new/d/f && rm /bin/vi && "
        "echo x >> /etc/passwd", check=True)
    r = box("diff", "box", check=True)
    lines = r.stdout.splitlines()
    for want in ("C /bin", "D /bin/vi", "C /etc", "C /etc/passwd", "A /new", "A /new/d",
                 "A /new/d/f"):
        assert want in lines, (want, lines)
    # the runtime's mount points (/etc/hosts, /etc/resolv.conf, /dev ...) are not changes
    assert not [x for x in lines if x.split()[1] in ("/etc/hosts", "/etc/hostname",
                                                      "/etc/resolv.conf", "/proc", "/sys")]
    doc = json.loads(box("diff", "--format", "json", "box", check=True).stdout)
    assert "/bin/vi" in doc["deleted"] and "/new/d/f" in doc["added"]
    assert "/etc/passwd" in doc["changed"]
    assert box("container", "diff", "box", check=True).stdout == r.stdout
    r = box("diff", "nosuch")
    assert r.returncode == 125 and r.stderr.startswith('Error: no container with name or ID')


def test_commit_gives_a_runnable_image_with_the_change_and_the_new_cmd(box):
    box("exec", "box", "sh", "-c", "echo committed > /hello && rm /bin/vi && mkdir -p /usr/x",
        check=True)
    r = box("commit", "-c", 'CMD ["cat", "/hello"]', "-c", "ENV FOO=bar", "-c",
            "LABEL a=b", "-m", "my message", "-a", "me", "box", "mine", check=True)
    image_id = r.stdout.strip()
    assert len(image_id) == 64
    assert box("run", "--rm", "mine", check=True).stdout == "committed\n"
    out = box("run", "--rm", "mine", "sh", "-c", "echo $FOO; test -e /bin/vi || echo gone",
              check=True).stdout
    assert out == "bar\ngone\n"
    info = json.loads(box("image", "inspect", "localhost/mine:latest", check=True).stdout)[0]
    assert info["Config"]["Cmd"] == ["cat", "/hello"] and info["Config"]["Labels"]["a"] == "b"
    assert info["Author"] == "me" and info["Id"] == "sha256:" + image_id
    assert len(info["RootFS"]["Layers"]) == 2
    assert not [e for e in info["Config"]["Env"] if e.startswith("HOSTNAME=")]
    lines = box("diff", "mine", check=True).stdout.splitlines()   # an image: its top layer
    assert {"A /hello", "D /bin/vi", "A /usr/x"} <= set(lines)
    assert box("image", "diff", "mine", check=True).stdout.splitlines() == lines
    hist = box("history", "mine", check=True).stdout
    assert "my message" in hist
    # the container kept running (it was paused for the commit only)
    assert box.state("box")["status"] == "running"
    # unnamed, by id; docker format; squashed
    r = box("commit", "-q", "--format", "docker", "--squash", "box", check=True)
    unnamed = r.stdout.strip()
    assert box("run", "--rm", unnamed[:12], "cat", "/hello", check=True).stdout == "committed\n"
    r = box("commit", "-c", "BOGUS x", "box", "bad")
    assert r.returncode == 125 and r.stderr.startswith('Error: invalid change "BOGUS x"')


def test_commit_of_a_stopped_container(rq):
    rq("run", "--name", "s", "busybox", "sh", "-c", "echo done > /marker", check=True)
    rq("commit", "s", "fromstopped", check=True)
    assert rq("run", "--rm", "fromstopped", "cat", "/marker", check=True).stdout == "done\n"


def test_export_holds_the_containers_files(box, tmp_path):
    box("exec", "box", "sh", "-c", "echo mine > /exported && chown 5:6 /exported", check=True)
    out = tmp_path / "box.tar"
    box("export", "-o", str(out), "box", check=True)
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        assert {"exported", "bin/busybox", "etc/passwd"} <= names
        m = tf.getmember("exported")
        assert (m.uid, m.gid) == (5, 6) and tf.extractfile(m).read() == b"mine\n"
    r = box("export", "box", input=b"")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert "exported" in tf.getnames()
    # an image name still exports the image's rootfs
    r = box("export", "busybox", input=b"")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert "bin/busybox" in tf.getnames() and "exported" not in tf.getnames()
    r = box("export", "nosuch")
    assert r.returncode == 125 and "no such container" in r.stderr


def test_cp_into_a_running_containers_volume_and_between_containers(rq, tmp_path):
    rq("run", "-d", "--name", "v", "-v", "data:/data", "busybox", "sleep", "600", check=True)
    rq("run", "-d", "--name", "w", "busybox", "sleep", "600", check=True)
    (tmp_path / "f").write_text("to the volume\n")
    rq("cp", str(tmp_path / "f"), "v:/data/", check=True)
    mountpoint = json.loads(rq("volume", "inspect", "data", check=True).stdout)[0]["Mountpoint"]
    assert open(os.path.join(mountpoint, "f")).read() == "to the volume\n"
    rq("cp", "v:/data/f", "w:/tmp/copied", check=True)
    assert rq("exec", "w", "cat", "/tmp/copied", check=True).stdout == "to the volume\n"
    rq("cp", "v:/data/f", "v:/data/again", check=True)   # one container, both sides
    assert rq("exec", "v", "cat", "/data/again", check=True).stdout == "to the volume\n"


def test_cp_with_a_stopped_containers_volume_goes_to_the_volume(rq, tmp_path):
    rq("run", "--name", "sv", "-v", "sdata:/data", "busybox", "sh", "-c",
       "echo written > /data/w", check=True)
    rq("cp", "sv:/data/w", str(tmp_path / "w"), check=True)
    assert (tmp_path / "w").read_text() == "written\n"
    (tmp_path / "in").write_text("put while stopped\n")
    rq("cp", str(tmp_path / "in"), "sv:/data/in", check=True)
    rq("run", "--rm", "-v", "sdata:/data", "busybox", "cat", "/data/in", check=True)
    assert rq("run", "--rm", "-v", "sdata:/data", "busybox", "cat", "/data/in",
              check=True).stdout == "put while stopped\n"


def test_cp_diff_commit_through_a_user_namespace(rq, tmp_path):
    rq("run", "-d", "--name", "ns", "--uidmap", "0:300000:65536", "--gidmap", "0:300000:65536",
       "busybox", "sh", "-c", "echo x > /tmp/own && chown 5:6 /tmp/own && sleep 600",
       check=True)
    rq.wait_for(lambda: rq("exec", "ns", "test", "-e", "/tmp/own").returncode == 0,
                what="the container's file")
    f = tmp_path / "f"
    f.write_text("in\n")
    os.chown(f, 1000, 1001)
    rq("cp", "-a", str(f), "ns:/tmp/f", check=True)
    assert _ls(rq, "ns", "/tmp")["f"][1] == "1000:1001"          # as the container sees it
    upper = rq.engine().storage.get_snapshot(rq.engine().get("ns").config["snapshot"]).upper
    st = os.lstat(os.path.join(upper, "tmp", "f"))
    assert (st.st_uid, st.st_gid) == (301000, 301001)             # on the host: shifted
    rq("cp", "-a", "ns:/tmp/own", str(tmp_path / "own"), check=True)
    st = os.lstat(tmp_path / "own")
    assert (st.st_uid, st.st_gid) == (5, 6)
    # the shift of the whole snapshot is not a change; the container's own are
    assert rq("diff", "ns", check=True).stdout.splitlines() == ["C /tmp", "A /tmp/f",
                                                               "A /tmp/own"]
    rq("commit", "ns", "nsimage", check=True)
    out = rq("run", "--rm", "nsimage", "stat", "-c", "%u:%g", "/tmp/own", "/bin/busybox",
             check=True).stdout
    assert out == "5:6\n0:0\n"


def test_cp_refuses_a_recorded_pid_that_is_not_the_containers(box, tmp_path):
    """A pid reused by a host process (simulated: the record points at a host `sleep`) must not
    make cp read or write the host's "/" as the container's."""
    import subprocess
    host = subprocess.Popen(["sleep", "60"])
    e = box.engine()
    try:
        with e.locked("box") as c:
            real = c.state["pid"]
            c.state["pid"] = host.pid
            c.save_state()
        try:
            r = box("cp", "box:/etc/hostname", str(tmp_path / "h"))
            assert r.returncode == 125 and "is not the container's" in r.stderr
            (tmp_path / "p").write_text("x")
            r = box("cp", str(tmp_path / "p"), f"box:{tmp_path}/written")
            assert r.returncode == 125 and not (tmp_path / "written").exists()
            # top lists the runtime's processes of the container, never the host's sleep
            cmds = [line.split(None, 7)[-1] for line in
                    box("top", "box", check=True).stdout.splitlines()[1:]]
            assert cmds == ["sleep 600"]
        finally:
            with e.locked("box") as c:
                c.state["pid"] = real
                c.save_state()
    finally:
        host.kill()
        host.wait()


def test_commit_volumes_become_the_images_volumes(rq, tmp_path):
    rq("run", "-d", "--name", "vc", "-v", "/anon", "-v", "named:/named", "-v",
       f"{tmp_path}:/bound", "busybox", "sleep", "600", check=True)

    def volumes(image: str) -> list[str]:
        info = json.loads(rq("image", "inspect", image, check=True).stdout)[0]
        return sorted(info["Config"].get("Volumes") or {})
    rq("commit", "vc", "vols1", check=True)
    assert volumes("localhost/vols1:latest") == ["/anon"]
    rq("commit", "--include-volumes", "vc", "vols2", check=True)
    assert volumes("localhost/vols2:latest") == ["/anon", "/bound", "/named"]
