"""Image config + ContainerOptions -> the OCI config.json of one container, as podman 4 makes it:
its defaults, users from the image's /etc/passwd and /etc/group, /etc/hosts, /etc/hostname and
/etc/resolv.conf in userdata, mounts and volumes, resources, security and namespaces.

Pure where it can be: the spec is computed from values; the side effects (files in userdata,
the -w directory, volumes made and copied up) happen in build() after every check passed, and
what build() made is undone if it fails.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import signal as _signal
import stat
TYPE_CHECKING = False  # typing is not imported on run's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

from rongqi.engine.options import ContainerOptions, Healthcheck, IdMap, MountSpec
from rongqi.errors import RongqiError
from rongqi.values import asdict, dataclass, field

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PIDS_LIMIT = 2048          # podman's containers.conf default
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
DEFAULT_RLIMIT = 1048576           # podman's nofile and nproc, lowered to what the host allows
CPU_PERIOD = 100000
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
AUTO_USER = "containers"           # podman's --userns auto takes its ids from this user's ranges
AUTO_MIN_SIZE = 1024
INIT_PATH = "/run/rongqi-init"     # podman's is /run/podman-init
INIT_CANDIDATES = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit", "/usr/bin/tini-static",
                   "/sbin/tini-static")

# podman's masked and read-only paths (containers/common pkg/config).
MASKED_PATHS = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/fs/selinux", "/sys/dev/block"]
READONLY_PATHS = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                  "/proc/sysrq-trigger"]
# Namespaced sysctls a container may set (docker's and podman's rule); net.* only with its
# own network namespace, kernel.* IPC ones only with its own IPC namespace.
# --network values that are networks.mode_of's own mode (no network rongqi sets up; with
# container:NAME and ns:PATH): bundle and start leave engine/networks.py unimported for them.
NO_ENGINE_NETWORK = ("none", "private", "host")
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


class BundleError(RongqiError):
    """A container that cannot be made as asked; str() is podman's wording."""

    exit_code = 125


@dataclass
class BundleInput:
    container_id: str
    name: str
    opts: ContainerOptions
    image_config: dict[str, Any]         # the whole OCI image config JSON
    rootfs: str                          # the snapshot's mounted root
    userdata: str                        # ROOT/containers/ID/userdata
    volumes: Any                         # engine.volumes.VolumeStore
    rootless: bool = False
    # For --network container:NAME and --userns auto: .get(ref) -> Container, .list(all=True).
    engine: Any = None


@dataclass
class BundleOutput:
    spec: dict[str, Any]                 # config.json
    command: list[str]                   # entrypoint + cmd, as run
    opts: ContainerOptions               # with the image's defaults filled in
    named_volumes: list[str]             # every volume the container mounts (named and anonymous)
    anonymous_volumes: list[str]         # the subset `rm -v` removes
    mounts: list[dict[str, Any]]         # podman inspect's Mounts
    warnings: list[str] = field(default_factory=list)   # podman prints these as WARN lines


@dataclass
class User:
    uid: int
    gid: int
    home: str
    additional_gids: list[int]
    name: str = ""


