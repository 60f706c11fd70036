"""rongqi-oci exec: a new process in a running container's namespaces, cgroup and confinement.

The process is built as runc builds it: --process FILE, or the container's own
config.json process with the command line's overrides. It is cloned with
CLONE_PARENT by a helper that has joined all the container's namespaces and its root,
so that it is our child (we wait for it) and born inside the container.
"""

from __future__ import annotations

import os

from rongqi.errors import ContainerStateError, RongqiError, SpecError, UsageError
from rongqi.linux import namespaces
from rongqi.linux import syscall as sysc
from rongqi.oci import protocol as proto
from rongqi.oci import statedir as statemod
from rongqi.oci.init import (DEFAULT_PATH, InitConfig, Sync, _environ, describe, enter_cwd, execve,
                             finalize_process, find_executable, give_stdio)


class ExecOptions:
    __slots__ = ("args", "process_file", "tty", "console_socket", "pidfd_socket", "detach", "pid_file", "cwd",
                 "env", "user", "additional_gids", "caps", "no_new_privs", "apparmor", "process_label",
                 "preserve_fds", "ignore_paused", "cgroup", "process", "stdio", "console_relayed",
                 "process_data")

    args: list[str] | None
    process_file: str | None
    tty: bool | None
    console_socket: str | None
    pidfd_socket: str | None
    detach: bool | None
    pid_file: str | None
    cwd: str | None
    env: list[str] | None
    user: str | None
    additional_gids: list[str] | None
    caps: list[str] | None
    no_new_privs: bool | None
    apparmor: str | None
    process_label: str | None
    preserve_fds: int | None
    ignore_paused: bool | None
    cgroup: list[str] | None
    process: dict | None
    stdio: tuple[int, int, int] | None
    console_relayed: bool | None
    process_data: bytes | None

    # process: the process as a JSON object already read (the in-process runtime's, instead
    # of --process FILE); stdio: the fds the process gets as 0, 1, 2 (None: the caller's);
    # console_relayed: the console socket is exec -t's own, rongqi-oci relays the pty;
    # process_data: what --process FILE held, read once (a pipe, as <(...), reads once).
    def __init__(self, **kw: object) -> None:
        unknown = set(kw) - set(self.__slots__)
        if unknown:
            raise TypeError(f"ExecOptions: unknown option(s) {', '.join(sorted(unknown))}")
        for name in self.__slots__:
            setattr(self, name, kw.get(name))


def build_process(st: statemod.State, spec, o: ExecOptions):
    """The process to run: from --process, or the container's process with the flags applied."""
    from rongqi.oci import spec as specmod

    if o.process is not None:
        if o.args or o.process_file:
            raise UsageError("exec: give either a process or a command, not both")
        return specmod.parse_process(o.process)
    if o.process_file:
        if o.args:
            raise UsageError("exec: give either --process FILE or a command, not both")
        if o.process_data is not None:
            raw = o.process_data
        else:
            try:
                with open(o.process_file, "rb") as f:
                    raw = f.read()
            except OSError as err:
                raise UsageError(f"--process {o.process_file}: cannot read: {err.strerror}") from None
        from rongqi.fastjson import JSONError, loads

        try:
            doc = loads(raw)
        except JSONError as err:
            raise SpecError(f"{o.process_file}: malformed JSON: {err}") from None
        return specmod.parse_process(doc)
    if not o.args:
        raise UsageError("exec needs a command to run (or --process FILE)")
    if spec.process is None:
        raise SpecError("process: the container's config has none to base the exec on; use --process")
    p = spec.process
    p.args = list(o.args)
    p.terminal = bool(o.tty)
    if o.cwd:
        p.cwd = o.cwd
    for e in o.env or ():
        if "=" not in e:
            raise UsageError(f"--env {e!r}: expected KEY=VALUE")
        key = e.split("=", 1)[0]
        p.env = [x for x in p.env if x.split("=", 1)[0] != key] + [e]
    if o.user:
        uid, _, gid = o.user.partition(":")
        try:
            p.user.uid = int(uid)
            p.user.gid = int(gid) if gid else p.user.gid
        except ValueError:
            raise UsageError(f"--user {o.user!r}: expected UID[:GID] (numbers)") from None
    for g in o.additional_gids or ():
        try:
            p.user.additional_gids.append(int(g))
        except ValueError:
            raise UsageError(f"--additional-gids {g!r}: expected a number") from None
    if o.caps:
        from rongqi.oci.spec import Capabilities

        c = p.capabilities or Capabilities()
        for name in o.caps:
            # runc's --cap: bounding, effective and permitted. Never inheritable (runc's
            # CVE-2022-29162: an inheritable set let a program with inheritable file
            # capabilities gain them); ambient only where inheritable already allows it.
            for lst in (c.bounding, c.effective, c.permitted):
                if name not in lst:
                    lst.append(name)
            if name in c.inheritable and name not in c.ambient:
                c.ambient.append(name)
        p.capabilities = c
    if o.no_new_privs:
        p.no_new_privileges = True
    if o.apparmor:
        p.apparmor_profile = o.apparmor
    if o.process_label:
        p.selinux_label = o.process_label
    return p


