"""Networks and volumes through the Docker API: rongqi serve against podman's
`system service`, side by side, with Debian's docker CLI.

    sudo python3 bench/serve/networks_bench.py [-n 10] [--skip-podman]

Each service gets a private root in a temp dir (podman through tests/support/private_podman's
containers.conf, `--runtime /usr/sbin/runc`). Interleaved n times each: `docker network
create --subnet S N`, `docker network inspect N`, `docker network rm N`, `docker volume create
V`, `docker volume rm V` (/usr/bin/docker with DOCKER_HOST set; no container, no packet).
Prints medians and minimums in ms, and the load average (read ratios on a loaded host).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = "/usr/bin/docker"
STEPS = ("network create", "network inspect", "network rm", "volume create", "volume rm")


def _wait(sock: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the service did not listen on {sock}")
        time.sleep(0.05)
    time.sleep(0.2)


def _rongqi(tmp: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src"),
           "RONGQI_RUNTIME_ROOT": os.path.join(tmp, "runtime")}
    sock = os.path.join(tmp, "rq.sock")
    log = open(os.path.join(tmp, "rq.log"), "wb")
    p = subprocess.Popen([sys.executable, "-m", "rongqi.cli.main", "--root",
                          os.path.join(tmp, "rqroot"), "--runroot", os.path.join(tmp, "rqrun"),
                          "serve", "--socket", "unix://" + sock, "--timeout", "0"],
                         env=env, stdout=log, stderr=log)
    _wait(sock, p)
    return p, sock


def _podman(tmp: str) -> tuple[subprocess.Popen, str]:
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from support.private_podman import private_podman
    argv, env = private_podman(Path(tmp) / "pm", runtime="/usr/sbin/runc",
                               runroot=os.path.join(tmp, "pr"))
    sock = os.path.join(tmp, "pm.sock")
    log = open(os.path.join(tmp, "pm.log"), "wb")
    p = subprocess.Popen([*argv, "system", "service", "--time", "0", "unix://" + sock],
                         env=env, stdout=log, stderr=log)
    _wait(sock, p)
    return p, sock


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--skip-podman", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rqnetb-", dir="/tmp")
    services: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        services["rongqi serve"] = _rongqi(tmp)
        if not a.skip_podman and shutil.which("podman"):
            services["podman system service"] = _podman(tmp)
        times = {(s, step): [] for s in services for step in STEPS}
        tag = f"b{os.getpid()}"
        for i in range(a.n):
            order = list(services.items())
            if i % 2:
                order.reverse()  # alternate, so load changes hit both
            for k, (name, (_, sock)) in enumerate(order):
                env = {**os.environ, "DOCKER_HOST": "unix://" + sock, "DOCKER_CONFIG": tmp}
                net, vol = f"{tag}-n{i}-{k}", f"{tag}-v{i}-{k}"
                subnet = f"10.{210 + k}.{i % 250}.0/24"
                for step, args in (("network create", ["network", "create", "--subnet", subnet,
                                                       net]),
                                   ("network inspect", ["network", "inspect", net]),
                                   ("network rm", ["network", "rm", net]),
                                   ("volume create", ["volume", "create", vol]),
                                   ("volume rm", ["volume", "rm", vol])):
                    t = time.monotonic()
                    subprocess.run([DOCKER, *args], env=env, check=True, capture_output=True)
                    times[(name, step)].append(time.monotonic() - t)
        for step in STEPS:
            for name in services:
                ts = times[(name, step)]
                print(f"docker {step:16} {name:22} median {statistics.median(ts) * 1000:5.0f} ms"
                      f"   min {min(ts) * 1000:5.0f} ms   (n={len(ts)})")
        print("load average:", " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        for p, _ in services.values():
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
