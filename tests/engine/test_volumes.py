"""Volumes through the `rongqi` CLI with real containers: podman's volume commands and outputs,
copy-up from the image on first use, sharing, in-use refusals, rm -v and prune."""

from __future__ import annotations

import json
import os
import re

import pytest

from support.engine_cli import Rongqi, rongqi  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real containers)")


def one_error(p, pattern: str, code: int) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code, p.stdout + p.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), p.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def test_create_ls_inspect_exists_rm_in_podmans_shapes(rongqi: Rongqi):
    assert rongqi("volume", "create", "data").stdout == "data\n"
    one_error(rongqi("volume", "create", "data", check=False),
              r"^Error: volume with name data already exists: volume already exists$", 125)
    assert rongqi("volume", "create", "--ignore", "data").stdout == "data\n"
    rongqi("volume", "create", "--label", "team=web", "--opt", "type=tmpfs",
           "--opt", "device=tmpfs", "--opt", "o=size=1m", "scratch")
    assert rongqi("volume", "ls").stdout.splitlines() == [
        "DRIVER      VOLUME NAME", "local       data", "local       scratch"]
    assert rongqi("volume", "ls", "-q", "--filter", "label=team=web").stdout == "scratch\n"
    assert rongqi("volume", "ls", "--format", "{{.Name}}:{{.Driver}}").stdout == \
        "data:local\nscratch:local\n"
    # A volume with mount options is that filesystem in the container.
    df = rongqi("run", "--rm", "-v", "scratch:/t", "busybox", "sh", "-c",
                "grep ' /t ' /proc/mounts; df -k /t | tail -1").stdout.splitlines()
    assert df[0].startswith("tmpfs /t tmpfs ") and df[1].split()[1] == "1024"
    info = json.loads(rongqi("volume", "inspect", "scratch").stdout)
    assert len(info) == 1
    v = info[0]
    assert v["Name"] == "scratch" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Labels"] == {"team": "web"}
    assert v["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert v["Mountpoint"] == os.path.join(rongqi.root, "volumes", "scratch", "_data")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", v["CreatedAt"])
    assert rongqi("volume", "inspect", "--format", "{{.Mountpoint}}", "data").stdout.strip() \
        == os.path.join(rongqi.root, "volumes", "data", "_data")
    assert rongqi("volume", "exists", "data", check=False).returncode == 0
    assert rongqi("volume", "exists", "nope", check=False).returncode == 1
    one_error(rongqi("volume", "rm", "nope", check=False),
              r'^Error: no volume with name "nope" found: no such volume$', 1)
    one_error(rongqi("volume", "create", "b@d", check=False),
              r"names must match \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\]\*", 125)
    assert rongqi("volume", "rm", "data", "scratch").stdout == "data\nscratch\n"
    assert rongqi("volume", "ls", "-q").stdout == ""
    events = [ln.split(" UTC ", 1)[1] for ln in rongqi(
        "events", "--stream=false", "--filter", "type=volume").stdout.splitlines()]
    assert events == ["volume create data", "volume create scratch", "volume remove data",
                      "volume remove scratch"]


def test_named_volume_is_copied_up_from_the_image_and_shared(rongqi: Rongqi):
    # /etc of the image fills the new volume on its first use, as docker does.
    text = rongqi("run", "--rm", "-v", "conf:/etc", "busybox", "sh", "-c",
                  "cat /etc/group | head -1; echo from-first > /etc/marker").stdout
    assert text == "root:x:0:\n"
    data = os.path.join(rongqi.root, "volumes", "conf", "_data")
    assert os.path.isfile(os.path.join(data, "passwd"))
    # A second container (elsewhere in its tree) sees the first one's write.
    assert rongqi("run", "--rm", "-v", "conf:/mnt", "busybox", "cat", "/mnt/marker").stdout \
        == "from-first\n"
    # Copy-up happens once: what a container removed stays removed.
    rongqi("run", "--rm", "-v", "conf:/etc", "busybox", "rm", "/etc/marker")
    assert not os.path.exists(os.path.join(data, "marker"))
    # Two running containers share it live.
    rongqi("run", "-d", "--name", "writer", "-v", "conf:/v", "busybox", "sh", "-c",
           "echo live > /v/live; sleep 60")
    assert rongqi("run", "--rm", "-v", "conf:/v:ro", "busybox", "sh", "-c",
                  "while [ ! -f /v/live ]; do sleep 0.1; done; cat /v/live").stdout == "live\n"
    rongqi("rm", "-f", "-t", "0", "writer")


