#!/usr/bin/env bash
# Load benchmark of the secret-auth Wasm filter against Envoy with no filter (baseline) and against
# Envoy's native filters, all in ONE run so that the ratios compare like with like. Every Envoy
# answers from a direct_response route, so the filter is all that differs. The Wasm filter's
# secrets live in moto (bench-keys: one JSON field per key-auth consumer; bench-creds: basic
# password, jwt secret / public key, hmac secret) and are resolved through the real sidecar.
# Results: a table on stdout and in bench/results/latest.md. Logs: .run/bench/.
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 16),
# BENCH_CONSUMERS (default 10000), BENCH_SCENARIOS (default: all, see DEFAULT_SCENARIOS),
# BENCH_READY_SECONDS (how long Envoy may take to accept the credential, default 180),
# BENCH_RS256_TOKENS (distinct valid tokens the *-jwt-rs256-new scenarios cycle through, default
# 20000: more than the Wasm filter's 4096-entry verification cache, so every request misses it),
# BENCH_ES256_TOKENS (the same for the *-jwt-es256-new scenarios, default 20000),
# BENCH_SKIP_BUILD=1 (use the .wasm and sidecar already built),
# BENCH_SIDECAR_BIN (another sidecar binary; default: the release build scripts/build.sh makes),
# BENCH_WASM (another build of the filter's .wasm, e.g. to compare a change: implies that the
# filter is not rebuilt over it), BENCH_OUT (where logs and raw outputs go, default .run/bench),
# BENCH_REPORT (the report written, default bench/results/latest.md), BENCH_PROFILE_SIDECAR=1
# (perf record -e cpu-clock on the sidecar during the wasm-limit-redis* runs: where its time goes),
# BENCH_BROWSER_HEADERS=1 (every request also carries a browser's ~1 KB of headers).
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
WASM="${BENCH_WASM:-$WASM}"

DEFAULT_SCENARIOS="baseline
    wasm-noop wasm-noop-get wasm-noop-set wasm-noop-calls wasm-noop-map wasm-empty
    native-1 wasm-1 wasm-1-strip native-N wasm-N
    native-basic wasm-basic
    native-jwt-hs256 wasm-jwt-hs256 native-jwt-rs256 wasm-jwt-rs256 native-jwt-rs256-cache
    native-jwt-rs256-new wasm-jwt-rs256-new native-jwt-rs256-garbage wasm-jwt-rs256-garbage
    native-jwt-es256-new wasm-jwt-es256-new
    wasm-hmac
    native-limit wasm-limit-local wasm-limit-redis wasm-limit-redis-sync
    baseline"
DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
CONSUMERS="${BENCH_CONSUMERS:-10000}"
SCENARIOS="$(echo ${BENCH_SCENARIOS:-$DEFAULT_SCENARIOS})"   # word-split: one line
READY_SECONDS="${BENCH_READY_SECONDS:-180}"   # resolving N references the first time may take a while
RS256_TOKENS="${BENCH_RS256_TOKENS:-20000}"   # jwt-rs256-new: distinct tokens (the filter caches 4096)
ES256_TOKENS="${BENCH_ES256_TOKENS:-20000}"   # jwt-es256-new: the same
SYNC_INTERVAL=0.1                             # wasm-limit-redis-sync
HUGE_COUNT=1000000000                         # gen_envoy.py's HUGE_COUNT: limits never run out

for scenario in $SCENARIOS; do
    [[ " $(echo $DEFAULT_SCENARIOS) " == *" $scenario "* ]] ||
        die "unknown scenario $scenario (known: $(echo $DEFAULT_SCENARIOS))"
done

"$ROOT/scripts/deps.sh"
if [ -n "${BENCH_SKIP_BUILD:-}" ]; then
    [ -f "$WASM" ] && [ -x "${BENCH_SIDECAR_BIN:-$SIDECAR_RELEASE_BIN}" ] ||
        die "BENCH_SKIP_BUILD is set but $WASM or ${BENCH_SIDECAR_BIN:-$SIDECAR_RELEASE_BIN} is missing"
    log "BENCH_SKIP_BUILD: using the existing $WASM and ${BENCH_SIDECAR_BIN:-$SIDECAR_RELEASE_BIN}"
else
    "$ROOT/scripts/build.sh"
