"""Seccomp filters loaded into the real kernel, each in a forked child so pytest stays unfiltered."""

from __future__ import annotations

import array
import ctypes
import json
import os
import signal
import socket
import struct
import time

import pytest

from support.forked import read_all, run_forked

from rongqi.linux import caps
from rongqi.linux import seccomp as sc
from rongqi.oci.profile import DEFAULT_CAPABILITIES, default_seccomp
from rongqi.oci.seccomp_spec import parse_seccomp

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

BUSYBOX = "/bin/busybox"
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
PR_SET_NO_NEW_PRIVS = 38


def nr(name: str) -> int:
    n = sc._libseccomp().seccomp_syscall_resolve_name(name.encode())
    assert n >= 0, name
    return n


def raw(name: str, *args: int) -> tuple[int, int]:
    """(return value, errno) of a raw system call."""
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr(name)), *(ctypes.c_long(a) for a in args))
    return rc, ctypes.get_errno() if rc == -1 else 0


def in_child(fn):
    """fn() in a forked child: {"ok": result} or {"error": text}, and the wait status."""
    return run_forked(fn)


def ok_in_child(fn):
    res, status = in_child(fn)
    assert os.waitstatus_to_exitcode(status) == 0 and res is not None and "ok" in res, res
    return res["ok"]


def profile(default: str = "SCMP_ACT_ALLOW", rules: list | None = None, **extra):
    return parse_seccomp({"defaultAction": default, "syscalls": rules or [], **extra})


def test_denied_syscall_returns_the_rules_errno_and_others_still_work():
    p = profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}])

    def child():
        sc.load(p, cache_dir=None)
        return [raw("getppid"), raw("getpid")[1]]

    (rc, err), pid_err = ok_in_child(child)
    assert (rc, err, pid_err) == (-1, 99, 0)


def test_errno_action_without_errnoret_gives_eperm():
    p = profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])
    assert ok_in_child(lambda: (sc.load(p, cache_dir=None), raw("getppid"))[1]) == [-1, 1]


def test_default_errnoret_applies_to_unlisted_calls():
    d = default_seccomp()
    d["defaultErrnoRet"] = 77
    p = parse_seccomp(d)

    def child():
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        sc.load(p, cache_dir=None)
        return raw("keyctl", 0, 0)

    assert ok_in_child(child) == [-1, 77]


# getpgid(pid) is harmless with any argument; pids past the largest pid_max
# (2**22) never exist, so the kernel answers ESRCH (3) unless the filter answers 77.
N = 10_000_000


@pytest.mark.parametrize("op, value, value_two, blocked, passed", [
    ("SCMP_CMP_NE", N, 0, [N - 1, N + 1], [N]),
    ("SCMP_CMP_LT", N, 0, [N - 1], [N, N + 1]),
    ("SCMP_CMP_LE", N, 0, [N - 1, N], [N + 1]),
    ("SCMP_CMP_EQ", N, 0, [N], [N - 1, N + 1]),
    ("SCMP_CMP_GE", N, 0, [N, N + 1], [N - 1]),
    ("SCMP_CMP_GT", N, 0, [N + 1], [N - 1, N]),
    ("SCMP_CMP_MASKED_EQ", 0xF000000, 0x3000000, [0x3000000, 0x3500000, 0x13F00000],
     [0x4000000, 0x0F00000, 0x2000000]),
])
def test_each_argument_operator(op, value, value_two, blocked, passed):
    p = profile(rules=[{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77,
                        "args": [{"index": 0, "value": value, "valueTwo": value_two, "op": op}]}])

    def child():
        sc.load(p, cache_dir=None)
        return {str(v): raw("getpgid", v)[1] for v in blocked + passed}

    got = ok_in_child(child)
    assert {v: got[str(v)] for v in blocked} == {v: 77 for v in blocked}
    assert {v: got[str(v)] for v in passed} == {v: 3 for v in passed}  # ESRCH from the kernel


