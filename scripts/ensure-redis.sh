#!/bin/sh
# Print the path of a redis-server binary, installing one with apt-get when none is found.
# Used before the tests (the Redis store tests need a real server; they never skip).
set -eu

find_redis() {
    command -v redis-server 2>/dev/null && return 0
    if [ -n "${REDIS_SERVER_BIN:-}" ] && [ -x "$REDIS_SERVER_BIN" ]; then
        echo "$REDIS_SERVER_BIN"
        return 0
    fi
    return 1
}

if find_redis; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-redis: redis-server not found and cannot install it here (needs root and" \
         "apt-get). Install Redis >= 7 or set REDIS_SERVER_BIN." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Install from the current package lists; refresh them only when that fails (e.g. a fresh
# container has none).
if ! apt-get install -y -q redis-server >&2; then
    apt-get update -q >&2
    apt-get install -y -q redis-server >&2
fi

if ! find_redis; then
    echo "ensure-redis: installed redis-server but it is not on PATH" >&2
    exit 1
fi
