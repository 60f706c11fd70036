"""Leak detection for the test suite: mounts, cgroups, netns, veths, bridges, processes, and
the network state netavark and rongqi keep (firewall rules and chains, IPAM leases).

A snapshot before a test and one after it are compared; what is new is a leak. Several
developers run the suite on this machine at once, so every new resource is classified:
"ours" (provably made by this pytest process) is always a leak and is cleaned up by path or
PID; "ambiguous" (matches "rongqi" but cannot be attributed) is a leak only while no other
pytest session is running, and is otherwise reported as a warning and left alone. Processes
are exact: this process is a child subreaper, so everything a test starts stays below it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
# Never touched, not even to clean up: the machine's own process accounting lives here.
CGROUP_FORBIDDEN = ("memory/process_api",)
# Shared parents that runtimes create and leave (runc removes only the leaf of cgroupsPath):
# not leaks in themselves; removed at the end of the session when empty.
CGROUP_SHARED_PARENTS = ("rongqi-test", "rongqi")  # "rongqi": the engine's /rongqi/<id>

PR_SET_CHILD_SUBREAPER = 36

# Ids of the engine's containers made by this session's tests (tests/support/engine_cli.py
# adds them, read from each test engine's events log): the engine names their cgroups
# /rongqi/<id>, which carries no session tag, so without this they could only be ambiguous.
ENGINE_IDS: set[str] = set()


def engine_ids(root: str) -> set[str]:
    """The ids of every container an engine under `root` created (its events log says)."""
    import json

    ids = set()
    for name in ("events.log.1", "events.log"):
        try:
            with open(os.path.join(root, name)) as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("Type") == "container" and ev.get("Status") == "create":
                        ids.add(ev.get("ID", ""))
        except FileNotFoundError:
            continue
    ids.discard("")
    return ids


def become_subreaper() -> bool:
    """Make orphaned descendants (detached containers, shims) reparent to this process.

    That makes "descendant of the test process" an exact test of ownership for processes.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Mount:
    mount_id: int
    mountpoint: str
    fstype: str
    source: str
    line: str

    def __str__(self) -> str:
        return f"mount {self.mountpoint} ({self.fstype} from {self.source})"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    starttime: int
    state: str
    cmdline: str

    def __str__(self) -> str:
        return f"process {self.pid} [{self.state}] {self.cmdline[:160]!r}"


@dataclass
class Snapshot:
    mounts: dict[int, Mount] = field(default_factory=dict)
    cgroups: set[str] = field(default_factory=set)
    netns: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)  # all host links; veths picked at compare
    procs: dict[tuple[int, int], Proc] = field(default_factory=dict)
    firewall: set[str] = field(default_factory=set)  # "TABLE RULE" lines of networks
    leases: set[tuple[str, str, str]] = field(default_factory=set)  # (file, key, root)


