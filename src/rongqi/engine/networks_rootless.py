"""User-mode networking, podman's rootless stacks: slirp4netns (the default for an ordinary user)
or pasta, on a tap device in the container's own network namespace, with published ports.

The namespaces are made before the runtime's create by a short-lived holder process (a fork of
the monitor): the runtime joins them by path, and slirp4netns or pasta is up (ports forwarded)
before the container's first process exists. docs/networks.md says why a holder is needed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rongqi.engine import Engine
    from rongqi.engine.records import Container

MODES = ("slirp4netns", "pasta")
SLIRP_CIDR = "10.0.2.0/24"
SLIRP_MTU = 65520
TUN = "/dev/net/tun"
# In the container's run dir: links to the holder's /proc/PID/ns/{user,net} while the runtime's
# create joins them (config.json names these paths; see bundle.build).
NETNS_LINK = "netns"
USERNS_LINK = "userns"
_PATH_ENV = "/usr/sbin:/usr/bin:/sbin:/bin"
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_DAD = "/proc/sys/net/ipv6/conf/default/accept_dad"


def _error(msg: str) -> Exception:
    from rongqi.engine.networks import NetworkError
    return NetworkError(msg)


# -- --network slirp4netns[:OPTIONS] | pasta[:OPTIONS] -------------------------------------------
def split_mode(network: str) -> tuple[str, list[str]]:
    """"slirp4netns:mtu=1500,cidr=..." -> ("slirp4netns", ["mtu=1500", "cidr=..."])."""
    mode, _, rest = network.partition(":")
    return mode, [o for o in rest.split(",") if o] if rest else []


def slirp_options(options: list[str]) -> dict[str, Any]:
    """podman 4's slirp4netns options (parseSlirp4netnsNetworkOptions), its defaults and its
    words for bad ones."""
    out: dict[str, Any] = {"cidr": "", "allow_host_loopback": False, "enable_ipv6": True,
                           "mtu": SLIRP_MTU, "outbound_addr": "", "outbound_addr6": "",
                           "port_handler": "rootlesskit"}
    for o in options:
        key, eq, value = o.partition("=")
        if not eq:
            raise _error(f'unknown option for slirp4netns: "{o}"')
        if key == "cidr":
            try:
                net = ipaddress.ip_interface(value)
            except ValueError:
                net = None
            if net is None or net.version != 4 or "/" not in value:
                raise _error(f'invalid cidr "{value}"')
            out["cidr"] = value
        elif key == "port_handler":
            if value not in ("slirp4netns", "rootlesskit"):
                raise _error(f'unknown port_handler for slirp4netns: "{value}"')
            out["port_handler"] = value
        elif key in ("allow_host_loopback", "enable_ipv6"):
            if value not in ("true", "false"):
                raise _error(f'invalid value of {key} for slirp4netns: "{value}"')
            out[key] = value == "true"
        elif key in ("outbound_addr", "outbound_addr6"):
            try:
                ok = ipaddress.ip_address(value).version == (4 if key == "outbound_addr" else 6)
            except ValueError:
                ok = os.path.exists(f"/sys/class/net/{value}") and "/" not in value
            if not ok:
                sep = ":" if key == "outbound_addr6" else ""
                raise _error(f'invalid {key}{sep} "{value}"')
            out[key] = value
        elif key == "mtu":
            if not value.isdigit() or int(value) < 68:
                raise _error(f'invalid mtu "{value}"')
            out["mtu"] = int(value)
        else:
            raise _error(f'unknown option for slirp4netns: "{o}"')
    if out["outbound_addr6"] and not out["enable_ipv6"]:
        raise _error("enable_ipv6=true is required for outbound_addr6")
    return out


def check_options(mode: str, options: list[str]) -> None:
    """At create: refuse what start would refuse (nothing is made for a bad option)."""
    if mode == "slirp4netns":
        slirp_options(options)
    elif mode == "pasta":
        if shutil.which("pasta", path=_PATH_ENV) is None:
            raise _error("could not find pasta, the network namespace can't be configured: "
                         'exec: "pasta": executable file not found in $PATH')
        for o in options:
            if o in ("--netns", "--userns", "-P", "--pid", "-f", "--foreground"):
                raise _error(f"pasta option {o} is set by rongqi itself")


def slirp_addresses(cidr: str) -> tuple[str, str, str]:
    """(guest, gateway/host, dns) of a slirp4netns network: .100, .2, .3 as slirp4netns picks."""
    net = ipaddress.ip_interface(cidr or SLIRP_CIDR).network
    base = int(net.network_address)
    return (str(ipaddress.ip_address(base + 100)), str(ipaddress.ip_address(base + 2)),
            str(ipaddress.ip_address(base + 3)))


# -- /dev/net/tun ----------------------------------------------------------------------------------
def tun_usable() -> bool:
    """Whether this process may open /dev/net/tun (slirp4netns and pasta need it)."""
    return os.access(TUN, os.R_OK | os.W_OK)


def check_tun(tool: str) -> None:
    """One clear line when the tap device cannot be made: the device's mode says why."""
    try:
        os.close(os.open(TUN, os.O_RDWR | os.O_CLOEXEC))
        return
    except OSError as err:
        why = (err.strerror or str(err)).lower()
        try:
            st = os.stat(TUN)
        except OSError:
            raise _error(f"{tool} needs {TUN}, which does not exist: load the tun module "
                         "(modprobe tun)") from None
        import grp
        import pwd
        owner = _name(pwd.getpwuid, st.st_uid) + ":" + _name(grp.getgrgid, st.st_gid)
        raise _error(f"{tool} cannot open {TUN} ({why}): it is mode "
                     f"{stat.S_IMODE(st.st_mode):04o} {owner}, so only its owner may use it; "
                     f"an ordinary user needs 0666 (the default on most distributions), or "
                     f"use --network none") from None


