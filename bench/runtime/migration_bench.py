#!/usr/bin/env python3
"""The cgroup v1 migration of create's helper, in isolation: the runtime migrating the forked
helper while the helper imports ctypes (what spawn.spawn_in_cgroup does), against the helper
migrating itself after its imports. Each trial forks a child into every cgroup hierarchy of
the host (v1 controllers, and cgroup2 where mounted) and times fork to "ready".

    sudo python3 bench/runtime/migration_bench.py [-n 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

CGROUP_FS = "/sys/fs/cgroup"


def hierarchies() -> list[str]:
    """The mount points under /sys/fs/cgroup (every v1 hierarchy; cgroup2's on a hybrid host)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point, fstype = fields[4], fields[fields.index("-") + 1]
            if point.startswith(CGROUP_FS + "/") and fstype in ("cgroup", "cgroup2"):
                out.append(point)
    return out


def make(dirs: list[str]) -> None:
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        mount = d[:d.index("/rongqi-bench/")]
        if not os.path.exists(mount + "/cpuset.cpus"):
            continue
        # A new v1 cpuset has no cpus or mems and refuses every task: fill each level from above.
        cur = mount
        for part in d[len(mount) + 1:].split("/"):
            parent, cur = cur, cur + "/" + part
            for name in ("cpuset.cpus", "cpuset.mems"):
                with open(f"{cur}/{name}") as f:
                    if f.read().strip():
                        continue
                with open(f"{parent}/{name}") as src, open(f"{cur}/{name}", "w") as dst:
                    dst.write(src.read())


def migrate(dirs: list[str], pid: int) -> None:
    for d in dirs:
        fd = os.open(d + "/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)


def trial(dirs: list[str], mode: str) -> float:
    rep_r, rep_w = os.pipe()
    go_r, go_w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            import ctypes  # what the helper loads (sysc.kernel)

            ctypes.CDLL(None, use_errno=True)
            if mode == "runtime":
                os.read(go_r, 1)
            else:
                migrate(dirs, os.getpid())
            os.write(rep_w, b"k")
        except BaseException:  # noqa: BLE001 - the parent sees no "k"
            code = 1
        os._exit(code)
    try:
        if mode == "runtime":
            migrate(dirs, pid)
            os.write(go_w, b"g")
        if os.read(rep_r, 1) != b"k":
            raise SystemExit("the child failed")
        return (time.perf_counter() - t0) * 1000
    finally:
        os.waitpid(pid, 0)
        for fd in (rep_r, rep_w, go_r, go_w):
            os.close(fd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="trials per mode (alternating)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("migration_bench.py: needs root (it makes cgroups)", file=sys.stderr)
        return 2
    name = f"rongqi-bench/mig-{os.getpid()}"
    dirs = [f"{h}/{name}" for h in hierarchies()]
    results: dict[str, list[float]] = {"runtime": [], "self": []}
    try:
        make(dirs)
        for i in range(args.n):
            for mode in (("runtime", "self") if i % 2 else ("self", "runtime")):
                results[mode].append(trial(dirs, mode))
                time.sleep(0.01)
    finally:
        for d in dirs:
            for path in (d, os.path.dirname(d)):
                try:
                    os.rmdir(path)
                except OSError:
                    pass  # the parent: another bench's leaves may be there
    print(f"fork into {len(dirs)} hierarchies until the child is ready, {args.n} alternating trials (ms)")
    for mode, what in (("runtime", "the runtime migrates the child while it imports ctypes"),
                       ("self", "the child migrates itself after its imports")):
        v = sorted(results[mode])
        print(f"  {mode:8s} p10 {v[len(v) // 10]:7.2f}  median {statistics.median(v):7.2f}  "
              f"p90 {v[9 * len(v) // 10]:7.2f}   {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
