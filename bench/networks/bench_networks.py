#!/usr/bin/env python3
"""Networks, side by side with podman (+runc): `run --rm busybox true` on the default bridge
(and with --network none, for what the network costs), 20 containers started on one user
network, and the network stacks alone (netavark setup+teardown, CNI's bridge plugin).

    sudo /opt/rongqi/venv/bin/python bench/networks/bench_networks.py [-n 10] [--skip-podman]

Each round runs rongqi then podman (the order alternates), so load changes hit both. podman gets
a private root/runroot/network config dir and `--runtime /usr/sbin/runc` (crun refuses this
host); both use netavark 1.4 and their default network `podman` (rongqi's: rongqi0,
10.87.0.0/16; podman's: podman0, 10.88.0.0/16), one container at a time. No packet leaves the host: the
containers run `true` or `sleep`.
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
sys.path.insert(0, str(REPO / "src"))

from support.private_podman import private_podman  # noqa: E402

IMAGE = "localhost/rongqi/busybox:bench"


def timed(argv: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=env)
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:8])}... failed ({r.returncode}): "
                         f"{r.stderr.decode(errors='replace')}")
    return ms


def stats(times: list[float]) -> dict:
    s = sorted(times)
    return {"median_ms": round(statistics.median(s), 1), "min_ms": round(s[0], 1),
            "p90_ms": round(s[max(0, int(len(s) * 0.9) - 1)], 1), "n": len(s)}


class Rongqi:
    def __init__(self, base: Path):
        self.env = dict(os.environ, PYTHONPATH=str(REPO / "src"),
                        RONGQI_OCI=str(REPO / "bin" / "rongqi-oci"))
        self.prefix = [sys.executable, "-m", "rongqi.cli.main", "--root", str(base / "root"),
                       "--runroot", str(base / "run")]

    def __call__(self, *args: str) -> list[str]:
        return self.prefix + list(args)


class Podman:
    def __init__(self, base: Path):
        self.prefix, self.env = private_podman(base, runtime="/usr/sbin/runc")

    def __call__(self, *args: str) -> list[str]:
        return self.prefix + list(args)


def bench_run(engines: dict, n: int) -> dict:
    out = {}
    for mode in ("bridge", "none"):
        times: dict[str, list[float]] = {k: [] for k in engines}
        for i in range(n):
            order = list(engines) if i % 2 == 0 else list(reversed(engines))
            for name in order:
                e = engines[name]
                image = "busybox" if name == "rongqi" else IMAGE
                net = [] if mode == "bridge" else ["--network", "none"]
                times[name].append(timed(e("run", "--rm", *net, image, "true"), e.env))
        out[mode] = {k: stats(v) for k, v in times.items()}
    return out


def bench_twenty(engines: dict, count: int) -> dict:
    out = {}
    for name, e in engines.items():
        image = "busybox" if name == "rongqi" else IMAGE
        net = f"benchnet{os.getpid()}"
        # aardvark's upstream: nothing (127.0.0.1) for rongqi; podman 4.3 has no --dns here,
        # and its containers ask no names.
        dns = ["--dns", "127.0.0.1"] if name == "rongqi" else []
        subprocess.run(e("network", "create", "--subnet", "10.247.33.0/24", *dns, net),
                       env=e.env, capture_output=True, check=True)
        try:
            t0 = time.perf_counter()
            for i in range(count):
                timed(e("run", "-d", "--name", f"b{i}", "--network", net, image, "sleep",
                        "600"), e.env)
            start_ms = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            timed(e("rm", "-f", "-t", "0", *[f"b{i}" for i in range(count)]), e.env)
            rm_ms = (time.perf_counter() - t0) * 1000
        finally:
            subprocess.run(e("rm", "-f", "-a"), env=e.env, capture_output=True)
            subprocess.run(e("network", "rm", "-f", net), env=e.env, capture_output=True)
        out[name] = {"start_total_ms": round(start_ms, 1),
                     "start_each_ms": round(start_ms / count, 1), "rm_all_ms": round(rm_ms, 1)}
    return out


def bench_stacks(tmp: Path, n: int) -> dict:
    """The stacks alone on one netns: netavark (as rongqi calls it) and CNI's bridge plugin
    (with ipMasq, the least a default network needs), first-container case (the bridge and
    its rules made and removed each time)."""
    from rongqi.engine import networks
    netns = "/run/netns/rongqi-bench-" + str(os.getpid())
    networks.make_netns(netns)
    net = {"name": "benchstack", "id": "b" * 64, "driver": "bridge",
           "network_interface": f"rqb{os.getpid() % 100000}",
           "subnets": [{"subnet": "10.247.34.0/24", "gateway": "10.247.34.1"}],
           "ipv6_enabled": False, "internal": False, "dns_enabled": False,
           "ipam_options": {"driver": "host-local"}}
    doc = {"container_id": "c" * 64, "container_name": "bench", "port_mappings": [],
           "networks": {"benchstack": {"interface_name": "eth0", "static_ips": ["10.247.34.2"],
                                       "aliases": []}},
           "network_info": {"benchstack": net}}
    conf = tmp / "aardvark"
    (conf / "aardvark-dns").mkdir(parents=True)
    nv = [networks.netavark_binary(), "--config", str(conf)]
    cni_conf = {"cniVersion": "1.0.0", "name": "benchcni", "type": "bridge",
                "bridge": f"rqc{os.getpid() % 100000}", "isGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "dataDir": str(tmp / "cni-ipam"),
                         "ranges": [[{"subnet": "10.247.35.0/24"}]]}}
    out: dict[str, dict] = {}
    try:
        res: dict[str, list[float]] = {"netavark setup": [], "netavark teardown": [],
                                       "cni bridge ADD": [], "cni bridge DEL": []}
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        data = json.dumps(doc).encode()
        cdata = json.dumps(cni_conf).encode()
        for i in range(n):
            for cmd in ("setup", "teardown"):
                t0 = time.perf_counter()
                subprocess.run(nv + [cmd, netns], input=data, capture_output=True, env=env,
                               check=True)
                res[f"netavark {cmd}"].append((time.perf_counter() - t0) * 1000)
            if os.path.exists("/usr/lib/cni/bridge"):
                for cmd in ("ADD", "DEL"):
                    cenv = dict(env, CNI_COMMAND=cmd, CNI_CONTAINERID=f"bench{i}",
                                CNI_NETNS=netns, CNI_IFNAME="eth0", CNI_PATH="/usr/lib/cni")
                    t0 = time.perf_counter()
                    subprocess.run(["/usr/lib/cni/bridge"], input=cdata, capture_output=True,
                                   env=cenv, check=True)
                    res[f"cni bridge {cmd}"].append((time.perf_counter() - t0) * 1000)
        out = {k: stats(v) for k, v in res.items() if v}
    finally:
        subprocess.run(nv + ["teardown", netns], input=json.dumps(doc).encode(),
                       capture_output=True)
        subprocess.run(["ip", "link", "del", cni_conf["bridge"]], capture_output=True)
        networks.remove_netns(netns)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--count", type=int, default=20, help="containers on one network")
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    tmp = Path(tempfile.mkdtemp(prefix="rongqi-netbench-"))
    results: dict = {"load_before": os.getloadavg()[0]}
    try:
        engines: dict = {"rongqi": Rongqi(tmp / "rq")}
        if not args.skip_podman and shutil.which("podman"):
            from support.oci_image import build_busybox_oci_archive
            p = Podman(tmp / "pm")
            archive = tmp / "bb.tar"
            build_busybox_oci_archive(str(archive), IMAGE)
            subprocess.run(p("load", "-i", str(archive)), env=p.env, capture_output=True,
                           check=True)
            engines["podman"] = p
        for name, e in engines.items():  # warm-up: the image unpacked, the default network
            timed(e("run", "--rm", "busybox" if name == "rongqi" else IMAGE, "true"), e.env)
        results["run_rm"] = bench_run(engines, args.n)
        results["twenty"] = bench_twenty(engines, args.count)
        results["stacks"] = bench_stacks(tmp, args.n)
        results["load_after"] = os.getloadavg()[0]
    finally:
        for name, e in engines.items():
            subprocess.run(e("rm", "-f", "-a"), env=e.env, capture_output=True)
        if "podman" in engines:
            subprocess.run(engines["podman"]("system", "reset", "-f"),
                           env=engines["podman"].env, capture_output=True)
        subprocess.run(["umount", "-R", str(tmp / "rq" / "root" / "overlay")],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    for mode, rows in results["run_rm"].items():
        print(f"\nrun --rm busybox true ({'default bridge' if mode == 'bridge' else '--network none'})")
        for k, v in rows.items():
            print(f"  {k:<8} median {v['median_ms']:>7.1f} ms  min {v['min_ms']:>7.1f}  "
                  f"p90 {v['p90_ms']:>7.1f}")
        if "podman" in rows:
            print(f"  ratio rongqi/podman: {rows['rongqi']['median_ms'] / rows['podman']['median_ms']:.2f}")
    print(f"\n{args.count} containers started on one network (run -d, one after another)")
    for k, v in results["twenty"].items():
        print(f"  {k:<8} {v['start_total_ms']:>8.1f} ms ({v['start_each_ms']:.1f} each), "
              f"rm -f of all: {v['rm_all_ms']:.1f} ms")
    print("\nthe stacks alone (one netns, the bridge made and removed each time)")
    for k, v in results["stacks"].items():
        print(f"  {k:<18} median {v['median_ms']:>7.1f} ms  min {v['min_ms']:>7.1f}")
    print(f"\nload average: {results['load_before']:.1f} before, {results['load_after']:.1f} after")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
