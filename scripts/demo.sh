#!/usr/bin/env bash
# `make demo`: the bridge and the Next.js demo together, one command, one URL.
# Usage: scripts/demo.sh HOST BRIDGE_PORT DEMO_PORT
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
host="${1:-127.0.0.1}"
bridge_port="${2:-8000}"
demo_port="${3:-3000}"
bridge_url="http://${host}:${bridge_port}"

node_bin="$(bash "$root/scripts/ensure-node.sh")"
export PATH="$(dirname "$node_bin"):$PATH"

demo="$root/frontend-demo"
stamp="$demo/.next/.built-for"
wanted="$bridge_url $(sha256sum "$demo/package-lock.json" | cut -c1-16)"
if [ ! -d "$demo/node_modules" ] || [ "$demo/package-lock.json" -nt "$demo/node_modules" ]; then
  echo "installing the demo's packages..." >&2
  (cd "$demo" && npm ci --no-audit --no-fund >&2)
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ] \
   || [ -n "$(find "$demo/app" "$demo/components" "$demo/lib" "$demo/transport/src" \
                   "$demo/next.config.ts" "$demo/tsconfig.json" -newer "$stamp" 2>/dev/null | head -1)" ]; then
  echo "building the demo for $bridge_url..." >&2
  # The resilient transport (the "auto" choice) is imported from its tsc output.
  (cd "$demo" && node_modules/.bin/tsc -p transport/tsconfig.json >&2)
  (cd "$demo" && BRIDGE_URL="$bridge_url" NEXT_DIST_DIR=.next node_modules/.bin/next build >&2)
  echo "$wanted" > "$stamp"
fi

# The demo shows the example tools (weather, approvals, a browser tool) unless told otherwise.
export BRIDGE_TOOLS="${BRIDGE_TOOLS:-bridge.tools.examples}"
# The page's WebSocket (the "ws" and "auto" transports) reaches the bridge through the
# Next.js proxy, which rewrites Host to the bridge's: the bridge's Origin check then needs the
# page's origin listed. Added to any BRIDGE_CORS_ORIGINS of the environment.
demo_origins="http://${host}:${demo_port}"
case "$host" in
  127.0.0.1|localhost|0.0.0.0|::) demo_origins="http://127.0.0.1:${demo_port},http://localhost:${demo_port}" ;;
esac
export BRIDGE_CORS_ORIGINS="${BRIDGE_CORS_ORIGINS:+$BRIDGE_CORS_ORIGINS,}${demo_origins}"
"$root/.venv/bin/python" -m bridge --host "$host" --port "$bridge_port" &
bridge_pid=$!
(cd "$demo" && BRIDGE_URL="$bridge_url" NEXT_DIST_DIR=.next \
   node_modules/.bin/next start --hostname "$host" --port "$demo_port") &
demo_pid=$!
trap 'kill "$bridge_pid" "$demo_pid" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  if curl -fsS "http://${host}:${demo_port}/" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
echo
echo "  aisdk-bridge demo:  http://${host}:${demo_port}   (bridge: ${bridge_url})"
echo "  transports:         http://${host}:${demo_port}/?transport=sse | ws | auto  (or the switch in the header)"
echo "  Ctrl-C stops both."
echo
wait -n "$bridge_pid" "$demo_pid"
