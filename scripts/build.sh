#!/usr/bin/env bash
# Builds the filter (.wasm, size-tuned profile) and the sidecar (debug binary).
#   scripts/build.sh           the filter and the sidecar (what the demo runs)
#   scripts/build.sh --tests   the filter, and every test target of the workspace with the sidecar
#                              binary: built in one go with the features `cargo test --workspace`
#                              unifies, so that the test run compiles nothing twice
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

case "${1:-}" in
    "") sidecar_build=(cargo build -p secret-sidecar) ;;
    --tests) sidecar_build=(cargo build --workspace --bins --tests) ;;
    *) die "usage: $0 [--tests]" ;;
esac

log "building the filter: $WASM"
cargo build --profile wasm-release --target wasm32-wasip1 -p envoy-secret-auth-filter
[ -f "$WASM" ] || die "cargo succeeded but $WASM is missing"

log "building the sidecar: $SIDECAR_BIN (${sidecar_build[*]})"
"${sidecar_build[@]}"
[ -x "$SIDECAR_BIN" ] || die "cargo succeeded but $SIDECAR_BIN is missing"

log "done: filter $(($(stat -c %s "$WASM") / 1024)) KiB, sidecar $SIDECAR_BIN"
