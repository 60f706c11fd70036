"""A running container's figures: `stats` from its cgroup and netns, `top` from /proc.

stats: CPU, memory, block and net IO, pids read through rongqi.linux.cgroups (v1, v2, hybrid)
and /proc/PID/net/dev, turned into podman's columns. top: podman's (psgo's) AIX descriptors
computed from /proc of the container's processes; user and group names from the container's
own /etc/passwd and /etc/group, read inside its root.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rongqi import units

# -- Go-style value formatting (podman prints Go's values) --------------------------------------


def go_duration(ns: int | float) -> str:
    """time.Duration.String(): 1h2m3.5s, 4.682560839s, 114.697878ms, 12µs, 0s."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return sign + _frac(ns, 1000) + "µs"
    if ns < 1_000_000_000:
        return sign + _frac(ns, 1_000_000) + "ms"
    out = ""
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return sign + out + _frac(rest, 1_000_000_000) + "s"


def _frac(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{part:0{digits}d}".rstrip("0")


human_size, bytes_size = units.human_size, units.bytes_size


# -- /proc readers ----------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Proc:
    """One process as /proc shows it to the host (ids are the host's)."""

    pid: int
    ppid: int
    pgid: int
    state: str
    comm: str
    args: list[str]
    tty_nr: int
    utime: int        # clock ticks
    stime: int
    nice: int
    start_ticks: int  # since boot
    vsize: int        # bytes
    rss_pages: int
    status: dict[str, str] = field(default_factory=dict)

    @property
    def ns_pid(self) -> int:
        """The pid in the innermost pid namespace (the container's)."""
        return int(self.status.get("NSpid", str(self.pid)).split()[-1])

    def ids(self, key: str) -> list[int]:
        return [int(x) for x in self.status.get(key, "").split()]


def read_proc(pid: int, proc: str = "/proc") -> Proc | None:
    """None if the process is gone."""
    base = f"{proc}/{pid}"
    try:
        with open(f"{base}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        with open(f"{base}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"{base}/status") as f:
            status = {}
            for line in f:
                k, _, v = line.partition(":")
                status[k] = v.strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm is in parentheses and may hold spaces and ")": the last ")" ends it.
    lp, rp = raw.index("("), raw.rindex(")")
    comm = raw[lp + 1:rp]
    f = raw[rp + 2:].split()
    # fields after comm, from field 3 (state) on: index = field number - 3
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0")]
    while args and args[-1] == "":
        args.pop()
    return Proc(pid=pid, ppid=int(f[1]), pgid=int(f[2]), state=f[0], comm=comm, args=args,
                tty_nr=int(f[4]), utime=int(f[11]), stime=int(f[12]), nice=int(f[16]),
                start_ticks=int(f[19]), vsize=int(f[20]), rss_pages=int(f[21]), status=status)


def tty_name(tty_nr: int) -> str:
    if tty_nr == 0:
        return "?"
    major, minor = os.major(tty_nr), os.minor(tty_nr)
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    if major == 5 and minor == 1:
        return "console"
    return "?"


def parse_passwd(text: str) -> dict[int, str]:
    """/etc/passwd or /etc/group: id -> name (the first name of an id wins, as getpwuid)."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            out.setdefault(int(parts[2]), parts[0])
    return out


# -- top: psgo's descriptors ------------------------------------------------------------------
@dataclass
class TopContext:
    """What the descriptors need besides a process: name tables and clocks."""

    users: dict[int, str]            # the container's /etc/passwd
    groups: dict[int, str]           # the container's /etc/group
    host_users: dict[int, str]
    host_groups: dict[int, str]
    ns_pids: dict[int, int]          # host pid -> container pid, for ppid and pgid
    to_container_uid: Callable[[int], int] = lambda i: i
    to_container_gid: Callable[[int], int] = lambda i: i
    now: float = field(default_factory=time.time)
    boot: float = field(default_factory=boot_time)

    def user(self, host_uid: int) -> str:
        uid = self.to_container_uid(host_uid)
        return self.users.get(uid, str(uid))

    def group(self, host_gid: int) -> str:
        gid = self.to_container_gid(host_gid)
        return self.groups.get(gid, str(gid))


def _elapsed(p: Proc, c: TopContext) -> float:
    return max(0.0, c.now - (c.boot + p.start_ticks / _CLK_TCK))


def _caps(p: Proc, key: str) -> str:
    from rongqi.linux import caps
    value = int(p.status.get(key, "0"), 16)
    if value == 0:
        return "none"
    full = (1 << (caps.last_cap() + 1)) - 1
    if value & full == full:
        return "full"
    return ",".join(sorted(n.removeprefix("CAP_") for n in caps.names(value)))


def _pcpu(p: Proc, c: TopContext) -> str:
    elapsed = _elapsed(p, c)
    used = (p.utime + p.stime) / _CLK_TCK
    return f"{(used / elapsed * 100) if elapsed > 0 else 0.0:.3f}"


def _stime(p: Proc, c: TopContext) -> str:
    t = time.gmtime(c.boot + p.start_ticks / _CLK_TCK)
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", t)


def _label(p: Proc, c: TopContext) -> str:
    try:
        with open(f"/proc/{p.pid}/attr/current", "rb") as f:
            v = f.read().rstrip(b"\0\n").decode(errors="replace")
        return v or "?"
    except OSError:
        return "?"


_SECCOMP = {"0": "disabled", "1": "strict", "2": "filter"}

# descriptor -> (header, value). psgo's names and headers, in its order.
DESCRIPTORS: dict[str, tuple[str, Callable[[Proc, TopContext], str]]] = {
    "args": ("COMMAND", lambda p, c: " ".join(p.args) if p.args else f"[{p.comm}]"),
    "capamb": ("AMBIENT CAPS", lambda p, c: _caps(p, "CapAmb")),
    "capbnd": ("BOUNDING CAPS", lambda p, c: _caps(p, "CapBnd")),
    "capeff": ("EFFECTIVE CAPS", lambda p, c: _caps(p, "CapEff")),
    "capinh": ("INHERITED CAPS", lambda p, c: _caps(p, "CapInh")),
    "capprm": ("PERMITTED CAPS", lambda p, c: _caps(p, "CapPrm")),
    "comm": ("COMMAND", lambda p, c: p.comm),
    "etime": ("ELAPSED", lambda p, c: go_duration(_elapsed(p, c) * 1e9)),
    "group": ("GROUP", lambda p, c: c.group(p.ids("Gid")[1])),
    "groups": ("GROUPS", lambda p, c: ",".join(c.group(g) for g in p.ids("Groups")) or "none"),
    "hgroup": ("HGROUP", lambda p, c: c.host_groups.get(p.ids("Gid")[1], str(p.ids("Gid")[1]))),
    "hgroups": ("HGROUPS", lambda p, c: ",".join(c.host_groups.get(g, str(g))
                                                for g in p.ids("Groups")) or "none"),
    "hpid": ("HPID", lambda p, c: str(p.pid)),
    "huser": ("HUSER", lambda p, c: c.host_users.get(p.ids("Uid")[1], str(p.ids("Uid")[1]))),
    "label": ("LABEL", _label),
    "nice": ("NI", lambda p, c: str(p.nice)),
    "pcpu": ("%CPU", _pcpu),
    "pgid": ("PGID", lambda p, c: str(c.ns_pids.get(p.pgid, 0))),
    "pid": ("PID", lambda p, c: str(p.ns_pid)),
    "ppid": ("PPID", lambda p, c: str(c.ns_pids.get(p.ppid, 0))),
    "rgroup": ("RGROUP", lambda p, c: c.group(p.ids("Gid")[0])),
    "rss": ("RSS", lambda p, c: str(p.rss_pages * _PAGE // 1024)),
    "ruser": ("RUSER", lambda p, c: c.user(p.ids("Uid")[0])),
    "seccomp": ("SECCOMP", lambda p, c: _SECCOMP.get(p.status.get("Seccomp", ""), "?")),
    "state": ("STATE", lambda p, c: p.state),
    "stime": ("STIME", _stime),
    "time": ("TIME", lambda p, c: go_duration((p.utime + p.stime) // _CLK_TCK * 1_000_000_000)),
    "tty": ("TTY", lambda p, c: tty_name(p.tty_nr)),
    "user": ("USER", lambda p, c: c.user(p.ids("Uid")[1])),
    "vsz": ("VSZ", lambda p, c: str(p.vsize // 1024)),
}
# ps(1)'s AIX format codes, as psgo accepts them.
AIX = {"%C": "pcpu", "%G": "group", "%P": "ppid", "%U": "user", "%a": "args", "%c": "comm",
       "%g": "rgroup", "%n": "nice", "%p": "pid", "%r": "pgid", "%t": "etime", "%u": "ruser",
       "%x": "time", "%y": "tty", "%z": "vsz"}
DEFAULT_DESCRIPTORS = ["user", "pid", "ppid", "pcpu", "etime", "tty", "time", "args"]


def parse_descriptors(args: list[str]) -> list[str] | None:
    """The descriptors named by top's arguments (comma or space separated, AIX codes too);
    None when one is not a descriptor: then the arguments are ps(1)'s, run in the container."""
    if not args:
        return list(DEFAULT_DESCRIPTORS)
    out = []
    for arg in args:
        for word in arg.split(","):
            word = word.strip()
            if not word:
                continue
            name = AIX.get(word, word)
            if name not in DESCRIPTORS:
                return None
            out.append(name)
    return out or list(DEFAULT_DESCRIPTORS)


def top_table(procs: list[Proc], descriptors: list[str], ctx: TopContext) -> list[list[str]]:
    """Header row, then one row per process in container-pid order."""
    rows = [[DESCRIPTORS[d][0] for d in descriptors]]
    for p in sorted(procs, key=lambda p: p.ns_pid):
        rows.append([DESCRIPTORS[d][1](p, ctx) for d in descriptors])
    return rows


# -- stats ------------------------------------------------------------------------------------
@dataclass
class Sample:
    """Raw figures of one container at one moment."""

    cpu_ns: int = 0                  # total CPU time used since it started
    system_ns: int = 0               # wall clock of the sample
    mem_usage: int = 0
    mem_limit: int = 0
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0
    pids: int = 0
    percpu: list[int] = field(default_factory=list)


def net_dev(text: str) -> tuple[int, int]:
    """(rx bytes, tx bytes) over every interface but lo, from /proc/PID/net/dev."""
    rx = tx = 0
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        f = rest.split()
        if len(f) >= 9:
            rx += int(f[0])
            tx += int(f[8])
    return rx, tx


def sample_from_cgroup(data: dict, *, host_mem: int, now_ns: int) -> Sample:
    """A Sample from runc's `events --stats` data shape (linux.cgroups stats())."""
    s = Sample(system_ns=now_ns)
    s.cpu_ns = int(data.get("cpu", {}).get("usage", {}).get("total", 0))
    s.percpu = list(data.get("cpu", {}).get("usage", {}).get("percpu", []))
    mem = data.get("memory", {})
    usage = int(mem.get("usage", {}).get("usage", 0))
    raw = mem.get("raw", {}) or {}
    # As docker and podman: the page cache that could be dropped at once is not "use".
    inactive = raw.get("total_inactive_file", raw.get("inactive_file", 0))
    s.mem_usage = max(0, usage - int(inactive)) if inactive < usage else usage
    limit = int(mem.get("usage", {}).get("limit", 0))
    s.mem_limit = host_mem if limit <= 0 or limit >= host_mem else limit
    for e in data.get("blkio", {}).get("ioServiceBytesRecursive", []) or []:
        op = str(e.get("op", "")).lower()
        if op == "read":
            s.block_read += int(e.get("value", 0))
        elif op == "write":
            s.block_write += int(e.get("value", 0))
    s.pids = int(data.get("pids", {}).get("current", 0))
    return s


@dataclass
class StatsRow:
    """One container's line in `stats`, with podman's template fields."""

    id: str
    name: str
    sample: Sample
    cpu_percent: float
    avg_cpu: float
    up_ns: int

    @property
    def mem_percent(self) -> float:
        s = self.sample
        return s.mem_usage / s.mem_limit * 100 if s.mem_limit else 0.0

    def fields(self) -> dict[str, object]:
        """The names podman's --format templates use ({{.CPUPerc}}, {{.MemUsage}} ...)."""
        s = self.sample
        return {
            "ID": self.id[:12], "ContainerID": self.id, "Name": self.name,
            "CPUPerc": f"{self.cpu_percent:.2f}%", "CPU": self.cpu_percent,
            "AVGCPU": f"{self.avg_cpu:.2f}%", "AvgCPU": self.avg_cpu,
            "MemUsage": f"{human_size(s.mem_usage)} / {human_size(s.mem_limit)}",
            "MemUsageBytes": f"{bytes_size(s.mem_usage)} / {bytes_size(s.mem_limit)}",
            "MemPerc": f"{self.mem_percent:.2f}%", "MemLimit": s.mem_limit,
            "NetIO": f"{human_size(s.net_rx)} / {human_size(s.net_tx)}",
            "NetInput": s.net_rx, "NetOutput": s.net_tx,
            "BlockIO": f"{human_size(s.block_read)} / {human_size(s.block_write)}",
            "BlockInput": s.block_read, "BlockOutput": s.block_write,
            "PIDS": str(s.pids), "PIDs": s.pids,
            "UpTime": go_duration(s.cpu_ns), "Up": go_duration(s.cpu_ns), "Duration": s.cpu_ns,
            "CPUNano": s.cpu_ns, "SystemNano": s.system_ns, "PerCPU": s.percpu,
        }

    def json(self) -> dict[str, str]:
        f = self.fields()
        return {"id": f["ID"], "name": f["Name"], "cpu_time": f["UpTime"],
                "cpu_percent": f["CPUPerc"], "avg_cpu": f["AVGCPU"], "mem_usage": f["MemUsage"],
                "mem_percent": f["MemPerc"], "net_io": f["NetIO"], "block_io": f["BlockIO"],
                "pids": f["PIDS"]}  # type: ignore[return-value]


def stats_row(cid: str, name: str, sample: Sample, previous: Sample | None,
              started_ns: int) -> StatsRow:
    """CPU % as podman: CPU time used over wall time passed since the previous sample (the
    container's start for the first), 100% being one core; AVG CPU % over its whole life."""
    up = max(1, sample.system_ns - started_ns)
    if previous is None:
        cpu_delta, wall = sample.cpu_ns, up
    else:
        cpu_delta = sample.cpu_ns - previous.cpu_ns
        wall = max(1, sample.system_ns - previous.system_ns)
    return StatsRow(cid, name, sample, max(0.0, cpu_delta / wall * 100),
                    sample.cpu_ns / up * 100, up)


# HEADERS for `table` templates: field -> column title (podman's).
STATS_HEADERS = {"ID": "ID", "ContainerID": "ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "CPU": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
                 "MemUsageBytes": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET IO",
                 "BlockIO": "BLOCK IO", "PIDS": "PIDS", "PIDs": "PIDS", "UpTime": "CPU TIME",
                 "Up": "CPU TIME", "AVGCPU": "AVG CPU %", "AvgCPU": "AVG CPU %",
                 "Duration": "DURATION"}
DEFAULT_STATS_FORMAT = ("{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
                        "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDS}}\t{{.UpTime}}\t{{.AVGCPU}}")


# -- the engine side: containers in, rows out --------------------------------------------------
def cgroup_of(pid: int) -> object:
    """The cgroup of a process as /proc/PID/cgroup names it (seen from our cgroup namespace),
    as a linux.cgroups.Cgroup over every hierarchy of this host (v1, v2 or hybrid)."""
    from rongqi.linux import cgroups
    with open(f"/proc/{pid}/cgroup") as f:
        text = f.read()
    mode = cgroups.detect_mode()
    return cgroups.Cgroup.open(cgroup_path(text, mode), mode=mode)


def cgroup_path(proc_cgroup: str, mode: str) -> str:
    """The container's cgroup path from /proc/PID/cgroup: the unified line on v2, a v1
    controller's line (memory, pids, cpu) on v1 and hybrid hosts, whose cgroup2 line may be
    "/" while the controllers live in v1."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        for ctrl in ctrls.split(",") if ctrls else [""]:
            paths[ctrl] = path
    if mode == "v2":
        return paths.get("", "/") or "/"
    return paths.get("memory") or paths.get("pids") or paths.get("cpu") or paths.get("") or "/"


class StatsSampler:
    """One `stats` session: the containers asked for (or all running, or all), sampled again
    and again; CPU % is measured between one sample and the next, as podman does."""

    def __init__(self, engine: object, refs: list[str], *, all: bool = False):
        self.engine = engine
        self.refs = refs
        self.all = all
        self.previous: dict[str, Sample] = {}
        self.host_mem = host_memory()
        self._running = True

    def _containers(self) -> list:
        from rongqi.engine import lifecycle
        from rongqi.errors import EngineError, NoSuchContainer
        engine = self.engine
        if not self.refs:
            return engine.list(all=self.all)   # type: ignore[attr-defined]
        out = []
        for ref in self.refs:
            try:
                out.append(lifecycle.synced(engine, engine.get(ref)))  # type: ignore[attr-defined]
            except NoSuchContainer as e:
                raise EngineError(f"unable to get list of containers: unable to look up "
                                  f"container {ref}: {e}") from None
        return out

    def sample(self) -> list[StatsRow]:
        from rongqi.engine import status as st
        from rongqi.engine.records import parse_time
        rows = []
        running = False
        for c in self._containers():
            started = parse_time(c.state.get("started_at", ""))
            started_ns = int(started.timestamp() * 1e9) if started else time.time_ns()
            s = None
            if c.status in st.ALIVE and c.state.get("pid"):
                s = self._figures(int(c.state["pid"]))
            if s is None:
                rows.append(stats_row(c.id, c.name, Sample(system_ns=time.time_ns()), None,
                                      time.time_ns() - 1))
                self.previous.pop(c.id, None)
                continue
            running = True
            rows.append(stats_row(c.id, c.name, s, self.previous.get(c.id), started_ns))
            self.previous[c.id] = s
        self._running = running
        return rows

    def any_running(self) -> bool:
        return self._running

    def _figures(self, pid: int) -> Sample | None:
        try:
            cg = cgroup_of(pid)
            data = cg.stats()   # type: ignore[attr-defined]
            s = sample_from_cgroup(data, host_mem=self.host_mem, now_ns=time.time_ns())
            with open(f"/proc/{pid}/net/dev") as f:
                s.net_rx, s.net_tx = net_dev(f.read())
        except (FileNotFoundError, ProcessLookupError):
            return None   # it ended while we looked
        if not s.pids:
            s.pids = len(cg.pids())   # type: ignore[attr-defined]
        return s


def _read_in_root(root_fd: int, path: str) -> str:
    """A small file of the container (its /etc/passwd), read with every component resolved
    inside its root: a symlink to the host's /etc/shadow reads the container's, or nothing."""
    from rongqi.engine.treecopy import RootDir
    from rongqi.engine.treecopy import CopyError, open_regular
    r = RootDir(root_fd, "container")
    try:
        pfd, name = r.parent(path)
    except OSError:
        return ""
    try:
        fd = open_regular(pfd, name, os.O_RDONLY)   # never a device node the container made
    except (OSError, CopyError):
        return ""
    finally:
        os.close(pfd)
    try:
        return os.read(fd, 1 << 20).decode(errors="replace")
    finally:
        os.close(fd)


def _host_table(path: str) -> dict[int, str]:
    try:
        with open(path) as f:
            return parse_passwd(f.read())
    except OSError:
        return {}


def top(engine: object, ref: str, args: list[str]) -> list[list[str]] | str:
    """podman top: a table of the container's processes for the descriptors in `args`; if
    they are ps(1) options instead, ps runs in the container and its output is returned."""
    from rongqi.engine import lifecycle
    from rongqi.engine import status as st
    from rongqi.engine.treecopy import IdMapper
    from rongqi.errors import EngineError
    c = lifecycle.synced(engine, engine.get(ref))   # type: ignore[attr-defined]
    if c.status not in st.ALIVE:
        raise EngineError("top can only be used on running containers")
    descriptors = parse_descriptors(args)
    if descriptors is None:
        return _ps_in_container(engine, c, args)
    pids = engine.runtime.ps(c.id)   # type: ignore[attr-defined]
    procs = [p for p in (read_proc(pid) for pid in pids) if p is not None]
    import json
    try:
        with open(os.path.join(c.bundle, "config.json")) as f:
            ids = IdMapper.from_spec(json.load(f))
    except (OSError, ValueError):
        ids = IdMapper()
    users = groups = {}
    from rongqi.engine.files import _running_root
    try:
        root = _running_root(engine, c)   # checked to be the container's root, not a reused pid's
    except (OSError, EngineError):
        root = -1
    if root >= 0:
        try:
            users = parse_passwd(_read_in_root(root, "/etc/passwd"))
            groups = parse_passwd(_read_in_root(root, "/etc/group"))
        finally:
            os.close(root)
    ctx = TopContext(users=users, groups=groups, host_users=_host_table("/etc/passwd"),
                     host_groups=_host_table("/etc/group"),
                     ns_pids={p.pid: p.ns_pid for p in procs},
                     to_container_uid=ids.uid_to_container, to_container_gid=ids.gid_to_container)
    return top_table(procs, descriptors, ctx)


def host_ps(engine: object, ref: str, ps_args: str = "") -> dict[str, list]:
    """dockerd's top: ps(1) of the host over the container's processes (so an image without
    ps works), `{"Titles", "Processes"}` as daemon/top_unix.go makes them: `ps ARGS
    -qPID,PID...`, retried without the pids when ps refuses them together (`f`), then
    only the rows of the container's pids (and the thread rows "-" that follow one)."""
    import re
    import subprocess

    from rongqi.engine import lifecycle
    from rongqi.engine import status as st
    from rongqi.errors import ContainerStateImproper, EngineError, UsageError
    c = lifecycle.synced(engine, engine.get(ref))   # type: ignore[attr-defined]
    if c.status not in st.ALIVE:
        raise ContainerStateImproper(f"Container {c.id} is not running")
    ps_args = ps_args or "-ef"
    for k, v in re.findall(r"\s+([^\s]*)=\s*(PID[^\s]*)", ps_args):
        if k != "pid":
            raise UsageError(f'specifying "{k}={v}" is not allowed')
    pids = engine.runtime_for(c).ps(c.id)   # type: ignore[attr-defined]
    args = ps_args.split(" ")
    try:
        r = subprocess.run(["ps", *args, "-q" + ",".join(str(p) for p in pids)],
                           stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if r.returncode != 0:
            r = subprocess.run(["ps", *args], stdin=subprocess.DEVNULL, capture_output=True,
                               check=False)
    except FileNotFoundError:
        raise EngineError('ps: exec: "ps": executable file not found in $PATH') from None
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").split("\n", 1)[0]
        raise EngineError(f"ps: {err or f'exit status {r.returncode}'}")
    return parse_ps_output(r.stdout.decode(errors="replace"), pids)


def parse_ps_output(output: str, pids: list[int]) -> dict[str, list]:
    """dockerd's parsePSOutput: the titles, and the rows whose PID is the container's."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        from rongqi.errors import EngineError
        raise EngineError("Couldn't find PID field in ps output")
    at = titles.index("PID")
    keep = set(pids)
    rows: list[list[str]] = []
    last_kept = False
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if len(fields) <= at:
            continue
        if fields[at] == "-":            # a thread row (ps -m) belongs to the row above it
            if last_kept:
                rows.append(_fit(fields, len(titles)))
            continue
        try:
            pid = int(fields[at])
        except ValueError:
            from rongqi.errors import EngineError
            raise EngineError(f"Unexpected pid '{fields[at]}': invalid syntax") from None
        last_kept = pid in keep
        if last_kept:
            rows.append(_fit(fields, len(titles)))
    return {"Titles": titles, "Processes": rows}


def _fit(fields: list[str], n: int) -> list[str]:
    # The last column (the command) keeps its spaces.
    if n and len(fields) > n:
        fields = fields[:n - 1] + [" ".join(fields[n - 1:])]
    return fields


def _ps_in_container(engine: object, c: object, args: list[str]) -> str:
    """podman's fallback: `ps ARGS` executed in the container, its output captured."""
    from rongqi.engine import exec as execmod
    from rongqi.errors import EngineError
    proc = execmod.build_process(c, execmod.ExecRequest(command=["ps", *args]))
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = execmod.start(engine, c, proc, stdio=(null, w, w))
    finally:
        os.close(w)
        os.close(null)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while data := f.read(65536):
            chunks.append(data)
    code = execmod.wait(pid)
    out = b"".join(chunks).decode(errors="replace")
    if code != 0:
        raise EngineError(f"ps(1) failed with exit code {code}: {out.strip()}")
    return out
