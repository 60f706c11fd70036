"""The default profile: docker's capabilities and seccomp, resolved per arch, caps and kernel."""

from __future__ import annotations

from rongqi import fastjson
from rongqi.oci.profile import DEFAULT_CAPABILITIES, default_seccomp
from rongqi.oci.seccomp_spec import parse_seccomp


def _allowed(profile: dict) -> set[str]:
    """Names allowed with no condition on their arguments."""
    return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def _rules_for(profile: dict, name: str) -> list[dict]:
    return [r for r in profile["syscalls"] if name in r["names"]]


def test_default_capabilities_are_dockers_fourteen():
    assert sorted(DEFAULT_CAPABILITIES) == sorted([
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"])


def test_default_denies_with_eperm_and_covers_the_compat_abis_on_x86_64():
    p = default_seccomp("x86_64", kernel="6.1.0")
    assert (p["defaultAction"], p["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default_seccomp("arm64", kernel="6.1")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_default_caps_leave_the_dangerous_calls_denied():
    allowed = _allowed(default_seccomp("x86_64", kernel="6.1"))
    for name in ("mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key",
                 "reboot", "init_module", "finit_module", "delete_module", "kexec_load", "bpf",
                 "perf_event_open", "ptrace_nope", "open_by_handle_at", "acct", "swapon",
                 "settimeofday", "clock_settime", "sethostname", "pivot_root", "iopl", "userfaultfd"):
        assert name not in allowed, name
    for name in ("read", "execve", "fork", "vfork", "wait4", "chroot", "ptrace", "arch_prctl",
                 "modify_ldt", "socketcall", "io_uring_setup", "fchmodat2"):
        assert name in allowed, name


def test_clone_is_allowed_only_without_namespace_flags_and_clone3_gets_enosys():
    p = default_seccomp("x86_64", kernel="6.1")
    [clone] = _rules_for(p, "clone")
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]
    [clone3] = _rules_for(p, "clone3")
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", 38)
    s390 = default_seccomp("s390x", kernel="6.1")
    assert [r["args"][0]["index"] for r in _rules_for(s390, "clone")] == [1]


def test_socket_is_allowed_for_every_family_but_vsock():
    [sock] = _rules_for(default_seccomp("x86_64", kernel="6.1"), "socket")
    assert sock["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


def test_personality_is_limited_to_the_harmless_personas():
    rules = _rules_for(default_seccomp("x86_64", kernel="6.1"), "personality")
    assert sorted(r["args"][0]["value"] for r in rules) == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(r["args"][0]["op"] == "SCMP_CMP_EQ" for r in rules)


def test_cap_sys_admin_opens_mount_and_unconditional_clone():
    p = default_seccomp("x86_64", caps=DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN"], kernel="6.1")
    allowed = _allowed(p)
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "sethostname"} <= allowed
    assert not any(r["action"] == "SCMP_ACT_ERRNO" for r in _rules_for(p, "clone3"))
    assert all(not r.get("args") for r in _rules_for(p, "clone"))


def test_each_capability_opens_its_calls():
    for cap, calls in {"CAP_SYS_BOOT": {"reboot"}, "CAP_SYS_MODULE": {"init_module", "finit_module"},
                       "CAP_SYS_TIME": {"settimeofday", "clock_settime"},
                       "CAP_SYS_PTRACE": {"kcmp", "pidfd_getfd"}, "CAP_BPF": {"bpf"},
                       "CAP_DAC_READ_SEARCH": {"open_by_handle_at"}, "CAP_SYSLOG": {"syslog"}}.items():
        assert calls <= _allowed(default_seccomp("x86_64", caps=[cap], kernel="6.1")), cap
        assert not calls & _allowed(default_seccomp("x86_64", kernel="6.1")), cap


def test_chroot_follows_cap_sys_chroot():
    assert "chroot" not in _allowed(default_seccomp("x86_64", caps=["CAP_CHOWN"], kernel="6.1"))


def test_ptrace_needs_kernel_4_8_without_cap_sys_ptrace():
    assert "ptrace" in _allowed(default_seccomp("x86_64", kernel="4.8.0-1-amd64"))
    assert "ptrace" not in _allowed(default_seccomp("x86_64", kernel="4.4.0"))


def test_arch_specific_calls_follow_the_architecture():
    x86 = _allowed(default_seccomp("x86_64", kernel="6.1"))
    arm = _allowed(default_seccomp("aarch64", kernel="6.1"))
    assert "arch_prctl" in x86 and "arch_prctl" not in arm
    assert "set_tls" in arm and "set_tls" not in x86


def test_default_profile_is_valid_config_json_for_the_parser():
    p = default_seccomp()
    again = fastjson.loads(fastjson.dumps(p))
    assert again == p
    parsed = parse_seccomp(again)
    assert parsed.defaultAction == "SCMP_ACT_ERRNO"
    assert len(parsed.syscalls) == len(p["syscalls"])


def test_profile_dicts_are_fresh_each_call():
    a = default_seccomp("x86_64", kernel="6.1")
    a["syscalls"][0]["names"].append("kexec_load")
    assert "kexec_load" not in _allowed(default_seccomp("x86_64", kernel="6.1"))


def test_editing_an_argument_condition_does_not_change_the_next_profile():
    a = default_seccomp("x86_64", kernel="6.1")
    _rules_for(a, "socket")[0]["args"][0]["value"] = 1
    assert _rules_for(default_seccomp("x86_64", kernel="6.1"), "socket")[0]["args"][0]["value"] == 40


def test_default_process_capabilities_leave_inheritable_and_ambient_empty():
    from rongqi.oci.profile import default_capabilities
    c = default_capabilities()
    assert set(c) == {"bounding", "effective", "permitted"}
    assert c["bounding"] == c["effective"] == c["permitted"] == DEFAULT_CAPABILITIES
    c["bounding"].append("CAP_SYS_ADMIN")
    assert "CAP_SYS_ADMIN" not in default_capabilities()["bounding"]