# -- paths inside the image's root -----------------------------------------------------------
def resolve_in_root(root: str, path: str, *, follow_last: bool = True) -> str:
    """The host path of `path` seen from inside root: symlinks are followed as the container
    would see them, never out of root (an absolute link restarts at root, ".." stops there)."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if (parts or follow_last) and os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise BundleError(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _read_image_file(rootfs: str, path: str) -> str:
    """A regular file of the image, or "": an image's /etc/passwd may be a fifo (open would
    block) or a device node (reading it would read the host's device)."""
    try:
        fd = os.open(resolve_in_root(rootfs, path),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return f.read(4 << 20).decode(errors="replace")


def _entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def resolve_user(rootfs: str, user: str, group_add: list[str]) -> User:
    """podman's rules for -u and --group-add, looked up in the image's /etc/passwd and
    /etc/group: names must exist there, numbers need not."""
    passwd = _entries(_read_image_file(rootfs, "/etc/passwd"))
    groups = _entries(_read_image_file(rootfs, "/etc/group"))
    name_part, _, group_part = (user or "0").partition(":")
    entry = None
    if name_part.isdigit():
        uid = int(name_part)
        entry = next((e for e in passwd if len(e) >= 4 and e[2] == name_part), None)
    else:
        entry = next((e for e in passwd if len(e) >= 4 and e[0] == name_part), None)
        if entry is None:
            raise BundleError(f"unable to find user {name_part}: no matching entries in "
                              "passwd file")
        uid = _int_or(entry[2], 0)
    gid = _int_or(entry[3], 0) if entry else 0
    home = entry[5] if entry and len(entry) >= 6 and entry[5] else "/"
    username = entry[0] if entry else ""
    if group_part:
        gid = _group_id(groups, group_part, "unable to find group {}: no matching entries in "
                        "group file")
    extra: list[int] = []
    if not group_part and username:
        # Supplementary groups listing the user, as runc and podman compute them.
        extra = [_int_or(g[2], 0) for g in groups
                 if len(g) >= 4 and username in g[3].split(",") and g[2].isdigit()]
    for g in group_add:
        if g == "keep-groups":
            continue
        extra.append(_group_id(groups, g, "looking up supplemental groups: Unable to find "
                               "group {}: no matching entries in group file"))
    additional: list[int] = []
    for g in ([gid] if extra or group_add else []) + extra:
        if g not in additional:
            additional.append(g)
    return User(uid, gid, home, additional, username)


def _add_user_entries(rootfs: str, user: User, userdata: str, mounts: list[dict[str, Any]],
                      read_only: bool, user_dests: set[str]) -> None:
    """-u UID[:GID] without entries in the image: podman's `UID:*:UID:GID:container user:/:
    /bin/sh` line in /etc/passwd and `GID:x:GID:UID` in /etc/group, so `id -un` and `whoami`
    answer. Appended to the container's own copy (its snapshot), or with --read-only written
    to userdata and bound over the image's file. Only where the image has the file."""
    wanted = []
    passwd = _read_image_file(rootfs, "/etc/passwd")
    if passwd and not any(len(e) >= 3 and e[2] == str(user.uid) for e in _entries(passwd)):
        wanted.append(("passwd", passwd, f"{user.uid}:*:{user.uid}:{user.gid}:container user:"
                                        f"{user.home}:/bin/sh\n"))
    group = _read_image_file(rootfs, "/etc/group")
    if group and not any(len(e) >= 3 and e[2] == str(user.gid) for e in _entries(group)):
        wanted.append(("group", group, f"{user.gid}:x:{user.gid}:{user.uid}\n"))
    for name, text, line in wanted:
        dest = f"/etc/{name}"
        if dest in user_dests:
            continue
        body = text + ("" if text.endswith("\n") else "\n") + line
        if read_only:
            path = os.path.join(userdata, name)
            with open(path, "w") as f:
                f.write(body)
            os.chmod(path, 0o644)
            mounts.append({"destination": dest, "type": "bind", "source": path,
                           "options": ["bind", "rprivate", "ro", "nosuid", "noexec", "nodev"]})
            continue
        target = resolve_in_root(rootfs, dest)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK |
                     os.O_CLOEXEC)
        with os.fdopen(fd, "w") as f:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                f.write(body[len(text):])


def _group_id(groups: list[list[str]], ref: str, msg: str) -> int:
    if ref.isdigit():
        return int(ref)
    for g in groups:
        if len(g) >= 3 and g[0] == ref:
            return _int_or(g[2], 0)
    raise BundleError(msg.format(ref))


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


# -- the command ----------------------------------------------------------------------------
def command_of(opts: ContainerOptions, cfg: dict[str, Any]) -> list[str]:
    """podman's makeCommand: the entrypoint (the user's, or the image's), then the command
    (the user's; the image's Cmd only when the user gave no entrypoint)."""
    entrypoint = opts.entrypoint if opts.entrypoint is not None else list(cfg.get("Entrypoint")
                                                                          or [])
    if entrypoint == [""]:
        entrypoint = []
    command = list(opts.command)
    if not command and opts.entrypoint is None:
        command = list(cfg.get("Cmd") or [])
    final = entrypoint + command
    if not final:
        raise BundleError("no command or entrypoint provided, and no CMD or ENTRYPOINT from "
                          "image")
    return final


# -- size and signal helpers ------------------------------------------------------------------
def signal_number(name: str) -> int:
    """"SIGTERM", "TERM", "15", "RTMIN+3" -> the number; podman's "invalid signal: X" else."""
    text = name.strip().upper()
    if text.isdigit():
        n = int(text)
        if 0 < n < 65:
            return n
        raise BundleError(f"invalid signal: {name}")
    text = text.removeprefix("SIG")
    if text.startswith("RTMIN") or text.startswith("RTMAX"):
        base = _signal.SIGRTMIN if text.startswith("RTMIN") else _signal.SIGRTMAX
        rest = text[5:]
        try:
            off = int(rest) if rest else 0
        except ValueError:
            raise BundleError(f"invalid signal: {name}") from None
        n = base + off
        if _signal.SIGRTMIN <= n <= _signal.SIGRTMAX:
            return int(n)
        raise BundleError(f"invalid signal: {name}")
    try:
        return int(getattr(_signal.Signals, "SIG" + text))
    except AttributeError:
        raise BundleError(f"invalid signal: {name}") from None


def _go_duration_ns(value: Any) -> float:
    """The image's Healthcheck durations are nanoseconds."""
    try:
        return float(value) / 1e9
    except (TypeError, ValueError):
        return 0.0


# -- hosts, hostname, resolv.conf -------------------------------------------------------------
def hosts_file(opts: ContainerOptions, hostname: str, name: str, *, base: str) -> str:
    """podman's /etc/hosts: --add-host entries, the host's file, then the container's own
    names (on 127.0.0.1 without a network of its own)."""
    lines = []
    for entry in opts.add_host:
        host, _, ip = entry.partition(":")
        # "name:ip" where ip may be IPv6 ("h:::1" or "h:[::1]")
        lines.append(f"{ip.strip('[]')}\t{host}")
    if base:
        lines.extend(line for line in base.splitlines() if line.strip())
    else:
        lines += ["127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4",
                  "::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6"]
    if opts.network != "host":
        names = " ".join(dict.fromkeys(n for n in (hostname, name) if n))
        lines.append(f"{opts.ip or '127.0.0.1'}\t{names}")
    return "\n".join(lines) + "\n"


def resolv_conf(opts: ContainerOptions, host_text: str) -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from a container's
    own network namespace), with --dns, --dns-search and --dns-option replacing their kind."""
    servers, search, options, other = [], [], [], []
    for line in host_text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options.extend(words[1:])
        else:
            other.append(line)
    if opts.network != "host":
        servers = [s for s in servers if not _loopback(s)]
    if opts.dns:
        servers = list(opts.dns)
    if opts.dns_search:
        search = [] if opts.dns_search == ["."] else list(opts.dns_search)
    if opts.dns_option:
        options = list(opts.dns_option)
    out = []
    if search:
        out.append("search " + " ".join(search))
    out += [f"nameserver {s}" for s in servers]
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + ("\n" if out else "")


def _loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr in ("::1", "0:0:0:0:0:0:0:1")


# -- seccomp files ------------------------------------------------------------------------------
def seccomp_from_file(path: str, caps: list[str]) -> dict[str, Any]:
    """A seccomp profile file (docker's format with archMap/includes, or OCI's) -> OCI JSON
    for this machine and these capabilities."""
    try:
        with open(path) as f:
            prof = json.load(f)
    except FileNotFoundError:
        raise BundleError(f"opening seccomp profile failed: open {path}: no such file or "
                          "directory") from None
    except (OSError, ValueError) as e:
        raise BundleError(f"loading seccomp profile ({path}) failed: {e}") from None
    if not isinstance(prof, dict) or "defaultAction" not in prof:
        raise BundleError(f"loading seccomp profile ({path}) failed: no defaultAction")
    from rongqi.oci import profile as p
    machine = os.uname().machine
    goarch, arches = p._ARCHES.get(machine, (machine, ()))
    held = set(caps)
    kver = p._kernel_version(os.uname().release)
    out: dict[str, Any] = {"defaultAction": prof["defaultAction"]}
    if "defaultErrnoRet" in prof:
        out["defaultErrnoRet"] = prof["defaultErrnoRet"]
    if prof.get("archMap"):
        wanted = set(arches)
        out["architectures"] = [a for m in prof["archMap"]
                                if m.get("architecture") in wanted
                                for a in [m["architecture"], *(m.get("subArchitectures") or [])]]
    else:
        out["architectures"] = list(prof.get("architectures") or [])
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if key in prof:
            out[key] = prof[key]
    rules = []
    for rule in prof.get("syscalls") or []:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        cond: dict[str, Any] = {}
        if inc.get("caps"):
            cond["caps"] = inc["caps"]
        if inc.get("arches"):
            cond["arches"] = inc["arches"]
        if inc.get("minKernel"):
            cond["min_kernel"] = p._kernel_version(inc["minKernel"])
        if exc.get("caps"):
            cond["not_caps"] = exc["caps"]
        if exc.get("arches"):
            cond["not_arches"] = exc["arches"]
        if not p._applies(cond, goarch, held, kver):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        r = {"names": names, "action": rule.get("action", "SCMP_ACT_ALLOW")}
        for key in ("args", "errnoRet"):
            if rule.get(key) is not None:
                r[key] = rule[key]
        rules.append(r)
    out["syscalls"] = rules
    return out


# -- capabilities -------------------------------------------------------------------------------
def _cap_name(text: str) -> str:
    name = text.strip().upper()
    if name == "ALL":
        return name
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    from rongqi.linux.caps import CAPABILITIES
    if name not in CAPABILITIES:
        raise BundleError(f'"{name}": unknown capability')
    return name


def _own_bounding_set(names: Any) -> set[str]:
    """The capabilities in this process's bounding set (all of them if it cannot be read)."""
    try:
        with open("/proc/self/status") as f:
            mask = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return set(names)
    return {n for n, bit in dict(names).items() if mask >> bit & 1}


