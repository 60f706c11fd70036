"""The eBPF device filter's meaning, checked by running the generated program in a tiny interpreter.

The kernel test (tests/integration/test_cgroups_kernel.py) proves it loads and is enforced.
"""

from __future__ import annotations

import pytest

from rongqi.linux.cgroups import ebpf
from rongqi.linux.cgroups.resources import DeviceRule

R, W, M = ebpf.ACC_READ, ebpf.ACC_WRITE, ebpf.ACC_MKNOD
CHAR, BLOCK = ebpf.DEV_CHAR, ebpf.DEV_BLOCK


def run(prog: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the subset of eBPF the generator emits, as the kernel would; returns r0."""
    assert len(prog) % 8 == 0
    ctx = [(access << 16) | dev_type, major, minor]
    regs: list = [None] * 11
    regs[1] = "ctx"  # the context pointer, on entry
    insns = [prog[i : i + 8] for i in range(0, len(prog), 8)]
    pc = 0
    for _ in range(10_000):
        raw = insns[pc]
        code, dst, src = raw[0], raw[1] & 0xF, raw[1] >> 4
        off = int.from_bytes(raw[2:4], "little", signed=True)
        imm = int.from_bytes(raw[4:8], "little", signed=True)
        pc += 1
        if code == 0x61:  # ldxw
            assert regs[src] == "ctx" and off in (0, 4, 8)
            regs[dst] = ctx[off // 4]
        elif code == 0x54:  # and32 imm
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == 0x74:  # rsh32 imm
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:  # mov32 reg
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB7:  # mov64 imm
            regs[dst] = imm
        elif code == 0x55:  # jne imm
            if regs[dst] != imm:
                pc += off
        elif code == 0x5D:  # jne reg
            if regs[dst] != regs[src]:
                pc += off
        elif code == 0x95:  # exit
            assert regs[0] in (0, 1)
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        assert 0 <= pc < len(insns), "jump out of the program"
    raise AssertionError("the program never exits")


def allowed(rules: list[DeviceRule], dev_type: int, access: int, major: int, minor: int) -> bool:
    return run(ebpf.device_filter_program(rules), dev_type, access, major, minor) == 1


DENY_ALL = DeviceRule(allow=False, type="a", access="rwm")

RUNTIME_DEFAULT = [
    DENY_ALL,
    DeviceRule(allow=True, type="c", major=1, minor=3, access="rwm"),  # /dev/null
    DeviceRule(allow=True, type="c", major=1, minor=5, access="r"),  # /dev/zero, read only
    DeviceRule(allow=True, type="c", major=136, minor=None, access="rw"),  # any pty
]


def test_deny_all_then_allow_list_permits_only_the_listed_devices() -> None:
    assert allowed(RUNTIME_DEFAULT, CHAR, R | W, 1, 3)
    assert allowed(RUNTIME_DEFAULT, CHAR, M, 1, 3)
    assert not allowed(RUNTIME_DEFAULT, CHAR, R, 1, 7)
    assert not allowed(RUNTIME_DEFAULT, BLOCK, R, 1, 3)  # same numbers, other type


def test_access_must_be_a_subset_of_the_rule() -> None:
    assert allowed(RUNTIME_DEFAULT, CHAR, R, 1, 5)
    assert not allowed(RUNTIME_DEFAULT, CHAR, W, 1, 5)
    assert not allowed(RUNTIME_DEFAULT, CHAR, R | W, 1, 5)


def test_missing_minor_matches_any_minor() -> None:
    assert allowed(RUNTIME_DEFAULT, CHAR, R | W, 136, 0)
    assert allowed(RUNTIME_DEFAULT, CHAR, R | W, 136, 99)
    assert not allowed(RUNTIME_DEFAULT, CHAR, M, 136, 0)


def test_later_rules_override_earlier_ones() -> None:
    rules = RUNTIME_DEFAULT + [DeviceRule(allow=False, type="c", major=1, minor=3, access="w")]
    assert allowed(rules, CHAR, R, 1, 3)
    assert not allowed(rules, CHAR, W, 1, 3)


def test_without_a_wildcard_the_default_is_allow_like_a_fresh_v1_cgroup() -> None:
    rules = [DeviceRule(allow=False, type="b", major=8, minor=0, access="rwm")]
    assert allowed(rules, CHAR, R, 4, 1)
    assert not allowed(rules, BLOCK, R, 8, 0)
    assert allowed([], BLOCK, R | W | M, 8, 0)


def test_allow_all_wildcard_after_denies_resets_everything() -> None:
    rules = RUNTIME_DEFAULT + [DeviceRule(allow=True, type="a", access="rwm")]
    assert allowed(rules, BLOCK, R | W | M, 8, 0)
    # everything before the wildcard is gone from the program, so the verifier sees no dead code
    assert len(ebpf.device_filter_program(rules)) == len(ebpf.device_filter_program([]))


def test_type_a_with_partial_access_is_not_a_wildcard() -> None:
    rules = [DENY_ALL, DeviceRule(allow=True, type="a", access="r")]
    assert allowed(rules, BLOCK, R, 8, 0)
    assert not allowed(rules, BLOCK, W, 8, 0)


@pytest.mark.parametrize("n", [1, 50, 300])
def test_program_size_grows_linearly_and_jumps_stay_inside(n: int) -> None:
    rules = [DENY_ALL] + [DeviceRule(allow=True, type="c", major=10, minor=i, access="rw") for i in range(n)]
    prog = ebpf.device_filter_program(rules)
    assert allowed(rules, CHAR, R, 10, n - 1)
    assert not allowed(rules, CHAR, R, 10, n)
    assert len(prog) // 8 < 10 + 8 * n