def sub_cgroup_dirs(dirs: dict[str, str], args: list[str]) -> dict[str, str]:
    """The container's cgroup dirs with exec --cgroup applied, as runc reads the flag: one bare
    `path` for every hierarchy (on v2 the only form), or `controller[,controller]:path` per
    controller (v1; a hierarchy not named keeps the container's own cgroup). Each path is taken
    below the container's cgroup and must stay there; the sub-cgroup must exist already."""
    paths: dict[str, str] = {}
    for arg in args:
        parts = arg.split(":")
        if len(parts) > 2:
            raise UsageError(f"exec --cgroup: invalid --cgroup argument: {arg}")
        if len(parts) == 1:
            if len(args) != 1:
                raise UsageError(f"exec --cgroup: invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            paths[""] = arg
        else:
            for ctrl in parts[0].split(","):
                paths[ctrl] = parts[1]
    out = dict(dirs)
    # runc's key for "every hierarchy" is the empty controller (a bare path, or ":path").
    wanted = {key: paths[""] for key in dirs} if "" in paths else paths
    for ctrl, sub in wanted.items():
        base = dirs.get(ctrl)
        if base is None:
            raise UsageError(f"exec --cgroup: unknown controller {ctrl} in SubCgroupPaths "
                             f"(this container's: {', '.join(sorted(dirs))})")
        full = os.path.normpath(base + "/" + sub)
        if full != base and not full.startswith(base + "/"):
            raise UsageError(f"exec --cgroup: {sub} is not a sub cgroup path")
        out[ctrl] = full
    return out


def _sub_cgroup(cg, args: list[str]):
    """The container's Cgroup moved down to exec --cgroup's sub-cgroups."""
    from rongqi.linux import cgroups

    if cg is None:
        raise UsageError("exec --cgroup: the container has no cgroup of its own (a rootless container without one)")
    dirs = sub_cgroup_dirs(cg.dirs, args)
    cpuset = dirs.get("cpuset")
    if cpuset and cpuset != cg.dirs["cpuset"]:
        # A sub-cgroup made with a bare mkdir has no cpus or mems and would refuse the process
        # (ENOSPC): fill it from above, as create does for the container's own path.
        from rongqi.linux.cgroups import v1

        parent = cg.dirs["cpuset"]
        for part in cpuset[len(parent) + 1:].split("/"):
            if not os.path.isdir(parent + "/" + part):
                break
            v1.prepare_cpuset(parent, parent + "/" + part)
            parent += "/" + part
    return cgroups.Cgroup(cg.path, cg.mode, cg.root, dirs)


def exec_process(root: str, cid: str, o: ExecOptions, sc: sysc.Syscalls | None = None) -> int:
    """Start the process; return its pid. sc: the kernel (sysc.SYSCALLS, read at the call)."""
    if sc is None:
        sc = sysc.SYSCALLS
    if o.pid_file:
        o.pid_file = os.path.abspath(o.pid_file)  # against the caller's cwd, as runc does
    if o.stdio is not None:
        from rongqi.oci.spawn import check_stdio

        check_stdio(o.stdio)
    st = statemod.load(root, cid)
    status = st.status()
    if status == "stopped":
        raise ContainerStateError("cannot exec in a stopped container")
    if status == "paused" and not o.ignore_paused:
        raise ContainerStateError("cannot exec in a paused container")
    from rongqi.oci.spec import load_bundle

    spec, _ = load_bundle(st.dir)  # the copy of config.json kept in the state dir
    proc = build_process(st, spec, o)
    if proc.terminal and not o.console_socket and o.detach:
        raise UsageError("cannot allocate a tty for a detached exec without --console-socket")
    spec.process = proc
    from rongqi.oci.creation import cap_sets, check_host_support

    check_host_support(spec)

    cg = None
    if st.cgroup:
        from rongqi.linux import cgroups

        cg = cgroups.Cgroup.from_dict(st.cgroup)
    if o.cgroup:
        cg = _sub_cgroup(cg, o.cgroup)

    c = InitConfig()
    c.spec = spec
    c.container_id = cid
    c.caps = cap_sets(spec)
    c.userns = spec.linux.namespace("user") is not None
    c.preserve_fds = o.preserve_fds or 0
    c.state_json = _no_state
    # Every fd made from here on is closed on the way out: the child's ends once it has them,
    # ours (the sync channel) on failure or at the end.
    root_fd = p_r = c_w = c_r = p_w = -1
    sync = Sync(-1, -1)
    try:
        try:
            if spec.linux.seccomp is not None:
                from rongqi.linux import seccomp as seccomp_mod

                c.seccomp_before_caps = seccomp_mod.load_needs_cap_sys_admin(proc.no_new_privileges)
                c.seccomp_filter = seccomp_mod.compile_filter(spec.linux.seccomp)
                if spec.linux.seccomp.uses_notify():
                    c.seccomp_listener_fd = seccomp_mod.connect_listener(spec.linux.seccomp.listenerPath)
            if proc.terminal and o.console_socket:
                from rongqi.oci.terminal import connect

                c.console_fd = connect(o.console_socket)

            early: list[tuple[str, str]] = []
            late: list[tuple[str, str]] = []
            for kind in namespaces.JOIN_ORDER:
                if spec.linux.namespace(kind) is None:
                    continue
                path = namespaces.proc_path(st.pid, kind)
                if namespaces.same_as_host(kind, path):
                    continue
                (early if kind in ("user", "pid", "time") else late).append((kind, path))
            c.late_joins = late
            # Without a mount namespace the container shares ours: its root is the init's chroot,
            # held by an fd taken while the pid is checked to be the init's still (a reused pid's
            # root could be the host's).
            if spec.linux.namespace("mount") is None:
                try:
                    root_fd = os.open(f"/proc/{st.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError:
                    raise ContainerStateError("cannot exec in a stopped container") from None
                if statemod.proc_stat(st.pid)[0] != st.pid_start:
                    raise ContainerStateError("cannot exec in a stopped container")
            p_r, c_w = os.pipe2(os.O_CLOEXEC)
            sync.rfd = p_r
            c_r, p_w = os.pipe2(os.O_CLOEXEC)
            sync.wfd = p_w
            c.sync = Sync(c_r, c_w)
            from rongqi.oci.spawn import spawn_in_cgroup

            job = _ExecJob(sc, c, proc, root_fd, bool(o.console_relayed))
            try:
                pid = spawn_in_cgroup(sc, cg, 0, early, job.prepare, job.enter, job.main, close_in_helper=(p_r, p_w),
                                      stdio=o.stdio,
                                      keep_fds=(c_r, c_w, c.console_fd, c.seccomp_listener_fd, root_fd,
                                                *range(3, 3 + c.preserve_fds)))
            except RongqiError as err:
                raise RongqiError(f"exec: {err}") from None
        finally:
            for fd in (c_r, c_w, c.console_fd, c.seccomp_listener_fd, root_fd):
                if fd >= 0:
                    os.close(fd)
        try:
            sync.send(proto.GO, str(pid))
            word, text = sync.recv()
            if word == proto.ERROR:
                raise RongqiError(text)
            # "eof": the pipe closed on execve, the process runs.
        except BaseException:
            _kill_and_reap(pid)
            raise
    finally:
        sync.close()
    try:
        if o.pid_file:
            from rongqi.oci.spawn import write_pid_file

            write_pid_file(o.pid_file, pid)
        if o.pidfd_socket:
            from rongqi.oci.spawn import send_pidfd

            send_pidfd(o.pidfd_socket, pid)
    except BaseException:
        # The caller cannot learn of the process: it must not run on unwatched (runc kills it too).
        _kill_and_reap(pid)
        raise
    from rongqi.oci import debug

    debug(f"exec {cid}: process {pid} started: {' '.join(proc.args)}")
    return pid


def _no_state(status: str) -> bytes:
    return b"{}"


class _ExecJob:
    """What the helper does for exec, as methods of a plain value (the helper may
    re-exec under a protected interpreter: see spawn.spawn_in_cgroup)."""

    __slots__ = ("sc", "c", "proc", "root_fd", "relayed")

    def __init__(self, sc: sysc.Syscalls, c: InitConfig, proc, root_fd: int = -1, relayed: bool = False):
        self.sc = sc
        self.c = c
        self.proc = proc
        self.root_fd = root_fd
        self.relayed = relayed

    def prepare(self) -> None:
        from rongqi.oci.spawn import preload_for_child

        # Non-dumpable before the clone, so the child is born so: it appears in the
        # container's PID namespace at once, and until its own prctl (after "go") a process
        # of the container could open its /proc/PID/fd (the host's files) or exe.
        self.sc.prctl(sysc.PR_SET_DUMPABLE, 0)
        preload_for_child(self.c.spec)

    def enter(self) -> None:
        """The rest of the container's namespaces and its root, joined by the helper before it
        clones: the process is visible in the container's pid namespace from its birth, so it
        must be born inside the container's mounts and root. (Joined by the process itself,
        its root and cwd were the host's until then, and a process of the container holding
        CAP_SYS_PTRACE, which crosses the non-dumpable guard, could open them.)"""
        for kind, path in self.c.late_joins:
            namespaces.join(self.sc, kind, path)
        if self.root_fd >= 0:
            self.sc.chdir(self.root_fd)
            self.sc.chroot(".")
            os.close(self.root_fd)
            self.root_fd = -1

    def main(self) -> None:
        _child(self.sc, self.c, self.proc, self.relayed)


def _child(sc: sysc.Syscalls, c: InitConfig, proc, relayed: bool = False) -> None:
    """The exec'd process, before execve: never returns. It is born in the container's
    namespaces and root (see _ExecJob.enter)."""
    code = 1
    try:
        word, text = c.sync.recv()
        if word != proto.GO:
            os._exit(1)
        c.host_pid = int(text)
        sc.prctl(sysc.PR_SET_DUMPABLE, 0)  # see init.setup: the container must not reach our exe
        if c.userns:
            sc.setresgid(0)
            sc.setresuid(0)
        os.umask(proc.user.umask if proc.user.umask is not None else 0o022)
        env = _environ(proc)
        enter_cwd(sc, proc.cwd, "cwd")   # in the container's root, as the init's
        exe = find_executable(proc.args[0], env.get("PATH", DEFAULT_PATH))
        for r in proc.rlimits or ():
            sc.setrlimit(r.resource, r.soft, r.hard)
        if proc.terminal and c.console_fd >= 0:
            from rongqi.oci.terminal import setup_console

            setup_console(sc, c.console_fd, proc.console_size, relayed)
        give_stdio(sc, proc.user.uid, bool(proc.terminal and c.console_fd >= 0))
        keep = 3 + c.preserve_fds
        # Keep only the sync pipe's write end (close-on-exec) to report an execve failure,
        # and the seccomp agent's socket. Before seccomp, as in the init (see init.setup).
        sc.close_fds_from(keep, tuple(fd for fd in (c.sync.wfd, c.seccomp_listener_fd) if fd >= 0))
        from rongqi.oci.init import _reset_signals

        _reset_signals()
        finalize_process(sc, c)
        for fd in range(3, keep):
            os.set_inheritable(fd, True)
        execve(sc, exe, proc.args, env)  # its error in runc's words, as run's: "exec /x: ..."
    except BaseException as err:  # noqa: BLE001
        try:
            c.sync.send("error", describe(err))
        except OSError:
            pass
        code = 127 if type(err).__name__ == "ExecNotFound" else 1
    os._exit(code)


def _kill_and_reap(pid: int) -> None:
    """The exec'd process (our child) killed and reaped, whatever state it reached."""
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