def test_a_volume_in_use_is_refused_and_rm_f_removes_its_containers(rongqi: Rongqi):
    rongqi("volume", "create", "busy")
    cid = rongqi("create", "-v", "busy:/data", "busybox", "true").stdout.strip()
    one_error(rongqi("volume", "rm", "busy", check=False),
              rf"^Error: volume busy is being used by the following container\(s\): {cid}: "
              r"volume is being used$", 2)
    assert rongqi("volume", "prune", "-f").stdout == ""  # in use: not pruned
    assert rongqi("volume", "ls", "-q", "--filter", "dangling=true").stdout == ""
    assert rongqi("volume", "rm", "-f", "busy").stdout == "busy\n"
    assert rongqi.ids() == []
    # A running user is stopped first; -t is how long its stop waits before the kill.
    rongqi("volume", "create", "busy")
    rongqi("run", "-d", "--name", "runner", "-v", "busy:/data", "busybox", "sleep", "60")
    import time
    t = time.monotonic()
    assert rongqi("volume", "rm", "-f", "-t", "0", "busy").stdout == "busy\n"
    assert time.monotonic() - t < 8 and rongqi.ids() == []


def test_rm_v_removes_anonymous_volumes_and_keeps_named_ones(rongqi: Rongqi):
    cid = rongqi("create", "-v", "/anon", "-v", "kept:/kept", "busybox", "true").stdout.strip()
    vols = rongqi("volume", "ls", "-q").stdout.split()
    anon = [v for v in vols if v != "kept"]
    assert len(anon) == 1 and re.fullmatch(r"[0-9a-f]{64}", anon[0])
    mounts = rongqi.inspect(cid)["Mounts"]
    assert {m["Destination"] for m in mounts} == {"/anon", "/kept"}
    rongqi("rm", "-v", cid)
    assert rongqi("volume", "ls", "-q").stdout == "kept\n"


def test_prune_removes_only_unused_volumes(rongqi: Rongqi):
    rongqi("volume", "create", "unused")
    rongqi("volume", "create", "used")
    rongqi("create", "--name", "user", "-v", "used:/u", "busybox", "true")
    assert rongqi("volume", "ls", "-q", "--filter", "dangling=true").stdout == "unused\n"
    p = rongqi("volume", "prune", input="y\n")
    assert "unused" in p.stdout and "Are you sure you want to continue? [y/N]" in p.stdout
    assert rongqi("volume", "ls", "-q").stdout == "used\n"


def test_a_failed_create_leaves_no_volume(rongqi: Rongqi):
    p = rongqi("create", "-v", "newvol:/a", "-v", "/anon", "-v", "/nonexistent:/b", "busybox",
               "true", check=False)
    one_error(p, r"^Error: statfs /nonexistent: no such file or directory$", 125)
    assert rongqi("volume", "ls", "-q").stdout == ""
    assert rongqi.ids() == []


def test_run_rm_and_a_failed_run_leave_no_anonymous_volume(rongqi: Rongqi):
    # podman's --rm removes the container's anonymous volumes; named ones stay.
    rongqi("run", "--rm", "-v", "/anon", "-v", "named:/named", "busybox", "true")
    assert rongqi("volume", "ls", "-q").stdout == "named\n"
    p = rongqi("run", "--rm", "-v", "/anon", "busybox", "/no/such/command", check=False)
    assert p.returncode == 127
    assert rongqi("volume", "ls", "-q").stdout == "named\n" and rongqi.ids() == []
    # without --rm the container stays, created, with its volume (podman 4.3.1's); rm -v
    # takes both
    p = rongqi("run", "--name", "kept", "-v", "/anon", "busybox", "/no/such/command",
               check=False)
    assert p.returncode == 127 and len(rongqi.ids()) == 1
    rongqi("rm", "-v", "kept")
    assert rongqi("volume", "ls", "-q").stdout == "named\n" and rongqi.ids() == []
