# Sourced by the other scripts: the paths every step agrees on.
# shellcheck shell=bash

HERALD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HERALD_ROOT
# Tools the project installs for itself (npm's binaryen wasm-opt) live here,
# outside the clone, so a fresh clone on a warm machine reuses them.
export HERALD_TOOLS="${HERALD_TOOLS:-$HOME/.cache/herald/tools}"
export PATH="$HERALD_TOOLS/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Build output. cargo-leptos writes the site (JS, WASM, CSS, assets) under
# $CARGO_TARGET_DIR/site when this is set, and the server serves it from there.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HERALD_ROOT/target}"
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-$CARGO_TARGET_DIR/site}"

# Versions pinned by the project (see README "Toolchain").
CARGO_LEPTOS_VERSION="0.3.10"
BINARYEN_VERSION="132.0.0"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
