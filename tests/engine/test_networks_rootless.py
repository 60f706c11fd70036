"""Rootless networking as an ordinary user runs it: slirp4netns (podman 4's default) and pasta,
published ports on the host's loopback, the host's loopback closed to the container unless asked,
nothing left running after the container, its monitor or `rm`.

An ordinary user's slirp4netns and pasta open /dev/net/tun. Debian's udev (and most distros')
makes it 0666; this host's is 0600 and a test must not change the host's device. So each
command runs in a private mount namespace (unshare -m, as test_userns_auto.py does for
/etc/subuid) where a tun node (char 10,200) of the mode the test wants, made in a tmpfs there,
is bound over /dev/net/tun: the distribution's default reproduced without touching the host.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.net import free_port, http_get
from support.delegation import remove_user
from support.engine_cli import SRC
from support.plugin import SESSION_TAG

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="makes a user: needs root"),
              pytest.mark.skipif(shutil.which("useradd") is None,
                                 reason="useradd is needed (apt-get install passwd)"),
              pytest.mark.skipif(shutil.which("slirp4netns") is None,
                                 reason="slirp4netns is not installed"),
              pytest.mark.skipif(shutil.which("unshare") is None,
                                 reason="util-linux's unshare is not installed")]


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    name = f"rqnr-{SESSION_TAG}"[:32]
    remove_user(name)
    subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        remove_user(name)


class User:
    """rongqi as the test user, each command in a private mount namespace whose /dev/net/tun
    is a node of `tun_mode` (owner root)."""

    def __init__(self, pw: pwd.struct_passwd, home: Path, tun_mode: int = 0o666) -> None:
        self.pw = pw
        self.home = home
        self.tun_mode = tun_mode
        self.devdir = home.parent / "tundev"
        self.devdir.mkdir(exist_ok=True)

    def __call__(self, *args: str, check: bool = False,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        h = self.home
        env = " ".join(shlex.quote(e) for e in (
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", f"HOME={h}",
            f"XDG_RUNTIME_DIR={h / 'xdg'}", f"USER={self.pw.pw_name}", f"PYTHONPATH={SRC}"))
        script = "\n".join([
            "set -e",
            f"mount -t tmpfs -o mode=0755,size=16k rqtun {self.devdir}",
            f"mknod -m {self.tun_mode:04o} {self.devdir}/tun c 10 200",
            f"mount --bind {self.devdir}/tun /dev/net/tun",
            f"exec setpriv --reuid={self.pw.pw_uid} --regid={self.pw.pw_gid} --clear-groups "
            f"-- env -i {env} {shlex.quote(sys.executable)} -m rongqi.cli.main "
            + " ".join(shlex.quote(a) for a in args)])
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, cwd=str(h), check=False)
        if check:
            assert p.returncode == 0, f"rongqi {' '.join(args)}: {p.stderr}"
        return p

    def state(self, cid: str) -> dict:
        path = self.home / ".local/share/rongqi/containers" / cid / "state.json"
        return json.loads(path.read_text())


@pytest.fixture
def rl(user: pwd.struct_passwd) -> Iterator[User]:
    d = Path(tempfile.mkdtemp(prefix=f"rongqi-netrl-{SESSION_TAG}-"))
    os.chmod(d, 0o755)
    home = d / "home"
    (home / "xdg").mkdir(parents=True)
    os.chmod(home / "xdg", 0o700)
    for p in (home, home / "xdg"):
        os.chown(p, user.pw_uid, user.pw_gid)
    u = User(user, home)
    yield u
    u("rm", "-a", "-f", "-t", "0")
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f if ln.split()[4].startswith(str(d) + "/")]
    for p in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True, check=False)
    shutil.rmtree(d, ignore_errors=True)






def _helpers(cid: str) -> list[int]:
    """Live slirp4netns/pasta processes started for this container (their command lines name
    its API socket or its run dir, both carrying the id)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if os.path.basename(argv[0]) in (b"slirp4netns", b"pasta", b"passt") and \
                any(cid[:16].encode() in a for a in argv):
            out.append(int(name))
    return out


