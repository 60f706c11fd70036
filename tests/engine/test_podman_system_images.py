"""Image commands as podman's system tests (test/system/010-images, 020-tag, 001-basic) use
them: images -a/REFERENCE/--filter/--sort/json, tag/untag, image exists, rmi --ignore, and the
global --log-level/--noout/--storage-driver/--context flags. In-process, over the built-in
busybox: no container is started."""

from __future__ import annotations

import json
import os

import pytest

from rongqi.cli.main import main

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="needs busybox-static (apt-get install busybox-static)")


def run(capsys, root, *args):
    code = main(["--root", str(root), "--runroot", str(root / "run"), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def root(tmp_path, capsys):
    assert run(capsys, tmp_path, "tag", "busybox", "quay.io/libpod/testimage:1")[0] == 0
    return tmp_path


def test_images_all_and_a_reference_argument(capsys, root):
    """010-images "podman images - basic output": setup lists `images --all --format ...`;
    "history output" lists `images my-test-image` (a short name finds localhost/NAME)."""
    code, out, err = run(capsys, root, "images", "--all", "--format", "{{.Repository}}:{{.Tag}}")
    assert (code, err) == (0, "")
    assert "quay.io/libpod/testimage:1" in out.splitlines()
    run(capsys, root, "tag", "busybox", "my-test-image")
    code, out, _ = run(capsys, root, "images", "my-test-image", "--format", "{{.Repository}}")
    assert (code, out) == (0, "localhost/my-test-image\n")
    code, out, _ = run(capsys, root, "images", "--noheading", "nothing-like-it")
    assert (code, out) == (0, "")


def test_images_filters_and_sort(capsys, root):
    """010-images "podman images - filter" (before/after/since) and "table format" (--sort
    repository); an image's names keep the order they were given (podman lists the first
    name first among equals)."""
    code, out, _ = run(capsys, root, "images", "--noheading", "--filter", "after=busybox")
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, root, "images", "--noheading", "--filter", "before=busybox")
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, root, "images", "--format", "{{.Repository}}")
    assert out.splitlines() == ["busybox", "quay.io/libpod/testimage"]
    run(capsys, root, "tag", "busybox", "a.b/c:d")
    code, out, _ = run(capsys, root, "images", "--sort", "repository", "--format",
                       "{{.Repository}}")
    assert out.splitlines() == ["a.b/c", "busybox", "quay.io/libpod/testimage"]
    code, out, err = run(capsys, root, "images", "--filter", "bogus=1")
    assert (code, err) == (125, 'Error: invalid image filter "bogus"\n')


def test_images_json_has_podmans_fields(capsys, root):
    """010-images "podman images - json": Names[0], Id, Digest, CreatedAt, Size, Labels; one
    entry per image with all its names."""
    code, out, _ = run(capsys, root, "images", "--format", "json")
    [entry] = json.loads(out)
    assert set(entry["Names"]) == {"docker.io/library/busybox:latest",
                                   "quay.io/libpod/testimage:1"}
    assert len(entry["Id"]) == 64 and entry["Digest"].startswith("sha256:")
    assert entry["CreatedAt"].endswith("Z") and isinstance(entry["Created"], int)
    assert isinstance(entry["Size"], int) and "Labels" in entry


def test_tag_names_a_short_name_localhost_and_untag(capsys, root):
    """020-tag "podman tag/untag" and "podman untag all"."""
    assert run(capsys, root, "tag", "busybox", "image")[0] == 0
    assert run(capsys, root, "image", "exists", "localhost/image:latest")[0] == 0
    assert run(capsys, root, "untag", "busybox", "localhost/image:latest")[0] == 0
    assert run(capsys, root, "image", "exists", "localhost/image:latest")[0] == 1
    code, _, err = run(capsys, root, "untag", "busybox", "registry.com/foo:bar")
    assert (code, err) == (125, "Error: registry.com/foo:bar: tag not known\n")
    code, iid, _ = run(capsys, root, "image", "inspect", "--format", "{{.ID}}", "busybox")
    assert run(capsys, root, "untag", iid.strip())[0] == 0
    code, out, _ = run(capsys, root, "image", "inspect", iid.strip(), "--format", "{{.RepoTags}}")
    assert (code, out) == (0, "[]\n")  # the image stays, unnamed


