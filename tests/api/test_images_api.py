"""client.images.load, .push (to a loopback registry) and .build, as docker-py's are called."""

from __future__ import annotations

import io
import json

import pytest

import rongqi
from rongqi.errors import APIError, ImageNotFound
from support.registry import start_registry, stop


def _archive(client: rongqi.Client, name: str, fmt: str = "docker") -> bytes:
    from rongqi.image import archive
    store = client.engine.store
    out = io.BytesIO()
    save = archive.save_oci_archive if fmt == "oci" else archive.save_docker_archive
    save(store, [store.resolve(name)], out)
    return out.getvalue()


def test_load_from_bytes_and_from_a_file(client, other, tmp_path):
    client.containers.run("busybox", "true", remove=True)   # the built-in busybox, made
    data = _archive(client, "busybox")
    loaded = other.images.load(data)
    assert [i.tags for i in loaded] == [["docker.io/library/busybox:latest"]]
    assert loaded[0].id == client.images.get("busybox").id
    assert other.containers.run("busybox", ["echo", "loaded"], remove=True) == b"loaded\n"
    # An OCI archive, from a file object, into a store that has the image already.
    path = tmp_path / "busybox-oci.tar"
    path.write_bytes(_archive(client, "busybox", "oci"))
    with open(path, "rb") as f:
        again = other.images.load(f)
    assert [i.id for i in again] == [loaded[0].id]
    assert len(other.images.list()) == 1


def test_load_of_something_that_is_no_archive_is_an_api_error(client):
    with pytest.raises(APIError):
        client.images.load(b"this is not a tar archive")
    assert client.images.list() == []


def test_push_to_a_loopback_registry_then_pull_it_elsewhere(client, other, tmp_path):
    reg = start_registry(tmp_path)
    try:
        host = reg.host
        client.containers.run("busybox", "true", remove=True)
        image = client.images.get("busybox")
        name = f"{host}/api/box"
        assert image.tag(name, "v1")
        status = json.loads(client.images.push(name, tag="v1"))
        assert status["status"] == "pushed" and status["id"] == f"{name}:v1"
        assert status["digest"].startswith("sha256:")
        pulled = other.images.pull(name, tag="v1")
        assert pulled.id == image.id and f"{name}:v1" in pulled.tags
        assert other.containers.run(f"{name}:v1", ["echo", "pulled"], remove=True) == \
            b"pulled\n"
        with pytest.raises(ImageNotFound):
            client.images.push(f"{host}/api/nothing-here", tag="v1")
    finally:
        stop(reg.proc)


def test_build_from_a_context_dir_with_args_labels_and_a_target(client, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("from the context\n")
    (ctx / "Containerfile.api").write_text(
        "FROM busybox AS base\n"
        "ARG WHO=nobody\n"
        "COPY hello.txt /hello.txt\n"
        "RUN echo \"built for $WHO\" >> /hello.txt\n"
        "LABEL stage=base\n"
        "FROM base AS final\n"
        "RUN echo final >> /hello.txt\n"
        "CMD [\"cat\", \"/hello.txt\"]\n")
    image, log = client.images.build(path=str(ctx), dockerfile="Containerfile.api",
                                     tag="localhost/api-built:1", buildargs={"WHO": "tests"},
                                     labels={"made.by": "api"}, target="base")
    lines = [entry["stream"] for entry in log]
    assert lines and "STEP 1/" in lines[0] and all(x.endswith("\n") for x in lines)
    assert "localhost/api-built:1" in image.tags
    assert image.labels == {"stage": "base", "made.by": "api"}
    out = client.containers.run("localhost/api-built:1", ["cat", "/hello.txt"], remove=True)
    assert out == b"from the context\nbuilt for tests\n"   # the target's stage: no "final"


def test_build_from_a_dockerfile_object_and_its_errors(client):
    df = io.BytesIO(b"FROM busybox\nRUN echo one > /one\nCMD [\"cat\", \"/one\"]\n")
    image, _ = client.images.build(fileobj=df, tag="api-fileobj")
    assert client.containers.run("api-fileobj", remove=True) == b"one\n"
    text = b"FROM busybox\nRUN echo one > /one\nCMD [\"cat\", \"/one\"]\n"
    _, cached = client.images.build(fileobj=io.BytesIO(text))
    assert any("Using cache" in e["stream"] for e in cached)
    _, fresh = client.images.build(fileobj=io.BytesIO(text), nocache=True)
    assert not any("Using cache" in e["stream"] for e in fresh)
    with pytest.raises(APIError):
        client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 3\n"))
    with pytest.raises(TypeError):
        client.images.build()


def test_build_network_mode(client):
    """docker-py's network_mode: the RUN steps' network ("none": only lo)."""
    text = b"FROM busybox\nRUN ls /sys/class/net | tr '\\n' ' ' > /links\n"
    image, _ = client.images.build(fileobj=io.BytesIO(text), network_mode="none",
                                   tag="api-net-none")
    assert client.containers.run("api-net-none", ["cat", "/links"], remove=True,
                                 network_mode="none") == b"lo "
