"""--userns auto with real containers: ids from the `containers` user's subordinate ranges, a
block per container that no other container's maps overlap, as podman does.

This host's /etc/subuid has no `containers` entry (and a test must not edit the host's files),
so the test runs the CLI in a private mount namespace (unshare -m) where /etc/subuid and
/etc/subgid are temp files bound over the real ones: the engine reads the paths it always reads.
Everything that mounts runs inside that namespace, so it all happens in one shell."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("unshare") is None,
                                 reason="util-linux's unshare is not installed")]


def _in_private_mounts(rq, tmp_path, ranges: str, script: list[list[str]]) -> list[str]:
    """Run each argv of script (rongqi arguments) with /etc/subuid and /etc/subgid replaced;
    returns each command's stdout."""
    sub = tmp_path / "subids"
    sub.write_text(ranges)
    lines = ["set -e", f"mount --bind {sub} /etc/subuid", f"mount --bind {sub} /etc/subgid"]
    for i, args in enumerate(script):
        lines.append(f"{shlex.join(rq.argv(*args))} > {tmp_path}/out{i} 2>&1 "
                     f"|| {{ echo \"exit $?\" >> {tmp_path}/out{i}; cat {tmp_path}/out{i}; "
                     "exit 1; }")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "\n".join(lines)], capture_output=True, text=True, env=rq.env,
                       timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return [(tmp_path / f"out{i}").read_text() for i in range(len(script))]


def _maps(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in line.split()) for line in text.splitlines() if line.strip()]


def test_userns_auto_gives_each_container_its_own_block_of_the_containers_range(rq, tmp_path):
    out = _in_private_mounts(rq, tmp_path, "containers:200000:300000\n", [
        ["run", "-d", "--name", "a", "--network", "none", "--userns", "auto", "busybox",
         "sleep", "600"],
        ["run", "-d", "--name", "b", "--network", "none", "--userns", "auto:size=2000",
         "busybox", "sleep", "600"],
        ["exec", "a", "cat", "/proc/self/uid_map"],
        ["exec", "b", "cat", "/proc/self/uid_map"],
        ["exec", "b", "cat", "/proc/self/gid_map"],
        ["exec", "b", "id", "-u"],
        ["rm", "-f", "-t", "0", "a", "b"],
    ])
    a, b, b_gid = _maps(out[2]), _maps(out[3]), _maps(out[4])
    assert len(a) == 1 and len(b) == 1
    (a_in, a_host, a_size), (b_in, b_host, b_size) = a[0], b[0]
    assert a_in == 0 and b_in == 0 and b_size == 2000
    for host, size in ((a_host, a_size), (b_host, b_size)):
        assert 200000 <= host and host + size <= 500000       # inside the containers range
    assert a_host + a_size <= b_host or b_host + b_size <= a_host  # no overlap
    assert b_gid == b
    assert out[5].strip() == "0"                              # root inside, not on the host


def test_userns_auto_without_a_containers_range_is_podmans_error(rq, tmp_path):
    sub = tmp_path / "subids"
    sub.write_text("someone:100000:65536\n")
    script = (f"mount --bind {sub} /etc/subuid && mount --bind {sub} /etc/subgid && "
              f"{shlex.join(rq.argv('run', '--rm', '--network', 'none', '--userns', 'auto', 'busybox', 'true'))}")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, env=rq.env, timeout=120)
    assert r.returncode == 125
    assert r.stderr.startswith('Error: cannot find mappings for user "containers"'), r.stderr
    assert r.stderr.count("\n") == 1
    assert rq("ps", "-aq", check=True).stdout == ""           # nothing left half-made