fi
# The reference filter that does (almost) nothing (bench/noop-filter, not a workspace member).
NOOP_WASM="$TARGET_DIR/bench-noop-filter/wasm32-wasip1/release/bench_noop_filter.wasm"
if [[ " $SCENARIOS " == *" wasm-noop"* ]] && { [ -z "${BENCH_SKIP_BUILD:-}" ] || [ ! -f "$NOOP_WASM" ]; }; then
    log "building the no-op reference filter: $NOOP_WASM"
    cargo build --release --target wasm32-wasip1 --manifest-path bench/noop-filter/Cargo.toml \
        --target-dir "$TARGET_DIR/bench-noop-filter"
fi
SIDECAR_BIN="${BENCH_SIDECAR_BIN:-$SIDECAR_RELEASE_BIN}"
[ -x "$SIDECAR_BIN" ] || die "no sidecar binary at $SIDECAR_BIN"

OUT="${BENCH_OUT:-$RUN_DIR/bench}"
REPORT="${BENCH_REPORT:-bench/results/latest.md}"
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

# wait_for SECONDS NAME CMD...: runs CMD every POLL_S seconds (default 0.2) until it succeeds;
# fails when NAME has exited or after SECONDS.
wait_for() {
    local seconds="$1" name="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        bg_alive "$name" || die "$name exited; see its log in ${OUT#"$ROOT"/}"
        ((SECONDS < deadline)) || die "$name not ready after ${seconds}s; see its log in ${OUT#"$ROOT"/}"
        sleep "${POLL_S:-0.2}"
    done
}

now_ms() { date +%s%3N; }

# cpu_ticks NAME: user + system CPU time (clock ticks, all threads) of the process started as NAME.
cpu_ticks() {
    local pid
    pid="$(bg_pid "$1")" || { echo 0; return; }
    # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0
}

# Instructions the Envoy process runs per request: unlike time, hardly affected by other load.
PERF_OK=""
if command -v perf >/dev/null &&
    perf stat -x, -e instructions -o "$OUT/perf-probe" -- true >/dev/null 2>&1 &&
    grep -q '^[0-9]' "$OUT/perf-probe"; then
    PERF_OK=1
else
    log "perf cannot count instructions here: the instructions column will be empty"
fi

# --- moto with the secrets, and the sidecar ----------------------------------------------------
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

# basic / jwt / hmac credentials: creds.json (all), moto-creds.json (what moto holds), client.json.
# The *-jwt-rs256-new scenarios also need RS256_TOKENS distinct valid tokens (about 1 ms each).
rs256_tokens=0
[[ " $SCENARIOS " == *"-jwt-rs256-new "* ]] && rs256_tokens="$RS256_TOKENS"
((rs256_tokens == 0)) || log "making $rs256_tokens distinct RS256 tokens"
es256_tokens=0
[[ " $SCENARIOS " == *"-jwt-es256-new "* ]] && es256_tokens="$ES256_TOKENS"
((es256_tokens == 0)) || log "making $es256_tokens distinct ES256 tokens"
"$PY" bench/creds.py make --dir "$OUT" --rs256-tokens "$rs256_tokens" --es256-tokens "$es256_tokens"
"$PY" scripts/put_secret.py --endpoint "http://127.0.0.1:$MOTO_PORT" bench-creds --value-file "$OUT/moto-creds.json"
# client_headers KIND good|bad: the request's header lines, one per line.
client_headers() {
    "$PY" -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]]))' \
        "$OUT/client.json" "$1" "$2"
}

SECRET_SIDECAR_TOKEN="$(random_token)"
export SECRET_SIDECAR_TOKEN
SIDECAR_PORT="$(free_port)"
cat >"$OUT/sidecar.toml" <<TOML
listen = "127.0.0.1:$SIDECAR_PORT"
token_env = "SECRET_SIDECAR_TOKEN"

[cache]
ttl_seconds = 600
not_found_ttl_seconds = 600

# /v1/limit may only use the benchmark's own Redis.
[limit]
redis = ["127.0.0.1:*"]

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

# --- Redis, for the limit-count redis policy ----------------------------------------------------
REDIS_PORT=""
if [[ " $SCENARIOS " == *" wasm-limit-redis"* ]]; then
    command -v redis-server >/dev/null || die "redis-server is needed for the wasm-limit-redis* scenarios"
    REDIS_PORT="$(free_port)"
    bg_start redis "$OUT/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save "" --appendonly no --protected-mode no
    wait_for 30 redis redis-cli -p "$REDIS_PORT" ping
fi

# --- scenarios --------------------------------------------------------------------------------
printf 'scenario\tdescription\tref\tgoal_ref\tgoal_min\tready_ms\taccepted_ms\trss_kb\tload1\tenvoy_ticks\tsidecar_ticks\tredis_ticks\terrors\tanswers\n' \
    >"$OUT/scenarios.tsv"
