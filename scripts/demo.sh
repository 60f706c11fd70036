#!/bin/bash
# Install rongqi, then run a container from the built-in busybox rootfs and show that it is
# isolated: its own hostname, PID 1, its own mount table, root inside, a memory limit.
#
#   sudo ./scripts/demo.sh
#
# RONGQI_DEMO_RUNTIME=/usr/sbin/runc runs the same bundle with runc, for comparison.
# RONGQI_DEMO_NO_INSTALL=1 skips the install (the test suite runs the demo that way, with
# RONGQI_VENV naming an environment that has rongqi).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RONGQI_VENV:-/opt/rongqi/venv}"
export RONGQI_VENV="$VENV"

"$REPO/scripts/install.sh"

RUNTIME="${RONGQI_DEMO_RUNTIME:-$VENV/bin/rongqi-oci}"
WORK="$(mktemp -d /tmp/rongqi-demo.XXXXXX)"
ID="rongqi-demo-$$"
STATE="$WORK/state"          # the runtime's --root: all of its state stays in WORK
CGROUP="/rongqi-demo-$$"     # one level, so the runtime removes it whole on delete

cleanup() {
    "$RUNTIME" --root "$STATE" delete --force "$ID" >/dev/null 2>&1 || true
    for d in /sys/fs/cgroup/*"$CGROUP" /sys/fs/cgroup/unified"$CGROUP"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

read -r -d '' SCRIPT <<'SH' || true
echo "== inside: hostname is $(hostname)"
echo "== inside: processes (this shell is PID 1; the host's are invisible)"
ps
echo "== inside: the container's own mount table"
mount
echo "== inside: user"
id
echo "== inside: cgroup (its own cgroup namespace: the container's cgroup is /)"
grep -E 'memory|^0::' /proc/self/cgroup
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
echo "== inside: memory limit $limit bytes ($((limit / 1048576)) MiB, set by config.json)"
SH

"$VENV/bin/python3" - "$WORK/bundle" "$CGROUP" "$SCRIPT" <<'PY'
import sys
from rongqi.image.busybox import make_bundle

bundle, cgroup, script = sys.argv[1:4]
make_bundle(
    bundle,
    ["/bin/sh", "/demo.sh"],
    hostname="rongqi-demo",
    cgroups_path=cgroup,
    namespaces=["pid", "network", "ipc", "uts", "mount", "cgroup"],
    mounts=[{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}],
    resources={
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 64 * 1024 * 1024},
    },
)
with open(f"{bundle}/rootfs/demo.sh", "w") as f:
    f.write(script + "\n")
PY

echo "demo: host: hostname is $(hostname), $(ls -d /proc/[0-9]* | wc -l) processes, $(wc -l </proc/self/mountinfo) mounts"
echo "demo: $RUNTIME run --bundle $WORK/bundle $ID"
cd "$WORK/bundle"
rc=0
"$RUNTIME" --root "$STATE" run --keep "$ID" </dev/null || rc=$?
echo "demo: the container exited with $rc; its state now:"
"$RUNTIME" --root "$STATE" state "$ID" || true
echo
echo "demo: $RUNTIME delete $ID"
"$RUNTIME" --root "$STATE" delete "$ID"
exit "$rc"
