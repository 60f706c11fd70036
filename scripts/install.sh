#!/bin/bash
# Install rongqi on a fresh Debian 12 or Ubuntu 22.04+ machine, as root; safe to run again.
#
#   sudo ./scripts/install.sh
#
# Environment:
#   RONGQI_VENV     the virtualenv to install into       (default /opt/rongqi/venv)
#   RONGQI_BIN_DIR  where rongqi and rongqi-oci are linked (default /usr/local/bin)
#   RONGQI_SKIP_APT=1  do not touch system packages (they must already be there)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RONGQI_VENV:-/opt/rongqi/venv}"
BIN_DIR="${RONGQI_BIN_DIR:-/usr/local/bin}"

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0): containers need root here"
[ -f "$REPO/pyproject.toml" ] || die "$REPO is not a rongqi checkout"
[ "$(uname -s)" = Linux ] || die "rongqi runs on Linux only"

# --- system packages ------------------------------------------------------------------------
# Required: what the runtime, the demo and the core tests need.
REQUIRED=(python3 python3-venv busybox-static runc containerd iproute2 iptables procps
          libseccomp2 ca-certificates util-linux)
# Optional: client tests and benchmarks skip (saying why) without them; Ubuntu ships some of
# them in "universe", which may be disabled.
OPTIONAL=(crun buildah skopeo umoci docker-registry hyperfine podman netavark aardvark-dns catatonit slirp4netns
          passt  # pasta: rootless networking (--network pasta), tests/engine/test_networks_rootless.py
          uidmap docker.io docker-compose gcc libc6-dev apache2-utils debootstrap
          zsh)  # zsh: tests/api/test_reference.py completes with `rongqi completion zsh`

missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || printf '%s\n' "$p"
    done
}

APT_UPDATED=
apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

if [ "${RONGQI_SKIP_APT:-}" = 1 ]; then
    say "skipping apt (RONGQI_SKIP_APT=1)"
else
    command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian and Ubuntu"
    mapfile -t need < <(missing "${REQUIRED[@]}")
    if [ "${#need[@]}" -gt 0 ]; then
        say "installing system packages: ${need[*]}"
        apt_install "${need[@]}"
    else
        say "system packages already installed: ${REQUIRED[*]}"
    fi
    mapfile -t need < <(missing "${OPTIONAL[@]}")
    for p in "${need[@]}"; do
        say "installing optional package: $p"
        apt_install "$p" || say "warning: could not install $p; tests and benchmarks that need it will be skipped"
    done
fi

# --- Python >= 3.11 (Ubuntu 22.04's python3 is 3.10) ----------------------------------------
PYTHON=
# Debian's own interpreter first (the one apt just installed), then whatever PATH offers.
for cand in /usr/bin/python3 /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 python3; do
    if command -v "$cand" >/dev/null &&
        "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PYTHON="$(command -v "$cand")"
        break
    fi
done
if [ -z "$PYTHON" ]; then
    [ "${RONGQI_SKIP_APT:-}" = 1 ] && die "Python >= 3.11 is needed (apt-get install python3.11 python3.11-venv)"
    say "python3 is older than 3.11: installing python3.11"
    apt_install python3.11 python3.11-venv
    PYTHON="$(command -v python3.11)"
fi
say "using $PYTHON ($("$PYTHON" -c 'import platform; print(platform.python_version())'))"

# --- the virtualenv ---------------------------------------------------------------------------
if [ -x "$VENV/bin/python3" ] && "$VENV/bin/python3" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "virtualenv exists: $VENV"
else
    say "creating virtualenv $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi

# Build from a clean copy of the working tree: a stale build/ directory in the checkout would
# otherwise put deleted modules into the wheel.
STAGE="$(mktemp -d /tmp/rongqi-install.XXXXXX)"
trap 'rm -rf "$STAGE"' EXIT
tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./.pytest_cache -cf - . |
    tar -C "$STAGE" -xf -

say "pip install $REPO[test] into $VENV"
PIP=("$VENV/bin/python3" -m pip --disable-pip-version-check --quiet)
pip_step() {
    # The build's own chatter goes to a log, shown only when the step fails.
    "${PIP[@]}" "$@" >"$STAGE/pip.log" 2>&1 || { cat "$STAGE/pip.log" >&2; die "pip $* failed"; }
}
pip_step wheel --no-deps --wheel-dir "$STAGE/wheels" "$STAGE"
WHEEL="$(ls "$STAGE"/wheels/rongqi-*.whl)"
pip_step install "$WHEEL[test]"                        # dependencies (pinned in pyproject.toml)
pip_step install --no-deps --force-reinstall "$WHEEL"  # this checkout's code, even at the same version
say "installed $(basename "$WHEEL")"

# --- fast launchers ------------------------------------------------------------------------------
# pip rewrites a launcher's shebang to the venv's python and drops its flags. -I -S skip
# site-packages processing (several ms per call); bin/rongqi and bin/rongqi-oci find the
# package themselves. Both name $VENV/bin/python3, the path the exe guard below protects.
OCI="$VENV/bin/rongqi-oci"
for launcher in "$OCI" "$VENV/bin/rongqi"; do
    [ -f "$launcher" ] || die "$launcher was not installed"
    sed -i "1s|.*|#!$VENV/bin/python3 -IS|" "$launcher"
    chmod 0755 "$launcher"
    if ! "$launcher" --version >/dev/null 2>&1; then
        # Without site (-S) a venv's sys.prefix is the base interpreter's, so a launcher that
        # looks for site-packages under sys.prefix misses the venv; -I alone still works.
        say "warning: $launcher cannot find the package under -IS; falling back to -I (slower start)"
        sed -i "1s|.*|#!$VENV/bin/python3 -I|" "$launcher"
    fi
    say "set $launcher shebang: $(head -n1 "$launcher")"
    "$launcher" --version >/dev/null || die "$launcher --version failed"
done

# --- the runtime's executable, out of its containers' reach (CVE-2019-5736 class) -------------
# Every runtime process that enters a container runs the interpreter its launcher started. A
# read-only bind of the interpreter laid over $VENV/bin/python3 (the symlink the launchers'
# shebangs name) makes it one no container can open for writing, with no re-exec on each call
# (docs/security.md). The marker lets the runtime lay it again when it finds it gone (a reboot).
# Run again after the system's Python was upgraded: the bind is then renewed.
touch "$VENV/.rongqi-exe-guard"
if "$VENV/bin/python3" -I -c 'import sys; from rongqi.linux import exeguard
exeguard.protect_launcher(sys.argv[1], interpreter=sys.argv[2])' "$VENV/bin/python3" "$(readlink -f "$PYTHON")" &&
    "$VENV/bin/python3" -I -c 'import sys; from rongqi.linux import exeguard; sys.exit(not exeguard.self_protected())'; then
    say "protected $VENV/bin/python3: a read-only bind of the interpreter lies over it"
else
    # No mount possible here (inside a container, say): still safe, each create/exec then
    # re-execs its helper through a protected copy, at the price of an interpreter start.
    say "warning: cannot lay a read-only bind over $VENV/bin/python3; the runtime will re-exec (slower)"
fi

mkdir -p "$BIN_DIR"
for tool in rongqi-oci rongqi; do
    if [ -e "$VENV/bin/$tool" ]; then
        ln -sfn "$VENV/bin/$tool" "$BIN_DIR/$tool"
        say "linked $BIN_DIR/$tool -> $VENV/bin/$tool"
    else
        say "warning: $VENV/bin/$tool not installed; not linked"
    fi
done

say "done: $("$OCI" --version | head -n1), venv $VENV"
