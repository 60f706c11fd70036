"""The suite's own layout: test modules have names unique across tests/ (its directories are
not packages, so pytest imports each module by its basename: a second test_x.py anywhere stops
the collection of the whole suite with "import file mismatch", which running one directory
alone never shows)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique_across_the_suite() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        where[path.name].append(str(path.relative_to(TESTS)))
    assert {n: p for n, p in where.items() if len(p) > 1} == {}
