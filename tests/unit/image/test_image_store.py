"""The content store: verified blobs, names in index.json, dedup, GC, locks, skopeo can read it."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from rongqi.image import media
from rongqi.image.errors import BlobVerificationError, ImageNotFound
from rongqi.image.store import ImageStore, sha256_digest


def make_image(store: ImageStore, layer: bytes = b"x" * 10, tag: str = "t") -> media.Descriptor:
    ld = store.put_blob(layer, media.OCI_LAYER)
    cfg = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
           "rootfs": {"type": "layers", "diff_ids": [ld.digest]}, "config": {}}
    cd = store.put_json(cfg, media.OCI_CONFIG)
    m = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": cd.to_json(),
         "layers": [ld.to_json()]}
    md = store.put_json(m, media.OCI_MANIFEST)
    store.set_name(f"localhost/img:{tag}", md)
    return md


def test_blob_with_wrong_digest_is_rejected_and_leaves_nothing(tmp_path):
    store = ImageStore(str(tmp_path))
    wrong = sha256_digest(b"other")
    with pytest.raises(BlobVerificationError, match="does not match"):
        store.put_blob(b"data", digest=wrong)
    assert not store.has_blob(wrong)
    assert os.listdir(store.ingest_dir) == []


def test_blob_longer_than_descriptor_is_rejected_early(tmp_path):
    store = ImageStore(str(tmp_path))
    d = sha256_digest(b"abc")
    with store.writer(d, 3) as w, pytest.raises(BlobVerificationError, match="more than"):
        w.write(b"abcd")
    assert not store.has_blob(d) and os.listdir(store.ingest_dir) == []


def test_interrupted_write_resumes_from_the_partial_file(tmp_path):
    store = ImageStore(str(tmp_path))
    data = os.urandom(3000)
    d = sha256_digest(data)
    with store.writer(d, len(data)) as w:
        w.write(data[:1000])  # then the "connection" drops: no commit
    with store.writer(d, len(data)) as w:
        assert w.offset == 1000
        w.write(data[1000:])
        w.commit()
    assert store.read_blob(d) == data


def test_names_are_ref_name_annotations_in_index_json(tmp_path):
    store = ImageStore(str(tmp_path))
    md = make_image(store)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"][0]["annotations"][media.REF_NAME] == "localhost/img:t"
    assert json.loads((tmp_path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert store.resolve("localhost/img:t")[1].digest == md.digest
    cfg = store.manifest(md)["config"]["digest"]
    assert store.resolve(cfg[7:19])[0] == "localhost/img:t"
    with pytest.raises(ImageNotFound):
        store.resolve("localhost/nope")


def test_identical_blobs_are_stored_once(tmp_path):
    store = ImageStore(str(tmp_path))
    make_image(store, tag="a")
    make_image(store, tag="b")
    assert len(os.listdir(store.blob_dir)) == 3
    assert len(store.images()) == 2


def test_gc_removes_only_unreferenced_blobs(tmp_path):
    store = ImageStore(str(tmp_path))
    make_image(store, b"keep", tag="a")
    gone = make_image(store, b"drop", tag="b")
    layer = sha256_digest(b"drop")
    store.remove_name("localhost/img:b")
    removed, freed = store.gc()
    assert set(removed) >= {gone.digest, layer} and freed > 0
    assert store.resolve("localhost/img:a")
    assert store.read_blob(sha256_digest(b"keep")) == b"keep"


def test_concurrent_writers_of_one_blob_both_succeed(tmp_path):
    store = ImageStore(str(tmp_path))
    data = os.urandom(1 << 20)
    errors = []

    def put():
        try:
            store.put_blob(data)
        except Exception as e:  # noqa: BLE001 - collected for the assert
            errors.append(e)

    ts = [threading.Thread(target=put) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert store.read_blob(sha256_digest(data)) == data
    assert os.listdir(store.ingest_dir) == []


def test_skopeo_reads_the_store(tmp_path):
    store = ImageStore(str(tmp_path))
    md = make_image(store)
    out = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{tmp_path}:localhost/img:t"],
                         check=True, capture_output=True)
    assert sha256_digest(out.stdout) == md.digest


def _follow(store, digest, cancelled, out):
    try:
        with store.follow_blob(digest, cancelled) as f:
            while chunk := f.read(1000):
                out.append(chunk)
    except Exception as e:  # noqa: BLE001 - the test inspects it
        out.append(e)


def test_follower_reads_a_blob_while_it_is_written_and_ends_when_verified(tmp_path):
    store = ImageStore(str(tmp_path))
    data = os.urandom(50_000)
    d = sha256_digest(data)
    cancelled, got = threading.Event(), []
    t = threading.Thread(target=_follow, args=(store, d, cancelled, got))
    t.start()
    with store.writer(d, len(data)) as w:
        for i in range(0, len(data), 7000):
            w.write(data[i:i + 7000])
        w.commit()
    t.join(10)
    assert b"".join(got) == data


def test_follower_of_a_rejected_blob_fails(tmp_path):
    from rongqi.image.store import FollowAborted
    store = ImageStore(str(tmp_path))
    d = sha256_digest(b"the real thing")
    cancelled, got = threading.Event(), []
    t = threading.Thread(target=_follow, args=(store, d, cancelled, got))
    t.start()
    with store.writer(d, 14) as w, pytest.raises(BlobVerificationError):
        w.write(b"something else")
        w.commit()
    t.join(10)
    assert isinstance(got[-1], BlobVerificationError)
    # A download that dies before writing anything releases its followers too.
    d2 = sha256_digest(b"never")
    got2 = []
    t2 = threading.Thread(target=_follow, args=(store, d2, cancelled, got2))
    t2.start()
    store.abandon(d2)
    t2.join(10)
    assert isinstance(got2[-1], FollowAborted)


def test_follower_stops_when_the_download_restarts(tmp_path):
    from rongqi.image.store import FollowAborted
    store = ImageStore(str(tmp_path))
    data = os.urandom(20_000)
    d = sha256_digest(data)
    cancelled, got = threading.Event(), []
    t = threading.Thread(target=_follow, args=(store, d, cancelled, got))
    with store.writer(d, len(data)) as w:
        w.write(data[:5000])
        t.start()
        time_limit = 50
        while not got and time_limit:
            threading.Event().wait(0.02)
            time_limit -= 1
        w.restart()
        w.write(data)
        w.commit()
    t.join(10)
    assert isinstance(got[-1], FollowAborted)
    assert store.read_blob(d) == data
