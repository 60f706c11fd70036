"""The image endpoints and /build, /auth through real clients: Debian's docker CLI and docker-py
against `rongqi serve`, pulling from and pushing to a registry on loopback (Debian's
docker-registry, filled by skopeo from the suite's busybox archive; never the internet).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from support.oci_image import build_busybox_oci_archive
from support.registry import SKOPEO, htpasswd_auth, start_registry, stop

pytestmark = [pytest.mark.root, pytest.mark.clients,
              pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")]


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("serve-img") / "busybox.tar")
    build_busybox_oci_archive(path, "bb:1")
    return path


def _fill(reg, archive: str, repo: str) -> None:
    argv = [SKOPEO, "copy", "-q", "--dest-tls-verify=false"]
    if reg.user:
        argv += ["--dest-creds", f"{reg.user}:{reg.password}"]
    subprocess.run([*argv, f"oci-archive:{archive}", f"docker://{reg.host}/{repo}"],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture
def registry(tmp_path: Path, busybox_archive: str):
    """A loopback registry holding HOST/bb:1 (the busybox image)."""
    reg = start_registry(tmp_path / "registry")
    try:
        _fill(reg, busybox_archive, "bb:1")
        yield reg
    finally:
        stop(reg.proc)


def _catalog(reg) -> list[str]:
    import httpx
    return httpx.get(f"http://{reg.host}/v2/_catalog", timeout=10).json()["repositories"]


def _tags(serve) -> list[str]:
    out = serve.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return sorted(out)


# -- pull, list, inspect, history, tag, rmi -------------------------------------------------------
def test_docker_pull_images_inspect_history_tag_rmi(serve, registry):
    ref = f"{registry.host}/bb:1"
    p = serve.docker("pull", ref)
    lines = p.stdout.splitlines()
    assert lines[0] == "1: Pulling from bb"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert any(line.startswith("Digest: sha256:") for line in lines)
    assert f"Status: Downloaded newer image for {ref}" in lines
    again = serve.docker("pull", ref).stdout
    assert f"Status: Image is up to date for {ref}" in again and "Already exists" in again

    assert _tags(serve) == [ref]
    [doc] = json.loads(serve.docker("image", "inspect", ref).stdout)
    assert doc["Id"].startswith("sha256:") and doc["RepoTags"] == [ref]
    digest = [x for x in lines if x.startswith("Digest: ")][0].split()[1]
    assert doc["RepoDigests"] == [f"{registry.host}/bb@{digest}"]
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Os"] == "linux"
    assert len(doc["RootFS"]["Layers"]) == 1
    assert serve.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == doc["Id"]

    hist = serve.docker("history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}",
                        ref).stdout.splitlines()
    assert hist == [f"{doc['Id']} rongqi tests: make_rootfs from busybox-static"]

    serve.docker("tag", ref, "mine:v1")
    assert _tags(serve) == [ref, "mine:v1"]
    short = doc["Id"].split(":")[1][:12]
    assert serve.docker("images", "-q").stdout.split() == [short, short]
    assert serve.docker("rmi", "mine:v1").stdout.splitlines() == ["Untagged: mine:v1"]
    out = serve.docker("rmi", ref).stdout.splitlines()
    # dockerd's digest reference goes with the repository's last tag, then the image
    assert out[:3] == [f"Untagged: {ref}", f"Untagged: {registry.host}/bb@{digest}",
                       f"Deleted: {doc['Id']}"]
    assert serve.docker("images", "-aq").stdout == ""
    # the store let go of the blobs too
    assert serve.docker("image", "inspect", ref, check=False).returncode == 1


def test_pull_of_a_missing_image_is_dockers_404(serve, registry):
    p = serve.docker("pull", f"{registry.host}/nope:1", check=False)
    assert p.returncode == 1
    assert (f"Error response from daemon: manifest for {registry.host}/nope:1 not found: "
            "manifest unknown") in p.stderr
    r = serve.http.post("/v1.41/images/create",
                        params={"fromImage": f"{registry.host}/bb", "tag": "nosuchtag"})
    assert r.status_code == 404 and "not found" in r.json()["message"]
    r = serve.http.post("/images/create", params={"fromImage": "Bad//Name"})
    assert r.status_code == 400
    r = serve.http.post("/images/create", params={"fromImage": f"{registry.host}/bb",
                                                  "tag": "1", "platform": "nonsense"})
    assert r.status_code == 400


def test_pull_stream_shape_over_http(serve, registry):
    r = serve.http.post("/v1.41/images/create",
                        params={"fromImage": f"{registry.host}/bb", "tag": "1"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    msgs = [json.loads(line) for line in r.text.splitlines()]
    assert msgs[0] == {"status": "Pulling from bb", "id": "1"}
    layer = msgs[1]["id"]
    assert msgs[1] == {"status": "Pulling fs layer", "progressDetail": {}, "id": layer}
    downloading = [m for m in msgs if m.get("status") == "Downloading"]
    assert downloading and all(m["id"] == layer and
                               0 < m["progressDetail"]["current"] <= m["progressDetail"]["total"]
                               for m in downloading)
    assert {"status": "Pull complete", "progressDetail": {}, "id": layer} in msgs
    assert msgs[-1]["status"] == f"Status: Downloaded newer image for {registry.host}/bb:1"
    assert not any("error" in m for m in msgs)


def test_docker_pull_all_tags(serve, registry, busybox_archive):
    _fill(registry, busybox_archive, "bb:2")
    out = serve.docker("pull", "-a", f"{registry.host}/bb").stdout.splitlines()
    assert [x for x in out if "Pulling from" in x] == ["1: Pulling from bb", "2: Pulling from bb"]
    assert f"Status: Downloaded newer image for {registry.host}/bb" in out
    assert _tags(serve) == [f"{registry.host}/bb:1", f"{registry.host}/bb:2"]
    p = serve.docker("pull", "-a", f"{registry.host}/absent", check=False)
    assert p.returncode == 1 and f"repository {registry.host}/absent not found" in p.stderr
    serve.docker("rmi", f"{registry.host}/bb:1", f"{registry.host}/bb:2")


# -- push ------------------------------------------------------------------------------------------
def test_inspect_and_rmi_by_repository_digest(serve, registry):
    ref = f"{registry.host}/bb:1"
    serve.docker("pull", ref)
    [doc] = json.loads(serve.docker("image", "inspect", ref).stdout)
    [by_digest] = doc["RepoDigests"]
    assert by_digest.startswith(f"{registry.host}/bb@sha256:")
    # inspect (CLI, docker-py, history) by NAME@DIGEST: the image whose RepoDigests has it
    [again] = json.loads(serve.docker("image", "inspect", by_digest).stdout)
    assert again["Id"] == doc["Id"]
    assert serve.client().images.get(by_digest).id == doc["Id"]
    assert serve.http.get(f"/images/{by_digest}/history").status_code == 200
    other = f"{registry.host}/bb@sha256:" + "0" * 64
    p = serve.docker("image", "inspect", other, check=False)
    assert p.returncode == 1 and f"No such image: {other}" in p.stderr
    # a container made by digest runs that image
    serve.docker("run", "--rm", "--network", "none", by_digest, "true")
    # rmi by digest: that reference goes, the image stays with its tag
    assert serve.docker("rmi", by_digest).stdout.splitlines() == [f"Untagged: {by_digest}"]
    [doc] = json.loads(serve.docker("image", "inspect", ref).stdout)
    assert doc["RepoTags"] == [ref] and doc["RepoDigests"] == []
    p = serve.docker("rmi", by_digest, check=False)
    assert p.returncode == 1 and f"No such image: {by_digest}" in p.stderr
    assert serve.docker("rmi", ref).stdout.splitlines()[:2] == [f"Untagged: {ref}",
                                                               f"Deleted: {doc['Id']}"]
    assert serve.docker("images", "-aq").stdout == ""


def test_docker_push_and_pull_back(serve, registry):
    src, dest = f"{registry.host}/bb:1", f"{registry.host}/copy:2"
    serve.docker("pull", src)
    serve.docker("tag", src, dest)
    out = serve.docker("push", dest).stdout.splitlines()
    assert out[0] == f"The push refers to repository [{registry.host}/copy]"
    assert any(x.endswith(": Preparing") for x in out)
    assert any(x.endswith((": Pushed", ": Mounted from bb", ": Layer already exists"))
               for x in out)
    assert out[-1].startswith("2: digest: sha256:") and " size: " in out[-1]
    assert "copy" in _catalog(registry)
    pushed = out[-1].split()[2]
    [doc] = json.loads(serve.docker("image", "inspect", dest).stdout)
    assert f"{registry.host}/copy@{pushed}" in doc["RepoDigests"]
    serve.docker("rmi", dest, src)
    assert serve.docker("images", "-aq").stdout == ""
    serve.docker("pull", dest)
    assert _tags(serve) == [dest]
    serve.docker("rmi", dest)
    # by digest: the name is a RepoDigest, not a tag
    by_digest = f"{registry.host}/copy@{pushed}"
    assert f"Status: Downloaded newer image for {by_digest}" in serve.docker(
        "pull", by_digest).stdout
    [doc] = json.loads(serve.docker("image", "inspect", by_digest).stdout)
    assert doc["RepoTags"] == [] and doc["RepoDigests"] == [by_digest]
    serve.docker("rmi", by_digest)
    assert serve.docker("images", "-aq").stdout == ""
    p = serve.docker("push", f"{registry.host}/absent:1", check=False)
    assert p.returncode == 1 and "does not exist locally" in p.stderr


# -- save, load, import ----------------------------------------------------------------------------
def test_docker_save_then_load(serve, registry, tmp_path):
    ref = f"{registry.host}/bb:1"
    serve.docker("pull", ref)
    archive = tmp_path / "saved.tar"
    serve.docker("save", "-o", str(archive), ref)
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [ref]
    image_id = serve.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
    serve.docker("rmi", ref)
    out = serve.docker("load", "-i", str(archive)).stdout
    assert f"Loaded image: {ref}" in out
    assert serve.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
    # save to stdout, load from stdin (the CLI's pipe forms)
    raw = serve.docker("save", ref, input=b"").stdout
    assert raw[257:262] == b"ustar"
    serve.docker("rmi", ref)
    assert b"Loaded image: " + ref.encode() in serve.docker("load", input=raw).stdout
    bad = serve.docker("load", input=b"not an archive", check=False)
    assert bad.returncode == 1 and "Error response from daemon" in bad.stderr.decode()
    assert "/ingest/" not in bad.stderr.decode()
    serve.docker("rmi", ref)


def test_docker_import(serve, tmp_path):
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tf:
        data = b"imported\n"
        ti = tarfile.TarInfo("etc/marker")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    out = serve.docker("import", "-c", "CMD [\"/bin/true\"]", str(tarball), "imp:1").stdout
    assert out.strip().startswith("sha256:")
    [doc] = json.loads(serve.docker("image", "inspect", "imp:1").stdout)
    assert doc["Id"] == out.strip() and doc["Config"]["Cmd"] == ["/bin/true"]
    serve.docker("rmi", "imp:1")
    bad = serve.docker("import", "-c", "BOGUS x", str(tarball), "imp:2", check=False)
    assert bad.returncode == 1 and "invalid instruction BOGUS" in bad.stderr


def test_image_events_in_dockers_words(serve, registry, tmp_path):
    import time
    ref = f"{registry.host}/bb:1"
    since = str(int(time.time()) - 1)
    serve.docker("pull", ref)
    serve.docker("tag", ref, "evt:1")
    archive = tmp_path / "e.tar"
    serve.docker("save", "-o", str(archive), ref)
    serve.docker("rmi", "evt:1", ref)
    serve.docker("load", "-i", str(archive))
    serve.docker("rmi", ref)
    until = str(int(time.time()) + 1)
    out = serve.docker("events", "--since", since, "--until", until, "--filter", "type=image",
                       "--format", "{{.Action}}").stdout.split()
    for action in ("pull", "tag", "save", "untag", "delete", "load"):
        assert action in out, out
    loads = serve.docker("events", "--since", since, "--until", until, "--filter",
                         "event=load", "--format", "{{.Action}}").stdout.split()
    assert loads == ["load"]


# -- remove: conflicts -----------------------------------------------------------------------------
def test_rmi_refused_while_a_container_uses_the_image(serve, registry):
    ref = f"{registry.host}/bb:1"
    serve.docker("pull", ref)
    image_id = serve.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
    cid = serve.rongqi("create", ref, "true").stdout.strip()
    p = serve.docker("rmi", ref, check=False)
    assert p.returncode == 1
    assert (f'conflict: unable to remove repository reference "{ref}" (must force) - '
            f"container {cid[:12]} is using its referenced image {image_id[7:19]}") in p.stderr
    r = serve.http.delete(f"/images/{image_id[7:19]}")
    assert r.status_code == 409 and "stopped container" in r.json()["message"]
    # force: the name goes (its repository's digest reference with it, as dockerd's), the
    # image stays (unnamed) for its container, as Docker
    [digest] = json.loads(serve.docker("image", "inspect", ref).stdout)[0]["RepoDigests"]
    assert serve.docker("rmi", "-f", ref).stdout.splitlines() == [f"Untagged: {ref}",
                                                                   f"Untagged: {digest}"]
    assert serve.docker("images", "-aq", "--no-trunc").stdout.split() == [image_id]
    assert serve.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == [
        "<none>:<none>"]
    serve.rongqi("rm", cid)
    out = serve.docker("rmi", image_id[7:19]).stdout.splitlines()
    assert out[0] == f"Deleted: {image_id}"
    assert serve.docker("images", "-aq").stdout == ""
    r = serve.http.delete("/images/nothere:1")
    assert r.status_code == 404 and r.json()["message"] == "No such image: nothere:1"


# -- list filters ----------------------------------------------------------------------------------
def test_images_json_filters(serve, registry):
    ref = f"{registry.host}/bb:1"
    serve.docker("pull", ref)
    serve.docker("tag", ref, "other/name:x")

    def listed(**filters):
        r = serve.http.get("/images/json", params={"filters": json.dumps(filters)})
        assert r.status_code == 200, r.text
        return sorted(t for e in r.json() for t in e["RepoTags"])

    assert listed() == sorted([ref, "other/name:x"])
    assert listed(reference=["other/*"]) == sorted([ref, "other/name:x"])  # one image
    assert listed(reference=["nomatch*"]) == []
    assert listed(dangling=["true"]) == []
    assert listed(label=["nolabel"]) == []
    [entry] = serve.http.get("/images/json").json()
    assert set(entry) >= {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size",
                          "VirtualSize", "SharedSize", "Labels", "Containers"}
    assert isinstance(entry["Created"], int) and entry["Containers"] == 0
    r = serve.http.get("/images/json", params={"filters": json.dumps({"bogus": ["x"]})})
    assert r.status_code == 400 and r.json()["message"] == "invalid filter 'bogus'"
    r = serve.http.get(f"/images/{ref}/json")
    assert r.status_code == 200 and r.json()["Id"] == entry["Id"]
    r = serve.http.get("/images/no-such:1/history")
    assert r.status_code == 404
    serve.docker("rmi", "other/name:x", ref)


# -- build -----------------------------------------------------------------------------------------
def test_docker_build_run_copy_and_tag(serve, registry, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from the context\n")
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/bb:1\n"
                                    "RUN echo built-by-run > /built; echo run-output\n"
                                    "COPY hello.txt /hello.txt\n")
    p = serve.docker("build", "-t", "built:1", "-t", "built:2", str(ctx))
    out = p.stdout.splitlines()
    assert f"Step 1/3 : FROM {registry.host}/bb:1" in out
    assert "Step 2/3 : RUN echo built-by-run > /built; echo run-output" in out
    assert "run-output" in out and "Step 3/3 : COPY hello.txt /hello.txt" in out
    built = [x for x in out if x.startswith("Successfully built ")]
    assert len(built) == 1
    assert out[-2:] == ["Successfully tagged built:1", "Successfully tagged built:2"]
    [doc] = json.loads(serve.docker("image", "inspect", "built:1").stdout)
    assert doc["Id"][7:19] == built[0].split()[-1]
    assert sorted(doc["RepoTags"]) == ["built:1", "built:2"]
    hist = serve.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}",
                        "built:1").stdout.splitlines()
    assert len(hist) == 3 and "echo built-by-run" in hist[1]
    # what the steps made is in the image
    assert serve.rongqi("run", "--rm", "built:1", "cat", "/built",
                        "/hello.txt").stdout == "built-by-run\nhello from the context\n"
    # a cached rebuild, the quiet form: the id only
    again = serve.docker("build", "-q", "-t", "built:1", str(ctx)).stdout.strip()
    assert again == doc["Id"]
    serve.docker("rmi", "built:1", "built:2")


def test_docker_build_of_stages_counts_steps_over_the_whole_file(serve, registry, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/bb:1 AS one\n"
                                    "RUN echo staged > /a\n"
                                    f"FROM {registry.host}/bb:1\n"
                                    "COPY --from=one /a /a\n")
    out = serve.docker("build", "-t", "staged:1", str(ctx)).stdout.splitlines()
    steps = [x for x in out if x.startswith("Step ")]
    assert steps == [f"Step 1/4 : FROM {registry.host}/bb:1 AS one",
                     "Step 2/4 : RUN echo staged > /a", f"Step 3/4 : FROM {registry.host}/bb:1",
                     "Step 4/4 : COPY --from=one /a /a"]
    assert serve.rongqi("run", "--rm", "--network", "none", "staged:1", "cat",
                        "/a").stdout == "staged\n"
    serve.docker("rmi", "staged:1")


def test_docker_build_failure_and_dockerfile_outside_the_context(serve, registry, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/bb:1\nRUN exit 3\n")
    p = serve.docker("build", "-t", "bad:1", str(ctx), check=False)
    assert p.returncode == 3
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in p.stderr
    assert serve.docker("images", "-q", "bad").stdout == ""
    # -f from outside: the CLI puts it in the tar under a name of its own
    outside = tmp_path / "Other.dockerfile"
    outside.write_text(f"FROM {registry.host}/bb:1\nLABEL from=outside\n")
    serve.docker("build", "-t", "lab:1", "-f", str(outside), str(ctx))
    [doc] = json.loads(serve.docker("image", "inspect", "lab:1").stdout)
    assert doc["Config"]["Labels"] == {"from": "outside"}
    serve.docker("rmi", "lab:1", f"{registry.host}/bb:1")


def test_build_query_options_and_compressed_context(serve, registry):
    dockerfile = (f"FROM {registry.host}/bb:1 AS base\nARG GREETING=none\n"
                  "RUN echo $GREETING > /greeting\nFROM base AS final\nLABEL stage=final\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = dockerfile.encode()
        ti = tarfile.TarInfo("build/Containerfile.x")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    params = {"t": "opts:1", "dockerfile": "build/Containerfile.x", "target": "base",
              "buildargs": json.dumps({"GREETING": "hi"}), "labels": json.dumps({"l": "v"}),
              "nocache": "1", "rm": "1", "forcerm": "1", "networkmode": "default"}
    r = serve.http.post("/v1.41/build", params=params, content=buf.getvalue(),
                        headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 200
    msgs = [json.loads(line) for line in r.text.splitlines()]
    assert not any("error" in m for m in msgs), msgs
    [aux] = [m["aux"]["ID"] for m in msgs if "aux" in m]
    [doc] = json.loads(serve.docker("image", "inspect", "opts:1").stdout)
    assert doc["Id"] == aux and doc["Config"]["Labels"] == {"l": "v"}   # the target: base
    out = serve.rongqi("run", "--rm", "opts:1", "cat", "/greeting").stdout
    assert out == "hi\n"
    r = serve.http.post("/build", params={"dockerfile": "../../etc/passwd"}, content=b"x")
    assert r.status_code == 400 and "within the build context" in r.json()["message"]
    r = serve.http.post("/build", params={"remote": "https://example.com/x.git"})
    assert r.status_code == 400
    r = serve.http.post("/build", content=b"")
    assert r.status_code == 400
    serve.docker("rmi", "opts:1", f"{registry.host}/bb:1")


def test_build_networkmode_none_and_default(serve, registry):
    """networkmode is the RUN steps' network: none has only lo; default (dockerd's bridge) is
    the default network's eth0 (nocache: the network is not in the step's cache key)."""
    def build(mode: str, tag: str) -> str:
        dockerfile = (f"FROM {registry.host}/bb:1\n"
                      "RUN ls /sys/class/net | sort | tr '\\n' ' ' > /links\n")
        r = serve.http.post("/v1.41/build", params={"t": tag, "networkmode": mode, "nocache": "1"},
                            content=dockerfile.encode(),
                            headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200
        msgs = [json.loads(line) for line in r.text.splitlines()]
        assert not any("error" in m for m in msgs), msgs
        return serve.rongqi("run", "--rm", "--network", "none", tag, "cat", "/links").stdout

    assert build("none", "net-none:1") == "lo "
    assert build("default", "net-default:1") == "eth0 lo "
    serve.docker("rmi", "net-none:1", "net-default:1", f"{registry.host}/bb:1")


def test_build_never_reads_a_host_file_through_a_symlinked_dockerfile(serve, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("HOST-SECRET-LINE\n")
    for dockerfile in (None, "Dockerfile"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("Dockerfile")
            ti.type, ti.linkname = tarfile.SYMTYPE, str(secret)
            tf.addfile(ti)
        params = {"dockerfile": dockerfile} if dockerfile else {}
        r = serve.http.post("/build", params=params, content=buf.getvalue())
        msgs = [json.loads(line) for line in r.text.splitlines()]
        assert "error" in msgs[-1], msgs
        assert "HOST-SECRET" not in r.text


def test_build_is_interrupted_when_its_client_leaves(serve, registry):
    import time
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = f"FROM {registry.host}/bb:1\nRUN echo started; sleep 300\n".encode()
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    runroot = Path(serve.rongqi.runroot)
    with serve.http.stream("POST", "/build", params={"t": "never:1"},
                           content=buf.getvalue()) as r:
        for line in r.iter_lines():
            if "started" in line:
                break
    # the response closed unread: the service notices, interrupts the build, cleans up
    deadline = time.monotonic() + 60
    while any(runroot.glob("serve-build-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(runroot.glob("serve-build-*"))
    assert serve.http.get("/images/never:1/json").status_code == 404
    assert serve.http.get("/_ping").text == "OK"


def test_docker_compose_build(serve, registry, tmp_path):
    compose = "/usr/bin/docker-compose"
    if not Path(compose).exists():
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(
        f"FROM {registry.host}/bb:1\nARG V=1\nRUN echo $V > /v\n")
    (tmp_path / "docker-compose.yml").write_text(
        "version: '3'\nservices:\n  app:\n    build:\n      context: ./app\n"
        "      args:\n        V: '7'\n    image: compimg:1\n")
    p = subprocess.run([compose, "build"], cwd=tmp_path, env=serve.env, capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Successfully tagged compimg:1" in p.stdout + p.stderr
    assert serve.rongqi("run", "--rm", "compimg:1", "cat", "/v").stdout == "7\n"
    serve.docker("rmi", "compimg:1", f"{registry.host}/bb:1")


def test_image_prune_and_build_prune(serve, registry, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/bb:1\nLABEL dangling=yes\n")
    image_id = serve.docker("build", "-q", str(ctx)).stdout.strip()
    rows = serve.docker("images", "--format", "{{.Repository}} {{.ID}}").stdout.splitlines()
    assert f"<none> {image_id[7:19]}" in rows
    out = serve.docker("image", "prune", "-f").stdout
    assert f"deleted: {image_id}" in out and "Total reclaimed space" in out
    assert _tags(serve) == [f"{registry.host}/bb:1"]
    out = serve.docker("image", "prune", "-af").stdout
    assert f"untagged: {registry.host}/bb:1" in out
    assert serve.docker("images", "-aq").stdout == ""
    r = serve.http.post("/build/prune")
    assert r.status_code == 200 and set(r.json()) == {"CachesDeleted", "SpaceReclaimed"}


# -- search and auth -------------------------------------------------------------------------------
def test_search_answers_from_the_registry_catalog(serve, registry):
    out = serve.docker("search", "--format", "{{.Name}}", f"{registry.host}/b").stdout.split()
    assert out == [f"{registry.host}/bb"]
    p = serve.docker("search", "busybox", check=False)
    assert p.returncode == 1 and "name a registry in the term" in p.stderr


def test_login_against_a_basic_auth_registry_then_pull_with_credentials(
        serve, tmp_path, busybox_archive):
    reg = start_registry(tmp_path / "auth-registry",
                         htpasswd_auth(tmp_path, "alice", "s3cret"))
    reg.user, reg.password = "alice", "s3cret"
    try:
        _fill(reg, busybox_archive, "private:1")
        bad = serve.docker("login", "-u", "alice", "--password-stdin", reg.host,
                           input="wrong\n", check=False)
        assert bad.returncode == 1 and "401 Unauthorized" in bad.stderr
        p = serve.http.post("/auth", json={"username": "alice", "password": "wrong",
                                           "serveraddress": reg.host})
        assert p.status_code == 401
        no_creds = serve.docker("pull", f"{reg.host}/private:1", check=False)
        assert no_creds.returncode == 1
        ok = serve.docker("login", "-u", "alice", "--password-stdin", reg.host,
                          input="s3cret\n")
        assert "Login Succeeded" in ok.stdout
        serve.docker("pull", f"{reg.host}/private:1")   # X-Registry-Auth from the login
        assert _tags(serve) == [f"{reg.host}/private:1"]
        serve.docker("tag", f"{reg.host}/private:1", f"{reg.host}/pushed:1")
        out = serve.docker("push", f"{reg.host}/pushed:1").stdout   # X-Registry-Auth again
        assert out.splitlines()[-1].startswith("1: digest: sha256:")
        serve.docker("rmi", f"{reg.host}/private:1", f"{reg.host}/pushed:1")
        # a build's FROM pull: the credentials come in X-Registry-Config
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {reg.host}/private:1\nLABEL private=1\n")
        serve.docker("build", "-t", "fromprivate:1", str(ctx))
        serve.docker("rmi", "fromprivate:1", f"{reg.host}/private:1")
        r = serve.http.post("/auth", json={"username": "alice", "password": "s3cret",
                                           "serveraddress": f"http://{reg.host}/"})
        assert r.json() == {"IdentityToken": "", "Status": "Login Succeeded"}
    finally:
        stop(reg.proc)


# -- docker-py -------------------------------------------------------------------------------------
def test_docker_py_images(serve, registry):
    import docker
    c = serve.client()
    img = c.images.pull(f"{registry.host}/bb", tag="1")
    assert img.tags == [f"{registry.host}/bb:1"] and img.id.startswith("sha256:")
    assert [i.id for i in c.images.list()] == [img.id]
    assert c.images.get(f"{registry.host}/bb:1") == img
    assert c.images.get(f"{registry.host}/bb:1").history()[0]["Id"] == img.id
    assert img.tag(f"{registry.host}/pushed", "3")
    lines = list(c.images.push(f"{registry.host}/pushed", tag="3", stream=True, decode=True))
    assert lines[-1]["aux"]["Tag"] == "3" and not any("error" in x for x in lines)
    assert "pushed" in _catalog(registry)
    image, logs = c.images.build(fileobj=io.BytesIO(
        f"FROM {registry.host}/bb:1\nRUN echo py-run\nLABEL by=docker-py\n".encode()),
        tag="pybuilt:1", rm=True)
    assert image.labels == {"by": "docker-py"} and "pybuilt:1" in image.tags
    logs = list(logs)
    assert {"stream": "py-run\n"} in logs and logs[-1] == {"stream":
                                                          "Successfully tagged pybuilt:1\n"}
    with pytest.raises(docker.errors.BuildError):
        c.images.build(fileobj=io.BytesIO(f"FROM {registry.host}/bb:1\nRUN false\n".encode()))
    with pytest.raises(docker.errors.ImageNotFound):
        c.images.get("not-here:1")
    with pytest.raises(docker.errors.NotFound):
        c.images.pull(f"{registry.host}/absent", tag="1")
    c.images.remove("pybuilt:1")
    c.images.remove(f"{registry.host}/pushed:3")
    archive = b"".join(img.save())    # GET /images/NAME/get
    c.images.remove(img.id, force=True)
    assert c.images.list(all=True) == []
    [loaded] = c.images.load(archive)
    assert loaded.id == img.id
    c.images.remove(loaded.id)
    assert c.images.list(all=True) == []
    assert c.images.prune()["SpaceReclaimed"] >= 0


# -- helpers without a server ----------------------------------------------------------------------
def test_registry_auth_header_decoding():
    from rongqi.serve.images import registry_auth

    def enc(doc):
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    assert registry_auth(enc({"username": "u", "password": "p"})) == ("u", "p")
    auth = base64.b64encode(b"v:w").decode()
    assert registry_auth(enc({"auth": auth})) == ("v", "w")
    assert registry_auth(enc({})) is None and registry_auth("e30=") is None
    assert registry_auth("%%%") is None and registry_auth(None) is None


def test_build_lines_in_the_classic_builders_words():
    from rongqi.serve.builds import _docker_line, _pull_policy
    tags: list[str] = []
    assert _docker_line("STEP 2/5: RUN x", tags) == "Step 2/5 : RUN x\n"
    assert _docker_line("[1/2] STEP 1/3: FROM a AS b", tags) == "[1/2] Step 1/3 : FROM a AS b\n"
    assert _docker_line("--> Using cache " + "a" * 64, tags) == " ---> Using cache\n"
    assert _docker_line("--> 0123456789a (1.2s)", tags) == " ---> 0123456789a\n"
    # with the build's events the whole id comes from its `image` event instead
    assert _docker_line("--> 0123456789a (1.2s)", tags, None, True) is None
    assert _docker_line("COMMIT x:1", tags) is None and _docker_line("f" * 64, tags) is None
    assert _docker_line("Successfully tagged docker.io/library/x:1", tags) is None
    assert tags == ["docker.io/library/x:1"]
    assert _docker_line("plain output", tags) == "plain output\n"
    assert [_pull_policy(v) for v in (None, "", "0", "1", "true", "never")] == [
        "missing", "missing", "missing", "always", "always", "never"]


def test_build_steps_are_numbered_across_stages_as_the_classic_builder(tmp_path):
    import io
    import tarfile

    from rongqi.serve.builds import _docker_line, step_plan
    text = (b"ARG BASE=busybox\nFROM $BASE AS one\nRUN echo a > /a\nFROM busybox AS unused\n"
            b"RUN true\nFROM busybox\nCOPY --from=one /a /a\nRUN cat /a\n")
    ctx = tmp_path / "ctx.tar"
    with tarfile.open(ctx, "w") as tar:
        info = tarfile.TarInfo("./Dockerfile")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    plan = step_plan(str(ctx), None, "")
    assert plan is not None and plan.total == 8
    tags: list[str] = []
    assert _docker_line("[1/3] STEP 1/2: FROM busybox AS one", tags, plan) == (
        "Step 1/8 : ARG BASE=busybox\nStep 2/8 : FROM busybox AS one\n")
    assert _docker_line("[1/3] STEP 2/2: RUN echo a > /a", tags, plan) == \
        "Step 3/8 : RUN echo a > /a\n"
    # the unused stage is skipped by the build: its numbers (4, 5) never appear
    assert _docker_line("[3/3] STEP 1/3: FROM busybox", tags, plan) == "Step 6/8 : FROM busybox\n"
    assert _docker_line("[3/3] STEP 3/3: RUN cat /a", tags, plan) == "Step 8/8 : RUN cat /a\n"
    target = step_plan(str(ctx), None, "one")
    assert target is not None and target.total == 3
    assert step_plan(str(ctx), "Missing.dockerfile", "") is None   # the build says why


def test_reference_filter_is_gos_path_match():
    from rongqi.serve.images import _glob
    assert _glob("busybox*").match("busybox:latest")
    assert not _glob("*").match("a/b:1") and _glob("*/*").match("a/b:1")
    assert _glob("b?sy[a-z]ox").match("busybox") and not _glob("[^b]usybox").match("busybox")
