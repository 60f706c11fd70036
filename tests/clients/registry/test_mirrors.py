"""Registry mirrors: a configured mirror is tried first, a failing one is skipped."""

from __future__ import annotations

import json

from conftest import _start_registry, _stop, free_port
from test_registry_roundtrips import rongqi


def test_pull_comes_from_the_mirror_and_skips_a_dead_one(layout, rootfs, tmp_path):
    origin = _start_registry(tmp_path / "origin")   # holds nothing: the image must come from the mirror
    mirror = _start_registry(tmp_path / "mirror")
    try:
        layout.image_from_dir(rootfs, "bb")
        mirror.skopeo_push(str(layout.path), "bb", "library/busybox:m")
        dead = f"127.0.0.1:{free_port()}"  # nobody listens there
        conf = tmp_path / "registries.json"
        conf.write_text(json.dumps({"mirrors": {origin.host: [dead, mirror.host]}}))
        root = tmp_path / "rq"
        name = f"{origin.host}/library/busybox:m"
        rongqi(root, "--registries-conf", str(conf), "pull", "-q", name)
        listed = rongqi(root, "images").stdout.splitlines()[1].split()
        assert listed[:2] == [f"{origin.host}/library/busybox", "m"]  # named as asked, fetched from the mirror
        # Without the mirror the origin answers that it has no such image: one clear line.
        p = rongqi(tmp_path / "rq2", "pull", "-q", name, check=False)
        assert p.returncode == 125 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    finally:
        _stop(origin.proc)
        _stop(mirror.proc)
