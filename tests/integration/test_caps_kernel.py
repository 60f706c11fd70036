"""Capabilities applied by the real kernel, each in a forked child so pytest keeps its own."""

from __future__ import annotations

import os

import pytest

from support.forked import read_all, run_forked

from rongqi.linux import caps

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

BUSYBOX = "/bin/busybox"
NBS = 1 << caps.CAPABILITIES["CAP_NET_BIND_SERVICE"]


def in_child(fn):
    """fn() in a forked child; its JSON-able result, or the exception's text."""
    data, status = run_forked(fn)
    assert os.waitstatus_to_exitcode(status) == 0
    return data


def exec_in_child(setup, argv: list[str]) -> tuple[int, str]:
    """setup() in a forked child, then execve argv there; (exit code, stdout)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            setup()
            os.execv(argv[0], argv)
        except BaseException as e:
            os.write(w, f"SETUP-ERROR {type(e).__name__}: {e}".encode())
        finally:
            os._exit(99)
    os.close(w)
    out = read_all(r).decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def _status_caps(text: str) -> dict[str, int]:
    return {k: int(v, 16) for k, _, v in (line.partition(":\t") for line in text.splitlines())
            if k.startswith("Cap")}


def test_caps_applied_in_a_child_show_in_proc_self_status():
    keep = caps.mask(["CAP_CHOWN", "CAP_KILL", "CAP_SETPCAP", "CAP_NET_RAW"])

    def apply():
        caps.drop_bounding(keep)
        caps.set_caps(keep, keep, 0)
        with open("/proc/self/status") as f:
            return _status_caps(f.read())

    res = in_child(apply)
    assert res == {"ok": {"CapInh": 0, "CapPrm": keep, "CapEff": keep, "CapBnd": keep, "CapAmb": 0}}


def test_current_agrees_with_the_kernel_after_changes():
    keep = caps.mask(["CAP_CHOWN", "CAP_SETPCAP"])

    def apply():
        caps.drop_bounding(keep)
        caps.set_caps(keep, keep, keep)
        now = caps.current()
        return [now.bounding, now.effective, now.permitted, now.inheritable, now.ambient]

    assert in_child(apply) == {"ok": [keep, keep, keep, keep, 0]}


def test_bounding_drop_survives_execve():
    keep = caps.mask(["CAP_CHOWN", "CAP_SETPCAP"])
    code, out = exec_in_child(lambda: caps.drop_bounding(keep), [BUSYBOX, "cat", "/proc/self/status"])
    assert code == 0, out
    status = _status_caps(out)
    assert status["CapBnd"] == keep
    # root's execve gives it its bounding set, no more
    assert status["CapEff"] == keep and status["CapPrm"] == keep


def test_ambient_survives_the_change_to_uid_1000_with_keepcaps():
    def init_sequence():
        caps.drop_bounding(NBS)  # CAP_SETPCAP goes too: dropping needs it effective, not bounding
        caps.set_keep_caps(True)
        os.setgroups([])
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)
        caps.set_caps(NBS, NBS, NBS)
        caps.raise_ambient(NBS)

    code, out = exec_in_child(init_sequence, [BUSYBOX, "sh", "-c", "id -u; cat /proc/self/status"])
    assert code == 0, out
    assert out.splitlines()[0] == "1000"
    status = _status_caps(out)
    assert status == {"CapInh": NBS, "CapPrm": NBS, "CapEff": NBS, "CapBnd": NBS, "CapAmb": NBS}


def test_without_keepcaps_the_uid_change_loses_the_caps_and_the_error_names_them():
    def init_sequence():
        os.setresuid(1000, 1000, 1000)
        caps.set_caps(NBS, NBS, 0)

    res = in_child(init_sequence)
    assert res["error"] == ("PermissionError: [Errno 1] capset: capability CAP_NET_BIND_SERVICE "
                            "is not in the runtime's permitted set")


def test_set_caps_beyond_the_permitted_set_names_the_capability():
    chown = caps.mask(["CAP_CHOWN"])
    nice = caps.mask(["CAP_SYS_NICE"])

    def apply():
        caps.set_caps(chown, chown, 0)
        caps.set_caps(chown, chown | nice, 0)

    assert "capability CAP_SYS_NICE is not in the runtime's permitted set" in in_child(apply)["error"]


def test_raising_an_ambient_cap_that_is_not_inheritable_says_why():
    def apply():
        caps.set_caps(NBS, NBS, 0)
        caps.raise_ambient(NBS)

    err = in_child(apply)["error"]
    assert "raise ambient CAP_NET_BIND_SERVICE" in err
    assert "both the permitted and the inheritable set" in err


def test_drop_bounding_without_cap_setpcap_says_why():
    chown = caps.mask(["CAP_CHOWN"])

    def apply():
        caps.set_caps(chown, chown, 0)
        caps.drop_bounding(chown)

    err = in_child(apply)["error"]
    assert "from the bounding set" in err and "needs CAP_SETPCAP" in err


def test_missing_from_host_reports_caps_the_bounding_set_lacks():
    nice = caps.mask(["CAP_SYS_NICE"])
    asked = caps.mask(["CAP_SYS_NICE", "CAP_CHOWN"])

    def apply():
        caps.drop_bounding(caps.mask(list(caps.CAPABILITIES)) & ~nice)
        return caps.missing_from_host(asked)

    assert in_child(apply) == {"ok": nice}


def test_missing_from_host_matches_this_hosts_bounding_set():
    with open("/proc/self/status") as f:
        bnd = _status_caps(f.read())["CapBnd"]
    everything = caps.mask(list(caps.CAPABILITIES))
    assert caps.missing_from_host(everything) == everything & ~bnd
    # This machine's root has no CAP_SYS_RESOURCE (see the project's notes); say so if it changes.
    if not bnd >> caps.CAPABILITIES["CAP_SYS_RESOURCE"] & 1:
        assert "CAP_SYS_RESOURCE" in caps.names(caps.missing_from_host(everything))


def test_keepcaps_off_again_is_accepted():
    def apply():
        caps.set_keep_caps(True)
        caps.set_keep_caps(False)
        import ctypes
        return ctypes.CDLL(None).prctl(7, 0, 0, 0, 0)  # PR_GET_KEEPCAPS

    assert in_child(apply) == {"ok": 0}
