"""The container init's setup sequence, run against a recording fake of the kernel (no root needed).

Asserts the order that makes a container safe: propagation before mounts, every mount
before pivot_root, masks after it, fds closed, credentials dropped in the right order,
seccomp, and only then "ready" and the start handshake, after which only the
startContainer hooks and execve are left (as in runc's init).
"""

from __future__ import annotations

import os
import signal

import pytest

from fake_syscalls import Exec, RecordingSyscalls
from rongqi.linux import caps as capmod
from rongqi.linux import syscall as sysc
from rongqi.oci import init as initmod
from rongqi.oci.spec import parse


def make_spec(rootfs: str, **over) -> dict:
    spec = {
        "ociVersion": "1.2.0",
        "root": {"path": rootfs, "readonly": True},
        "hostname": "box",
        "process": {
            "args": ["sh", "-c", "true"], "cwd": "/work", "env": ["PATH=/usr/bin:/bin"],
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [10]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "noNewPrivileges": True,
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
            {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "rprivate"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "uts", "ipc", "network")],
            "maskedPaths": ["/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys"],
            "sysctl": {"net.ipv4.ip_forward": "1"},
        },
    }
    for k, v in over.items():
        spec[k] = v
    return spec


@pytest.fixture
def run_init(tmp_path, monkeypatch):
    """Run init.setup against the fake; return the recorder."""
    old_umask = os.umask(0o022)
    old_pipe = signal.getsignal(signal.SIGPIPE)

    def runner(spec_dict: dict, *, no_pivot: bool = False, seccomp_before_caps: bool = False,
               seccomp: bool = True, go: bytes = b"go 4242\n", host_binds: bool = False) -> RecordingSyscalls:
        sc = RecordingSyscalls()  # capabilities and seccomp included
        # the protocol with the runtime, and hooks, in the same record
        real_send, real_await = initmod.Sync.send, initmod._await_start
        monkeypatch.setattr(initmod.Sync, "send", lambda self, word, text="": (sc._rec("send", word),
                                                                               real_send(self, word, text)))
        monkeypatch.setattr(initmod, "_await_start", lambda c, fd_dir: (sc._rec("start-handshake"), real_await(c, fd_dir)))
        monkeypatch.setattr(initmod, "_run_hooks", lambda kind, hooks, state: sc._rec("hooks", kind))
        spec = parse(spec_dict, str(tmp_path))
        state_dir = tmp_path / "state"
        state_dir.mkdir(exist_ok=True)
        (state_dir / "exec.fifo").write_text("")  # a plain file: opening it does not block
        c = initmod.InitConfig()
        c.spec = spec
        c.container_id = "t1"
        c.no_pivot = no_pivot
        c.state_json = lambda status: b"{}"
        c.caps = capmod.CapSets(*(capmod.mask(getattr(spec.process.capabilities, n)) for n in
                                  ("bounding", "effective", "permitted", "inheritable", "ambient")))
        c.seccomp_filter = "compiled-filter" if seccomp else None
        c.seccomp_before_caps = seccomp_before_caps
        c.fifo_fd = os.open(state_dir / "exec.fifo", os.O_PATH)
        if host_binds:
            import socket

            to_init_r, to_init_w = (s.detach() for s in socket.socketpair())
            # the bind source of mount #4, as the runtime opens it (see create._send_go)
            src_fd = os.open("/tmp", os.O_PATH)
            socket.send_fds(socket.socket(fileno=os.dup(to_init_w)), [go], [src_fd])
            os.close(src_fd)
            c.host_binds = True
        else:
            to_init_r, to_init_w = os.pipe()
            os.write(to_init_w, go)
        from_init_r, from_init_w = os.pipe()
        c.sync = initmod.Sync(to_init_r, from_init_w)
        sc.sync_fds = (to_init_r, from_init_w)
        sc.fifo_fd = c.fifo_fd
        try:
            with pytest.raises(Exec):
                initmod.setup(sc, c)
            assert os.read(from_init_r, 100) == b"ready\n"
            assert (state_dir / "exec.fifo").read_text() == "0"  # the handshake's byte, for `start`
        finally:
            for fd in (to_init_w, from_init_r):
                os.close(fd)
            c.sync.close()
        return sc

    yield runner
    os.umask(old_umask)
    signal.signal(signal.SIGPIPE, old_pipe)


@pytest.fixture
def rootfs(tmp_path) -> str:
    root = tmp_path / "rootfs"
    for d in ("proc", "sys", "dev", "bin", "tmp"):
        (root / d).mkdir(parents=True)
    return str(root)


