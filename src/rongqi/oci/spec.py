"""config.json (OCI runtime-spec 1.2) parsed and validated once into typed values.

Every error names the JSON path of the offending value, as in
``linux.namespaces[2].type: unknown namespace type "netx"``. Nothing downstream
looks at raw dicts, except the blocks parsed by their own modules (resources,
seccomp), which get their JSON path passed in.
"""

from __future__ import annotations

import os

from rongqi.errors import SpecError
# The one typed reader (and wording) of the runtime's JSON: oci/jsonread.py.
from rongqi.oci.jsonread import Obj as _Obj
from rongqi.oci.jsonread import integer as _int

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


class User:
    __slots__ = ("uid", "gid", "umask", "additional_gids", "username")

    def __init__(self, uid=0, gid=0, umask=None, additional_gids=(), username=""):
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additional_gids = list(additional_gids)
        self.username = username


class Rlimit:
    __slots__ = ("type", "resource", "soft", "hard")

    def __init__(self, type_: str, resource: int, soft: int, hard: int):
        self.type = type_
        self.resource = resource
        self.soft = soft
        self.hard = hard


class Capabilities:
    """Capability names per set, as written in config.json (turned into masks by linux.caps)."""

    __slots__ = ("bounding", "effective", "permitted", "inheritable", "ambient")

    def __init__(self, bounding=(), effective=(), permitted=(), inheritable=(), ambient=()):
        self.bounding = list(bounding)
        self.effective = list(effective)
        self.permitted = list(permitted)
        self.inheritable = list(inheritable)
        self.ambient = list(ambient)


class Process:
    __slots__ = ("terminal", "console_size", "args", "env", "cwd", "user", "capabilities", "rlimits",
                 "no_new_privileges", "apparmor_profile", "selinux_label", "oom_score_adj",
                 "scheduler", "io_priority", "exec_cpu_affinity")

    def __init__(self):
        self.terminal = False
        self.console_size: tuple[int, int] | None = None
        self.args: list[str] = []
        self.env: list[str] = []
        self.cwd = "/"
        self.user = User()
        self.capabilities: Capabilities | None = None
        self.rlimits: list[Rlimit] = []
        self.no_new_privileges = False
        self.apparmor_profile = ""
        self.selinux_label = ""
        self.oom_score_adj: int | None = None
        self.scheduler: tuple | None = None  # (policy, nice, priority, flags, runtime, deadline, period)
        self.io_priority: tuple[int, int] | None = None  # (class, priority)
        self.exec_cpu_affinity: set[int] | None = None


class Mount:
    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")

    def __init__(self, destination: str, type_: str, source: str, options: list[str],
                 uid_mappings=(), gid_mappings=()):
        self.destination = destination
        self.type = type_
        self.source = source
        self.options = options
        self.uid_mappings = list(uid_mappings)
        self.gid_mappings = list(gid_mappings)


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, path: str, args: list[str], env: list[str], timeout: int | None):
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout


class Namespace:
    __slots__ = ("type", "path")

    def __init__(self, type_: str, path: str):
        self.type = type_
        self.path = path


class IDMapping:
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, container_id: int, host_id: int, size: int):
        self.container_id = container_id
        self.host_id = host_id
        self.size = size


class Device:
    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, path, type_, major, minor, file_mode, uid, gid):
        self.path = path
        self.type = type_
        self.major = major
        self.minor = minor
        self.file_mode = file_mode
        self.uid = uid
        self.gid = gid


class Linux:
    __slots__ = ("namespaces", "uid_mappings", "gid_mappings", "time_offsets", "devices", "cgroups_path",
                 "resources", "rootfs_propagation", "masked_paths", "readonly_paths", "mount_label",
                 "sysctl", "seccomp", "personality", "intel_rdt", "raw_resources", "raw_seccomp")

    def __init__(self):
        self.namespaces: list[Namespace] = []
        self.uid_mappings: list[IDMapping] = []
        self.gid_mappings: list[IDMapping] = []
        self.time_offsets: dict[str, tuple[int, int]] = {}
        self.devices: list[Device] = []
        self.cgroups_path = ""
        self.resources = None
        self.raw_resources: dict | None = None
        self.rootfs_propagation = ""
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.mount_label = ""
        self.sysctl: dict[str, str] = {}
        self.seccomp = None
        self.raw_seccomp: dict | None = None
        self.personality: int | None = None  # personality(2) domain
        self.intel_rdt: dict | None = None

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


