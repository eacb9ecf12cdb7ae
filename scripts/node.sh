#!/usr/bin/env bash
# One Herald node of a cluster sharing a Redis: ./scripts/node.sh <port>
# Builds the release server if needed (once for all nodes), then serves
# http://127.0.0.1:<port>/sse-demo on the Redis backplane at
# $HERALD_REDIS_URL (default redis://127.0.0.1:6379), in dev mode like run.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
port="${1:?usage: scripts/node.sh <port>}"
"$HERALD_ROOT/scripts/setup.sh"
cd "$HERALD_ROOT"
# cargo-leptos rebuilds only what changed; with several nodes starting at
# once, cargo's lock on the build directory makes them take turns.
cargo leptos build --release
export HERALD_REDIS_URL="${HERALD_REDIS_URL:-redis://127.0.0.1:6379}"
export HERALD_DEV="${HERALD_DEV:-1}"
export LEPTOS_SITE_ADDR="127.0.0.1:$port"
log "node on http://$LEPTOS_SITE_ADDR/sse-demo, backplane $HERALD_REDIS_URL"
exec "$CARGO_TARGET_DIR/release/herald-server"
