"""creation: a container from its bundle, up to its init waiting for `start` on the exec fifo.

The config parsed once, checked against the host (capabilities, LSM labels, namespaces
joined by path), the state dir and the cgroup made, the init cloned by a helper
(oci/spawn.py) and taken through the handshake to "ready" (oci/protocol.py); whatever
fails, nothing of the container is left. Used by rongqi-oci create and run and by the
in-process runtime (oci/inprocess.py); exec shares its checks (cap_sets, check_host_support).
"""

from __future__ import annotations

import os
import sys

from rongqi.errors import RongqiError, SpecError, UnsupportedError, UsageError
from rongqi.linux import namespaces
from rongqi.linux.signals import SIGKILL
from rongqi.linux import syscall as sysc
from rongqi.oci import debug
from rongqi.oci import protocol as proto
from rongqi.oci import statedir as statemod
from rongqi.oci.protocol import InitConfig, Sync
from rongqi.oci.spawn import check_stdio, preload_for_child, send_pidfd, spawn_in_cgroup, write_pid_file
from rongqi.oci.spec import Spec, load_bundle


class CreateOptions:
    __slots__ = ("bundle", "pid_file", "console_socket", "pidfd_socket", "no_pivot", "no_new_keyring",
                 "preserve_fds", "systemd_cgroup", "listen_fds", "stdio")

    def __init__(self, bundle: str = ".", pid_file: str = "", console_socket: str = "", pidfd_socket: str = "",
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 systemd_cgroup: bool = False, listen_fds: int = 0,
                 stdio: tuple[int, int, int] | None = None):
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.pidfd_socket = pidfd_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.systemd_cgroup = systemd_cgroup
        # Socket activation (systemd's LISTEN_FDS): fds 3..3+n-1 of the caller go to the
        # container, ahead of --preserve-fds', with LISTEN_FDS=n and LISTEN_PID=1 set.
        self.listen_fds = listen_fds
        # The fds the container's process gets as 0, 1, 2 (None: the caller's own). Installed
        # in the forked helper only, so the caller's fds 0-2 never change (see install_stdio).
        self.stdio = stdio


