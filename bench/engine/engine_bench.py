#!/usr/bin/env python3
"""The engine side by side with podman: `run --rm busybox true`, `exec`, detached starts, and
each idle container's monitor memory against conmon's. Interleaved, so load hits both alike.

`--before CHECKOUT` runs a second rongqi (another checkout's src/, e.g. a worktree of main)
in the same rotation, so a change's before and after are measured side by side with podman.

Both get the same busybox (rongqi's built-in image, saved and loaded into a private podman
storage) and the same network mode (`--network none` unless --network says otherwise: as
root rongqi's default is a bridge through netavark, which costs as much as the rest of a
run); podman runs with `--runtime runc` (crun refuses this host). Run as root on an idle
machine:

    sudo /opt/rongqi/venv/bin/python3 bench/engine/engine_bench.py [-n 20] [--detached 50]
        [--before /path/to/other/checkout]
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
sys.path.insert(0, str(REPO / "tests"))

from support.private_podman import private_podman  # noqa: E402


class Tools:
    def __init__(self, base: Path, rongqi: list[str], network: str,
                 before: list[str] | None = None):
        self.base = base
        self.net = ["--network", network]
        self.rq = [*rongqi, "--root", str(base / "rq-root"), "--runroot", str(base / "rq-run")]
        # The other tree's rongqi, with a root of its own (its records' format may differ).
        self.rq0 = [*before, "--root", str(base / "rq0-root"), "--runroot",
                    str(base / "rq0-run")] if before else None
        self.pm, self.env = private_podman(base / "pm", storage_driver=None,
                                           runtime=shutil.which("runc") or "runc")
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed rongqi has its .pyc

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=300)
        if check and r.returncode != 0:
            sys.exit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def setup(self) -> None:
        tar = self.base / "busybox.tar"
        self.run([*self.rq, "save", "-o", str(tar), "busybox"])
        self.run([*self.pm, "load", "-i", str(tar)])
        # First runs warm the caches (layers unpacked, .pyc written) and are not counted.
        self.run([*self.rq, "run", "--rm", *self.net, "busybox", "true"])
        self.run([*self.pm, "run", "--rm", *self.net, "busybox", "true"])
        if self.rq0:
            self.run([*self.rq0, "run", "--rm", *self.net, "busybox", "true"])

    def engines(self) -> list[tuple[str, list[str]]]:
        """(label, argv prefix) of each engine measured, podman first."""
        out = [("podman --runtime runc", self.pm), ("rongqi", self.rq)]
        if self.rq0:
            out.append(("rongqi (before)", self.rq0))
        return out

    def timed(self, argv: list[str]) -> float:
        t = time.perf_counter()
        self.run(argv)
        return time.perf_counter() - t


def fast_launcher(base: Path, src: Path | None = None, name: str = "rongqi") -> str:
    """bin/rongqi as installed (`python3 -IS`, no site), but over this checkout's src/.

    The checkout's own bin/rongqi runs site (so that a human's checkout finds its
    dependencies), ~10 ms an installed launcher does not pay; `python3 -m rongqi.cli.main`
    pays that and more. This launcher puts the checkout's src/ first and this
    interpreter's site-packages (the pinned dependencies) after it, then runs bin/rongqi's
    body unchanged.
    """
    import sysconfig
    body = (REPO / "bin" / "rongqi").read_text()
    start = body.index("sys.argv[0] = ")
    head = (f"#!{sys.executable} -IS\nimport sys\n"
            f"sys.path[:0] = [{str(src or REPO / 'src')!r}, "
            f"{sysconfig.get_paths()['purelib']!r}]\n")
    path = base / name
    path.write_text(head + body[start:])
    path.chmod(0o755)
    return str(path)


def pss_rss(pid: int) -> tuple[int, int]:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
                fields[parts[0]] = int(parts[1])
    return fields["Pss:"], fields["Rss:"]


def summary(name: str, xs: list[float]) -> dict:
    return {"name": name, "median_ms": 1000 * statistics.median(xs), "min_ms": 1000 * min(xs),
            "p90_ms": 1000 * sorted(xs)[int(0.9 * (len(xs) - 1))], "n": len(xs)}


def table(rows: list[dict], ref: str) -> None:
    base = next(r for r in rows if r["name"] == ref)["median_ms"]
    print(f"{'':34} {'median':>9} {'p90':>9} {'min':>9} {'ratio':>7}")
    for r in rows:
        print(f"{r['name']:34} {r['median_ms']:8.1f}ms {r['p90_ms']:8.1f}ms {r['min_ms']:8.1f}ms "
              f"{r['median_ms'] / base:7.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=20, help="runs of each (default 20)")
    ap.add_argument("--detached", type=int, default=50, help="detached starts (default 50)")
    ap.add_argument("--rongqi", default="",
                    help="the rongqi command (default: the checkout's code behind an installed "
                    "launcher's -I -S start, see fast_launcher)")
    ap.add_argument("--network", default="none",
                    help="the network mode of both engines' containers (default none)")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--before", metavar="CHECKOUT",
                    help="also run this checkout's rongqi (its src/) in the same rotation")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    os.environ["PYTHONPATH"] = str(REPO / "src")
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        rongqi = a.rongqi.split() if a.rongqi else [fast_launcher(Path(tmp))]
        before = [fast_launcher(Path(tmp), Path(a.before).resolve() / "src", "rongqi-before")
                  ] if a.before else None
        t = Tools(Path(tmp), rongqi, a.network, before)
        try:
            t.setup()
            # -- run --rm ------------------------------------------------------------------
            engines = t.engines()
            times: dict[str, list[float]] = {label: [] for label, _ in engines}
            for i in range(a.n):
                # Each round in a rotated order, so neither goes first every time.
                for label, argv in engines[i % len(engines):] + engines[:i % len(engines)]:
                    times[label].append(t.timed([*argv, "run", "--rm", *t.net, "busybox",
                                                 "true"]))
            load = os.getloadavg()
            rows = [summary(f"{label} run --rm", times[label]) for label, _ in engines]
            print(f"run --rm --network {a.network} busybox true "
                  f"(goal: rongqi at most 0.33 of podman; load {load[0]:.2f} {load[1]:.2f})")
            table(rows, rows[0]["name"])
            out["run"] = rows
            out["load"] = load
            # -- exec --------------------------------------------------------------------
            for _, argv in engines:
                t.run([*argv, "run", "-d", "--name", "bench-exec", *t.net, "busybox", "sleep",
                       "3600"])
            times = {label: [] for label, _ in engines}
            for i in range(a.n):
                for label, argv in engines[i % len(engines):] + engines[:i % len(engines)]:
                    times[label].append(t.timed([*argv, "exec", "bench-exec", "true"]))
            rows = [summary(f"{label} exec".replace(" --runtime runc", ""), times[label])
                    for label, _ in engines]
            print("\nexec CTR true")
            table(rows, rows[0]["name"])
            out["exec"] = rows
            # -- idle monitor memory -------------------------------------------------------
            time.sleep(2.5)  # past the monitor's re-exec (SLIM_AFTER, 1 s)
            pm_cid = t.run([*t.pm, "inspect", "-f", "{{.Id}}", "bench-exec"]).stdout.strip()
            conmon = int(t.run([*t.pm, "inspect", "-f", "{{.State.ConmonPid}}",
                                pm_cid]).stdout.strip())
            cp, cr = pss_rss(conmon)
            out["memory_kb"] = {"conmon": {"pss": cp, "rss": cr}}
            for label, argv in engines[1:]:
                run_root = Path(argv[argv.index("--runroot") + 1])
                rq_cid = t.run([*argv, "inspect", "-f", "{{.Id}}", "bench-exec"]).stdout.strip()
                mpid = int((run_root / rq_cid / "monitor.pid").read_text())
                rp, rr = pss_rss(mpid)
                print(f"\nidle monitor memory: {label} PSS {rp} kB RSS {rr} kB; "
                      f"conmon PSS {cp} kB RSS {cr} kB (ratio PSS {rp / cp:.1f}x)")
                out["memory_kb"][label] = {"pss": rp, "rss": rr}
            # -- detached starts -----------------------------------------------------------
            res = {}
            for name, base_argv in [(label.split()[0] if label.startswith("podman") else label,
                                     argv) for label, argv in engines[1:] + engines[:1]]:
                # Errors to files, not pipes: a monitor (conmon) that kept a pipe open would
                # keep its reader waiting for the container's whole life.
                errs = [open(Path(tmp) / f"{name.replace(' ', '-')}-{i}.err", "w+")
                        for i in range(a.detached)]
                start = time.perf_counter()
                procs = [subprocess.Popen([*base_argv, "run", "-d", *t.net, "busybox", "sleep",
                                           "3600"], stdout=subprocess.DEVNULL, stderr=f,
                                          env=t.env) for f in errs]
                codes = [p.wait() for p in procs]
                seconds = time.perf_counter() - start
                failed = []
                for rc, f in zip(codes, errs):
                    f.seek(0)
                    if rc != 0:
                        failed.append(f"exit {rc}: {f.read().strip()}")
                    f.close()
                res[name] = {"seconds": seconds, "ok": len(procs) - len(failed),
                             "failed": failed}
            print(f"\n{a.detached} detached starts at once: "
                  + "; ".join(f"{k} {v['seconds']:.2f} s ({v['ok']} ok)" for k, v in res.items()))
            for k, v in res.items():
                for line in v["failed"]:
                    print(f"  {k} failed: {line}")
            out["detached"] = res
        finally:
            t.run([*t.rq, "rm", "-f", "--all", "-t", "0"], check=False)
            if t.rq0:
                t.run([*t.rq0, "rm", "-f", "--all", "-t", "0"], check=False)
            t.run([*t.pm, "rm", "-f", "--all", "-t", "0"], check=False)
            t.run([*t.pm, "system", "reset", "-f"], check=False)
            # podman's overlay driver bind-mounts its root/overlay on itself: ours to drop.
            subprocess.run(["umount", str(Path(tmp) / "pm" / "root" / "overlay")],
                           capture_output=True, check=False)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
