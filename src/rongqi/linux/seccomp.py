"""Seccomp: an OCI-shaped profile compiled by libseccomp and loaded with seccomp(2).

On the runtime's start path: standard library and ctypes only, plain classes, and
libseccomp.so.2 opened only when a profile must be compiled (not on a cache hit).

Compiling and loading are two steps on purpose: the container's init compiles
while the host's filesystem (and libseccomp) is still in view, then loads the BPF
bytes with one system call just before execve, when only the container's root is
left. compile_filter caches the exported BPF on disk, keyed by the profile, the
architecture, the kernel release and the libseccomp build, so a warm start does
not load libseccomp at all.
"""

from __future__ import annotations

import os
import sys

# libseccomp's action values (seccomp.h); ERRNO and TRACE carry a 16-bit datum.
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,  # runc maps KILL to kill-thread, as libseccomp does
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
# seccomp(2) filter flags that config.json may ask for.
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
)
EPERM = 1
_ORDER = sys.byteorder  # struct sock_filter is in the machine's byte order
_FLAG_NEW_LISTENER = 8
_FLAG_TSYNC_ESRCH = 16
_SECCOMP_SET_MODE_FILTER = 1
_SCMP_FLTATR_CTL_NNP = 3
_BPF_MAXINSNS = 4096
# seccomp(2)'s number, by os.uname().machine.
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "loongarch64": 277,
                "s390x": 348, "ppc64le": 358, "ppc64": 358, "i686": 354, "i386": 354,
                "armv7l": 383, "armv8l": 383, "mips64": 5312}
# uname(2) answers with the personality's machine: under PER_LINUX32 an x86_64 kernel says
# "i686" and an arm64 one "armv8l". A 64-bit process still calls the 64-bit table.
_AS_64BIT = {"i386": "x86_64", "i486": "x86_64", "i586": "x86_64", "i686": "x86_64",
             "armv7l": "aarch64", "armv8l": "aarch64", "ppc": "ppc64", "s390": "s390x", "mips": "mips64"}


def _abi_machine() -> str:
    """This process's machine for system call numbers, whatever its personality."""
    import sys

    m = os.uname().machine
    return _AS_64BIT.get(m, m) if sys.maxsize > 2**32 else m


class SeccompArg:
    __slots__ = ("index", "value", "valueTwo", "op")

    def __init__(self, index: int, value: int, op: str, valueTwo: int = 0):
        self.index = index
        self.value = value
        self.valueTwo = valueTwo
        self.op = op

    def _key(self) -> str:
        return f"{self.index}:{self.op}:{self.value}:{self.valueTwo}"


class SeccompRule:
    __slots__ = ("names", "action", "errnoRet", "args")

    def __init__(self, names: list[str], action: str, errnoRet: int | None = None,
                 args: list[SeccompArg] | None = None):
        self.names = names
        self.action = action
        self.errnoRet = errnoRet
        self.args = args or []

    def _key(self) -> str:
        return (",".join(self.names) + "|" + self.action + "|" + str(self.errnoRet) + "|"
                + ";".join(a._key() for a in self.args))


class SeccompProfile:
    """linux.seccomp of config.json, checked (see rongqi.oci.seccomp_spec)."""

    __slots__ = ("defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls",
                 "listenerPath", "listenerMetadata")

    def __init__(self, defaultAction: str, defaultErrnoRet: int | None = None,
                 architectures: list[str] | None = None, flags: list[str] | None = None,
                 syscalls: list[SeccompRule] | None = None, listenerPath: str = "",
                 listenerMetadata: str = ""):
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures or []
        self.flags = flags or []
        self.syscalls = syscalls or []
        self.listenerPath = listenerPath
        self.listenerMetadata = listenerMetadata

    def uses_notify(self) -> bool:
        return any(r.action == "SCMP_ACT_NOTIFY" for r in self.syscalls)

    def key(self) -> str:
        """A canonical text of everything that shapes the BPF (for the cache)."""
        return "\n".join([
            self.defaultAction, str(self.defaultErrnoRet), ",".join(self.architectures),
            *(r._key() for r in self.syscalls),
        ])


