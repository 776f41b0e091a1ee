#!/usr/bin/env bash
# Builds the filter (.wasm, size-tuned profile) and the sidecar (debug binary).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

log "building the filter: $WASM"
cargo build --profile wasm-release --target wasm32-wasip1 -p envoy-secret-auth-filter
[ -f "$WASM" ] || die "cargo succeeded but $WASM is missing"

log "building the sidecar: $SIDECAR_BIN"
cargo build -p secret-sidecar
[ -x "$SIDECAR_BIN" ] || die "cargo succeeded but $SIDECAR_BIN is missing"

log "done: filter $(($(stat -c %s "$WASM") / 1024)) KiB, sidecar $SIDECAR_BIN"
