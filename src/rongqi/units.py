"""go-units' words for sizes and durations (docker/go-units, which podman and dockerd print
with): one home for every face and the engine's stats."""

from __future__ import annotations

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(n: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    size, i = float(n), 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(n: float, precision: int = 4, space: bool = False) -> str:
    """Decimal units with `precision` significant digits (Go's %g, as Python's): HumanSize
    is precision 4 without a space ("2.141MB", "0B"); podman's tables print
    HumanSizeWithPrecision(3) with one ("11.4 kB")."""
    size, unit = _scaled(n, 1000.0, _DECIMAL)
    return f"{size:.{precision}g}{' ' if space else ''}{unit}"


def bytes_size(n: float) -> str:
    """BytesSize: binary units, 4 digits ("516KiB", "23.54GiB")."""
    size, unit = _scaled(n, 1024.0, _BINARY)
    return f"{size:.4g}{unit}"


def human_duration(seconds: float) -> str:
    """HumanDuration: "Less than a second", "1 second", "5 minutes", "About an hour",
    "3 days", "2 weeks", "4 months", "2 years"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go's math.Round: halves away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
