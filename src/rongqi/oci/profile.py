"""The default security profile: docker's and podman's default capabilities and seccomp.

Emitted by `rongqi-oci spec` and used by the engine; stdlib only, data plus one resolver.
"""

from __future__ import annotations

import os

# The capabilities docker and podman give a container unless told otherwise.
DEFAULT_CAPABILITIES: list[str] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]



def default_capabilities() -> dict:
    """process.capabilities for the default container.

    No inheritable and no ambient set: since CVE-2022-24769 (moby) and
    CVE-2022-29162 (runc) neither docker nor runc put capabilities there, because
    inheritable ones reach a non-root program's file capabilities on exec.
    """
    return {"bounding": list(DEFAULT_CAPABILITIES), "effective": list(DEFAULT_CAPABILITIES),
            "permitted": list(DEFAULT_CAPABILITIES)}


# Allowed to every container: calls that touch only the caller's own process,
# files and sockets, or whose danger the capabilities already guard. The same
# list as moby's profiles/seccomp/default.json (with moby #47341's additions for
# kernels 5.17-6.7); names a libseccomp does not know are skipped when loading.
_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid
geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
_llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync
munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat
openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat
renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
"""

# Namespace flags a container without CAP_SYS_ADMIN may not pass to clone:
# CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP = 0x7E020000.
_CLONE_NS_FLAGS = 0x7E020000
_AF_VSOCK = 40
_ENOSYS = 38


def _allow(names: str, **cond) -> dict:
    return {"names": names.split(), "action": "SCMP_ACT_ALLOW", **cond}


# (rule, conditions). Conditions, as moby's "includes"/"excludes":
#   caps: all of them held; not_caps: none of them held; arches / not_arches: the
#   architecture (Go's names) is / is not one of these; min_kernel: (major, minor).
_RULES: list[tuple[dict, dict]] = [
    (_allow(_ALLOWED), {}),
    (_allow("process_vm_readv process_vm_writev ptrace"), {"min_kernel": (4, 8)}),
    # AF_VSOCK reaches the host (or a hypervisor) past the network namespace.
    (_allow("socket", args=[{"index": 0, "value": _AF_VSOCK, "op": "SCMP_CMP_NE"}]), {}),
    # personality: only the harmless personas (PER_LINUX, PER_LINUX32,
    # UNAME26, PER_LINUX32|UNAME26) and the query 0xffffffff.
    *((_allow("personality", args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]), {})
      for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)),
    (_allow("sync_file_range2 swapcontext"), {"arches": ("ppc64le",)}),
    (_allow("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
     {"arches": ("arm", "arm64")}),
    (_allow("arch_prctl"), {"arches": ("amd64", "x32")}),
    (_allow("modify_ldt"), {"arches": ("amd64", "x32", "x86")}),
    (_allow("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
     {"arches": ("s390", "s390x")}),
    (_allow("riscv_flush_icache"), {"arches": ("riscv64",)}),
    (_allow("open_by_handle_at"), {"caps": ("CAP_DAC_READ_SEARCH",)}),
    (_allow("bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
            "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd "
            "setdomainname sethostname setns syslog umount umount2 unshare"),
     {"caps": ("CAP_SYS_ADMIN",)}),
    (_allow("clone", args=[{"index": 0, "value": _CLONE_NS_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}]),
     {"not_caps": ("CAP_SYS_ADMIN",), "not_arches": ("s390", "s390x")}),
    # s390 passes clone's flags second.
    (_allow("clone", args=[{"index": 1, "value": _CLONE_NS_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}]),
     {"not_caps": ("CAP_SYS_ADMIN",), "arches": ("s390", "s390x")}),
    # clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes
    # the C library fall back to clone, whose flags the rule above checks.
    ({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS},
     {"not_caps": ("CAP_SYS_ADMIN",)}),
    (_allow("reboot"), {"caps": ("CAP_SYS_BOOT",)}),
    (_allow("chroot"), {"caps": ("CAP_SYS_CHROOT",)}),
    (_allow("delete_module init_module finit_module"), {"caps": ("CAP_SYS_MODULE",)}),
    (_allow("acct"), {"caps": ("CAP_SYS_PACCT",)}),
    (_allow("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
     {"caps": ("CAP_SYS_PTRACE",)}),
    (_allow("iopl ioperm"), {"caps": ("CAP_SYS_RAWIO",)}),
    (_allow("settimeofday stime clock_settime clock_settime64"), {"caps": ("CAP_SYS_TIME",)}),
    (_allow("vhangup"), {"caps": ("CAP_SYS_TTY_CONFIG",)}),
    (_allow("get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
     {"caps": ("CAP_SYS_NICE",)}),
    (_allow("syslog"), {"caps": ("CAP_SYSLOG",)}),
    (_allow("bpf"), {"caps": ("CAP_BPF",)}),
    (_allow("perf_event_open"), {"caps": ("CAP_PERFMON",)}),
]

# Go's architecture name, and the seccomp architectures a container of it may use
# (its own and the compat ABIs its kernel runs), as moby's archMap.
_ARCHES: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("amd64", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "amd64": ("amd64", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": ("arm64", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    "arm64": ("arm64", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    "s390x": ("s390x", ("SCMP_ARCH_S390X", "SCMP_ARCH_S390")),
    "riscv64": ("riscv64", ("SCMP_ARCH_RISCV64",)),
    "ppc64le": ("ppc64le", ("SCMP_ARCH_PPC64LE",)),
    "mips64": ("mips64", ("SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
    "mips64le": ("mips64le", ("SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
    "armv7l": ("arm", ("SCMP_ARCH_ARM",)),
    "arm": ("arm", ("SCMP_ARCH_ARM",)),
    "i686": ("386", ("SCMP_ARCH_X86",)),
    "386": ("386", ("SCMP_ARCH_X86",)),
}


def _kernel_version(release: str) -> tuple[int, int]:
    parts = []
    for p in release.split(".")[:2]:
        digits = ""
        for ch in p:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def _applies(cond: dict, goarch: str, caps: set[str], kernel: tuple[int, int]) -> bool:
    if "caps" in cond and not all(c in caps for c in cond["caps"]):
        return False
    if "not_caps" in cond and any(c in caps for c in cond["not_caps"]):
        return False
    if "arches" in cond and goarch not in cond["arches"]:
        return False
    if "not_arches" in cond and goarch in cond["not_arches"]:
        return False
    if "min_kernel" in cond and kernel < cond["min_kernel"]:
        return False
    return True


def _copy(v):
    # Callers (the engine) edit the profile they get; the table must stay as it is.
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def default_seccomp(arch: str | None = None, caps: list[str] | None = None,
                    kernel: str | None = None) -> dict:
    """linux.seccomp (OCI JSON) equal in effect to docker's default profile.

    arch is os.uname().machine or Go's name (default: this machine); caps are the
    container's capabilities (default: DEFAULT_CAPABILITIES), because the profile
    opens the calls a granted capability is meant to allow (CAP_SYS_ADMIN: mount,
    unshare, ...); kernel is a release string (default: the running kernel).
    """
    machine = arch or os.uname().machine
    goarch, arches = _ARCHES.get(machine, (machine, ()))
    held = set(DEFAULT_CAPABILITIES if caps is None else caps)
    kver = _kernel_version(kernel or os.uname().release)
    rules = []
    for rule, cond in _RULES:
        if _applies(cond, goarch, held, kver):
            rules.append(_copy(rule))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,  # EPERM
        "architectures": list(arches),
        "syscalls": rules,
    }