def test_mounts_happen_between_propagation_and_pivot_root(run_init, rootfs):
    sc = run_init(make_spec(rootfs))
    calls = sc.calls
    first_mount = sc.index(lambda c: c[0] == "mount")
    assert calls[first_mount][1:4] == (None, "/", None)
    assert calls[first_mount][4] == sysc.MS_SLAVE | sysc.MS_REC  # rslave by default
    assert calls[first_mount + 1][1:5] == (rootfs, rootfs, "bind", sysc.MS_BIND | sysc.MS_REC)
    pivot = sc.index(lambda c: c[0] == "pivot_root")
    fstypes = [c[3] for c in calls[:pivot] if c[0] == "mount"]
    assert fstypes[2:6] == ["proc", "tmpfs", "devpts", "sysfs"]  # in the spec's order
    targets = [c[2] for c in calls[:pivot] if c[0] == "mount"]
    assert os.path.join(rootfs, "data") in targets
    # the old root is detached right after the pivot, without propagating to the host
    assert calls[pivot + 2][0] == "mount" and calls[pivot + 2][4] == sysc.MS_SLAVE | sysc.MS_REC
    assert calls[pivot + 3] == ("umount2", ".", sysc.MNT_DETACH)


def test_bind_options_are_applied_by_a_remount_of_the_new_mount(run_init, rootfs):
    sc = run_init(make_spec(rootfs))
    data = os.path.join(rootfs, "data")
    ops = [c for c in sc.calls if c[0] == "mount" and c[2] == data]
    assert ops[0][3] == "bind" and ops[0][4] == sysc.MS_BIND | sysc.MS_REC
    assert ops[1][4] & sysc.MS_REMOUNT and ops[1][4] & sysc.MS_RDONLY and ops[1][4] & sysc.MS_BIND
    assert ops[2][4] == sysc.MS_PRIVATE | sysc.MS_REC


def test_devices_are_made_before_the_pivot(run_init, rootfs):
    sc = run_init(make_spec(rootfs))
    pivot = sc.index(lambda c: c[0] == "pivot_root")
    nodes = [c[1] for c in sc.calls[:pivot] if c[0] == "mknod"]
    assert nodes == ["null", "zero", "full", "random", "urandom", "tty"]
    assert os.readlink(os.path.join(rootfs, "dev", "ptmx")) == "pts/ptmx"
    assert os.readlink(os.path.join(rootfs, "dev", "fd")) == "/proc/self/fd"


def test_hostname_before_rootfs_and_masks_after_pivot(run_init, rootfs):
    sc = run_init(make_spec(rootfs))
    names = sc.names()
    pivot = names.index("pivot_root")
    assert names.index("sethostname") < sc.index(lambda c: c[0] == "mount")
    after = sc.calls[pivot:]
    sysctl = next(i for i, c in enumerate(after) if c[0] == "write")
    assert after[sysctl][1:] == ("/proc/sys/net/ipv4/ip_forward", "1")
    ro = next(i for i, c in enumerate(after) if c[0] == "mount" and c[2] == "/proc/sys" and c[4] & sysc.MS_RDONLY)
    masks = [i for i, c in enumerate(after) if c[0] == "mount" and c[2] in ("/proc/keys", "/sys/firmware")]
    root_ro = next(i for i, c in enumerate(after) if c[0] == "mount" and c[2] == "/" and c[4] & sysc.MS_REMOUNT)
    assert sysctl < ro < min(masks) and max(masks) < root_ro


def test_fds_closed_then_privileges_dropped_in_order_then_seccomp_then_ready(run_init, rootfs):
    sc = run_init(make_spec(rootfs))
    names = sc.names()
    nnp = sc.index(lambda c: c[0] == "prctl" and c[1] == sysc.PR_SET_NO_NEW_PRIVS)
    ready = sc.index(lambda c: c == ("send", "ready"))
    order = [names.index(n) for n in ("close_fds_from", "drop_bounding", "keep_caps", "setgroups", "setresgid",
                                      "setresuid", "capset")] + [nnp, names.index("seccomp"), ready] + \
        [names.index(n) for n in ("start-handshake", "execve")]
    assert order == sorted(order), names
    # Before seccomp (where close_range may be denied), keeping only what the init still needs.
    # The fifo by an O_PATH fd of its own and our fd directory in a verified procfs; no directory of the host.
    _, lowest, kept = sc.calls[names.index("close_fds_from")]
    fd_dir = next(fd for fd in kept if fd not in (*sc.sync_fds, sc.fifo_fd))
    assert (lowest, kept) == (3, tuple(sorted((*sc.sync_fds, sc.fifo_fd, fd_dir))))
    assert sc.calls[names.index("setresuid")] == ("setresuid", 1000)
    assert sc.calls[names.index("setgroups")] == ("setgroups", [10])
    assert sc.calls[nnp][1:] == (sysc.PR_SET_NO_NEW_PRIVS, 1)
    # the very first thing: no container process may open our /proc/PID/exe
    assert sc.calls[0] == ("prctl", sysc.PR_SET_DUMPABLE, 0)
    kill = 1 << capmod.CAPABILITIES["CAP_KILL"]
    assert sc.calls[names.index("capset")][1:] == (kill, kill, 0)
    # keepcaps is switched off again once the uid changed
    assert sc.calls[len(names) - 1 - names[::-1].index("keep_caps")] == ("keep_caps", False)
    # after the handshake, nothing but execve
    assert names[names.index("start-handshake") + 1:] == ["execve"]
    assert sc.calls[-1][0] == "execve" and sc.calls[-1][2] == ["sh", "-c", "true"]


