#!/usr/bin/env bash
# Install a Node package directory's npm dependencies (`npm ci`) when node_modules is missing
# or does not match package-lock.json (a stamp holds the lockfile's hash from the last
# successful install). The directory is the first argument, relative to the repository
# (default tests/node; the benchmark passes bench/node-reference).
# Uses the Node from scripts/ensure-node.sh: its directory goes first on PATH, so npm and any
# npm script run under Node >= 22 (ai@7 requires it).
#
# stdout: the absolute path of that node binary (same as ensure-node.sh); progress on stderr.
set -euo pipefail

log() { printf 'ensure-node-deps: %s\n' "$*" >&2; }
die() { printf 'ensure-node-deps: ERROR: %s\n' "$*" >&2; exit 1; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PKG_DIR="$REPO_ROOT/${1:-tests/node}"
LOCK="$PKG_DIR/package-lock.json"
STAMP="$PKG_DIR/node_modules/.aisdk-bridge-deps-stamp"

NODE="$("$REPO_ROOT/scripts/ensure-node.sh")" || die "no usable Node (see above)"
export PATH="$(dirname "$NODE"):$PATH"

[[ -f "$LOCK" ]] || die "$LOCK is missing"

lock_hash() {
    # Hash package.json too: npm ci refuses a lockfile out of sync with it, which we want to see.
    cat "$LOCK" "$PKG_DIR/package.json" | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [[ -d "$PKG_DIR/node_modules" && -f "$STAMP" && "$(cat "$STAMP")" == "$(lock_hash)" ]]
}

if up_to_date; then
    echo "$NODE"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is not on PATH (install Debian's 'npm' package)"

mkdir -p "$REPO_ROOT/.tools"
exec 9>"$REPO_ROOT/.tools/node-deps-$(basename "$PKG_DIR").lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if up_to_date; then   # installed by another process while we waited
    echo "$NODE"
    exit 0
fi

start=$(date +%s)
log "npm ci in $PKG_DIR (node $("$NODE" --version), npm $(npm --version 2>/dev/null)) ..."
(cd "$PKG_DIR" && npm ci --no-audit --no-fund --loglevel=warn >&2) || die "npm ci failed in $PKG_DIR"
lock_hash >"$STAMP"
log "installed in $(( $(date +%s) - start ))s"
echo "$NODE"
