#!/usr/bin/env python3
"""Start-up benchmark of OCI runtimes: `rongqi-oci run` vs `runc run` (and crun) on one bundle.

Every runtime runs the same busybox bundle's /bin/true, interleaved (the order rotates each
round, so drift in the machine's load hits all of them alike); then N runs in parallel.

    sudo python bench/runtime/run_bench.py [-n 100] [--parallel 50] [--runtimes rongqi-oci,runc,crun]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from rongqi.image.busybox import make_bundle, make_rootfs  # noqa: E402

CGROUP_PARENT = "rongqi-bench"
# Leaves are named per bench process, so two benches running at once never share a cgroup.
CGROUP_PREFIX = f"r{os.getpid()}-"
CGROUP_FS = "/sys/fs/cgroup"


@dataclass
class Runtime:
    name: str
    path: str
    root: str
    times_ms: list[float] = field(default_factory=list)
    # CPU (user + system) of the runtime and everything it started (its helper and init, the
    # container's /bin/true), per run: far less disturbed by a busy machine than wall times.
    cpu_ms: list[float] = field(default_factory=list)
    parallel_cpu_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    parallel_ms: list[float] = field(default_factory=list)
    parallel_ok: list[int] = field(default_factory=list)
    refused: str = ""
    last_cpu_ms: float = 0.0

    def argv(self, bundle: str, cid: str) -> list[str]:
        return [self.path, "--root", self.root, "run", "--bundle", bundle, cid]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


PROFILES = ("runc", "default", "resources")


def write_bundle(dest: Path, rootfs: Path, cgroup: str, profile: str = "runc") -> str:
    """One shared read-only rootfs (absolute root.path); every config.json is the same spec
    but for its cgroupsPath, so parallel containers do not share a cgroup.

    profile "runc": `runc spec`'s shape (3 capabilities, no seccomp); "default":
    `rongqi-oci spec`'s (docker's capabilities and seccomp profile, masked paths);
    "resources": runc's shape with a typical limits block (memory, cpu, pids).
    """
    cgroups_path = f"/{CGROUP_PARENT}/{CGROUP_PREFIX}{cgroup}"
    if profile == "default":
        from rongqi.oci.default_spec import default_spec

        spec = default_spec()
        spec["process"]["args"] = ["/bin/true"]
        spec["process"]["terminal"] = False  # the template's is true (runc's)
        spec["root"] = {"path": str(rootfs), "readonly": True}
        spec["linux"]["cgroupsPath"] = cgroups_path
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "config.json").write_text(json.dumps(spec))
        return str(dest)
    resources = None
    if profile == "resources":
        resources = {"devices": [{"allow": False, "access": "rwm"}],
                     "memory": {"limit": 256 * 1024 * 1024},
                     "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                     "pids": {"limit": 100}}
    extra = {"resources": resources} if resources else {}
    return make_bundle(
        str(dest), ["/bin/true"], rootfs=str(rootfs), readonly=True, cgroups_path=cgroups_path, **extra,
    )


def children_cpu_ms() -> float:
    """CPU of this process's reaped descendants so far (each runtime reaps its own children)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000


def run_once(rt: Runtime, bundle: str, cid: str) -> tuple[float, str]:
    cpu0 = children_cpu_ms()
    t0 = time.perf_counter()
    r = subprocess.run(
        rt.argv(bundle, cid), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    elapsed = (time.perf_counter() - t0) * 1000
    rt.last_cpu_ms = children_cpu_ms() - cpu0
    return elapsed, "" if r.returncode == 0 else f"exit {r.returncode}: {r.stderr.strip()[-300:]}"


def run_parallel(rt: Runtime, bundles: list[str], tag: str) -> tuple[float, int, str]:
    cpu0 = children_cpu_ms()
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            rt.argv(b, f"{tag}-{i}"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )
        for i, b in enumerate(bundles)
    ]
    errors = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            errors.append(f"exit {p.returncode}: {err.strip()[-200:]}")
    wall = (time.perf_counter() - t0) * 1000
    rt.parallel_cpu_ms.append((children_cpu_ms() - cpu0) / len(procs))
    return wall, len(procs) - len(errors), errors[0] if errors else ""


