"""The container's first process: the setup sequence from clone to execve, in order.

This runs in the child that clone(2) made in oci/spawn.py: a fork of the
runtime, so it already holds the parsed spec in memory (no re-exec, no config
passed over a pipe). It talks to its parent over two pipes (Sync) and never
returns: it execs the user's program or exits.
"""

from __future__ import annotations

import os

from rongqi.linux import namespaces
from rongqi.linux import syscall as sysc
from rongqi.oci import protocol as proto
from rongqi.oci.protocol import InitConfig, Sync  # noqa: F401  (jobcodec, callers)

# rongqi.linux.rootfs (and mount) are imported by the helper process that clones the init
# (see oci/spawn.py _helper), off the runtime's own path.

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(sc: sysc.Syscalls, c: InitConfig) -> None:
    """Never returns: execs the container's program or exits non-zero."""
    code = 1
    try:
        setup(sc, c)
    except SystemExit as e:  # pragma: no cover - defensive
        code = e.code if isinstance(e.code, int) else 1
    except RuntimeGone:
        pass  # the runtime failed and says why itself; a second line from us would only confuse
    except BaseException as err:  # noqa: BLE001 - every failure goes to the parent
        msg = describe(err)
        if os.environ.get("RONGQI_DEBUG"):
            import traceback

            traceback.print_exc()
        sent = False
        if c.sync is not None and c.sync.wfd >= 0:
            try:
                c.sync.send("error", msg)
                sent = True
            except OSError:
                pass
        if not sent:
            try:
                # After the start handshake nobody reads the sync channel: the container's
                # stderr is where runc's init reports too.
                line = msg if isinstance(err, ExecFailed) else f"rongqi-oci init: {msg}"
                os.write(2, f"{line}\n".encode())
            except OSError:
                pass
        code = 126 if isinstance(err, ExecDenied) else 127 if isinstance(err, ExecNotFound) else 1
    os._exit(code)


class ExecNotFound(Exception):
    pass


class ExecDenied(ExecNotFound):
    """The file is there, as a regular file with an x bit, but exec is refused (a noexec
    mount): runc's "permission denied" (126), not "no such file" (127)."""


class ExecFailed(Exception):
    """execve itself failed, after the start handshake: reported on the container's stderr."""


class RuntimeGone(Exception):
    """The runtime closed the sync channel: it is reporting its own error."""


def describe(err: BaseException) -> str:
    if isinstance(err, OSError):
        from rongqi.errors import os_error_line

        return os_error_line(err)
    return str(err) or type(err).__name__


