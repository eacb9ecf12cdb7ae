#!/usr/bin/env bash
# Sets up what is missing, builds, and serves Herald on the in-memory broker:
# http://127.0.0.1:3000/sse-demo (change with LEPTOS_SITE_ADDR=host:port).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$HERALD_ROOT/scripts/setup.sh"
cd "$HERALD_ROOT"
# The demo publishes from the browser without a token, which only dev mode
# allows. Run target/release/herald-server yourself for production settings.
export HERALD_DEV="${HERALD_DEV:-1}"
log "building and serving (release, dev mode) on http://${LEPTOS_SITE_ADDR:-127.0.0.1:3000}/sse-demo"
exec cargo leptos serve --release "$@"