def capabilities(opts: ContainerOptions, uid: int) -> dict[str, list[str]]:
    """podman's sets: the default (docker's) list or all of them with --privileged, then
    --cap-drop, then --cap-add (ALL in either); a non-root user keeps only the bounding set,
    plus what --cap-add named in every set (podman 4 puts those in the ambient set)."""
    from rongqi.linux.caps import CAPABILITIES
    from rongqi.oci.profile import DEFAULT_CAPABILITIES
    # --privileged and ALL: every capability this process can still give (podman's
    # BoundingSet()), not ones its bounding set lost (CAP_SYS_RESOURCE on some hosts), which
    # the runtime could only drop with a warning on every such run
    every = [c for c in CAPABILITIES if c in _own_bounding_set(CAPABILITIES)]
    adds = [_cap_name(c) for c in opts.cap_add]
    drops = [_cap_name(c) for c in opts.cap_drop]
    caps = list(every) if opts.privileged else list(DEFAULT_CAPABILITIES)
    if "ALL" in drops:
        caps = []
    else:
        caps = [c for c in caps if c not in drops]
    add_all = "ALL" in adds
    if add_all:
        caps = list(every)
        adds = [c for c in adds if c != "ALL"]
    for c in adds:
        if c not in caps:
            caps.append(c)
    if uid == 0:
        return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}
    ambient = [c for c in adds if c in caps] if not add_all else list(caps)
    out = {"bounding": list(caps)}
    if ambient:
        out.update(effective=list(ambient), permitted=list(ambient),
                   inheritable=list(ambient), ambient=list(ambient))
    return out


# -- id mappings ----------------------------------------------------------------------------
def _maps(m: list[IdMap]) -> list[dict[str, int]]:
    return [{"containerID": x.container_id, "hostID": x.host_id, "size": x.size} for x in m]


def _rootless_ranges(kind_path: str, own: int) -> list[tuple[int, int]]:
    import pwd
    try:
        name = pwd.getpwuid(own).pw_name
    except KeyError:
        name = str(own)
    from rongqi.linux.idmap import subordinate_ranges
    return subordinate_ranges(kind_path, name, own)


def _rootless_default(own: int, path: str) -> list[IdMap]:
    """podman's rootless namespace: root is the user, 1.. are the user's subordinate ids."""
    out = [IdMap(0, own, 1)]
    next_id = 1
    for start, count in _rootless_ranges(path, own):
        out.append(IdMap(next_id, start, count))
        next_id += count
    return out


def _to_host(maps: list[IdMap], parent: list[IdMap]) -> list[IdMap]:
    """--uidmap of a rootless user names ids of their own namespace (0 = themselves, 1.. their
    subordinate ids); the spec needs host ids. Each range is split where the parent's are."""
    out = []
    for m in maps:
        cid, hid, size = m.container_id, m.host_id, m.size
        while size > 0:
            p = next((p for p in parent if p.container_id <= hid < p.container_id + p.size),
                     None)
            if p is None:
                raise BundleError(f"initializing ID mappings: ID {hid} is not mapped in the "
                                  "rootless user namespace")
            n = min(size, p.container_id + p.size - hid)
            out.append(IdMap(cid, p.host_id + hid - p.container_id, n))
            cid, hid, size = cid + n, hid + n, size - n
    return out


def keep_id_maps(own: int, parent: list[IdMap]) -> list[IdMap]:
    """podman's keep-id: the user is the same id inside, the rest of their ids fill the gap
    below and the space above it."""
    sub = sum(p.size for p in parent) - 1
    inner = [IdMap(0, 1, min(own, sub))]
    if sub > own:
        inner.append(IdMap(own + 1, own + 1, sub - own))
    inner.insert(1, IdMap(own, 0, 1))
    return _to_host([m for m in inner if m.size > 0], parent)


def auto_maps(size: int, taken: list[tuple[int, int]], path: str) -> list[IdMap]:
    """--userns auto: the first free block of `size` ids in AUTO_USER's subordinate ranges,
    free meaning no other container's mappings use it."""
    from rongqi.linux.idmap import subordinate_ranges
    ranges = subordinate_ranges(path, AUTO_USER, -1)
    if not ranges:
        raise BundleError(f'cannot find mappings for user "{AUTO_USER}": no subuid ranges '
                          f'found for user "{AUTO_USER}" in {path}')
    for start, count in ranges:
        lo = start
        while lo + size <= start + count:
            clash = next(((a, n) for a, n in taken if a < lo + size and lo < a + n), None)
            if clash is None:
                return [IdMap(0, lo, size)]
            lo = clash[0] + clash[1]
    raise BundleError("creating container storage: could not find enough available IDs")


def _max_image_id(rootfs: str) -> int:
    top = 0
    for path, col in (("/etc/passwd", (2, 3)), ("/etc/group", (2,))):
        for e in _entries(_read_image_file(rootfs, path)):
            for c in col:
                if len(e) > c and e[c].isdigit() and int(e[c]) < 65534:
                    top = max(top, int(e[c]))
    return top


def _taken_ranges(engine: Any, own_id: str) -> list[tuple[int, int]]:
    out = []
    if engine is None:
        return out
    for c in engine.list(all=True):
        if c.id == own_id:
            continue
        for m in ((c.config.get("options") or {}).get("uidmap") or []):
            out.append((int(m["host_id"]), int(m["size"])))
    return out


def _parse_auto(value: str) -> dict[str, str]:
    out = {}
    for item in value.split(":", 1)[1].split(",") if ":" in value else []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


# -- the build ------------------------------------------------------------------------------
_TMPFS_DEFAULT = ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]
_BIND_OPTIONS = {"ro", "rw", "z", "Z", "bind", "rbind", "shared", "rshared", "slave", "rslave",
                 "private", "rprivate", "unbindable", "runbindable", "nosuid", "suid", "nodev",
                 "dev", "noexec", "exec", "U", "copy", "nocopy", "idmap", "O", "noatime",
                 "atime", "relatime", "norelatime", "strictatime", "nostrictatime"}