def setup(sc: sysc.Syscalls, c: InitConfig) -> None:
    spec = c.spec
    lin = spec.linux
    proc = spec.process
    sync = c.sync
    bind_fds: dict[int, int] = {}
    if c.host_binds:
        word, text, fds = sync.recv_fds(len(spec.mounts))
        text, _, which = text.partition(" ")
        bind_fds = dict(zip((int(i) for i in which.split(",") if i), fds, strict=False))
    else:
        word, text = sync.recv()
    if word != proto.GO:
        raise RuntimeGone()
    c.host_pid = int(text)
    # Until execve (which resets it) no process of the container may open our
    # /proc/PID/exe, fds or memory: they are the host's interpreter (CVE-2019-5736 class).
    sc.prctl(sysc.PR_SET_DUMPABLE, 0)
    if c.userns:
        # Become root of the new user namespace (the parent has written the maps).
        try:
            sc.setresgid(0)
            sc.setresuid(0)
        except OSError as err:
            raise OSError(err.errno, f"cannot become root in the user namespace (is uid/gid 0 mapped?): {err.strerror}") from None
    for kind, path in c.late_joins:
        namespaces.join(sc, kind, path)
    if spec.hostname:
        sc.sethostname(spec.hostname)
    if spec.domainname:
        sc.setdomainname(spec.domainname)

    from rongqi.linux import rootfs as rootfs_mod

    rs: rootfs_mod.SharedRoot | rootfs_mod.RootfsSetup
    if lin.namespace("mount") is None:
        rs = rootfs_mod.SharedRoot(sc, spec.root_path, lin.sysctl)
    else:
        rs = rootfs_mod.RootfsSetup(sc, spec.root_path, propagation=lin.rootfs_propagation, userns=c.userns,
                                    bundle=spec.bundle, mount_label=lin.mount_label, cgroupns=c.new_cgroupns,
                                    cgroup_dirs=c.cgroup_dirs)
    rs.prepare()
    mounts = [rootfs_mod.MountSpec(m.destination, m.type, m.source, m.options, bind_fds.get(i, -1))
              for i, m in enumerate(spec.mounts)]
    # We were born in our cgroup (and cgroup namespace): see oci/creation.py _spawn.
    rs.mount_all(mounts)
    rs.create_devices([_device(d) for d in lin.devices])
    rs.make_cwd(proc.cwd)
    if c.runtime_hooks:
        sync.send(proto.HOOKS)
        _expect(c, proto.HOOKS_DONE)
    hooks = spec.hooks.get("createContainer")
    if hooks:
        # runc's working directory for them: the container's root, seen from the
        # container's mount namespace before pivot_root.
        sc.chdir(rs.rootfs)
        _run_hooks("createContainer", hooks, c.state_json("creating"))
    rs.pivot(c.no_pivot)
    rs.finalize(readonly_root=spec.root_readonly, sysctl=lin.sysctl, readonly_paths=lin.readonly_paths,
                masked_paths=lin.masked_paths)
    if not c.no_new_keyring:
        sc.join_session_keyring("_ses." + c.container_id)
    os.umask(proc.user.umask if proc.user.umask is not None else 0o022)

    env = _environ(proc)
    enter_cwd(sc, proc.cwd, "process.cwd")
    exe = find_executable(proc.args[0], env.get("PATH", DEFAULT_PATH))

    if proc.terminal:
        from rongqi.oci.terminal import setup_console

        setup_console(sc, c.console_fd, proc.console_size)
        c.console_fd = -1
    give_stdio(sc, proc.user.uid, proc.terminal)

    # Everything is done before the start handshake, as in runc's init: once `start` has
    # opened the fifo only the startContainer hooks and execve are left, so `start` returns
    # when the program runs and a signal sent right after it reaches the program.
    keep = 3 + c.preserve_fds
    # The fifo is reopened through our fd directory in a verified procfs, opened now: after
    # seccomp only openat and fstat remain for the handshake (see _await_start).
    from rongqi.linux import procfs

    fd_dir = procfs.open_own_fd_dir(sc)
    # No fd of the runtime survives into the container (CVE-2024-21626 class). Closed before
    # seccomp: under a filter that denies close_range, closing is one syscall per fd number.
    sc.close_fds_from(keep, tuple(fd for fd in (sync.rfd, sync.wfd, c.fifo_fd, fd_dir, c.seccomp_listener_fd)
                                  if fd >= 0))
    finalize_process(sc, c)
    sync.send(proto.READY)
    sync.close()
    _await_start(c, fd_dir)

    hooks = spec.hooks.get("startContainer")
    if hooks:
        # As the container's user, with its capabilities and seccomp filter (as runc).
        _run_hooks("startContainer", hooks, c.state_json("created"))
    # After the hooks: run_hook relies on SIGPIPE being ignored when a hook leaves its stdin unread.
    _reset_signals()
    for fd in range(3, keep):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    execve(sc, exe, proc.args, env)


def _await_start(c: InitConfig, fd_dir: int) -> None:
    """The start handshake: block until `start` opens exec.fifo, then write one byte.

    The fifo is reopened for writing from its O_PATH fd through fd_dir, our verified
    /proc/PID/fd (runc's /proc/self/fd/N reopen). The fd stays open, close-on-exec: `start`
    reads on until EOF, which comes at our execve (or our exit), so that it returns only once
    the program runs.
    """
    from rongqi.linux import procfs

    try:
        fd = procfs.reopen(fd_dir, c.fifo_fd, os.O_WRONLY, os.open)
    finally:
        os.close(fd_dir)
        os.close(c.fifo_fd)
        c.fifo_fd = -1
    os.write(fd, b"0")


