"""Signal names and numbers as the kernel and runc know them: "KILL", "SIGKILL", "9",
"RTMIN+3" -> the number (rongqi-oci kill, the engine's stop and kill signals).
"""

from __future__ import annotations

from rongqi.errors import UsageError

SIGKILL = 9
SIGTERM = 15


def parse_signal(text: str) -> int:
    """"KILL", "SIGKILL", "9" -> 9 (runc accepts all three); "0" checks that the init lives, as kill(2)."""
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 <= n < 65:
            return n
        raise UsageError(f"invalid signal: {text}")
    if t.startswith("SIG"):
        t = t[3:]
    import _signal

    if t.startswith("RTMIN") or t.startswith("RTMAX"):
        base = _signal.SIGRTMIN if t.startswith("RTMIN") else _signal.SIGRTMAX
        off = t[5:]
        try:
            n = base + int(off) if off else base
        except ValueError:
            raise UsageError(f"unknown signal: {text}") from None
        return n
    v = getattr(_signal, "SIG" + t, None)
    if not isinstance(v, int) or t in ("_DFL", "_IGN"):
        raise UsageError(f"unknown signal: {text}")
    return v