def _wait_gone(cid: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _helpers(cid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _serve_on_host_loopback() -> tuple[int, threading.Event]:
    """A service on the host's 127.0.0.1 that answers "hello"; stops when the event is set."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        with srv:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                with conn:
                    conn.sendall(b"hello\n")
    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1], stop


# -- slirp4netns -------------------------------------------------------------------------------
def test_a_rootless_container_publishes_a_port_on_the_hosts_loopback(rl):
    """The rootless default network is slirp4netns, as podman 4's: its own netns on tap0, the
    port forwarded through slirp4netns' API socket, still there after the monitor's slim
    re-exec, gone with the container."""
    port = free_port()
    r = rl("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "httpd", "-f", "-p",
           "80", "-h", "/etc", check=True)
    cid = r.stdout.strip()
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    assert rl("port", "web", check=True).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    out = rl("exec", "web", "ip", "route", check=True).stdout
    assert "default via 10.0.2.2 dev tap0" in out
    resolv = rl("exec", "web", "cat", "/etc/resolv.conf", check=True).stdout
    assert resolv.split("nameserver ", 1)[1].startswith("10.0.2.3\n")  # slirp's DNS first
    hosts = rl("exec", "web", "cat", "/etc/hosts", check=True).stdout.splitlines()
    assert f"10.0.2.100\t{cid[:12]} web" in hosts   # podman's: the names on tap0's address
    # the container's root is the user (a user namespace), and its netns is not the host's
    st = rl.state(cid)
    assert os.readlink(f"/proc/{st['pid']}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{st['pid']}/ns/user") != os.readlink("/proc/self/ns/user")
    assert len(_helpers(cid)) == 1
    time.sleep(1.5)  # the monitor re-execs into its slim self after 1 s: the exit fd goes along
    assert http_get(f"http://127.0.0.1:{port}/hostname", timeout=5).strip() == cid[:12]
    rl("rm", "-f", "-t", "0", "web", check=True)
    assert _wait_gone(cid) == []
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2)


def test_the_hosts_loopback_is_closed_to_the_container_unless_allowed(rl):
    """podman's slirp4netns default, allow_host_loopback=false (--disable-host-loopback):
    10.0.2.2 is not the host's 127.0.0.1; with allow_host_loopback=true it is."""
    port, stop = _serve_on_host_loopback()
    try:
        probe = f"nc -w 3 10.0.2.2 {port} </dev/null; echo rc=$?"
        closed = rl("run", "--rm", "busybox", "sh", "-c", probe, check=True)
        assert "rc=1" in closed.stdout and "hello" not in closed.stdout, closed
        opened = rl("run", "--rm", "--network", "slirp4netns:allow_host_loopback=true",
                    "busybox", "sh", "-c", probe, check=True)
        assert opened.stdout == "hello\nrc=0\n", opened
    finally:
        stop.set()


def test_slirp4netns_ends_with_a_killed_monitor_and_with_the_container(rl):
    """slirp4netns' exit fd is a pipe only the monitor holds: a SIGKILLed monitor takes it
    along at once; a container that exits ends its own."""
    cid = rl("run", "-d", "--name", "k", "busybox", "sleep", "600", check=True).stdout.strip()
    assert len(_helpers(cid)) == 1
    st = rl.state(cid)
    os.kill(st["monitor_pid"], signal.SIGKILL)
    assert _wait_gone(cid) == []
    rl("rm", "-f", "-t", "0", "k", check=True)
    # a container whose process ends: the monitor's end of the run closes it
    cid = rl("run", "-d", "--name", "short", "busybox", "sleep", "1", check=True).stdout.strip()
    assert rl("wait", "short", check=True).stdout == "0\n"
    assert _wait_gone(cid) == []
    # a restart by the policy, under the monitor's slim self (the first run ends after 2 s,
    # the re-exec is at 1 s; the second serves): a new slirp4netns for the new namespaces
    port = free_port()
    once = ("if [ -e /once ]; then exec httpd -f -p 80 -h /etc; fi; touch /once; sleep 2; "
            "exit 1")
    cid = rl("run", "-d", "--name", "again", "--restart", "always", "-p", f"{port}:80",
             "busybox", "sh", "-c", once, check=True).stdout.strip()
    first = _helpers(cid)
    assert len(first) == 1
    deadline = time.monotonic() + 30
    while rl.state(cid).get("restart_count", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    deadline = time.monotonic() + 10  # the old one ends as its exit pipe closes
    while set(now := _helpers(cid)) & set(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(now) == 1 and not set(now) & set(first), (first, now)
    rl("rm", "-f", "-t", "0", "again", check=True)
    assert _wait_gone(cid) == []


def test_a_tun_device_the_user_cannot_open_is_one_line(rl):
    """A host whose /dev/net/tun is 0600 (as this one's): an explicit slirp4netns network is
    refused in one line naming the device and its mode; nothing is left. The default network
    falls back to none with a warning, so ordinary users still run containers there."""
    rl.tun_mode = 0o600
    r = rl("run", "--rm", "--network", "slirp4netns", "-p", f"{free_port()}:80", "busybox",
           "true")
    assert r.returncode == 125
    assert r.stderr.startswith("Error: slirp4netns cannot open /dev/net/tun"), r.stderr
    assert "mode 0600 root:root" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert rl("ps", "-aq", check=True).stdout == ""
    r = rl("run", "--rm", "busybox", "ip", "-o", "link", check=True)
    assert "/dev/net/tun" in r.stderr and r.stdout.count("\n") == 1  # only lo


def test_a_port_in_use_or_privileged_is_podmans_error(rl):
    """Checked before anything starts: podman's rootless words (its rootlessport's), exit 125,
    no container and no slirp4netns left."""
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    try:
        r = rl("run", "--rm", "-p", f"{busy}:80", "busybox", "true")
        assert (r.returncode, r.stderr) == (
            125, f"Error: rootlessport listen tcp 0.0.0.0:{busy}: bind: address already in use\n")
    finally:
        holder.close()
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    if start > 80:
        r = rl("run", "--rm", "-p", "80:80", "busybox", "true")
        assert r.returncode == 125
        assert r.stderr.startswith("Error: rootlessport cannot expose privileged port 80, you "
                                   "can add 'net.ipv4.ip_unprivileged_port_start=80' to "
                                   f"/etc/sysctl.conf (currently {start})"), r.stderr
        assert r.stderr.endswith(": listen tcp 0.0.0.0:80: bind: permission denied\n")
    assert rl("ps", "-aq", check=True).stdout == ""


def test_bad_slirp4netns_options_are_podmans_errors(rl):
    # (the rest of podman's words: tests/unit/engine/test_networks_rootless_options.py)
    for opt, msg in (("foo", 'unknown option for slirp4netns: "foo"'),
                     ("mtu=12", 'invalid mtu "12"')):
        r = rl("create", "--network", f"slirp4netns:{opt}", "busybox", "true")
        assert (r.returncode, r.stderr) == (125, f"Error: {msg}\n")
    assert rl("ps", "-aq", check=True).stdout == ""


def test_slirp4netns_options_change_the_network(rl):
    port = free_port()
    r = rl("run", "-d", "--name", "o", "-p", f"127.0.0.1:{port}:80", "--network",
           "slirp4netns:cidr=10.41.0.0/24,mtu=1500,enable_ipv6=false,port_handler=slirp4netns",
           "busybox", "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
    cid = r.stdout.strip()
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    out = rl("exec", "o", "ip", "addr", "show", "tap0", check=True).stdout
    assert "inet 10.41.0.100/24" in out and "mtu 1500" in out and "inet6 fd00" not in out
    resolv = rl("exec", "o", "cat", "/etc/resolv.conf", check=True).stdout
    assert "nameserver 10.41.0.3\n" in resolv
    rl("rm", "-f", "-t", "0", "o", check=True)
    assert _wait_gone(cid) == []


# -- pasta ---------------------------------------------------------------------------------------
needs_pasta = pytest.mark.skipif(shutil.which("pasta") is None,
                                 reason="pasta is not installed (apt-get install passt)")


@needs_pasta
def test_pasta_publishes_a_port_and_is_stopped_after_its_monitor_was_killed(rl):
    """--network pasta as podman 4.4+ spells it: the port forwarded by pasta (-t), gone with
    the container; pasta has no exit fd, so after a SIGKILLed monitor the next command that
    syncs the container stops it (by its recorded pid and start time)."""
    port = free_port()
    cid = rl("run", "-d", "--name", "p", "--network", "pasta", "-p", f"{port}:80", "busybox",
             "httpd", "-f", "-p", "80", "-h", "/etc", check=True).stdout.strip()
    assert http_get(f"http://127.0.0.1:{port}/hostname").strip() == cid[:12]
    assert rl("port", "p", check=True).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    assert len(_helpers(cid)) == 1
    rl("rm", "-f", "-t", "0", "p", check=True)
    assert _wait_gone(cid) == []
    cid = rl("run", "-d", "--name", "pk", "--network", "pasta", "busybox", "sleep", "600",
             check=True).stdout.strip()
    assert len(_helpers(cid)) == 1
    os.kill(rl.state(cid)["monitor_pid"], signal.SIGKILL)
    time.sleep(0.5)
    rl("ps", "-a", check=True)
    assert _wait_gone(cid) == []
    rl("rm", "-f", "-t", "0", "pk", check=True)
