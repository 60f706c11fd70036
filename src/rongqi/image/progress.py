"""Download progress: rich bars on a terminal (one per layer and a total), plain lines otherwise.

The registry client only calls start/advance/finish; how it is shown is chosen here.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class Progress:
    """Silent progress (`-q`, the Python API); the base of the visible kinds."""

    def start(self, key: str, label: str, total: int) -> None: ...
    def advance(self, key: str, n: int) -> None: ...
    def finish(self, key: str, status: str) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineProgress(Progress):
    """One line per finished step, for logs and pipes."""

    def __init__(self, out: TextIO = sys.stdout):
        self.out = out
        self.lock = threading.Lock()
        self.labels: dict[str, str] = {}

    def start(self, key: str, label: str, total: int) -> None:
        self.labels[key] = label

    def finish(self, key: str, status: str) -> None:
        with self.lock:
            print(f"{self.labels.get(key, key)}: {status}", file=self.out, flush=True)

    def message(self, text: str) -> None:
        with self.lock:
            print(text, file=self.out, flush=True)


class RichProgress(Progress):
    """rich bars: a line per blob and a total line."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress as RP, TextColumn,
                                   TransferSpeedColumn)
        self.console = Console(stderr=False)
        self.rp = RP(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                     TransferSpeedColumn(), console=self.console, transient=False)
        self.tasks: dict[str, object] = {}
        self.labels: dict[str, str] = {}
        self.total_bytes = 0
        self.total = self.rp.add_task("total", total=0)
        self.lock = threading.Lock()
        self.rp.start()

    def start(self, key: str, label: str, total: int) -> None:
        with self.lock:
            self.tasks[key] = self.rp.add_task(label, total=total)
            self.labels[key] = label
            self.total_bytes += total
            self.rp.update(self.total, total=self.total_bytes)  # type: ignore[arg-type]

    def advance(self, key: str, n: int) -> None:
        tid = self.tasks.get(key)
        if tid is not None:
            self.rp.advance(tid, n)  # type: ignore[arg-type]
            self.rp.advance(self.total, n)  # type: ignore[arg-type]

    def finish(self, key: str, status: str) -> None:
        tid = self.tasks.get(key)
        if tid is not None:
            self.rp.update(tid, description=f"{self.labels[key]} {status}")  # type: ignore[arg-type]

    def message(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        self.rp.stop()


def for_terminal(quiet: bool, out: TextIO | None = None) -> Progress:
    # sys.stdout as it is now, not as it was at import (a caller may have replaced it).
    out = sys.stdout if out is None else out
    if quiet:
        return Progress()
    if out.isatty():
        return RichProgress()
    return LineProgress(out)
