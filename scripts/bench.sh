#!/usr/bin/env bash
# Side-by-side benchmark: ./scripts/bench.sh [herald-bench compare flags]
# Installs nginx + Nchan if missing, builds Herald and the bench in release,
# and runs `herald-bench compare` (Herald, the naive axum baseline, Nchan on
# loopback, the same workloads, a table of ratios). Not part of test.sh.
#
# ./scripts/bench.sh backplanes [flags]: `herald-bench backplanes` instead
# (Herald on one Redis and on a three-master Redis Cluster, started on
# loopback: delivered/s and Redis CPU per publish on each).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$HERALD_ROOT"
command=compare
if [ "${1:-}" = backplanes ]; then command=backplanes; shift; fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ "$command" = compare ] && { ! command -v nginx >/dev/null || [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; }; then
  log "apt: installing nginx and libnginx-mod-nchan (the Nchan baseline)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light libnginx-mod-nchan
fi

# A build directory of its own: building the bench with the server unifies
# dependency features differently from cargo-leptos's server build, and
# sharing one directory would make the two rebuild each other's release
# artifacts (test.sh would pay ~9 minutes after every benchmark).
export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/bench"
log "building herald-server and herald-bench (release) in $CARGO_TARGET_DIR"
cargo build --release -p herald-server -p herald-bench
exec "$CARGO_TARGET_DIR/release/herald-bench" "$command" "$@"