CLK_TCK="$(getconf CLK_TCK)"
echo "$CLK_TCK" >"$OUT/clk_tck"

# What the scenario being set up needs (set by setup_scenario):
GEN=()     # gen_envoy.py arguments
GOOD=()    # header lines of a request that must be accepted (and is used for the load)
BAD=()     # header lines of a request that must be refused with 401 (auth scenarios)
CHECK=none # none | auth | garbage | limit | redis: the check before the load
# BENCH_BROWSER_HEADERS=1: every request also carries the headers of a browser's request (about
# 1 KB in 10 headers, a cookie included), to see what reading or replacing the whole header map costs.
BROWSER_HEADERS=()
if [ -n "${BENCH_BROWSER_HEADERS:-}" ]; then
    BROWSER_HEADERS=(
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        "Accept-Language: en-GB,en;q=0.9,de;q=0.8"
        "Accept-Encoding: gzip, deflate, br, zstd"
        "Referer: https://app.example.com/dashboard/projects/42/settings?tab=members"
        "Cookie: session=$(printf 'a%.0s' {1..200}); _ga=GA1.1.1234567890.1733222222; prefs=theme%3Ddark%26lang%3Den; csrftoken=$(printf 'b%.0s' {1..64})"
        "Sec-Fetch-Dest: document"
        "Sec-Fetch-Mode: navigate"
        "Sec-Fetch-Site: same-origin"
        "Upgrade-Insecure-Requests: 1"
    )
fi
SCRIPT=()  # wrk -s script and its arguments (after --): the load then sends no GOOD headers
EXPECT=200 # the status every answer under load must have (401: a flood of refused tokens)
GARBAGE=() # garbage: header lines of one garbage token, refused like the load's

# quota_remaining PORT: the X-RateLimit-Remaining of one accepted request (fails otherwise).
quota_remaining() {
    local headers code remaining
    headers="$("${CURL[@]}" -o /dev/null -D - "http://127.0.0.1:$1/")" || return 1
    code="$(awk 'NR == 1 {print $2}' <<<"$headers")"
    remaining="$(tr -d '\r' <<<"$headers" | awk -F': ' 'tolower($1) == "x-ratelimit-remaining" {print $2}')"
    [ "$code" = 200 ] && [ -n "$remaining" ] || return 1
    echo "$remaining"
}

# check_before_load NAME PORT: the credential is accepted (done by the caller) and a wrong one is
# refused; for limit-count, the counter counts (there is no credential, and nothing to refuse
# with a count that never runs out).
check_before_load() {
    local name="$1" port="$2" code first second
    local bad_args=()
    for h in "${BAD[@]}"; do bad_args+=(-H "$h"); done
    case "$CHECK" in
        none) ;;
        auth | garbage)
            code="$("${CURL[@]}" -o /dev/null -w '%{http_code}' "${bad_args[@]}" "http://127.0.0.1:$port/")"
            [ "$code" = 401 ] || die "$name: a wrong credential got $code, expected 401"
            if [ "$CHECK" = garbage ]; then
                # What the load sends: the right header and payload, a random signature.
                local garbage_args=()
                for h in "${GARBAGE[@]}"; do garbage_args+=(-H "$h"); done
                code="$("${CURL[@]}" -o /dev/null -w '%{http_code}' "${garbage_args[@]}" "http://127.0.0.1:$port/")"
                [ "$code" = 401 ] || die "$name: a token with a garbage signature got $code, expected 401"
            fi
            ;;
        limit | redis)
            first="$(quota_remaining "$port")" || die "$name: no 200 with X-RateLimit-Remaining"
            second="$(quota_remaining "$port")" || die "$name: no 200 with X-RateLimit-Remaining"
            ((second < first)) || die "$name: X-RateLimit-Remaining did not go down ($first, then $second)"
            if [ "$CHECK" = redis ]; then
                # The counter is in Redis (with sync_interval, after the next push).
                local deadline=$((SECONDS + 5)) counted=""
                while ((SECONDS < deadline)); do
                    counted="$(redis-cli -p "$REDIS_PORT" --scan --pattern 'limit-count:*' | head -1)"
                    if [ -n "$counted" ]; then
                        local value
                        value="$(redis-cli -p "$REDIS_PORT" get "$counted")"
                        ((value < HUGE_COUNT)) && break
                    fi
                    counted=""
                    sleep 0.2
                done
                [ -n "$counted" ] || die "$name: no counter in Redis after 5 s"
                log "$name: Redis counter $counted = $(redis-cli -p "$REDIS_PORT" get "$counted")"
            fi
            ;;
    esac
}