def create(root: str, cid: str, opts: CreateOptions, sc: sysc.Syscalls | None = None) -> statemod.State:
    """Set up a container completely; its init waits on the exec fifo for `start`.
    sc: the kernel (sysc.SYSCALLS, read at the call: a test's fake takes its place)."""
    if sc is None:
        sc = sysc.SYSCALLS
    statemod.validate_id(cid)
    if opts.pid_file:
        # runc resolves a relative --pid-file against the caller's working directory.
        opts.pid_file = os.path.abspath(opts.pid_file)
    if opts.preserve_fds < 0:
        raise UsageError("--preserve-fds: must not be negative")
    if opts.stdio is not None:
        check_stdio(opts.stdio)
    spec, raw = load_bundle(opts.bundle)
    debug(f"create {cid}: config.json of {os.path.abspath(opts.bundle)} parsed, root {spec.root_path}")
    proc = spec.need_process()
    if opts.listen_fds > 0:
        env = [e for e in proc.env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
        proc.env = env + [f"LISTEN_FDS={opts.listen_fds}", "LISTEN_PID=1"]
    if proc.terminal and not opts.console_socket:
        raise UsageError("process.terminal is true: a detached container needs --console-socket to hand the "
                         "terminal to (or set terminal to false)")
    if not os.path.isdir(spec.root_path):
        raise SpecError(f"root.path: {spec.root_path} is not a directory")
    caps = cap_sets(spec)
    check_host_support(spec)
    if spec.linux.namespace("mount") is None:
        from rongqi.oci import log

        log.warn("linux.namespaces: no mount namespace: the container shares the runtime's mounts and its "
                 "root is a chroot, which a process with CAP_SYS_CHROOT or CAP_SYS_ADMIN can leave")
    d = statemod.make_dir(root, cid)
    st = statemod.State(root, cid)
    st.bundle = os.path.abspath(opts.bundle)
    st.rootfs = spec.root_path
    st.annotations = spec.annotations
    from rongqi.oci.timefmt import rfc3339nano

    st.created = rfc3339nano()
    cleanup = _Cleanup(st)
    try:
        statemod.write_private(os.path.join(d, "config.json"), raw)
        st.config = os.path.join(d, "config.json")
        hooks = {k: [_hook_dict(h) for h in v] for k, v in spec.hooks.items() if k in ("poststart", "poststop")}
        st.hooks = hooks or None
        fifo = os.path.join(d, statemod.FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # not narrowed by the umask: the init may not be our uid
        root_uid, root_gid = _container_root_ids(spec)
        if (root_uid, root_gid) != (os.geteuid(), os.getegid()):
            try:
                os.chown(fifo, root_uid, root_gid)
            except PermissionError:
                if os.geteuid() == 0:
                    raise
                # An ordinary user cannot give away a file (root maps to a subordinate id,
                # as with podman's keep-id); the fifo is 0622: the init may open it anyway.
        cg, new_cgroup, limits = _make_cgroup(spec, cid, opts.systemd_cgroup)
        debug(f"create {cid}: cgroup {cg.path if cg is not None else 'of the caller'} "
              f"{'made' if new_cgroup else 'reused'}")
        if cg is not None:
            if new_cgroup:
                cleanup.cgroup = cg
            st.cgroup = cg_state = cg.to_dict()
            if not new_cgroup and _warn_if_not_empty(cg, spec):
                cg_state["shared"] = True
        pid, sync = _spawn(sc, spec, st, opts, caps, cleanup, cg, limits)
        try:
            st.pid = pid
            st.pid_start = statemod.proc_stat(pid)[0]
            st.save()
            debug(f"create {cid}: init started, pid {pid}")
            # If the init already failed, its error is waiting in the pipe: _await_ready reads it.
            _send_go(sync, spec, pid)
            _await_ready(sync, spec, st, pid)
        finally:
            sync.close()
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        if opts.pidfd_socket:
            send_pidfd(opts.pidfd_socket, pid)
    except BaseException:
        cleanup.run()
        raise
    debug(f"create {cid}: init ready, waiting for start")
    return st


class _Cleanup:
    """Undo a half-made container: nothing of it may stay behind."""

    def __init__(self, st: statemod.State):
        self.st = st
        self.pid = 0
        self.helper = 0
        self.cgroup = None

    def run(self) -> None:
        for pid in (self.helper, self.pid):
            if pid <= 0:
                continue
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if self.cgroup is not None:
            try:
                self.cgroup.destroy()
            except OSError:
                pass
        statemod.remove_dir(self.st.dir)


def check_host_support(spec: Spec) -> None:
    """Refuse, at create, what this host cannot enforce: a label nobody applies is no confinement."""
    proc = spec.need_process()
    # A namespace joined by path may be the runtime's own: what would be set there is the host's
    # (runc refuses net sysctls in the host's network namespace; the rest it sets on the host).
    uts = spec.linux.namespace("uts")
    if (spec.hostname or spec.domainname) and uts is not None and uts.path and namespaces.same_as_host("uts", uts.path):
        key = "hostname" if spec.hostname else "domainname"
        raise SpecError(f"{key}: the uts namespace joined at {uts.path} is the runtime's own: setting the "
                        f"{key} there would change the host's; drop {key} or join another namespace")
    if spec.linux.sysctl:
        from rongqi.oci.spec import sysctl_namespace

        for key in spec.linux.sysctl:
            kind = sysctl_namespace(key)
            ns = spec.linux.namespace(kind) if kind else None
            if kind and ns is not None and ns.path and namespaces.same_as_host(kind, ns.path):
                raise SpecError(f"linux.sysctl.{key}: the {kind} namespace joined at {ns.path} is the runtime's "
                                "own: setting it would change the host's")
    if proc.apparmor_profile or proc.selinux_label or spec.linux.mount_label:
        from rongqi.linux import lsm  # only for a label: most containers set none

        if proc.apparmor_profile and not lsm.apparmor_enabled():
            raise UnsupportedError(f"process.apparmorProfile: {proc.apparmor_profile!r} asked for, but AppArmor is "
                                   "not enabled on this host; remove the profile (or run on a host with AppArmor)")
        if (proc.selinux_label or spec.linux.mount_label) and not lsm.selinux_enabled():
            key = "process.selinuxLabel" if proc.selinux_label else "linux.mountLabel"
            raise UnsupportedError(f"{key}: an SELinux label is set, but SELinux is not enabled on this host; "
                                   "remove the label (or run on a host with SELinux)")
    if spec.linux.intel_rdt is not None and not os.path.exists("/sys/fs/resctrl/schemata"):
        raise UnsupportedError("linux.intelRdt: this host has no Intel RDT (resctrl is not mounted at "
                               "/sys/fs/resctrl, or the CPU lacks RDT); remove linux.intelRdt")
    if proc.exec_cpu_affinity is not None:
        bad = proc.exec_cpu_affinity - os.sched_getaffinity(0)
        if bad:
            raise SpecError(f"process.execCPUAffinity: CPUs {sorted(bad)} are not available to this runtime")


def _container_root_ids(spec: Spec) -> tuple[int, int]:
    """The host uid and gid that the container's root maps to (ours without a user namespace)."""
    def host_id(maps, own: int) -> int:
        for m in maps:
            if m.container_id <= 0 < m.container_id + m.size:
                return m.host_id - m.container_id
        return own

    lin = spec.linux
    if lin.namespace("user") is None:
        return os.geteuid(), os.getegid()
    return host_id(lin.uid_mappings, os.geteuid()), host_id(lin.gid_mappings, os.getegid())


def _hook_dict(h) -> dict:
    out = {"path": h.path, "args": h.args, "env": h.env}
    if h.timeout:
        out["timeout"] = h.timeout
    return out


def cap_sets(spec: Spec):
    """Capability names -> masks, checked now so that create fails, not the init after start."""
    c = spec.need_process().capabilities
    if c is None:
        return None
    from rongqi.linux import caps as capmod

    sets = []
    unknown: list[str] = []
    for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        names_ = getattr(c, name)
        # runc: a name no kernel defines is warned about and left out, not an error (a
        # set only loses a capability by it: the container gets less, never more).
        bad = capmod.unknown(names_)
        for n in bad:
            if n not in unknown:
                unknown.append(n)
        sets.append(capmod.mask([n for n in names_ if n not in bad]))
    bounding, effective, permitted, inheritable, ambient = sets
    if unknown:
        from rongqi.oci import log

        log.warn("process.capabilities: ignoring unknown capabilities: " + ", ".join(unknown))
    newer = sorted({n for name in ("bounding", "effective", "permitted", "inheritable", "ambient")
                    for n in capmod.unsupported(getattr(c, name))})
    if newer:
        # Known names that this kernel predates: mask() left them out; the spec wants it said.
        from rongqi.oci import log

        log.warn("process.capabilities: ignoring capabilities this kernel does not have: " + ", ".join(newer))
    missing = capmod.missing_from_host(bounding | effective | permitted | inheritable | ambient)
    if missing:
        # The spec: a capability that cannot be granted is logged as a warning, and the
        # container runs without it (docker --privileged asks for all of them; this host's
        # root lacks CAP_SYS_RESOURCE). runc 1.1 fails on it instead.
        from rongqi.oci import log

        log.warn("process.capabilities: ignoring unavailable capabilities: " + ", ".join(capmod.names(missing)) +
                 " (not in the runtime's own bounding set, so no process it starts can have them)")
        keep = ~missing
        bounding, effective, permitted = bounding & keep, effective & keep, permitted & keep
        inheritable, ambient = inheritable & keep, ambient & keep
    return capmod.CapSets(bounding, effective, permitted, inheritable, ambient)


def _make_cgroup(spec: Spec, cid: str, systemd: bool):
    """Create the container's cgroup; return it, whether it is new, and the limits to write in
    it (_spawn writes them while the helper starts). None for a rootless container that sets no
    limits and may not make one (it then runs in its caller's cgroup, as under runc)."""
    from rongqi.linux import cgroups

    path = cgroups.resolve_path(spec.linux.cgroups_path or None, cid, systemd=systemd)
    rootless = namespaces.rootless()
    res = _with_default_devices(spec)
    if rootless:
        res.devices = None  # device rules need CAP_SYS_ADMIN in the host's user namespace (runc skips them)
    cg = cgroups.Cgroup.open(path)
    frozen = cg.frozen_at()
    if frozen is not None:
        # runc's words; without this check the init would be born frozen and create would hang.
        raise RongqiError(f"container's cgroup unexpectedly frozen: {frozen} is frozen; thaw it "
                          "(or use another linux.cgroupsPath)")
    try:
        new = cg.create()
    except cgroups.CgroupError as err:
        if rootless and err.errno in (1, 13, 30) and not _sets_limits(spec):  # EPERM, EACCES, EROFS
            return None, False, None
        raise
    return cg, new, res


def _warn_if_not_empty(cg, spec: Spec) -> bool:
    """runc's warnings for an existing cgroup with processes in it; True when delete must spare
    them: the container has a pid namespace of its own, which takes its processes with its init.
    (Without one, delete kills the whole cgroup, as runc does.)"""
    try:
        n = len(cg.pids())
    except OSError:
        return False
    if not n:
        return False
    from rongqi.oci import log

    log.warn(f"container's cgroup is not empty: {n} process(es) found")
    log.warn("DEPRECATED: running container in a non-empty cgroup won't be supported in runc 1.2; "
             "https://github.com/opencontainers/runc/issues/3132")
    pidns = spec.linux.namespace("pid")
    return pidns is not None and not pidns.path


def _sets_limits(spec: Spec) -> bool:
    res = spec.linux.resources
    return res is not None and any(getattr(res, n) is not None for n in res.__slots__ if n != "devices")


def _with_default_devices(spec: Spec):
    """The spec's resources with device rules completed as runc completes them."""
    from rongqi.linux.cgroups.resources import with_allowed_devices

    return with_allowed_devices(spec.linux.resources)


def _spawn(sc: sysc.Syscalls, spec: Spec, st: statemod.State, opts: CreateOptions, caps, cleanup,
           cg, limits) -> tuple[int, Sync]:
    """Start the init in its namespaces and cgroup; return its pid and the sync channel.

    A helper process (a fork) is moved into the container's cgroup while it imports
    ctypes (both take milliseconds: they overlap), sets the rlimits and oom_score_adj
    on itself, joins the user/pid/time namespaces given by path (those only apply to
    children), and clones the init with CLONE_PARENT: the init is born in its cgroup,
    with its limits, and is our child. The runtime itself never needs ctypes here.

    The limits are written while the helper starts (it is in the cgroup by then): no process of
    the container's program runs before they are, as the init waits for our "go", which comes
    after; and the writes overlap with the helper's imports and clone, off the critical path.
    """
    lin = spec.linux
    new_flags = 0
    early_joins: list[tuple[str, str]] = []  # must happen before the init exists (user, pid, time)
    late_joins: list[tuple[str, str]] = []   # done by the init itself
    new_time = False
    for kind in namespaces.JOIN_ORDER:
        ns = lin.namespace(kind)
        if ns is None:
            continue
        if ns.path:
            if namespaces.same_as_host(kind, ns.path):
                continue
            (early_joins if kind in ("user", "pid", "time") else late_joins).append((kind, ns.path))
        elif kind == "time":
            new_time = True  # clone(2) has no flag for it: unshared by the helper
        else:
            new_flags |= namespaces.flag(kind)
    userns_new = bool(new_flags & sysc.CLONE_NEWUSER)

    c = InitConfig()
    c.spec = spec
    c.container_id = st.id
    c.no_pivot = opts.no_pivot
    c.no_new_keyring = opts.no_new_keyring
    c.preserve_fds = opts.listen_fds + opts.preserve_fds
    c.late_joins = late_joins
    # Born in its cgroup, the init gets its own cgroup namespace from clone itself.
    c.new_cgroupns = bool(new_flags & sysc.CLONE_NEWCGROUP)
    c.userns = lin.namespace("user") is not None
    c.runtime_hooks = bool(spec.hooks.get("prestart") or spec.hooks.get("createRuntime"))
    c.caps = caps
    c.cgroup_dirs = dict(st.cgroup["dirs"]) if st.cgroup else None
    c.state_json = _InitStateJson(st, c)
    # Every fd made here is closed on the way out (the init's ends) or on failure (ours too).
    p_r = c_w = c_r = p_w = -1
    try:
        if lin.seccomp is not None:
            from rongqi.linux import seccomp as seccomp_mod

            c.seccomp_before_caps = seccomp_mod.load_needs_cap_sys_admin(spec.need_process().no_new_privileges)
            try:
                c.seccomp_filter = seccomp_mod.compile_filter(lin.seccomp)
                if lin.seccomp.uses_notify():
                    c.seccomp_listener_fd = seccomp_mod.connect_listener(lin.seccomp.listenerPath)
            except OSError as err:
                raise RongqiError(f"linux.seccomp: {err.strerror or err}") from None
        if spec.need_process().terminal:
            from rongqi.oci.terminal import connect

            c.console_fd = connect(opts.console_socket)
        c.fifo_fd = os.open(os.path.join(st.dir, statemod.FIFO), os.O_PATH | os.O_CLOEXEC)
        p_r, c_w = os.pipe2(os.O_CLOEXEC)  # init -> runtime
        c.host_binds = bool(_binds_opened_by_host(spec))
        if c.host_binds:
            import _socket  # runtime -> init, with the bind sources' fds (see _send_go)

            c_end, p_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            c_r, p_w = c_end.detach(), p_end.detach()
        else:
            c_r, p_w = os.pipe2(os.O_CLOEXEC)  # runtime -> init
        c.sync = Sync(c_r, c_w)
        job = _InitJob(sc, c, new_time)
        pid = spawn_in_cgroup(sc, cg, new_flags, early_joins, job.prepare, job.after_joins, job.main,
                              close_in_helper=(p_r, p_w), cleanup=cleanup, stdio=opts.stdio,
                              keep_fds=(c_r, c_w, c.fifo_fd, c.console_fd, c.seccomp_listener_fd,
                                        *range(3, 3 + c.preserve_fds)),
                              meanwhile=_LimitsWriter(cg, limits, st.id) if cg is not None else None)
    except BaseException:
        for fd in (p_r, p_w):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in (c.fifo_fd, c_r, c_w, c.console_fd, c.seccomp_listener_fd):
            if fd >= 0:
                os.close(fd)
    sync = Sync(p_r, p_w)
    if userns_new:
        try:
            _write_id_maps(pid, lin)
        except BaseException:
            # Stop the init before it sees the channel close (create's cleanup reaps it).
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
            sync.close()
            raise
    return pid, sync


class _LimitsWriter:
    """spawn_in_cgroup's meanwhile for create: the cgroup's limits, written while the helper starts."""

    __slots__ = ("cg", "limits", "cid")

    def __init__(self, cg, limits, cid: str):
        self.cg = cg
        self.limits = limits
        self.cid = cid

    def __call__(self) -> None:
        self.cg.apply(self.limits)
        debug(f"create {self.cid}: limits written")


class _InitStateJson:
    """The init's state_json(status): the state given to hooks, with the init's host pid
    (known to the init from the "go" message). A class, not a closure: it travels to a
    re-exec'd helper (see spawn_in_cgroup)."""

    __slots__ = ("st", "c")

    def __init__(self, st: statemod.State, c: InitConfig):
        self.st = st
        self.c = c

    def __call__(self, status: str) -> bytes:
        return self.st.hook_json(status, self.c.host_pid or self.st.pid)


class _InitJob:
    """What the helper does for create, as methods of a plain value (it may travel to a
    re-exec'd helper: see spawn_in_cgroup and oci/jobcodec.py)."""

    __slots__ = ("sc", "c", "new_time")

    def __init__(self, sc: sysc.Syscalls, c: InitConfig, new_time: bool):
        self.sc = sc
        self.c = c
        self.new_time = new_time

    def prepare(self) -> None:
        # While the runtime moves us into the cgroup: every module the init needs after
        # pivot_root (its host's Python library is then out of reach), and our own limits.
        import rongqi.linux.rootfs  # noqa: F401
        import rongqi.oci.init  # noqa: F401  (not imported by the runtime itself: see protocol.InitConfig)

        preload_for_child(self.c.spec)
        _set_own_limits(self.sc, self.c.spec.process)

    def after_joins(self) -> None:
        lin = self.c.spec.linux
        if self.new_time:
            self.sc.unshare(sysc.CLONE_NEWTIME)
            if lin.time_offsets:
                lines = "".join(f"{clock} {secs} {ns}\n" for clock, (secs, ns) in lin.time_offsets.items())
                self.sc.write_file("/proc/self/timens_offsets", lines)

    def main(self) -> None:
        from rongqi.oci import init

        init.run(self.sc, self.c)


def _set_own_limits(sc: sysc.Syscalls, proc) -> None:
    """rlimits and oom_score_adj on the helper itself: the init inherits them at clone."""
    if proc.rlimits:
        import resource

        for r in proc.rlimits:
            try:
                sc.setrlimit(r.resource, r.soft, r.hard)
            except (OSError, ValueError) as err:
                hard_now = resource.getrlimit(r.resource)[1]
                why = getattr(err, "strerror", None) or str(err)
                raise SpecError(
                    f"process.rlimits: {r.type} soft={r.soft} hard={r.hard} refused by the kernel ({why}); "
                    f"the runtime's own hard limit is {hard_now} and raising it needs CAP_SYS_RESOURCE"
                    f"{'' if hard_now == resource.RLIM_INFINITY else ', which this runtime lacks'}: "
                    f"ask for at most {hard_now}") from None
    if proc.oom_score_adj is not None:
        try:
            sc.write_file("/proc/self/oom_score_adj", str(proc.oom_score_adj))
        except OSError as err:
            raise SpecError(f"process.oomScoreAdj: cannot set {proc.oom_score_adj} ({err.strerror}); "
                            f"lowering it needs CAP_SYS_RESOURCE") from None


def _write_id_maps(pid: int, lin) -> None:
    def fmt(maps) -> str:
        return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)

    if os.geteuid() != 0:
        from rongqi.linux import idmap

        idmap.write_maps_unprivileged(pid, fmt(lin.uid_mappings), fmt(lin.gid_mappings))
        return
    for name, maps in (("uid_map", lin.uid_mappings), ("gid_map", lin.gid_mappings)):
        try:
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, fmt(maps).encode())
            finally:
                os.close(fd)
        except OSError as err:
            key = "uidMappings" if name == "uid_map" else "gidMappings"
            raise SpecError(f"linux.{key}: the kernel refused the mapping ({err.strerror}); "
                            f"ranges must not overlap and must fit in 32 bits") from None