def test_conditions_on_two_arguments_must_all_hold():
    # getpriority(which, who): PRIO_PROCESS is 0; who 0 means the caller.
    p = profile(rules=[{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77, "args": [
        {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}])

    def child():
        sc.load(p, cache_dir=None)
        return [raw("getpriority", 0, 0)[1], raw("getpriority", 0, os.getpid())[1],
                raw("getpriority", 1, 0)[1]]

    assert ok_in_child(child) == [77, 0, 0]


def test_two_conditions_on_one_argument_each_match_on_their_own():
    p = profile(rules=[{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77, "args": [
        {"index": 0, "value": N, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": N + 1, "op": "SCMP_CMP_EQ"}]}])

    def child():
        sc.load(p, cache_dir=None)
        return [raw("getpgid", N)[1], raw("getpgid", N + 1)[1], raw("getpgid", N + 2)[1]]

    assert ok_in_child(child) == [77, 77, 3]


def test_unknown_syscall_names_are_skipped_and_the_rest_applied():
    p = profile(rules=[{"names": ["no_such_call_rongqi", "getppid"], "action": "SCMP_ACT_ERRNO",
                        "errnoRet": 55}])
    assert ok_in_child(lambda: (sc.load(p, cache_dir=None), raw("getppid"))[1]) == [-1, 55]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_TRAP"])
def test_kill_and_trap_actions_end_the_process_with_sigsys(action):
    p = profile(rules=[{"names": ["getppid"], "action": action}])
    res, status = in_child(lambda: (sc.load(p, cache_dir=None), raw("getppid")))
    assert res is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_log_allows_and_trace_without_tracer_gives_enosys():
    p = profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                       {"names": ["getpgid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}])

    def child():
        sc.load(p, cache_dir=None)
        return [raw("getppid")[0] == os.getppid(), raw("getpgid", 0)[1]]

    assert ok_in_child(child) == [True, 38]


def test_filter_flags_are_passed_to_the_kernel():
    p = profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9}],
                flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    cf = sc.compile_filter(p, cache_dir=None)
    assert cf.flags == 1 | 2 | 4  # WAIT_KILLABLE_RECV only means something with a listener
    assert ok_in_child(lambda: (sc.load_filter(cf), raw("getppid"))[1]) == [-1, 9]


def test_loading_without_no_new_privs_needs_cap_sys_admin():
    p = profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])

    def child():
        keep = caps.mask(DEFAULT_CAPABILITIES)
        caps.set_caps(keep, keep, 0)
        needs = sc.load_needs_cap_sys_admin(no_new_privileges=False)
        try:
            sc.load(p, cache_dir=None)
            first = "loaded"
        except OSError as e:
            first = str(e)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        after = sc.load_needs_cap_sys_admin(no_new_privileges=False)
        sc.load(p, cache_dir=None)
        return [needs, first, after, raw("getppid")[1]]

    needs, first, after, err = ok_in_child(child)
    assert needs is True and after is False and err == 1
    assert "needs no_new_privs or CAP_SYS_ADMIN" in first
    assert sc.load_needs_cap_sys_admin(no_new_privileges=True) is False


def _load_default_profile():
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    sc.load(parse_seccomp(default_seccomp()), cache_dir=None)


def test_default_profile_blocks_the_escape_calls_even_for_full_root():
    # The child keeps every capability root has here, so EPERM comes from the filter:
    # the kernel itself would answer these arguments with EINVAL or ENOENT.
    def child():
        _load_default_profile()
        clone_newuser = 0x10000000
        return {
            "unshare": raw("unshare", clone_newuser),
            "keyctl": raw("keyctl", 0, 0),
            "reboot": raw("reboot", 0, 0, 0, 0),
            "mount": raw("mount", 0, 0, 0, 0, 0),
            "umount2": raw("umount2", 0, 0),
            "setns": raw("setns", -1, 0),
            "init_module": raw("init_module", 0, 0, 0),
            "kexec_load": raw("kexec_load", 0, 0, 0, 0),
            "clone3": raw("clone3", 0, 0),
            "vsock": raw("socket", 40, 1, 0),
            "personality_exec": raw("personality", 0x0400000),
        }

    got = ok_in_child(child)
    eperm = [-1, 1]
    assert {k: v for k, v in got.items() if k != "clone3"} == {k: eperm for k in got if k != "clone3"}
    assert got["clone3"] == [-1, 38]  # ENOSYS, so the C library falls back to clone


def test_default_profile_lets_ordinary_calls_through():
    def child():
        _load_default_profile()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.close()
        query = raw("personality", 0xFFFFFFFF)
        return [query[1], raw("getppid")[0] == os.getppid(), raw("chroot", 0)[1]]

    # chroot(NULL) gets EFAULT from the kernel: CAP_SYS_CHROOT is a default capability
    assert ok_in_child(child) == [0, True, 14]


def test_busybox_shell_works_under_the_default_profile_and_default_caps():
    keep = caps.mask(DEFAULT_CAPABILITIES)

    def init_tail():
        caps.drop_bounding(keep)
        caps.set_caps(keep, keep, 0)
        _load_default_profile()

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            init_tail()
            script = ("echo hello | cat; ls / >/dev/null && echo ls-ok; "
                      "(sleep 0; echo subshell) & wait; "
                      "unshare -U true 2>/dev/null || echo unshare-denied; "
                      "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
            os.execv(BUSYBOX, [BUSYBOX, "sh", "-c", script])
        except BaseException as e:
            os.write(w, f"SETUP-ERROR {e}".encode())
        finally:
            os._exit(99)
    os.close(w)
    out = read_all(r).decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert out.split() == ["hello", "ls-ok", "subshell", "unshare-denied",
                           "NoNewPrivs:", "1", "Seccomp:", "2"]


SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101


def test_notify_fd_reaches_the_listener_with_runcs_state_message(tmp_path):
    import fcntl

    path = str(tmp_path / "listener.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(20)
    p = profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}],
                listenerPath=path, listenerMetadata="pod=web")
    state = {"ociVersion": "1.0.2", "id": "rongqi-test", "status": "creating", "pid": 0,
             "bundle": "/b", "annotations": {}}

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            fd = sc.load(p, cache_dir=None)
            st = dict(state, pid=os.getpid())
            sc.send_notify_fd(fd, p.listenerPath, json.dumps(st).encode(), p.listenerMetadata)
            os.close(fd)
            os.write(w, json.dumps(raw("getppid")).encode())  # waits for the listener's answer
        finally:
            os._exit(0)
    os.close(w)
    try:
        conn, _ = listener.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % 4])
        conn.close()
        assert len(fds) == 1
        notify_fd = fds[0]
        sent = json.loads(msg)
        assert sent == {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": pid,
                        "metadata": "pod=web", "state": dict(state, pid=pid)}
        assert os.readlink(f"/proc/self/fd/{notify_fd}") == "anon_inode:seccomp notify"

        # Answer the child's getppid through the fd: proof that it is the live listener.
        req = bytearray(80)
        fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, req)
        req_id, req_pid = struct.unpack_from("QI", req)
        assert req_pid == pid and struct.unpack_from("i", req, 16)[0] == nr("getppid")
        fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(struct.pack("QqiI", req_id, 4242, 0, 0)))
        os.close(notify_fd)
        assert json.loads(read_all(r)) == [4242, 0]
    finally:
        listener.close()
        # A failed assertion above leaves the child blocked in getppid: end it (ours, by pid).
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_send_notify_fd_to_a_missing_listener_names_the_path(tmp_path):
    missing = str(tmp_path / "nobody.sock")
    with pytest.raises(OSError, match=f"seccomp listener {missing}"):
        sc.send_notify_fd(0, missing, b'{"pid": 1}', "")


