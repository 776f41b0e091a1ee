#!/usr/bin/env bash
# Builds the filter (.wasm, size-tuned profile) and the sidecar.
#   scripts/build.sh           the filter and a release sidecar (what the demo, the Docker image and
#                              the benchmark run)
#   scripts/build.sh --tests   the filter, and every test target of the workspace with the debug
#                              sidecar binary: built in one go with the features `cargo test
#                              --workspace` unifies, so that the test run compiles nothing twice.
# The two never rebuild each other's dependencies: different profiles, each with one feature set.
# The filter's unused callback exports are then removed (scripts/wasm_exports.py), and it is run
# through binaryen's wasm-opt when node and npm are there (optional; see optimize_wasm below;
# SKIP_WASM_OPT=1 skips it).
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

# Not optional: Envoy would otherwise call the SDK's empty callbacks (common.sh).
strip_unused_exports

# Optional: binaryen's wasm-opt makes the .wasm about 7% smaller at the same speed (issue #9). Only
# passes that were measured not to slow any plugin, RS256 verification included: -O1 to -Oz
# shrink more (up to 13%) but make uncached RS256 verification about 12% slower, and opt-level
# "s"/"z" slow down hmac-auth and jwt HS256 too. binaryen comes from the npm registry (its Node.js
# build) into $TARGET_DIR/binaryen, once. Without node and npm, or if that fails, the .wasm stays
# as cargo built it: everything works the same. SKIP_WASM_OPT=1 skips it.
BINARYEN_VERSION=132.0.0
# The features rustc's wasm32-wasip1 output uses: wasm-opt must neither refuse nor add others.
WASM_OPT_FEATURES=(--enable-bulk-memory --enable-bulk-memory-opt --enable-sign-ext --enable-mutable-globals
    --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types)
WASM_OPT_PASSES=(--duplicate-function-elimination --remove-unused-module-elements --vacuum --coalesce-locals
    --reorder-locals --local-cse)
optimize_wasm() {
    local dir="$TARGET_DIR/binaryen" wasm_opt sum before
    wasm_opt="$dir/node_modules/.bin/wasm-opt"
    # The last output, and the checksum of the cargo build it was made from: cargo puts its own
    # build back on every `cargo build`, even when it compiles nothing.
    local cache="$dir/envoy_secret_auth_filter.wasm" stamp="$dir/envoy_secret_auth_filter.wasm.from"
    if [ ! -x "$wasm_opt" ]; then
        if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
            log "no node/npm: the filter is not run through wasm-opt (optional)"
            return 0
        fi
        log "installing binaryen $BINARYEN_VERSION (wasm-opt) from npm into ${dir#"$ROOT"/}"
        if ! npm install --prefix "$dir" --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION" >/dev/null 2>&1 ||
            [ ! -x "$wasm_opt" ]; then
            log "could not install binaryen: the filter is not run through wasm-opt (optional)"
            return 0
        fi
    fi
    sum="$(sha256sum "$WASM" | cut -d' ' -f1)"
    if [ -f "$cache" ] && [ "$sum" = "$(sha256sum "$cache" | cut -d' ' -f1)" ]; then
        return 0 # already the optimized one
    fi
    before="$(stat -c %s "$WASM")"
    if [ -f "$cache" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
        log "wasm-opt: the same build as last time, its output reused"
    else
        log "wasm-opt ${WASM_OPT_PASSES[*]}"
        if ! "$wasm_opt" "${WASM_OPT_FEATURES[@]}" "${WASM_OPT_PASSES[@]}" "$WASM" -o "$cache.tmp" \
            >/dev/null 2>"$dir/wasm-opt.log"; then
            log "wasm-opt failed (see ${dir#"$ROOT"/}/wasm-opt.log): the filter stays as cargo built it"
            rm -f "$cache.tmp"
            return 0
        fi
        mv "$cache.tmp" "$cache"
        echo "$sum" >"$stamp"
    fi
    # A new file in place of cargo's (a hard link to its deps/ copy, which stays as it is).
    cp "$cache" "$WASM.tmp"
    mv "$WASM.tmp" "$WASM"
    log "wasm-opt: $((before / 1024)) KiB -> $(($(stat -c %s "$WASM") / 1024)) KiB"
}
[ -n "${SKIP_WASM_OPT:-}" ] || optimize_wasm

log "building the sidecar: $sidecar (${sidecar_build[*]})"
"${sidecar_build[@]}"
[ -x "$sidecar" ] || die "cargo succeeded but $sidecar is missing"

log "done: filter $(($(stat -c %s "$WASM") / 1024)) KiB, sidecar $sidecar"