class _Plan:
    """What build() will make once every check passed, and what it made (for the undo)."""

    def __init__(self) -> None:
        self.created_volumes: list[str] = []
        self.created_paths: list[str] = []


def build(inp: BundleInput) -> BundleOutput:
    """The container's config.json and the records core keeps; writes userdata's files, makes
    and copies up volumes, creates the -w directory. On error nothing it made is left."""
    plan = _Plan()
    try:
        return _build(inp, plan)
    except BaseException:
        for name in plan.created_volumes:
            try:
                inp.volumes.remove(name, force=True)
            except RongqiError:
                pass
        for path in reversed(plan.created_paths):
            try:
                os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) \
                    else os.unlink(path)
            except OSError:
                pass
        raise


def _build(inp: BundleInput, plan: _Plan) -> BundleOutput:
    opts = copy.deepcopy(inp.opts)
    cfg = (inp.image_config or {}).get("config") or {}
    warnings: list[str] = []
    command = command_of(opts, cfg)

    # -- identity and environment --------------------------------------------------------------
    if not opts.user:
        opts.user = cfg.get("User") or ""
    user = resolve_user(inp.rootfs, opts.user, opts.group_add)
    if not opts.workdir:
        opts.workdir = cfg.get("WorkingDir") or "/"
    if not opts.workdir.startswith("/"):
        raise BundleError(f'workdir "{opts.workdir}" must be absolute')
    if opts.network == "host" and not opts.hostname:
        hostname = os.uname().nodename
    else:
        hostname = opts.hostname or inp.container_id[:12]
    env: dict[str, str] = {}
    if opts.env_host:
        env.update(os.environ)
    for item in cfg.get("Env") or []:
        k, _, v = item.partition("=")
        env[k] = v
    env.update(opts.env)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("TERM", "xterm")
    env.setdefault("container", "rongqi")
    env.setdefault("HOME", user.home if user.home else "/")
    env.setdefault("HOSTNAME", hostname)
    opts.env = env
    if not opts.stop_signal:
        opts.stop_signal = cfg.get("StopSignal") or "SIGTERM"
    stop_signal = signal_number(opts.stop_signal)
    if opts.stop_timeout is None:
        opts.stop_timeout = 10
    if opts.no_healthcheck or (opts.healthcheck is not None
                               and opts.healthcheck.test[:1] == ["NONE"]):
        opts.healthcheck = None     # --health-cmd none disables the image's check too
        opts.no_healthcheck = True
    elif opts.healthcheck is None and cfg.get("Healthcheck"):
        hc = cfg["Healthcheck"]
        test = list(hc.get("Test") or [])
        if test and test != ["NONE"]:
            opts.healthcheck = Healthcheck(
                test=test, interval=_go_duration_ns(hc.get("Interval")) or 30.0,
                timeout=_go_duration_ns(hc.get("Timeout")) or 30.0,
                retries=int(hc.get("Retries") or 3),
                start_period=_go_duration_ns(hc.get("StartPeriod")))
    labels = dict(cfg.get("Labels") or {})
    labels.update(opts.labels)
    opts.labels = labels
    exposed = sorted(set((cfg.get("ExposedPorts") or {}).keys())
                     | {p if "/" in p else p + "/tcp" for p in opts.expose})

    # -- namespaces ------------------------------------------------------------------------------
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    sysctls: dict[str, str] = {}
    # Networks (engine/networks.py): bridge ones get a netns rongqi makes at start (its path
    # fixed now); slirp4netns (rootless) plugs into the netns the runtime makes.
    net = opts.network or ""
    if net in NO_ENGINE_NETWORK or net.startswith(("container:", "ns:")):
        networks = None  # no network of ours: engine/networks.py (netavark's) is not needed
    else:
        from rongqi.engine import networks
        net, _ = networks.mode_of(opts.network, inp.rootless)
    if net == "slirp4netns" and not opts.network and not networks.tun_usable():
        warnings.append("slirp4netns cannot open /dev/net/tun (its mode leaves it to root): "
                        "the container gets no network, as with --network none")
        net = "none"
        opts.network = "none"
    root = getattr(inp.engine, "root", None)
    usernet = net in ("slirp4netns", "pasta")
    net_plan = networks.plan(inp.engine, root, inp.container_id, inp.name, opts,
                             inp.rootless, exposed) \
        if networks is not None and (net == "bridge" or usernet) else None
    # slirp4netns/pasta: the monitor holds the namespaces before the runtime's create and
    # points these links at them (networks_rootless.Holder says why).
    run_dir = os.path.join(inp.engine.runroot, inp.container_id) \
        if usernet and getattr(inp.engine, "runroot", None) else ""
    if net.startswith("container:"):
        namespaces.append({"type": "network", "path": _container_netns(inp, net[10:])})
    elif usernet and run_dir:
        from rongqi.engine import networks_rootless
        namespaces.append({"type": "network",
                           "path": networks_rootless.link_path(run_dir, "network")})
        sysctls["net.ipv4.ping_group_range"] = "0 0"
    elif net in ("none", "private") or usernet:
        namespaces.append({"type": "network"})
        sysctls["net.ipv4.ping_group_range"] = "0 0"
    elif net == "bridge":
        namespaces.append({"type": "network", "path": net_plan["netns"] if net_plan else ""})
        sysctls["net.ipv4.ping_group_range"] = "0 0"
    elif net != "host":
        raise BundleError(f'network "{net}" is not supported')
    if net != "bridge" and not usernet:
        # podman's rules for what only a network of the container's own can have.
        mode_name = "container" if net.startswith("container:") else net
        if net != "host" and (opts.dns or opts.dns_search or opts.dns_option):
            raise BundleError(f"conflicting options: dns and the network mode: {mode_name}")
        for flag, value in (("--ip", opts.ip), ("--mac-address", opts.mac_address),
                            ("--network-alias", opts.network_aliases)):
            if value:
                raise BundleError(f"{flag} can only be set when the network mode is bridge: "
                                  "invalid argument")
        if opts.publish or opts.publish_all:
            warnings.append("Port mappings have been discarded as one of the Host, Container, "
                            "Pod, and None network modes are in use")
    from rongqi.linux import cgroups
    try:
        unified = cgroups.detect_mode() == "v2"
    except RongqiError:
        unified = False
    if unified:
        namespaces.append({"type": "cgroup"})
    for k, v in opts.sysctls.items():
        if k.startswith("net."):
            if net == "host":
                raise BundleError(f"sysctl '{k}' is not allowed in the hosts network namespace")
        elif k not in _IPC_SYSCTLS and not k.startswith("fs.mqueue."):
            raise BundleError(f"sysctl '{k}' is not allowed")
        sysctls[k] = v

    # -- users namespaces ------------------------------------------------------------------------
    uidmap, gidmap = list(opts.uidmap), list(opts.gidmap or opts.uidmap)
    mode = opts.userns or ""
    own_uid, own_gid = os.geteuid(), os.getegid()
    if mode.startswith("auto"):
        if inp.rootless:
            raise BundleError("auto user namespaces are only supported for root (the ids "
                              f"come from {AUTO_USER}'s ranges)")
        params = _parse_auto(mode)
        size = int(params["size"]) if params.get("size", "").isdigit() else \
            max(AUTO_MIN_SIZE, _max_image_id(inp.rootfs) + 1)
        uidmap = auto_maps(size, _taken_ranges(inp.engine, inp.container_id), SUBUID)
        gidmap = [IdMap(0, uidmap[0].host_id, size)]
    elif mode == "keep-id":
        if not inp.rootless:
            raise BundleError("keep-id is only supported in rootless mode")
        uidmap = keep_id_maps(own_uid, _rootless_default(own_uid, SUBUID))
        gidmap = keep_id_maps(own_gid, _rootless_default(own_gid, SUBGID))
        if not opts.user:
            opts.user = f"{own_uid}:{own_gid}"
            user = resolve_user(inp.rootfs, opts.user, opts.group_add)
            opts.env["HOME"] = inp.opts.env.get("HOME") or user.home
    elif mode not in ("", "host", "private"):
        raise BundleError(f"unrecognized namespace mode {mode} passed")
    elif inp.rootless:
        parent_u = _rootless_default(own_uid, SUBUID)
        parent_g = _rootless_default(own_gid, SUBGID)
        uidmap = _to_host(uidmap, parent_u) if uidmap else parent_u
        gidmap = _to_host(gidmap, parent_g) if gidmap else parent_g
    opts.uidmap, opts.gidmap = uidmap, gidmap
    userns = bool(uidmap)
    if userns:
        if run_dir and inp.rootless:
            from rongqi.engine import networks_rootless
            namespaces.append({"type": "user",
                               "path": networks_rootless.link_path(run_dir, "user")})
        else:
            namespaces.append({"type": "user"})
            if run_dir:
                # Root's run dir is out of reach of an init whose root is another host id:
                # the runtime makes the netns, the monitor plugs the stack in after create.
                for ns in namespaces:
                    if ns["type"] == "network":
                        ns.pop("path", None)
        if net_plan and net == "bridge":
            # A netns made on the host cannot be joined from inside a new user namespace:
            # the runtime makes it, and the monitor plugs it in between create and start.
            for ns in namespaces:
                if ns["type"] == "network":
                    ns.pop("path", None)
            net_plan["late"] = True

    def to_host(uid: int, gid: int) -> tuple[int, int]:
        return _map_id(uidmap, uid), _map_id(gidmap, gid)

    def give(path: str, uid: int, gid: int) -> None:
        """chown to the host ids of a container user; an ordinary user can give only their
        own ids (the rest of their range belongs to their namespace, not to them here)."""
        host = to_host(uid, gid)
        if (inp.rootless or own_uid != 0) and host != (own_uid, own_gid):
            return
        if host != (os.stat(path).st_uid, os.stat(path).st_gid):
            os.chown(path, *host)

    if userns and not inp.rootless and to_host(0, 0) != (0, 0):
        # The image's files belong to host root; in a namespace whose root is another host id
        # they would be nobody's. Their owners are shifted in the container's own snapshot
        # (its upper dir takes the copies), as podman's storage chowns a layer for a mapping.
        shift_owners(inp.rootfs, to_host)
        # The runtime mounts the root, userdata's files and volumes with the mapped root's
        # credentials: every directory above them must let it pass (containers/storage's 0711).
        _searchable(inp.rootfs)
        os.makedirs(inp.userdata, mode=0o700, exist_ok=True)
        _searchable(inp.userdata)

    # -- mounts ----------------------------------------------------------------------------------
    # The same mount given twice is one (podman's 160-volumes "volume duplicates": -v A:/x
    # -v A:/x runs); two different ones on one destination are an error.
    user_mounts = []
    for m in opts.mounts:
        if m not in user_mounts:
            user_mounts.append(m)
    dests = [os.path.normpath(m.destination) for m in user_mounts]
    for d in dests:
        if dests.count(d) > 1:
            raise BundleError(f"{d}: duplicate mount destination")
    for m in user_mounts:
        if m.kind == "bind":
            if not os.path.exists(m.source):
                raise BundleError(f"statfs {m.source}: no such file or directory")
        elif m.kind not in ("volume", "tmpfs"):
            raise BundleError(f'invalid filesystem type "{m.kind}"')
        for o in m.options:
            if o == "O":
                raise BundleError("overlay volumes (:O) are not supported")
    # The image's Volumes not covered by the user's mounts become anonymous volumes.
    image_volumes = [v for v in sorted((cfg.get("Volumes") or {}).keys())
                     if os.path.normpath(v) not in dests]
    for v in image_volumes:
        user_mounts.append(MountSpec(kind="volume", destination=v))
    if opts.read_only and opts.read_only_tmpfs:
        for d in ("/tmp", "/var/tmp", "/run"):
            if d not in dests:
                user_mounts.append(MountSpec(kind="tmpfs", destination=d))
    devices, device_rules = _devices(opts)
    seccomp_caps = capabilities(opts, user.uid)

    # Every check passed: make what the container needs.
    mounts_spec: list[dict[str, Any]] = []
    inspect_mounts: list[dict[str, Any]] = []
    named: list[str] = []
    anonymous: list[str] = []
    for m in user_mounts:
        dest = os.path.normpath(m.destination)
        ro = m.readonly or "ro" in m.options
        if m.kind == "tmpfs":
            extra = [o for o in m.options if o not in ("rw", "ro")]
            opts_list = list(_TMPFS_DEFAULT) + (["ro"] if ro else [])
            for o in extra:
                if o == "notmpcopyup":
                    opts_list.remove("tmpcopyup")
                elif o not in opts_list:
                    opts_list.append(o)
            if "ro" in opts_list:
                opts_list.remove("rw")
            mounts_spec.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                                "options": opts_list})
            continue
        bind_opts = _bind_options(m.options, ro)
        if m.kind == "bind":
            source = os.path.realpath(m.source)
            mounts_spec.append({"destination": dest, "type": "bind", "source": source,
                                "options": bind_opts})
            inspect_mounts.append({"Type": "bind", "Source": source, "Destination": dest,
                                   "Driver": "", "Mode": "", "Options": _inspect_opts(bind_opts),
                                   "RW": not ro, "Propagation": _propagation(bind_opts)})
            if "U" in m.options:
                give(source, user.uid, user.gid)
            continue
        # a volume, named or anonymous
        if m.source:
            if inp.volumes.exists(m.source):
                vol = inp.volumes.get(m.source)
            else:
                vol = inp.volumes.create(m.source, ignore_existing=True)
                plan.created_volumes.append(vol.name)
            named.append(vol.name)
        else:
            vol = inp.volumes.create(anonymous=True)
            plan.created_volumes.append(vol.name)
            anonymous.append(vol.name)
            named.append(vol.name)
        if vol.mount_type and vol.mount_type != "none":
            o = [x for x in vol.options.get("o", "").split(",") if x]
            if ro:
                o.append("ro")
            mounts_spec.append({"destination": dest, "type": vol.mount_type,
                                "source": vol.options.get("device") or vol.mount_type,
                                "options": o + ["nosuid", "nodev"]})
        else:
            source = vol.options.get("device") if vol.mount_type == "none" else vol.mountpoint
            if "nocopy" not in m.options and vol.mount_type != "none":
                inp.volumes.prepare(vol, _image_dir(inp.rootfs, dest),
                                    owner=(0, 0) if inp.rootless
                                    else to_host(user.uid, user.gid))
                if userns and not inp.rootless:
                    _searchable(os.path.dirname(vol.mountpoint))
            vopts = [o for o in bind_opts if o != "rbind"] + ["nosuid", "nodev", "rbind"]
            mounts_spec.append({"destination": dest, "type": "bind", "source": source,
                                "options": list(dict.fromkeys(vopts))})
            if "U" in m.options:
                give(source, user.uid, user.gid)
        inspect_mounts.append({"Type": "volume", "Name": vol.name, "Source": vol.mountpoint,
                               "Destination": dest, "Driver": "local", "Mode": "",
                               "Options": _inspect_opts(bind_opts), "RW": not ro,
                               "Propagation": _propagation(bind_opts)})

    # -- userdata: hosts, hostname, resolv.conf, .containerenv --------------------------------
    os.makedirs(inp.userdata, mode=0o700, exist_ok=True)
    base_hosts = _read_host("/etc/hosts")
    files = {
        "hosts": hosts_file(opts, hostname, inp.name, base=base_hosts),
        "hostname": hostname + "\n",
        "resolv.conf": resolv_conf(opts, _read_host("/etc/resolv.conf")),
        # podman: the details only for a --privileged container; others get an empty file
        ".containerenv": (f'engine="rongqi"\nname="{inp.name}"\nid="{inp.container_id}"\n'
                          f'image="{opts.image}"\nrootless={int(inp.rootless)}\n'
                          if opts.privileged else ""),
    }
    if net == "slirp4netns" and not opts.dns:
        # slirp4netns' DNS forwarder first, then the host's servers (podman 4's order).
        from rongqi.engine import networks_rootless
        files["resolv.conf"] = networks_rootless.resolv_with_slirp_dns(
            files["resolv.conf"], net_plan.get("options") if net_plan else [])
    if net == "slirp4netns":
        from rongqi.engine import networks_rootless
        files["hosts"] = networks_rootless.hosts_for_slirp(
            files["hosts"], net_plan.get("options") if net_plan else [], inp.rootless)
    if networks is not None:
        networks.write_plan(inp.userdata, net_plan)
    for fname, text in files.items():
        path = os.path.join(inp.userdata, fname)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        if userns:
            give(path, 0, 0)
    etc_ro = ["ro"] if opts.read_only else []
    user_dests = {os.path.normpath(m.destination) for m in opts.mounts}
    for fname, dest in (("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"),
                        ("resolv.conf", "/etc/resolv.conf"), (".containerenv",
                                                              "/run/.containerenv")):
        if dest in user_dests or (fname == "hosts" and opts.no_hosts):
            continue
        mounts_spec.append({"destination": dest, "type": "bind",
                            "source": os.path.join(inp.userdata, fname),
                            "options": ["bind", "rprivate", *etc_ro, "nosuid", "noexec",
                                        "nodev"]})

    # -- a user the image does not know gets entries, as podman adds them ----------------------
    _add_user_entries(inp.rootfs, user, inp.userdata, mounts_spec, opts.read_only, user_dests)

    # -- the working directory -------------------------------------------------------------------
    if opts.workdir != "/" and not any(opts.workdir == d or opts.workdir.startswith(d + "/")
                                       for d in user_dests):
        _make_workdir(inp.rootfs, opts.workdir, lambda p: give(p, user.uid, user.gid), plan)

    # -- --init: a reaping PID 1 from the host, bound read-only ------------------------------
    args = list(command)
    if opts.init:
        init = find_init(opts.init_path)
        opts.init_path = init
        mounts_spec.append({"destination": INIT_PATH, "type": "bind", "source": init,
                            "options": ["bind", "rprivate", "ro", "nosuid", "nodev"]})
        args = [INIT_PATH, "--", *command]

    # -- the spec ------------------------------------------------------------------------------
    spec = _base_spec(opts, inp, hostname, userns, unified)
    proc = spec["process"]
    proc["args"] = args
    proc["env"] = [f"{k}={v}" for k, v in env.items()]
    proc["cwd"] = opts.workdir
    proc["terminal"] = bool(opts.tty)
    proc["user"] = {"uid": user.uid, "gid": user.gid, "umask": 0o022}
    if user.additional_gids:
        proc["user"]["additionalGids"] = user.additional_gids
    proc["capabilities"] = seccomp_caps
    if opts.no_new_privileges:
        proc["noNewPrivileges"] = True
    proc["rlimits"] = _rlimits(opts, inp.rootless)
    if opts.oom_score_adj is not None:
        proc["oomScoreAdj"] = opts.oom_score_adj
    lin = spec["linux"]
    lin["namespaces"] = namespaces
    if userns:
        lin["uidMappings"] = _maps(uidmap)
        lin["gidMappings"] = _maps(gidmap)
    if sysctls:
        lin["sysctl"] = sysctls
    # Mounts the user gave replace the defaults at the same place (a --tmpfs /dev/shm, ...).
    taken = {m["destination"] for m in mounts_spec}
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] not in taken] + mounts_spec
    if opts.shm_size is not None:
        for m in spec["mounts"]:
            if m["destination"] == "/dev/shm" and m["source"] == "shm":
                m["options"] = [o for o in m["options"] if not o.startswith("size=")] + \
                    [f"size={opts.shm_size // 1024}k"]
    if opts.privileged:
        lin.pop("maskedPaths", None)
        lin.pop("readonlyPaths", None)
        for m in spec["mounts"]:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    else:
        masked = [p for p in MASKED_PATHS + list(opts.mask) if not _unmasked(p, opts.unmask)]
        ro_paths = [p for p in READONLY_PATHS if not _unmasked(p, opts.unmask)]
        lin["maskedPaths"] = list(dict.fromkeys(masked))
        lin["readonlyPaths"] = ro_paths
        if opts.seccomp_profile == "unconfined":
            pass
        elif opts.seccomp_profile:
            lin["seccomp"] = seccomp_from_file(opts.seccomp_profile,
                                               seccomp_caps["bounding"])
        else:
            from rongqi.oci.profile import default_seccomp
            lin["seccomp"] = default_seccomp(caps=seccomp_caps["bounding"])
    res = _resources(opts, inp.rootless, warnings)
    if inp.rootless and not unified and res:
        # An ordinary user cannot be given v1 cgroups; podman says so and goes on.
        warnings.append("Resource limits are not supported and ignored on cgroups V1 "
                        "rootless systems")
        res = {}
    if not inp.rootless:
        res["devices"] = ([{"allow": True, "access": "rwm"}] if opts.privileged
                          else [{"allow": False, "access": "rwm"}, *device_rules])
    if res:
        lin["resources"] = res
    if devices:
        lin["devices"] = devices
    if opts.privileged:
        lin["devices"] = _host_devices(devices)
    spec["annotations"] = _annotations(opts, stop_signal)
    if exposed:
        spec["annotations"]["io.rongqi.exposed-ports"] = ",".join(exposed)
    return BundleOutput(spec=spec, command=command, opts=opts, named_volumes=named,
                        anonymous_volumes=anonymous, mounts=inspect_mounts, warnings=warnings)