def _name(lookup: Any, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


# -- the holder: the container's user and network namespaces, made before the runtime's create --
class Holder:
    """A fork of the monitor in the container's new user (if any) and network namespaces.

    Why not the runtime's own namespaces: its init is non-dumpable from its first moment
    (CVE-2019-5736) and its memory belongs to the host's user namespace, so an ordinary user
    may not open /proc/INIT/ns/* (EACCES) nor setns into them by pidfd (EPERM). podman avoids
    this by running everything inside its own user namespace; rongqi has none. The holder is
    an ordinary process of the same user (dumpable), so the runtime, slirp4netns and pasta open
    /proc/HOLDER/ns/*; the init, root of the holder's user namespace, may open them too.
    It lives only through the runtime's create: no container process runs while it exists.
    """

    def __init__(self, userns: bool, uid_map: str, gid_map: str, no_dad: bool) -> None:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        unshare = libc.unshare
        up_r, up_w = os.pipe2(os.O_CLOEXEC)      # holder -> us
        down_r, down_w = os.pipe2(os.O_CLOEXEC)  # us -> holder
        flags = _CLONE_NEWNET | (_CLONE_NEWUSER if userns else 0)
        from rongqi.linux import forking

        pid = forking.fork()
        if pid == 0:  # the holder: only syscalls from here on, then _exit
            code = 0
            try:
                os.close(up_r)
                os.close(down_w)
                if unshare(flags) != 0:
                    os.write(up_w, b"e%d" % ctypes.get_errno())
                    os._exit(1)
                os.write(up_w, b"u")
                if os.read(down_r, 1) == b"m":   # the maps are written
                    old = b""
                    if no_dad:
                        # IPv6 duplicate address detection holds tap0's address back 1-2 s;
                        # off while slirp4netns makes it (as podman), then as it was.
                        with contextlib.suppress(OSError):
                            with open(_DAD, "rb") as f:
                                old = f.read().strip()
                            with open(_DAD, "wb") as f:
                                f.write(b"0")
                    os.write(up_w, b"r")
                    os.read(down_r, 1)           # released, or EOF: the monitor is gone
                    if old:
                        with contextlib.suppress(OSError), open(_DAD, "wb") as f:
                            f.write(old)
            except BaseException:  # noqa: BLE001 - nothing to report to but the exit code
                code = 1
            os._exit(code)
        os.close(up_w)
        os.close(down_r)
        self.pid = pid
        self._up = up_r
        self._down = down_w
        try:
            word = os.read(up_r, 16)
            if not word.startswith(b"u"):
                errno = int(word[1:] or b"0")
                raise _error(f"cannot make the container's network namespace: "
                             f"{os.strerror(errno) if errno else 'the holder died'}")
            if userns:
                _write_maps(pid, uid_map, gid_map)
            os.write(down_w, b"m")
            if os.read(up_r, 1) != b"r":
                raise _error("cannot make the container's network namespace: the holder died")
        except BaseException:
            self.release()
            raise

    def ns(self, kind: str) -> str:
        return f"/proc/{self.pid}/ns/{kind}"

    def release(self) -> None:
        """Let the holder go (the namespaces live on in the init and the tap) and reap it."""
        for fd in (self._down, self._up):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._down = self._up = -1
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


def _write_maps(pid: int, uid_map: str, gid_map: str) -> None:
    if os.geteuid() != 0:
        from rongqi.linux import idmap
        idmap.write_maps_unprivileged(pid, uid_map, gid_map)
        return
    for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


def _fmt_maps(maps: list[dict[str, Any]]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)


def link_path(run_dir: str, kind: str) -> str:
    return os.path.join(run_dir, NETNS_LINK if kind == "network" else USERNS_LINK)


class Prepared:
    """What before_create made: the holder, released once the runtime's create is done."""

    def __init__(self, holder: Holder, links: list[str]) -> None:
        self.holder = holder
        self.links = links

    def release(self) -> None:
        for link in self.links:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        self.holder.release()


def before_create(engine: Engine, c: Container) -> Prepared | None:
    """The monitor, before the runtime's create: namespaces held, slirp4netns or pasta up with
    the ports forwarded, the links config.json names pointing at the holder's namespaces."""
    from rongqi.engine import networks
    att = networks.load(c)
    if not att or att.get("mode") not in MODES:
        return None
    try:
        with open(os.path.join(c.bundle, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return None
    lin = spec.get("linux") or {}
    by_kind = {ns.get("type"): ns.get("path", "") for ns in lin.get("namespaces") or []}
    run_dir = c.run_dir
    net_link = link_path(run_dir, "network")
    if by_kind.get("network") != net_link:
        return None  # made before the links (the runtime's netns, set up after create)
    userns = by_kind.get("user") == link_path(run_dir, "user")
    mode = att["mode"]
    opts = att.get("options") or []
    slirp = slirp_options(opts) if mode == "slirp4netns" else None
    check_tun(mode)
    holder = Holder(userns, _fmt_maps(lin.get("uidMappings") or []),
                    _fmt_maps(lin.get("gidMappings") or []),
                    no_dad=bool(slirp and slirp["enable_ipv6"]))
    links = []
    try:
        os.makedirs(run_dir, 0o700, exist_ok=True)
        for kind, on in (("network", True), ("user", userns)):
            if on:
                link = link_path(run_dir, kind)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(link)
                os.symlink(holder.ns("net" if kind == "network" else "user"), link)
                links.append(link)
        user_path = holder.ns("user") if userns else ""
        if slirp is not None:
            start_slirp(c, att, slirp, netns=holder.ns("net"), userns=user_path)
        else:
            start_pasta(c, att, opts, netns=holder.ns("net"), userns=user_path)
    except BaseException:
        Prepared(holder, links).release()
        process_ended(c)
        raise
    return Prepared(holder, links)


# -- slirp4netns -----------------------------------------------------------------------------------
def _sock_path(cid: str) -> str:
    from rongqi.engine import networks
    # A short path (sun_path holds 108 bytes; run dirs under a test's tmp dir are longer).
    return os.path.join(networks.rundir(), "slirp", cid[:16] + ".sock")


def start_slirp(c: Container, att: dict[str, Any], o: dict[str, Any], *, netns: str = "",
                userns: str = "", pid: int = 0) -> None:
    """slirp4netns on the namespaces (by path, or a process's as `pid`), its ports added
    through its API socket; it ends when the exit pipe the monitor holds closes."""
    from rongqi.engine import networks
    binary = shutil.which("slirp4netns", path=_PATH_ENV)
    if binary is None:
        raise _error('could not find slirp4netns, the network namespace can\'t be configured: '
                     'exec: "slirp4netns": executable file not found in $PATH')
    ports = _assign_ports(att.get("ports") or [])  # refused before anything runs
    api = _sock_path(c.id)
    os.makedirs(os.path.dirname(api), 0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(api)
    argv = [binary, "--configure", f"--mtu={o['mtu']}", "--enable-seccomp"]
    if not o["allow_host_loopback"]:
        argv.append("--disable-host-loopback")
    if os.geteuid() == 0:
        # Its own mount namespace with nothing but what it needs, and capabilities dropped;
        # an ordinary user cannot make a mount namespace outside a user namespace of its own.
        argv.append("--enable-sandbox")
    if o["cidr"]:
        argv.append(f"--cidr={o['cidr']}")
    if o["enable_ipv6"]:
        argv.append("--enable-ipv6")
    for key in ("outbound_addr", "outbound_addr6"):
        if o[key]:
            argv.append(f"--{key.replace('_', '-')}={o[key]}")
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    argv += ["--api-socket", api, "--ready-fd", str(ready_w), "--exit-fd", str(exit_r)]
    if pid:
        argv += [str(pid), "tap0"]
    else:
        if userns:
            argv.append(f"--userns-path={userns}")
        argv += ["--netns-type=path", netns, "tap0"]
    try:
        proc = subprocess.Popen(argv, pass_fds=(ready_w, exit_r), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as err:
        for fd in (ready_r, ready_w, exit_r, exit_w):
            os.close(fd)
        raise _error(f"failed to start slirp4netns process: {err.strerror}") from None
    os.close(ready_w)
    os.close(exit_r)
    ok = os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    if not ok:
        text = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        os.close(exit_w)
        proc.wait()
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith("WARNING")]
        raise _error(f"slirp4netns failed: {'; '.join(lines[-3:]) if lines else 'no reason'}")
    if proc.stderr:
        proc.stderr.close()
    networks._slirp[c.id] = (proc.pid, exit_w)
    guest = slirp_addresses(o["cidr"])[0]
    for m in ports:
        _slirp_api(api, {"execute": "add_hostfwd", "arguments": {
            "proto": m["protocol"], "host_addr": m.get("host_ip") or "0.0.0.0",
            "host_port": int(m["host_port"]), "guest_addr": guest,
            "guest_port": int(m["container_port"])}})
    att.update(active=True, assigned_ports=ports, status={}, helper=_identity(proc.pid))
    networks.save(c, att)


def _assign_ports(mappings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each host port bound for a moment (the forwarder binds it next), so one in use or one
    the user may not bind is refused in podman's words before anything starts; -p 80 and -P
    get a free one."""
    out = []
    for m in mappings:
        m = dict(m)
        proto = m["protocol"]
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        ip = m.get("host_ip") or ""
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        port = int(m["host_port"])
        where = f"{ip or '0.0.0.0'}:{port}"
        s = socket.socket(fam, kind)
        try:
            s.bind((ip or "0.0.0.0", port))
            port = s.getsockname()[1]
        except OSError as err:
            why = f"listen {proto} {where}: bind: {(err.strerror or str(err)).lower()}"
            if err.errno == 13 and port < 1024:
                raise _error(f"rootlessport cannot expose privileged port {port}, you can "
                             f"add 'net.ipv4.ip_unprivileged_port_start={port}' to "
                             f"/etc/sysctl.conf (currently {_unprivileged_start()}), or "
                             f"choose a larger port number (>= 1024): {why}") from None
            raise _error(f"rootlessport {why}") from None
        finally:
            s.close()
        m["host_port"] = port
        out.append(m)
    return out


def _unprivileged_start() -> str:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return f.read().strip()
    except OSError:
        return "1024"


def _slirp_api(path: str, request: dict[str, Any]) -> dict[str, Any]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    doc = json.loads(data or b"{}")
    if "error" in doc:
        args = request.get("arguments") or {}
        e = doc["error"]
        desc = e.get("desc", "") if isinstance(e, dict) else str(e)
        raise _error(f"cannot expose port {args.get('host_port')}: {desc}")
    return doc


# -- pasta -----------------------------------------------------------------------------------------
def pasta_argv(binary: str, ports: list[dict[str, Any]], options: list[str], netns: str,
               userns: str, pid_file: str) -> list[str]:
    """podman's pasta command line (containers/common libnetwork/pasta): --config-net, a -t/-u
    per published port, nothing forwarded otherwise, the gateway not mapped to the host unless
    --map-gw; the user's options after ours."""
    argv = [binary, "--config-net"]
    for m in ports:
        addr = f"{m['host_ip']}/" if m.get("host_ip") else ""
        argv += ["-t" if m["protocol"] == "tcp" else "-u",
                 f"{addr}{m['host_port']}:{m['container_port']}"]
    extra = [o for o in options if o != "--map-gw"]
    argv += extra
    given = set(argv)
    for flag, long in (("-t", "--tcp-ports"), ("-u", "--udp-ports"), ("-T", "--tcp-ns"),
                       ("-U", "--udp-ns")):
        if flag not in given and long not in given:
            argv += [flag, "none"]
    if "--map-gw" not in options:
        argv.append("--no-map-gw")
    argv += ["--quiet", "--pid", pid_file]
    if os.geteuid() == 0:
        # Debian 12's pasta, run as root, changes to nobody and then cannot join the
        # namespaces ("Couldn't switch to pasta namespaces"); it keeps its own sandbox.
        argv += ["--runas", "0"]
    if userns:
        argv += ["--userns", userns]
    return argv + ["--netns", netns]


def start_pasta(c: Container, att: dict[str, Any], options: list[str], *, netns: str,
                userns: str) -> None:
    """pasta on the holder's namespaces: it forks into the background once the tap is up (its
    parent's exit is our ready signal); the monitor, a subreaper, inherits and reaps it."""
    from rongqi.engine import networks
    binary = shutil.which("pasta", path=_PATH_ENV)
    if binary is None:
        raise _error("could not find pasta, the network namespace can't be configured: "
                     'exec: "pasta": executable file not found in $PATH')
    ports = _assign_ports(att.get("ports") or [])
    pid_file = os.path.join(c.run_dir, "pasta.pid")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_file)
    # As inherited fds: run as root, pasta drops to nobody before it opens the namespaces,
    # and nobody may not open root's /proc/PID/ns/*; its own /proc/self/fd it may.
    fds = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p in (netns, userns) if p]
    try:
        argv = pasta_argv(binary, ports, options, f"/proc/self/fd/{fds[0]}",
                          f"/proc/self/fd/{fds[1]}" if userns else "", pid_file)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, check=False, pass_fds=fds)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise _error(f"failed to start pasta: {err}") from None
    finally:
        for fd in fds:
            os.close(fd)
    out = r.stdout.decode(errors="replace")
    lines = [ln for ln in out.splitlines() if ln.strip() and "to syslog" not in ln]
    if r.returncode != 0:
        raise _error(f"pasta failed with exit code {r.returncode}: "
                     f"{'; '.join(lines[-3:]) if lines else 'no reason'}")
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        raise _error("pasta started but wrote no pid file") from None
    pidfd = os.pidfd_open(pid)
    networks._slirp[c.id] = (pid, pidfd)
    att.update(active=True, assigned_ports=ports, status={}, helper=_identity(pid))
    networks.save(c, att)


# -- the end ---------------------------------------------------------------------------------------
def _identity(pid: int) -> dict[str, Any]:
    """Enough to know a pid is still the helper we started (pids are reused)."""
    return {"pid": pid, "start": _start_time(pid)}


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_ended(c: Container) -> None:
    """The run ended (or never started): slirp4netns told to go by closing its exit pipe,
    pasta sent SIGTERM through its pidfd; the monitor's wait loop reaps either."""
    from rongqi.engine import networks
    entry = networks._slirp.pop(c.id, None)
    att = networks.load(c)
    if entry is not None:
        _, fd = entry
        if att and att.get("mode") == "pasta":
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(_sock_path(c.id))
    if att and att.get("mode") in MODES and (att.get("active") or att.get("helper")):
        att.update(active=False, assigned_ports=[])
        att.pop("helper", None)
        networks.save(c, att)


def teardown(c: Container, att: dict[str, Any]) -> None:
    """After a monitor was killed (the next command's cleanup): slirp4netns went with the
    monitor's end of its exit pipe, pasta has no such pipe and is stopped here, if the pid is
    still the process we started."""
    from rongqi.engine import networks
    helper = att.get("helper") or {}
    pid = int(helper.get("pid") or 0)
    if att.get("mode") == "pasta" and pid and helper.get("start") and \
            _start_time(pid) == helper["start"]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(OSError):
        os.unlink(_sock_path(c.id))
    for name in (NETNS_LINK, USERNS_LINK, "pasta.pid"):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(c.run_dir, name))
    if att.get("active") or helper:
        att.update(active=False, assigned_ports=[])
        att.pop("helper", None)
        networks.save(c, att)


def resolv_with_slirp_dns(text: str, options: list[str] | None) -> str:
    """resolv.conf with slirp4netns' DNS forwarder (.3 of its cidr) as the first nameserver."""
    cidr = slirp_options(options or [])["cidr"]
    line = f"nameserver {slirp_addresses(cidr)[2]}\n"
    lines = text.splitlines(keepends=True)
    at = next((i for i, ln in enumerate(lines) if ln.startswith(("nameserver", "options"))),
              len(lines))
    return "".join(lines[:at]) + line + "".join(lines[at:])


def hosts_for_slirp(text: str, options: list[str] | None, rootless: bool) -> str:
    """/etc/hosts as podman 4 writes it for slirp4netns: the container's names on its tap
    address (.100); for an ordinary user host.containers.internal on the host's first
    non-loopback address (podman's util.GetLocalIP), for root none (no bridge gateway)."""
    o = slirp_options(options or [])
    lines = text.splitlines()
    own = []
    if lines and lines[-1].startswith("127.0.0.1\t"):
        own = [slirp_addresses(o["cidr"])[0] + lines.pop()[len("127.0.0.1"):]]
    host = host_ipv4() if rootless else ""
    if host:
        lines.append(f"{host}\thost.containers.internal")   # before the names, as podman's
    return "\n".join(lines + own) + "\n"


def host_ipv4() -> str:
    """The first IPv4 address of the host's interfaces but lo (SIOCGIFADDR: nothing is sent)."""
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                req = struct.pack("256s", name.encode()[:15])
                addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])
            except OSError:
                continue
            if not addr.startswith("127."):
                return addr
    return ""