class Spec:
    __slots__ = ("oci_version", "root_path", "root_readonly", "hostname", "domainname", "annotations",
                 "process", "mounts", "hooks", "linux", "bundle")

    def __init__(self):
        self.oci_version = ""
        self.root_path = ""
        self.root_readonly = False
        self.hostname = ""
        self.domainname = ""
        self.annotations: dict[str, str] = {}
        self.process: Process | None = None
        self.mounts: list[Mount] = []
        self.hooks: dict[str, list[Hook]] = {}
        self.linux = Linux()
        self.bundle = ""

    def need_process(self) -> Process:
        """The process, which create (and exec, which sets it) cannot go without."""
        if self.process is None:
            raise SpecError("process: required to create a container (the program to run)")
        return self.process


def load_bundle(bundle: str) -> tuple[Spec, bytes]:
    """Read and parse <bundle>/config.json; return the spec and the raw bytes."""
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise SpecError(f"bundle {bundle}: no such directory (pass --bundle DIR, the directory holding config.json)")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file (a bundle needs a config.json; `rongqi-oci spec` writes one)") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot read: {err.strerror}") from None
    from rongqi.fastjson import JSONError, loads

    try:
        doc = loads(raw)
    except JSONError as err:
        raise SpecError(f"{path}: malformed JSON: {err}") from None
    spec = parse(doc, bundle)
    return spec, raw


def parse(doc: object, bundle: str = "") -> Spec:
    top = _Obj(doc, "")
    s = Spec()
    s.bundle = bundle
    s.oci_version = top.str("ociVersion", required=True)
    if not s.oci_version.startswith("1."):
        raise SpecError(f"ociVersion: unsupported version {s.oci_version!r} (rongqi-oci implements 1.x)")
    root = top.obj("root")
    if root is None:
        raise SpecError("root: required (the bundle's root filesystem)")
    s.root_path = root.str("path", required=True)
    if not s.root_path:
        raise SpecError("root.path: must not be empty")
    if not os.path.isabs(s.root_path):
        s.root_path = os.path.join(bundle, s.root_path)
    s.root_path = os.path.normpath(s.root_path)
    s.root_readonly = root.bool("readonly")
    s.hostname = top.str("hostname", "")
    s.domainname = top.str("domainname", "")
    s.annotations = top.str_map("annotations")
    proc = top.obj("process")
    if proc is not None:
        s.process = _parse_process(proc)
    for i, m in enumerate(top.list("mounts")):
        s.mounts.append(_parse_mount(_Obj(m, f"mounts[{i}]")))
    hooks = top.obj("hooks")
    if hooks is not None:
        for name in HOOK_NAMES:
            lst = []
            for i, h in enumerate(hooks.list(name)):
                lst.append(_parse_hook(_Obj(h, f"hooks.{name}[{i}]")))
            if lst:
                s.hooks[name] = lst
    lin = top.obj("linux")
    if lin is not None:
        _parse_linux(lin, s.linux)
    _check_consistency(s)
    return s


def parse_process(doc: object, path: str = "process") -> Process:
    """A process object (config.json's, or exec's --process file) into a Process; errors name
    their JSON path under path."""
    return _parse_process(_Obj(doc, path))


