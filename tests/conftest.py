"""Suite-wide fixtures: leak checks around every test, root skips, and runtime helpers.

Everything lives in tests/support/plugin.py (oci_binary, runtime_root, bundle_factory,
unique_id, the leak check); this file only puts tests/ on sys.path and imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support.plugin import *  # noqa: E402,F401,F403
