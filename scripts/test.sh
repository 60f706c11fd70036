#!/bin/bash
# Install rongqi (scripts/install.sh) and run the whole test suite with the venv's pytest.
#
#   sudo ./scripts/test.sh [pytest args...]     e.g. sudo ./scripts/test.sh -k containerd
#
# The suite tests the installed runtime ($RONGQI_VENV/bin/rongqi-oci), as users get it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RONGQI_VENV:-/opt/rongqi/venv}"
export RONGQI_VENV="$VENV"

"$REPO/scripts/install.sh"

export RONGQI_OCI="${RONGQI_OCI:-$VENV/bin/rongqi-oci}"
cd "$REPO"
echo "test.sh: $VENV/bin/python3 -m pytest -q --durations=15 $* (RONGQI_OCI=$RONGQI_OCI)"
rc=0
"$VENV/bin/python3" -m pytest -q --durations=15 "$@" || rc=$?
case "$rc" in
    0) echo "test.sh: all tests passed" ;;
    5) echo "test.sh: error: pytest collected no tests (exit 5): that is a failure, not a pass" >&2 ;;
    *) echo "test.sh: pytest exited with $rc" >&2 ;;
esac
exit "$rc"
