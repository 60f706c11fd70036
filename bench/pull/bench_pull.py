"""Pull + unpack from a loopback registry: rongqi vs `skopeo copy` + `umoci unpack` (and podman).

Two images are built and pushed by the setup (no internet): a many-layer image (busybox plus
N small layers) and a ~120 MB single-layer Debian rootfs (debootstrap --variant=minbase when a
rootfs is given or can be made, else a comparable tree copied from the host's /usr). Every run
starts from an empty store; medians and the ratio to rongqi are printed.

    python bench/pull/bench_pull.py [--runs 5] [--layers 40] [--debian DIR]
"""

from __future__ import annotations

import argparse
import io
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
sys.path.insert(0, str(REPO / "tests" / "clients" / "registry"))

from rongqi.image.archive import add_layer_file, create_image, layer_from_dir  # noqa: E402
from rongqi.image.store import ImageStore  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")


def start_registry(tmp: Path) -> tuple[subprocess.Popen, str]:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
           "storage": {"filesystem": {"rootdirectory": str(tmp / "registry")}},
           "http": {"addr": f"127.0.0.1:{port}"}}
    (tmp / "registry.yml").write_text(json.dumps(cfg))
    proc = subprocess.Popen(["docker-registry", "serve", str(tmp / "registry.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def comparable_rootfs(dest: Path, target: int = 120 << 20) -> None:
    """Without debootstrap: real files from the host's /usr until ~120 MB (a distro's mix)."""
    total = 0
    for src in ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/share/locale",
                "/usr/share/doc", "/usr/lib/python3.11", "/usr/share/perl"):
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, "/")
            os.makedirs(dest / rel, exist_ok=True)
            for f in filenames:
                s = os.path.join(dirpath, f)
                if total >= target:
                    return
                if os.path.islink(s) or not os.path.isfile(s):
                    continue
                shutil.copy2(s, dest / rel / f)
                total += os.path.getsize(s)


def ensure_debian(path: Path) -> Path | None:
    """debootstrap --variant=minbase bookworm, cleaned as Docker's debian images are (~125 MB)."""
    if not (path / "etc" / "debian_version").exists():
        if not shutil.which("debootstrap"):
            return None
        r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(path),
                            "http://deb.debian.org/debian"], capture_output=True)
        if r.returncode != 0:
            return None
    subprocess.run(["sh", "-c", f"rm -rf {path}/var/cache/apt/archives/*.deb "
                                f"{path}/var/cache/apt/*.bin {path}/var/lib/apt/lists/*"])
    return path


def build_images(tmp: Path, host: str, layers: int, debian: Path | None) -> dict[str, str]:
    from conftest import busybox_rootfs, tar_bytes  # the test suite's own image builders
    layout = tmp / "layout"
    store = ImageStore(str(layout))
    rootfs = busybox_rootfs(tmp / "busybox")
    buf = io.BytesIO()
    layer_from_dir(str(rootfs), buf)
    buf.seek(0)
    ls = [add_layer_file(store, buf)]
    for i in range(layers - 1):
        files = [(f"layer{i}", None)] + [(f"layer{i}/f{j}", os.urandom(2048) * 8)
                                         for j in range(40)]
        import gzip
        ls.append(add_layer_file(store, io.BytesIO(gzip.compress(tar_bytes(files), 6))))
    create_image(store, ls, "many")
    if debian is None:
        debian = tmp / "debian-like"
        comparable_rootfs(debian)
        label = "host /usr sample"
    else:
        label = "debootstrap minbase"
    with open(tmp / "debian.tar.gz", "wb") as f:
        layer_from_dir(str(debian), f)
    with open(tmp / "debian.tar.gz", "rb") as f:
        create_image(store, [add_layer_file(store, f)], "debian")
    for name in ("many", "debian"):
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                        f"oci:{layout}:{name}", f"docker://{host}/bench/{name}:1"], check=True)
    size = os.path.getsize(tmp / "debian.tar.gz")
    unpacked = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(debian)
                   for f in fs if not os.path.islink(os.path.join(d, f)))
    print(f"images: many = {layers} layers; debian = 1 layer, {size / 1e6:.0f} MB gzip, "
          f"{unpacked / 1e6:.0f} MB unpacked ({label})")
    return {"many": f"{host}/bench/many:1", "debian": f"{host}/bench/debian:1"}