def _parse_process(p: _Obj) -> Process:
    pr = Process()
    pr.terminal = p.bool("terminal")
    cs = p.obj("consoleSize")
    if cs is not None:
        pr.console_size = (cs.int("height", 0, 0, 65535), cs.int("width", 0, 0, 65535))
    pr.args = p.strs("args")
    if not pr.args:
        raise SpecError(f"{p.at('args')}: must name the program to run (got an empty list)")
    pr.env = p.strs("env")
    pr.cwd = p.str("cwd", required=True)
    if not pr.cwd.startswith("/"):
        raise SpecError(f"{p.at('cwd')}: must be an absolute path, got {pr.cwd!r}")
    u = p.obj("user")
    if u is not None:
        gids = [_int(g, f"{u.at('additionalGids')}[{i}]", 0, _U32) for i, g in enumerate(u.list("additionalGids"))]
        pr.user = User(u.int("uid", 0, 0, _U32), u.int("gid", 0, 0, _U32), u.int("umask", None, 0, 0o777),
                       gids, u.str("username", ""))
    c = p.obj("capabilities")
    if c is not None:
        pr.capabilities = Capabilities(c.strs("bounding"), c.strs("effective"), c.strs("permitted"),
                                       c.strs("inheritable"), c.strs("ambient"))
    seen = set()
    for i, r in enumerate(p.list("rlimits")):
        ro = _Obj(r, f"{p.at('rlimits')}[{i}]")
        t = ro.str("type", required=True)
        if t not in RLIMITS:
            raise SpecError(f"{ro.at('type')}: unknown rlimit {t!r}")
        if t in seen:
            raise SpecError(f"{ro.at('type')}: rlimit {t} given twice")
        seen.add(t)
        soft = ro.int("soft", required=True, lo=0, hi=_U64)
        hard = ro.int("hard", required=True, lo=0, hi=_U64)
        if soft > hard:
            raise SpecError(f"{ro.path}: soft limit {soft} of {t} is above its hard limit {hard}")
        # The kernel's RLIM_INFINITY is the uint64 maximum (docker's "unlimited"); Python's
        # setrlimit takes it as -1, and raises on the unsigned value.
        pr.rlimits.append(Rlimit(t, RLIMITS[t], -1 if soft == _U64 else soft,
                                 -1 if hard == _U64 else hard))
    pr.no_new_privileges = p.bool("noNewPrivileges")
    pr.apparmor_profile = p.str("apparmorProfile", "")
    pr.selinux_label = p.str("selinuxLabel", "")
    pr.oom_score_adj = p.int("oomScoreAdj", None, -1000, 1000)
    if p.raw("scheduler") is not None:
        pr.scheduler = _parse_scheduler(p.member("scheduler"))
    if p.raw("ioPriority") is not None:
        from rongqi.linux.sched import IOPRIO_CLASSES

        io = p.member("ioPriority")
        klass = io.str("class", required=True)
        if klass not in IOPRIO_CLASSES:
            raise SpecError(f"{io.at('class')}: unknown class {klass!r} (known: {', '.join(IOPRIO_CLASSES)})")
        pr.io_priority = (IOPRIO_CLASSES[klass], io.int("priority", 0, 0, 7))
    if p.raw("execCPUAffinity") is not None:
        from rongqi.linux.sched import parse_cpus

        aff = p.member("execCPUAffinity")
        final = aff.str("final", "") or aff.str("initial", "")
        if final:
            try:
                pr.exec_cpu_affinity = parse_cpus(final)
            except ValueError:
                raise SpecError(f"{aff.at('final')}: {final!r} is not a CPU list like 0-3,6") from None
    return pr


def _parse_scheduler(s: _Obj) -> tuple:
    from rongqi.linux.sched import SCHED_FLAGS, SCHED_POLICIES

    policy = s.str("policy", required=True)
    if policy not in SCHED_POLICIES:
        raise SpecError(f"{s.at('policy')}: unknown policy {policy!r} (known: {', '.join(SCHED_POLICIES)})")
    flags = 0
    for i, f in enumerate(s.strs("flags")):
        if f not in SCHED_FLAGS:
            raise SpecError(f"{s.at('flags')}[{i}]: unknown flag {f!r}")
        flags |= SCHED_FLAGS[f]
    return (SCHED_POLICIES[policy], s.int("nice", 0, -20, 19), s.int("priority", 0, 0, 99), flags,
            s.int("runtime", 0, 0, _U64), s.int("deadline", 0, 0, _U64), s.int("period", 0, 0, _U64))


def _parse_mappings(o: _Obj, key: str) -> list[IDMapping]:
    out = []
    for i, m in enumerate(o.list(key)):
        mo = _Obj(m, f"{o.at(key)}[{i}]")
        size = mo.int("size", required=True, lo=1, hi=_U32)
        out.append(IDMapping(mo.int("containerID", required=True, lo=0, hi=_U32),
                             mo.int("hostID", required=True, lo=0, hi=_U32), size))
    return out


def _parse_mount(m: _Obj) -> Mount:
    dest = m.str("destination", required=True)
    if not dest.startswith("/"):
        # runtime-spec 1.x: relative destinations are relative to "/" (runc accepts them).
        dest = "/" + dest
    return Mount(os.path.normpath(dest), m.str("type", ""), m.str("source", ""), m.strs("options"),
                 _parse_mappings(m, "uidMappings"), _parse_mappings(m, "gidMappings"))


