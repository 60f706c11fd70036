"""An ordinary user runs containers from their own store: `rongqi create/start/ps/stop/rm`
as a fresh user, with the default paths (~/.local/share/rongqi, $XDG_RUNTIME_DIR/rongqi)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.delegation import remove_user
from support.engine_cli import SRC
from support.plugin import SESSION_TAG

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="makes a user: needs root"),
              pytest.mark.skipif(shutil.which("useradd") is None,
                                 reason="useradd is needed (apt-get install passwd)")]


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    name = f"rqen-{SESSION_TAG}"[:32]
    remove_user(name)
    subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        remove_user(name)


@pytest.fixture
def home(user: pwd.struct_passwd) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rongqi-rootless-engine-"))
    os.chmod(d, 0o755)
    (d / "xdg").mkdir(mode=0o700)
    for p in (d, d / "xdg"):
        os.chown(p, user.pw_uid, user.pw_gid)
    yield d
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f if ln.split()[4].startswith(str(d) + "/")]
    for p in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True, check=False)
    shutil.rmtree(d, ignore_errors=True)


def _as(user: pwd.struct_passwd, home: Path, *args: str, check: bool = True
        ) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home),
           "USER": user.pw_name, "LOGNAME": user.pw_name, "XDG_RUNTIME_DIR": str(home / "xdg"),
           "PYTHONPATH": SRC}
    p = subprocess.run([sys.executable, "-m", "rongqi.cli.main", *args], user=user.pw_uid,
                       group=user.pw_gid, extra_groups=[], env=env, cwd=str(home),
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       check=False)
    if check:
        assert p.returncode == 0, f"rongqi {' '.join(args)}: {p.stderr}"
    return p


def test_an_ordinary_user_runs_a_container_from_their_own_store(user, home):
    cid = _as(user, home, "create", "--name", "mine", "busybox", "sh", "-c",
              "id -u; trap 'exit 3' TERM; while :; do sleep 0.1; done").stdout.strip()
    store = home / ".local" / "share" / "rongqi"
    assert (store / "containers" / cid / "config.json").is_file()
    assert os.stat(store / "containers" / cid).st_uid == user.pw_uid
    _as(user, home, "start", "mine")
    doc = json.loads(_as(user, home, "inspect", "mine").stdout)[0]
    assert doc["State"]["Status"] == "running"
    with open(f"/proc/{doc['State']['Pid']}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids[0] != "0"  # the container's root is not the host's
    assert (home / "xdg" / "rongqi" / "engine" / cid / "monitor.lock").exists()
    assert _as(user, home, "ps", "--format", "{{.Names}} {{.State}}").stdout == \
        "mine running\n"
    _as(user, home, "stop", "-t", "5", "mine")
    assert _as(user, home, "wait", "mine").stdout == "3\n"
    log = (store / "containers" / cid / "userdata" / "ctr.log").read_text()
    assert log.split("\n")[0].endswith(" stdout F 0")  # root inside its user namespace
    _as(user, home, "rm", "mine")
    assert os.listdir(store / "containers") == []
