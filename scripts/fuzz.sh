#!/usr/bin/env bash
# Fuzzes the shared crate's wire format with cargo-fuzz (libFuzzer).
#   ./scripts/fuzz.sh [parse|roundtrip] [seconds]
# Only a stable toolchain exists here; RUSTC_BOOTSTRAP lets it accept the
# -Z sanitizer flags cargo-fuzz passes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
target="${1:-parse}"
seconds="${2:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cd "$HERALD_ROOT/shared"
log "fuzzing $target for ${seconds}s"
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds"