def test_rmi_ignore(capsys, root):
    """010-images "podman rmi --ignore"."""
    code, out, err = run(capsys, root, "rmi", "nosuchimage")
    assert (code, err) == (1, "Error: nosuchimage: image not known\n")
    code, out, err = run(capsys, root, "rmi", "--ignore", "nosuchimage")
    assert (code, out, err) == (0, "", "")


def test_global_log_level_noout_storage_driver_context(capsys, tmp_path):
    """001-basic "podman --log-level recognizes log levels" and "--context"; 050-stop
    "--noout"; 010-images passes --storage-driver=vfs with an empty --root."""
    code, out, err = run(capsys, tmp_path, "--log-level=telepathic", "info")
    assert code == 1 and err.startswith('Log Level "telepathic" is not supported')
    for level in ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"):
        assert run(capsys, tmp_path, f"--log-level={level}", "volume", "ls")[0] == 0
    code, out, err = run(capsys, tmp_path, "--context=swarm", "version")
    assert code == 125 and 'the only --context value allowed is "default"' in err
    assert run(capsys, tmp_path, "--context=default", "volume", "ls")[0] == 0
    code, out, _ = run(capsys, tmp_path, "--storage-driver=vfs", "--root",
                       str(tmp_path / "empty"), "images")
    assert code == 0 and out.startswith("REPOSITORY")
    code, out, _ = run(capsys, tmp_path, "--noout", "volume", "create", "v1")
    assert (code, out) == (0, "")


def test_an_image_saved_by_id_loads_unnamed_and_lists_as_none(capsys, root, tmp_path):
    """120-load "podman load - by image ID" (the archive has no name; `images -a` shows
    <none>:<none>, rmi prints Deleted:), "load invalid file" (podman's words), 125-import
    "podman import" (-q; an unnamed import is kept, not collected)."""
    code, iid, _ = run(capsys, root, "image", "inspect", "--format", "{{.ID}}", "busybox")
    iid = iid.strip()
    archive = tmp_path / "byid.tar"
    assert run(capsys, root, "save", iid[:12], "-o", str(archive))[0] == 0
    code, out, _ = run(capsys, root, "rmi", "-f", iid[:12])
    assert code == 0 and out.splitlines()[-1] == f"Deleted: {iid}"
    code, out, _ = run(capsys, root, "load", "-i", str(archive))
    assert (code, out) == (0, f"Loaded image: sha256:{iid}\n")
    code, out, _ = run(capsys, root, "images", "-a", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
    assert out == f"{iid[:12]} <none>:<none>\n"
    code, out, _ = run(capsys, root, "images", "--filter", "dangling=true", "-q")
    assert out == iid[:12] + "\n"
    assert run(capsys, root, "rmi", iid[:12])[1].strip() == f"Deleted: {iid}"
    code, out, _ = run(capsys, root, "images", "-a", "--noheading")
    assert (code, out) == (0, "")
    bad = tmp_path / "invalid"
    bad.write_text("I am an invalid file and should cause a podman-load error\n")
    code, _, err = run(capsys, root, "load", "-i", str(bad))
    assert code == 125
    assert err.startswith("Error: payload does not match any of the supported image formats:")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "f").write_text("x")
    import tarfile
    with tarfile.open(tmp_path / "fs.tar", "w") as tf:
        tf.add(tmp_path / "root", arcname=".")
    code, out, _ = run(capsys, root, "import", "-q", str(tmp_path / "fs.tar"))
    assert code == 0 and out.startswith("sha256:")
    code, listed, _ = run(capsys, root, "images", "-q", "--no-trunc")
    assert out.strip() in listed.split()
