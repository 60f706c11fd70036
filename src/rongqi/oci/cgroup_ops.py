"""What the runtime does to a live container's cgroup: update, pause, resume, ps, stats, events.

Shared by the rongqi-oci commands and the engine (in-process); runc's status rules and wording.
"""

from __future__ import annotations

from rongqi.errors import ContainerStateError, RongqiError, UsageError
from rongqi.oci import statedir as statemod

# runc's libcontainer errors, matched by clients (containerd's shim, podman).
NOT_RUNNING = "container not running"
NOT_PAUSED = "container not paused"


def container_cgroup(st: statemod.State):
    """The container's Cgroup, rebuilt from state.json."""
    if not st.cgroup:
        raise RongqiError(f"container {st.id} has no cgroup recorded in its state")
    from rongqi.linux.cgroups import Cgroup

    return Cgroup.from_dict(st.cgroup)


def update(root: str, cid: str, res) -> None:
    """Apply a resources.Resources to the live cgroup; the container must not be stopped.

    As runc's update, device rules are not changed by an update (they stay as created).
    """
    st = statemod.load(root, cid)
    with statemod.Lock(st.dir):
        if st.status() == "stopped":
            raise ContainerStateError(NOT_RUNNING)
        res.devices = None
        container_cgroup(st).apply(res)


def pause(root: str, cid: str) -> None:
    st = statemod.load(root, cid)
    with statemod.Lock(st.dir):
        if st.status() not in ("running", "created"):
            raise ContainerStateError(NOT_RUNNING)
        container_cgroup(st).freeze()


def resume(root: str, cid: str) -> None:
    st = statemod.load(root, cid)
    with statemod.Lock(st.dir):
        status = st.status()
        # A created container that was paused still reports "created" (its exec fifo wins).
        if status == "stopped" or not st.cgroup:
            raise ContainerStateError(NOT_PAUSED)
        cg = container_cgroup(st)
        if status != "paused" and not cg.is_frozen():
            raise ContainerStateError(NOT_PAUSED)
        cg.thaw()


def pids(root: str, cid: str) -> list[int]:
    """Host pids of every process in the container's cgroup (sub-cgroups included)."""
    st = statemod.load(root, cid)
    if not st.cgroup:
        return []
    return container_cgroup(st).pids()


def stats(st: statemod.State) -> dict:
    """runc's events --stats data object: {cpu, memory, pids, blkio, hugetlb}."""
    return container_cgroup(st).stats()


def parse_interval(text: str) -> float:
    """A Go duration ("5s", "500ms", "1m30s", "1.5s") -> seconds; must be > 0, as runc requires."""
    units = {
        "ns": 1e-9,
        "us": 1e-6,
        "µs": 1e-6,
        "ms": 1e-3,
        "s": 1.0,
        "m": 60.0,
        "h": 3600.0,
    }
    s = text.strip()
    total = 0.0
    i = 0
    if not s:
        raise UsageError(
            f'invalid value "{text}" for flag --interval: not a duration like 5s or 500ms'
        )
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        num, unit = s[i:j], s[j:k]
        try:
            value = float(num)
        except ValueError:
            raise UsageError(
                f'invalid value "{text}" for flag --interval: not a duration like 5s or 500ms'
            ) from None
        if unit not in units:
            raise UsageError(
                f'invalid value "{text}" for flag --interval: unknown unit "{unit}" (use ms, s, m or h)'
            )
        total += value * units[unit]
        i = k
    if total <= 0:
        raise UsageError("duration interval must be greater than 0")
    return total


