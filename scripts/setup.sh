#!/usr/bin/env bash
# Installs everything Herald needs, skipping what is already there at the
# right version: a warm machine pays a few seconds, a fresh one ~30 minutes
# (cargo-leptos alone takes ~21 minutes to compile on 2 cores).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$HERALD_ROOT"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: the browser for tests, its driver, and Redis.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# 2. The WASM target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 3. cargo-leptos, the exact version that builds on rustc 1.95. With
#    `no_downloads` it takes wasm-bindgen and wasm-opt from PATH.
if ! cargo leptos --version 2>/dev/null | grep -q " ${CARGO_LEPTOS_VERSION}\$"; then
  log "cargo: installing cargo-leptos ${CARGO_LEPTOS_VERSION} (slow: ~21 min cold)"
  cargo install cargo-leptos --version "=${CARGO_LEPTOS_VERSION}" --locked --features no_downloads
fi

# 4. wasm-bindgen CLI: must equal the wasm-bindgen crate in Cargo.lock.
#    Installed without --locked: its own lock names a crate the registry lacks.
want_wb=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have_wb=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have_wb" != "$want_wb" ]; then
  log "cargo: installing wasm-bindgen-cli ${want_wb} (had: ${have_wb:-none})"
  cargo install wasm-bindgen-cli --version "=${want_wb}" --force
fi

# 5. wasm-opt from npm's binaryen. Debian's binaryen 108 builds a release
#    that never hydrates (WebAssembly.Table.set() error), so ours goes first
#    on PATH (see env.sh).
if [ "$(wasm-opt --version 2>/dev/null | grep -o 'version [0-9]*' | awk '{print $2}')" != "${BINARYEN_VERSION%%.*}" ]; then
  log "npm: installing binaryen@${BINARYEN_VERSION} into $HERALD_TOOLS"
  mkdir -p "$HERALD_TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$HERALD_TOOLS" "binaryen@${BINARYEN_VERSION}"
fi

# 6. Playwright for the end-to-end suite (it drives Debian's chromium; it
#    never downloads a browser of its own).
if [ ! -d end2end/node_modules/@playwright/test ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  log "npm: installing the end-to-end suite's packages"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund)
fi

log "setup complete"
