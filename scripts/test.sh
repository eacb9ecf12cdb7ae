#!/usr/bin/env bash
# Runs every check and test Herald has, after setting up what is missing:
# formatting, clippy (server + both sides of the app), the workspace's unit,
# integration and doc tests, the client runtime's browser tests in headless
# Chromium, the wasm32 build, the fuzz targets' build, an app outside the
# workspace built to WASM, and the Playwright suite against a freshly built
# release server, which Playwright starts and always stops.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$HERALD_ROOT/scripts/setup.sh"
cd "$HERALD_ROOT"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (native: server, ssr app, runtime, shared)"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo clippy (wasm32: hydrate app, runtime)"
cargo clippy -p herald-app -p herald-client --features herald-app/hydrate \
  --target wasm32-unknown-unknown --all-targets -- -D warnings

log "cargo test --workspace"
cargo test --workspace 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test.log"

log "client runtime in headless Chromium (wasm-bindgen-test against real servers)"
# One server with heartbeats off (most tests), one with them on every 2 s
# (the client follows the interval a server announces).
browser_addr="${HERALD_BROWSER_TEST_ADDR:-127.0.0.1:3217}"
beat_addr="${HERALD_BROWSER_BEAT_ADDR:-127.0.0.1:3218}"
"$CARGO_TARGET_DIR/debug/herald-server" --addr "$browser_addr" --heartbeat-secs 0 --dev --job-step-ms 100 \
  >"$CARGO_TARGET_DIR/browser-test-server.log" 2>&1 &
server_pid=$!
"$CARGO_TARGET_DIR/debug/herald-server" --addr "$beat_addr" --heartbeat-secs 2 --dev \
  >"$CARGO_TARGET_DIR/browser-beat-server.log" 2>&1 &
beat_pid=$!
trap 'kill "$server_pid" "$beat_pid" 2>/dev/null || true' EXIT
for addr in "$browser_addr" "$beat_addr"; do
  for _ in $(seq 100); do
    curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
# The runner's timeout is for the whole suite (20 s by default); it takes
# about 30 s.
HERALD_TEST_URL="http://$browser_addr" HERALD_TEST_BEAT_URL="http://$beat_addr" \
  CHROMEDRIVER="$(command -v chromedriver)" WASM_BINDGEN_TEST_TIMEOUT=300 \
  cargo test -p herald-client --target wasm32-unknown-unknown --tests 2>&1 | tee -a "$CARGO_TARGET_DIR/cargo-test.log"
kill "$server_pid" "$beat_pid" 2>/dev/null || true

log "herald-shared builds for wasm32"
cargo build -q -p herald-shared --target wasm32-unknown-unknown

log "fuzz targets build (run them with scripts/fuzz.sh)"
cargo check -q --manifest-path shared/fuzz/Cargo.toml

log "release build (server + hydrate WASM through wasm-opt)"
cargo leptos build --release

log "an app outside the workspace (its own lock: Leptos 0.8.22), built to WASM"
cargo build -q --locked --manifest-path examples/outside-app/Cargo.toml --target wasm32-unknown-unknown
outside_app="$CARGO_TARGET_DIR/outside-app"
wasm-bindgen --target web --no-typescript --out-dir "$outside_app" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/debug/herald_outside_app.wasm"
cp examples/outside-app/index.html "$outside_app/"

log "end-to-end: Playwright with Debian chromium"
(cd end2end && HERALD_SERVER_BIN="$CARGO_TARGET_DIR/release/herald-server" \
  HERALD_OUTSIDE_APP_DIR="$outside_app" npx playwright test)

log "summary"
grep -E '^test result:' "$CARGO_TARGET_DIR/cargo-test.log" | awk '
  { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
  END { printf "cargo: %d passed, %d failed\n", p, f }'
