"""The messages between the runtime, its helper and the container's init: one home for the
words, the order they come in, the line channel (Sync) that carries them, and what the init
is handed at its clone (InitConfig).

    runtime (create)             helper (fork)                  init (clone of the helper)
    ----------------             -------------                  --------------------------
    puts the helper in the cgroup
    HELPER_GO on the go pipe --> joins namespaces, clones
                             <-- "ok PID" | "error TEXT" on the report pipe, exits
    writes uid/gid maps
    GO PID [I,J..]  -------------------------------------------> (fds of bind sources I, J..:
                                                                  user namespace, SCM_RIGHTS)
                    <------------------------------------------- HOOKS (mounts made)
    runs prestart, createRuntime
    HOOKS_DONE | ABORT TEXT ------------------------------------>
                    <------------------------------------------- READY (all but execve done)
    create returns ... start:    "0" on exec.fifo, then EOF on the sync channel at execve
                    <------------------------------------------- ERROR TEXT (any time before READY)

An exec'd process (oci/execution.py) gets GO PID and answers ERROR TEXT or EOF at execve. EOF is
what Sync.recv returns when the other side closed (execve, exit, a crash).
"""

from __future__ import annotations

import os
import sys

GO = "go"
HOOKS = "hooks"
HOOKS_DONE = "hooks-done"
ABORT = "abort"
READY = "ready"
ERROR = "error"
EOF = "eof"
# The helper's pipes (plain bytes, not Sync lines): runtime -> helper, helper -> runtime.
HELPER_GO = b"go"
HELPER_OK = "ok"


class Sync:
    """Line messages between the runtime and the init (or an exec'd process): "word text\\n"."""

    __slots__ = ("rfd", "wfd", "_buf")

    def __init__(self, rfd: int, wfd: int):
        self.rfd = rfd
        self.wfd = wfd
        self._buf = b""

    def send(self, word: str, text: str = "") -> None:
        line = (word + (" " + text.replace("\n", " ") if text else "") + "\n").encode()
        os.write(self.wfd, line)

    def recv(self) -> tuple[str, str]:
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 4096)
            if not chunk:
                return EOF, ""
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        word, _, text = line.decode(errors="replace").partition(" ")
        return word, text

    def recv_fds(self, maxfds: int) -> tuple[str, str, list[int]]:
        """recv() for the one message that carries fds (SCM_RIGHTS): rfd is then a unix socket."""
        import _socket

        sock = _socket.socket(fileno=self.rfd)
        try:
            data, anc, _, _ = sock.recvmsg(4096, _socket.CMSG_SPACE(maxfds * 4), _socket.MSG_CMSG_CLOEXEC)
        finally:
            sock.detach()
        fds: list[int] = []
        for level, kind, payload in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True)
                        for i in range(0, len(payload) - len(payload) % 4, 4)]
        self._buf += data
        word, text = self.recv()
        return word, text, fds

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = -1


class InitConfig:
    """Everything the init (or an exec'd process) needs, prepared by the runtime before the
    clone: the process inherits it in memory (oci/init.py runs it). Here, beside the messages,
    so that create's own process never imports init.py: its helper does, while the cgroup
    migration runs (see create._InitJob.prepare)."""

    __slots__ = ("spec", "fifo_fd", "sync", "no_pivot", "no_new_keyring", "preserve_fds",
                 "late_joins", "new_cgroupns", "userns", "runtime_hooks", "state_json", "container_id",
                 "caps", "seccomp_before_caps", "host_pid", "cgroup_dirs", "seccomp_filter", "console_fd", "seccomp_listener_fd",
                 "host_binds")

    def __init__(self):
        self.spec = None
        # O_PATH of exec.fifo, never of the state dir: a directory of the host's would let a
        # process of the container that may open our /proc/PID/fd (CAP_SYS_PTRACE) walk up
        # from it to the host's root while we wait for start (the CVE-2016-9962 class).
        self.fifo_fd = -1
        self.sync = Sync(-1, -1)  # the channel to the runtime: set before the clone
        self.no_pivot = False
        self.no_new_keyring = False
        self.preserve_fds = 0
        self.late_joins: list[tuple[str, str]] = []
        self.new_cgroupns = False
        self.userns = False
        self.runtime_hooks = False
        self.state_json = None  # callable(status) -> bytes
        self.container_id = ""
        self.seccomp_listener_fd = -1  # connected to linux.seccomp.listenerPath by the runtime
        self.console_fd = -1  # connected to --console-socket by the runtime, before clone
        self.caps = None  # rongqi.linux.caps.CapSets or None (keep the runtime's)
        self.seccomp_before_caps = False
        self.cgroup_dirs: dict[str, str] | None = None
        # Compiled by the runtime before clone: libseccomp lives on the host, not in the container.
        self.seccomp_filter = None
        self.host_pid = 0  # our pid as the runtime sees it (told in the "go" message)
        # "go" carries O_PATH fds of bind sources, opened by the host's root (see
        # create._send_go): the sync channel from the runtime is then a unix socket.
        self.host_binds = False
