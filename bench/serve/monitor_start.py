"""How long engine.start takes by the way its monitor is made: forked from the caller (the
CLI's way), by rongqi serve's forker, or by a fresh interpreter (a threaded caller without
the forker). Interleaved rounds, so a busy machine's noise falls on all three alike.

    sudo .venv/bin/python bench/serve/monitor_start.py [-n 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=10, help="starts per way (default 10)")
    a = p.parse_args()
    from rongqi.engine import Engine, monitor
    from rongqi.engine.options import ContainerOptions
    base = tempfile.mkdtemp(prefix="rongqi-bench-serve-")
    os.environ["RONGQI_RUNTIME_ROOT"] = os.path.join(base, "runtime")
    times: dict[str, list[float]] = {"fork": [], "forker": [], "interpreter": []}
    made = []
    try:
        rounds = max(1, a.n // 5)
        for _ in range(rounds):
            for way in times:
                if way == "forker":
                    monitor.start_forker()
                e = Engine(os.path.join(base, "root"), os.path.join(base, "run"),
                           threaded=way != "fork")
                for _ in range(max(1, a.n // rounds)):
                    c = e.create(ContainerOptions(image="busybox", command=["sleep", "60"],
                                                  network="none"))
                    made.append(c.id)
                    t0 = time.perf_counter()
                    e.start(c.id)
                    times[way].append(time.perf_counter() - t0)
                monitor.stop_forker()
    finally:
        e = Engine(os.path.join(base, "root"), os.path.join(base, "run"))
        for cid in made:
            try:
                e.remove(cid, force=True, timeout=0)
            except Exception:  # noqa: BLE001 - best effort: the bench's own containers
                pass
        if not any(base in line for line in open("/proc/self/mountinfo")):
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'way':12} {'median':>8} {'best':>8}   (ms, engine.start, {a.n} each, "
          f"load {os.getloadavg()[0]:.1f})")
    for way, ts in times.items():
        print(f"{way:12} {statistics.median(ts) * 1000:8.0f} {min(ts) * 1000:8.0f}")


if __name__ == "__main__":
    main()
