"""cgroup v2 device access control: an eBPF BPF_PROG_TYPE_CGROUP_DEVICE program, built and attached.

cgroup v2 has no devices files; the kernel asks the programs attached to the cgroup instead.
"""

from __future__ import annotations

import os

from rongqi.linux.cgroups.files import CgroupError
from rongqi.linux.cgroups.resources import DeviceRule

# bpf(2) commands, program and attach types (include/uapi/linux/bpf.h).
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# Opcodes used (class | size/op | source).
_LDXW = 0x61  # dst = *(u32 *)(src + off)
_AND32_K = 0x54
_RSH32_K = 0x74
_MOV32_X = 0xBC
_MOV64_K = 0xB7
_JNE_K = 0x55
_JNE_X = 0x5D
_EXIT = 0x95

_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "ppc64": 361, "s390x": 351, "i686": 357, "armv7l": 386}


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return (
        code.to_bytes(1, "little")
        + ((src << 4) | dst).to_bytes(1, "little")
        + off.to_bytes(2, "little", signed=True)
        + imm.to_bytes(4, "little", signed=True)
    )


def _is_wildcard(rule: DeviceRule) -> bool:
    return (
        (rule.type or "a") == "a"
        and (rule.major is None or rule.major < 0)
        and (rule.minor is None or rule.minor < 0)
        and set(rule.access or "rwm") == {"r", "w", "m"}
    )


def _rule_block(rule: DeviceRule) -> list[tuple]:
    """Instructions for one rule; a jump's offset None means "past the end of this block"."""
    block: list[tuple] = []
    kind = rule.type or "a"
    if kind != "a":
        block.append((_JNE_K, 2, 0, None, _TYPES[kind]))
    bits = 0
    for ch in rule.access or "rwm":
        bits |= _ACCESS_BITS[ch]
    if bits != ACC_MKNOD | ACC_READ | ACC_WRITE:
        # Allowed only if every requested access bit is in the rule: (req & bits) == req.
        block.append((_MOV32_X, 1, 3, 0, 0))
        block.append((_AND32_K, 1, 0, 0, bits))
        block.append((_JNE_X, 1, 3, None, 0))
    if rule.major is not None and rule.major >= 0:
        block.append((_JNE_K, 4, 0, None, rule.major))
    if rule.minor is not None and rule.minor >= 0:
        block.append((_JNE_K, 5, 0, None, rule.minor))
    block.append((_MOV64_K, 0, 0, 0, 1 if rule.allow else 0))
    block.append((_EXIT, 0, 0, 0, 0))
    return block


def device_filter_program(rules: list[DeviceRule]) -> bytes:
    """Compile device rules into a cgroup device program (runc's devicefilter, same semantics).

    As in the v1 devices lists, a later rule overrides an earlier one, so rules are tested
    last-first and the first match decides. A full wildcard ("a *:* rwm") resets everything
    before it and becomes the default; with none, the default is allow, as a fresh v1 cgroup.
    """
    default = True
    tail: list[DeviceRule] = []
    for rule in rules:
        if _is_wildcard(rule):
            default = bool(rule.allow)
            tail = []
        else:
            tail.append(rule)
    out = [
        _insn(_LDXW, 2, 1, 0),
        _insn(_AND32_K, 2, 0, 0, 0xFFFF),  # r2 = device type
        _insn(_LDXW, 3, 1, 0),
        _insn(_RSH32_K, 3, 0, 0, 16),  # r3 = requested access
        _insn(_LDXW, 4, 1, 4),  # r4 = major
        _insn(_LDXW, 5, 1, 8),  # r5 = minor
    ]
    for rule in reversed(tail):
        block = _rule_block(rule)
        n = len(block)
        for i, (code, dst, src, off, imm) in enumerate(block):
            out.append(_insn(code, dst, src, n - i - 1 if off is None else off, imm))
    out.append(_insn(_MOV64_K, 0, 0, 0, 1 if default else 0))
    out.append(_insn(_EXIT))
    return b"".join(out)


class _Bpf:
    """bpf(2) through ctypes; one instance, made on first use."""

    __slots__ = ("ctypes", "syscall", "nr")
    _instance: _Bpf | None = None

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        nr = _NR_BPF.get(os.uname().machine)
        if nr is None:
            raise OSError(38, f"bpf(2) syscall number unknown for {os.uname().machine}")
        self.nr = nr
        libc = ctypes.CDLL(None, use_errno=True)
        self.syscall = libc.syscall
        self.syscall.restype = ctypes.c_long
        self.syscall.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint)

    @classmethod
    def get(cls) -> _Bpf:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def call(self, cmd: int, attr: bytearray) -> int:
        ct = self.ctypes
        buf = (ct.c_char * len(attr)).from_buffer(attr)
        r = self.syscall(self.nr, cmd, ct.addressof(buf), len(attr))
        if r < 0:
            e = ct.get_errno()
            raise OSError(e, os.strerror(e))
        return r


