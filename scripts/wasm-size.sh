#!/usr/bin/env bash
# What the client runtime costs an app's WASM: ./scripts/wasm-size.sh
# Builds two minimal Leptos apps (client/runtime/examples/size_*.rs: one
# without herald-client, one reading a stream through it) with the demo's
# size profile, runs wasm-bindgen and wasm-opt -Oz on each as cargo-leptos
# does for the demo, and prints raw and gzipped sizes, the difference, and
# the demo's own WASM when it has been built (`./scripts/run.sh` or
# test.sh). Not part of test.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$HERALD_ROOT"

cargo build -q -p herald-client --examples --target wasm32-unknown-unknown --profile wasm-release
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Prints "raw gzipped" byte counts of a finished .wasm file.
sizes() { echo "$(wc -c <"$1") $(gzip -9 -c "$1" | wc -c)"; }

declare -A raw gz
for app in size_baseline size_with_client; do
  wasm-bindgen --target web --no-typescript --out-dir "$out/$app" \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/examples/$app.wasm"
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals \
    "$out/$app/${app}_bg.wasm" -o "$out/$app.wasm"
  read -r raw[$app] gz[$app] < <(sizes "$out/$app.wasm")
done

kib() { awk -v b="$1" 'BEGIN { printf "%7.1f KiB", b / 1024 }'; }
printf '%-38s %s raw  %s gzipped\n' \
  "minimal Leptos app" "$(kib "${raw[size_baseline]}")" "$(kib "${gz[size_baseline]}")" \
  "the same app + herald-client" "$(kib "${raw[size_with_client]}")" "$(kib "${gz[size_with_client]}")" \
  "herald-client's share" \
  "$(kib $((raw[size_with_client] - raw[size_baseline])))" \
  "$(kib $((gz[size_with_client] - gz[size_baseline])))"
demo="$LEPTOS_SITE_ROOT/pkg/herald.wasm"
if [ -f "$demo" ]; then
  read -r demo_raw demo_gz < <(sizes "$demo")
  printf '%-38s %s raw  %s gzipped\n' "the demo (/sse-demo)" "$(kib "$demo_raw")" "$(kib "$demo_gz")"
fi
