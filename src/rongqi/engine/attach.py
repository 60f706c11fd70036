"""The attach protocol between the monitor and its clients (run in the foreground, start -a,
attach): frames as Docker's multiplexed stream, and the unix-socket paths that carry them.

A frame is an 8-byte header `[stream, 0, 0, 0, size (4 bytes, big endian)]` then size bytes.
Monitor to client: STDOUT, STDERR, EXIT (payload: the decimal exit code; the monitor then
closes). Client to monitor: STDIN (size 0: close the container's stdin), RESIZE ("ROWS COLS").
"""

from __future__ import annotations

import os

STDIN, STDOUT, STDERR, EXIT, RESIZE = 0, 1, 2, 3, 4
HEADER = 8
MAX_FRAME = 1 << 20


def frame(stream: int, data: bytes = b"") -> bytes:
    n = len(data)
    return bytes((stream, 0, 0, 0, (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)) + data


class FrameReader:
    """Reassembles frames from what a stream socket delivers, in any chunking."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= HEADER:
            n = int.from_bytes(self.buf[4:8], "big")
            if n > MAX_FRAME:
                raise ValueError(f"attach: frame of {n} bytes is too large")
            if len(self.buf) < HEADER + n:
                break
            out.append((self.buf[0], bytes(self.buf[HEADER:HEADER + n])))
            del self.buf[:HEADER + n]
        return out


def short_path(dir_fd: int, name: str) -> str:
    """A path to dir/name short enough for sun_path (108 bytes), whatever dir's length."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def connect(run_dir: str, name: str = "attach"):
    """Connect to the monitor's socket in run_dir; raise OSError if nobody listens."""
    import socket

    dfd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.connect(short_path(dfd, name))
        except BaseException:
            s.close()
            raise
    finally:
        os.close(dfd)
    return s


def parse_detach_keys(spec: str | None) -> bytes:
    """podman's --detach-keys: "ctrl-p,ctrl-q" (the default), "a,b", "" (no detaching)."""
    if spec is None:
        spec = "ctrl-p,ctrl-q"
    if spec == "":
        return b""
    out = bytearray()
    for key in spec.split(","):
        k = key.strip()
        if len(k) == 1:
            out.append(ord(k))
            continue
        if k.startswith("ctrl-") and len(k) == 6:
            c = k[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            special = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if c in special:
                out.append(special[c])
                continue
        raise ValueError(f'invalid detach keys {spec!r}: "{k}" is not a key '
                         '(use a letter or ctrl-<value>, comma separated)')
    return bytes(out)


class DetachMatcher:
    """Watches stdin bytes for the detach sequence; hands back what is to be forwarded."""

    __slots__ = ("keys", "held")

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to send on, True once the whole sequence was typed)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for i, b in enumerate(data):
            cand = self.held + bytes((b,))
            if self.keys.startswith(cand):
                if cand == self.keys:
                    self.held = b""
                    return bytes(out), True
                self.held = cand
                continue
            # Not the sequence after all: what was held back goes through.
            out += self.held
            self.held = b""
            if self.keys.startswith(bytes((b,))):
                self.held = bytes((b,))
            else:
                out.append(b)
        return bytes(out), False
