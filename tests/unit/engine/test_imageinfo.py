"""engine/imageinfo.py: stored images as Docker's list entry, inspect and history documents,
from a real store in a temp dir (no root, no registry)."""

from __future__ import annotations

import io
import tarfile

import pytest

from rongqi.engine import imageinfo
from rongqi.image import media
from rongqi.image.archive import add_layer_file, create_image
from rongqi.image.errors import ImageNotFound
from rongqi.image.media import Descriptor
from rongqi.image.store import ImageStore

CREATED = "2024-03-01T10:20:30.123456789Z"
CREATED_UNIX = 1709288430


def _layer(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    return ImageStore(str(tmp_path / "store"))


def _image(store, name, *, labels=None, history=None, layers=(b"one",)):
    descs = [add_layer_file(store, io.BytesIO(_layer(f"f{i}", d))) for i, d in enumerate(layers)]
    cfg = {"Cmd": ["sh"], "Env": ["PATH=/bin"]}
    if labels:
        cfg["Labels"] = labels
    return create_image(store, descs, name, config=cfg, created=CREATED, history=history)


def test_list_entry_has_dockers_fields_and_familiar_names(store):
    desc = _image(store, "docker.io/library/busybox:latest", labels={"a": "1"})
    store.set_name("127.0.0.1:5000/x/y:2", desc)
    [f] = imageinfo.all_images(store)
    e = imageinfo.list_entry(f)
    assert set(e) == {"Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests",
                      "RepoTags", "SharedSize", "Size", "VirtualSize"}
    assert e["Id"] == store.manifest(desc)["config"]["digest"] and e["Id"].startswith("sha256:")
    assert e["RepoTags"] == ["127.0.0.1:5000/x/y:2", "busybox:latest"]
    assert e["Created"] == CREATED_UNIX and e["Labels"] == {"a": "1"}
    assert e["Size"] == e["VirtualSize"] == sum(x["size"] for x in store.manifest(desc)["layers"])
    assert e["Containers"] == -1 and e["SharedSize"] == -1 and e["ParentId"] == ""


def test_names_of_two_manifests_of_one_config_are_one_image(store):
    desc = _image(store, "docker.io/library/a:1")
    m = store.manifest(desc)
    m["annotations"] = {"x": "y"}   # another manifest, the same config
    other = store.put_json(m, media.OCI_MANIFEST)
    store.set_name("docker.io/library/b:2", other)
    [f] = imageinfo.all_images(store)
    assert f.names == ["docker.io/library/a:1", "docker.io/library/b:2"]
    assert sorted(f.manifests) == sorted([desc.digest, other.digest])


def test_dangling_image_is_none_none(store):
    desc = _image(store, None)
    store.keep(desc)
    [f] = imageinfo.all_images(store)
    assert f.dangling
    e = imageinfo.list_entry(f)
    assert e["RepoTags"] == ["<none>:<none>"] and e["RepoDigests"] == ["<none>@<none>"]


def test_repo_digests_from_the_pull_annotation_and_digest_names(store):
    desc = _image(store, None)
    d = "sha256:" + "ab" * 32
    store.set_name("docker.io/library/busybox:latest", Descriptor(
        desc.media_type, desc.digest, desc.size, {imageinfo.REPO_DIGEST:
                                                  f"docker.io/library/busybox@{d}"}))
    store.set_name(f"127.0.0.1:5000/p@{desc.digest}", desc)   # a pull by digest
    f = imageinfo.image(store, "busybox")
    assert f.names == ["docker.io/library/busybox:latest"]
    doc = imageinfo.inspect(f)
    assert doc["RepoTags"] == ["busybox:latest"]
    assert doc["RepoDigests"] == [f"127.0.0.1:5000/p@{desc.digest}", f"busybox@{d}"]
    assert imageinfo.inspect(f, familiar_names=False)["RepoTags"] == [
        "docker.io/library/busybox:latest"]


def test_inspect_document(store):
    desc = _image(store, "docker.io/library/img:1", labels={"k": "v"})
    f = imageinfo.image(store, "img:1")
    doc = imageinfo.inspect(f)
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
                "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os",
                "Size", "VirtualSize", "GraphDriver", "RootFS", "Metadata"):
        assert key in doc, key
    assert doc["Created"] == CREATED
    cfg = doc["Config"]
    assert cfg["Cmd"] == ["sh"] and cfg["Env"] == ["PATH=/bin"] and cfg["Labels"] == {"k": "v"}
    assert cfg["Entrypoint"] is None and cfg["Tty"] is False and cfg["WorkingDir"] == ""
    assert "ExposedPorts" not in cfg and "Healthcheck" not in cfg
    assert doc["RootFS"] == {"Type": "layers",
                             "Layers": store.config(desc)["rootfs"]["diff_ids"]}
    assert doc["GraphDriver"] == {"Data": {}, "Name": "overlay"}   # nothing unpacked
    assert doc["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}


def test_history_newest_first_with_id_and_tags_on_top(store):
    hist = [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD file"},
            {"created": "2024-01-02T00:00:00Z", "created_by": "ENV A=1", "empty_layer": True},
            {"created": CREATED, "created_by": "RUN x", "comment": "c"}]
    desc = _image(store, "docker.io/library/h:1", history=hist, layers=(b"one", b"two"))
    f = imageinfo.image(store, "h:1")
    h = imageinfo.history(f)
    layers = store.manifest(desc)["layers"]
    assert [e["CreatedBy"] for e in h] == ["RUN x", "ENV A=1", "ADD file"]
    assert h[0]["Id"] == f.id and h[0]["Tags"] == ["h:1"] and h[0]["Comment"] == "c"
    assert [e["Id"] for e in h[1:]] == ["<missing>", "<missing>"]
    assert h[1]["Tags"] is None
    assert [e["Size"] for e in h] == [layers[1]["size"], 0, layers[0]["size"]]
    assert h[0]["Created"] == CREATED_UNIX and h[2]["Created"] == 1704067200


def test_image_by_id_prefix_and_missing(store):
    _image(store, "docker.io/library/z:1")
    f = imageinfo.image(store, "z:1")
    assert imageinfo.image(store, f.id.partition(":")[2][:12]).id == f.id
    with pytest.raises(ImageNotFound):
        imageinfo.image(store, "nope:1")


def test_unix_time_and_familiar():
    assert imageinfo.unix_time(CREATED) == CREATED_UNIX
    assert imageinfo.unix_time("") == 0 and imageinfo.unix_time("junk") == 0
    assert imageinfo.familiar("docker.io/library/busybox:latest") == "busybox:latest"
    assert imageinfo.familiar("docker.io/me/app") == "me/app"
    assert imageinfo.familiar("127.0.0.1:5000/a:b") == "127.0.0.1:5000/a:b"


def test_remove_unnamed_keeps_named_entries(store):
    desc = _image(store, "docker.io/library/k:1")
    store.keep(desc)   # already named: keep adds nothing
    assert store.unnamed() == []
    other = _image(store, None, layers=(b"other",))
    store.keep(other)
    assert [d.digest for d in store.unnamed()] == [other.digest]
    assert store.remove_unnamed(other.digest) and store.unnamed() == []
    assert not store.remove_unnamed(desc.digest)
    assert [n for n, _ in store.names()] == ["docker.io/library/k:1"]
