"""rongqi image prune as podman's: a prompt unless -f, dangling images only unless -a, never an
image a container uses, label/until filters, the removed IDs printed, events written."""

from __future__ import annotations

import json

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


def _ids(rq) -> set[str]:
    e = rq.engine()
    from rongqi.engine import imageinfo
    return {f.id.partition(":")[2] for f in imageinfo.all_images(e.store)}


def test_image_prune_asks_then_removes_dangling_then_unused(rq):
    rq("create", "--name", "keep", "--network", "none", "busybox", "true", check=True)
    dangling = rq("commit", "-q", "keep", check=True).stdout.strip()      # no name: <none>
    rq("run", "--name", "lab", "--network", "none", "busybox", "sh", "-c", "echo x > /x",
       check=True)
    labelled = rq("commit", "-q", "--change", "LABEL team=a", "lab", "labelled", check=True)
    labelled_id = labelled.stdout.strip()
    rq("rm", "lab", check=True)
    busybox = rq("image", "inspect", "--format", "{{.Id}}", "busybox",
                 check=True).stdout.strip().removeprefix("sha256:")
    assert {dangling, labelled_id, busybox} <= _ids(rq)

    r = rq("image", "prune", input="n\n", check=True)
    assert r.stdout == ("WARNING! This command removes all dangling images.\n"
                        "Are you sure you want to continue? [y/N] ")
    assert dangling in _ids(rq)

    r = rq("image", "prune", input="y\n", check=True)
    assert r.stdout.splitlines()[-1].endswith(dangling)
    assert dangling not in _ids(rq) and labelled_id in _ids(rq)

    # -a: every image no container uses, narrowed by the filters; busybox is in use by "keep"
    assert rq("image", "prune", "-af", "--filter", "label=team=b", check=True).stdout == ""
    assert rq("image", "prune", "-af", "--filter", "label!=team=a",
              check=True).stdout == ""
    assert rq("image", "prune", "-af", "--filter", "until=1970-01-02T00:00:00Z",
              check=True).stdout == ""  # the commit is newer than that
    r = rq("image", "prune", "-af", "--filter", "label=team", check=True)
    assert r.stdout == labelled_id + "\n"
    assert busybox in _ids(rq) and labelled_id not in _ids(rq)
    events = [json.loads(line) for line in rq("events", "--stream=false", "--format", "json",
                                              check=True).stdout.splitlines()]
    assert any(e.get("Status") == "remove" and e.get("ID", "").startswith(labelled_id[:12])
               for e in events), events[-5:]
    rq("rm", "keep", check=True)
    assert rq("image", "prune", "-af", check=True).stdout == busybox + "\n"
    assert _ids(rq) == set()
    r = rq("image", "prune", "-f", "--filter", "nokey")
    assert r.returncode == 125 and r.stderr == 'Error: invalid filter "nokey": expected key=value\n'
