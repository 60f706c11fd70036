"""The Docker API's container routes driven by real clients: Debian's docker CLI (20.10) and
docker-py over `rongqi serve`, and raw requests for Docker's status codes and error words."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import threading
import time

import docker.errors
import pytest


def ps(serve, *args: str) -> list[dict]:
    out = serve.docker("ps", "--no-trunc", "--format", "{{json .}}", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_docker_cli_create_start_ps_inspect_pause_top_stats_stop_rm(serve):
    # Host ports are the engine's pick (HostPort ""): a fixed one may be another session's.
    cid = serve.docker("create", "--name", "web", "-p", "127.0.0.1::80", "-e", "A=1",
                       "--label", "tier=front", "busybox", "sleep", "600").stdout.strip()
    assert len(cid) == 64
    [row] = ps(serve, "-a")
    assert (row["Names"], row["Status"], row["Image"]) == ("web", "Created", "busybox")
    assert ps(serve) == []
    serve.docker("start", "web")
    assert serve.docker("start", "web").stdout.strip() == "web"      # 304: already running
    doc = json.loads(serve.docker("inspect", "web").stdout)[0]
    port = doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    assert int(port) > 0
    [row] = ps(serve)
    assert row["Status"].startswith("Up ") and row["Ports"] == f"127.0.0.1:{port}->80/tcp"
    assert doc["Id"] == cid and doc["Name"] == "/web" and doc["State"]["Running"]
    assert doc["State"]["Status"] == "running" and doc["State"]["Pid"] > 0
    assert "A=1" in doc["Config"]["Env"] and doc["Config"]["Labels"] == {"tier": "front"}
    assert doc["Config"]["Cmd"] == ["sleep", "600"] and doc["Config"]["Image"] == "busybox"
    assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                            "HostPort": ""}]}
    assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                           "HostPort": port}]}
    assert doc["Image"].startswith("sha256:")
    assert list(doc["NetworkSettings"]["Networks"]) == ["bridge"]    # the default network
    assert doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert serve.docker("inspect", "-f", "{{.State.Status}} {{.Name}}", "web").stdout.strip() \
        == "running /web"
    serve.docker("pause", "web")
    assert ps(serve)[0]["Status"].endswith("(Paused)")
    p = serve.docker("pause", "web", check=False)
    assert p.returncode == 1 and "is already paused" in p.stderr
    serve.docker("unpause", "web")
    top = serve.docker("top", "web").stdout
    assert "PID" in top.splitlines()[0] and "sleep 600" in top
    stats = serve.docker("stats", "--no-stream", "--format",
                         "{{.Name}} {{.MemUsage}} {{.PIDs}}", "web").stdout.split()
    assert stats[0] == "web" and stats[-1] == "1"
    serve.docker("rename", "web", "web2")
    assert ps(serve)[0]["Names"] == "web2"
    p = serve.docker("rm", "web2", check=False)
    assert p.returncode == 1 and "You cannot remove a running container" in p.stderr
    serve.docker("stop", "-t", "1", "web2")
    serve.docker("stop", "web2")                                       # 304: stopped already
    [row] = ps(serve, "-a", "--filter", "status=exited")
    assert row["Status"].startswith("Exited (137) ")
    assert ps(serve, "-a", "--filter", "label=tier=front")[0]["ID"] == cid
    assert ps(serve, "-a", "--filter", "label=tier=back") == []
    assert ps(serve, "-a", "--filter", "label=tier", "--filter", "label=other") == []  # AND
    assert ps(serve, "-a", "--filter", "name=^/web2$")[0]["ID"] == cid
    assert ps(serve, "--filter", "exited=137") == []               # without -a, as Docker
    assert ps(serve, "-a", "--filter", "exited=137")[0]["ID"] == cid
    serve.docker("rm", "web2")
    assert ps(serve, "-a") == []
    p = serve.docker("inspect", "web2", check=False)
    assert p.returncode == 1 and "No such object: web2" in p.stderr


def test_docker_cli_cp_both_ways_diff_export_and_prune(serve, tmp_path):
    serve.docker("run", "-d", "--name", "files", "busybox", "sleep", "600")
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("hello\n")
    serve.docker("cp", str(src), "files:/tmp/")
    serve.docker("cp", "files:/tmp/in/sub/f.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "hello\n"
    serve.docker("cp", "files:/etc", str(tmp_path / "etc"))
    assert (tmp_path / "etc" / "passwd").is_file()
    p = serve.docker("cp", "files:/no/such", str(tmp_path), check=False)
    assert p.returncode == 1 and "No such container:path: files:/no/such" in p.stderr
    diff = serve.docker("diff", "files").stdout.splitlines()
    assert "A /tmp/in/sub/f.txt" in diff and "C /tmp" in diff
    image_id = serve.docker("commit", "-c", "ENV MADE=by-commit", "-m", "a note", "files",
                            "committed:1").stdout.strip()
    assert image_id.startswith("sha256:")
    p = serve.docker("run", "--rm", "committed:1", "sh", "-c", "cat /tmp/in/sub/f.txt; echo $MADE")
    assert p.stdout == "hello\nby-commit\n"
    serve.docker("stop", "-t", "0", "files")
    out = tmp_path / "fs.tar"
    serve.docker("export", "-o", str(out), "files")
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
    assert {"bin/busybox", "tmp/in/sub/f.txt"} <= {n.lstrip("./") for n in names}
    serve.docker("create", "--label", "keep=yes", "--name", "kept", "busybox", "true")
    out = serve.docker("container", "prune", "-f", "--filter", "label!=keep=yes").stdout
    assert "Deleted Containers:" in out and "Total reclaimed space" in out
    assert [r["Names"] for r in ps(serve, "-a")] == ["kept"]
    serve.docker("container", "prune", "-f")
    assert ps(serve, "-a") == []


def test_docker_run_rm_answers_the_exit_code_of_a_command_gone_at_once(serve):
    # run --rm: create, attach, wait?condition=removed, start; the container is removed the
    # moment `exit 3` ends, and the code must still be 3 (from its monitor or its died event).
    for _ in range(3):
        p = serve.docker("run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3", check=False)
        assert (p.returncode, p.stdout) == (3, "hi\n"), p.stderr
    assert ps(serve, "-a") == []


def test_wait_conditions_and_exit_codes(serve):
    serve.docker("run", "-d", "--name", "w", "busybox", "sh", "-c", "sleep 0.5; exit 3")
    assert serve.docker("wait", "w").stdout.strip() == "3"
    assert serve.docker("wait", "w").stdout.strip() == "3"     # not-running: at once
    serve.docker("rm", "w")
    # A created --rm container, waited on until removed, as `docker run --rm` does.
    r = serve.http.post("/v1.41/containers/create", json={
        "Image": "busybox", "Cmd": ["sh", "-c", "exit 7"], "HostConfig": {"AutoRemove": True}})
    assert r.status_code == 201
    cid = r.json()["Id"]
    got: dict = {}

    def waiter():
        got["r"] = serve.http.post(f"/v1.41/containers/{cid}/wait",
                                   params={"condition": "removed"})
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert serve.http.post(f"/v1.41/containers/{cid}/start").status_code == 204
    t.join(60)
    assert got["r"].status_code == 200
    assert got["r"].json() == {"StatusCode": 7, "Error": None}
    assert serve.http.get(f"/v1.41/containers/{cid}/json").status_code == 404
    # next-exit on a container that exited already waits for its next run.
    serve.docker("run", "--name", "n", "-d", "busybox", "sh", "-c", "exit 1")
    assert serve.docker("wait", "n").stdout.strip() == "1"
    got.clear()

    def next_exit():
        got["r"] = serve.http.post("/v1.41/containers/n/wait",
                                   params={"condition": "next-exit"})
    t = threading.Thread(target=next_exit)
    t.start()
    time.sleep(0.5)
    assert "r" not in got
    serve.docker("start", "n")
    t.join(60)
    assert got["r"].json()["StatusCode"] == 1
    serve.docker("rm", "n")


def test_status_codes_and_docker_error_words(serve):
    h = serve.http
    r = h.post("/v1.41/containers/create", json={"Image": "example.invalid/nope"})
    assert r.status_code == 404
    assert r.json() == {"message": "No such image: example.invalid/nope:latest"}
    r = h.post("/v1.41/containers/create", json={"Image": "busybox",
                                                 "HostConfig": {"PidMode": "host"}})
    assert r.status_code == 400 and "PidMode" in r.json()["message"]
    r = h.post("/v1.41/containers/create", json={"Image": "busybox",
                                                 "HostConfig": {"Memory": 1000}})
    assert r.status_code == 400
    assert r.json()["message"] == "Minimum memory limit allowed is 6MB"
    r = h.post("/v1.41/containers/create", params={"name": "dup"},
               json={"Image": "busybox", "Cmd": ["sleep", "600"], "Labels": {"a": "b"},
                     "ExposedPorts": {"9000/tcp": {}}, "Volumes": {"/data": {}},
                     "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": ""}]}}})
    assert r.status_code == 201 and r.json()["Warnings"] == []
    cid = r.json()["Id"]
    r = h.post("/v1.41/containers/create", params={"name": "dup"}, json={"Image": "busybox"})
    assert r.status_code == 409
    assert r.json()["message"].startswith('Conflict. The container name "/dup" is already in '
                                          f'use by container "{cid}"')
    assert h.post("/v1.41/containers/dup/stop").status_code == 304
    r = h.post("/v1.41/containers/dup/kill")
    assert r.status_code == 409 and "is not running" in r.json()["message"]
    assert h.post("/v1.41/containers/dup/start").status_code == 204
    assert h.post("/v1.41/containers/dup/start").status_code == 304
    r = h.post("/v1.41/containers/dup/kill", params={"signal": "SIGBOGUS"})
    assert r.status_code == 400 and r.json()["message"] == "Invalid signal: SIGBOGUS"
    doc = h.get("/v1.41/containers/dup/json", params={"size": "1"}).json()
    assert doc["SizeRw"] >= 0 and doc["SizeRootFs"] > doc["SizeRw"]
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}, "9000/tcp": {}}
    assert doc["Config"]["Volumes"] == {"/data": {}}
    assert doc["Mounts"][0]["Destination"] == "/data" and doc["Mounts"][0]["Type"] == "volume"
    host_port = doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    assert int(host_port) > 0 and doc["NetworkSettings"]["Ports"]["9000/tcp"] is None
    [row] = h.get("/v1.41/containers/json", params={"size": "true"}).json()
    assert row["Names"] == ["/dup"] and isinstance(row["Created"], int)
    assert row["SizeRootFs"] > 0 and row["State"] == "running"
    assert {"PrivatePort": 9000, "Type": "tcp"} in row["Ports"]
    assert {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": int(host_port),
            "Type": "tcp"} in row["Ports"]
    listed = h.get("/v1.41/containers/json",
                   params={"filters": json.dumps({"volume": ["/data"]})}).json()
    assert [c["Id"] for c in listed] == [cid]
    r = h.get("/v1.41/containers/json", params={"filters": json.dumps({"bogus": ["x"]})})
    assert r.status_code == 400
    r = h.delete("/v1.41/containers/dup")
    assert r.status_code == 409 and "You cannot remove a running container" in r.json()["message"]
    # stats: a stream of documents a second apart, the second with the first as precpu.
    with h.stream("GET", "/v1.41/containers/dup/stats") as resp:
        lines = resp.iter_lines()
        first = json.loads(next(lines))
        second = json.loads(next(lines))
    assert first["pids_stats"]["current"] == 1 and first["memory_stats"]["usage"] > 0
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
        first["cpu_stats"]["cpu_usage"]["total_usage"]
    one = h.get("/v1.41/containers/dup/stats", params={"stream": "false", "one-shot": "true"})
    assert one.json()["name"] == "/dup"
    # archive HEAD: the stat header; a missing path is a 404 with Docker's words.
    r = h.head("/v1.41/containers/dup/archive", params={"path": "/etc"})
    stat = json.loads(base64.b64decode(r.headers["X-Docker-Container-Path-Stat"]))
    assert r.status_code == 200 and stat["name"] == "etc" and stat["mode"] & (1 << 31)
    r = h.get("/v1.41/containers/dup/archive", params={"path": "/nope"})
    assert r.status_code == 404
    assert r.json()["message"] == f"Could not find the file /nope in container {cid}"
    r = h.put("/v1.41/containers/dup/archive", params={"path": "/etc/passwd"}, content=b"")
    assert r.status_code == 400
    assert h.delete("/v1.41/containers/dup", params={"force": "1", "v": "1"}).status_code == 204
    assert h.post("/v1.41/containers/dup/start").json()["message"] == "No such container: dup"


def test_docker_py_containers(serve, tmp_path):
    client = serve.client()
    # A blocking run: create, start, wait, then the logs (docker-py reads them only from a
    # json-file or journald container: the service's default is json-file, as dockerd's).
    assert client.containers.run("busybox", "echo hello", remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as ei:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 2"], remove=True)
    assert ei.value.exit_status == 2
    (tmp_path / "ro.txt").write_text("from the host\n")
    c = client.containers.run("busybox", "sleep 600", detach=True, name="py",
                              ports={"80/tcp": ("127.0.0.1",)},
                              environment={"FOO": "bar"}, mem_limit="64m",
                              volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
                              labels={"app": "py"})
    c.reload()
    assert c.status == "running" and c.name == "py" and c.labels == {"app": "py"}
    assert c.attrs["HostConfig"]["Memory"] == 64 << 20
    [bound] = c.ports["80/tcp"]
    assert bound["HostIp"] == "127.0.0.1" and int(bound["HostPort"]) > 0
    assert c.attrs["Mounts"][0]["Source"] == str(tmp_path) and not c.attrs["Mounts"][0]["RW"]
    assert [x.id for x in client.containers.list(filters={"label": "app=py"})] == [c.id]
    top = c.top()
    assert "PID" in top["Titles"] and any("sleep 600" in " ".join(p) for p in top["Processes"])
    s = c.stats(stream=False)
    assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] == 64 << 20
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"world"))
    assert c.put_archive("/tmp", buf.getvalue())
    chunks, stat = c.get_archive("/tmp/hello.txt")
    assert stat["name"] == "hello.txt" and stat["size"] == 5
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tf:
        assert tf.extractfile("hello.txt").read() == b"world"
    chunks, _ = c.get_archive("/mnt/ro.txt")
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tf:
        assert tf.extractfile("ro.txt").read() == b"from the host\n"
    assert {"Path": "/tmp/hello.txt", "Kind": 1} in c.diff()
    c.stop(timeout=1)
    assert c.wait() == {"StatusCode": 137, "Error": None}
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    c.restart(timeout=0)
    c.reload()
    assert c.status == "running"
    c.kill()
    assert c.wait()["StatusCode"] == 137
    c.remove()
    assert client.containers.list(all=True) == []
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("py")
    assert client.containers.prune() == {"ContainersDeleted": None, "SpaceReclaimed": 0}


def test_docker_rm_f_kills_at_once(serve):
    # dockerd's forced remove SIGKILLs; a PID 1 that ignores SIGTERM (sleep) must not cost the
    # stop timeout (10 s) first
    serve.docker("run", "-d", "--name", "stubborn", "--network", "none", "busybox", "sleep",
                 "600")
    import time
    t0 = time.monotonic()
    serve.docker("rm", "-f", "stubborn")
    assert time.monotonic() - t0 < 6
    assert serve.docker("ps", "-aq").stdout == ""
