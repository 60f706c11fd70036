#!/usr/bin/env python3
"""The same multi-step Containerfile built by `rongqi build` and by `buildah bud --layers`
(runc as buildah's runtime), cold (no cache: --no-cache) and cached (every step a hit),
rounds interleaved, medians and ratios printed as a table.

Both builders get a private storage root under a temp dir; the FROM image is rongqi's
built-in busybox, handed to buildah through rongqi's OCI-layout store (`oci:` transport).

    sudo python bench/build/build_bench.py [-n 5] [--json out.json]
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
CONTAINERFILE = """\
FROM busybox AS build
ARG VERSION=1
ENV APP=/app
WORKDIR /src
COPY src/ /src/
RUN mkdir -p $APP && for f in /src/*.txt; do cat $f >> $APP/all.txt; done
RUN sha256sum $APP/all.txt > $APP/sum && rm -f /bin/vi
FROM busybox
COPY --from=build /app /app
COPY config.json /etc/app.json
LABEL version=1
EXPOSE 8080
USER nobody
CMD ["cat", "/app/sum"]
"""


def rongqi(root: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "rongqi.cli.main", "--root", root, "--runroot",
            root + "/run", *args]


def buildah(root: str, *args: str) -> list[str]:
    return ["buildah", "--root", root + "/storage", "--runroot", root + "/run",
            "--storage-driver", "overlay", *args]


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=env, check=False)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}\n{r.stderr.decode()}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if shutil.which("buildah") is None:
        raise SystemExit("buildah is not installed (apt-get install buildah)")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with tempfile.TemporaryDirectory(prefix="build-bench-") as tmp:
        ctx = Path(tmp, "ctx")
        (ctx / "src").mkdir(parents=True)
        for i in range(50):
            (ctx / "src" / f"f{i}.txt").write_text(f"file {i}\n" * 100)
        (ctx / "config.json").write_text('{"a": 1}\n')
        (ctx / "Containerfile").write_text(CONTAINERFILE)
        rroot, broot = os.path.join(tmp, "rongqi"), os.path.join(tmp, "buildah")
        # The built-in busybox, made locally (`pull busybox` would ask Docker Hub first).
        subprocess.run(rongqi(rroot, "image", "inspect", "busybox"), env=env, check=True,
                       stdout=subprocess.DEVNULL)
        layout = os.path.join(rroot)
        subprocess.run(buildah(broot, "pull", "-q", f"oci:{layout}:docker.io/library/busybox:latest"),
                       check=True, stdout=subprocess.DEVNULL)
        iid = subprocess.run(buildah(broot, "images", "-q"), check=True, capture_output=True,
                             text=True).stdout.split()[0]
        subprocess.run(buildah(broot, "tag", iid, "docker.io/library/busybox:latest"),
                       check=True)
        runs = {
            ("rongqi", "cold"): rongqi(rroot, "build", "--no-cache", "-t", "bench", str(ctx)),
            ("rongqi", "cached"): rongqi(rroot, "build", "-t", "bench", str(ctx)),
            ("buildah", "cold"): buildah(broot, "bud", "--runtime", "/usr/sbin/runc",
                                         "--layers", "--no-cache", "-t", "bench", str(ctx)),
            ("buildah", "cached"): buildah(broot, "bud", "--runtime", "/usr/sbin/runc",
                                           "--layers", "-t", "bench", str(ctx)),
        }
        times: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
        # warm-up: byte-compile, fill both caches
        timed(runs[("rongqi", "cached")], env)
        timed(runs[("buildah", "cached")], env)
        for i in range(a.n):
            order = list(runs) if i % 2 == 0 else list(reversed(list(runs)))
            for k in order:
                times[k].append(timed(runs[k], env))
        print(f"rongqi build vs buildah bud --layers, {a.n} rounds, medians (s)")
        print(f"{'':8} {'rongqi':>8} {'buildah':>8} {'ratio':>7}")
        out = {}
        for mode in ("cold", "cached"):
            r = statistics.median(times[("rongqi", mode)])
            b = statistics.median(times[("buildah", mode)])
            out[mode] = {"rongqi": r, "buildah": b, "ratio": r / b}
            print(f"{mode:8} {r:8.3f} {b:8.3f} {r / b:7.2f}")
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
        subprocess.run(buildah(broot, "rmi", "-a", "-f"), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    main()