def _await_ready(sync: Sync, spec: Spec, st: statemod.State, pid: int) -> None:
    while True:
        word, text = sync.recv()
        if word == proto.READY:
            return
        if word == proto.HOOKS:
            state_json = st.hook_json("creating", pid)
            from rongqi.oci.hooks import HookSpec, run_hooks

            try:
                for kind in ("prestart", "createRuntime"):
                    hooks = spec.hooks.get(kind)
                    if hooks:
                        run_hooks(kind, [HookSpec(h.path, h.args, h.env, h.timeout) for h in hooks], state_json,
                                  cwd=st.bundle)
            except BaseException as err:
                _send(sync, proto.ABORT, str(err))
                raise
            _send(sync, proto.HOOKS_DONE)
            continue
        if word == proto.ERROR:
            raise RongqiError(text)
        _, status = os.waitpid(pid, 0)
        raise RongqiError(f"container init exited before it was ready ({_describe_status(status)})")


def _binds_opened_by_host(spec: Spec) -> list[tuple[int, str]]:
    """The bind mounts whose sources the runtime opens for a user-namespaced init: (index, path).

    As runc: the init is root of its new user namespace only, which may not reach a source
    (a directory of the host's root with mode 0700 on its path), so the host's root opens
    them, in the init's mount namespace. Only for a new user and mount namespace (a joined
    one is another's to see) and a runtime that is the host's root.
    """
    lin = spec.linux
    user, mnt = lin.namespace("user"), lin.namespace("mount")
    if user is None or user.path or mnt is None or mnt.path or namespaces.rootless():
        return []
    out = []
    for i, m in enumerate(spec.mounts):
        if m.type == "bind" or "bind" in m.options or "rbind" in m.options:
            out.append((i, m.source if m.source.startswith("/") else os.path.join(spec.bundle, m.source)))
    return out[:253]  # SCM_MAX_FD; the rest are opened by the init by path


