"""Control groups: one interface (Cgroup) over cgroup v1, v2 and hybrid hosts.

Detects the host's layout, resolves cgroupsPath as runc does, and delegates limits to v1.py/v2.py.
"""

from __future__ import annotations

import os

from rongqi.errors import RongqiError, SpecError
from rongqi.linux.cgroups import files
from rongqi.linux.cgroups.files import CgroupError, read_pids

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from rongqi.linux.cgroups import freezer as _freezer_mod
    from rongqi.linux.cgroups.resources import Resources

    Freezer = type[_freezer_mod.V1] | type[_freezer_mod.V2]

DEFAULT_ROOT = "/sys/fs/cgroup"
UNIFIED = "unified"  # key of the cgroup2 directory in Cgroup.dirs, on v2 and hybrid hosts
_SIGKILL = 9

__all__ = ["Cgroup", "CgroupError", "detect_mode", "resolve_path", "is_cgroup2_unified_only", "current_cgroup"]

_mode_cache: str | None = None


def _mounts(mountinfo: str) -> list[tuple[str, str, str, str]]:
    """(mount root, mount point, fstype, super options) of each cgroup/cgroup2 mount."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if sep + 3 >= len(fields):
            continue
        fstype = fields[sep + 1]
        if fstype in ("cgroup", "cgroup2"):
            out.append((_unescape(fields[3]), _unescape(fields[4]), fstype, fields[sep + 3]))
    return out


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in s:
        return s
    return s.encode().decode("unicode_escape")


def _read_mountinfo() -> str:
    with open("/proc/self/mountinfo", "rb") as f:
        return f.read().decode(errors="replace")


def detect_mode(mountinfo: str | None = None) -> str:
    """ "v2" (cgroup2 only), "hybrid" (v1 controllers plus a cgroup2 tree) or "v1"; cached."""
    global _mode_cache
    if mountinfo is None and _mode_cache is not None:
        return _mode_cache
    mounts = _mounts(_read_mountinfo() if mountinfo is None else mountinfo)
    has_v1 = any(m[2] == "cgroup" for m in mounts)
    has_v2 = any(m[2] == "cgroup2" for m in mounts)
    if has_v2 and not has_v1:
        mode = "v2"
    elif has_v2:
        mode = "hybrid"
    elif has_v1:
        mode = "v1"
    else:
        raise RongqiError("no cgroup filesystem is mounted (looked in /proc/self/mountinfo)")
    if mountinfo is None:
        _mode_cache = mode
    return mode


def is_cgroup2_unified_only() -> bool:
    return detect_mode() == "v2"


def current_cgroup(hierarchy: str = "", proc_cgroup: str | None = None) -> str:
    """The caller's cgroup in one hierarchy ("" = the cgroup2 tree, else a v1 controller or name=...)."""
    if proc_cgroup is None:
        with open("/proc/self/cgroup", "rb") as f:
            proc_cgroup = f.read().decode()
    for line in proc_cgroup.splitlines():
        _, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if ctrls == hierarchy or (hierarchy and hierarchy in ctrls.split(",")):
            return path or "/"
    return "/"


def _systemd_booted() -> bool:
    # sd_booted()'s test: systemd creates this directory only when it runs as PID 1.
    return os.path.isdir("/run/systemd/system")


def resolve_path(cgroups_path: str | None, container_id: str, *, systemd: bool = False) -> str:
    """linux.cgroupsPath -> the cgroup path (from the hierarchy root) the container will use.

    runc's rules: an absolute path is used as given; a relative one is relative to the
    caller's cgroup; none at all gives "/rongqi/<id>" (deliberately not relative to the caller,
    whose own cgroup may belong to someone else). With --systemd-cgroup the path is
    "slice:prefix:name" and needs systemd as PID 1.
    """
    field = "linux.cgroupsPath"
    if cgroups_path is not None and not isinstance(cgroups_path, str):
        raise SpecError(f"{field}: must be a string")
    if cgroups_path and "\x00" in cgroups_path:
        raise SpecError(f"{field}: must not contain NUL bytes")
    if systemd:
        return _resolve_systemd(cgroups_path or "", container_id, field)
    if not cgroups_path:
        return "/rongqi/" + container_id
    if ".." in cgroups_path.split("/"):
        raise SpecError(f'{field}: "{cgroups_path}" must not contain ".." components')
    if cgroups_path.startswith("/"):
        base = ""
    else:
        mode = detect_mode()
        base = current_cgroup("" if mode != "v1" else "name=systemd")
        if mode == "hybrid" and base == "/":
            # The unified line says "/" on many hybrid hosts; systemd's view is the meaningful one.
            base = current_cgroup("name=systemd")
    parts = [p for p in (base + "/" + cgroups_path).split("/") if p and p != "."]
    if not parts:
        raise SpecError(f'{field}: "{cgroups_path}" names the root cgroup')
    return "/" + "/".join(parts)


