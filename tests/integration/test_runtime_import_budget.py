"""rongqi-oci's start path stays small: `create`, `start`, `state`, `kill` and `delete`, each
in its own interpreter under `-X importtime`, load none of the costly or needless modules.

json, re, typing, dataclasses, enum, subprocess and argparse each cost a millisecond or more
to import (measured with `-X importtime` here: re ~2 ms with enum, typing ~3 ms, subprocess
pulls in selectors, threading, signal ...); the runtime has its own small replacements
(rongqi.fastjson over the C _json, its own flag parser). A stray import fails here, not in a
benchmark weeks later. Both profiles: runc's minimal spec and docker's default (seccomp).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.root

FORBIDDEN = {"json", "re", "typing", "dataclasses", "enum", "subprocess", "argparse"}
# The runtime's layers and the base modules they share; nothing of the engine or images.
ALLOWED_RONGQI = ("rongqi.oci", "rongqi.linux", "rongqi.errors", "rongqi.fastjson", "rongqi.locking")


def launcher_argv(binary: str) -> list[str]:
    """The launcher's own interpreter and flags (its #! line), with -X importtime added."""
    with open(binary, "rb") as f:
        first = f.readline().decode()
    assert first.startswith("#!"), f"{binary} is not a script"
    interp, *flags = first[2:].split()
    return [interp, *flags, "-X", "importtime", binary]


def loaded_modules(argv: list[str], log: str) -> tuple[int, set[str], str]:
    """Run argv with stderr to a file (a container's init inherits it, so imports made after
    the fork count too); return (exit code, the modules imported, the other stderr lines)."""
    with open(log, "w+") as err:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        lines = err.read().splitlines()
    mods, other = set(), []
    for line in lines:
        if line.startswith("import time:"):
            name = line.rpartition("|")[2].strip()
            if name != "imported package":
                mods.add(name)
        else:
            other.append(line)
    return r.returncode, mods, "\n".join(other)


def default_profile(bundle: str) -> None:
    """Replace the bundle's config by docker's default profile (`rongqi-oci spec`'s shape:
    its capabilities, seccomp filter, masked paths), keeping root, args and cgroup."""
    from rongqi.oci.default_spec import default_spec

    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        old = json.load(f)
    spec = default_spec()
    spec["process"]["args"] = old["process"]["args"]
    spec["process"]["terminal"] = False
    spec["root"] = old["root"]
    spec["linux"]["cgroupsPath"] = old["linux"]["cgroupsPath"]
    with open(path, "w") as f:
        json.dump(spec, f)


@pytest.mark.parametrize("profile", ["runc", "default"])
def test_lifecycle_commands_load_no_costly_module(profile, oci_binary, runtime_root, bundle_factory, unique_id,
                                                  tmp_path):
    bundle = bundle_factory(["sleep", "100"])
    if profile == "default":
        default_profile(bundle)
    base = launcher_argv(oci_binary) + ["--root", runtime_root]
    steps = [("create", ["create", "-b", bundle, unique_id]), ("start", ["start", unique_id]),
             ("state", ["state", unique_id]), ("kill", ["kill", unique_id, "KILL"]),
             ("delete", ["delete", "--force", unique_id])]
    report = []
    for what, args in steps:
        code, mods, stderr = loaded_modules(base + args, str(tmp_path / f"{what}.log"))
        assert code == 0, f"{what} failed: {stderr}"
        assert "rongqi.oci.cli" in mods, f"{what}: -X importtime reported nothing ({len(mods)} modules)"
        costly = sorted(FORBIDDEN & mods)
        foreign = sorted(m for m in mods if m.startswith("rongqi.") and not m.startswith(ALLOWED_RONGQI))
        if costly or foreign:
            report.append(f"{what}: loads {costly + foreign}")
    assert not report, "\n".join(report)


def test_the_budget_check_sees_a_stray_import(tmp_path):
    """The parser above finds a module a process really imports (so the test can fail)."""
    import sys

    code, mods, _ = loaded_modules([sys.executable, "-I", "-S", "-X", "importtime", "-c", "import argparse"],
                                   str(tmp_path / "log"))
    assert code == 0 and "argparse" in mods and FORBIDDEN & mods
