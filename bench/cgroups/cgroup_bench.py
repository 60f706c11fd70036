#!/usr/bin/env python3
"""Latency of the cgroup side of a runtime: rongqi-oci vs runc on the same bundles.

Three measurements, each interleaved round by round (the order rotates so machine drift hits
both runtimes alike), medians and ratios printed as a table:
  start   `run` of /bin/true with a typical resources block (memory, cpu, pids)
  update  `update --memory M --pids-limit P --cpu-quota Q` on a running container (values alternate)
  pause   `pause` + `resume` of a running container, timed separately

    sudo python bench/cgroups/cgroup_bench.py [-n 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from rongqi.image.busybox import make_bundle, make_rootfs

CGROUP_PARENT = "rongqi-bench-cg"
RESOURCES = {
    "memory": {"limit": 256 << 20, "reservation": 128 << 20},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 100},
}


def timed(argv: list[str]) -> float:
    # stderr goes to a file, not a pipe: a detached container inherits it and would hold a
    # pipe open (and us waiting) for its whole life.
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        r = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            check=False,
        )
        dt = (time.perf_counter() - t0) * 1000
        if r.returncode != 0:
            err.seek(0)
            raise RuntimeError(
                f"{' '.join(argv)}: exit {r.returncode}: {err.read().decode().strip()}"
            )
    return dt


class Runtime:
    def __init__(self, name: str, path: str, root: str) -> None:
        self.name = name
        self.path = path
        self.root = root
        self.times: dict[str, list[float]] = {
            "start": [],
            "update": [],
            "pause": [],
            "resume": [],
        }

    def cmd(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]


def bundle(dest: Path, rootfs: Path, args: list[str], cgroup: str) -> str:
    return make_bundle(
        str(dest),
        args,
        rootfs=str(rootfs),
        readonly=True,
        cgroups_path=f"/{CGROUP_PARENT}/{cgroup}",
        resources=RESOURCES,
    )


def remove_parent_cgroups() -> None:
    for ctrl in os.listdir("/sys/fs/cgroup"):
        d = f"/sys/fs/cgroup/{ctrl}/{CGROUP_PARENT}"
        if os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError as err:
                print(f"warning: cannot remove {d}: {err.strerror}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50, help="rounds per measurement")
    ap.add_argument("--rongqi", default=str(REPO / "bin" / "rongqi-oci"))
    ap.add_argument("--runc", default=shutil.which("runc") or "")
    ap.add_argument("--json", default="", help="also write the raw numbers here")
    a = ap.parse_args()
    # SIGTERM (timeout, Ctrl-C from a wrapper) still runs the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    if not a.runc:
        print("runc not found (apt-get install runc)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rongqi-bench-cg-"))
    rootfs = work / "rootfs"
    make_rootfs(str(rootfs))
    runtimes = [
        Runtime("rongqi-oci", a.rongqi, str(work / "root-rongqi")),
        Runtime("runc", a.runc, str(work / "root-runc")),
    ]
    live: list[tuple[Runtime, str]] = []
    try:
        for i in range(a.n):
            order = runtimes[i % 2 :] + runtimes[: i % 2]
            for rt in order:
                cid = f"rongqi-bench-start-{rt.name}-{i}"
                b = bundle(work / f"b-{cid}", rootfs, ["/bin/true"], cid)
                rt.times["start"].append(timed(rt.cmd("run", "-b", b, cid)))
                shutil.rmtree(work / f"b-{cid}")
        for rt in runtimes:
            cid = f"rongqi-bench-live-{rt.name}"
            b = bundle(work / f"b-{cid}", rootfs, ["sleep", "100000"], cid)
            timed(rt.cmd("run", "-d", "-b", b, cid))
            live.append((rt, cid))
        for i in range(a.n):
            order = live[i % 2 :] + live[: i % 2]
            mem, pids, quota = (
                ("200M", "80", "40000") if i % 2 else ("300M", "120", "60000")
            )
            for rt, cid in order:
                rt.times["update"].append(
                    timed(
                        rt.cmd(
                            "update",
                            "--memory",
                            mem,
                            "--pids-limit",
                            pids,
                            "--cpu-quota",
                            quota,
                            cid,
                        )
                    )
                )
            for rt, cid in order:
                rt.times["pause"].append(timed(rt.cmd("pause", cid)))
                rt.times["resume"].append(timed(rt.cmd("resume", cid)))
    finally:
        for rt, cid in live:
            subprocess.run(
                rt.cmd("delete", "--force", cid), capture_output=True, check=False
            )
        for rt in runtimes:
            # A start that failed midway may have left a container behind.
            if os.path.isdir(rt.root):
                for cid in os.listdir(rt.root):
                    subprocess.run(
                        rt.cmd("delete", "--force", cid),
                        capture_output=True,
                        check=False,
                    )
        remove_parent_cgroups()
        shutil.rmtree(work, ignore_errors=True)

    ours, theirs = runtimes
    print(
        f"{'operation':<10} {'rongqi-oci ms':>14} {'runc ms':>10} {'ratio':>7}   (median of {a.n}; ratio < 1: rongqi faster)"
    )
    for op in ("start", "update", "pause", "resume"):
        m1, m2 = statistics.median(ours.times[op]), statistics.median(theirs.times[op])
        print(f"{op:<10} {m1:>14.2f} {m2:>10.2f} {m1 / m2:>7.2f}")
    if a.json:
        Path(a.json).write_text(
            json.dumps({rt.name: rt.times for rt in runtimes}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
