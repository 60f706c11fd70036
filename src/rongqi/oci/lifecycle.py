"""The lifecycle of a created container: start (the exec fifo's handshake, poststart hooks),
kill (a signal to the init, checked to still be it, or to the whole cgroup), delete
(the init and the cgroup gone, poststop hooks, the state dir removed).
"""

from __future__ import annotations

import os

from rongqi.errors import ContainerStateError
from rongqi.linux.signals import SIGKILL
from rongqi.oci import debug
from rongqi.oci import statedir as statemod


def start(root: str, cid: str) -> statemod.State:
    st = statemod.load(root, cid)
    with statemod.Lock(st.dir):
        status = st.status()
        if status == "stopped":
            raise ContainerStateError("cannot start a container that has stopped")
        if status != "created":
            raise ContainerStateError(f"cannot start an already {status} container")
        _release_init(st)
    debug(f"start {cid}: init {st.pid} released")
    _run_hooks_warn("poststart", st)
    return st


def _release_init(st: statemod.State) -> None:
    """The start handshake (see init._await_start): open exec.fifo, read the init's byte,
    then read on to EOF, which comes when the init execs the program (its end of the fifo
    is close-on-exec) or exits. As runc's start: return once the program runs.

    The fifo is removed as soon as the byte is read (runc: at EOF), so that a `start` killed
    while startContainer hooks run leaves no container that says "created" while its
    program runs; `state` then says running while those hooks run.
    """
    import select

    fifo = os.path.join(st.dir, statemod.FIFO)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                try:
                    data = os.read(fd, 1)
                except BlockingIOError:
                    data = b""
                if data:
                    break
            if not st.init_alive():
                raise ContainerStateError("cannot start a container that has stopped (its init exited)")
        os.unlink(fifo)
        os.set_blocking(fd, True)
        while os.read(fd, 64):
            pass
    finally:
        os.close(fd)


def _run_hooks_warn(kind: str, st: statemod.State) -> None:
    hooks = (st.hooks or {}).get(kind)
    if not hooks:
        return
    from rongqi.oci.hooks import HookSpec, run_hooks_warn

    status = "stopped" if kind == "poststop" else "running"
    # The spec: a failing poststart/poststop hook is logged, and the lifecycle (and the
    # hooks after it) goes on. In the bundle, as runc's run runs them. To stderr, or with
    # --log to the log, as every warning.
    failures = run_hooks_warn(kind, [HookSpec.from_dict(h) for h in hooks],
                              st.hook_json(status, st.pid if status != "stopped" else 0), cwd=st.bundle)
    if failures:
        from rongqi.oci import log

        for msg in failures:
            log.warn(msg)


def kill(root: str, cid: str, sig: int, all_: bool = False) -> None:
    st = statemod.load(root, cid)
    if sig == SIGKILL and st.cgroup and not _own_pid_namespace(st):
        # runc: the kernel kills a pid namespace's every process with its init only when
        # the container has its own; sharing the host's (or another's), its exec'd and
        # forked processes would outlive the init. So SIGKILL goes to the whole cgroup,
        # even once the init is gone (runc's issue 4047).
        from rongqi.linux import cgroups

        cg = cgroups.Cgroup.from_dict(st.cgroup)
        if any(os.path.isdir(d) for d in cg.dirs.values()):
            cg.kill_all(sig)
        debug(f"kill {cid}: SIGKILL sent to every process of its cgroup (no pid namespace of its own)")
        return
    status = st.status()
    if status == "stopped":
        if not all_:
            raise ContainerStateError("container not running")
        # runc: --all on a stopped container succeeds; what is still in its cgroup (the
        # init of a container in the host's pid namespace dies alone) gets the signal.
        if st.cgroup:
            from rongqi.linux import cgroups

            cg = cgroups.Cgroup.from_dict(st.cgroup)
            if any(os.path.isdir(d) for d in cg.dirs.values()):
                cg.kill_all(sig)
        return
    if all_ and st.cgroup:
        from rongqi.linux import cgroups

        cgroups.Cgroup.from_dict(st.cgroup).kill_all(sig)
        return
    signal_init(st, sig)
    debug(f"kill {cid}: signal {sig} sent to init {st.pid}")
    if sig == SIGKILL and status == "paused":
        # A frozen process dies only once thawed (v1 freezer): thaw, as runc does.
        from rongqi.linux import cgroups

        try:
            cgroups.Cgroup.from_dict(st.cgroup or {}).thaw()
        except OSError:
            pass


def _own_pid_namespace(st: statemod.State) -> bool:
    """Whether the container made a pid namespace of its own (a "pid" entry with no path)."""
    from rongqi.fastjson import JSONError, loads

    try:
        with open(st.config, "rb") as f:
            cfg = loads(f.read())
        nss = cfg["linux"]["namespaces"]
        return any(ns.get("type") == "pid" and not ns.get("path") for ns in nss)
    except (OSError, JSONError, KeyError, TypeError, AttributeError):
        return True  # unknown: signal the init only, as before


def _pidfd_send_signal(pidfd: int, sig: int) -> None:
    import _signal  # signal's C half: pidfd_send_signal without ctypes or enum

    _signal.pidfd_send_signal(pidfd, sig)


def signal_init(st: statemod.State, sig: int) -> None:
    """Signal the init, sure that the pid still names it (pidfd, start time checked)."""
    try:
        pidfd = os.pidfd_open(st.pid)
    except ProcessLookupError:
        raise ContainerStateError("container not running") from None
    try:
        if statemod.proc_stat(st.pid)[0] != st.pid_start:
            raise ContainerStateError("container not running")
        try:
            _pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise ContainerStateError("container not running") from None
    finally:
        os.close(pidfd)


def delete(root: str, cid: str, force: bool = False) -> None:
    st = statemod.load(root, cid)
    with statemod.Lock(st.dir):
        status = st.status()
        if status in ("running", "paused"):
            if not force:
                raise ContainerStateError(f"cannot delete container {cid} that is not stopped: {status}")
        if status != "stopped":
            _kill_and_wait(st)
        destroy(st)
    _run_hooks_warn("poststop", st)
    statemod.remove_dir(st.dir)
    debug(f"delete {cid}: cgroup and state removed")


def _kill_and_wait(st: statemod.State) -> None:
    cg = None
    if st.cgroup:
        from rongqi.linux import cgroups

        cg = cgroups.Cgroup.from_dict(st.cgroup)
    try:
        pidfd = os.pidfd_open(st.pid)
    except ProcessLookupError:
        pidfd = -1
    try:
        if cg is not None and not (st.cgroup or {}).get("shared"):
            try:
                cg.kill_all(SIGKILL)
            except OSError:
                pass
        if pidfd >= 0:
            if statemod.proc_stat(st.pid)[0] == st.pid_start:
                try:
                    _pidfd_send_signal(pidfd, SIGKILL)
                except ProcessLookupError:
                    pass
            import select

            p = select.poll()
            p.register(pidfd, select.POLLIN)
            p.poll(10_000)
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    # If the init is our own child (run, engine), reap it.
    try:
        os.waitpid(st.pid, os.WNOHANG)
    except ChildProcessError:
        pass


def destroy(st: statemod.State) -> None:
    if st.cgroup:
        from rongqi.linux import cgroups

        cg = cgroups.Cgroup.from_dict(st.cgroup)
        if st.cgroup.get("shared"):
            # Processes that were there before the container are not ours to kill (runc's delete
            # leaves them too): remove what has emptied, leave the rest to its owner.
            for d in cg.dirs.values():
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            return
        cg.destroy()