@dataclass
class Leaks:
    """New resources after a test: `ours` fail the test, `ambiguous` fail only when alone."""

    mounts: list[Mount] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    veths: list[str] = field(default_factory=list)
    bridges: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    firewall: list[str] = field(default_factory=list)
    leases: list[tuple[str, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.mounts or self.cgroups or self.netns or self.veths or self.bridges
                    or self.procs or self.firewall or self.leases)

    def lines(self) -> list[str]:
        return (
            [str(p) for p in self.procs]
            + [str(m) for m in self.mounts]
            + [f"cgroup {c}" for c in self.cgroups]
            + [f"netns {n}" for n in self.netns]
            + [f"veth {v}" for v in self.veths]
            + [f"bridge {b}" for b in self.bridges]
            + [f"firewall rule {r}" for r in self.firewall]
            + [f"IPAM lease {k} in {os.path.basename(f)} (root {r})" for f, k, r in self.leases]
        )


def read_mounts() -> list[Mount]:
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            mounts.append(
                Mount(
                    mount_id=int(fields[0]),
                    mountpoint=_unescape(fields[4]),
                    fstype=fields[sep + 1],
                    source=_unescape(fields[sep + 2]) if len(fields) > sep + 2 else "",
                    line=line.rstrip("\n"),
                )
            )
    return mounts


def read_cgroups(maxdepth: int = 5) -> set[str]:
    """Cgroup dirs (relative to /sys/fs/cgroup) whose path contains "rongqi"."""
    found: set[str] = set()
    base_depth = CGROUP_ROOT.rstrip("/").count("/")
    for dirpath, dirnames, _files in os.walk(CGROUP_ROOT):
        depth = dirpath.rstrip("/").count("/") - base_depth
        if depth >= maxdepth:
            dirnames[:] = []
        rel = os.path.relpath(dirpath, CGROUP_ROOT)
        if "rongqi" in rel:
            found.add(rel)
    return found


def _run_lines(argv: list[str]) -> list[str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.splitlines()


def read_netns() -> set[str]:
    """Named network namespaces, as `ip netns list` shows them (it lists /run/netns)."""
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def read_links() -> set[str]:
    """Network interfaces of the host namespace (cheap; veths are picked out on demand)."""
    return set(os.listdir("/sys/class/net"))


# Bridges that are the host's or another tool's defaults (docker's, podman's, libvirt's, LXC's,
# CNI's) or the engine's own default network's (rongqi0: every session's containers share it,
# so it is no one session's): never a test session's leak, never removed by this module.
FOREIGN_BRIDGES = frozenset({"docker0", "podman0", "cni-podman0", "cni0", "virbr0", "lxcbr0",
                             "lxdbr0", "rongqi0"})


def read_bridges() -> dict[str, list[str]]:
    """The host namespace's bridges and the ports on each."""
    out: dict[str, list[str]] = {}
    for name in read_links():
        if os.path.isdir(f"/sys/class/net/{name}/bridge"):
            try:
                out[name] = sorted(os.listdir(f"/sys/class/net/{name}/brif"))
            except OSError:
                continue  # gone meanwhile
    return out


def read_addresses() -> list[tuple[str, str]]:
    """(interface, address) of every address in the host namespace, IPv4 and IPv6."""
    out = []
    for line in _run_lines(["ip", "-o", "addr", "show"]):
        words = line.split()
        if len(words) >= 4 and words[2] in ("inet", "inet6"):
            out.append((words[1].split("@")[0], words[3].split("/")[0]))
    return out


@dataclass(frozen=True)
class NetRecord:
    """A network record of a test's engine (ROOT/networks/NAME.json, podman's network JSON)."""

    path: str
    root: str
    name: str
    id: str
    bridge: str
    subnets: tuple[str, ...]


# Where the suite's engines keep their roots: a test dir (tmp_path) itself, or one or two
# levels below it (tmp_path/root, tmp_path/engine/root); deeper would walk images' files.
_RECORD_GLOBS = ("*/networks/*.json", "*/*/networks/*.json", "*/*/*/networks/*.json")


def network_records(session_dir: str) -> list[NetRecord]:
    """The engines' network records in the test dirs of one pytest session's temp dir."""
    import glob

    out = []
    for pattern in _RECORD_GLOBS:
        for path in glob.glob(os.path.join(glob.escape(session_dir), pattern)):
            doc = _json(path)
            if doc.get("driver", "bridge") != "bridge" or not doc.get("name"):
                continue
            subnets = tuple(str(s.get("subnet")) for s in doc.get("subnets") or []
                            if isinstance(s, dict) and s.get("subnet"))
            out.append(NetRecord(path, os.path.dirname(os.path.dirname(path)), str(doc["name"]),
                                 str(doc.get("id", "")), str(doc.get("network_interface", "")),
                                 subnets))
    return out


def netavark_chains(network_name: str) -> tuple[str, str]:
    """The two chains netavark makes for a network: NETAVARK-H and NETAVARK-DN-H, H the first
    13 hex digits (upper case) of SHA-512 of the network's *name* (netavark's hash_string), so
    networks of one name in two roots share them."""
    import hashlib

    h = hashlib.sha512(network_name.encode()).hexdigest()[:13].upper()
    return f"NETAVARK-{h}", f"NETAVARK-DN-{h}"


def read_veths() -> set[str]:
    names = set()
    for line in _run_lines(["ip", "-o", "link", "show", "type", "veth"]):
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@")[0])
    return names


# Network state: the per-network and per-container rules netavark adds (its chains are named
# NETAVARK-<hash> and NETAVARK-DN-<hash>; the shared chains NETAVARK_FORWARD and
# NETAVARK-HOSTPORT-* stay for good, only their per-network lines count), and the leases and
# port records rongqi keeps under /run/rongqi/networks.
_NETAVARK_RULE = re.compile(r"NETAVARK-(DN-)?[0-9A-F]{6,}|^-A NETAVARK_FORWARD -[sd] |"
                            r"dnat name: ")
# The engine's host-wide network state (rongqi.engine.networks.rundir: RONGQI_NETWORK_RUNDIR
# moves it, as test_leaks.py does to keep a fake dead session's records from other sessions).
NETWORK_RUNDIR = os.environ.get("RONGQI_NETWORK_RUNDIR") or "/run/rongqi/networks"
NETNS_DIR = "/run/netns"


def nft_generation() -> int | None:
    """nf_tables' ruleset generation in this network namespace (NFT_MSG_GETGEN over netlink):
    the kernel bumps it with every change of any table, iptables-nft's and ip6tables-nft's
    included; None where it cannot be read (no nf_tables, not root)."""
    import socket
    import struct

    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    except OSError:
        return None
    try:
        s.settimeout(2)
        # nlmsghdr (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, NLM_F_REQUEST) + nfgenmsg
        s.send(struct.pack("=IHHII", 20, (10 << 8) | 16, 1, 1, 0) + struct.pack("=BBH", 0, 0, 0))
        data = s.recv(65536)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 20 or struct.unpack_from("=H", data, 4)[0] != (10 << 8) | 15:  # NEWGEN
        return None
    off, end = 20, min(len(data), struct.unpack_from("=I", data)[0])
    while off + 8 <= end:
        alen, atype = struct.unpack_from("=HH", data, off)
        if atype & 0x3FFF == 1 and alen >= 8:  # NFTA_GEN_ID
            return int(struct.unpack_from(">I", data, off + 4)[0])
        off += max(4, (alen + 3) & ~3)
    return None


# read_firewall's last answer and the nf_tables generation it was read at: iptables-save and
# ip6tables-save (two processes, a few ms each, twice a test) only run when the ruleset changed.
_FIREWALL_CACHE: list = [None, frozenset()]


def read_firewall() -> set[str]:
    gen = nft_generation()
    if gen is not None and _FIREWALL_CACHE[0] == gen:
        return set(_FIREWALL_CACHE[1])
    out = _read_firewall()
    # Cached only when the generation did not move while we read (a change meanwhile could
    # be half in what was read).
    if gen is not None and nft_generation() == gen:
        _FIREWALL_CACHE[:] = [gen, frozenset(out)]
    return out


def _read_firewall() -> set[str]:
    out: set[str] = set()
    for cmd in ("iptables-save", "ip6tables-save"):
        table = ""
        for line in _run_lines([cmd]):
            if line.startswith("*"):
                table = line[1:]
            elif _NETAVARK_RULE.search(line):
                out.add(f"{cmd[:-5]} {table} {line}")
    return out


def read_leases() -> set[tuple[str, str, str]]:
    """(file, address or port record, the engine root that holds it)."""
    import json

    out: set[tuple[str, str, str]] = set()
    ipam = os.path.join(NETWORK_RUNDIR, "ipam")
    for d, per_entry in ((ipam, True), (os.path.join(NETWORK_RUNDIR, "ports"), False),
                         (os.path.join(NETWORK_RUNDIR, "active"), False)):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            path = os.path.join(d, n)
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            if per_entry:
                out |= {(path, k, v.get("root", "")) for k, v in doc.items()}
            else:
                kind = "ports of " if "/ports/" in path else "network set up for "
                out.add((path, kind + n[:12], doc.get("root", "")))
    return out


def _split_rule(text: str) -> list[str]:
    import shlex

    return shlex.split(text)


def _read_small(path: str) -> bytes:
    # os.open/os.read: a third of open()'s cost, for the ~500 reads of every snapshot
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:
            chunks.append(os.read(fd, 65536))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_procs() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = _read_small(f"/proc/{name}/stat").decode(errors="replace")
            cmdline = _read_small(f"/proc/{name}/cmdline").replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:
            continue
        if ")" not in stat:
            continue
        # comm may contain spaces and parentheses: split after the last ")".
        rest = stat[stat.rindex(")") + 2 :].split()
        if not cmdline:
            cmdline = "[" + stat[stat.index("(") + 1 : stat.rindex(")")] + "]"
        pid = int(name)
        procs[pid] = Proc(pid, int(rest[1]), int(rest[19]), rest[0], cmdline)
    return procs


def _is_bats(cmdline: str) -> bool:
    """A bats-core runner: `bats ...`, `bash /usr/bin/bats ...`, bats-exec-suite/file/test."""
    return any(os.path.basename(w).startswith("bats") for w in cmdline.split()[:2])


def _has_cmdline(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return bool(f.read(1))
    except OSError:
        return False


def _ancestors(pid: int, procs: dict[int, Proc]) -> list[int]:
    chain, seen = [], set()
    while pid in procs and pid not in seen and pid > 1:
        seen.add(pid)
        pid = procs[pid].ppid
        chain.append(pid)
    return chain


def _exe_guard_mount(m: Mount) -> bool:
    """The runtime's read-only binds of the host's interpreter (rongqi/linux/exeguard.py):
    made once per boot on purpose, never a leak (a bind of a test's own file still is)."""
    guard_dir = "/run/rongqi/exe"
    if m.mountpoint == guard_dir:
        return True
    root = m.line.split()[3] if len(m.line.split()) > 3 else ""
    host_interpreter = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return root == host_interpreter and (m.mountpoint.startswith(guard_dir + "/") or m.mountpoint.endswith("/bin/python3"))


class LeakChecker:
    """Snapshots and compares; one per pytest session."""

    def __init__(self, basetemp: str, tag: str) -> None:
        self.me = os.getpid()
        self.basetemp = os.path.realpath(basetemp)
        self.tmp_parent = os.path.dirname(self.basetemp)
        self.tag = tag  # appears in ids and cgroup paths made by this session's fixtures
        self.last_after: Snapshot | None = None  # compare's snapshot (plugin.py reuses it)

    # -- snapshot -------------------------------------------------------------------------
    def snapshot(self, procs: dict[int, Proc] | None = None) -> Snapshot:
        snap = Snapshot()
        snap.mounts = {
            m.mount_id: m
            for m in read_mounts()
            if "rongqi" in m.line or self._under_basetemp(m.mountpoint)
        }
        snap.cgroups = read_cgroups()
        snap.netns = read_netns()
        snap.links = read_links()
        snap.firewall = read_firewall()
        snap.leases = read_leases()
        procs = procs if procs is not None else read_procs()
        mine = self._descendants(procs)
        for p in procs.values():
            if p.pid == self.me:
                continue
            if p.pid in mine or "rongqi" in p.cmdline:
                snap.procs[(p.pid, p.starttime)] = p
        return snap

    def _under_basetemp(self, path: str) -> bool:
        return path == self.basetemp or path.startswith(self.basetemp + "/")

    def _descendants(self, procs: dict[int, Proc]) -> set[int]:
        children: dict[int, list[int]] = {}
        for p in procs.values():
            if p.pid != p.ppid:
                children.setdefault(p.ppid, []).append(p.pid)
        out: set[int] = set()
        todo = list(children.get(self.me, ()))
        while todo:
            pid = todo.pop()
            if pid not in out and pid != self.me:
                out.add(pid)
                todo.extend(children.get(pid, ()))
        return out

    def other_sessions(self, procs: dict[int, Proc] | None = None) -> list[Proc]:
        """Other live test sessions (not us, not our ancestors, not our descendants): pytest
        processes, and bats runs (the project's bats suites drive rongqi from a shell: what
        they make is no more attributable than another pytest's)."""
        procs = procs if procs is not None else read_procs()
        mine = self._descendants(procs) | set(_ancestors(self.me, procs)) | {self.me}
        return [
            p
            for p in procs.values()
            if p.pid not in mine and p.state != "Z"
            and ("pytest" in p.cmdline or _is_bats(p.cmdline))
        ]

    # -- compare --------------------------------------------------------------------------
    def reap_zombie_children(self, procs: dict[int, Proc], before: Snapshot | None = None) -> None:
        """Reap exited children reparented to us as subreaper; drop them from procs."""
        known = {pid for pid, _ in before.procs} if before else set()
        for p in list(procs.values()):
            if p.ppid == self.me and p.state == "Z" and p.pid not in known:
                try:
                    os.waitpid(p.pid, os.WNOHANG)
                    del procs[p.pid]
                except ChildProcessError:
                    pass

    def compare(self, before: Snapshot) -> tuple[Leaks, Leaks]:
        """Return (ours, ambiguous) new resources since `before`."""
        procs = read_procs()
        self.reap_zombie_children(procs, before)
        after = self.last_after = self.snapshot(procs)
        mine = self._descendants(procs)
        foreign_roots = {p.pid for p in self.other_sessions(procs)}
        # Session tags are p<pid>x<hex> (tests/support/plugin.py): a name carrying a live
        # foreign session's tag is that session's to check, not ours to report.
        foreign_tags = tuple(f"p{pid}x" for pid in foreign_roots)
        ours, ambiguous = Leaks(), Leaks()

        for key, p in after.procs.items():
            if key in before.procs:
                continue
            if p.pid in mine or self.basetemp in p.cmdline or self.tag in p.cmdline:
                ours.procs.append(p)
            elif not foreign_roots & set(_ancestors(p.pid, procs)):
                ambiguous.procs.append(p)
        if ours.procs:
            ours.procs = self.settled(ours.procs, before)

        for mid, m in after.mounts.items():
            if mid in before.mounts or (_exe_guard_mount(m) and not self._under_basetemp(m.mountpoint)):
                continue
            if self._under_basetemp(m.mountpoint) or self.basetemp in m.line or self.tag in m.line \
                    or m.mountpoint.startswith(NETNS_DIR + "/rongqi-") and \
                    os.path.basename(m.mountpoint)[7:] in ENGINE_IDS:
                ours.mounts.append(m)
            elif not m.mountpoint.startswith(self.tmp_parent + "/"):
                # Under another session's basetemp it is theirs; elsewhere nobody can tell.
                ambiguous.mounts.append(m)

        for cg in sorted(after.cgroups - before.cgroups):
            parts = cg.split("/")
            if len(parts) == 2 and parts[1] in CGROUP_SHARED_PARENTS:
                continue
            if (self.tag in cg or self._cgroup_pids(cg) & mine
                    or (ENGINE_IDS and parts[-1] in ENGINE_IDS)):
                ours.cgroups.append(cg)
            else:
                ambiguous.cgroups.append(cg)

        for name in sorted(after.netns - before.netns):
            # The engine's are rongqi-<container id>: ours when that id is this session's.
            mine = self.tag in name or name.startswith("rongqi-") and name[7:] in ENGINE_IDS
            (ours if mine else ambiguous).netns.append(name)
        new_links = after.links - before.links
        for name in sorted(new_links & read_veths() if new_links else ()):
            (ours if self.tag in name else ambiguous).veths.append(name)
        new_bridges = sorted(b for b in (read_bridges() if new_links else {})
                             if b in new_links and b not in FOREIGN_BRIDGES)
        if new_bridges:
            # netavark removes a bridge with the network's last container: one left after a test
            # is a leak; ours when a network record under this session's temp dir names it.
            mine_br = {r.bridge for r in network_records(self.basetemp)}
            for name in new_bridges:
                (ours if name in mine_br or self.tag in name else ambiguous).bridges.append(name)
        new_rules = sorted(after.firewall - before.firewall)
        # A chain is ours when a rule of ours is in it (netavark names chains by a hash).
        our_chains = {r.split(" ", 2)[2].split()[1] for r in new_rules
                      if self.tag in r and r.split(" ", 2)[2].startswith("-A ")}
        for rule in new_rules:
            line = rule.split(" ", 2)[2]
            chain = line[1:].split()[0] if line.startswith(":") else line[3:].split()[0]
            mine = self.tag in rule or chain in our_chains
            (ours if mine else ambiguous).firewall.append(rule)
        for lease in sorted(after.leases - before.leases):
            root = lease[2]
            if self._under_basetemp(root):
                ours.leases.append(lease)
            elif not root.startswith(self.tmp_parent + "/"):
                ambiguous.leases.append(lease)
        if foreign_tags:
            keep = lambda text: not any(t in text for t in foreign_tags)  # noqa: E731
            ambiguous.firewall = [r for r in ambiguous.firewall if keep(r)]
            ambiguous.procs = [p for p in ambiguous.procs if keep(p.cmdline)]
            ambiguous.mounts = [m for m in ambiguous.mounts if keep(m.line)]
            ambiguous.cgroups = [c for c in ambiguous.cgroups if keep(c)]
            ambiguous.netns = [n for n in ambiguous.netns if keep(n)]
            ambiguous.veths = [v for v in ambiguous.veths if keep(v)]
            ambiguous.bridges = [b for b in ambiguous.bridges if keep(b)]
        return ours, ambiguous

    def settled(self, procs: list[Proc], before: Snapshot, wait: float = 3.0) -> list[Proc]:
        """Those of procs that are not on their way out: a process caught in exit (its memory
        already gone: an empty cmdline, shown as [name]) or a zombie of ours is given up to
        `wait` seconds to be gone; one with a command line is a leak at once."""
        deadline = time.monotonic() + wait
        while True:
            current = read_procs()
            self.reap_zombie_children(current, before)
            current = read_procs()
            alive = [p for p in procs
                     if p.pid in current and current[p.pid].starttime == p.starttime]
            exiting = [p for p in alive if current[p.pid].state == "Z"
                       or not _has_cmdline(p.pid)]
            if not exiting or time.monotonic() > deadline:
                return alive
            time.sleep(0.05)

    @staticmethod
    def still_running(procs: list[Proc], grace: float = 0.3) -> list[Proc]:
        """Those of procs still alive (same start time) after `grace` seconds."""
        time.sleep(grace)
        current = read_procs()
        return [
            p for p in procs
            if p.pid in current and current[p.pid].starttime == p.starttime and current[p.pid].state != "Z"
        ]

    @staticmethod
    def _cgroup_pids(rel: str) -> set[int]:
        try:
            with open(os.path.join(CGROUP_ROOT, rel, "cgroup.procs")) as f:
                return {int(x) for x in f.read().split()}
        except (OSError, ValueError):
            return set()

    # -- clean up -------------------------------------------------------------------------
    def cleanup(self, leaks: Leaks, kill_processes: bool = True) -> list[str]:
        """Remove leaked resources by path or PID; return what could not be removed."""
        failed: list[str] = []
        if kill_processes:
            failed += self._kill(leaks.procs)
        for m in sorted(leaks.mounts, key=lambda m: m.mountpoint.count("/"), reverse=True):
            r = subprocess.run(["umount", "-l", m.mountpoint], capture_output=True, text=True)
            if r.returncode != 0 and any(x.mount_id == m.mount_id for x in read_mounts()):
                failed.append(f"umount {m.mountpoint}: {r.stderr.strip()}")
        for cg in sorted(leaks.cgroups, key=lambda c: c.count("/"), reverse=True):
            if not self.remove_cgroup(cg):
                failed.append(f"rmdir cgroup {cg}")
        for name in leaks.netns:
            if "rongqi" in name or self.tag in name:
                subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        for name in leaks.veths:
            if "rongqi" in name or self.tag in name or name.startswith("rq"):
                subprocess.run(["ip", "link", "delete", name], capture_output=True)
        if leaks.bridges:
            # Only a bridge a network record of this session names (or carrying its tag): an
            # ambiguous one is reported and left where it is.
            mine_br = {r.bridge for r in network_records(self.basetemp)}
            for name in leaks.bridges:
                if name in FOREIGN_BRIDGES or not (name in mine_br or self.tag in name):
                    continue
                subprocess.run(["ip", "link", "delete", name], capture_output=True)
                if os.path.exists(f"/sys/class/net/{name}"):
                    failed.append(f"ip link delete {name}")
        failed += self._remove_rules(leaks.firewall)
        self._remove_leases(leaks.leases)
        return failed

    @staticmethod
    def _remove_rules(rules: list[str]) -> list[str]:
        """Rules by deleting them (-A -> -D), then the chains they were in (-N -> -X)."""
        failed = []
        chains = []
        for r in rules:
            cmd, table, line = r.split(" ", 2)
            if line.startswith(":"):
                chains.append((cmd, table, line[1:].split()[0]))
            elif line.startswith("-A "):
                p = subprocess.run([cmd, "-t", table, "-D", *_split_rule(line[3:])],
                                   capture_output=True, text=True)
                if p.returncode:
                    failed.append(f"{cmd} -t {table} -D {line[3:]}: {p.stderr.strip()}")
        for cmd, table, chain in chains:
            subprocess.run([cmd, "-t", table, "-F", chain], capture_output=True)
            subprocess.run([cmd, "-t", table, "-X", chain], capture_output=True)
        return failed

    @staticmethod
    def _remove_leases(leases: list[tuple[str, str, str]]) -> None:
        import json

        for path, key, _root in leases:
            try:
                if "/ports/" in path or "/active/" in path:
                    os.unlink(path)
                    continue
                with open(path) as f:
                    doc = json.load(f)
                doc.pop(key, None)
                with open(path, "w") as f:
                    json.dump(doc, f)
            except (OSError, ValueError):
                pass

    def _kill(self, procs: list[Proc]) -> list[str]:
        failed: list[str] = []
        if not procs:
            return failed
        current = read_procs()
        victims = [p for p in procs if p.pid in current and current[p.pid].starttime == p.starttime]
        for p in victims:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for p in victims:
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(p.pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    pass
                cur = read_procs().get(p.pid)
                if cur is None or cur.starttime != p.starttime or (cur.state == "Z" and cur.ppid != self.me):
                    break
                time.sleep(0.02)
            else:
                failed.append(f"kill {p.pid}")
        return failed

    def remove_cgroup(self, rel: str) -> bool:
        if any(rel == f or rel.startswith(f + "/") for f in CGROUP_FORBIDDEN):
            return False
        path = os.path.join(CGROUP_ROOT, rel)
        if not os.path.isdir(path):
            return True
        for sub in sorted(
            (os.path.join(d, n) for d, ns, _ in os.walk(path) for n in ns),
            key=lambda p: p.count("/"),
            reverse=True,
        ):
            self._rmdir_cgroup(sub)
        return self._rmdir_cgroup(path)

    @staticmethod
    def _rmdir_cgroup(path: str) -> bool:
        state = os.path.join(path, "freezer.state")
        if os.path.exists(state):
            try:
                with open(state, "w") as f:
                    f.write("THAWED")
            except OSError:
                pass
        for _ in range(50):
            try:
                os.rmdir(path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(0.02)  # EBUSY while killed tasks finish exiting
        return False

    def remove_shared_parents(self) -> None:
        """At session end: remove the empty shared parents (rongqi-test) if nobody uses them."""
        for rel in read_cgroups(maxdepth=2):
            parts = rel.split("/")
            if len(parts) == 2 and parts[1] in CGROUP_SHARED_PARENTS:
                try:
                    os.rmdir(os.path.join(CGROUP_ROOT, rel))
                except OSError:
                    pass  # still in use by a live container or another session: theirs to remove


# -- what dead sessions left ----------------------------------------------------------------
# pytest makes each session's temp dir .../pytest-of-USER/pytest-N with a .lock holding its
# pid, removed when it ends; a session killed keeps its .lock with a dead pid. A root under
# such a dir belongs to that session: alive while the pid is a pytest process.
_NUMBERED = re.compile(r"^(.*/pytest-of-[^/]+/pytest-\d+)(/|$)")
_SESSION_TAG = re.compile(r"(?:^|[-/])p(\d+)x[0-9a-f]{4}(?:-|$)")


def _pytest_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return b"pytest" in cmd and state != "Z"


def session_alive(root: str) -> bool | None:
    """Whether the pytest session that owns `root` (a path under its temp dir) still runs;
    None when `root` is not under a pytest temp dir (nobody can tell)."""
    m = _NUMBERED.match(root)
    if not m:
        return None
    try:
        with open(os.path.join(m.group(1), ".lock")) as f:
            pid = int(f.read().strip() or 0)
    except FileNotFoundError:
        return False  # ended (pytest removes its .lock at exit) or the dir is gone
    except (OSError, ValueError):
        return None
    return _pytest_alive(pid)


@dataclass
class Stale:
    """Resources a dead test session left: each provably not a live session's."""

    leaks: Leaks = field(default_factory=Leaks)
    active: list[dict] = field(default_factory=list)  # RUNDIR/active records to undo
    bridges: list[str] = field(default_factory=list)  # of networks only dead ones were on
    why: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.leaks or self.active or self.bridges)

    def lines(self) -> list[str]:
        return self.leaks.lines() + [f"bridge {b}" for b in self.bridges]


def _write_json(path: str, doc: dict) -> None:
    import json

    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f)
        os.rename(path + ".tmp", path)


def _json(path: str) -> dict:
    import json

    try:
        with open(path) as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def session_dirs(near: str = "") -> list[str]:
    """pytest sessions' numbered temp dirs (.../pytest-of-USER/pytest-N): those in the temp
    dir, and those beside `near` (a session's basetemp parent, where --basetemp put it)."""
    import glob
    import tempfile

    parents = set(glob.glob(os.path.join(glob.escape(tempfile.gettempdir()), "pytest-of-*")))
    if near:
        if os.path.basename(near).startswith("pytest-of-"):
            parents.add(near)
        parents |= set(glob.glob(os.path.join(glob.escape(near), "pytest-of-*")))
    return sorted(d for p in parents for d in glob.glob(os.path.join(glob.escape(p), "pytest-*"))
                  if _NUMBERED.match(d) and os.path.isdir(d) and not os.path.islink(d))


def _rule_key(rule: str) -> tuple[str, str, str]:
    """(command, table, chain) of a read_firewall line (a rule, or a chain's ':' line)."""
    cmd, table, line = rule.split(" ", 2)
    return cmd, table, (line[1:].split()[0] if line.startswith(":") else line[3:].split()[0])


def _in(ip: str, subnet: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return False


def _unicast_net(word: str) -> bool:
    """Whether a word of a rule is a network a bridge could carry (not ! -d 224.0.0.0/4)."""
    import ipaddress

    if "/" not in word or not (":" in word or word[:1].isdigit()):
        return False
    try:
        net = ipaddress.ip_network(word, strict=False)
    except ValueError:
        return False
    return not (net.is_multicast or net.is_link_local or net.is_loopback)


def _dead_networks(out: Stale, near: str) -> None:
    """The bridges and netavark rules of networks whose records are only in dead sessions'
    temp dirs, whatever became of their containers' records (an active record undone while
    its netns was already gone, a netavark teardown that failed half-way, a session killed
    while netavark ran). Proof, all of it under the host network lock:
    - a bridge: no port on it, a dead session's record names it, every address on it lies
      in that record's subnets, and it is none of FOREIGN_BRIDGES;
    - a rule: it names a subnet of such a record that no other interface of the host has an
      address in and no live lease holds an address in, or it forwards a port of a container
      of a dead root (netavark's "dnat name: NET id: CID" comment);
    - a chain (NETAVARK-H, NETAVARK-DN-H: hashed from the network's name, so shared by the
      networks of that name in every root): only once no other rule jumps to it.
    The records are searched (a few glob levels per test dir) only when the host shows a
    candidate: an empty bridge, or a netavark rule for a subnet no interface has."""
    bridges = read_bridges()
    firewall = sorted(read_firewall())
    addrs = read_addresses()
    empty = {b for b, ports in bridges.items() if not ports and b not in FOREIGN_BRIDGES}
    rule_subnets = {w for r in firewall for w in r.split() if _unicast_net(w)}
    orphans = {n for n in rule_subnets if not any(_in(ip, n) for _i, ip in addrs)}
    if not empty and not orphans:
        return
    # A dead session's temp dir never changes: once searched for these candidates (or more)
    # it need not be again (a search is seconds with tens of old sessions' dirs, and every
    # session, test_leaks' inner ones too, starts with it while a candidate stays unexplained:
    # a bridge someone made by hand, a rule of podman's own).
    cands = sorted(empty | orphans)
    memo_path = os.path.join(NETWORK_RUNDIR, "test-sweep-memo.json")
    memo = _json(memo_path)
    searched = set(memo.get("searched") or []) if set(cands) <= set(memo.get("candidates") or []) \
        else set()
    dead = [d for d in session_dirs(near) if session_alive(d) is False]
    records = [r for d in dead if d not in searched
               for r in network_records(d) if r.name != "podman"]  # the default: everyone's
    _write_json(memo_path, {"candidates": cands, "searched": sorted(searched | set(dead))})
    if not records:
        return
    live_ips = [key for path, key, root in read_leases()
                if "/ipam/" in path and session_alive(root) is not False]
    gone: dict[str, NetRecord] = {}
    for rec in records:
        its = [ip for i, ip in addrs if i == rec.bridge]
        if rec.bridge in empty and rec.bridge not in gone and \
                all(any(_in(ip, n) for n in rec.subnets) for ip in its):
            gone[rec.bridge] = rec
    dead_subnets: dict[str, NetRecord] = {}
    for rec in records:
        for n in rec.subnets:
            if n in rule_subnets and \
                    not any(_in(ip, n) for i, ip in addrs if i not in gone) and \
                    not any(_in(ip, n) for ip in live_ips):
                dead_subnets[n] = rec
    dead_ids: set[str] = set()
    for root in {r.root for r in records}:
        with contextlib.suppress(OSError):
            dead_ids |= set(os.listdir(os.path.join(root, "containers")))
    reap = []
    for r in firewall:
        m = re.search(r"dnat name: \S+ id: ([0-9a-f]{64})", r)
        if set(r.split()) & dead_subnets.keys() or m and m.group(1) in dead_ids:
            reap.append(r)
    rest = [r for r in firewall if r not in reap]
    chains = {c for rec in records for c in netavark_chains(rec.name)}
    for chain in sorted(chains):
        for cmd, table in {_rule_key(r)[:2] for r in rest if _rule_key(r)[2] == chain}:
            inside = [r for r in rest if _rule_key(r) == (cmd, table, chain)]
            jumps = re.compile(rf"\s-[jg] {re.escape(chain)}(\s|$)")
            if not any(_rule_key(r)[:2] == (cmd, table) and _rule_key(r)[2] != chain
                       and jumps.search(r) for r in rest):
                reap += inside
    if not gone and not reap:
        return
    for r in reap:
        if r not in out.leaks.firewall:
            out.leaks.firewall.append(r)
    for b in sorted(gone):
        if b not in out.bridges:
            out.bridges.append(b)
    named = " ".join(reap) + " " + " ".join(gone)
    for rec in sorted({*gone.values(), *dead_subnets.values()}, key=lambda r: r.path):
        if rec.bridge in gone or any(n in named for n in rec.subnets):
            out.why.append(f"network {rec.name} ({rec.bridge} {' '.join(rec.subnets)}) of "
                           f"{rec.root}")


def dead_sessions_leftovers(near: str = "") -> Stale:
    """The engine's network state (active records, leases, ports, netns, the rules of a
    network nobody live holds an address on, and bridges and rules of dead sessions' network
    records: _dead_networks) and cgroups of test sessions that are gone. `near`: where this
    session's basetemp is (session_dirs). Call it under the engine's host network lock, so
    no setup runs meanwhile. A netns no record names (one left before the host-wide records
    existed) cannot be attributed and is left alone."""
    out = Stale()
    dead_cids: dict[str, str] = {}  # container id -> the dead root it belonged to
    live_cids: set[str] = set()
    lease_roots: dict[str, list[tuple[str, str]]] = {}  # network id -> [(cid, root)]
    for path, key, root in sorted(read_leases()):
        doc = _json(path)
        if "/ipam/" in path:
            cid = (doc.get(key) or {}).get("id", "")
            lease_roots.setdefault(os.path.basename(path)[:-5], []).append((cid, root))
        else:
            cid = doc.get("id", "")
        alive = session_alive(root)
        if alive is False:
            out.leaks.leases.append((path, key, root))
            dead_cids[cid] = root
            if "/active/" in path:
                out.active.append(doc)
        elif cid:
            live_cids.add(cid)
    dead_cids = {c: r for c, r in dead_cids.items() if c and c not in live_cids}
    netns = read_netns()
    for name in sorted(netns):
        if name.startswith("rongqi-") and name[7:] in dead_cids:
            out.leaks.netns.append(name)
    for m in read_mounts():
        if m.mountpoint.startswith(NETNS_DIR + "/rongqi-") and \
                os.path.basename(m.mountpoint)[7:] in dead_cids:
            out.leaks.mounts.append(m)
    # A network's rules and bridge stay while any container is on it: flag them only when
    # every address on it was a dead session's (netavark removes both with the last one).
    gone_nets: dict[str, dict] = {}
    for rec in out.active:
        for info in ((rec.get("doc") or {}).get("network_info") or {}).values():
            nid = info.get("id", "")
            holders = lease_roots.get(nid, [])
            if nid and all(cid in dead_cids for cid, _ in holders):
                gone_nets[nid] = info
    if gone_nets:
        subnets = {s.get("subnet") for info in gone_nets.values()
                   for s in info.get("subnets") or [] if s.get("subnet")}
        firewall = sorted(read_firewall())
        chains: set[str] = set()
        for r in firewall:
            words = r.split()
            if subnets & set(words):
                for w in words:
                    if re.fullmatch(r"NETAVARK-(DN-)?[0-9A-F]{6,}", w):
                        chains |= {w, w.replace("NETAVARK-DN-", "NETAVARK-"),
                                   w.replace("NETAVARK-", "NETAVARK-DN-", 1)}
        for r in firewall:
            line = r.split(" ", 2)[2]
            chain = line[1:].split()[0] if line.startswith(":") else line[3:].split()[0]
            if subnets & set(r.split()) or chain in chains:
                out.leaks.firewall.append(r)
        for info in gone_nets.values():
            br = info.get("network_interface", "")
            brif = f"/sys/class/net/{br}/brif"
            if br and os.path.isdir(brif) and not os.listdir(brif):
                out.bridges.append(br)
    for cg in sorted(read_cgroups()):
        parts = cg.split("/")
        if len(parts) < 3 or any(cg == f or cg.startswith(f + "/") for f in CGROUP_FORBIDDEN):
            continue
        m = _SESSION_TAG.search(parts[2]) if parts[1] == "rongqi-test" else None
        if m and not _pytest_alive(int(m.group(1))) or \
                parts[1] == "rongqi" and parts[2] in dead_cids:
            if len(parts) == 3:
                out.leaks.cgroups.append(cg)
    _dead_networks(out, near)
    named = " ".join(out.lines())
    for cid, root in sorted(dead_cids.items()):
        if cid[:12] in named or cid in named:
            out.why.append(f"container {cid[:12]} of {root}")
    return out


def remove_stale(stale: Stale, checker: LeakChecker, conf: str) -> list[str]:
    """Undo what dead sessions left (the engine's own teardown for their active records,
    netavark's conf dir `conf` a fresh one of ours), kill what still runs in their cgroups,
    then remove the rest by path; return what could not be removed."""
    try:
        from rongqi.engine import networks
    except ImportError:
        networks = None  # type: ignore[assignment]
    for rec in stale.active:
        if networks is not None and rec.get("id"):
            with contextlib.suppress(Exception):
                # Its own conf dir where it still is: aardvark-dns's state is kept there.
                own = rec.get("conf") or ""
                networks._undo(own if own and os.path.isdir(own) else conf, rec["id"],
                               rec.get("netns") or "", rec.get("doc") or {})
    if stale.active and stale.leaks.firewall:
        # netavark's teardown of the last container on a network took its rules already.
        now = read_firewall()
        stale.leaks.firewall = [r for r in stale.leaks.firewall if r in now]
    for cg in stale.leaks.cgroups:
        for dirpath, _dirs, _files in os.walk(os.path.join(CGROUP_ROOT, cg)):
            for pid in checker._cgroup_pids(os.path.relpath(dirpath, CGROUP_ROOT)):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
    failed = checker.cleanup(stale.leaks, kill_processes=False)
    for name in stale.leaks.netns:
        if os.path.exists(os.path.join(NETNS_DIR, name)):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    for br in stale.bridges:
        if not os.path.exists(f"/sys/class/net/{br}"):
            continue
        subprocess.run(["ip", "link", "delete", br], capture_output=True)
        if os.path.exists(f"/sys/class/net/{br}"):
            failed.append(f"ip link delete {br}")
    return failed


# -- what the session made once for the whole host ------------------------------------------------
# Two kinds of state are made on first use and shared by everything after, so no single test
# owns them: netavark's base chains (NETAVARK_FORWARD, NETAVARK-HOSTPORT-*, and the jumps to
# them from FORWARD, PREROUTING, OUTPUT and POSTROUTING: netavark never removes them) and the
# runtime's read-only binds of an unprotected interpreter under /run/rongqi/exe (exeguard's
# fallback, made once per boot). The tests remove what they made once nothing uses it, so
# the host is left as the tests found it.
GUARD_DIR = "/run/rongqi/exe"
_BASE_CHAINS = ("NETAVARK_FORWARD", "NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-MASQ",
                "NETAVARK-HOSTPORT-SETMARK")


def _guard_mounts() -> list[str]:
    return [m.mountpoint for m in read_mounts()
            if m.mountpoint == GUARD_DIR or m.mountpoint.startswith(GUARD_DIR + "/")]


# Which of it the tests made is kept on the host, not in the session: sessions overlap (CI's
# beside a shell's), and the last one to end, the only one that may remove it, is often one
# that found it already there. A session that finds a kind absent marks it as the tests'; the
# last session to end removes every marked kind once nothing uses it, and unmarks it. A kind
# present with no mark is the host's own (podman's chains, say) and is never touched.
BASELINE_MARK = "/run/rongqi/test-made-host-state"


def _netavark_lines() -> list[str]:
    return [ln for cmd in ("iptables", "ip6tables") for t in ("filter", "nat")
            for ln in _run_lines([cmd, "-t", t, "-S"]) if "NETAVARK" in ln]


@contextlib.contextmanager
def _marked(mark: str) -> Iterator[set[str]]:
    """The mark's kinds under its lock, written back (or removed when empty) on exit."""
    import fcntl
    os.makedirs(os.path.dirname(mark), exist_ok=True)
    lock = os.open(mark + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(mark) as f:
                kinds = {ln.strip() for ln in f if ln.strip()}
        except FileNotFoundError:
            kinds = set()
        yield kinds
        if kinds:
            with open(mark + ".new", "w") as f:
                f.write("".join(k + "\n" for k in sorted(kinds)))
            os.replace(mark + ".new", mark)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mark)
    finally:
        os.close(lock)


class HostBaseline:
    """Marks (BASELINE_MARK) the kinds of host-wide state above that are absent at the
    session's start, so whichever session ends last removes them."""

    def __init__(self, mark: str = BASELINE_MARK) -> None:
        self.mark = mark
        with _marked(mark) as kinds:
            if not _netavark_lines():
                kinds.add("netavark")
            if not _guard_mounts():
                kinds.add("guard")

    def restore(self) -> list[str]:
        """Remove what of it the tests made, as far as nothing uses it; what could not be
        removed, as lines. Only for the last session to end."""
        failed: list[str] = []
        with _marked(self.mark) as kinds:
            if "netavark" in kinds:
                failed += _remove_netavark_base()
                if not _netavark_lines():
                    kinds.discard("netavark")
            if "guard" in kinds:
                for mp in sorted(_guard_mounts(), key=len, reverse=True):
                    r = subprocess.run(["umount", mp], capture_output=True, text=True)
                    if r.returncode != 0:
                        failed.append(f"umount {mp}: {r.stderr.strip()}")
                if not _guard_mounts():
                    kinds.discard("guard")
        return failed


def _remove_netavark_base() -> list[str]:
    """netavark's base chains and jumps, only when no network's own rules are left in them
    (a chain still in use is a leak the per-test check reports, not ours to drop)."""
    failed: list[str] = []
    for cmd in ("iptables", "ip6tables"):
        rules = {t: [ln for ln in _run_lines([cmd, "-t", t, "-S"]) if "NETAVARK" in ln]
                 for t in ("filter", "nat")}
        lines = [ln for t in rules.values() for ln in t]
        if not lines or any(_NETAVARK_RULE.search(ln) for ln in lines):
            continue
        for table, tl in rules.items():
            for ln in tl:   # the jumps from the built-in chains first
                if ln.startswith("-A ") and ln.split()[1] not in _BASE_CHAINS:
                    args = ["-D", *shlex.split(ln)[1:]]
                    r = subprocess.run([cmd, "-t", table, *args], capture_output=True, text=True)
                    if r.returncode != 0:
                        failed.append(f"{cmd} -t {table} {' '.join(args)}: {r.stderr.strip()}")
            for chain in _BASE_CHAINS:
                if any(ln.split()[:2] == ["-N", chain] for ln in tl):
                    for op in ("-F", "-X"):
                        r = subprocess.run([cmd, "-t", table, op, chain], capture_output=True,
                                           text=True)
                        if r.returncode != 0:
                            failed.append(f"{cmd} -t {table} {op} {chain}: {r.stderr.strip()}")
    return failed
