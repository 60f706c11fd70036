"""linux.seccomp parsing: every field, and errors that name the JSON path."""

from __future__ import annotations

import pytest

from rongqi.errors import SpecError
from rongqi.linux.seccomp import SeccompProfile, _condition_groups
from rongqi.oci.seccomp_spec import parse_seccomp

FULL = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    "listenerPath": "/run/agent.sock",
    "listenerMetadata": "pod=web",
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99},
    ],
}


def test_full_profile_parses_into_typed_values():
    p = parse_seccomp(FULL)
    assert isinstance(p, SeccompProfile)
    assert (p.defaultAction, p.defaultErrnoRet) == ("SCMP_ACT_ERRNO", 38)
    assert p.architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert p.flags == ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert (p.listenerPath, p.listenerMetadata) == ("/run/agent.sock", "pod=web")
    assert [r.names for r in p.syscalls][0] == ["read", "write"]
    clone = p.syscalls[2]
    assert (clone.args[0].index, clone.args[0].value, clone.args[0].valueTwo, clone.args[0].op) == (
        0, 0x7E020000, 0, "SCMP_CMP_MASKED_EQ")
    assert p.syscalls[4].errnoRet == 99
    assert p.syscalls[0].errnoRet is None
    assert p.uses_notify()


def test_minimal_profile_has_empty_defaults():
    p = parse_seccomp({"defaultAction": "SCMP_ACT_ALLOW"})
    assert (p.defaultErrnoRet, p.architectures, p.flags, p.syscalls) == (None, [], [], [])
    assert not p.uses_notify()


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.pop("defaultAction"), "linux.seccomp.defaultAction: required"),
    (lambda c: c.update(defaultAction="SCMP_ACT_NOPE"),
     'linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"'),
    (lambda c: c.update(defaultAction="SCMP_ACT_NOTIFY"),
     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    (lambda c: c.update(defaultErrnoRet=-1), "linux.seccomp.defaultErrnoRet: -1 is out of range (0..65535)"),
    (lambda c: c.update(defaultErrnoRet=True), "linux.seccomp.defaultErrnoRet: must be an integer, not a boolean"),
    (lambda c: c.update(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]),
     'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80"'),
    (lambda c: c.update(flags=["SECCOMP_FILTER_FLAG_BOGUS"]),
     'linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_BOGUS"'),
    (lambda c: c.update(syscalls={}), "linux.seccomp.syscalls: must be an array, not an object"),
    (lambda c: c["syscalls"][1].update(names=[]), "linux.seccomp.syscalls[1].names: must be a non-empty"),
    (lambda c: c["syscalls"][1].update(names=["ok", 3]), "linux.seccomp.syscalls[1].names[1]: must be"),
    (lambda c: c["syscalls"][1].pop("action"), "linux.seccomp.syscalls[1].action: required"),
    (lambda c: c["syscalls"][4].update(errnoRet=70000), "linux.seccomp.syscalls[4].errnoRet: 70000 is out of range (0..65535)"),
    (lambda c: c["syscalls"][1]["args"][0].update(index=6),
     "linux.seccomp.syscalls[1].args[0].index: 6 is out of range (0..5)"),
    (lambda c: c["syscalls"][1]["args"][0].pop("value"), "linux.seccomp.syscalls[1].args[0].value: required"),
    (lambda c: c["syscalls"][1]["args"][0].update(value=2**64),
     "linux.seccomp.syscalls[1].args[0].value: 18446744073709551616 is out of range"),
    (lambda c: c["syscalls"][1]["args"][0].update(op="SCMP_CMP_LIKE"),
     'linux.seccomp.syscalls[1].args[0].op: unknown operator "SCMP_CMP_LIKE"'),
    (lambda c: c.pop("listenerPath"),
     "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY"),
    (lambda c: c["syscalls"][3].update(names=["mkdir", "write"]),
     "linux.seccomp.syscalls[3].names: SCMP_ACT_NOTIFY cannot be used for the write syscall"),
])
def test_mistakes_name_their_json_path(mutate, message):
    import copy
    cfg = copy.deepcopy(FULL)
    mutate(cfg)
    with pytest.raises(SpecError) as info:
        parse_seccomp(cfg)
    assert str(info.value).startswith(message)


def test_where_prefixes_the_path():
    with pytest.raises(SpecError, match=r"^process\.seccomp: must be an object"):
        parse_seccomp([], where="process.seccomp")


def test_every_operator_and_action_is_accepted():
    ops = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
           "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]
    actions = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
               "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"]
    p = parse_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["x"], "action": a, "args": [{"index": 1, "value": 2, "op": o}]}
        for a in actions for o in ops]})
    assert len(p.syscalls) == len(ops) * len(actions)


def test_conditions_on_distinct_arguments_are_anded_and_on_one_argument_ored():
    p = parse_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
        {"names": ["b"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
    ]})
    assert [len(g) for g in _condition_groups(p.syscalls[0].args)] == [2]
    assert [len(g) for g in _condition_groups(p.syscalls[1].args)] == [1, 1]
    assert _condition_groups([]) == [[]]


def test_cache_key_changes_with_anything_that_shapes_the_filter():
    import copy
    base = parse_seccomp(FULL).key()
    assert parse_seccomp(copy.deepcopy(FULL)).key() == base
    for mutate in (lambda c: c.update(defaultErrnoRet=1),
                   lambda c: c["syscalls"][4].update(errnoRet=98),
                   lambda c: c["syscalls"][1]["args"][0].update(value=9),
                   lambda c: c["syscalls"][2]["args"][0].update(valueTwo=1),
                   lambda c: c.update(architectures=["SCMP_ARCH_X86_64"]),
                   lambda c: c["syscalls"][0]["names"].append("readv")):
        cfg = copy.deepcopy(FULL)
        mutate(cfg)
        assert parse_seccomp(cfg).key() != base
