"""rongqi against a real registry on loopback: pull, platforms, auth, bad blobs, resume,
concurrency, push, archives, skopeo and umoci interop, malicious layers."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from conftest import SKOPEO, tar_bytes
from rongqi.image.auth import CredentialStore
from rongqi.image.errors import AuthError, BlobVerificationError
from rongqi.image.reference import parse
from rongqi.image.registry import RegistryClient
from rongqi.image.store import ImageStore
from rongqi.storage.overlay import LayerStorage

pytestmark = [pytest.mark.clients,
              pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")]

RONGQI = [sys.executable, "-m", "rongqi.cli.main"]


def rongqi(root: Path, *args: str, env: dict | None = None, check: bool = True,
           timeout: int = 120) -> subprocess.CompletedProcess:
    p = subprocess.run([*RONGQI, "--root", str(root), *args], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"rongqi {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def client(tmp_path: Path, **kw) -> RegistryClient:
    return RegistryClient(credentials=CredentialStore([str(tmp_path / "auth.json")]), **kw)


def skopeo_digest(ref: str, *extra: str) -> str:
    out = subprocess.run([SKOPEO, "inspect", "--raw", *extra, ref], check=True,
                         capture_output=True).stdout
    import hashlib
    return "sha256:" + hashlib.sha256(out).hexdigest()


@pytest.fixture
def pushed(registry, layout, rootfs):
    """busybox built here, pushed by skopeo as <registry>/library/busybox:1."""
    desc = layout.image_from_dir(rootfs, "bb")
    registry.skopeo_push(str(layout.path), "bb", "library/busybox:1")
    return registry, desc


def snapshot_of(root: Path, name: str, snap_id: str) -> tuple[LayerStorage, str]:
    store = ImageStore(str(root))
    storage = LayerStorage(str(root / "overlay"))
    _, desc = store.resolve(name)
    chains = storage.unpack_image(store, desc.digest)
    return storage, storage.create_snapshot(snap_id, chains).rootfs


def test_pull_stores_unpacks_and_the_rootfs_mounts(pushed, tmp_path):
    reg, desc = pushed
    root = tmp_path / "rq"
    name = f"{reg.host}/library/busybox:1"
    p = rongqi(root, "pull", name)
    assert "Digest: " + desc.digest in p.stdout
    images = rongqi(root, "images").stdout
    assert f"{reg.host}/library/busybox" in images and " 1 " in images
    # The store is an OCI layout skopeo reads, with the registry's manifest byte for byte.
    assert skopeo_digest(f"oci:{root}:{name}") == skopeo_digest(
        f"docker://{name}", "--tls-verify=false")
    storage, rootfs = snapshot_of(root, name, "pull-test")
    try:
        assert os.path.isfile(f"{rootfs}/bin/busybox")
        out = subprocess.run([f"{rootfs}/bin/busybox", "echo", "ok"], capture_output=True,
                             text=True).stdout
        assert out == "ok\n"
    finally:
        storage.remove_snapshot("pull-test")


@pytest.mark.parametrize("how,extra", [
    ("docker-schema2", ("--format", "v2s2")),
    ("zstd-layers", ("--dest-compress", "--dest-compress-format", "zstd")),
    ("plain-layers", None),
])
def test_docker_schema2_and_zstd_and_plain_layers_pull_and_mount(registry, layout, rootfs,
                                                                tmp_path, how, extra):
    if extra is None:
        # skopeo compresses plain layers on the way to a registry; rongqi's push does not.
        layers = [tar_bytes([("bin", None), ("bin/busybox", (rootfs / "bin/busybox")
                                                .read_bytes())]),
                  tar_bytes([("how", how.encode())])]
        desc = layout.image_from_layers(layers, "bb")
        client(tmp_path).push(layout.store, desc, parse(f"{registry.host}/{how}:1"))
    else:
        layout.image_from_dir(rootfs, "bb", [tar_bytes([("how", how.encode())])])
        registry.skopeo_push(str(layout.path), "bb", f"{how}:1", extra=extra)
    manifest = json.loads(subprocess.run([SKOPEO, "inspect", "--raw", "--tls-verify=false",
                                          f"docker://{registry.host}/{how}:1"], check=True,
                                         capture_output=True).stdout)
    types = {layer["mediaType"] for layer in manifest["layers"]}
    expected = {"docker-schema2": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "zstd-layers": "application/vnd.oci.image.layer.v1.tar+zstd",
                "plain-layers": "application/vnd.oci.image.layer.v1.tar"}[how]
    assert types == {expected}  # the registry really holds that kind of image
    root = tmp_path / "rq"
    rongqi(root, "pull", f"{registry.host}/{how}:1")
    storage, mounted = snapshot_of(root, f"{registry.host}/{how}:1", how)
    try:
        assert Path(mounted, "how").read_text() == how
        assert os.path.isfile(f"{mounted}/bin/busybox")
    finally:
        storage.remove_snapshot(how)


def test_multi_arch_index_gives_each_platform_its_image(registry, layout, rootfs, tmp_path):
    amd = layout.image_from_dir(rootfs, "amd", [tar_bytes([("arch", b"amd64\n")])],
                                arch="amd64")
    arm = layout.image_from_dir(rootfs, "arm", [tar_bytes([("arch", b"arm64\n")])],
                                arch="arm64")
    layout.index("multi", [(amd, "amd64"), (arm, "arm64")])
    registry.skopeo_push(str(layout.path), "multi", "multi:1", all_=True)
    name = f"{registry.host}/multi:1"
    # skopeo compresses the plain extra layers on push, so take the digests the registry has.
    index = json.loads(subprocess.run([SKOPEO, "inspect", "--raw", "--tls-verify=false",
                                       f"docker://{name}"], check=True,
                                      capture_output=True).stdout)
    remote = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    root = tmp_path / "rq"
    for arch in ("arm64", "amd64"):
        rongqi(root, "pull", "--platform", f"linux/{arch}", name)
        info = json.loads(rongqi(root, "image", "inspect", name).stdout)[0]
        assert info["Architecture"] == arch and info["Digest"] == remote[arch]
        storage, mounted = snapshot_of(root, name, f"multi-{arch}")
        try:
            assert Path(mounted, "arch").read_text() == f"{arch}\n"
        finally:
            storage.remove_snapshot(f"multi-{arch}")
    p = rongqi(root, "pull", "--platform", "linux/s390x", name, check=False)
    assert p.returncode == 125
    assert p.stderr.strip().splitlines() == [
        "Error: no image for platform linux/s390x (the index has: linux/amd64, "
        "linux/arm64)"]


def test_basic_auth_registry_needs_login_and_logout_forgets(basic_registry, layout, rootfs,
                                                             tmp_path):
    reg = basic_registry
    layout.image_from_dir(rootfs, "bb")
    reg.skopeo_push(str(layout.path), "bb", "private/bb:1")
    root, env = tmp_path / "rq", {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    name = f"{reg.host}/private/bb:1"
    p = rongqi(root, "pull", name, env=env, check=False)
    assert p.returncode == 125 and "needs a login" in p.stderr and len(p.stderr.splitlines()) == 1
    p = rongqi(root, "login", "-u", "alice", "-p", "wrong", reg.host, env=env, check=False)
    assert p.returncode == 125 and "wrong username or password" in p.stderr
    rongqi(root, "login", "-u", "alice", "-p", "s3cret", reg.host, env=env)
    assert oct(os.stat(tmp_path / "auth.json").st_mode & 0o777) == "0o600"
    rongqi(root, "pull", name, env=env)
    rongqi(root, "logout", reg.host, env=env)
    assert reg.host not in (tmp_path / "auth.json").read_text()


def test_token_auth_registry_pull_and_push(token_registry, layout, rootfs, tmp_path):
    reg = token_registry
    layout.image_from_dir(rootfs, "bb")
    reg.skopeo_push(str(layout.path), "bb", "team/bb:1")
    store = ImageStore(str(tmp_path / "rq"))
    anon = client(tmp_path)
    with pytest.raises(Exception, match="manifest unknown|UNAUTHORIZED|HTTP 401|denied"):
        anon.pull(parse(f"{reg.host}/team/bb:1"), store)
    c = client(tmp_path)
    c.explicit_creds[reg.host] = ("bob", "hunter2")
    issued = reg.extra["token_server"].issued
    n0 = len(issued)
    desc = c.pull(parse(f"{reg.host}/team/bb:1"), store)
    # One token per scope, reused for the manifest and every blob.
    assert issued[n0:] == ["repository:team/bb:pull"]
    c.push(store, desc, parse(f"{reg.host}/team/copy:2"), mount_from=["team/bb"])
    pushed_scopes = set(issued[n0 + 1:])
    assert "repository:team/copy:pull,push" in pushed_scopes
    assert "repository:team/bb:pull repository:team/copy:pull,push" in pushed_scopes
    assert len(issued) - n0 == 3  # pull; push; push with a mount from team/bb
    assert skopeo_digest(f"docker://{reg.host}/team/copy:2", "--tls-verify=false",
                         "--creds", "bob:hunter2") == desc.digest
    with pytest.raises(AuthError, match="refused the credentials"):
        bad = client(tmp_path)
        bad.explicit_creds[reg.host] = ("bob", "nope")
        bad.pull(parse(f"{reg.host}/team/bb:1"), ImageStore(str(tmp_path / "rq2")))


def test_corrupted_blob_in_the_registry_is_rejected_and_nothing_kept(pushed, tmp_path):
    reg, desc = pushed
    layout_store = ImageStore(str(tmp_path / "layout"))
    layer = layout_store.manifest(desc)["layers"][0]["digest"]
    data = reg.blob_data_path(layer)
    size = data.stat().st_size
    data.write_bytes(b"\0" * size)
    store = ImageStore(str(tmp_path / "rq"))
    with pytest.raises(BlobVerificationError, match=f"blob {layer}: content does not match"):
        client(tmp_path).pull(parse(f"{reg.host}/library/busybox:1"), store)
    assert not store.has_blob(layer)
    assert os.listdir(store.ingest_dir) == []
    assert store.names() == []


class CuttingProxy:
    """Forwards to the registry; the first GET of one blob is cut off after `cut` bytes."""

    def __init__(self, upstream: str, digest: str, cut: int):
        self.ranges: list[str | None] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                conn = http.client.HTTPConnection(upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                is_target = self.command == "GET" and self.path.endswith(digest)
                if is_target:
                    proxy.ranges.append(self.headers.get("Range"))
                cut_now = is_target and len(proxy.ranges) == 1
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.end_headers()
                data = r.read()
                if cut_now:
                    self.wfile.write(data[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_cli_pull_of_a_corrupted_blob_leaves_no_layer_and_no_name(pushed, tmp_path):
    reg, desc = pushed
    layer = ImageStore(str(tmp_path / "layout")).manifest(desc)["layers"][0]
    data = reg.blob_data_path(layer["digest"])
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in the middle of the gzip stream
    data.write_bytes(bytes(raw))
    root = tmp_path / "rq"
    p = rongqi(root, "pull", f"{reg.host}/library/busybox:1", check=False)
    assert p.returncode == 125 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith(f"Error: blob {layer['digest']}: ")
    store = ImageStore(str(root))
    assert store.names() == [] and not store.has_blob(layer["digest"])
    assert os.listdir(root / "overlay" / "layers") == []
    assert os.listdir(root / "overlay" / "tmp") == []


def test_cli_pull_resumes_and_unpacks_while_downloading(pushed, tmp_path):
    reg, desc = pushed
    layer = ImageStore(str(tmp_path / "layout")).manifest(desc)["layers"][0]
    proxy = CuttingProxy(reg.host, layer["digest"], cut=layer["size"] // 2)
    try:
        root = tmp_path / "rq"
        rongqi(root, "pull", f"{proxy.host}/library/busybox:1")
    finally:
        proxy.close()
    assert proxy.ranges[1] is not None
    storage, rootfs = snapshot_of(root, f"{proxy.host}/library/busybox:1", "resumed")
    try:
        assert os.path.isfile(f"{rootfs}/bin/busybox")
    finally:
        storage.remove_snapshot("resumed")


def test_interrupted_download_resumes_with_a_range_request(pushed, tmp_path):
    reg, desc = pushed
    layer = ImageStore(str(tmp_path / "layout")).manifest(desc)["layers"][0]
    proxy = CuttingProxy(reg.host, layer["digest"], cut=layer["size"] // 3)
    try:
        store = ImageStore(str(tmp_path / "rq"))
        got = client(tmp_path, backoff=0.01).pull(parse(f"{proxy.host}/library/busybox:1"),
                                                  store)
    finally:
        proxy.close()
    assert got.digest == desc.digest
    assert proxy.ranges[0] is None
    assert proxy.ranges[1] is not None and proxy.ranges[1].startswith("bytes=")
    assert int(proxy.ranges[1][6:].rstrip("-")) > 0
    assert store.blob_size(layer["digest"]) == layer["size"]


def test_two_concurrent_pulls_of_one_image_both_succeed(pushed, tmp_path):
    reg, desc = pushed
    root = tmp_path / "rq"
    rongqi(root, "images")  # create the store first, as a running system would have it
    name = f"{reg.host}/library/busybox:1"
    procs = [subprocess.Popen([*RONGQI, "--root", str(root), "pull", "-q", name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    store = ImageStore(str(root))
    assert [n for n, _ in store.names()] == [name]
    assert len(os.listdir(store.blob_dir)) == 3  # manifest, config, one layer
    assert os.listdir(store.ingest_dir) == []
    assert len(os.listdir(root / "overlay" / "layers")) == 1
    assert os.listdir(root / "overlay" / "tmp") == []


def test_push_then_pull_back_gives_the_same_image(pushed, tmp_path):
    reg, desc = pushed
    a, b = tmp_path / "a", tmp_path / "b"
    rongqi(a, "pull", f"{reg.host}/library/busybox:1")
    rongqi(a, "tag", f"{reg.host}/library/busybox:1", f"{reg.host}/mine/bb:v2")
    p = rongqi(a, "push", f"{reg.host}/mine/bb:v2")
    assert "mounted from library/busybox" in p.stdout or "already exists" in p.stdout
    rongqi(b, "pull", f"{reg.host}/mine/bb:v2")
    ia = json.loads(rongqi(a, "image", "inspect", f"{reg.host}/library/busybox:1").stdout)[0]
    ib = json.loads(rongqi(b, "image", "inspect", f"{reg.host}/mine/bb:v2").stdout)[0]
    assert ia["Digest"] == ib["Digest"] == desc.digest
    assert ia["Id"] == ib["Id"]


def test_blob_already_in_another_repo_is_mounted_not_uploaded(pushed, tmp_path):
    reg, desc = pushed
    store = ImageStore(str(tmp_path / "rq"))
    c = client(tmp_path)
    c.pull(parse(f"{reg.host}/library/busybox:1"), store)
    layer = next(store.iter_layers(desc))
    dest = parse(f"{reg.host}/other/bb:1")
    assert c.push_blob(dest, layer, store, mount_from=["library/busybox"]) == "mounted"
    assert c.push_blob(dest, layer, store) == "exists"


def test_skopeo_copies_out_of_rongqis_store(pushed, tmp_path):
    reg, desc = pushed
    root = tmp_path / "rq"
    rongqi(root, "pull", f"{reg.host}/library/busybox:1")
    rongqi(root, "tag", f"{reg.host}/library/busybox:1", "localhost/copy:1")
    subprocess.run([SKOPEO, "copy", "-q", "--dest-tls-verify=false",
                    f"oci:{root}:localhost/copy:1", f"docker://{reg.host}/fromrongqi:1"],
                   check=True, capture_output=True)
    assert skopeo_digest(f"docker://{reg.host}/fromrongqi:1", "--tls-verify=false") == \
        desc.digest


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_pull_save_load_round_trip_and_skopeo_reads_the_archive(pushed, tmp_path, fmt):
    reg, desc = pushed
    a, b = tmp_path / "a", tmp_path / "b"
    name = f"{reg.host}/library/busybox:1"
    rongqi(a, "pull", name)
    archive = tmp_path / f"img-{fmt}.tar"
    rongqi(a, "save", "--format", fmt, "-o", str(archive), name)
    p = rongqi(b, "load", "-i", str(archive))
    assert f"Loaded image: {name}" in p.stdout
    ia = json.loads(rongqi(a, "image", "inspect", name).stdout)[0]
    ib = json.loads(rongqi(b, "image", "inspect", name).stdout)[0]
    assert ia["Id"] == ib["Id"] and ia["RootFS"] == ib["RootFS"]
    src = f"docker-archive:{archive}" if fmt == "docker-archive" else \
        f"oci-archive:{archive}:{name}"
    subprocess.run([SKOPEO, "copy", "-q", "--dest-tls-verify=false", src,
                    f"docker://{reg.host}/viaarchive:1"], check=True, capture_output=True)
    cfg = subprocess.run([SKOPEO, "inspect", "--config", "--tls-verify=false",
                          f"docker://{reg.host}/viaarchive:1"], check=True,
                         capture_output=True).stdout
    assert json.loads(cfg)["rootfs"]["diff_ids"] == ia["RootFS"]["Layers"]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_archives_written_by_skopeo_load_into_rongqi(pushed, tmp_path, fmt):
    reg, desc = pushed
    archive = tmp_path / "sk.tar"
    dest = f"{fmt}:{archive}:localhost/fromskopeo:1"
    subprocess.run([SKOPEO, "copy", "-q", "--src-tls-verify=false",
                    f"docker://{reg.host}/library/busybox:1", dest], check=True,
                   capture_output=True)
    root = tmp_path / "rq"
    p = rongqi(root, "load", "-i", str(archive))
    assert "localhost/fromskopeo:1" in p.stdout
    storage, rootfs = snapshot_of(root, "localhost/fromskopeo:1", "skopeo-archive")
    try:
        assert os.path.isfile(f"{rootfs}/bin/busybox")
    finally:
        storage.remove_snapshot("skopeo-archive")


@pytest.mark.parametrize("evil,why", [
    ([("../../escaped", b"x")], "escapes"),
    ([("lnk", None, tarfile.SYMTYPE, "../../.."), ("lnk/escaped", b"x")], "leads out"),
    ([("hl", None, tarfile.LNKTYPE, "../../../../etc/passwd")], "escapes"),
])
def test_malicious_layers_are_rejected_with_nothing_written_outside(registry, layout, rootfs,
                                                                    tmp_path, evil, why):
    # Honest layers on both sides: the evil one fails while the others are being unpacked.
    layout.image_from_layers([tar_bytes([("ok", b"fine")]), tar_bytes(evil),
                              tar_bytes([("ok2", b"fine" * 100000)])], "evil")
    registry.skopeo_push(str(layout.path), "evil", "evil:1")
    root = tmp_path / "rq"
    rongqi(root, "images")
    before = sorted(os.listdir(tmp_path))
    p = rongqi(root, "pull", f"{registry.host}/evil:1", check=False)
    assert p.returncode == 125
    assert why in p.stderr and "nothing was written outside the layer root" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before
    assert not (root / "overlay" / "escaped").exists() and not (root / "escaped").exists()
    assert os.listdir(root / "overlay" / "tmp") == []
    from rongqi.storage.overlay import chain_ids
    diff_ids = layout.store.config(layout.store.resolve("evil")[1])["rootfs"]["diff_ids"]
    evil_chain = chain_ids(diff_ids)[1].partition(":")[2]
    assert evil_chain not in os.listdir(root / "overlay" / "layers")  # honest ones may be
    assert ImageStore(str(root)).names() == []  # an image that cannot be unpacked gets no name


def test_image_made_by_umoci_is_pulled_and_its_rootfs_mounts(registry, rootfs, tmp_path):
    umoci = shutil.which("umoci")
    if not umoci:
        pytest.skip("umoci is not installed (apt-get install umoci)")
    lay = tmp_path / "umoci-layout"
    run = lambda *a: subprocess.run([umoci, *a], check=True, capture_output=True)  # noqa: E731
    run("init", "--layout", str(lay))
    run("new", "--image", f"{lay}:u")
    bundle = tmp_path / "bundle"
    run("unpack", "--image", f"{lay}:u", str(bundle))
    shutil.copytree(rootfs, bundle / "rootfs", dirs_exist_ok=True, symlinks=True)
    (bundle / "rootfs" / "made-by").write_text("umoci\n")
    run("repack", "--image", f"{lay}:u", str(bundle))
    shutil.rmtree(bundle)
    registry.skopeo_push(str(lay), "u", "umoci:1")
    root = tmp_path / "rq"
    rongqi(root, "pull", f"{registry.host}/umoci:1")
    storage, mounted = snapshot_of(root, f"{registry.host}/umoci:1", "umoci")
    try:
        assert Path(mounted, "made-by").read_text() == "umoci\n"
        assert os.path.isfile(f"{mounted}/bin/busybox")
    finally:
        storage.remove_snapshot("umoci")


def test_pull_of_a_missing_tag_is_one_clear_line(registry, tmp_path):
    p = rongqi(tmp_path / "rq", "pull", f"{registry.host}/nothing:here", check=False)
    assert p.returncode == 125
    assert p.stderr.strip() == (f"Error: {registry.host}/nothing:here: manifest "
                                f"unknown (not found in {registry.host})")


def test_archives_interchange_with_podman(pushed, tmp_path, request):
    podman = shutil.which("podman")
    if not podman:
        pytest.skip("podman is not installed (apt-get install podman)")
    reg, desc = pushed
    import tempfile
    runroot = tempfile.mkdtemp(prefix="podrun-")  # podman wants it under 50 characters
    request.addfinalizer(lambda: shutil.rmtree(runroot, ignore_errors=True))
    pod = [podman, "--root", str(tmp_path / "pod-root"), "--runroot", runroot,
           "--storage-driver", "vfs"]
    name = f"{reg.host}/library/busybox:1"
    def run(*a: str) -> subprocess.CompletedProcess:
        p = subprocess.run([*pod, *a], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"podman {' '.join(a)}: {p.stderr}"
        return p

    run("pull", "-q", "--tls-verify=false", name)
    from_podman = tmp_path / "from-podman.tar"
    run("save", "--format", "docker-archive", "-o", str(from_podman), name)
    root = tmp_path / "rq"
    p = rongqi(root, "load", "-i", str(from_podman))
    assert f"Loaded image: {name}" in p.stdout
    ours = json.loads(rongqi(root, "image", "inspect", name).stdout)[0]
    rongqi(root, "tag", name, "localhost/back:1")
    for fmt in ("docker-archive", "oci-archive"):
        to_podman = tmp_path / f"to-podman-{fmt}.tar"
        rongqi(root, "save", "--format", fmt, "-o", str(to_podman), "localhost/back:1")
        out = run("load", "-i", str(to_podman)).stdout
        assert "back:1" in out or "sha256:" in out
    got = json.loads(run("image", "inspect", "localhost/back:1").stdout)[0]
    assert got["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
