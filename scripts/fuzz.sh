#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer): the targets in fuzz/ (docs/FUZZING.md).
#   scripts/fuzz.sh [SECONDS] [TARGET...]  build, then run each target for SECONDS (default 60);
#                                          new inputs go to fuzz/work/<target> (not checked in)
#   scripts/fuzz.sh --smoke [TARGET...]    run each target once over its checked-in corpus
#                                          (fuzz/corpus/<target>): what CI runs
# Prints executions and exec/s per target; exits non-zero if any target crashed (the input is
# kept in fuzz/artifacts/<target>/). Needs the nightly toolchain; installs cargo-fuzz if missing.
# wasm_requests runs the release .wasm (FILTER_WASM, else target/.../wasm-release), built here
# if missing.
#   FUZZ_SANITIZER=address  build with ASan (default none: safe Rust, panics and overflow checks
#                           are caught without it, and it halves the executions per second)
set -euo pipefail
source "$(dirname "$0")/common.sh"

ALL_TARGETS=(json_read secret_ref_parse filter_config http_date query limit_key basic_auth jwt_auth hmac_auth small_parsers rsa_public sidecar_answer ecdsa
    wasm_requests)

smoke=false
seconds=60
if [ "${1:-}" = "--smoke" ]; then
    smoke=true
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target $t (one of: ${ALL_TARGETS[*]})"
done

rustup run nightly cargo --version >/dev/null 2>&1 ||
    die "the nightly toolchain is missing: rustup toolchain install nightly --profile minimal"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ " ${targets[*]} " == *" wasm_requests "* ]] && [ -z "${FILTER_WASM:-}" ] && [ ! -f "$WASM" ]; then
    log "building the filter .wasm for wasm_requests"
    (cd "$ROOT" && cargo build --profile wasm-release --target wasm32-wasip1 -p envoy-secret-auth-filter)
    strip_unused_exports
fi

cd "$ROOT/fuzz"
build_flags=(--sanitizer "${FUZZ_SANITIZER:-none}")
# Per-target libFuzzer options: dictionaries; input sizes that stay realistic (references are
# short; requests may be larger than libFuzzer's default 4096 bytes).
options() {
    case "$1" in
        filter_config) echo "-dict=dict/config.dict" ;;
        basic_auth | jwt_auth | hmac_auth) echo "-dict=dict/request.dict" ;;
        wasm_requests) echo "-dict=dict/request.dict -max_len=8192" ;;
        secret_ref_parse) echo "-max_len=1024" ;;
    esac
}

# Build first, all at once (one cargo invocation per feature set), so the timings below are runs.
started=$SECONDS
pure=()
for t in "${targets[@]}"; do [ "$t" = wasm_requests ] || pure+=("$t"); done
if [ ${#pure[@]} -gt 0 ]; then
    log "building ${pure[*]}"
    cargo +nightly fuzz build "${build_flags[@]}" >/dev/null
fi
if [ ${#pure[@]} -lt ${#targets[@]} ]; then
    log "building wasm_requests"
    cargo +nightly fuzz build "${build_flags[@]}" --features=wasm wasm_requests >/dev/null
fi
log "built in $((SECONDS - started)) s"

# Run the built binaries directly: `cargo fuzz run` would rebuild when the feature set differs.
bin_dir="target/x86_64-unknown-linux-gnu/release"
mkdir -p work
failed=()
summary=()
for t in "${targets[@]}"; do
    out="work/$t.log"
    mkdir -p "artifacts/$t"
    run=("$bin_dir/$t" -artifact_prefix="artifacts/$t/" -timeout=60)
    t0=$SECONDS
    status=0
    if $smoke; then
        # Every checked-in input once, no mutation (files as arguments: nothing is written).
        "${run[@]}" corpus/"$t"/* >"$out" 2>&1 || status=$?
        execs=$(grep -c "^Executed " "$out" || true)
        rate="-"
    else
        mkdir -p "work/$t"
        # shellcheck disable=SC2046 # options are words
        nice -n 10 "${run[@]}" -max_total_time="$seconds" -print_final_stats=1 $(options "$t") \
            "work/$t" "corpus/$t" >"$out" 2>&1 || status=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -1)
    fi
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        log "$t: CRASH (exit $status), see fuzz/$out and fuzz/artifacts/$t/"
        grep -E "panicked at|Test unit written|SUMMARY|ERROR:" "$out" | head -5 >&2 || true
    fi
    summary+=("$(printf '%-18s %12s execs  %8s exec/s  %5s s  %s' "$t" "${execs:-0}" "${rate:--}" \
        "$((SECONDS - t0))" "$([ "$status" -eq 0 ] && echo ok || echo CRASH)")")
done

log "results:"
printf '  %s\n' "${summary[@]}"
log "total $((SECONDS - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
    die "crashed: ${failed[*]}"
fi
