#!/usr/bin/env bash
# Load benchmark: Envoy with no auth filter (baseline), Envoy's native api_key_auth, and the
# secret-auth Wasm filter (key-auth), with 1 and with 10,000 consumers. Every Envoy answers from a
# direct_response route, so the filter is all that differs. The Wasm filter's keys live in ONE
# moto secret (bench-keys, one JSON field per consumer) and are resolved through the real sidecar.
# Results: a table on stdout and in bench/results/latest.md. Logs: .run/bench/.
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 16),
# BENCH_CONSUMERS (default 10000), BENCH_SCENARIOS (default "baseline native-1 wasm-1 native-N wasm-N"),
# BENCH_READY_SECONDS (how long Envoy may take to accept the key, default 180),
# BENCH_SKIP_BUILD=1 (use the .wasm and sidecar already built).
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
CONSUMERS="${BENCH_CONSUMERS:-10000}"
SCENARIOS="${BENCH_SCENARIOS:-baseline native-1 wasm-1 native-N wasm-N}"
READY_SECONDS="${BENCH_READY_SECONDS:-180}"   # resolving N references the first time may take a while

"$ROOT/scripts/deps.sh"
if [ -n "${BENCH_SKIP_BUILD:-}" ]; then
    [ -f "$WASM" ] && [ -x "$SIDECAR_BIN" ] || die "BENCH_SKIP_BUILD is set but $WASM or $SIDECAR_BIN is missing"
    log "BENCH_SKIP_BUILD: using the existing $WASM and $SIDECAR_BIN"
else
    "$ROOT/scripts/build.sh"
fi

OUT="$RUN_DIR/bench"
rm -rf "$OUT"
mkdir -p "$OUT"
trap 'rc=$?; trap - EXIT INT TERM; bg_stop_all; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CPU pinning: Envoy on CPU 0, wrk on CPU 1 (when there are two CPUs and taskset).
PIN_ENVOY=() PIN_WRK=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_ENVOY=(taskset -c 0) PIN_WRK=(taskset -c 1)
fi
CURL=(curl --noproxy '*' -sS --max-time 5)

