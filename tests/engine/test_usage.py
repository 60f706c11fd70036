"""Sizes as podman counts them (uncompressed layers, plus config and manifest), and the image
tables that show them: `images`, `history`, `system df` (summary, -v, --format), side by side
with podman on the same image where podman is installed."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


def _df(rq) -> dict[str, dict]:
    return {row["Type"]: row for row in json.loads(rq("system", "df", "--format", "json",
                                                     check=True).stdout)}


def test_df_counts_images_containers_and_volumes_and_what_is_reclaimable(rq):
    assert set(_df(rq)) == {"Images", "Containers", "Local Volumes"}
    rq("create", "--network", "none", "--name", "c1", "-v", "vol1:/data", "busybox",
       "sh", "-c", "head -c 100000 /dev/zero > /x", check=True)
    rq("start", "-a", "c1", check=True)
    rq("volume", "create", "spare", check=True)
    df = _df(rq)
    images, containers, volumes = df["Images"], df["Containers"], df["Local Volumes"]
    assert images["Total"] == 1 and images["Active"] == 1 and images["RawReclaimable"] == 0
    assert images["Reclaimable"] == "0B (0%)"
    # the exited container's 100 kB upper dir counts and is reclaimable
    assert containers["Total"] == 1 and containers["Active"] == 0
    assert containers["RawSize"] >= 100_000
    assert containers["RawReclaimable"] == containers["RawSize"]
    assert containers["Reclaimable"].endswith("(100%)")
    assert volumes["Total"] == 2 and volumes["Active"] == 1
    table = rq("system", "df", check=True).stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split()[0] for line in table[1:]] == ["Images", "Containers", "Local"]
    verbose = rq("system", "df", "-v", check=True).stdout
    for title in ("Images space usage:", "Containers space usage:",
                  "Local Volumes space usage:"):
        assert title in verbose
    assert "spare" in verbose and "c1" in verbose
    assert rq("system", "df", "--format", "{{.Type}}={{.Total}}", check=True).stdout == \
        "Images=1\nContainers=1\nLocal Volumes=2\n"


def test_an_unpacked_image_is_sized_uncompressed(rq):
    rq("run", "--rm", "--network", "none", "busybox", "true", check=True)  # unpacks it
    small = rq.engine().store.images()[0].size  # the blobs, compressed
    rows = json.loads(rq("history", "--format", "json", "busybox", check=True).stdout)
    layer = rows[0]["size"]
    df = _df(rq)["Images"]["RawSize"]
    # busybox-static compresses to about half; the uncompressed layer is the bigger figure
    assert layer > small and df > layer
    assert rq("images", check=True).stdout.splitlines()[0].split() == \
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_history_and_sizes_match_podman_on_the_same_image(rq, tmp_path):
    from support.private_podman import private_podman
    rq("run", "--rm", "--network", "none", "busybox", "true", check=True)
    archive = tmp_path / "busybox.tar"
    rq("save", "-o", str(archive), "busybox", check=True)
    import tempfile
    runroot = tempfile.mkdtemp(prefix="rqu-", dir="/tmp")  # podman: under 50 characters
    argv, env = private_podman(tmp_path / "pm", runroot=runroot)
    try:
        subprocess.run([*argv, "load", "-q", "-i", str(archive)], env=env, check=True,
                       capture_output=True, timeout=120)

        def podman(*args: str) -> str:
            return subprocess.run([*argv, *args], env=env, check=True, capture_output=True,
                                  text=True, timeout=60).stdout

        assert rq("history", "--format", "json", "busybox", check=True).stdout == \
            podman("history", "--format", "json", "busybox")
        assert rq("history", "--format", "{{.ID}} {{.Size}} {{.CreatedBy}}", "busybox",
                  check=True).stdout == \
            podman("history", "--format", "{{.ID}} {{.Size}} {{.CreatedBy}}", "busybox")
        ours = _df(rq)["Images"]
        theirs = podman("system", "df", "--format", "{{.Type}} {{.Size}}").splitlines()[0]
        assert theirs == f"Images {ours['Size']}"
        assert podman("images", "--format", "{{.Size}}").strip() == \
            rq("images", "--format", "{{.Size}}", check=True).stdout.strip()
    finally:
        subprocess.run([*argv, "rmi", "-af"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)
