"""rongqi.Client against real containers: docker-py's shapes for run (blocking, detached,
errors), containers' lifecycle, logs, exec_run, top, stats, archives, images, volumes,
and mypy --strict over the public API."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import pytest

import rongqi
from rongqi.errors import APIError, ContainerError, ImageNotFound, NotFound

pytestmark = pytest.mark.root


def test_blocking_run_returns_stdout_and_removes(client):
    assert client.containers.run("busybox", "echo hello", remove=True) == b"hello\n"
    assert client.containers.list(all=True) == []


def test_blocking_run_stderr_and_both(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo o; echo e >&2"],
                                stdout=True, stderr=True, remove=True)
    assert sorted(out.splitlines()) == [b"e", b"o"]


def test_nonzero_exit_raises_container_error(client):
    with pytest.raises(ContainerError) as ei:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert ei.value.exit_status == 3
    assert ei.value.stderr == b"bad\n"
    assert "returned non-zero exit status 3" in str(ei.value)
    assert client.containers.list(all=True) == []


def test_run_options_reach_the_container(client):
    out = client.containers.run(
        "busybox", ["sh", "-c", "echo $FOO; id -u; pwd; cat /sys/fs/cgroup/pids/pids.max "
                    "2>/dev/null || cat /sys/fs/cgroup/pids.max; touch /x 2>&1 || echo ro"],
        environment={"FOO": "bar"}, user="1234", working_dir="/tmp", pids_limit=50,
        read_only=True, mem_limit="64m", nano_cpus=500_000_000, labels={"k": "v"},
        cap_drop=["ALL"], remove=True, stderr=True)
    lines = out.decode().splitlines()
    assert lines[:4] == ["bar", "1234", "/tmp", "50"]
    assert lines[-1] == "ro"


def test_unknown_keyword_is_a_type_error(client):
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        client.containers.run("busybox", "true", bogus=1)


def test_missing_image_and_container(client):
    with pytest.raises(ImageNotFound):
        client.images.get("no-such-image:1")
    with pytest.raises(NotFound):
        client.containers.get("nope")
    assert issubclass(ImageNotFound, NotFound) and issubclass(NotFound, APIError)


def test_detached_lifecycle(client):
    c = client.containers.run("busybox", "sleep 600", detach=True, name="web",
                              labels={"app": "x"})
    assert (c.name, c.status, c.labels["app"]) == ("web", "running", "x")
    assert client.containers.get("web") == c
    assert [x.id for x in client.containers.list(filters={"label": "app=x"})] == [c.id]
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    c.rename("web2")
    assert c.name == "web2"
    c.stop(timeout=0)
    assert c.wait()["StatusCode"] == 137
    c.reload()
    assert c.status == "exited"
    c.start()
    assert c.status == "running"
    c.kill()
    c.wait()
    assert client.containers.prune()["ContainersDeleted"] == [c.id]
    assert client.containers.list(all=True) == []


def test_logs(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 0.2; echo b >&2; "
                                          "sleep 0.2; echo c"], detach=True)
    c.wait()
    assert c.logs() == b"a\nb\nc\n"
    assert c.logs(stderr=False) == b"a\nc\n"
    assert c.logs(tail=1, stderr=False) == b"c\n"
    ts = c.logs(timestamps=True, stderr=False).splitlines()
    assert ts[0].endswith(b" a") and b"T" in ts[0]
    assert list(c.logs(stream=True, stderr=False)) == [b"a\n", b"c\n"]
    c.remove()


def test_logs_follow_streams_until_exit(client):
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo $i; "
                                          "sleep 0.2; done"], detach=True)
    assert b"".join(c.logs(stream=True, follow=True)) == b"1\n2\n3\n"
    c.remove(force=True)


def test_exec_run(client):
    c = client.containers.run("busybox", "sleep 600", detach=True)
    r = c.exec_run("sh -c 'echo out; echo err >&2; exit 4'")
    assert r.exit_code == 4 and sorted(r.output.splitlines()) == [b"err", b"out"]
    r = c.exec_run(["sh", "-c", "echo $A; pwd; id -u; echo e >&2"], demux=True,
                   environment={"A": "1"}, workdir="/tmp", user="99")
    assert r == (0, (b"1\n/tmp\n99\n", b"e\n"))
    code, stream = c.exec_run(["sh", "-c", "echo x; echo y"], stream=True)
    assert code is None and b"".join(stream) == b"x\ny\n"
    with pytest.raises(APIError):
        c.exec_run("/no/such/binary")
    c.remove(force=True)


def test_top_stats_archives(client):
    c = client.containers.run("busybox", "sleep 600", detach=True)
    top = c.top()
    assert "PID" in top["Titles"] and any("sleep" in " ".join(p) for p in top["Processes"])
    s = c.stats(stream=False)
    assert s["memory_stats"]["usage"] > 0 and s["pids_stats"]["current"] >= 1
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"world"))
    assert c.put_archive("/tmp", buf.getvalue())
    assert c.exec_run("cat /tmp/hello.txt").output == b"world"
    chunks, stat = c.get_archive("/tmp/hello.txt")
    assert stat["name"] == "hello.txt" and stat["size"] == 5
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tf:
        f = tf.extractfile("hello.txt")
        assert f is not None and f.read() == b"world"
    c.remove(force=True)


def test_volume_shared_between_containers(client):
    v = client.volumes.create("data", labels={"a": "b"})
    assert [x.name for x in client.volumes.list()] == ["data"]
    client.containers.run("busybox", "sh -c 'echo hi > /v/f'", volumes={"data": {
        "bind": "/v", "mode": "rw"}}, remove=True)
    assert client.containers.run("busybox", "cat /v/f", volumes=["data:/v:ro"],
                                 remove=True) == b"hi\n"
    v.remove()
    with pytest.raises(NotFound):
        client.volumes.get("data")


def test_bind_volume(client, tmp_path):
    (tmp_path / "in.txt").write_text("from host")
    out = client.containers.run("busybox", "cat /mnt/in.txt",
                                volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
                                remove=True)
    assert out == b"from host"


def test_images(client):
    client.containers.run("busybox", "true", remove=True)   # pulls (makes) busybox
    imgs = client.images.list()
    assert [i.tags for i in imgs] == [["docker.io/library/busybox:latest"]]
    img = client.images.get("busybox")
    assert img.id.startswith("sha256:") and img == imgs[0]
    img.tag("mine", "v1")
    assert "docker.io/library/mine:v1" in client.images.get("mine:v1").tags
    client.images.remove("mine:v1")
    with pytest.raises(ImageNotFound):
        client.images.get("mine:v1")
    client.images.get("busybox")
    assert client.images.prune()["SpaceReclaimed"] >= 0


def test_from_env(engine_paths, monkeypatch):
    monkeypatch.setenv("RONGQI_ROOT", str(engine_paths / "root"))
    monkeypatch.setenv("RONGQI_RUNROOT", str(engine_paths / "run"))
    c = rongqi.from_env()
    assert c.engine.root == str(engine_paths / "root") and c.ping()
    assert c.containers.list(all=True) == []


def test_mypy_strict_on_the_public_api(tmp_path):
    # A copy of the package in a dir of its own: run inside an installed site-packages, mypy
    # would take the neighbours there (mypy_extensions.py) for user modules and refuse.
    import shutil
    shutil.copytree(os.path.dirname(rongqi.__file__), tmp_path / "rongqi",
                    ignore=shutil.ignore_patterns("__pycache__"))
    p = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                        "--no-incremental", "--cache-dir", os.devnull,
                        "rongqi/__init__.py", "rongqi/api.py", "rongqi/errors.py",
                        "rongqi/sandbox.py", "rongqi/oci/api.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_networks(client):
    net = client.networks.create("apinet", ipam={"Config": [{"Subnet": "10.89.77.0/24"}]},
                                 labels={"k": "v"},
                                 options={"com.docker.network.driver.mtu": "1400"})
    assert net.name == "apinet" and net.id
    # Docker's option names (engine.networks.create_docker_style); podman's document
    assert net.attrs["options"] == {"mtu": "1400"} and "docker_options" not in net.attrs
    assert "apinet" in [n.name for n in client.networks.list()]
    assert [n.name for n in client.networks.list(names=["apinet"])] == ["apinet"]
    a = client.containers.run("busybox", "sleep 600", detach=True, name="na", network="apinet")
    b = client.containers.run("busybox", "sleep 600", detach=True, name="nb", network="apinet")
    assert {c.name for c in net.containers} == {"na", "nb"}
    addr = a.exec_run("ip -o -4 addr show eth0").output.decode()
    assert "10.89.77." in addr
    ip = addr.split("inet ")[1].split("/")[0]
    assert b.exec_run(["ping", "-c", "1", "-W", "2", ip]).exit_code == 0
    with pytest.raises(APIError):
        net.remove()                     # in use, as podman refuses
    a.remove(force=True)
    b.remove(force=True)
    net.remove()
    with pytest.raises(NotFound):
        client.networks.get("apinet")