setup_scenario() { # SCENARIO: sets GEN, GOOD, BAD, CHECK, SCRIPT, EXPECT, GARBAGE
    local scenario="$1" key
    GEN=() GOOD=() BAD=() CHECK=auth SCRIPT=() EXPECT=200 GARBAGE=()
    case "$scenario" in
        baseline) GEN=(--filter none) CHECK=none ;;
        native-1 | wasm-1 | native-N | wasm-N)
            local n=1
            [[ "$scenario" == *-N ]] && n="$CONSUMERS"
            GEN=(--filter "${scenario%-*}" --consumers "$n" --keys-file "$KEYS")
            key="$(key_of "consumer-$((n / 2))")"
            GOOD=("apikey: $key") BAD=("apikey: not-a-key")
            ;;
        wasm-1-strip)
            GEN=(--filter wasm-key --consumers 1 --keys-file "$KEYS" --strip-identity-headers)
            GOOD=("apikey: $(key_of consumer-0)") BAD=("apikey: not-a-key")
            ;;
        wasm-noop) GEN=(--filter wasm-noop --noop-mode noop --wasm "$NOOP_WASM") CHECK=none ;;
        wasm-noop-calls)
            GEN=(--filter wasm-noop --noop-mode key-auth-calls --wasm "$NOOP_WASM") CHECK=none
            GOOD=("apikey: $(key_of consumer-0)")
            ;;
        wasm-noop-map)
            GEN=(--filter wasm-noop --noop-mode key-auth-map --wasm "$NOOP_WASM") CHECK=none
            GOOD=("apikey: $(key_of consumer-0)")
            ;;
        wasm-noop-get | wasm-noop-set)
            GEN=(--filter wasm-noop --noop-mode "${scenario#wasm-noop-}-only" --wasm "$NOOP_WASM") CHECK=none
            GOOD=("apikey: $(key_of consumer-0)")
            ;;
        wasm-empty) GEN=(--filter wasm-key --consumers 0 --no-plugins) CHECK=none ;;
        native-basic | wasm-basic)
            GEN=(--filter "$scenario" --creds-file "$OUT/creds.json")
            mapfile -t GOOD < <(client_headers basic good)
            mapfile -t BAD < <(client_headers basic bad)
            ;;
        native-jwt-hs256 | wasm-jwt-hs256 | native-jwt-rs256 | wasm-jwt-rs256 | native-jwt-rs256-cache)
            local alg="${scenario#*-jwt-}"
            alg="${alg%-cache}"
            GEN=(--filter "${scenario%%-*}-jwt" --alg "${alg^^}" --creds-file "$OUT/creds.json")
            [[ "$scenario" == *-cache ]] && GEN+=(--jwt-cache)
            mapfile -t GOOD < <(client_headers "jwt-$alg" good)
            mapfile -t BAD < <(client_headers "jwt-$alg" bad)
            ;;
        native-jwt-rs256-new | wasm-jwt-rs256-new | native-jwt-es256-new | wasm-jwt-es256-new)
            # A different valid token on every request: every one a verification cache miss.
            local alg="${scenario#*-jwt-}"
            alg="${alg%-new}"
            GEN=(--filter "${scenario%%-*}-jwt" --alg "${alg^^}" --creds-file "$OUT/creds.json")
            GOOD=("Authorization: Bearer $(head -1 "$OUT/jwt-$alg-tokens.txt")")
            mapfile -t BAD < <(client_headers "jwt-$alg" bad)
            SCRIPT=(-s bench/jwt-tokens.lua -- new "$OUT/jwt-$alg-tokens.txt")
            ;;
        native-jwt-rs256-garbage | wasm-jwt-rs256-garbage)
            # The right header and payload (a known key), a different random signature on every
            # request: each one a full signature check, refused with 401.
            GEN=(--filter "${scenario%%-*}-jwt" --alg RS256 --creds-file "$OUT/creds.json")
            mapfile -t GOOD < <(client_headers jwt-rs256 good)
            mapfile -t BAD < <(client_headers jwt-rs256 bad)
            mapfile -t GARBAGE < <(client_headers jwt-rs256-garbage sample)
            local signing_input signature_bytes
            read -r signing_input signature_bytes < <("$PY" -c 'import json, sys
g = json.load(open(sys.argv[1]))["jwt-rs256-garbage"]
print(g["signing_input"], g["signature_bytes"])' "$OUT/client.json")
            SCRIPT=(-s bench/jwt-tokens.lua -- garbage "$signing_input" "$signature_bytes")
            CHECK=garbage EXPECT=401
            ;;
        wasm-hmac)
            # Signed now: valid for clock_skew (300 s), longer than the scenario.
            local signed
            signed="$("$PY" bench/creds.py hmac --dir "$OUT")"
            GEN=(--filter wasm-hmac --creds-file "$OUT/creds.json")
            mapfile -t GOOD < <("$PY" -c 'import json, sys; print("\n".join(json.load(sys.stdin)["good"]))' <<<"$signed")
            mapfile -t BAD < <("$PY" -c 'import json, sys; print("\n".join(json.load(sys.stdin)["bad"]))' <<<"$signed")
            ;;
        native-limit) GEN=(--filter native-limit) CHECK=limit ;;
        wasm-limit-local) GEN=(--filter wasm-limit --limit-policy local) CHECK=limit ;;
        wasm-limit-redis | wasm-limit-redis-sync)
            GEN=(--filter wasm-limit --limit-policy redis --redis-port "$REDIS_PORT") CHECK=redis
            [[ "$scenario" == *-sync ]] && GEN+=(--sync-interval "$SYNC_INTERVAL")
            redis-cli -p "$REDIS_PORT" flushall >/dev/null
            ;;
    esac
}

