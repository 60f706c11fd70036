#!/usr/bin/env python3
"""rongqi.sandbox's figures: sandboxes started and finished per second (threads and asyncio,
on this machine's cores), and one `sandbox.run(["true"])` against `podman --runtime runc run
--rm` with the same hardening flags, interleaved so load hits both alike.

Both use the same busybox (rongqi's built-in image, saved and loaded into a private podman
storage: bench/engine/engine_bench.py's Tools). Run as root on an idle machine:

    sudo /opt/rongqi/venv/bin/python3 bench/api/sandbox_bench.py [-n 10] [--total 40] [--workers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench" / "engine"))

from engine_bench import Tools  # noqa: E402

import rongqi  # noqa: E402
from rongqi import sandbox  # noqa: E402

# podman flags matching sandbox.run's defaults (no network, no caps, nobody, read-only root
# with a small /tmp, no new privileges, the limits)
PODMAN_SAME = ["--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges",
               "--user", "65534:65534", "--read-only", "--read-only-tmpfs=false",
               "--tmpfs", "/tmp:size=64m", "--memory", "256m", "--memory-swap", "256m",
               "--cpus", "1", "--pids-limit", "128", "--log-driver", "none"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10, help="latency samples of each")
    ap.add_argument("--total", type=int, default=40, help="sandboxes per throughput run")
    ap.add_argument("--workers", type=int, default=8, help="threads (and asyncio tasks) at once")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    out: dict[str, object] = {"cores": os.cpu_count(), "load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        base = Path(tmp)
        os.environ["RONGQI_RUNTIME_ROOT"] = str(base / "rq-runtime")
        t = Tools(base, [sys.executable, "-m", "rongqi.cli.main"], "none")
        t.env["PYTHONPATH"] = str(REPO / "src")
        t.env["RONGQI_RUNTIME_ROOT"] = str(base / "rq-runtime")
        try:
            t.setup()
            client = rongqi.Client(root=str(base / "rq-root"), runroot=str(base / "rq-run"))
            assert sandbox.run(["true"], client=client).exit_code == 0   # warm
            pm = [*t.pm, "run", "--rm", *PODMAN_SAME, "busybox", "true"]
            t.run(pm)
            sb_t, pm_t = [], []
            for _ in range(a.n):
                s = time.perf_counter()
                r = sandbox.run(["true"], client=client)
                sb_t.append(time.perf_counter() - s)
                assert r.exit_code == 0, r
                pm_t.append(t.timed(pm))
            med_sb, med_pm = statistics.median(sb_t), statistics.median(pm_t)
            print(f"one run of `true` (median of {a.n}): sandbox.run {med_sb * 1000:.0f} ms, "
                  f"podman --runtime runc run --rm {med_pm * 1000:.0f} ms "
                  f"(ratio {med_sb / med_pm:.2f})")
            out["latency_ms"] = {"sandbox": med_sb * 1000, "podman": med_pm * 1000,
                                 "sandbox_all": [x * 1000 for x in sb_t],
                                 "podman_all": [x * 1000 for x in pm_t]}

            def one(i: int) -> sandbox.Result:
                return sandbox.run(["sh", "-c", f"echo {i}"], client=client, timeout=300)

            s = time.perf_counter()
            with ThreadPoolExecutor(a.workers) as pool:
                results = list(pool.map(one, range(a.total)))
            took = time.perf_counter() - s
            assert all(r.stdout == f"{i}\n".encode() for i, r in enumerate(results))
            print(f"threads: {a.total} sandboxes, {a.workers} at once: {took:.2f} s, "
                  f"{a.total / took:.2f} per second")
            out["threads_per_s"] = a.total / took

            async def many() -> list[sandbox.Result]:
                sem = asyncio.Semaphore(a.workers)

                async def task(i: int) -> sandbox.Result:
                    async with sem:
                        return await sandbox.run_async(["sh", "-c", f"echo {i}"],
                                                       client=client, timeout=300)
                return await asyncio.gather(*(task(i) for i in range(a.total)))

            s = time.perf_counter()
            results = asyncio.run(many())
            took = time.perf_counter() - s
            assert all(r.stdout == f"{i}\n".encode() for i, r in enumerate(results))
            print(f"asyncio: {a.total} sandboxes, {a.workers} at once: {took:.2f} s, "
                  f"{a.total / took:.2f} per second")
            out["asyncio_per_s"] = a.total / took
            out["load_after"] = os.getloadavg()[0]
        finally:
            t.run([*t.rq, "rm", "-f", "--all", "-t", "0"], check=False)
            t.run([*t.pm, "rm", "-f", "--all", "-t", "0"], check=False)
            t.run([*t.pm, "system", "reset", "-f"], check=False)
            import subprocess
            subprocess.run(["umount", str(base / "pm" / "root" / "overlay")],
                           capture_output=True, check=False)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
