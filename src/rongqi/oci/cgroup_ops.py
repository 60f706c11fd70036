"""What the runtime does to a live container's cgroup: update, pause, resume, ps, stats, events.

Shared by the rongqi-oci commands and the engine (in-process); runc's status rules and wording.
"""

from __future__ import annotations

from rongqi.errors import ContainerStateError, RongqiError, UsageError
from rongqi.oci import state as statemod

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
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    s = text.strip()
    total = 0.0
    i = 0
    if not s:
        raise UsageError(f'invalid value "{text}" for flag --interval: not a duration like 5s or 500ms')
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
            raise UsageError(f'invalid value "{text}" for flag --interval: not a duration like 5s or 500ms') from None
        if unit not in units:
            raise UsageError(f'invalid value "{text}" for flag --interval: unknown unit "{unit}" (use ms, s, m or h)')
        total += value * units[unit]
        i = k
    if total <= 0:
        raise UsageError("duration interval must be greater than 0")
    return total


def events(root: str, cid: str, interval: float, emit, oom_poll: float = 0.05) -> None:
    """Stream events until the container stops: emit(dict) a stats event every interval and an
    oom event whenever the cgroup's oom_kill counter grows.

    The counter is polled (a cheap read) rather than watched with an eventfd, because the same
    code must serve v2's memory.events, and a poll also catches a kill that raced our start.
    """
    import time

    st = statemod.load(root, cid)
    if st.status() == "stopped":
        raise ContainerStateError(f"container with id {cid} is not running")
    cg = container_cgroup(st)
    ooms = _oom_count(cg)
    next_stats = time.monotonic() + interval
    while True:
        n = _oom_count(cg)
        if n > ooms:
            ooms = n
            emit({"type": "oom", "id": cid})
        if not st.init_alive():
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
        time.sleep(max(0.0, min(oom_poll, next_stats - time.monotonic())))


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
        r = subprocess.run(["ps", *args], stdin=subprocess.DEVNULL, capture_output=True)
    except FileNotFoundError:
        raise RongqiError("ps(1) is not installed on this host (apt-get install procps)") from None
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise RongqiError(f"ps {' '.join(args)} failed: {err[0] if err else 'exit status ' + str(r.returncode)}")
    return r.stdout.decode(errors="replace")


__all__ = ["update", "pause", "resume", "pids", "stats", "events", "parse_interval", "filter_ps_table",
           "run_ps", "container_cgroup", "NOT_RUNNING", "NOT_PAUSED"]