class CompiledFilter:
    """BPF ready for seccomp(2), and the flags to load it with."""

    __slots__ = ("bpf", "flags", "notify")

    def __init__(self, bpf: bytes, flags: int, notify: bool):
        self.bpf = bpf
        self.flags = flags
        self.notify = notify


# ---- libseccomp through ctypes --------------------------------------------------

TYPE_CHECKING = False  # typing is not imported on the runtime's path (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

ctypes: Any = None  # imported on first use: a cached filter is read and checked without it
_ArgCmp: Any = None
_Version: Any = None
_SockFprog: Any = None


def _ctypes():
    """Import ctypes and define the structures, once."""
    global ctypes, _ArgCmp, _Version, _SockFprog
    if ctypes is None:
        import ctypes as ct

        class ArgCmp(ct.Structure):
            _fields_ = [("arg", ct.c_uint), ("op", ct.c_int),
                        ("datum_a", ct.c_uint64), ("datum_b", ct.c_uint64)]

        class Version(ct.Structure):
            _fields_ = [("major", ct.c_uint), ("minor", ct.c_uint), ("micro", ct.c_uint)]

        class SockFprog(ct.Structure):
            _fields_ = [("len", ct.c_ushort), ("filter", ct.c_void_p)]

        _ArgCmp, _Version, _SockFprog = ArgCmp, Version, SockFprog
        ctypes = ct
    return ctypes


_LIB_DIRS = ("/usr/lib/{m}-linux-gnu", "/lib/{m}-linux-gnu", "/usr/lib64", "/lib64",
             "/usr/lib", "/lib")
_lib = None
_lib_path: str | None = None


def _find_libseccomp() -> str | None:
    machine = os.uname().machine
    for d in _LIB_DIRS:
        p = d.format(m=machine) + "/libseccomp.so.2"
        if os.path.exists(p):
            return os.path.realpath(p)
    return None


def _libseccomp():
    global _lib
    if _lib is None:
        _ctypes()
        path = _find_libseccomp() or "libseccomp.so.2"
        try:
            lib = ctypes.CDLL(path, use_errno=True)
        except OSError as err:
            raise OSError(2, f"libseccomp.so.2 is needed to apply a seccomp profile "
                             f"(apt-get install libseccomp2): {err}") from None
        vp = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = vp
        lib.seccomp_release.argtypes = [vp]
        lib.seccomp_release.restype = None
        lib.seccomp_arch_add.argtypes = [vp, ctypes.c_uint32]
        lib.seccomp_arch_add.restype = ctypes.c_int
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_attr_set.argtypes = [vp, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_attr_set.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
        lib.seccomp_arch_native.argtypes = []
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_rule_add_array.argtypes = [vp, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        lib.seccomp_rule_add_array.restype = ctypes.c_int
        lib.seccomp_export_bpf.argtypes = [vp, ctypes.c_int]
        lib.seccomp_export_bpf.restype = ctypes.c_int
        lib.seccomp_version.argtypes = []
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        _lib = lib
    return _lib


def libseccomp_version() -> str:
    v = _libseccomp().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _action_value(action: str, errno_ret: int | None) -> int:
    base = ACTIONS[action]
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return base | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    return base


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")


def _compile_with_libseccomp(profile: SeccompProfile) -> bytes:
    lib = _libseccomp()
    default = _action_value(profile.defaultAction, profile.defaultErrnoRet)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(22, f"seccomp: libseccomp refused the default action {profile.defaultAction}")
    try:
        # no_new_privs is the runtime's business (process.noNewPrivileges), not libseccomp's.
        _check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0), "seccomp: clear the NNP attribute")
        tokens = [lib.seccomp_arch_native()]
        for arch in profile.architectures:
            token = lib.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode())
            if token == 0:
                continue  # an architecture this libseccomp does not know: its calls hit the bad-arch kill
            rc = lib.seccomp_arch_add(ctx, token)
            if rc != -17:  # EEXIST: the native architecture is always there
                _check(rc, f"seccomp: add architecture {arch}")
            if token not in tokens:
                tokens.append(token)
        for rule in profile.syscalls:
            action = _action_value(rule.action, rule.errnoRet)
            if action == default:
                continue  # libseccomp refuses such a rule; it would change nothing (runc skips it too)
            groups = _condition_groups(rule.args)
            for name in rule.names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:
                    continue  # a name this libseccomp does not know: skipped, as runc skips it
                for conds in groups:
                    arr = (_ArgCmp * max(1, len(conds)))()
                    for i, a in enumerate(conds):
                        arr[i].arg = a.index
                        arr[i].op = OPERATORS[a.op]
                        arr[i].datum_a = a.value
                        arr[i].datum_b = a.valueTwo
                    _check(lib.seccomp_rule_add_array(ctx, action, nr, len(conds), arr),
                           f"seccomp: add the rule for {name}")
        fd = os.memfd_create("rongqi-seccomp", os.MFD_CLOEXEC)
        try:
            _check(lib.seccomp_export_bpf(ctx, fd), "seccomp: export the BPF program")
            size = os.lseek(fd, 0, os.SEEK_END)
            program = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    stub = _enosys_stub(lib, profile, tokens)
    if (len(stub) + len(program)) // 8 > _BPF_MAXINSNS:
        raise OSError(7, f"seccomp: the filter has {(len(stub) + len(program)) // 8} instructions, "
                         f"more than the kernel's {_BPF_MAXINSNS}")
    return stub + program