# ---- the BPF cache ------------------------------------------------------------

def _default_profile():
    return parse_seccomp(default_seccomp())


def test_cache_gives_the_same_filter_and_skips_libseccomp_on_a_hit(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    fresh = sc.compile_filter(_default_profile(), cache_dir=None)
    miss = sc.compile_filter(_default_profile(), cache_dir=cache)
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith(".bpf")
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert os.stat(f"{cache}/{files[0]}").st_mode & 0o777 == 0o600

    def no_libseccomp(profile):
        raise AssertionError("libseccomp was used on a cache hit")

    monkeypatch.setattr(sc, "_compile_with_libseccomp", no_libseccomp)
    hit = sc.compile_filter(_default_profile(), cache_dir=cache)
    assert fresh.bpf == miss.bpf == hit.bpf
    assert (fresh.flags, fresh.notify) == (hit.flags, hit.notify)


def test_a_filter_loaded_from_the_cache_behaves_as_the_fresh_one(tmp_path):
    cache = str(tmp_path / "cache")
    sc.compile_filter(_default_profile(), cache_dir=cache)

    def child():
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        sc.load(_default_profile(), cache_dir=cache)
        return [raw("keyctl", 0, 0)[1], raw("clone3", 0, 0)[1], raw("getppid")[0] == os.getppid()]

    assert ok_in_child(child) == [1, 38, True]


def test_different_profiles_get_different_cache_entries(tmp_path):
    cache = str(tmp_path / "cache")
    a = sc.compile_filter(profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]), cache)
    b = sc.compile_filter(profile(rules=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                                          "errnoRet": 2}]), cache)
    assert a.bpf != b.bpf
    assert len(os.listdir(cache)) == 2


def test_a_cache_dir_others_can_write_is_not_used(tmp_path):
    cache = tmp_path / "open"
    cache.mkdir()
    os.chmod(cache, 0o777)
    sc.compile_filter(_default_profile(), cache_dir=str(cache))
    assert os.listdir(cache) == []


