"""rongqi.linux.exeguard: which executables count as out of a container's reach, and the two
ways the runtime gets a protected interpreter (a read-only bind, a sealed memfd copy).

The attack itself (a `#!/proc/self/exe` script, then the executable reopened for writing) runs
in tests/security/test_escapes.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rongqi.linux import exeguard

pytestmark = pytest.mark.root

# The interpreter file itself (sys.executable may be a venv path that a guard bind covers).
INTERPRETER = os.path.realpath(getattr(sys, "_base_executable", sys.executable))


@pytest.fixture
def ro_bind(tmp_path: Path) -> Iterator[Path]:
    """A copy of the interpreter, bound read-only onto a second path of the host's namespace."""
    copy = tmp_path / "python-copy"
    shutil.copy2(INTERPRETER, copy)
    ro = tmp_path / "python-ro"
    ro.touch(mode=0o755)
    subprocess.run(["mount", "--bind", str(copy), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        yield ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_read_only_mount_of_our_namespace_is_protected_and_the_writable_path_is_not(ro_bind: Path):
    assert exeguard.is_protected(str(ro_bind))
    assert not exeguard.is_protected(str(ro_bind.parent / "python-copy"))
    with pytest.raises(OSError) as e:
        os.open(ro_bind, os.O_WRONLY)
    assert e.value.errno == 30  # EROFS


def test_a_process_started_from_the_read_only_path_knows_it_is_protected(ro_bind: Path):
    code = "import sys; sys.path.insert(0, sys.argv[1]); from rongqi.linux import exeguard; print(exeguard.self_protected())"
    src = str(Path(exeguard.__file__).resolve().parents[2])
    assert subprocess.run([str(ro_bind), "-I", "-S", "-c", code, src], check=True, capture_output=True,
                          text=True).stdout.split() == ["True"]
    assert subprocess.run([str(ro_bind.parent / "python-copy"), "-I", "-S", "-c", code, src], check=True,
                          capture_output=True, text=True).stdout.split() == ["False"]


def test_sealed_copy_runs_and_cannot_be_written():
    path, fd = exeguard.sealed_copy()
    try:
        assert exeguard.is_protected(path)
        w = os.open(path, os.O_WRONLY)  # a memfd opens for writing, but its seals refuse every write
        try:
            with pytest.raises(PermissionError):
                os.write(w, b"x")
        finally:
            os.close(w)
        code = "import os; print(os.readlink('/proc/self/exe'))"
        r = subprocess.run([path, "-I", "-S", "-c", code], check=True, capture_output=True, text=True, pass_fds=(fd,))
        assert r.stdout.startswith("/memfd:rongqi-python")
    finally:
        os.close(fd)


def test_protected_bind_is_made_once_and_reused():
    first = exeguard.protected_bind()
    assert first == exeguard.guard_path(os.stat("/proc/self/exe"))
    assert exeguard.is_protected(first)
    with open("/proc/self/mountinfo") as f:
        before = sum(1 for line in f if line.split()[4] == first)
    assert exeguard.protected_bind() == first
    with open("/proc/self/mountinfo") as f:
        assert sum(1 for line in f if line.split()[4] == first) == before == 1


def test_protect_launcher_covers_a_symlink_and_leaves_it_behind_when_unmounted(tmp_path: Path):
    link = tmp_path / "venv" / "bin" / "python3"
    link.parent.mkdir(parents=True)
    link.symlink_to(INTERPRETER)
    assert not exeguard.is_protected(str(link))
    exeguard.protect_launcher(str(link))
    try:
        assert exeguard.is_protected(str(link))
        exeguard.protect_launcher(str(link))  # already covered: no second mount
        with open("/proc/self/mountinfo") as f:
            assert sum(1 for line in f if line.split()[4] == str(link)) == 1
        out = subprocess.run([str(link), "-I", "-S", "-c", "print(1)"], check=True, capture_output=True, text=True)
        assert out.stdout == "1\n"
    finally:
        subprocess.run(["umount", "-l", str(link)], check=True)
    assert link.is_symlink() and os.readlink(link) == INTERPRETER  # a reboot leaves a working venv


def _as_user(code: str) -> str:
    """Run code in a child with uid/gid 65534 (an unprivileged runtime) and return its stdout."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            exeguard._self_protected = None
            os.write(w, str(eval(code)).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return out


def test_rootless_runtime_needs_nothing_for_a_root_owned_interpreter(tmp_path: Path):
    # Its containers hold its own uid and subordinate ids, none of which may write a file of
    # the host's root: no re-exec. One owned by the runtime's own user is not safe.
    mine = tmp_path / "python-mine"
    shutil.copy2(INTERPRETER, mine)
    os.chown(mine, 65534, 65534)
    os.chmod(tmp_path, 0o755)
    assert _as_user(f"exeguard.is_protected({INTERPRETER!r})") == "True"
    assert _as_user(f"exeguard.is_protected({str(mine)!r})") == "False"
    assert not exeguard.is_protected(INTERPRETER)  # the host's root: its containers may be uid 0


def test_an_unprotected_runtime_covers_its_marked_launcher_again(tmp_path: Path):
    # After a reboot the venv's bin/python3 is the bare symlink again: the first create/exec
    # re-execs (reexec_target) and lays the read-only bind over it, so later calls need none.
    venv = tmp_path / "venv"
    link = venv / "bin" / "python3"
    link.parent.mkdir(parents=True)
    link.symlink_to(INTERPRETER)
    (venv / exeguard.LAUNCHER_MARKER).touch()
    src = str(Path(exeguard.__file__).resolve().parents[2])
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from rongqi.linux import exeguard\n"
            "r = exeguard.reexec_target(); print(r.path if r else None, sys.executable)")
    try:
        out = subprocess.run([str(link), "-I", "-S", "-c", code, src], check=True, capture_output=True, text=True).stdout.split()
        assert out == [exeguard.protected_bind(), str(link)]
        assert exeguard.is_protected(str(link))
        again = subprocess.run([str(link), "-I", "-S", "-c", code, src], check=True, capture_output=True, text=True)
        assert again.stdout.split() == ["None", str(link)]  # protected from the start now: no re-exec
    finally:
        subprocess.run(["umount", "-l", str(link)], check=False)


def test_in_process_create_reexecs_the_helper_through_a_sealed_copy_where_no_mount_can_be_made(
        monkeypatch, tmp_path: Path):
    # A caller whose own interpreter is unprotected (here: pytest's, as an API user's would be)
    # and that may not mount (as inside a container): the init runs from a sealed memfd copy.
    from rongqi.image.busybox import make_bundle
    from rongqi.oci import creation, lifecycle
    from support.plugin import new_id

    monkeypatch.setattr(exeguard, "_self_protected", False)
    monkeypatch.setattr(exeguard, "_host_root", lambda: False)
    cid = new_id("exeguard")
    root = str(tmp_path / "root")
    bundle = make_bundle(str(tmp_path / "bundle"), ["true"], cgroups_path=f"/rongqi-test/{cid}")
    st = creation.create(root, cid, creation.CreateOptions(bundle=bundle))
    try:
        # The init waits for `start`, still running the runtime's code: from the sealed copy.
        assert os.readlink(f"/proc/{st.pid}/exe").startswith("/memfd:rongqi-python")
        fd = os.open(f"/proc/{st.pid}/exe", os.O_RDONLY)
        try:
            assert exeguard.is_protected(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        lifecycle.delete(root, cid, force=True)


def test_protect_launcher_replaces_a_bind_of_an_older_interpreter(tmp_path: Path, ro_bind: Path):
    # After the system's Python is upgraded, install.sh renews the bind over the venv's path.
    link = tmp_path / "venv" / "bin" / "python3"
    link.parent.mkdir(parents=True)
    link.symlink_to(INTERPRETER)
    old = tmp_path / "python-copy"  # ro_bind's file: another inode, standing for the old Python
    exeguard.protect_launcher(str(link), interpreter=str(old))
    try:
        assert os.stat(link).st_ino == os.stat(old).st_ino
        exeguard.protect_launcher(str(link), interpreter=INTERPRETER)
        assert os.stat(link).st_ino == os.stat(INTERPRETER).st_ino and exeguard.is_protected(str(link))
        with open("/proc/self/mountinfo") as f:
            assert sum(1 for line in f if line.split()[4] == str(link)) == 1
    finally:
        subprocess.run(["umount", "-l", str(link)], check=False)
        subprocess.run(["umount", "-l", exeguard.guard_path(os.stat(old))], check=False)
        if os.path.exists(exeguard.guard_path(os.stat(old))):
            os.unlink(exeguard.guard_path(os.stat(old)))
