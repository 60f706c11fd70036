"""`rongqi` image commands end to end on a temp root, with the built-in busybox (no registry)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest

from rongqi.cli.main import main

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="needs busybox-static (apt-get install busybox-static)")


def run(capsys, root, *args):
    code = main(["--root", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_builtin_busybox_is_made_on_first_use_and_listed(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "image", "inspect", "busybox")
    assert code == 0
    info = json.loads(out)[0]
    assert info["RepoTags"] == ["docker.io/library/busybox:latest"]
    assert info["Annotations"] == {"io.rongqi.builtin": "true"}
    code, out, _ = run(capsys, tmp_path, "images")
    assert out.splitlines()[1].split()[:2] == ["busybox", "latest"]


def test_tag_history_and_rmi_with_garbage_collection(capsys, tmp_path):
    run(capsys, tmp_path, "tag", "busybox", "localhost/mine:1", "localhost/mine:2")
    code, out, _ = run(capsys, tmp_path, "images", "-q")
    assert len(out.split()) == 1  # one image, three names
    code, out, _ = run(capsys, tmp_path, "history", "localhost/mine:1")
    assert "busybox-static from the host" in out
    blobs = os.listdir(tmp_path / "blobs" / "sha256")
    run(capsys, tmp_path, "rmi", "localhost/mine:1", "busybox")
    assert os.listdir(tmp_path / "blobs" / "sha256") == blobs  # mine:2 still holds them
    code, out, _ = run(capsys, tmp_path, "rmi", "localhost/mine:2")
    assert code == 0 and "Untagged: localhost/mine:2" in out
    assert os.listdir(tmp_path / "blobs" / "sha256") == []


def test_save_load_import_export_round_trip(capsys, tmp_path):
    root, other = tmp_path / "a", tmp_path / "b"
    archive = tmp_path / "bb.tar"
    assert run(capsys, root, "save", "-o", str(archive), "busybox")[0] == 0
    code, out, _ = run(capsys, other, "load", "-i", str(archive))
    assert "Loaded image: docker.io/library/busybox:latest" in out
    flat = tmp_path / "flat.tar"
    assert run(capsys, other, "export", "busybox", "-o", str(flat))[0] == 0
    with tarfile.open(flat) as tf:
        assert "bin/busybox" in tf.getnames()
    code, out, _ = run(capsys, other, "import", str(flat), "localhost/flat:1", "-c",
                       'CMD ["sh"]')
    assert code == 0 and out.startswith("sha256:")
    code, out, _ = run(capsys, other, "image", "inspect", "-f", "{{json .Config.Cmd}}",
                       "localhost/flat:1")
    assert out.strip() == '["sh"]'


def test_prune_all_removes_images_and_unpacked_layers(capsys, tmp_path):
    # the built-in busybox, made here (a pull would ask Docker Hub first), then unpacked
    run(capsys, tmp_path, "image", "inspect", "busybox")
    from rongqi.image.store import ImageStore
    from rongqi.storage.overlay import LayerStorage
    store = ImageStore(str(tmp_path))
    _, desc = store.resolve("busybox")
    LayerStorage(str(tmp_path / "overlay")).unpack_image(store, desc.digest)
    assert len(os.listdir(tmp_path / "overlay" / "layers")) == 1
    code, out, _ = run(capsys, tmp_path, "system", "df")
    assert out.splitlines()[1].split()[:2] == ["Images", "1"]
    image_id = store.manifest(desc)["config"]["digest"].partition(":")[2]
    code, out, _ = run(capsys, tmp_path, "image", "prune", "-a", "-f")
    assert code == 0 and out == image_id + "\n"          # podman's: the removed IDs
    assert os.listdir(tmp_path / "overlay" / "layers") == []
    assert os.listdir(tmp_path / "blobs" / "sha256") == []


@pytest.mark.parametrize("args,message", [
    (["image", "inspect", "nothing-here"], "nothing-here: image not known"),
    (["tag", "busybox", "Not/Valid"], "repository name must be lowercase"),
    (["pull", "--platform", "linux", "busybox"], "--platform: expected os/arch"),
    (["load", "-i", "/nonexistent.tar"], "not a readable image archive"),
    (["frobnicate"], "invalid choice"),
])
def test_errors_are_one_line_and_exit_125(capsys, tmp_path, args, message):
    code, out, err = run(capsys, tmp_path, *args)
    assert code == 125
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: ") and message in last
    assert "Traceback" not in err


def test_rmi_of_a_missing_image_is_podmans_line_and_exit_1(capsys, tmp_path):
    code, out, err = run(capsys, tmp_path, "rmi", "nothing-here")
    assert (code, err) == (1, "Error: nothing-here: image not known\n")


def test_console_script_runs(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "rongqi")
    p = subprocess.run([exe, "--root", str(tmp_path), "images"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.split()[:2] == ["REPOSITORY", "TAG"]


def test_login_writes_0600_and_logout_removes(capsys, tmp_path, monkeypatch):
    import httpx

    def handler(request):
        ok = request.headers.get("authorization") == "Basic dTpw"
        return httpx.Response(200 if ok else 401,
                              headers={} if ok else {"WWW-Authenticate": 'Basic realm="r"'})
    real = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(
        transport=httpx.MockTransport(handler), **{k: v for k, v in kw.items()
                                                   if k != "transport"}))
    auth = tmp_path / "auth.json"
    code, out, err = run(capsys, tmp_path, "login", "-u", "u", "-p", "bad", "--authfile",
                         str(auth), "reg.test")
    assert code == 125 and "wrong username or password" in err and not auth.exists()
    code, out, _ = run(capsys, tmp_path, "login", "-u", "u", "-p", "p", "--authfile", str(auth),
                       "reg.test")
    assert code == 0 and oct(os.stat(auth).st_mode & 0o777) == "0o600"
    assert "reg.test" in json.loads(auth.read_text())["auths"]
    code, out, _ = run(capsys, tmp_path, "logout", "--authfile", str(auth), "reg.test")
    assert code == 0 and json.loads(auth.read_text())["auths"] == {}


def test_rmi_by_id_needs_force_when_several_names_point_at_it(capsys, tmp_path):
    run(capsys, tmp_path, "tag", "busybox", "localhost/other:1")
    code, out, _ = run(capsys, tmp_path, "images", "-q")
    image_id = out.strip()
    code, _, err = run(capsys, tmp_path, "rmi", image_id)
    assert code == 125 and "referenced by several names" in err
    code, out, _ = run(capsys, tmp_path, "rmi", "-f", image_id)
    assert code == 0 and out.count("Untagged:") == 2
    assert run(capsys, tmp_path, "images", "-q")[1] == ""
