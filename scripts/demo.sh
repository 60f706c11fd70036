#!/bin/bash
# Install rongqi, then `rongqi run` a container from the built-in busybox image (no registry)
# and show that it is isolated: its own hostname, PID 1, its own mount table, root inside, a
# memory limit.
#
#   sudo ./scripts/demo.sh
#
# RONGQI_DEMO_RUNTIME=/usr/sbin/runc runs the same container with runc (`rongqi --runtime`).
# RONGQI_DEMO_NO_INSTALL=1 skips the install (the test suite runs the demo that way, with
# RONGQI_VENV naming an environment that has rongqi). RONGQI_ROOT and RONGQI_RUNROOT move the
# engine's storage (default /var/lib/rongqi and /run/rongqi/engine).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RONGQI_VENV:-/opt/rongqi/venv}"
export RONGQI_VENV="$VENV"

if [ "${RONGQI_DEMO_NO_INSTALL:-}" != 1 ]; then
    "$REPO/scripts/install.sh"
fi

RONGQI=("$VENV/bin/rongqi")
[ -n "${RONGQI_ROOT:-}" ] && RONGQI+=(--root "$RONGQI_ROOT")
[ -n "${RONGQI_RUNROOT:-}" ] && RONGQI+=(--runroot "$RONGQI_RUNROOT")
[ -n "${RONGQI_DEMO_RUNTIME:-}" ] && RONGQI+=(--runtime "$RONGQI_DEMO_RUNTIME")
NAME="rongqi-demo-$$"

read -r -d '' SCRIPT <<'SH' || true
echo "== inside: hostname is $(hostname)"
echo "== inside: processes (this shell is PID 1; the host's are invisible)"
ps
echo "== inside: the container's own mount table (the image's overlay at /)"
mount
echo "== inside: user"
id
echo "== inside: cgroup"
grep -E 'memory|^0::' /proc/self/cgroup
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
echo "== inside: memory limit $limit bytes ($((limit / 1048576)) MiB, from --memory 64m)"
SH

echo "demo: host: hostname is $(hostname), $(ls -d /proc/[0-9]* | wc -l) processes, $(wc -l </proc/self/mountinfo) mounts"
echo "demo: rongqi run --rm --name $NAME --hostname rongqi-demo --memory 64m busybox sh -c SCRIPT"
rc=0
"${RONGQI[@]}" run --rm --name "$NAME" --hostname rongqi-demo --memory 64m busybox sh -c "$SCRIPT" \
    </dev/null || rc=$?
echo "demo: the container exited with $rc and was removed (--rm):"
"${RONGQI[@]}" ps -a --filter "name=^$NAME\$" --format '{{.Names}}' | grep -q . \
    && echo "demo: error: $NAME is still there" && rc=1
"${RONGQI[@]}" ps -a --filter "name=^$NAME\$" | head -1
exit "$rc"