def _parse_hook(h: _Obj) -> Hook:
    path = h.str("path", required=True)
    if not path.startswith("/"):
        raise SpecError(f"{h.at('path')}: must be an absolute path, got {path!r}")
    return Hook(path, h.strs("args"), h.strs("env"), h.int("timeout", None, 1))


def _parse_linux(lin: _Obj, out: Linux) -> None:
    seen = set()
    for i, n in enumerate(lin.list("namespaces")):
        no = _Obj(n, f"{lin.at('namespaces')}[{i}]")
        t = no.str("type", required=True)
        if t not in NAMESPACE_TYPES:
            raise SpecError(f"{no.at('type')}: unknown namespace type {t!r} (known: {', '.join(NAMESPACE_TYPES)})")
        if t in seen:
            raise SpecError(f"{no.at('type')}: namespace {t} given twice")
        seen.add(t)
        path = no.str("path", "")
        if path and not path.startswith("/"):
            raise SpecError(f"{no.at('path')}: must be an absolute path, got {path!r}")
        out.namespaces.append(Namespace(t, path))
    out.uid_mappings = _parse_mappings(lin, "uidMappings")
    out.gid_mappings = _parse_mappings(lin, "gidMappings")
    to = lin.obj("timeOffsets")
    if to is not None:
        for clock, v in to.d.items():
            if clock not in ("monotonic", "boottime"):
                raise SpecError(f"{to.at(clock)}: unknown clock (use monotonic or boottime)")
            vo = _Obj(v, to.at(clock))
            out.time_offsets[clock] = (vo.int("secs", 0), vo.int("nanosecs", 0, 0, 999_999_999))
    for i, d in enumerate(lin.list("devices")):
        do = _Obj(d, f"{lin.at('devices')}[{i}]")
        path = do.str("path", required=True)
        if not path.startswith("/dev/") or ".." in path.split("/"):
            raise SpecError(f"{do.at('path')}: must be a path under /dev, got {path!r}")
        t = do.str("type", required=True)
        if t not in ("c", "b", "u", "p"):
            raise SpecError(f"{do.at('type')}: unknown device type {t!r} (use c, b, u or p)")
        major = do.int("major", 0, 0, _U32)
        minor = do.int("minor", 0, 0, _U32)
        if t != "p" and (do.raw("major") is None or do.raw("minor") is None):
            raise SpecError(f"{do.path}: device type {t} needs major and minor numbers")
        out.devices.append(Device(path, t, major, minor, _device_mode(do, t),
                                  do.int("uid", None, 0, _U32), do.int("gid", None, 0, _U32)))
    out.cgroups_path = lin.str("cgroupsPath", "")
    if lin.raw("resources") is not None:
        out.raw_resources = lin.member("resources").d
        out.resources = _parse_optional("rongqi.oci.resources", "parse_resources", out.raw_resources, lin.at("resources"))
    prop = lin.str("rootfsPropagation", "")
    if prop and prop not in ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"):
        raise SpecError(f"{lin.at('rootfsPropagation')}: unknown propagation {prop!r}")
    out.rootfs_propagation = prop
    out.masked_paths = lin.strs("maskedPaths")
    out.readonly_paths = lin.strs("readonlyPaths")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(lin.strs(key)):
            if not p.startswith("/"):
                raise SpecError(f"{lin.at(key)}[{i}]: must be an absolute path, got {p!r}")
    out.mount_label = lin.str("mountLabel", "")
    out.sysctl = lin.str_map("sysctl")
    if lin.raw("seccomp") is not None:
        out.raw_seccomp = lin.member("seccomp").d
        out.seccomp = _parse_optional("rongqi.oci.seccomp_spec", "parse_seccomp", out.raw_seccomp, lin.at("seccomp"))
    if lin.raw("personality") is not None:
        from rongqi.linux.sched import PERSONALITY_DOMAINS

        po = lin.member("personality")
        domain = po.str("domain", required=True)
        if domain not in PERSONALITY_DOMAINS:
            raise SpecError(f"{po.at('domain')}: unknown domain {domain!r} (use LINUX or LINUX32)")
        if po.strs("flags"):
            raise SpecError(f"{po.at('flags')}: personality flags are not supported (as in runc)")
        out.personality = PERSONALITY_DOMAINS[domain]
    if lin.raw("intelRdt") is not None:
        out.intel_rdt = lin.member("intelRdt").d


# S_IFMT bits of each device type, and their names for errors.
_DEVICE_FILE_TYPES = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}
_FILE_TYPE_NAMES = {0o020000: "character device", 0o060000: "block device", 0o010000: "fifo",
                    0o040000: "directory", 0o100000: "regular file", 0o120000: "symlink", 0o140000: "socket"}