# ---- the -ENOSYS stub ----------------------------------------------------------
#
# A system call newer than every call the profile names is one its author could not
# know; answering it with the default action (EPERM in docker's profile) stops the
# C library from falling back to the older call it replaces (fchmodat2 -> fchmodat,
# clone3 -> clone). runc therefore puts a short program before libseccomp's that
# answers ENOSYS for numbers past the profile's largest, per architecture, and so
# does rongqi, with the same rules: no stub when the default action allows, or when
# it already answers ENOSYS. The stub only ever returns ENOSYS or falls through to
# libseccomp's program unchanged, so it can deny a call, never allow one.

_X32_TOKEN = 0x4000003E        # libseccomp's SCMP_ARCH_X32, not a real AUDIT_ARCH value
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_S390_TOKENS = (0x16, 0x80000016)  # s390 multiplexes new calls through setup(2): not handled
_RET_ENOSYS = 0x00050000 | 38
_LD_ABS, _JEQ, _JGT, _JSET, _JA, _RET = 0x20, 0x15, 0x25, 0x45, 0x05, 0x06


def _enosys_stub(lib, profile: SeccompProfile, tokens: list[int]) -> bytes:
    if profile.defaultAction in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG") or profile.defaultErrnoRet == 38:
        return b""
    names = {n for r in profile.syscalls for n in r.names}
    # audit arch -> {"plain": largest number, "x32": largest number}
    largest: dict[int, dict[str, int]] = {}
    for token in tokens:
        if token in _S390_TOKENS:
            continue
        top = -1
        for n in names:
            nr = lib.seccomp_syscall_resolve_name_arch(token, n.encode())
            if nr > top:  # negative numbers are libseccomp's pseudo-calls (multiplexed)
                top = nr
        if top < 0:
            continue
        audit = _AUDIT_ARCH_X86_64 if token == _X32_TOKEN else token
        largest.setdefault(audit, {})["x32" if token == _X32_TOKEN else "plain"] = top
    if not largest:
        return b""

    # Tiny assembler: jumps name labels, resolved to the relative offsets BPF wants.
    prog: list[list] = []
    labels: dict[str, int] = {}

    def op(code: int, k: str | int = 0, jt: str | int = 0, jf: str | int = 0) -> None:
        prog.append([code, jt, jf, k])

    for i, (audit, tops) in enumerate(largest.items()):
        nxt = f"arch{i + 1}"
        op(_LD_ABS, 4)                          # A = seccomp_data.arch
        op(_JEQ, audit, 0, nxt)
        op(_LD_ABS, 0)                          # A = seccomp_data.nr
        if audit == _AUDIT_ARCH_X86_64:
            if "plain" in tops and "x32" in tops:
                op(_JSET, _X32_BIT, f"x32_{i}", 0)
                op(_JGT, tops["plain"], "enosys", "filter")
                labels[f"x32_{i}"] = len(prog)
                op(_JGT, tops["x32"], "enosys", "filter")
            elif "plain" in tops:
                op(_JSET, _X32_BIT, "filter", 0)
                op(_JGT, tops["plain"], "enosys", "filter")
            else:
                op(_JSET, _X32_BIT, 0, "filter")
                op(_JGT, tops["x32"], "enosys", "filter")
        else:
            op(_JGT, tops["plain"], "enosys", "filter")
        labels[nxt] = len(prog)
    op(_JA, "filter")
    labels["enosys"] = len(prog)
    op(_RET, _RET_ENOSYS)
    labels["filter"] = len(prog)

    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(prog):
        if code == _JA:
            k = labels[k] - i - 1
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        out += code.to_bytes(2, _ORDER) + bytes((jt, jf)) + (k & 0xFFFFFFFF).to_bytes(4, _ORDER)
    return bytes(out)


