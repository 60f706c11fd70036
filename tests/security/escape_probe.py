"""The escape suite's machinery: the static probe, bundles from `rongqi-oci spec`, one run per config.

A config's attempts all run in one container (the probe forks a child per attempt), so the
suite costs a handful of container starts; each test then asserts on its attempt's line.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.plugin import SESSION_TAG, force_delete_all, new_id

__all__ = ["host_marker", "host_sleeper", "private_interpreter", "probe_binary", "suite_root"]

HERE = Path(__file__).resolve().parent


def host_block_device() -> str:
    """"major:minor" of a real block device of this host (the first disk /sys/block lists)."""
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        with open(f"/sys/block/{name}/dev") as f:
            return f.read().strip()
    pytest.skip("no block device on this host to aim mknod at")


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the escape probe (apt-get install gcc libc6-dev)")
    out = tmp_path_factory.mktemp("probe") / "probe"
    r = subprocess.run(["gcc", "-static", "-O1", "-Wall", "-o", str(out), str(HERE / "probe.c")],
                       check=False, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot build the probe:\n{r.stderr}", pytrace=False)
    return str(out)


def host_capabilities() -> list[str]:
    """Every capability this host's root holds (its bounding set lacks CAP_SYS_RESOURCE here)."""
    from rongqi.linux.caps import names

    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                # Bits the kernel has but rongqi has no name for come back as "CAP_<n>".
                return [n for n in names(int(line.split()[1], 16)) if not n[4:].isdigit()]
    raise AssertionError("no CapBnd in /proc/self/status")


