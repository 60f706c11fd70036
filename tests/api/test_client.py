"""rongqi.Client against real containers: docker-py's shapes for run (blocking, detached,
errors), containers' lifecycle, logs, exec_run, top, stats, archives, images, volumes,
and mypy --strict over the public API."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tarfile
import time

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


def _status(text: str) -> dict[str, str]:
    lines = (ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
    return {k.strip(): v.strip() for k, v in lines}


def test_resource_and_capability_keywords_reach_the_cgroup_and_the_process(client):
    # each value read where the kernel applies it (v1 files, else v2's)
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
              "|| cat /sys/fs/cgroup/memory.max; "
              "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
              "2>/dev/null | tr '\\n' ' ' || cat /sys/fs/cgroup/cpu.max; echo; "
              "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
              "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; touch /x 2>&1 || echo ro")
    out = client.containers.run(
        "busybox", ["sh", "-c", script], mem_limit="48m", nano_cpus=250_000_000,
        pids_limit=33, cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE", "CHOWN"],
        read_only=True, network="none", remove=True, stderr=True).decode()
    lines = out.splitlines()
    assert int(lines[0]) == 48 << 20
    quota, period = (int(x) for x in lines[1].split()[:2])
    assert quota / period == 0.25                     # a quarter of one CPU
    assert lines[2] == "33"
    caps = _status(out)
    # CAP_CHOWN is bit 0, CAP_NET_BIND_SERVICE bit 10: nothing else is left
    assert {k: int(caps[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")} == \
        dict.fromkeys(("CapEff", "CapPrm", "CapBnd"), (1 << 0) | (1 << 10))
    assert lines[-1] == "ro" and "Read-only file system" in out


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


def test_tty_entrypoint_stdin_open_and_restart(client):
    # a terminal's output as docker's: \r\n line ends
    assert client.containers.run("busybox", "sh -c 'tty; echo hi'", tty=True, remove=True,
                                 network="none") == b"/dev/pts/0\r\nhi\r\n"
    assert client.containers.run("busybox", ["-c", "echo $0 ep"], entrypoint="sh",
                                 remove=True, network="none") == b"sh ep\n"
    c = client.containers.run("busybox", "sleep 600", detach=True, network="none",
                              stdin_open=True)
    before = dict(c.attrs["State"])
    assert c.attrs["Config"]["OpenStdin"] is True
    c.restart(timeout=0)
    c.reload()
    assert c.status == "running"
    assert c.attrs["State"]["Pid"] != before["Pid"]
    assert c.attrs["State"]["StartedAt"] != before["StartedAt"]
    c.remove(force=True)


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
    code, stream = c.exec_run(["sh", "-c", "echo x; echo y >&2"], stream=True, demux=True)
    assert sorted(stream, key=lambda p: p[0] is None) == [(b"x\n", None), (None, b"y\n")]
    c.remove(force=True)


def test_exec_run_of_a_command_that_cannot_run_is_its_exit_code(client):
    # as docker-py against dockerd: no exception, the code (podman's 127 / 126, what
    # `rongqi exec` exits with) and the reason in the output
    c = client.containers.run("busybox", "sleep 600", detach=True, network="none")
    code, out = c.exec_run("/no/such/binary")
    assert code == 127 and b"/no/such/binary" in out and b"not found" in out
    code, out = c.exec_run("nosuchcmd")
    assert code == 127 and b"executable file not found in $PATH" in out
    code, out = c.exec_run("/etc/passwd")
    assert code == 126 and b"permission denied" in out.lower()
    code, (o, e) = c.exec_run("nosuchcmd", demux=True)
    assert code == 127 and b"nosuchcmd" in o and e is None
    code, stream = c.exec_run("nosuchcmd", stream=True)
    assert code is None and b"nosuchcmd" in b"".join(stream)
    with pytest.raises(APIError):
        c.exec_run("nosuchcmd", detach=True)   # detached: dockerd's start fails (400)
    c.kill()
    c.wait()
    with pytest.raises(APIError) as ei:
        c.exec_run("true")                     # not running: dockerd's 409
    assert "running" in str(ei.value)
    c.remove()


def test_stats_as_docker_py(client):
    from rongqi.errors import InvalidArgument
    c = client.containers.run("busybox", "sleep 600", detach=True, network="none")
    # one document, two samples a second apart (dockerd's), so the CPU % has its base
    s = c.stats(stream=False)
    assert s["memory_stats"]["usage"] > 0 and s["pids_stats"]["current"] >= 1
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] > 0 and s["preread"] < s["read"]
    one = c.stats(stream=False, one_shot=True)
    assert one["precpu_stats"].get("system_cpu_usage", 0) == 0
    # a stream: JSON lines as the daemon sends them, dicts with decode
    raw = c.stats()
    line = next(raw)
    assert isinstance(line, bytes) and line.endswith(b"\n")
    assert json.loads(line)["id"] == c.id
    docs = c.stats(decode=True)
    first, second = next(docs), next(docs)
    assert second["precpu_stats"] == first["cpu_stats"]
    with pytest.raises(InvalidArgument):
        c.stats(stream=False, decode=True)
    with pytest.raises(InvalidArgument):
        c.stats(stream=True, one_shot=True)
    c.remove(force=True)
    assert list(docs) == []                      # the stream ends with the container
    with pytest.raises(NotFound):
        c.stats(stream=False)


def test_errors_carry_dockerds_status_codes(client):
    c = client.containers.run("busybox", "sleep 600", detach=True, name="busy",
                              network="none", stop_timeout=300)
    with pytest.raises(APIError) as ei:
        c.remove()                                  # running: a conflict
    assert ei.value.status_code == 409 and ei.value.is_client_error()
    with pytest.raises(APIError) as ei:
        client.containers.create("busybox", "true", name="busy")
    assert ei.value.status_code == 409 and "already in use" in ei.value.explanation
    with pytest.raises(NotFound) as nf:
        client.containers.get("no-such-container")
    assert nf.value.status_code == 404 and not nf.value.is_server_error()
    # dockerd's forced remove is a SIGKILL at once, not a stop that waits out stop_timeout
    # (sleep as PID 1 ignores SIGTERM: a stop would take the whole 300 s)
    t0 = time.monotonic()
    c.remove(force=True)
    assert time.monotonic() - t0 < 60


def test_run_of_an_image_no_registry_has_is_image_not_found(client, tmp_path):
    from support.registry import start_registry, stop
    reg = start_registry(tmp_path)
    try:
        with pytest.raises(ImageNotFound):
            client.containers.run(f"{reg.host}/no/such-image:1", "true", remove=True)
        with pytest.raises(ImageNotFound):
            client.images.pull(f"{reg.host}/no/such-image", tag="1")
    finally:
        stop(reg.proc)
    assert client.containers.list(all=True) == []


def test_archive_errors_as_dockerd(client):
    c = client.containers.run("busybox", "sleep 600", detach=True, network="none")
    with pytest.raises(NotFound):
        c.get_archive("/no/such/file")
    with pytest.raises(NotFound):
        c.put_archive("/no/such/dir", b"")
    with pytest.raises(APIError) as ei:
        c.put_archive("/etc/passwd", b"")
    assert ei.value.status_code == 400 and "not a directory" in str(ei.value)
    c.remove(force=True)
    ro = client.containers.run("busybox", "sleep 600", detach=True, network="none",
                               read_only=True)
    with pytest.raises(APIError) as ei:
        ro.put_archive("/tmp", b"")
    assert ei.value.status_code == 403
    ro.remove(force=True)


def test_top_stats_archives(client):
    c = client.containers.run("busybox", "sleep 600", detach=True)
    top = c.top()
    assert "PID" in top["Titles"] and any("sleep" in " ".join(p) for p in top["Processes"])
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
    # `import rongqi.oci as oci` (names found lazily at run time) gives mypy the real
    # signatures: a wrong type or a misspelt name is an error.
    (tmp_path / "uses_oci.py").write_text(
        "import rongqi.oci as oci\n"
        "pid: int = oci.create('c', '/b', stdio=(0, 1, 2))\n"
        "oci.start('c')\n"
        "status: str = oci.state('c')['status']\n"
        "code: int = oci.exec('c', ['true'], env={'A': 'b'})\n"
        "oci.kill('c', 'KILL', all=True)\n"
        "pids: list[int] = oci.ps('c')\n"
        "oci.pause('c'); oci.resume('c'); oci.delete('c', force=True)\n"
        "ids = [s['id'] for s in oci.list(root=oci.default_root())]\n"
        "rc: int = oci.run('c', '/b', stdio=(0, 1, 2))\n")
    p = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                        "--no-incremental", "--cache-dir", os.devnull,
                        "rongqi/__init__.py", "rongqi/api.py", "rongqi/errors.py",
                        "rongqi/sandbox.py", "rongqi/oci/__init__.py", "rongqi/oci/api.py",
                        "uses_oci.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_networks(client):
    # a subnet of its own: a fixed one may be another session's network at this moment
    third = random.randrange(100, 250)
    subnet = f"10.89.{third}.0/24"
    net = client.networks.create("apinet", ipam={"Config": [{"Subnet": subnet}]},
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
    assert f"10.89.{third}." in addr
    ip = addr.split("inet ")[1].split("/")[0]
    assert b.exec_run(["ping", "-c", "1", "-W", "2", ip]).exit_code == 0
    with pytest.raises(APIError):
        net.remove()                     # in use, as podman refuses
    a.remove(force=True)
    b.remove(force=True)
    net.remove()
    with pytest.raises(NotFound):
        client.networks.get("apinet")