def _condition_groups(args: list[SeccompArg]) -> list[list[SeccompArg]]:
    """Which conditions go into one rule: all of them (AND), as runc does, unless
    two test the same argument; then each becomes its own rule (OR), also as runc
    does, because libseccomp cannot AND two comparisons of one argument."""
    if not args:
        return [[]]
    seen: set[int] = set()
    for a in args:
        if a.index in seen:
            return [[a] for a in args]
        seen.add(a.index)
    return [list(args)]


# ---- the cache -----------------------------------------------------------------

def default_cache_dir() -> str | None:
    """Where compiled filters are kept: on tmpfs, so a reboot (new kernel) clears them."""
    if os.geteuid() == 0:
        return "/run/rongqi/seccomp"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return f"{xdg}/rongqi/seccomp" if xdg else None


def _cache_key(profile: SeccompProfile) -> str | None:
    lib = _lib_path_for_key()
    if lib is None:
        return None
    st = os.stat(lib)
    u = os.uname()
    import _sha256  # hashlib would pull in OpenSSL's _hashlib; this is the builtin one
    h = _sha256.sha256()
    for part in ("rongqi-seccomp-2", u.machine, u.release, lib, str(st.st_size),
                 str(st.st_mtime_ns), profile.key()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _lib_path_for_key() -> str | None:
    global _lib_path
    if _lib_path is None:
        _lib_path = _find_libseccomp() or ""
    return _lib_path or None


def _trusted_dir(path: str) -> bool:
    # A cached filter is loaded without checking what it does: the directory must be
    # ours alone, or anyone who can write there could choose the container's filter.
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            return False
    except OSError:
        return False
    return (st.st_mode & 0o170000 == 0o040000 and st.st_uid == os.geteuid()
            and st.st_mode & 0o022 == 0)


def _read_cached(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        data = os.read(fd, st.st_size + 1)
    finally:
        os.close(fd)
    if not data or len(data) % 8 or len(data) > _BPF_MAXINSNS * 8:
        return None
    return data


def _write_cached(path: str, bpf: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, bpf)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        # The cache only saves time: a full disk or a race with another runtime is no error.
        try:
            os.unlink(tmp)
        except OSError:
            pass


_UNSET = object()


def compile_filter(profile: SeccompProfile, cache_dir: str | None | object = _UNSET) -> CompiledFilter:
    """The profile as BPF, from the cache when it is there, else from libseccomp.

    cache_dir None turns the cache off; left out, default_cache_dir() is used.
    """
    if cache_dir is _UNSET:
        cache_dir = default_cache_dir()
    notify = profile.uses_notify()
    flags = 0
    for f in profile.flags:
        flags |= FLAGS[f]
    if notify:
        flags |= _FLAG_NEW_LISTENER
        if flags & FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]:
            flags |= _FLAG_TSYNC_ESRCH  # the kernel refuses TSYNC with a listener otherwise
    else:
        # The kernel accepts WAIT_KILLABLE_RECV only with a listener; without one it means nothing.
        flags &= ~FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    path = None
    if isinstance(cache_dir, str):
        key = _cache_key(profile)
        if key is not None and _trusted_dir(cache_dir):
            path = f"{cache_dir}/{key}.bpf"
            bpf = _read_cached(path)
            if bpf is not None:
                return CompiledFilter(bpf, flags, notify)
    bpf = _compile_with_libseccomp(profile)
    if path is not None:
        _write_cached(path, bpf)
    return CompiledFilter(bpf, flags, notify)


# ---- loading -------------------------------------------------------------------

_libc = None


def _c():
    global _libc
    if _libc is None:
        _ctypes()
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                ctypes.c_ulong, ctypes.c_ulong]
        _libc.prctl.restype = ctypes.c_int
    return _libc