def make_bundle(oci_binary: str, dest: Path, probe: str, args: list[str], *, privileged: bool,
                uid: int = 0, host_pid: bool = False, masked: bool | None = None,
                devices: list[dict] | None = None, files: dict[str, str] | None = None,
                host_files: list[str] = (), caps_add: tuple[str, ...] = ()) -> tuple[str, str]:
    """A bundle whose config.json is `rongqi-oci spec`'s, with the probe in its rootfs.

    privileged: all the host's capabilities, no seccomp, no masked or readonly paths, no
    no_new_privs, a writable /sys and every device allowed (docker's --privileged). The
    namespaces stay (host_pid drops only the pid namespace). masked=True keeps the masks and
    readonly paths in a privileged config (to show that full root can lift them). devices are
    added to linux.devices (nodes the runtime creates); files ({path: text}) to the rootfs,
    mode 0755; host_files are copied from the host to the same paths (symlinks resolved);
    caps_add are added to the bounding, effective and permitted sets (docker's --cap-add).
    Returns (bundle dir, cgroupsPath).
    """
    from rongqi.image.busybox import make_rootfs

    dest.mkdir(parents=True)
    r = subprocess.run([oci_binary, "spec", "-b", str(dest)], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rootfs = dest / "rootfs"
    make_rootfs(str(rootfs))
    shutil.copy(probe, rootfs / "bin" / "probe")
    os.chmod(rootfs / "bin" / "probe", 0o755)
    shutil.copy(probe, rootfs / "bin" / "probe-suid")
    os.chown(rootfs / "bin" / "probe-suid", 0, 0)
    os.chmod(rootfs / "bin" / "probe-suid", 0o4755)
    for path in host_files:
        (rootfs / os.path.dirname(path).lstrip("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(path), rootfs / path.lstrip("/"))
    for path, text in (files or {}).items():
        (rootfs / path.lstrip("/")).write_text(text)
        os.chmod(rootfs / path.lstrip("/"), 0o755)
    spec = json.loads((dest / "config.json").read_text())
    if devices:
        spec["linux"].setdefault("devices", []).extend(devices)
    cid_path = f"/rongqi-test/{new_id('sec')}"
    spec["linux"]["cgroupsPath"] = cid_path
    spec["process"]["args"] = ["/bin/probe", *args]
    spec["process"]["terminal"] = False  # the template's is true (runc's)
    spec["process"]["user"] = {"uid": uid, "gid": uid}
    if privileged:
        caps = host_capabilities()
        spec["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
        spec["linux"].pop("seccomp", None)
        if not masked:
            spec["linux"]["maskedPaths"] = []
            spec["linux"]["readonlyPaths"] = []
        spec["process"]["noNewPrivileges"] = False
        for m in spec["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m.get("options", []) if o != "ro"]
        spec["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    for cap in caps_add:
        for kind in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"].setdefault(kind, []).append(cap)
    if host_pid:
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]
    (dest / "config.json").write_text(json.dumps(spec, indent=1))
    return str(dest), cid_path


class Outcome:
    """One attempt's result line: "NAME ok DETAIL..." or "NAME err ERRNO STAGE"."""

    def __init__(self, line: str):
        parts = line.split()
        self.line = line
        self.label = parts[0]
        self.status = parts[1] if len(parts) > 1 else ""
        self.words = parts[2:]

    @property
    def errno(self) -> str:
        assert self.status == "err", f"attempt succeeded: {self.line}"
        return self.words[0]

    @property
    def stage(self) -> str:
        assert self.status == "err", f"attempt succeeded: {self.line}"
        return self.words[1]

    def field(self, key: str) -> str:
        for w in self.words:
            if w.startswith(key + "="):
                return w.split("=", 1)[1]
        raise AssertionError(f"no {key}= in {self.line!r}")

    def __repr__(self) -> str:
        return f"Outcome({self.line!r})"


class Run:
    """The probe's output of one container, by label, and what the host saw around it."""

    def __init__(self, outcomes: dict[str, Outcome], output: str, host_hostname_before: str,
                 host_hostname_after: str, execs: int):
        self.outcomes = outcomes
        self.output = output
        self.host_hostname_before = host_hostname_before
        self.host_hostname_after = host_hostname_after
        self.execs = execs

    def __getitem__(self, label: str) -> Outcome:
        if label not in self.outcomes:
            raise AssertionError(f"attempt {label} printed nothing; probe output:\n{self.output}")
        return self.outcomes[label]


def run_probe(oci_binary: str, root: str, bundle: str, *, exec_while_running: bool = False,
              no_pivot: bool = False, timeout: float = 60, launcher: list[str] | None = None,
              exec_argv: tuple[str, ...] = ("/bin/true",), max_execs: int = 0,
              after_execs: Callable[[], None] | None = None,
              instead_of_exec: Callable[[int], None] | None = None) -> Run:
    """Run the bundle detached (stdout to a file, never a pipe), exec into it while it runs if
    asked (at most max_execs times if given, then after_execs() is called), wait for it to
    stop and delete it. launcher is
    the command that runs rongqi-oci (default: oci_binary itself). instead_of_exec(pid of the
    container's init) is called in place of each exec when given."""
    cid = new_id("sec")
    before = socket.gethostname()
    execs = 0
    oci = launcher or [oci_binary]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        argv = [*oci, "--root", root, "run", "-d", "-b", bundle]
        if no_pivot:
            argv.append("--no-pivot")
        r = subprocess.run([*argv, cid], check=False, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout)
        try:
            err.seek(0)
            assert r.returncode == 0, f"rongqi-oci run failed: {err.read()}"
            deadline = time.monotonic() + timeout
            while True:
                st = subprocess.run([oci_binary, "--root", root, "state", cid], check=False, capture_output=True, text=True)
                assert st.returncode == 0, st.stderr
                if json.loads(st.stdout)["status"] == "stopped":
                    break
                assert time.monotonic() < deadline, "the probe container never stopped"
                if exec_while_running and not (max_execs and execs >= max_execs):
                    if instead_of_exec is not None:
                        instead_of_exec(json.loads(st.stdout)["pid"])
                    else:
                        # Each exec is a runtime process (the host's python) entering the container.
                        subprocess.run([*oci, "--root", root, "exec", cid, *exec_argv],
                                       stdin=subprocess.DEVNULL, check=False, capture_output=True, timeout=30)
                    execs += 1
                    if execs == max_execs and after_execs is not None:
                        after_execs()
                else:
                    time.sleep(0.05)
        finally:
            subprocess.run([oci_binary, "--root", root, "delete", "--force", cid], check=False, capture_output=True, timeout=60)
        out.seek(0)
        output = out.read()
    outcomes = {}
    for line in output.splitlines():
        if line.strip():
            o = Outcome(line)
            outcomes[o.label] = o
    return Run(outcomes, output, before, socket.gethostname(), execs)


@pytest.fixture(scope="module")
def suite_root(tmp_path_factory: pytest.TempPathFactory, oci_binary: str) -> Iterator[str]:
    root = tmp_path_factory.mktemp("sec-root")
    yield str(root)
    force_delete_all(oci_binary, str(root))


@pytest.fixture(scope="module")
def host_marker(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file that exists only on the host: seeing it from inside is an escape."""
    path = tmp_path_factory.mktemp("host-only") / f"marker-{SESSION_TAG}"
    path.write_text("host\n")
    return str(path)


@pytest.fixture(scope="module")
def host_sleeper() -> Iterator[int]:
    """A host process for the container to ptrace (ours, so attaching to it is harmless)."""
    p = subprocess.Popen(["sleep", "300"])
    yield p.pid
    p.kill()
    p.wait()


@pytest.fixture(scope="module")
def private_interpreter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A copy of the host's Python interpreter that only the runtime under test runs.

    The CVE-2019-5736 attack can only reopen an executable for writing once no process runs
    it (ETXTBSY before); the host's own python3 is always busy here (pytest runs it), which
    would hide the hole. The copy stands for the host's interpreter, and is all that a
    successful attack could reach (nothing is ever written to it).
    """
    import sys

    from rongqi.linux import exeguard

    src = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    dest = interpreter_tree(tmp_path_factory.mktemp("interp")) / os.path.basename(src)
    shutil.copy2(src, dest)
    yield str(dest)
    # The runtime, run from this unprotected copy, bound it read-only under the guard's
    # directory to re-exec through: that bind is the test's to remove.
    guard = exeguard.guard_path(os.stat(dest))
    subprocess.run(["umount", "-l", guard], check=False, capture_output=True)
    if os.path.exists(guard):
        os.unlink(guard)


def interpreter_tree(base: Path) -> Path:
    """base/bin for an interpreter that runs rongqi's launchers as an installed venv's does:
    an installed launcher (-I -S) finds the package under PREFIX/lib/pythonX.Y/site-packages,
    PREFIX being the directory above the interpreter's bin/ (bin/rongqi-oci's _path)."""
    import sys

    import rongqi

    (base / "bin").mkdir(exist_ok=True)
    lib = base / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    lib.mkdir(parents=True, exist_ok=True)
    if not (lib / "site-packages").exists():
        (lib / "site-packages").symlink_to(os.path.dirname(os.path.dirname(rongqi.__file__)))
    return base / "bin"


def shared_libraries(binary: str) -> list[str]:
    """The dynamic loader and libraries `ldd` lists for binary (what it needs to start)."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        words = line.split()
        path = words[2] if "=>" in words and len(words) > 2 else words[0] if words else ""
        if path.startswith("/"):
            libs.append(path)
    return libs