wait_for() { # SECONDS NAME CMD...
    local seconds="$1" name="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        bg_alive "$name" || die "$name exited; see its log in ${OUT#"$ROOT"/}"
        ((SECONDS < deadline)) || die "$name not ready after ${seconds}s; see its log in ${OUT#"$ROOT"/}"
        sleep 0.2
    done
}

# --- moto with the keys, and the sidecar ------------------------------------------------------
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_PROFILE
MOTO_PORT="$(free_port)"
bg_start moto "$OUT/moto.log" "$MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT"
wait_for 30 moto "${CURL[@]}" -f "http://127.0.0.1:$MOTO_PORT/moto-api/"

KEYS="$OUT/keys.json"
( umask 077; "$PY" -c '
import json, secrets, sys
n = int(sys.argv[1])
json.dump({f"consumer-{i}": f"bench-{i}-{secrets.token_hex(12)}" for i in range(n)}, sys.stdout)
' "$CONSUMERS" >"$KEYS" )
"$PY" scripts/put_secret.py --endpoint "http://127.0.0.1:$MOTO_PORT" bench-keys --value-file "$KEYS"
key_of() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$KEYS" "$1"; }

SECRET_SIDECAR_TOKEN="$(random_token)"
export SECRET_SIDECAR_TOKEN
SIDECAR_PORT="$(free_port)"
cat >"$OUT/sidecar.toml" <<TOML
listen = "127.0.0.1:$SIDECAR_PORT"
token_env = "SECRET_SIDECAR_TOKEN"

[cache]
ttl_seconds = 600
not_found_ttl_seconds = 600

[[providers]]
id = "bench"
kind = "aws"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:$MOTO_PORT"
access_key_id = "\$env://AWS_ACCESS_KEY_ID"
secret_access_key = "\$env://AWS_SECRET_ACCESS_KEY"
TOML
bg_start sidecar "$OUT/sidecar.log" env RUST_LOG=warn "$SIDECAR_BIN" --config "$OUT/sidecar.toml"
wait_for 30 sidecar "${CURL[@]}" -f -H "Authorization: Bearer $SECRET_SIDECAR_TOKEN" \
    "http://127.0.0.1:$SIDECAR_PORT/healthz"

# --- scenarios --------------------------------------------------------------------------------
printf 'scenario\tdescription\tready_s\trss_kb\n' >"$OUT/scenarios.tsv"

run_scenario() { # NAME FILTER CONSUMERS DESCRIPTION
    local name="$1" filter="$2" consumers="$3" description="$4"
    local port admin key="" header=()
    port="$(free_port)" admin="$(free_port)"
    if [ "$filter" != none ]; then
        key="$(key_of "consumer-$((consumers / 2))")"
        header=(-H "apikey: $key")
    fi
    "$PY" bench/gen_envoy.py --filter "$filter" --consumers "$consumers" --port "$port" \
        --admin-port "$admin" --sidecar-port "$SIDECAR_PORT" --wasm "$WASM" --keys-file "$KEYS" \
        --out "$OUT/$name.envoy.json"
    local started=$SECONDS
    bg_start "envoy-$name" "$OUT/$name.envoy.log" "${PIN_ENVOY[@]}" "$ENVOY_BIN" \
        -c "$OUT/$name.envoy.json" --disable-hot-restart --concurrency 1 -l warn
    wait_for 60 "envoy-$name" "${CURL[@]}" -f "http://127.0.0.1:$admin/ready"
    # Ready means: the key (resolved through the sidecar, for the Wasm filter) is accepted.
    ok() { [ "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "${header[@]}" "http://127.0.0.1:$port/")" = 200 ]; }
    wait_for "$READY_SECONDS" "envoy-$name" ok
    local ready_s=$((SECONDS - started))
    if [ "$filter" != none ]; then
        local denied
        denied="$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H 'apikey: not-a-key' "http://127.0.0.1:$port/")"
        [ "$denied" = 401 ] || die "$name: a wrong key got $denied, expected 401"
    fi

    log "$name: warm-up 2s, then ${DURATION}s with $CONNECTIONS connections"
    "${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d2s "${header[@]}" "http://127.0.0.1:$port/" >/dev/null
    "${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${header[@]}" \
        "http://127.0.0.1:$port/" >"$OUT/$name.wrk"
    if grep -q 'Non-2xx' "$OUT/$name.wrk"; then
        cat "$OUT/$name.wrk" >&2
        die "$name: some answers were not 200: the numbers would not measure the happy path"
    fi
    local rss
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$(bg_pid "envoy-$name")/status")"
    printf '%s\t%s\t%s\t%s\n' "$name" "$description" "$ready_s" "$rss" >>"$OUT/scenarios.tsv"
    bg_stop "envoy-$name"
}

for scenario in $SCENARIOS; do
    case "$scenario" in
        baseline) run_scenario baseline none 0 "no auth filter" ;;
        native-1) run_scenario native-1 native 1 "Envoy api_key_auth, 1 consumer" ;;
        wasm-1) run_scenario wasm-1 wasm 1 "secret-auth key-auth, 1 consumer" ;;
        native-N) run_scenario "native-$CONSUMERS" native "$CONSUMERS" "Envoy api_key_auth, $CONSUMERS consumers" ;;
        wasm-N) run_scenario "wasm-$CONSUMERS" wasm "$CONSUMERS" "secret-auth key-auth, $CONSUMERS consumers" ;;
        *) die "unknown scenario $scenario" ;;
    esac
done

"$PY" bench/report.py --dir "$OUT" --wasm "$WASM" --envoy "$ENVOY_BIN" \
    --params "wrk -t1 -c$CONNECTIONS -d${DURATION}s; Envoy --concurrency 1${PIN_ENVOY:+, Envoy pinned to CPU 0 and wrk to CPU 1}" \
    --out bench/results/latest.md