def _searchable(path: str) -> None:
    """o+x (search, not read) on path and every directory above it that lacks it."""
    p = os.path.abspath(path)
    while True:
        st = os.stat(p)
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o001:
            os.chmod(p, stat.S_IMODE(st.st_mode) | 0o001)
        if p == "/":
            return
        p = os.path.dirname(p)


def shift_owners(root: str, to_host: Any) -> None:
    """lchown every file under root from container ids to host ids, never following links
    (a walk of the image's own tree: nothing in it can point the chown outside root)."""
    def one(path: str) -> None:
        st = os.lstat(path)
        uid, gid = to_host(st.st_uid, st.st_gid)
        if (uid, gid) != (st.st_uid, st.st_gid):
            mode = stat.S_IMODE(st.st_mode)
            os.lchown(path, uid, gid)
            if not stat.S_ISLNK(st.st_mode) and mode & 0o6000:
                os.chmod(path, mode)  # chown clears setuid/setgid bits; the image had them
    one(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            one(os.path.join(dirpath, n))


def find_init(path: str) -> str:
    """--init-path, else Debian's catatonit or a static tini (the container cannot load the
    host's shared libraries)."""
    for candidate in ([path] if path else INIT_CANDIDATES):
        if os.path.isfile(candidate):
            return candidate
    if path:
        raise BundleError(f"container-init binary not found on the host: stat {path}: no such "
                          "file or directory")
    raise BundleError("container-init binary not found on the host: install catatonit "
                      "(or tini-static), or give --init-path")


def _map_id(maps: list[IdMap], ident: int) -> int:
    if not maps:
        return ident
    for m in maps:
        if m.container_id <= ident < m.container_id + m.size:
            return m.host_id + ident - m.container_id
    return 65534  # unmapped ids show as the overflow id; nobody owns the file then


def _unmasked(path: str, unmask: list[str]) -> bool:
    if "ALL" in unmask:
        return True
    import fnmatch
    return any(fnmatch.fnmatch(path, u) for u in unmask)


def _bind_options(options: list[str], ro: bool) -> list[str]:
    out = ["rbind"]
    for o in options:
        if o in ("z", "Z", "U", "copy", "nocopy", "ro", "rw", "idmap"):
            continue   # z/Z: no SELinux here; U/copy/nocopy: done by build(), not mount(2)
        if o == "bind":
            out.remove("rbind") if "rbind" in out else None
            out.append("bind")
        elif o not in out:
            out.append(o)
    if not any(o in ("shared", "rshared", "slave", "rslave", "private", "rprivate",
                     "unbindable", "runbindable") for o in out):
        out.append("rprivate")
    out.append("ro" if ro else "rw")
    return out


def _inspect_opts(options: list[str]) -> list[str]:
    return [o for o in options if o in ("rbind", "bind", "nosuid", "nodev", "noexec")]


def _propagation(options: list[str]) -> str:
    return next((o for o in options if o in ("shared", "rshared", "slave", "rslave", "private",
                                             "rprivate", "unbindable", "runbindable")),
                "rprivate")


def _image_dir(rootfs: str, dest: str) -> str | None:
    path = resolve_in_root(rootfs, dest)
    return path if os.path.isdir(path) else None


def _make_workdir(rootfs: str, workdir: str, own: Any, plan: _Plan) -> None:
    """mkdir -p of -w inside the image's root (symlinks resolved inside it), the new
    directories owned by the container's user, as podman makes them."""
    parts = [p for p in workdir.split("/") if p]
    for i in range(1, len(parts) + 1):
        sub = "/" + "/".join(parts[:i])
        path = resolve_in_root(rootfs, sub)
        if os.path.isdir(path):
            continue
        if os.path.lexists(path):
            raise BundleError(f"workdir {workdir}: {sub} exists and is not a directory")
        os.mkdir(path, 0o755)
        plan.created_paths.append(path)
        own(path)


def _read_host(path: str) -> str:
    try:
        with open(path) as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def _container_netns(inp: BundleInput, ref: str) -> str:
    if inp.engine is None:
        raise BundleError(f"container:{ref}: no engine to look the container up in")
    other = inp.engine.get(ref)
    pid = int((other.state or {}).get("pid") or 0)
    if not pid or (other.state or {}).get("status") not in ("running", "paused"):
        raise BundleError(f"cannot join network namespace of container {other.id}: "
                          "container is not running")
    return f"/proc/{pid}/ns/net"


def _devices(opts: ContainerOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """--device HOST[:CTR][:PERMS]: the node (or every node under a directory) and its cgroup
    rule."""
    devices, rules = [], []
    for d in opts.devices:
        try:
            st = os.stat(d.host_path)
        except FileNotFoundError:
            raise BundleError(f"stat {d.host_path}: no such file or directory") from None
        if stat.S_ISDIR(st.st_mode):
            found = []
            for dirpath, _, fnames in os.walk(d.host_path):
                for n in sorted(fnames):
                    p = os.path.join(dirpath, n)
                    try:
                        s = os.stat(p)
                    except OSError:
                        continue
                    if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
                        rel = os.path.relpath(p, d.host_path)
                        found.append((os.path.join(d.container_path, rel), s))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            found = [(d.container_path, st)]
        else:
            raise BundleError(f"{d.host_path} is not a device")
        for path, s in found:
            kind = "c" if stat.S_ISCHR(s.st_mode) else "b"
            major, minor = os.major(s.st_rdev), os.minor(s.st_rdev)
            devices.append({"path": path, "type": kind, "major": major, "minor": minor,
                            "fileMode": stat.S_IMODE(s.st_mode), "uid": 0, "gid": 0})
            rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                          "access": d.permissions})
    return devices, rules