def events(root: str, cid: str, interval: float, emit, oom_poll: float = 0.05) -> None:
    """Stream events until the container stops: emit(dict) a stats event every interval and an
    oom event whenever the cgroup's oom_kill counter grows.

    On v1 an eventfd registered on memory.oom_control wakes us the moment the cgroup is under
    OOM, before the kill, so the event is not lost if the container is deleted right after;
    the counter (v1 memory.oom_control, v2 memory.events) is also polled, so v2 and a kill that
    raced our start are seen too.
    """
    import time

    st = statemod.load(root, cid)
    if st.status() == "stopped":
        raise ContainerStateError(f"container with id {cid} is not running")
    cg = container_cgroup(st)
    ooms = _oom_count(cg)
    watch = _OomWatch(cg)
    last_oom = 0.0
    try:
        next_stats = time.monotonic() + interval
        while True:
            if watch.fired():
                # Under OOM now; the kill (and the counter) follow within moments.
                deadline = time.monotonic() + 0.5
                n = _oom_count(cg)
                while n <= ooms and time.monotonic() < deadline and watch.alive():
                    time.sleep(0.005)
                    n = _oom_count(cg)
                if n > ooms:
                    report = True
                elif not watch.alive():
                    # Deleted right after the kill (`run` without --keep): the notice was the OOM,
                    # unless it repeats one we just reported.
                    report = time.monotonic() - last_oom > 1.0
                else:
                    # No kill but still under OOM: the OOM killer is disabled and the task waits.
                    report = watch.under_oom()
                if report:
                    emit({"type": "oom", "id": cid})
                    last_oom = time.monotonic()
                ooms = max(ooms, n)
            n = _oom_count(cg)
            if n > ooms:
                ooms = n
                emit({"type": "oom", "id": cid})
                last_oom = time.monotonic()
            if not st.init_alive():
                # One last look: the kill that ended it may have landed after our read.
                if _oom_count(cg) > ooms:
                    emit({"type": "oom", "id": cid})
                return
            now = time.monotonic()
            if now >= next_stats:
                try:
                    data = cg.stats()
                except OSError:
                    # The cgroup went away under us (deleted): the container is gone.
                    return
                emit({"type": "stats", "id": cid, "data": data})
                next_stats = now + interval
            watch.wait(max(0.0, min(oom_poll, next_stats - time.monotonic())))
    finally:
        watch.close()


class _OomWatch:
    """v1's OOM notification: an eventfd registered through cgroup.event_control (as runc does).

    Elsewhere (v2, no memory controller) it does nothing and wait() just sleeps.
    """

    __slots__ = ("control", "efd", "ofd", "poller")

    def __init__(self, cg) -> None:
        self.efd = self.ofd = -1
        self.control = ""
        self.poller = None
        d = cg.dirs.get("memory") if cg.mode != "v2" else None
        if not d:
            return
        import os

        try:
            self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self.ofd = os.open(d + "/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            self.control = d + "/cgroup.event_control"
            fd = os.open(self.control, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, f"{self.efd} {self.ofd}".encode())
            finally:
                os.close(fd)
            import select

            self.poller = select.poll()
            self.poller.register(self.efd, select.POLLIN)
        except OSError:
            self.close()

    def wait(self, timeout: float) -> None:
        if self.poller is None:
            import time

            time.sleep(timeout)
            return
        self.poller.poll(int(timeout * 1000))

    def alive(self) -> bool:
        import os

        return not self.control or os.path.exists(self.control)

    def under_oom(self) -> bool:
        import os

        try:
            text = os.pread(self.ofd, 4096, 0).decode()
        except OSError:
            return False
        return "under_oom 1" in text

    def fired(self) -> bool:
        """True once per notification of OOM; a notification caused by the cgroup's removal is not one."""
        if self.efd < 0:
            return False
        import os

        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            return False
        except OSError:
            return False
        return self.alive()

    def close(self) -> None:
        import os

        for fd in (self.efd, self.ofd):
            if fd >= 0:
                os.close(fd)
        self.efd = self.ofd = -1
        self.poller = None


def _oom_count(cg) -> int:
    try:
        return cg.oom_kill_count()
    except OSError:
        return 0


def pid_column(header: str) -> int:
    """Index of the PID column in ps(1)'s header (runc's getPidIndex)."""
    fields = header.split()
    for i, name in enumerate(fields):
        if name == "PID":
            return i
    raise RongqiError("couldn't find PID field in ps output")


def filter_ps_table(output: str, wanted: list[int]) -> str:
    """ps(1)'s output cut down to the header and the rows whose PID is one of wanted."""
    lines = output.split("\n")
    if not lines or not lines[0].strip():
        raise RongqiError("ps printed nothing")
    idx = pid_column(lines[0])
    keep = set(wanted)
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= idx:
            continue
        try:
            pid = int(fields[idx])
        except ValueError:
            raise RongqiError(f"unexpected pid {fields[idx]!r} in ps output") from None
        if pid in keep:
            out.append(line)
    return "\n".join(out) + "\n"


def run_ps(args: list[str]) -> str:
    """ps(1) with args, its output as text; one clear line when it fails."""
    import subprocess

    try:
        r = subprocess.run(
            ["ps", *args], stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise RongqiError(
            "ps(1) is not installed on this host (apt-get install procps)"
        ) from None
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise RongqiError(
            f"ps {' '.join(args)} failed: {err[0] if err else 'exit status ' + str(r.returncode)}"
        )
    return r.stdout.decode(errors="replace")


__all__ = [
    "NOT_PAUSED",
    "NOT_RUNNING",
    "container_cgroup",
    "events",
    "filter_ps_table",
    "parse_interval",
    "pause",
    "pids",
    "resume",
    "run_ps",
    "stats",
    "update",
]