def _send_go(sync: Sync, spec: Spec, pid: int) -> None:
    """Tell the init to go on; with the bind sources opened for it (see _binds_opened_by_host).

    Each source is opened O_PATH through /proc/PID/root, i.e. in the init's mount namespace
    (a bind mount takes its source from the caller's namespace only), before the init has
    changed anything there. A source we cannot open is left to the init, which reports it.
    """
    binds = _binds_opened_by_host(spec) if sync.wfd >= 0 else []
    if not binds:
        _send(sync, proto.GO, str(pid))
        return
    import _socket

    fds, which = [], []
    try:
        for i, src in binds:
            try:
                fds.append(os.open(f"/proc/{pid}/root" + os.path.realpath(src), os.O_PATH | os.O_CLOEXEC))
            except OSError:
                continue
            which.append(str(i))
        sock = _socket.socket(fileno=sync.wfd)
        try:
            anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))]
            sock.sendmsg([f"{proto.GO} {pid} {','.join(which)}\n".encode()], anc if fds else [])
        except BrokenPipeError:
            pass  # the init is gone: its report, or its exit, says why
        finally:
            sock.detach()
    finally:
        for fd in fds:
            os.close(fd)


def _send(sync: Sync, word: str, text: str = "") -> None:
    """Send to the init; a gone init is not an error here (its own report, or its exit, is)."""
    try:
        sync.send(word, text)
    except BrokenPipeError:
        pass


def _describe_status(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