def test_start_container_hooks_run_after_the_handshake_confined_and_create_container_in_the_root(run_init, rootfs):
    spec = make_spec(rootfs)
    spec["hooks"] = {kind: [{"path": "/bin/true"}] for kind in ("createContainer", "startContainer")}
    sc = run_init(spec)
    names = sc.names()
    create = sc.index(lambda c: c[:2] == ("hooks", "createContainer"))
    start = sc.index(lambda c: c[:2] == ("hooks", "startContainer"))
    # runc's working directory for createContainer: the root, before pivot_root
    assert [c for c in sc.calls[:create] if c[0] == "chdir"][-1] == ("chdir", rootfs)
    assert create < names.index("pivot_root")
    # startContainer: as the user, under seccomp, after the handshake, right before execve
    assert names.index("setresuid") < names.index("seccomp") < names.index("start-handshake") < start
    assert names[start + 1:] == ["execve"]


def test_stdio_is_given_to_the_process_user_before_it_changes(run_init, rootfs, monkeypatch):
    import stat

    real_fstat = os.fstat
    monkeypatch.setattr(os, "fstat", lambda fd: os.stat_result((stat.S_IFIFO | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0))
                        if fd in (0, 1, 2) else real_fstat(fd))
    sc = run_init(make_spec(rootfs))
    chowns = [c for c in sc.calls if c[0] == "fchown"]
    assert chowns == [("fchown", fd, 1000, -1) for fd in (0, 1, 2)]  # the uid only: the group stays
    assert sc.index(lambda c: c[0] == "fchown") < sc.names().index("setresuid")


def test_a_bind_source_opened_by_the_host_is_mounted_through_its_fd(run_init, rootfs):
    """In a user namespace the runtime opens bind sources for the init (see create._send_go):
    "go PID i,j" carries their fds, and the mount's source is the fd, not the path."""
    sc = run_init(make_spec(rootfs), go=b"go 4242 4\n", host_binds=True)
    data = os.path.join(rootfs, "data")
    bind = next(c for c in sc.calls if c[0] == "mount" and c[2] == data)
    assert bind[1].startswith("/proc/self/fd/") and bind[3] == "bind"


def test_without_no_new_privs_seccomp_is_loaded_while_caps_are_held(run_init, rootfs):
    spec = make_spec(rootfs)
    spec["process"]["noNewPrivileges"] = False
    sc = run_init(spec, seccomp_before_caps=True)
    names = sc.names()
    assert names.index("seccomp") < names.index("drop_bounding")
    assert not any(c[0] == "prctl" and c[1] == sysc.PR_SET_NO_NEW_PRIVS for c in sc.calls)


def test_no_pivot_moves_the_root_and_chroots(run_init, rootfs):
    sc = run_init(make_spec(rootfs), no_pivot=True)
    names = sc.names()
    assert "pivot_root" not in names
    move = sc.index(lambda c: c[0] == "mount" and c[4] == sysc.MS_MOVE)
    assert sc.calls[move][1:3] == (rootfs, "/")
    assert sc.calls[move + 1] == ("chroot", ".")


def test_mount_destination_symlink_cannot_leave_the_root(run_init, rootfs, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    # A hostile image: /data is a symlink to a host directory.
    os.symlink(str(outside), os.path.join(rootfs, "data"))
    sc = run_init(make_spec(rootfs))
    targets = [c[2] for c in sc.calls if c[0] == "mount"]
    assert str(outside) not in targets
    # resolved inside the root instead: the same absolute path under the rootfs
    assert os.path.join(rootfs, str(outside).lstrip("/")) in targets