def _device_mode(do: _Obj, type_: str) -> int | None:
    """fileMode's permission bits. podman sends st_mode with the file-type bits (0o20666), which
    runc accepts (it ORs the type in): accepted when they agree with the device's type."""
    mode = do.int("fileMode", None, 0, 0o177777)
    if mode is None:
        return None
    kind = mode & 0o170000
    if kind and kind != _DEVICE_FILE_TYPES[type_]:
        what = _FILE_TYPE_NAMES.get(kind, f"file type {oct(kind)}")
        raise SpecError(f"{do.at('fileMode')}: {oct(mode)} has the file-type bits of a {what}, "
                        f"but the device's type is {type_!r}")
    return mode & 0o7777


def _parse_optional(module: str, func: str, raw: dict, where: str):
    mod = __import__(module, fromlist=[func])
    return getattr(mod, func)(raw, where)


def _check_without_mount_namespace(s: Spec) -> None:
    """No mount namespace: the container keeps the runtime's (the spec's rule for a namespace not
    listed), and is only chrooted into its root. What would need a mount, or files made in the
    bundle's root, would change the host for good: refused (runc refuses masked and read-only
    paths here, and mounts the rest into the host's namespace, where they stay)."""
    why = "needs a mount namespace in linux.namespaces (without one, it would change the host's mounts)"
    lin = s.linux
    if s.mounts:
        raise SpecError(f"mounts[0]: {why}")
    for key, given in (("linux.maskedPaths", lin.masked_paths), ("linux.readonlyPaths", lin.readonly_paths),
                       ("linux.rootfsPropagation", lin.rootfs_propagation), ("root.readonly", s.root_readonly),
                       ("linux.mountLabel", lin.mount_label)):
        if given:
            raise SpecError(f"{key}: {why}")
    if lin.devices:
        raise SpecError("linux.devices: needs a mount namespace in linux.namespaces (without one, the nodes "
                        "would be made in the bundle's root on the host)")


_SYSCTL_NS = (
    ("kernel.msgmax", "ipc"), ("kernel.msgmnb", "ipc"), ("kernel.msgmni", "ipc"), ("kernel.sem", "ipc"),
    ("kernel.shmall", "ipc"), ("kernel.shmmax", "ipc"), ("kernel.shmmni", "ipc"),
    ("kernel.shm_rmid_forced", "ipc"), ("fs.mqueue.", "ipc"), ("net.", "network"),
    ("kernel.hostname", "uts"), ("kernel.domainname", "uts"),
)


def _check_consistency(s: Spec) -> None:
    lin = s.linux
    userns = lin.namespace("user")
    if (lin.uid_mappings or lin.gid_mappings) and userns is None:
        raise SpecError("linux.uidMappings: given without a user namespace in linux.namespaces")
    if userns is not None and not userns.path and (not lin.uid_mappings or not lin.gid_mappings):
        raise SpecError("linux.uidMappings: a new user namespace needs uidMappings and gidMappings")
    # A uts namespace joined by path takes the names too, as under runc (the init joins first).
    uts = lin.namespace("uts")
    if s.hostname and uts is None:
        raise SpecError("hostname: setting it needs a uts namespace in linux.namespaces (else it is the host's)")
    if s.domainname and uts is None:
        raise SpecError("domainname: setting it needs a uts namespace in linux.namespaces (else it is the host's)")
    if lin.time_offsets and (lin.namespace("time") is None or lin.namespace("time").path):
        raise SpecError("linux.timeOffsets: given without a new time namespace in linux.namespaces")
    if lin.namespace("mount") is None:
        _check_without_mount_namespace(s)
    for key in lin.sysctl:
        ns = sysctl_namespace(key)
        if ns is None:
            raise SpecError(f"linux.sysctl.{key}: not a namespaced sysctl; setting it would change the host")
        if lin.namespace(ns) is None:
            raise SpecError(f"linux.sysctl.{key}: needs a {ns} namespace in linux.namespaces")


def sysctl_namespace(key: str) -> str | None:
    """The namespace kind a sysctl belongs to (ipc, network, uts), None for a host-wide one.
    (Whether a namespace joined by path is the runtime's own is checked at create.)"""
    for prefix, ns in _SYSCTL_NS:
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return ns
    return None
