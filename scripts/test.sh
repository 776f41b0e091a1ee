#!/usr/bin/env bash
# THE test command: dependencies, build, format, lints, and every test layer
# (unit, harness on the real .wasm, sidecar against moto, end-to-end through a real Envoy), then a
# smoke run of the fuzz targets.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
# A fresh CI clone gains nothing from incremental compilation and full debug info, and pays for
# both (backtraces keep their line numbers).
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

step() {
    local name="$1"; shift
    local start=$SECONDS
    log "=== $name: $*"
    if "$@"; then
        log "=== $name: ok ($((SECONDS - start))s)"
    else
        local rc=$?
        log "=== $name: FAILED (exit $rc, $((SECONDS - start))s)"
        exit "$rc"
    fi
}

step deps "$ROOT/scripts/deps.sh"
step fmt cargo fmt --all --check
step build "$ROOT/scripts/build.sh" --tests
step clippy cargo clippy --workspace --all-targets -- -D warnings
# The filter's glue (proxy-wasm) only exists on wasm32: lint it there too.
step clippy-wasm cargo clippy --target wasm32-wasip1 -p envoy-secret-auth-filter -- -D warnings
step test cargo test --workspace
# Every pure fuzz target over its checked-in corpus (docs/FUZZING.md): the inputs that once
# crashed stay fixed, and the targets still build against the filter's API. wasm_requests' corpus
# is replayed by the harness tests above (tests/harness/tests/fuzz_corpus.rs), with its own
# checks, without the 16-minute instrumented build of wasmtime.
step fuzz-smoke "$ROOT/scripts/fuzz.sh" --smoke secret_ref_parse filter_config http_date query \
    limit_key basic_auth jwt_auth hmac_auth small_parsers rsa_public sidecar_answer ecdsa
log "all passed in ${SECONDS}s"