def _host_devices(given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """--privileged: the host's device nodes under /dev (not its ptys: the container has its
    own devpts), plus the --device ones."""
    out = {d["path"]: d for d in given}
    for dirpath, dirnames, fnames in os.walk("/dev"):
        dirnames[:] = [n for n in dirnames if n not in ("pts", "shm", "mqueue")]
        for n in fnames:
            p = os.path.join(dirpath, n)
            if p in out or p in ("/dev/ptmx", "/dev/console") or p.startswith("/dev/tty"):
                continue
            try:
                s = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
                out[p] = {"path": p, "type": "c" if stat.S_ISCHR(s.st_mode) else "b",
                          "major": os.major(s.st_rdev), "minor": os.minor(s.st_rdev),
                          "fileMode": stat.S_IMODE(s.st_mode), "uid": s.st_uid, "gid": s.st_gid}
    return sorted(out.values(), key=lambda d: d["path"])


def _rlimits(opts: ContainerOptions, rootless: bool) -> list[dict[str, Any]]:
    """podman's nofile and nproc defaults (lowered to the hard limits this process may give
    away: root here may not raise them), then --ulimit."""
    out: dict[str, dict[str, Any]] = {}
    for name, res in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        _, hard = resource.getrlimit(res)
        top = DEFAULT_RLIMIT if hard == resource.RLIM_INFINITY else min(DEFAULT_RLIMIT, hard)
        out[name] = {"type": f"RLIMIT_{name.upper()}", "hard": top, "soft": top}
    if any(u.name == "host" for u in opts.ulimits):
        # --ulimit host: every limit as this process has it (podman's "host" value).
        for name in RLIMITS:
            res = getattr(resource, f"RLIMIT_{name.upper()}", None)
            if res is None:
                continue
            soft, hard = resource.getrlimit(res)
            inf = 2**64 - 1
            out[name] = {"type": f"RLIMIT_{name.upper()}",
                         "hard": inf if hard == resource.RLIM_INFINITY else hard,
                         "soft": inf if soft == resource.RLIM_INFINITY else soft}
    for u in opts.ulimits:
        if u.name == "host":
            continue
        out[u.name] = {"type": f"RLIMIT_{u.name.upper()}", "hard": u.hard, "soft": u.soft}
    return list(out.values())


def _resources(opts: ContainerOptions, rootless: bool, warnings: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    mem: dict[str, int] = {}
    if opts.memory_swap is not None and opts.memory is None and opts.memory_swap != -1:
        raise BundleError("you should always set a memory limit when using a memoryswap "
                          "limit, see usage")
    if opts.memory is not None and opts.memory > 0:
        mem["limit"] = opts.memory
        if opts.memory_swap is not None:
            if 0 < opts.memory_swap < opts.memory:
                raise BundleError("minimum memoryswap limit should be larger than memory "
                                  "limit, see usage")
            if opts.memory_swap != 0:
                mem["swap"] = opts.memory_swap
        elif _swap_accounting():
            mem["swap"] = 2 * opts.memory  # podman: as much swap as memory
    if opts.memory_reservation is not None:
        if opts.memory and opts.memory_reservation > opts.memory:
            raise BundleError("minimum memory limit cannot be less than memory reservation "
                              "limit, see usage")
        mem["reservation"] = opts.memory_reservation
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if opts.cpus:
        cpu["quota"] = int(round(opts.cpus * CPU_PERIOD))
        cpu["period"] = CPU_PERIOD
    if opts.cpu_period:
        cpu["period"] = opts.cpu_period
    if opts.cpu_quota:
        cpu["quota"] = opts.cpu_quota
    if opts.cpu_shares:
        cpu["shares"] = opts.cpu_shares
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        cpu["mems"] = opts.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    limit = DEFAULT_PIDS_LIMIT if opts.pids_limit is None and not rootless else opts.pids_limit
    if limit is not None and limit > 0:
        res["pids"] = {"limit": limit}
    return res


def _swap_accounting() -> bool:
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or \
        os.path.exists("/sys/fs/cgroup/memory.swap.max") or \
        any(os.path.exists(f"/sys/fs/cgroup/{d}/memory.swap.max")
            for d in ("unified", "init.scope"))


def _base_spec(opts: ContainerOptions, inp: BundleInput, hostname: str, userns: bool,
               unified: bool) -> dict[str, Any]:
    shm = opts.shm_size if opts.shm_size is not None else DEFAULT_SHM_SIZE
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     *([] if userns and inp.rootless else ["gid=5"])]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm // 1024}k"]},
    ]
    if inp.rootless or (userns and opts.network == "host"):
        # sysfs cannot be mounted without owning the network namespace: the host's, bound.
        mounts.append({"destination": "/sys", "type": "bind", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    else:
        mounts.append({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                       "options": ["nosuid", "noexec", "nodev", "ro"]})
        mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]})
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": [], "env": [],
                    "cwd": "/"},
        "root": {"path": inp.rootfs, "readonly": bool(opts.read_only)},
        "hostname": hostname,
        **({"domainname": opts.domainname} if opts.domainname else {}),
        "mounts": mounts,
        "linux": {"cgroupsPath": f"/rongqi/{inp.container_id}", "namespaces": []},
    }


def _annotations(opts: ContainerOptions, stop_signal: int) -> dict[str, str]:
    out = {"io.container.manager": "rongqi",
           "io.podman.annotations.autoremove": "TRUE" if opts.remove else "FALSE",
           "io.podman.annotations.init": "TRUE" if opts.init else "FALSE",
           "io.podman.annotations.privileged": "TRUE" if opts.privileged else "FALSE",
           "io.podman.annotations.publish-all": "TRUE" if opts.publish_all else "FALSE",
           "org.opencontainers.image.stopSignal": str(stop_signal)}
    out.update(opts.annotations)
    return out


def options_dict(opts: ContainerOptions) -> dict[str, Any]:
    """The ContainerOptions as the plain dict config.json's "options" keeps."""
    return asdict(opts)
