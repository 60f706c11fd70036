"""The import budget of `rongqi run --rm busybox true`: which modules the CLI process loads.

Start latency is a goal of issue 10 (a third of podman's `run`), and every module the CLI
imports is CPU on that path (on this 2-core host a module of ~1 ms, a heavy stdlib one like
tarfile or subprocess several). The runtime's own code (oci.creation and oci.spawn, the init, rootfs,
seccomp) belongs to the monitor, which imports it on the other core while the CLI works;
unpacking (image.layer: tarfile, bz2, lzma), the registry client (httpx) and the table and
template code (cli.output, gotemplate) belong to other commands.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from rq import rq  # noqa: F401 - the fixture

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]

# Run the CLI in-process under -I -S (what bin/rongqi does) and report the modules it loaded.
PROBE = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
before = set(sys.modules)
from rongqi.cli.main import main
code = main(sys.argv[3:])
with open(sys.argv[2], "w") as f:
    json.dump({"code": code, "modules": sorted(set(sys.modules) - before)}, f)
"""

# Never on `run`'s path in the CLI process (bz2 and lzma are not here: shutil imports them).
FORBIDDEN = (
    "rongqi.oci.creation", "rongqi.oci.spawn", "rongqi.oci.init", "rongqi.oci.execution", "rongqi.linux.rootfs",
    "rongqi.linux.seccomp", "rongqi.oci.seccomp_spec", "rongqi.image.layer",
    "rongqi.image.registry", "rongqi.cli.output", "rongqi.cli.gotemplate",
    "rongqi.engine.build", "rongqi.engine.files", "rongqi.engine.stats",
    "tarfile", "zstandard", "isal", "httpx", "rich", "asyncio", "ssl",
    "email", "http", "urllib", "xml", "concurrent", "multiprocessing", "logging",
    "pickle", "decimal", "unittest", "zipfile",
    # rongqi.values stands in for dataclasses on this path; ids come from os.urandom; chain
    # ids from _sha256 (hashlib loads OpenSSL); examples are for --help only.
    "dataclasses", "inspect", "secrets", "hashlib", "datetime", "getpass",
    "rongqi.cli.examples", "rongqi.cli.containers", "rongqi.cli.fs", "rongqi.cli.build",
)
# Measured when this test was written: 137 modules (stdlib and rongqi); 92 since run's path
# lost dataclasses, secrets, hashlib and the other commands' modules (on the bridge; 90 with
# --network none; 98 and 97 as counted here before the next cut); 92 on the bridge and 79
# with --network none since socket.py, subprocess, tempfile, typing and the network code
# left the CLI's path. Room for a few more;
# past it, look at what was added (`python3 -X importtime`) and import it lazily.
MAX_MODULES = 105


def _loaded(rq, *args: str) -> list[str]:
    out = Path(rq.root).parent / "modules.json"
    paths = [str(REPO / "src"), *site.getsitepackages()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    r = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, json.dumps(paths), str(out),
                        "--root", rq.root, "--runroot", rq.runroot, *args],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["code"] == 0
    return doc["modules"]


def test_run_rm_loads_only_what_run_needs(rq):
    rq("run", "--rm", "busybox", "true", check=True)  # the built-in image made, warm caches
    modules = _loaded(rq, "run", "--rm", "busybox", "true")
    loaded = set(modules)
    heavy = [m for m in FORBIDDEN if m in loaded or any(x.startswith(m + ".") for x in loaded)]
    assert heavy == [], f"`run` imports {heavy}"
    assert len(modules) <= MAX_MODULES, f"{len(modules)} modules: {modules}"
    assert rq.engine().list(all=True) == []


# With no network of rongqi's own (none, host, container:NAME) the CLI needs none of the
# network code: engine/networks.py and what it brings (netavark's subprocess, ipaddress,
# socket.py with its enums), nor BinaryRuntime's subprocess and tempfile, nor typing (the
# modules on this path import it for the type checker only).
NO_NETWORK_FORBIDDEN = ("rongqi.engine.networks", "rongqi.engine.ports", "socket", "subprocess",
                        "ipaddress", "tempfile", "selectors", "typing")


def test_run_without_a_network_of_ours_loads_no_network_code(rq):
    rq("run", "--rm", "--network", "none", "busybox", "true", check=True)
    for net in ("none", "host"):
        loaded = set(_loaded(rq, "run", "--rm", "--network", net, "busybox", "true"))
        assert [m for m in NO_NETWORK_FORBIDDEN if m in loaded] == [], net
    assert rq.engine().list(all=True) == []


def test_the_network_plan_file_is_the_one_networks_writes():
    from rongqi.engine import lifecycle, networks
    assert lifecycle.NETWORK_PLAN == networks.ATTACH_FILE