# run_scenario NAME DESCRIPTION REF GOAL_REF GOAL_MIN (after setup_scenario)
run_scenario() {
    local name="$1" description="$2" ref="$3" goal_ref="$4" goal_min="$5"
    local port admin load1 good_args=() load_args=() script_args=()
    for h in "${GOOD[@]}"; do good_args+=(-H "$h"); done
    for h in "${BROWSER_HEADERS[@]}"; do good_args+=(-H "$h"); done
    # The load: the GOOD headers, or a wrk script that sets the credential on each request (its
    # arguments go after the URL).
    if ((${#SCRIPT[@]})); then
        local i
        for ((i = 0; i < ${#SCRIPT[@]}; i++)); do [ "${SCRIPT[i]}" = -- ] && break; done
        load_args=("${SCRIPT[@]:0:i}") script_args=("${SCRIPT[@]:i}")
    else
        load_args=("${good_args[@]}")
    fi
    port="$(free_port)" admin="$(free_port)"
    load1="$(cut -d' ' -f1 /proc/loadavg)"
    # GEN comes last: its --wasm (the no-op filter) wins over the default.
    "$PY" bench/gen_envoy.py --port "$port" --admin-port "$admin" --sidecar-port "$SIDECAR_PORT" \
        --wasm "$WASM" "${GEN[@]}" ${BENCH_RELEASE_MEMORY:+--release-memory} --out "$OUT/$name.envoy.json"
    # Start-up, in milliseconds: from starting Envoy until its admin /ready answers, then until
    # the first valid request is accepted (for the Wasm filter: every reference resolved through
    # the sidecar). Polled every 20 ms.
    local started ready accepted
    started="$(now_ms)"
    bg_start "envoy-$name" "$OUT/$name.envoy.log" "${PIN_ENVOY[@]}" "$ENVOY_BIN" \
        -c "$OUT/$name.envoy.json" --disable-hot-restart --concurrency 1 -l warn
    POLL_S=0.02 wait_for 60 "envoy-$name" "${CURL[@]}" -f "http://127.0.0.1:$admin/ready"
    ready="$(now_ms)"
    ok() { [ "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "${good_args[@]}" "http://127.0.0.1:$port/")" = 200 ]; }
    POLL_S=0.02 wait_for "$READY_SECONDS" "envoy-$name" ok
    accepted="$(now_ms)"
    check_before_load "$name" "$port"

    log "$name: warm-up 2s, then ${DURATION}s with $CONNECTIONS connections"
    "${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d2s "${load_args[@]}" "http://127.0.0.1:$port/" \
        "${script_args[@]}" >/dev/null
    local envoy0 sidecar0 redis0 envoy1 sidecar1 redis1
    if [ -n "$PERF_OK" ]; then
        bg_start "perf-$name" "$OUT/$name.perf.log" perf stat -x, -e instructions,cycles \
            -o "$OUT/$name.perf" -p "$(bg_pid "envoy-$name")"
    fi
    local profile=""
    if [ -n "${BENCH_PROFILE_SIDECAR:-}" ] && [[ "$name" == wasm-limit-redis* ]] && command -v perf >/dev/null; then
        profile="$OUT/$name.sidecar.perf.data"
        bg_start "perf-sidecar-$name" "$OUT/$name.sidecar.perf.log" perf record -e cpu-clock -F 999 -g \
            -o "$profile" -p "$(bg_pid sidecar)"
    fi
    envoy0="$(cpu_ticks "envoy-$name")"
    sidecar0="$(cpu_ticks sidecar)" redis0="$(cpu_ticks redis)"
    local calls0
    calls0="$(sidecar_calls "$admin")"
    "${PIN_WRK[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${load_args[@]}" \
        "http://127.0.0.1:$port/" "${script_args[@]}" >"$OUT/$name.wrk"
    envoy1="$(cpu_ticks "envoy-$name")"
    sidecar1="$(cpu_ticks sidecar)" redis1="$(cpu_ticks redis)"
    if [[ "$name" == wasm-limit-redis* ]]; then
        # How many requests share a /v1/limit call (the filter batches the ops of one event-loop
        # turn): a figure the machine's noise does not move.
        local calls requests
        calls=$(($(sidecar_calls "$admin") - calls0))
        requests="$(awk '/requests in/ {print $1}' "$OUT/$name.wrk")"
        printf '* %s: %s requests, %s calls to the sidecar (%s requests per call)\n' "$name" "$requests" \
            "$calls" "$(awk -v r="$requests" -v c="$calls" 'BEGIN {if (c > 0) printf "%.1f", r / c; else print "n/a"}')" \
            >>"$OUT/notes.md"
    fi
    if [ -n "$profile" ]; then
        # perf record writes its data on SIGINT. The top entries by module and symbol (self time).
        local perf_pid i
        perf_pid="$(bg_pid "perf-sidecar-$name")"
        kill -INT "$perf_pid" 2>/dev/null || true
        for i in $(seq 100); do kill -0 "$perf_pid" 2>/dev/null || break; sleep 0.1; done
        bg_stop "perf-sidecar-$name"
        perf report -i "$profile" --stdio --no-children --sort dso -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -8 >"$OUT/$name.sidecar-profile.txt" || true
        perf report -i "$profile" --stdio --no-children --sort dso,sym -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -25 >>"$OUT/$name.sidecar-profile.txt" || true
        log "$name: sidecar profile in ${OUT#"$ROOT"/}/$name.sidecar-profile.txt"
    fi
    if [ -n "$PERF_OK" ]; then
        # perf stat writes its counts on SIGINT; give it a moment before bg_stop's SIGTERM.
        local perf_pid i
        perf_pid="$(bg_pid "perf-$name")"
        kill -INT "$perf_pid" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$perf_pid" 2>/dev/null || break; sleep 0.1; done
        bg_stop "perf-$name"
    fi
    # Every answer must be the expected one: 200 (the happy path), or 401 for a garbage flood.
    # wrk counts non-2xx answers itself; the script (bench/jwt-tokens.lua) prints every status.
    local answers="-"
    if ((${#SCRIPT[@]})); then
        answers="$(awk '$1 == "status" {printf "%s%s: %s", sep, $2, $3; sep = ", "}' "$OUT/$name.wrk")"
        local unexpected
        unexpected="$(awk -v want="$EXPECT" '$1 == "status" && $2 != want' "$OUT/$name.wrk")"
        if [ -z "$answers" ] || [ -n "$unexpected" ]; then
            cat "$OUT/$name.wrk" >&2
            die "$name: answers ${answers:-not counted}, expected only $EXPECT"
        fi
    fi
    if [ "$EXPECT" = 200 ] && grep -q 'Non-2xx' "$OUT/$name.wrk"; then
        cat "$OUT/$name.wrk" >&2
        die "$name: some answers were not 200: the numbers would not measure the happy path"
    fi
    local errors
    errors="$(sed -n 's/^ *Socket errors: *//p' "$OUT/$name.wrk")"
    [ -z "$errors" ] || log "$name: wrk reports socket errors: $errors"
    local rss
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$(bg_pid "envoy-$name")/status")"
    # Where the memory is (each Wasm VM's linear memory is a mapping of its own).
    cat "/proc/$(bg_pid "envoy-$name")/smaps" >"$OUT/$name.smaps" 2>/dev/null || true
    # Envoy's own heap: live bytes (memory_allocated) against what its allocator holds.
    "${CURL[@]}" -s "http://127.0.0.1:$admin/stats?filter=^server\.memory_" >"$OUT/$name.memory" || true
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$description" "$ref" \
        "$goal_ref" "$goal_min" $((ready - started)) $((accepted - ready)) "$rss" "$load1" \
        $((envoy1 - envoy0)) $((sidecar1 - sidecar0)) $((redis1 - redis0)) "${errors:--}" "$answers" \
        >>"$OUT/scenarios.tsv"
    bg_stop "envoy-$name"
}

# sidecar_calls ADMIN_PORT: the calls Envoy has made to the secret_sidecar cluster so far.
sidecar_calls() {
    "${CURL[@]}" -s "http://127.0.0.1:$1/stats?filter=^cluster\.secret_sidecar\.upstream_rq_total$" |
        awk -F': ' '{print $2 + 0; found = 1} END {if (!found) print 0}'
}

# redis_benchmark: what one Redis round trip costs, on the benchmark's redis-server, right after
# the wasm-limit-redis scenario: redis-benchmark (pinned like wrk) runs SET and the sidecar's
# counter script (EVALSHA, the arguments of a never-ending limit) with 1 connection (a round trip
# with no queueing) and with BENCH_CONNECTIONS; with Redis's CPU time per op. Rows appended to
# redis-benchmark.tsv: test, connections, req/s, p50 ms, p99 ms, Redis CPU ticks, requests.
REDIS_OPS=20000
# A copy of SCRIPT in secret-sidecar/src/limit/store.rs (APISIX's fixed window).
LIMIT_SCRIPT="local ttl = redis.call('ttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return {ARGV[1], ARGV[2]}
end
return {redis.call('decrby', KEYS[1], ARGV[3]), ttl}
"
redis_benchmark() {
    command -v redis-benchmark >/dev/null || { log "no redis-benchmark: no Redis round trip measured"; return 0; }
    local sha connections test ticks0 ticks1 csv
    sha="$(redis-cli -p "$REDIS_PORT" script load "$LIMIT_SCRIPT")"
    printf 'test\tconnections\trps\tp50_ms\tp99_ms\tredis_ticks\trequests\n' >"$OUT/redis-benchmark.tsv"
    for connections in 1 "$CONNECTIONS"; do
        for test in SET EVALSHA; do
            local args=(-t set)
            [ "$test" = EVALSHA ] && args=(EVALSHA "$sha" 1 "limit-count:redis-benchmark" $((HUGE_COUNT - 1)) 60 1)
            ticks0="$(cpu_ticks redis)"
            csv="$("${PIN_WRK[@]}" redis-benchmark -p "$REDIS_PORT" -n "$REDIS_OPS" -c "$connections" --csv "${args[@]}")"
            ticks1="$(cpu_ticks redis)"
            # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
            awk -F'","' -v test="$test" -v c="$connections" -v t=$((ticks1 - ticks0)) -v n="$REDIS_OPS" \
                'NR == 2 {printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", test, c, $2, $5, $7, t, n}' \
                <<<"$csv" >>"$OUT/redis-benchmark.tsv"
        done
    done
    log "redis-benchmark: $(tr '\n' ' ' <"$OUT/redis-benchmark.tsv")"
}

baselines=0
for scenario in $SCENARIOS; do
    setup_scenario "$scenario"
    N="$CONSUMERS"
    case "$scenario" in
        baseline)
            baselines=$((baselines + 1))
            name=baseline
            ((baselines == 1)) || name="baseline-$baselines"
            run_scenario "$name" "no filter" - - - ;;
        native-1) run_scenario native-1 "Envoy api_key_auth, 1 consumer" baseline - - ;;
        wasm-1) run_scenario wasm-1 "key-auth, 1 consumer" native-1 wasm-noop 0.9 ;;
        wasm-1-strip)
            run_scenario wasm-1-strip "key-auth, 1 consumer, the filter also strips identity headers" \
                wasm-1 - - ;;
        native-N) run_scenario "native-$N" "Envoy api_key_auth, $N consumers" baseline - - ;;
        wasm-N) run_scenario "wasm-$N" "key-auth, $N consumers" "native-$N" wasm-noop 0.9 ;;
        wasm-noop) run_scenario wasm-noop "reference proxy-wasm filter doing nothing" baseline - - ;;
        wasm-noop-calls)
            run_scenario wasm-noop-calls "reference filter: key-auth's host calls only (1 get, 3 set)" \
                wasm-noop - - ;;
        wasm-noop-map)
            run_scenario wasm-noop-map "reference filter: key-auth's outcome in 2 calls (get all, set all)" \
                wasm-noop - - ;;
        wasm-noop-get) run_scenario wasm-noop-get "reference filter: 1 get header" wasm-noop - - ;;
        wasm-noop-set) run_scenario wasm-noop-set "reference filter: 2 set + 1 remove header" wasm-noop - - ;;
        wasm-empty) run_scenario wasm-empty "this filter, no plugin, no consumer" wasm-noop wasm-noop 0.97 ;;
        native-basic) run_scenario native-basic "Envoy basic_auth (htpasswd SHA)" baseline - - ;;
        wasm-basic) run_scenario wasm-basic "basic-auth" native-basic wasm-noop 0.9 ;;
        native-jwt-hs256) run_scenario native-jwt-hs256 "Envoy jwt_authn HS256 (oct JWK)" baseline - - ;;
        wasm-jwt-hs256) run_scenario wasm-jwt-hs256 "jwt-auth HS256" native-jwt-hs256 native-jwt-hs256 1.3 ;;
        native-jwt-rs256) run_scenario native-jwt-rs256 "Envoy jwt_authn RS256 (RSA JWK)" baseline - - ;;
        native-jwt-rs256-cache)
            run_scenario native-jwt-rs256-cache "Envoy jwt_authn RS256, jwt_cache_config on" baseline - - ;;
        wasm-jwt-rs256) run_scenario wasm-jwt-rs256 "jwt-auth RS256 (one token: cache hit)" native-jwt-rs256-cache wasm-noop 0.9 ;;
        native-jwt-rs256-new)
            run_scenario native-jwt-rs256-new "Envoy jwt_authn RS256, a new valid token per request" baseline - - ;;
        wasm-jwt-rs256-new)
            run_scenario wasm-jwt-rs256-new "jwt-auth RS256, a new valid token per request (cache miss)" \
                native-jwt-rs256-new native-jwt-rs256-new 1.0 ;;
        native-jwt-es256-new)
            run_scenario native-jwt-es256-new "Envoy jwt_authn ES256, a new valid token per request" baseline - - ;;
        wasm-jwt-es256-new)
            run_scenario wasm-jwt-es256-new "jwt-auth ES256, a new valid token per request (cache miss)" \
                native-jwt-es256-new - - ;;
        native-jwt-rs256-garbage)
            run_scenario native-jwt-rs256-garbage "Envoy jwt_authn RS256, a random signature per request (401)" \
                baseline - - ;;
        wasm-jwt-rs256-garbage)
            run_scenario wasm-jwt-rs256-garbage "jwt-auth RS256, a random signature per request (401)" \
                native-jwt-rs256-garbage - - ;;
        wasm-hmac) run_scenario wasm-hmac "hmac-auth hmac-sha256, @request-target date" baseline wasm-noop 0.85 ;;
        native-limit) run_scenario native-limit "Envoy local_ratelimit, never empty" baseline - - ;;
        wasm-limit-local)
            run_scenario wasm-limit-local "limit-count local, key remote_addr" native-limit wasm-noop 0.9 ;;
        wasm-limit-redis)
            run_scenario wasm-limit-redis "limit-count redis, a sidecar call per request" wasm-limit-local \
                wasm-limit-local 0.5
            redis_benchmark ;;
        wasm-limit-redis-sync)
            run_scenario wasm-limit-redis-sync "limit-count redis, sync_interval $SYNC_INTERVAL s" \
                wasm-limit-local wasm-limit-local 0.8 ;;
    esac
done

"$PY" -c 'import datetime, json, sys
json.dump({"finished": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
           "loadavg": " ".join(open("/proc/loadavg").read().split()[:3]), "commit": sys.argv[1]},
          open(sys.argv[2], "w"))' "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    "$OUT/run-info.json"
"$PY" bench/report.py --dir "$OUT" --wasm "$WASM" --envoy "$ENVOY_BIN" \
    --params "wrk -t1 -c$CONNECTIONS -d${DURATION}s (after a 2 s warm-up); Envoy --concurrency 1${PIN_ENVOY:+, Envoy pinned to CPU 0 and wrk to CPU 1 (moto, sidecar and Redis unpinned)}" \
    --sidecar "$SIDECAR_BIN" \
    --out "$REPORT"
if [ -f "$OUT/notes.md" ]; then
    printf '\nCalls to the sidecar during the load:\n\n' >>"$REPORT"
    cat "$OUT/notes.md" >>"$REPORT"
    rm -f "$OUT/notes.md"
fi