def test_a_damaged_cache_file_is_replaced_not_loaded(tmp_path):
    cache = str(tmp_path / "cache")
    good = sc.compile_filter(_default_profile(), cache_dir=cache).bpf
    [name] = os.listdir(cache)
    with open(f"{cache}/{name}", "wb") as f:
        f.write(good[:-3])
    again = sc.compile_filter(_default_profile(), cache_dir=cache).bpf
    assert again == good
    with open(f"{cache}/{name}", "rb") as f:
        assert f.read() == good


def test_loaded_program_is_the_one_libseccomp_would_load_after_the_enosys_stub(tmp_path):
    """The cache path loads exported BPF with seccomp(2) instead of seccomp_load(3):
    read back the kernel's copy of each (PTRACE_SECCOMP_GET_FILTER) and compare."""
    p = _default_profile()

    def via_libseccomp():
        lib = sc._libseccomp()
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        ctx = _build_ctx(lib, p)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        assert lib.seccomp_load(ctx) == 0

    def via_rongqi():
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        sc.load(p, cache_dir=str(tmp_path / "cache"))

    ours = sc.compile_filter(p, None).bpf
    libseccomps = _kernel_filter(via_libseccomp)
    assert _kernel_filter(via_rongqi) == ours
    # ours = runc-style -ENOSYS stub + exactly what libseccomp itself loads
    assert ours.endswith(libseccomps)
    stub = ours[: len(ours) - len(libseccomps)]
    assert 0 < len(stub) // 8 <= 16
    assert stub[:8] == struct.pack("HBBI", 0x20, 0, 0, 4)  # ld [arch]


def test_calls_newer_than_the_profile_get_enosys_known_ones_keep_eperm():
    def child():
        _load_default_profile()
        return {"past_profile": _raw_nr(470)[1],
                "not_a_call": _raw_nr(1000)[1],
                "x32_past_profile": _raw_nr(0x40000000 | 1000)[1],
                "keyctl": raw("keyctl", 0, 0)[1]}

    assert ok_in_child(child) == {"past_profile": 38, "not_a_call": 38, "x32_past_profile": 38,
                                  "keyctl": 1}


def _raw_nr(n: int) -> tuple[int, int]:
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(n))
    return rc, ctypes.get_errno() if rc == -1 else 0


def test_no_enosys_stub_when_the_default_allows_or_already_says_enosys():
    lib = sc._libseccomp()
    tokens = [lib.seccomp_arch_native()]
    rules = [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
    assert sc._enosys_stub(lib, profile("SCMP_ACT_ALLOW", rules), tokens) == b""
    assert sc._enosys_stub(lib, profile("SCMP_ACT_LOG", rules), tokens) == b""
    assert sc._enosys_stub(lib, profile("SCMP_ACT_ERRNO", [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}],
                                        defaultErrnoRet=38), tokens) == b""
    assert sc._enosys_stub(lib, profile("SCMP_ACT_ERRNO", [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}]),
                           tokens) != b""
    assert sc._enosys_stub(lib, profile("SCMP_ACT_KILL", [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}]),
                           tokens) != b""


def _build_ctx(lib, p):
    # Same steps as seccomp._compile_with_libseccomp, but the context is kept for seccomp_load.
    captured = {}
    real_release = lib.seccomp_release

    class Hold:
        def __call__(self, ctx):
            captured["ctx"] = ctx

    lib.seccomp_release = Hold()
    try:
        sc._compile_with_libseccomp(p)
    finally:
        lib.seccomp_release = real_release
    return captured["ctx"]


PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 16, 17, 0x420C


def _kernel_filter(install) -> bytes:
    """The BPF the kernel holds for a child that ran install(), read with ptrace."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            try:
                install()
                os.write(ready_w, b"ok")
            except BaseException as e:
                os.write(ready_w, f"{type(e).__name__}: {e}".encode())
                os._exit(1)
            os.close(ready_w)
            while True:
                time.sleep(1)  # parked until the parent has read the filter and kills it
        finally:
            os._exit(0)
    os.close(ready_w)
    try:
        assert read_all(ready_r) == b"ok"
        libc.ptrace.restype = ctypes.c_long
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        assert libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0
        os.waitpid(pid, os.WUNTRACED)
        n = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, ctypes.c_void_p(0), None)
        assert n > 0, ctypes.get_errno()
        buf = ctypes.create_string_buffer(n * 8)
        assert libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, ctypes.c_void_p(0), buf) == n
        return buf.raw
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