def execve(sc: sysc.Syscalls, exe: str, args: list[str], env: dict[str, str]) -> None:
    try:
        sc.execve(exe, args, env)
    except OSError as err:
        # runc's words (Go's errno strings are lower case): "exec /x: exec format error".
        why = err.strerror or str(err)
        raise ExecFailed(f"exec {exe}: {why[:1].lower()}{why[1:]}") from None


def give_stdio(sc: sysc.Syscalls, uid: int, terminal: bool) -> None:
    """Stdio to the process's user (runc's fixStdioPermissions), so it can reopen it by path.

    Only the uid changes: the group and mode of a pty are devpts' (its gid= and mode=
    options, tty and 0620 in runc's spec). Only the pty the runtime made and pipes or
    sockets are given: a host terminal or file the caller passed as stdio is not ours to
    give away (runc chowns those too). Ids are the container's: we are root of its user
    namespace here.
    """
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        kind = st.st_mode & 0o170000
        if st.st_uid == uid or not (kind in (0o010000, 0o140000) or (terminal and kind == 0o020000)):
            continue  # FIFO, socket; the pty is a character device
        try:
            sc.fchown(fd, uid, -1)
        except OSError as err:
            # EINVAL: uid not mapped; EPERM: the owner is not mapped in our user namespace;
            # EROFS: as runc, leave such stdio as it is.
            if err.errno not in (1, 22, 30):
                raise OSError(err.errno, f"stdio: cannot give fd {fd} to uid {uid}: {err.strerror}") from None


def _expect(c: InitConfig, want: str) -> str:
    """Read the runtime's next message, which must be want."""
    word, text = c.sync.recv()
    if word == want:
        return text
    if word in (proto.EOF, proto.ABORT):
        raise RuntimeGone()  # the runtime failed (a hook, say) and reports it itself
    raise RuntimeError(text or f"the runtime sent {word!r} (waiting for {want})")


def finalize_process(sc: sysc.Syscalls, c: InitConfig) -> None:
    """User, groups, capabilities, no_new_privs and seccomp: the last steps before execve."""
    proc = c.spec.process
    lin = c.spec.linux
    user = proc.user
    caps = c.caps
    _apply_exec_attributes(sc, proc, lin)
    seccomp = lin.seccomp
    notify_fd = None
    if c.seccomp_filter is not None and c.seccomp_before_caps:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we have it.
        notify_fd = sc.load_seccomp(c.seccomp_filter)
    if caps is not None:
        sc.drop_bounding(caps.bounding)
        if user.uid != 0:
            sc.set_keep_caps(True)
    if not (c.userns and _setgroups_denied()):
        sc.setgroups(user.additional_gids)
    sc.setresgid(user.gid)
    sc.setresuid(user.uid)
    if caps is not None:
        sc.set_caps(caps.effective, caps.permitted, caps.inheritable)
        # Like runc, raise only what the kernel allows in the ambient set:
        # capabilities that are both permitted and inheritable.
        ambient = caps.ambient & caps.permitted & caps.inheritable
        if ambient:
            sc.raise_ambient(ambient)
        if user.uid != 0:
            sc.set_keep_caps(False)
    if proc.no_new_privileges:
        sc.prctl(sysc.PR_SET_NO_NEW_PRIVS, 1)
    if c.seccomp_filter is not None and not c.seccomp_before_caps:
        notify_fd = sc.load_seccomp(c.seccomp_filter)
    if notify_fd is not None:
        from rongqi.linux import seccomp as seccomp_mod

        seccomp_mod.send_notify_fd(notify_fd, seccomp.listenerPath, c.state_json("creating"),
                                   seccomp.listenerMetadata, sock_fd=c.seccomp_listener_fd)
        c.seccomp_listener_fd = -1
        os.close(notify_fd)


