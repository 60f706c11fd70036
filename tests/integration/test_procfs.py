"""rongqi.linux.procfs: the runtime writes under /proc only through a verified procfs handle.

A bind mount over a /proc file, a symlink or a tmpfs standing in for /proc (what an image or a
racing container process can set up in the container's view: CVE-2019-16884, CVE-2025-52881)
is refused, and the file put there is never written. Each case runs in a forked child with a
private mount namespace, so nothing is bound over the host's /proc.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rongqi.linux import procfs
from rongqi.linux import syscall as sysc

pytestmark = pytest.mark.root


def _in_private_mount_ns(fn) -> str:
    """Run fn() in a forked child with its own mount namespace; return what it returns (a str)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        out = "child failed"
        try:
            os.close(r)
            sysc.SYSCALLS.unshare(sysc.CLONE_NEWNS)
            sysc.SYSCALLS.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE)
            out = fn()
        except BaseException as err:  # noqa: BLE001 - reported to the test
            out = f"{type(err).__name__}: {err}"
        finally:
            os.write(w, out.encode())
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()


def _refused(path: str, data: str = "1") -> str:
    try:
        procfs.write(path, data)
    except OSError as err:
        return f"refused {err.errno}"
    return "written"


def test_the_real_procfs_is_accepted():
    assert procfs.read("/proc/self/setgroups").strip() in (b"allow", b"deny")
    assert procfs.read("/proc/thread-self/comm")


def test_a_bind_mount_over_a_sysctl_file_is_refused(tmp_path: Path):
    fake = tmp_path / "fake"
    fake.write_text("untouched\n")

    def child() -> str:
        sysc.SYSCALLS.mount(str(fake), "/proc/sys/net/ipv4/ip_forward", None, sysc.MS_BIND)
        return _refused("/proc/sys/net/ipv4/ip_forward")

    assert _in_private_mount_ns(child) == "refused 18"  # EXDEV
    assert fake.read_text() == "untouched\n"


def test_a_bind_mount_over_the_exec_label_file_is_refused(tmp_path: Path):
    fake = tmp_path / "fake-attr"
    fake.write_text("")

    def child() -> str:
        pid = os.getpid()
        sysc.SYSCALLS.mount(str(fake), f"/proc/{pid}/attr/exec", None, sysc.MS_BIND)
        return _refused("/proc/self/attr/exec", "unconfined")

    assert _in_private_mount_ns(child) == "refused 18"
    assert fake.read_text() == ""


def test_a_tmpfs_standing_in_for_proc_is_refused(tmp_path: Path):
    def child() -> str:
        sysc.SYSCALLS.mount("tmpfs", "/proc", "tmpfs", 0, "size=64k")
        os.makedirs("/proc/self/attr")
        Path("/proc/self/attr/exec").write_text("")
        out = _refused("/proc/self/attr/exec", "unconfined")
        return out + " " + repr(Path("/proc/self/attr/exec").read_text())

    assert _in_private_mount_ns(child) == "refused 18 ''"


def test_proc_as_a_symlink_to_a_fake_tree_is_refused(tmp_path: Path):
    fake = tmp_path / "fakeproc"
    (fake / "sys" / "kernel").mkdir(parents=True)
    (fake / "sys" / "kernel" / "hostname").write_text("untouched\n")
    link = tmp_path / "proc-link"
    link.symlink_to(fake)
    with pytest.raises(OSError) as e:
        procfs.open_root(path=str(link))
    assert e.value.errno == 18 and "not on a real procfs" in str(e.value)
    with pytest.raises(OSError):
        procfs.open_root(path=str(fake))  # a directory, not a procfs