def _resolve_systemd(cgroups_path: str, container_id: str, field: str) -> str:
    if not cgroups_path:
        cgroups_path = "system.slice:rongqi:" + container_id
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise SpecError(f'{field}: "{cgroups_path}" is not of the form "slice:prefix:name" expected with --systemd-cgroup')
    if not _systemd_booted():
        raise UnsupportedCgroupDriver(
            f'{field}: "{cgroups_path}" asks for the systemd cgroup driver (--systemd-cgroup), '
            "but systemd is not running as PID 1 on this host; drop --systemd-cgroup and give a path"
        )
    slice_name, prefix, name = parts
    for p in parts:
        if "/" in p or p in (".", ".."):
            raise SpecError(f'{field}: "{cgroups_path}" has an invalid component {p!r}')
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return _expand_slice(slice_name or "system.slice", field) + "/" + unit


class UnsupportedCgroupDriver(RongqiError):
    """--systemd-cgroup where systemd cannot serve it."""


def _expand_slice(slice_name: str, field: str) -> str:
    """ "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice", as systemd lays slices out."""
    if not slice_name.endswith(".slice"):
        raise SpecError(f"{field}: {slice_name!r} is not a systemd slice name (must end in .slice)")
    if slice_name == "-.slice":
        return ""
    stem = slice_name[: -len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise SpecError(f"{field}: {slice_name!r} is not a valid systemd slice name")
    out = ""
    acc = ""
    for piece in stem.split("-"):
        acc = f"{acc}-{piece}" if acc else piece
        out += f"/{acc}.slice"
    return out


# cgroup v1 super options that are not controller names.
_NOT_CONTROLLERS = {"rw", "ro", "xattr", "clone_children", "noprefix", "cpuset_v2_mode", "favordynmods", "none", "all"}


def _hierarchies(root: str, mode: str) -> dict[str, str]:
    """hierarchy key -> mount directory. Keys: v1 controller names ("cpu", "cpuacct", ...),
    "name=systemd"-style named hierarchies, and UNIFIED for the cgroup2 tree.

    The real root is read from mountinfo; any other root (a test's fake cgroupfs) from its
    subdirectories ("cpu,cpuacct" co-mounts included, "systemd" meaning name=systemd).
    """
    out: dict[str, str] = {}
    if mode == "v2":
        out[UNIFIED] = root
        return out
    if root == DEFAULT_ROOT:
        for _mroot, point, fstype, opts in _mounts(_read_mountinfo()):
            if not point.startswith(root + "/"):
                continue
            if fstype == "cgroup2":
                out.setdefault(UNIFIED, point)
                continue
            for opt in opts.split(","):
                if opt in _NOT_CONTROLLERS or ("=" in opt and not opt.startswith("name=")):
                    continue
                out.setdefault(opt, point)
        return out
    for name in sorted(os.listdir(root)):
        path = root + "/" + name
        if not os.path.isdir(path):
            continue
        if name == "unified":
            if mode == "hybrid":
                out[UNIFIED] = path
            continue
        if name == "systemd":
            out.setdefault("name=systemd", path)
            continue
        for ctrl in name.split(","):
            out.setdefault(ctrl, path)
    return out


class Cgroup:
    """One container's cgroup: a directory per hierarchy, all named by the same path.

    dirs maps each hierarchy key (see _hierarchies) to the container's directory in it; on v2
    there is just UNIFIED. Build it with open() or from_dict(); nothing touches the kernel
    until create().
    """

    __slots__ = ("path", "mode", "root", "dirs")

    def __init__(self, path: str, mode: str, root: str, dirs: dict[str, str]) -> None:
        self.path = path
        self.mode = mode
        self.root = root
        self.dirs = dirs

    def __repr__(self) -> str:
        return f"Cgroup({self.path!r}, mode={self.mode!r})"

    @classmethod
    def open(cls, path: str, *, mode: str | None = None, root: str = DEFAULT_ROOT) -> Cgroup:
        if not path.startswith("/") or ".." in path.split("/"):
            raise CgroupError(f"cgroup path {path!r} must be absolute and free of '..'")
        path = "/" + "/".join(p for p in path.split("/") if p)
        if mode is None:
            mode = detect_mode()
        rel = path.rstrip("/")
        dirs = {}
        for key, mount in _hierarchies(root, mode).items():
            dirs[key] = mount + rel
        return cls(path, mode, root, dirs)

    def to_dict(self) -> dict:
        return {"path": self.path, "mode": self.mode, "root": self.root, "dirs": dict(self.dirs)}

    @classmethod
    def from_dict(cls, d: dict) -> Cgroup:
        return cls(d["path"], d["mode"], d.get("root", DEFAULT_ROOT), dict(d["dirs"]))

    # --- which directory serves what ------------------------------------------------

    def _dir(self, controller: str) -> str | None:
        return self.dirs.get(controller)

    def _unified(self) -> str | None:
        return self.dirs.get(UNIFIED)

    def _member_dir(self) -> str:
        """A directory whose cgroup.procs lists the container's processes."""
        for key in (UNIFIED, "freezer", "pids", "memory", "name=systemd", "cpu"):
            d = self.dirs.get(key)
            if d and os.path.isdir(d):
                return d
        for d in self.dirs.values():
            if os.path.isdir(d):
                return d
        return ""

    def _mount_points(self) -> dict[str, str]:
        return {key: d[: len(d) - len(self.path)] if self.path != "/" else d for key, d in self.dirs.items()}

    # --- life cycle ---------------------------------------------------------------

    def create(self) -> bool:
        """mkdir -p the cgroup in every hierarchy (idempotent); True when its leaf is new.

        On an error, the directories this call made are removed again: a failed create
        never leaves anything, and never touches what existed before it.
        """
        mounts = self._mount_points()
        parts = [p for p in self.path.split("/") if p]
        made: list[str] = []
        try:
            for key in self.dirs:
                mount = mounts[key]
                cur = mount
                for p in parts:
                    parent = cur
                    cur = cur + "/" + p
                    try:
                        os.mkdir(cur, 0o755)
                    except FileExistsError:
                        if key == "cpuset":
                            # Someone else's mkdir may have left it without cpus or mems, which
                            # refuses every task below it (ENOSPC): fill it as runc does.
                            from rongqi.linux.cgroups import v1

                            v1.prepare_cpuset(parent, cur)
                        continue
                    except OSError as err:
                        raise CgroupError(f"cannot create cgroup {cur}: {err.strerror}", path=cur,
                                          errno=err.errno or 0) from None
                    made.append(cur)
                    if key == "cpuset":
                        from rongqi.linux.cgroups import v1

                        v1.prepare_cpuset(parent, cur)
                if key == UNIFIED and self.mode == "v2":
                    from rongqi.linux.cgroups import v2

                    ancestors = [mount + "/" + "/".join(parts[:i]) for i in range(1, len(parts))]
                    v2.enable_in_ancestors(mount, ancestors)
        except BaseException:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise
        leaf = "/" + "/".join(parts)
        return any(d.endswith(leaf) for d in made)

    def apply(self, res: Resources) -> None:
        """Write the limits of ``res`` (a resources.Resources); fields left None are not touched."""
        if self.mode == "v2":
            from rongqi.linux.cgroups import v2

            v2.apply(self.dirs[UNIFIED], res)
            return
        from rongqi.linux.cgroups import v1

        for ctrl in v1.CONTROLLERS:
            if not ctrl.wanted(res):
                continue
            d = self.dirs.get(ctrl.name)
            if d is None:
                raise CgroupError(f"the {ctrl.name} cgroup controller is not mounted on this host", ctrl.field)
            ctrl.apply(d, res)
        if res.unified:
            # runc's answer on v1 and hybrid hosts alike (its validator, and its v1 manager for
            # update): the limits are the v1 controllers', a cgroup2 tree beside them is not.
            raise CgroupError("invalid configuration: cannot use unified on cgroup v1", "linux.resources.unified")

    def add_pid(self, pid: int) -> None:
        """Move pid into the cgroup in every hierarchy."""
        for d in self.dirs.values():
            files.write(d, "cgroup.procs", pid)

    def pids(self, recursive: bool = True) -> list[int]:
        d = self._member_dir()
        if not d:
            return []
        if not recursive:
            return read_pids(d)
        out: list[int] = []
        for top, _dirs, _files in os.walk(d):
            out.extend(read_pids(top))
        return sorted(set(out))

    # --- freezer ---------------------------------------------------------------------

    def _freezer(self) -> tuple[Freezer, str]:
        from rongqi.linux.cgroups import freezer  # not v1/v2: a status check writes no limits

        d = self.dirs.get("freezer")
        if d is not None:
            return freezer.V1, d
        u = self._unified()
        if u is not None:
            return freezer.V2, u
        raise CgroupError("no freezer: neither a v1 freezer hierarchy nor a cgroup2 tree is mounted")

    def freeze(self) -> None:
        impl, d = self._freezer()
        impl.freeze(d)

    def thaw(self) -> None:
        impl, d = self._freezer()
        impl.thaw(d)

    def is_frozen(self) -> bool:
        impl, d = self._freezer()
        return os.path.isdir(d) and impl.is_frozen(d)

    def frozen_at(self) -> str | None:
        """The directory whose freeze would freeze a process moved into this cgroup, or None.

        Asked before create: a frozen cgroup would freeze the runtime's helper, and create
        would wait for it forever. The cgroup itself or, where it does not exist yet, the
        nearest ancestor that does (a new cgroup is born frozen under a frozen one); in
        each hierarchy that freezes: v1's freezer, and the cgroup2 tree (also on hybrid hosts).
        """
        mounts = self._mount_points()
        d = self.dirs.get("freezer")
        if d is not None:
            mount = mounts["freezer"]
            while not os.path.isdir(d) and len(d) > len(mount):
                d = os.path.dirname(d)
            if files.read_or(d, "freezer.state") in ("FROZEN", "FREEZING"):
                # v1's state is the effective one: name the cgroup that was frozen.
                while files.read_or(d, "freezer.parent_freezing") == "1" and len(d) > len(mount):
                    d = os.path.dirname(d)
                return d
        d = self.dirs.get(UNIFIED)
        if d is not None:
            mount = mounts[UNIFIED]
            found = None
            while len(d) > len(mount):  # the root cgroup cannot be frozen
                if files.read_or(d, "cgroup.freeze") == "1":
                    found = d  # the topmost one froze the rest
                d = os.path.dirname(d)
            if found is not None:
                return found
        return None

    # --- signals and teardown --------------------------------------------------------

    def kill_all(self, sig: int) -> None:
        """Send sig to every process in the cgroup (and its children cgroups).

        A paused cgroup stays paused for other signals (they are delivered on resume); with
        SIGKILL it is thawed afterwards, since a task frozen by the v1 freezer cannot die.
        """
        try:
            impl, fd = self._freezer()
            paused = os.path.isdir(fd) and impl.is_frozen(fd)
        except CgroupError:
            impl, fd, paused = None, "", False
        u = self._unified()
        if sig == _SIGKILL and u is not None and os.path.exists(u + "/cgroup.kill"):
            files.write(u, "cgroup.kill", "1")
        else:
            froze = False
            if impl is not None and os.path.isdir(fd) and not paused:
                # Frozen processes cannot fork: the pid list stays complete while we signal it.
                try:
                    impl.freeze(fd)
                    froze = True
                except CgroupError:
                    pass
            try:
                for pid in self.pids():
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            finally:
                if froze and impl is not None:
                    impl.thaw(fd)
        if paused and sig == _SIGKILL and impl is not None:
            impl.thaw(fd)

    def destroy(self) -> None:
        """Kill what is left, then remove the cgroup (and any sub-cgroups) in every hierarchy."""
        import time

        if any(os.path.isdir(d) for d in self.dirs.values()):
            try:
                impl, fd = self._freezer()
                if os.path.isdir(fd) and impl.is_frozen(fd):
                    impl.thaw(fd)  # a frozen v1 task does not die until thawed
            except CgroupError:
                pass
            deadline = time.monotonic() + 5.0
            while self.pids():
                self.kill_all(_SIGKILL)
                if time.monotonic() > deadline:
                    raise CgroupError(f"cannot empty cgroup {self.path}: processes {self.pids()} survive SIGKILL")
                time.sleep(0.005)
        for d in self.dirs.values():
            _remove_tree(d)

    def stats(self) -> dict:
        if self.mode == "v2":
            from rongqi.linux.cgroups import v2

            return v2.stats(self.dirs[UNIFIED])
        from rongqi.linux.cgroups import v1

        return v1.stats(self.dirs)

    def oom_kill_count(self) -> int:
        if self.mode == "v2":
            from rongqi.linux.cgroups import v2

            return v2.oom_kill_count(self.dirs[UNIFIED])
        d = self.dirs.get("memory")
        if d is None:
            return 0
        from rongqi.linux.cgroups import v1

        return v1.oom_kill_count(d)


def _remove_tree(d: str) -> None:
    """rmdir d and the cgroups below it, deepest first; EBUSY (exiting tasks) is retried."""
    import time

    try:
        subdirs = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for sub in subdirs:
        _remove_tree(sub)
    delay = 0.001
    deadline = time.monotonic() + 5.0
    while True:
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != 16 or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {d}: {err.strerror}", path=d, errno=err.errno or 0) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)

