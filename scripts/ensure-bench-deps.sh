#!/usr/bin/env bash
# The benchmark's Node reference dependencies (bench/node-reference), installed like
# tests/node's. stdout: the absolute path of the node binary; progress on stderr.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/ensure-node-deps.sh" bench/node-reference