def _put(attr: bytearray, off: int, size: int, value: int) -> None:
    attr[off : off + size] = value.to_bytes(size, "little")


def load_program(insns: bytes) -> int:
    """BPF_PROG_LOAD a cgroup device program; returns its fd. On refusal, the verifier's log is in the error."""
    bpf = _Bpf.get()
    ct = bpf.ctypes
    code = ct.create_string_buffer(insns, len(insns))
    license = ct.create_string_buffer(b"Apache-2.0")  # not GPL: the program calls no GPL-only helpers
    log = ct.create_string_buffer(65536)
    for log_level in (0, 1):
        attr = bytearray(128)
        _put(attr, 0, 4, BPF_PROG_TYPE_CGROUP_DEVICE)
        _put(attr, 4, 4, len(insns) // 8)
        _put(attr, 8, 8, ct.addressof(code))
        _put(attr, 16, 8, ct.addressof(license))
        if log_level:
            _put(attr, 24, 4, 1)
            _put(attr, 28, 4, len(log))
            _put(attr, 32, 8, ct.addressof(log))
        attr[48:58] = b"rongqi_dev"
        try:
            return bpf.call(BPF_PROG_LOAD, attr)
        except OSError as err:
            if log_level or err.errno not in (22, 13):
                detail = log.value.decode(errors="replace").strip().splitlines()
                raise OSError(err.errno, f"{err.strerror}{': ' + detail[-1] if detail else ''}") from None
    raise AssertionError("unreachable")


def attached_programs(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached directly to cgroup_dir."""
    bpf = _Bpf.get()
    ct = bpf.ctypes
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = (ct.c_uint32 * 64)()
        attr = bytearray(64)
        _put(attr, 0, 4, fd)
        _put(attr, 4, 4, BPF_CGROUP_DEVICE)
        _put(attr, 16, 8, ct.addressof(ids))
        _put(attr, 24, 4, 64)
        bpf.call(BPF_PROG_QUERY, attr)
        count = int.from_bytes(attr[24:28], "little")
        return [ids[i] for i in range(min(count, 64))]
    finally:
        os.close(fd)


def _prog_fd(prog_id: int) -> int:
    attr = bytearray(16)
    _put(attr, 0, 4, prog_id)
    return _Bpf.get().call(BPF_PROG_GET_FD_BY_ID, attr)


def _attach(cgroup_fd: int, prog_fd: int, flags: int) -> None:
    attr = bytearray(32)
    _put(attr, 0, 4, cgroup_fd)
    _put(attr, 4, 4, prog_fd)
    _put(attr, 8, 4, BPF_CGROUP_DEVICE)
    _put(attr, 12, 4, flags)
    _Bpf.get().call(BPF_PROG_ATTACH, attr)


def _detach(cgroup_fd: int, prog_fd: int) -> None:
    attr = bytearray(32)
    _put(attr, 0, 4, cgroup_fd)
    _put(attr, 4, 4, prog_fd)
    _put(attr, 8, 4, BPF_CGROUP_DEVICE)
    _Bpf.get().call(BPF_PROG_DETACH, attr)


def set_device_filter(cgroup_dir: str, rules: list[DeviceRule], field: str = "linux.resources.devices") -> None:
    """Replace the device program of cgroup_dir with one enforcing ``rules``.

    The new program is attached before the old ones are detached (both run meanwhile, and
    both must allow), so there is no moment without a filter.
    """
    try:
        old = attached_programs(cgroup_dir)
        prog = load_program(device_filter_program(rules))
    except OSError as err:
        raise CgroupError(f"cannot load the eBPF device filter: {err.strerror}", field, cgroup_dir, err.errno or 0) from None
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            _attach(cg, prog, BPF_F_ALLOW_MULTI)
        except OSError as err:
            if not old or err.errno not in (1, 22):
                raise CgroupError(f"cannot attach the eBPF device filter to {cgroup_dir}: {err.strerror}", field, cgroup_dir, err.errno or 0) from None
            # A program attached without ALLOW_MULTI (by another manager) blocks ours: take its place.
            _detach_ids(cg, old)
            old = []
            _attach(cg, prog, BPF_F_ALLOW_MULTI)
        _detach_ids(cg, old)
    finally:
        os.close(prog)
        os.close(cg)


def _detach_ids(cg: int, ids: list[int]) -> None:
    for prog_id in ids:
        try:
            fd = _prog_fd(prog_id)
        except OSError:
            continue  # already gone
        try:
            _detach(cg, fd)
        except OSError:
            pass
        finally:
            os.close(fd)