def force_delete_all(rt: Runtime) -> None:
    if not os.path.isdir(rt.root):
        return
    for cid in os.listdir(rt.root):
        if os.path.isdir(os.path.join(rt.root, cid)):
            subprocess.run([rt.path, "--root", rt.root, "delete", "--force", cid], capture_output=True)


def remove_bench_cgroups() -> None:
    """Remove this run's leaves (runtimes normally do) and the parent once nobody uses it."""
    for hierarchy in os.listdir(CGROUP_FS):
        top = os.path.join(CGROUP_FS, hierarchy, CGROUP_PARENT)
        if not os.path.isdir(top):
            continue
        for leaf in os.listdir(top):
            path = os.path.join(top, leaf)
            if leaf.startswith(CGROUP_PREFIX) and os.path.isdir(path):
                try:
                    os.rmdir(path)
                except OSError as err:
                    print(f"warning: could not remove cgroup {path}: {err}", file=sys.stderr)
        try:
            os.rmdir(top)
        except OSError:
            pass  # another bench still has leaves there; the last one out removes it


def find_runtimes(names: list[str], rongqi_oci: str, state: Path) -> list[Runtime]:
    found = []
    for name in names:
        path = rongqi_oci if name == "rongqi-oci" else shutil.which(name)
        if not path or not os.access(path, os.X_OK):
            print(f"skipping {name}: not found", file=sys.stderr)
            continue
        root = state / name
        root.mkdir(parents=True)
        found.append(Runtime(name, path, str(root)))
    return found


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="sequential runs per runtime (default 100)")
    ap.add_argument("--parallel", type=int, default=50, help="containers started at once (default 50)")
    ap.add_argument("--parallel-rounds", type=int, default=3, help="parallel batches per runtime")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runtimes", default="rongqi-oci,runc,crun")
    ap.add_argument("--profile", choices=PROFILES, default="runc",
                    help="config.json: runc (runc spec's shape), default (rongqi-oci spec: docker's caps and "
                         "seccomp), resources (runc's shape plus memory/cpu/pids limits)")
    ap.add_argument("--rongqi-oci", default=os.environ.get("RONGQI_OCI") or str(REPO / "bin" / "rongqi-oci"))
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                    help="one more runtime binary in the same interleaved runs (e.g. another build of "
                         "rongqi-oci, to compare before/after); may be repeated")
    ap.add_argument("--json", metavar="FILE", help="also write the raw timings as JSON")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("run_bench.py: needs root (runtimes create namespaces and cgroups)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="rongqi-bench-"))
    runtimes: list[Runtime] = []
    try:
        rootfs = work / "rootfs"
        make_rootfs(str(rootfs))
        seq_bundle = write_bundle(work / "bundle", rootfs, "seq", args.profile)
        par_bundles = [write_bundle(work / f"par{i}", rootfs, f"par-{i}", args.profile) for i in range(args.parallel)]
        runtimes = find_runtimes(args.runtimes.split(","), args.rongqi_oci, work / "state")
        for extra in args.also:
            name, _, path = extra.partition("=")
            (work / "state" / name).mkdir(parents=True)
            runtimes.append(Runtime(name, path, str(work / "state" / name)))

        # A runtime that cannot run the bundle at all (crun refuses hybrid cgroup hosts) is
        # reported with its own error instead of timed.
        for rt in runtimes:
            for i in range(args.warmup):
                _, err = run_once(rt, seq_bundle, f"warm-{rt.name}-{i}")
                if err:
                    rt.refused = err
                    break
        active = [rt for rt in runtimes if not rt.refused]

        for i in range(args.n):
            shift = i % len(active) if active else 0
            for rt in active[shift:] + active[:shift]:
                ms, err = run_once(rt, seq_bundle, f"seq-{i}")
                if err:
                    rt.failures.append(err)
                else:
                    rt.times_ms.append(ms)
                    rt.cpu_ms.append(rt.last_cpu_ms)

        for rnd in range(args.parallel_rounds if args.parallel > 0 else 0):  # --parallel 0: none
            for rt in active if rnd % 2 == 0 else active[::-1]:
                wall, ok, err = run_parallel(rt, par_bundles, f"par{rnd}")
                rt.parallel_ms.append(wall)
                rt.parallel_ok.append(ok)
                if err:
                    rt.failures.append(err)
    finally:
        for rt in runtimes:
            force_delete_all(rt)
        remove_bench_cgroups()
        shutil.rmtree(work, ignore_errors=True)

    report(runtimes, args)
    if args.json:
        Path(args.json).write_text(json.dumps([rt.__dict__ for rt in runtimes], indent=1))
    return 0 if all(not rt.refused and not rt.failures for rt in runtimes if rt.name != "crun") else 1


def report(runtimes: list[Runtime], args: argparse.Namespace) -> None:
    base = next((rt for rt in runtimes if rt.name == "runc" and rt.times_ms), None)
    base_med = statistics.median(base.times_ms) if base else None
    base_par = statistics.median(base.parallel_ms) if base and base.parallel_ms else None
    base_cpu = statistics.median(base.cpu_ms) if base and base.cpu_ms else None
    base_pcpu = statistics.median(base.parallel_cpu_ms) if base and base.parallel_cpu_ms else None
    rows = []
    for rt in runtimes:
        if not rt.times_ms:
            continue
        med = statistics.median(rt.times_ms)
        cpu = statistics.median(rt.cpu_ms) if rt.cpu_ms else 0.0
        rows.append([
            rt.name, f"{med:.1f}", f"{percentile(rt.times_ms, 0.9):.1f}", f"{min(rt.times_ms):.1f}",
            f"{len(rt.times_ms)}/{args.n}", f"{med / base_med:.2f}" if base_med else "-",
            f"{cpu:.1f}", f"{cpu / base_cpu:.2f}" if base_cpu else "-",
        ])
    print(f"\n`run` of /bin/true with the {args.profile!r} config, {args.n} interleaved runs each (ms; ratio = median / runc's median;"
          " cpu = median CPU of the runtime and its processes per run)")
    print(table(["runtime", "median", "p90", "min", "ok", "ratio", "cpu", "cpu ratio"], rows))

    if args.parallel <= 0:
        for rt in runtimes:
            if rt.refused:
                print(f"\n{rt.name} could not run the bundle: {rt.refused}")
            elif rt.failures:
                print(f"\n{rt.name}: {len(rt.failures)} failed runs; first: {rt.failures[0]}")
        return
    rows = []
    for rt in runtimes:
        if not rt.parallel_ms:
            continue
        wall = statistics.median(rt.parallel_ms)
        pcpu = statistics.median(rt.parallel_cpu_ms) if rt.parallel_cpu_ms else 0.0
        rows.append([
            rt.name, f"{wall:.0f}", f"{min(rt.parallel_ok)}/{args.parallel}",
            f"{wall / base_par:.2f}" if base_par else "-",
            f"{pcpu:.1f}", f"{pcpu / base_pcpu:.2f}" if base_pcpu else "-",
        ])
    print(f"\n{args.parallel} runs started at once: wall time until all exited "
          f"(ms, median of {args.parallel_rounds} rounds)")
    print(table(["runtime", "wall", "ok (worst round)", "ratio", "cpu/run", "cpu ratio"], rows))

    for rt in runtimes:
        if rt.refused:
            print(f"\n{rt.name} could not run the bundle: {rt.refused}")
        elif rt.failures:
            print(f"\n{rt.name}: {len(rt.failures)} failed runs; first: {rt.failures[0]}")


if __name__ == "__main__":
    sys.exit(main())