def _apply_exec_attributes(sc: sysc.Syscalls, proc, lin) -> None:
    """Personality, scheduler, I/O priority, CPU affinity and LSM labels for the coming execve.

    Done while the process still holds its privileges (a real-time policy needs CAP_SYS_NICE).
    """
    if lin.personality is not None or proc.scheduler or proc.io_priority:
        try:
            if lin.personality is not None:
                sc.set_personality(lin.personality)
            if proc.scheduler:
                sc.set_scheduler(*proc.scheduler)
            if proc.io_priority:
                sc.set_io_priority(*proc.io_priority)
        except OSError as err:
            raise OSError(err.errno, f"process: {err.strerror}") from None
    if proc.exec_cpu_affinity:
        sc.sched_setaffinity(proc.exec_cpu_affinity)
    if proc.apparmor_profile or proc.selinux_label:
        from rongqi.linux import lsm

        if proc.apparmor_profile:
            lsm.set_apparmor_exec(proc.apparmor_profile)
        if proc.selinux_label:
            lsm.set_selinux_exec(proc.selinux_label)


def _reset_signals() -> None:
    # Python ignores SIGPIPE and SIGXFSZ; ignored signals stay ignored across
    # execve, so the container's program would inherit that. Undo it, and
    # unblock everything.
    import _signal

    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def _setgroups_denied() -> bool:
    # Read through a verified procfs: in the container's view /proc may be anything.
    from rongqi.linux import procfs

    try:
        return procfs.read("/proc/self/setgroups").strip() == b"deny"
    except FileNotFoundError:
        return False


def enter_cwd(sc: sysc.Syscalls, cwd: str, what: str) -> None:
    """chdir to the process's cwd, which must be a path in the container's root (CVE-2024-21626:
    a cwd reached through a leaked fd of the host's is "unreachable" and getcwd fails)."""
    try:
        sc.chdir(cwd)
        os.getcwd()
    except OSError as err:
        raise OSError(err.errno, f"{what} {cwd}: {err.strerror}") from None


def _environ(proc) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in proc.env:
        k, sep, v = e.partition("=")
        if sep and k:
            env[k] = v
    # runc: an unset or empty HOME is the user's home from the container's /etc/passwd.
    if not env.get("HOME"):
        env["HOME"] = _home_of(proc.user.uid)
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def find_executable(name: str, path: str) -> str:
    """exec.LookPath as runc uses it: a name with a slash is taken as is, else searched in PATH."""
    if "/" in name:
        if _is_executable(name):
            return name
        try:
            st = os.stat(name)
        except OSError:
            st = None
        if st is not None and (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o111:
            raise ExecDenied(f'exec: "{name}": permission denied')
        raise ExecNotFound(f'exec: "{name}": stat {name}: no such file or directory or not executable')
    for d in path.split(":"):
        p = (d or ".") + "/" + name
        if _is_executable(p):
            return p
    raise ExecNotFound(f'exec: "{name}": executable file not found in $PATH')


def _is_executable(p: str) -> bool:
    try:
        st = os.stat(p)
    except OSError:
        return False
    return (st.st_mode & 0o170000) == 0o100000 and os.access(p, os.X_OK)


def _device(d):
    from rongqi.linux import rootfs as rootfs_mod

    mode = d.file_mode if d.file_mode is not None else 0o666
    return rootfs_mod.DeviceSpec(d.path, d.type, d.major, d.minor, mode, d.uid or 0, d.gid or 0)


def _run_hooks(kind: str, hooks, state_json: bytes) -> None:
    from rongqi.oci.hooks import HookSpec, run_hooks

    run_hooks(kind, [HookSpec(h.path, h.args, h.env, h.timeout) for h in hooks], state_json)
