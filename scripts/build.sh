#!/usr/bin/env bash
# Builds the filter (.wasm, size-tuned profile) and the sidecar.
#   scripts/build.sh           the filter and a release sidecar (what the demo, the Docker image and
#                              the benchmark run)
#   scripts/build.sh --tests   the filter, and every test target of the workspace with the debug
#                              sidecar binary: built in one go with the features `cargo test
#                              --workspace` unifies, so that the test run compiles nothing twice.
# The two never rebuild each other's dependencies: different profiles, each with one feature set.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

case "${1:-}" in
    "") sidecar_build=(cargo build --release -p secret-sidecar) sidecar="$SIDECAR_RELEASE_BIN" ;;
    --tests) sidecar_build=(cargo build --workspace --bins --tests) sidecar="$SIDECAR_BIN" ;;
    *) die "usage: $0 [--tests]" ;;
esac

log "building the filter: $WASM"
cargo build --profile wasm-release --target wasm32-wasip1 -p envoy-secret-auth-filter
[ -f "$WASM" ] || die "cargo succeeded but $WASM is missing"

log "building the sidecar: $sidecar (${sidecar_build[*]})"
"${sidecar_build[@]}"
[ -x "$sidecar" ] || die "cargo succeeded but $sidecar is missing"

log "done: filter $(($(stat -c %s "$WASM") / 1024)) KiB, sidecar $sidecar"
