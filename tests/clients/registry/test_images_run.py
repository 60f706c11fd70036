"""Images made by umoci and by skopeo, and images that went pull -> save -> load, run as
containers: rongqi's store -> snapshot -> bundle (image config applied) -> `rongqi-oci run`."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SKOPEO
from support.oci_cli import oci
from test_registry_roundtrips import rongqi

from rongqi.image.archive import add_layer_file, create_image, layer_from_dir
from rongqi.image.busybox import make_spec
from rongqi.image.store import ImageStore
from rongqi.storage.overlay import LayerStorage

pytestmark = [pytest.mark.clients, pytest.mark.root,
              pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="runs containers as root")]


def _lookup(rootfs: str, file: str, name: str) -> int:
    if name.isdigit():
        return int(name)
    with open(os.path.join(rootfs, "etc", file)) as f:
        for line in f:
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2])
    raise LookupError(f"{name} is not in the image's /etc/{file}")


def bundle_for(store: ImageStore, name: str, rootfs: str, bundle: Path, cid: str) -> dict:
    """config.json for the image `name` over `rootfs`, as an engine would write it: the image's
    Entrypoint + Cmd, Env, WorkingDir and User applied to make_spec's runc-shaped default."""
    _, desc = store.resolve(name)
    cfg = store.config(desc).get("config") or {}
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    user, _, group = (cfg.get("User") or "0").partition(":")
    uid = _lookup(rootfs, "passwd", user)
    gid = _lookup(rootfs, "group", group) if group else 0
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    spec = make_spec(args, env=env, cwd=cfg.get("WorkingDir") or "/", uid=uid, gid=gid,
                     readonly=False, rootfs=rootfs, cgroups_path=f"/rongqi-test/{cid}")
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    return spec


def run_image(root: Path, name: str, oci_binary: str, runtime_root: str, cid: str,
              tmp_path: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Snapshot, bundle, `rongqi-oci run`; the snapshot is removed before returning (its
    upper dir's content is returned as 'path=content' lines)."""
    store = ImageStore(str(root))
    storage = LayerStorage(str(root / "overlay"))
    _, desc = store.resolve(name)
    snap = storage.create_snapshot(cid, storage.unpack_image(store, desc.digest))
    try:
        assert snap.mode == "overlay"
        bundle_for(store, name, snap.rootfs, tmp_path / f"bundle-{cid}", cid)
        r = oci(oci_binary, runtime_root, "run", "-b", str(tmp_path / f"bundle-{cid}"), cid,
                timeout=60)
        oci(oci_binary, runtime_root, "delete", "--force", cid)
        upper = []
        for dirpath, _, files in os.walk(snap.upper):
            for f in files:
                p = os.path.join(dirpath, f)
                upper.append(f"{os.path.relpath(p, snap.upper)}={Path(p).read_text().strip()}")
        return r, "\n".join(sorted(upper))
    finally:
        storage.remove_snapshot(cid)
        assert not os.path.exists(snap.path)


def test_image_made_by_umoci_runs_with_its_config(registry, rootfs, tmp_path, oci_binary,
                                                   runtime_root, unique_id):
    umoci = shutil.which("umoci")
    if not umoci:
        pytest.skip("umoci is not installed (apt-get install umoci)")
    lay, bundle = tmp_path / "umoci-layout", tmp_path / "umoci-bundle"

    def run(*a: str) -> None:
        subprocess.run([umoci, *a], check=True, capture_output=True)

    run("init", "--layout", str(lay))
    run("new", "--image", f"{lay}:u")
    run("unpack", "--image", f"{lay}:u", str(bundle))
    shutil.copytree(rootfs, bundle / "rootfs", dirs_exist_ok=True, symlinks=True)
    (bundle / "rootfs" / "made-by").write_text("umoci\n")
    (bundle / "rootfs" / "work").mkdir(mode=0o777)
    os.chmod(bundle / "rootfs" / "work", 0o777)
    run("repack", "--image", f"{lay}:u", str(bundle))
    run("config", "--image", f"{lay}:u", "--config.entrypoint", "/bin/sh",
        "--config.entrypoint", "-c",
        "--config.cmd", 'echo "$GREETING from $(pwd) as $(id -u):$(id -g)"; cat /made-by; '
                        'echo mine > note; exit 7',
        "--config.env", "GREETING=hello", "--config.workingdir", "/work",
        "--config.user", "1234:5678")
    shutil.rmtree(bundle)
    registry.skopeo_push(str(lay), "u", "umoci/run:1")
    root = tmp_path / "rq"
    name = f"{registry.host}/umoci/run:1"
    rongqi(root, "pull", "-q", name)

    r, upper = run_image(root, name, oci_binary, runtime_root, unique_id, tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (7, "hello from /work as 1234:5678\numoci\n", "")
    assert upper == "work/note=mine"  # the container's write went to its snapshot's upper dir


def _config_image(layout_path: Path, rootfs: Path, name: str, config: dict) -> None:
    store = ImageStore(str(layout_path))
    buf = io.BytesIO()
    layer_from_dir(str(rootfs), buf)
    buf.seek(0)
    create_image(store, [add_layer_file(store, buf)], name, config=config)


def test_image_made_by_skopeo_runs_with_its_config(registry, rootfs, tmp_path, oci_binary,
                                                    runtime_root, unique_id):
    # skopeo writes this image: it converts the OCI layout's image to Docker schema2 (its own
    # manifest and config) on the way to the registry.
    _config_image(tmp_path / "layout", rootfs, "s", {
        "Env": ["PATH=/bin", "WHO=skopeo"], "Entrypoint": ["sh", "-c"],
        "Cmd": ['echo "made by $WHO in $(pwd)"; echo x > /tmp/written; exit 3'],
        "WorkingDir": "/tmp"})
    subprocess.run([SKOPEO, "copy", "-q", "--dest-tls-verify=false", "--format", "v2s2",
                    f"oci:{tmp_path / 'layout'}:s", f"docker://{registry.host}/skopeo/run:1"],
                   check=True, capture_output=True, timeout=120)
    raw = subprocess.run([SKOPEO, "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/skopeo/run:1"], check=True,
                         capture_output=True).stdout
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    root = tmp_path / "rq"
    name = f"{registry.host}/skopeo/run:1"
    rongqi(root, "pull", "-q", name)

    r, upper = run_image(root, name, oci_binary, runtime_root, unique_id, tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (3, "made by skopeo in /tmp\n", "")
    assert upper == "tmp/written=x"


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_pulled_saved_and_loaded_image_runs(registry, rootfs, tmp_path, oci_binary,
                                            runtime_root, unique_id, fmt):
    _config_image(tmp_path / "layout", rootfs, "r", {
        "Env": ["STAGE=loaded"], "Cmd": ["sh", "-c", "echo $STAGE; ls /bin/busybox; exit 0"]})
    registry.skopeo_push(str(tmp_path / "layout"), "r", "trip/run:1")
    name = f"{registry.host}/trip/run:1"
    a, b = tmp_path / "a", tmp_path / "b"
    rongqi(a, "pull", "-q", name)
    archive = tmp_path / "trip.tar"
    rongqi(a, "save", "--format", fmt, "-o", str(archive), name)
    rongqi(b, "load", "-q", "-i", str(archive))

    r, upper = run_image(b, name, oci_binary, runtime_root, unique_id, tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "loaded\n/bin/busybox\n", "")
    assert upper == ""
