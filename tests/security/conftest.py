"""The escape suite's fixtures (defined in escape_probe.py, which the tests also import).

tests/conftest.py already provides oci_binary, the leak checks and the root marker's skip.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from escape_probe import *
