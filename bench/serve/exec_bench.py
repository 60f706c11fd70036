"""exec through the Docker API (rongqi serve) against rongqi's own CLI, side by side.

    sudo python3 bench/serve/exec_bench.py [-n 10]

Starts `rongqi serve` on a private socket over a private engine root (a temp dir), runs one
`busybox sleep` container, then interleaves, n times each: docker-py's exec_create +
exec_start of `true` (the API's cost: the exec's parent is a fresh interpreter), the docker
CLI's `docker exec CTR true` (/usr/bin/docker, if present) and `rongqi exec CTR true`.
Prints medians and minimums in ms, and the load average (read ratios on a loaded host).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(REPO, "src"))
    import docker

    tmp = tempfile.mkdtemp(prefix="rqexec-", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src"),
           "RONGQI_RUNTIME_ROOT": os.path.join(tmp, "runtime")}
    rq = [sys.executable, "-m", "rongqi.cli.main", "--root", os.path.join(tmp, "root"),
          "--runroot", os.path.join(tmp, "run")]
    sock = os.path.join(tmp, "d.sock")
    log = open(os.path.join(tmp, "serve.log"), "wb")
    serve = subprocess.Popen([*rq, "serve", "--socket", "unix://" + sock, "--timeout", "0"],
                             env=env, stdout=log, stderr=log)
    cid = ""
    try:
        while not os.path.exists(sock):
            time.sleep(0.05)
        cid = subprocess.run([*rq, "run", "-d", "busybox", "sleep", "600"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        api = docker.APIClient(base_url="unix://" + sock, version="1.41")
        denv = {**env, "DOCKER_HOST": "unix://" + sock, "DOCKER_CONFIG": tmp}
        has_docker = os.path.exists("/usr/bin/docker") and subprocess.run(
            ["/usr/bin/docker", "exec", cid, "true"], env=denv, capture_output=True).returncode == 0
        times: dict[str, list[float]] = {"API (docker-py exec_create+exec_start)": [],
                                         "docker exec CTR true": [], "rongqi exec CTR true": []}
        for _ in range(a.n):
            t = time.monotonic()
            e = api.exec_create(cid, ["true"])
            api.exec_start(e["Id"])
            times["API (docker-py exec_create+exec_start)"].append(time.monotonic() - t)
            if has_docker:
                t = time.monotonic()
                subprocess.run(["/usr/bin/docker", "exec", cid, "true"], env=denv, check=True)
                times["docker exec CTR true"].append(time.monotonic() - t)
            t = time.monotonic()
            subprocess.run([*rq, "exec", cid, "true"], env=env, check=True)
            times["rongqi exec CTR true"].append(time.monotonic() - t)
        for name, ts in times.items():
            if ts:
                print(f"{name:42} median {statistics.median(ts) * 1000:5.0f} ms   "
                      f"min {min(ts) * 1000:5.0f} ms   (n={len(ts)})")
        print("load average:", " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        if cid:
            subprocess.run([*rq, "rm", "-f", "-t", "0", cid], env=env, capture_output=True)
        serve.terminate()
        serve.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
