#!/usr/bin/env bash
# `make dist`: the installable artifacts, in DIST_DIR (default ./dist):
#   aisdk_bridge-<version>.tar.gz and aisdk_bridge-<version>-py3-none-any.whl (python -m build:
#   the sdist, then the wheel built from it), and
#   aisdk-bridge-resilient-transport-<version>.tgz (npm pack of frontend-demo/transport).
# Usage: scripts/dist.sh [PYTHON]   (PYTHON: an interpreter with `build`, default .venv's)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-$root/.venv/bin/python}"
out="${DIST_DIR:-$root/dist}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The isolated build environment gets the locked setuptools (the lock is a constraints file).
echo "dist: the Python sdist and wheel..." >&2
PIP_CONSTRAINT="$root/requirements.lock" "$python" -m build --outdir "$out" "$root" >&2
rm -rf "$root/build"  # setuptools' scratch directory

node_bin="$(bash "$root/scripts/ensure-node.sh")"
export PATH="$(dirname "$node_bin"):$PATH"
demo="$root/frontend-demo"
if [ ! -d "$demo/node_modules" ] || [ "$demo/package-lock.json" -nt "$demo/node_modules" ]; then
  echo "dist: installing the demo's packages (TypeScript and the ai types)..." >&2
  (cd "$demo" && npm ci --no-audit --no-fund >&2)
fi
echo "dist: the resilient transport's npm package..." >&2
# `npm pack` runs the package's `prepack` script: tsc into dist/ (types included).
(cd "$demo/transport" && npm pack --pack-destination "$out" --silent >&2)
ls -1 "$out" >&2
