#!/usr/bin/env python3
"""Benchmarks of rongqi-oci under real clients: `podman run --rm` and `exec` latency, vs runc.

podman: one private storage (vfs, its own root/runroot/tmpdir) per runtime, the suite's
busybox image, `podman run --rm IMAGE true` timed from spawn to exit. exec: one running
container per runtime (`RUNTIME run -d` of a busybox bundle with `sleep`), then
`RUNTIME exec ID true` timed. Runtimes take turns each round (the order rotates), so load
changes hit both alike.

    sudo .venv/bin/python bench/clients/bench_clients.py [-n 30] [--exec-n 200] [--skip-podman]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from rongqi.image.busybox import make_bundle  # noqa: E402
from support.private_podman import private_podman  # noqa: E402

IMAGE = "localhost/rongqi/busybox:bench"
CGROUP_PARENT = f"rongqi-bench/clients-{os.getpid()}"


def timed(argv: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])}... failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return ms


def summary(name: str, times: list[float], base: list[float] | None) -> dict:
    med = statistics.median(times)
    ratio = med / statistics.median(base) if base else 1.0
    times_sorted = sorted(times)
    return {"runtime": name, "median_ms": round(med, 2), "p90_ms": round(times_sorted[int(len(times) * 0.9) - 1], 2),
            "min_ms": round(times_sorted[0], 2), "ratio_vs_runc": round(ratio, 3), "n": len(times)}


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'runtime':<12}{'median ms':>11}{'p90 ms':>9}{'min ms':>9}{'vs runc':>9}")
    for r in rows:
        print(f"{r['runtime']:<12}{r['median_ms']:>11.1f}{r['p90_ms']:>9.1f}{r['min_ms']:>9.1f}{r['ratio_vs_runc']:>9.2f}")


class PodmanSetup:
    def __init__(self, base: Path, runtime: str) -> None:
        self.base = base
        (base / "state").mkdir(parents=True, exist_ok=True)
        wrapper = base / "runtime.sh"
        wrapper.write_text(f"#!/bin/sh\nexec {runtime} --root {base}/state \"$@\"\n")
        wrapper.chmod(0o755)
        self.prefix, self.env = private_podman(base, runtime=str(wrapper))

    def __call__(self, *args: str) -> list[str]:
        return self.prefix + list(args)

    def run_argv(self) -> list[str]:
        return self("run", "--rm", "--network", "none",
                    f"--cgroup-parent=/{CGROUP_PARENT}", IMAGE, "true")

    def close(self) -> None:
        subprocess.run(self("rm", "-af"), env=self.env, capture_output=True)
        subprocess.run(self("system", "reset", "-f"), env=self.env, capture_output=True)


def bench_podman(runtimes: dict[str, str], n: int, tmp: Path) -> list[dict]:
    from support.oci_image import build_busybox_oci_archive

    archive = tmp / "bb.tar"
    build_busybox_oci_archive(str(archive), IMAGE)
    setups = {}
    try:
        for name, path in runtimes.items():
            s = PodmanSetup(tmp / f"p{len(setups)}", path)  # runroot must stay under 50 characters
            setups[name] = s
            r = subprocess.run(s("load", "-i", str(archive)), env=s.env, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"podman load ({name}): {r.stderr.strip()}")
            timed(s.run_argv(), s.env)  # warm-up: conmon's cgroup, image layers
        times: dict[str, list[float]] = {k: [] for k in runtimes}
        names = list(runtimes)
        for i in range(n):
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                times[name].append(timed(setups[name].run_argv(), setups[name].env))
    finally:
        for s in setups.values():
            s.close()
    return [summary(k, v, times.get("runc")) for k, v in times.items()]


def bench_exec(runtimes: dict[str, str], n: int, tmp: Path) -> list[dict]:
    started: list[tuple[str, str, str]] = []
    times: dict[str, list[float]] = {k: [] for k in runtimes}
    try:
        for name, path in runtimes.items():
            root = str(tmp / f"root-{name}")
            cid = f"rongqi-bench-exec-{os.getpid()}-{name}"
            bundle = make_bundle(str(tmp / f"bundle-{name}"), ["sleep", "1000"],
                                 cgroups_path=f"/{CGROUP_PARENT}/exec-{name}")
            subprocess.run([path, "--root", root, "run", "-d", "-b", bundle, cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            started.append((path, root, cid))
            timed([path, "--root", root, "exec", cid, "true"])
        names = list(runtimes)
        for i in range(n):
            order = names[i % len(names):] + names[:i % len(names)]
            for path, root, cid in (started[names.index(k)] for k in order):
                name = names[[s[2] for s in started].index(cid)]
                times[name].append(timed([path, "--root", root, "exec", cid, "true"]))
    finally:
        for path, root, cid in started:
            subprocess.run([path, "--root", root, "delete", "--force", cid], capture_output=True)
    return [summary(k, v, times.get("runc")) for k, v in times.items()]


def remove_cgroups() -> None:
    for ctrl in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", ctrl, CGROUP_PARENT)
        if os.path.isdir(top):
            for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="podman runs per runtime")
    ap.add_argument("--exec-n", type=int, default=200, help="execs per runtime")
    ap.add_argument("--rongqi-oci", default=os.environ.get("RONGQI_OCI") or str(REPO / "bin" / "rongqi-oci"))
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    runc = shutil.which("runc")
    if not runc:
        raise SystemExit("runc not found (apt-get install runc)")
    runtimes = {"runc": runc, "rongqi-oci": args.rongqi_oci}
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="rqb-", dir="/tmp") as tmp:
        try:
            out["exec"] = bench_exec(runtimes, args.exec_n, Path(tmp))
            print_table(f"exec of `true` in a running container ({args.exec_n} each)", out["exec"])
            if not args.skip_podman:
                if not shutil.which("podman"):
                    raise SystemExit("podman not found (apt-get install podman)")
                out["podman_run"] = bench_podman(runtimes, args.n, Path(tmp))
                print_table(f"podman run --rm IMAGE true ({args.n} each)", out["podman_run"])
        finally:
            remove_cgroups()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