def fresh_fs(work: Path, size: str = "3G") -> Path:
    """A brand-new ext4 (loop device over /dev/shm) mounted at `work`.

    On a filesystem that has seen many files created and deleted, ext4 spends most of each
    create scanning for reusable inodes (recently_deleted), and that cost grows run by run;
    a fresh filesystem per run gives every tool the same, stable ground.
    """
    img = Path("/dev/shm") / f"benchpull-{os.getpid()}.img"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["truncate", "-s", size, str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(work)], check=True)
    return img


def drop_fs(work: Path, img: Path) -> None:
    subprocess.run(["umount", str(work)], check=True)
    img.unlink()


def time_cmds(cmds: list[list[str]], work: Path, fresh: bool) -> float:
    img = fresh_fs(work) if fresh else None
    try:
        if not fresh:
            subprocess.run(["rm", "-rf", str(work)], check=True)
            work.mkdir(parents=True)
        subprocess.run(["sync"])
        t0 = time.perf_counter()
        for c in cmds:
            r = subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                raise SystemExit(f"{' '.join(c)} failed ({r.returncode}): {r.stderr.strip()}")
        return time.perf_counter() - t0
    finally:
        if img is not None:
            drop_fs(work, img)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--debian", type=Path, default=Path("/var/tmp/rongqi-bench-debian"),
                    help="a debootstrap'ed rootfs to use (default: made from /usr if absent)")
    ap.add_argument("--same-fs", action="store_true",
                    help="run in a directory of /tmp instead of a fresh ext4 per run")
    args = ap.parse_args()
    debian = ensure_debian(args.debian)
    tmp = Path(tempfile.mkdtemp(prefix="benchpull-"))
    proc, host = start_registry(tmp)
    try:
        refs = build_images(tmp, host, args.layers, debian)
        work = tmp / "work"
        tools: dict[str, callable] = {
            "rongqi pull": lambda ref: ([[PY, "-m", "rongqi.cli.main", "--root", str(work / "rq"),
                                          "pull", "-q", ref]], [work / "rq"]),
            "skopeo copy + umoci unpack": lambda ref: (
                [["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                  f"oci:{work / 'oci'}:x"],
                 ["umoci", "unpack", "--image", f"{work / 'oci'}:x", str(work / "bundle")]],
                [work / "oci", work / "bundle"]),
        }
        if shutil.which("podman"):
            tools["podman pull"] = lambda ref: (
                [["podman", "--root", str(work / "podman"), "pull", "-q", "--tls-verify=false",
                  ref]], [work / "podman"])
        results: dict[str, dict[str, float]] = {}
        for image, ref in refs.items():
            # Interleaved, order rotating per run: this disk slows down as files are created
            # and deleted (ext4 inode scans), which must not favour whichever tool runs first.
            times: dict[str, list[float]] = {t: [] for t in tools}
            names = list(tools)
            for run in range(args.runs):
                for tool in names[run % len(names):] + names[:run % len(names)]:
                    cmds, _ = tools[tool](ref)
                    times[tool].append(time_cmds(cmds, work, not args.same_fs))
            for tool, ts in times.items():
                results.setdefault(image, {})[tool] = statistics.median(ts)
                print(f"  {image:7} {tool:28} median {statistics.median(ts):6.2f} s  "
                      f"(runs: {', '.join(f'{t:.2f}' for t in ts)})", flush=True)
        print()
        print(f"{'image':8} {'tool':28} {'median s':>9} {'vs rongqi':>10}")
        for image, row in results.items():
            base = row["rongqi pull"]
            for tool, t in row.items():
                print(f"{image:8} {tool:28} {t:9.2f} {t / base:9.2f}x")
        out = REPO / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "pull.json").write_text(json.dumps(results, indent=2))
    finally:
        proc.terminate()
        proc.wait()
        subprocess.run(["rm", "-rf", str(tmp)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
