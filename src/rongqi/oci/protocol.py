"""The messages between the runtime, its helper and the container's init: one home for the
words, the order they come in, and the line channel (Sync) that carries them.

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

An exec'd process (oci/exec.py) gets GO PID and answers ERROR TEXT or EOF at execve. EOF is
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