def load_filter(compiled: CompiledFilter) -> int | None:
    """Install compiled in this process; the notify fd if it has a listener."""
    _ctypes()
    machine = _abi_machine()  # the init may have set linux.personality (LINUX32) already
    nr = _SYS_SECCOMP.get(machine)
    if nr is None:
        raise OSError(38, f"seccomp: no system call number known for {machine}")
    buf = ctypes.create_string_buffer(compiled.bpf, len(compiled.bpf))
    prog = _SockFprog(len(compiled.bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    rc = _c().syscall(ctypes.c_long(nr), ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
                      ctypes.c_long(compiled.flags), ctypes.byref(prog))
    if rc < 0:
        err = ctypes.get_errno()
        hint = ""
        if err == 13:  # EACCES
            hint = " (loading a filter needs no_new_privs or CAP_SYS_ADMIN)"
        raise OSError(err, f"seccomp: load the filter: {os.strerror(err)}{hint}")
    return int(rc) if compiled.notify else None


def load(profile: SeccompProfile, cache_dir: str | None | object = _UNSET) -> int | None:
    """Compile (or take from the cache) and install profile in THIS process.

    Returns the notify fd when a rule uses SCMP_ACT_NOTIFY, else None. Syscall
    names libseccomp does not know are skipped, as runc skips them.
    """
    return load_filter(compile_filter(profile, cache_dir))


def no_new_privs() -> bool:
    # /proc/self/status rather than prctl(PR_GET_NO_NEW_PRIVS): no ctypes needed to ask.
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"NoNewPrivs:"):
                return line.split()[1] == b"1"
    return False


def load_needs_cap_sys_admin(no_new_privileges: bool) -> bool:
    """Whether loading the filter needs CAP_SYS_ADMIN: the kernel lets a process
    install a filter only under no_new_privs or with CAP_SYS_ADMIN. When true, the
    init must load before it drops capabilities (as runc does), and the filter must
    then allow the syscalls left between that point and execve."""
    return not no_new_privileges and not no_new_privs()


# ---- the notify fd, handed to the listener as runc hands it --------------------

def connect_listener(listener_path: str) -> int:
    """Connect to the seccomp agent's socket; return the fd (the runtime does this on the
    host, before the init's pivot_root puts listener_path out of reach)."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(listener_path)
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"seccomp listener {listener_path}: {err.strerror}") from None
    return sock.detach()


def send_notify_fd(fd: int, listener_path: str, state_json: bytes, metadata: str, sock_fd: int | None = None) -> None:
    """Send the containerProcessState with fd to the listener (over sock_fd when the
    connection was made beforehand, else by connecting to listener_path).

    state_json is the container's state (as `state` prints it). One message goes
    out: the JSON {"ociVersion","fds":["seccompFd"],"pid","metadata","state"} as
    data and fd as the one SCM_RIGHTS control message, as runc sends it.
    """
    import _socket
    from rongqi import fastjson

    state = fastjson.loads(state_json)
    if not isinstance(state, dict):
        raise ValueError("send_notify_fd: state_json must be the container's state object")
    msg = fastjson.dumps({
        "ociVersion": state.get("ociVersion", ""),
        "fds": ["seccompFd"],
        "pid": state.get("pid", 0),
        "metadata": metadata,
        "state": state,
    }).encode()
    if sock_fd is not None:
        sock = _socket.socket(fileno=sock_fd)
    else:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        if sock_fd is None:
            try:
                sock.connect(listener_path)
            except OSError as err:
                raise OSError(err.errno, f"seccomp listener {listener_path}: {err.strerror}") from None
        sock.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
    finally:
        sock.close()
