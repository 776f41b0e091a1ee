#!/usr/bin/env bash
# THE demo: the API7 tutorial "Reference Secrets in AWS Secrets Manager" through Envoy. Every
# credential of the consumer alice (key-auth, basic-auth, jwt-auth, hmac-auth) and the Redis ACL
# user of limit-count live in (moto's) AWS Secrets Manager; Envoy's filter only holds references.
#   moto :5000  <-  secret-sidecar :7070 -> redis (free port)
#                     ^
#   Envoy :9080 (+ Wasm filter, admin :9901)  ->  echo upstream :8081
# Everything binds 127.0.0.1. Runs until Ctrl-C (or for DEMO_SECONDS seconds when that is set),
# then stops exactly what it started (by PID). Logs and pid files go to .run/.
#
# It prints a working command for each plugin and the rotation step; tests/e2e/tests/demo.rs runs
# the demo and every printed command, and checks that README.md shows the same commands. For
# that test (not needed by hand):
#   DEMO_COMMANDS_FILE=F    also write the commands, with what each must print, to F (JSON lines)
#   DEMO_SKIP_SETUP=1       do not run scripts/deps.sh and scripts/build.sh
#   DEMO_SIDECAR_BIN, DEMO_WASM, DEMO_RUN_DIR, DEMO_{MOTO,SIDECAR,UPSTREAM,ENVOY,ADMIN,REDIS}_PORT
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

if [ -z "${DEMO_SKIP_SETUP:-}" ]; then
    "$ROOT/scripts/deps.sh"
    "$ROOT/scripts/build.sh"
fi
SIDECAR="${DEMO_SIDECAR_BIN:-$SIDECAR_RELEASE_BIN}"
FILTER_WASM="${DEMO_WASM:-$WASM}"
RUN_DIR="${DEMO_RUN_DIR:-$RUN_DIR}"
MOTO_PORT="${DEMO_MOTO_PORT:-5000}"
SIDECAR_PORT="${DEMO_SIDECAR_PORT:-7070}"
UPSTREAM_PORT="${DEMO_UPSTREAM_PORT:-8081}"
ENVOY_PORT="${DEMO_ENVOY_PORT:-9080}"
ADMIN_PORT="${DEMO_ADMIN_PORT:-9901}"
# Not the tutorial's 6379: a Redis installed as a system service may already listen there.
REDIS_PORT="${DEMO_REDIS_PORT:-$(free_port)}"

mkdir -p "$RUN_DIR"
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    bg_stop_all
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background, logging to $RUN_DIR/NAME.log.
start() {
    local name="$1"; shift
    bg_start "$name" "$RUN_DIR/$name.log" "$@"
}

# alive NAME: fails (and shows the log tail) when NAME has exited.
alive() {
    bg_alive "$1" && return 0
    log "$1 exited; last lines of $RUN_DIR/$1.log:"
    tail -n 20 "$RUN_DIR/$1.log" >&2
    return 1
}

# ready NAME SECONDS CHECK...: waits for CHECK, failing early when NAME exits.
ready() {
    local name="$1" seconds="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        alive "$name" || die "$name did not start"
        ((SECONDS < deadline)) || { tail -n 20 "$RUN_DIR/$name.log" >&2; die "$name not ready after ${seconds}s"; }
        sleep 0.2
    done
    log "$name is ready"
}

# render SRC DST FROM TO [FROM TO]...: SRC with each FROM (which must occur exactly once) replaced
# by its TO, written to DST.
render() {
    "$PY" - "$@" <<'PYEOF'
import sys
src, dst, *pairs = sys.argv[1:]
text = open(src, encoding="utf-8").read()
for old, new in zip(pairs[::2], pairs[1::2]):
    if text.count(old) != 1:
        sys.exit(f"{src}: expected {old!r} once, found it {text.count(old)} times")
    text = text.replace(old, new)
open(dst, "w", encoding="utf-8").write(text)
PYEOF
}

for port in "$MOTO_PORT" "$SIDECAR_PORT" "$UPSTREAM_PORT" "$ENVOY_PORT" "$ADMIN_PORT" "$REDIS_PORT"; do
    port_free "$port" || die "port $port on 127.0.0.1 is in use (another demo running? see .run/*.pid)"
done

# The configs in envoy/demo/ with this run's ports and the built .wasm.
CONFIG_DIR="$RUN_DIR/demo-config"
mkdir -p "$CONFIG_DIR"
render envoy/demo/sidecar.toml "$CONFIG_DIR/sidecar.toml" \
    'listen = "127.0.0.1:7070"' "listen = \"127.0.0.1:$SIDECAR_PORT\"" \
    "http://127.0.0.1:5000" "http://127.0.0.1:$MOTO_PORT" \
    '"127.0.0.1:6379"' "\"127.0.0.1:$REDIS_PORT\""
render envoy/demo/envoy.yaml "$CONFIG_DIR/envoy.yaml" \
    "port_value: 9080" "port_value: $ENVOY_PORT" \
    "port_value: 9901" "port_value: $ADMIN_PORT" \
    "port_value: 8081" "port_value: $UPSTREAM_PORT" \
    "port_value: 7070" "port_value: $SIDECAR_PORT" \
    '"redis_port": 6379' "\"redis_port\": $REDIS_PORT" \
    "filename: target/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm" \
    "filename: $FILTER_WASM"

CURL=(curl --noproxy '*' -sS --max-time 5)

# moto's dummy credentials, for boto3 and the sidecar.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_PROFILE

# Redis with the tutorial's ACL user (envoy/secrets/redis.json: api7, redis-api7); no default user.
mkdir -p "$RUN_DIR/redis"
start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$RUN_DIR/redis" --user api7 on '>redis-api7' '~*' '&*' '+@all' --user default off
redis_ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --user api7 --pass redis-api7 --no-auth-warning ping)" = PONG ]
}
ready redis 20 redis_ping

start moto "$MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT"
ready moto 20 "${CURL[@]}" -f "http://127.0.0.1:$MOTO_PORT/moto-api/"

# The tutorial's secrets (the files docker-compose.yaml seeds moto with too).
for name in alice-credentials redis; do
    "$PY" scripts/put_secret.py --endpoint "http://127.0.0.1:$MOTO_PORT" "$name" \
        --value-file "envoy/secrets/$name.json"
done

# The sidecar's bearer token, shared with Envoy only through the environment.
SECRET_SIDECAR_TOKEN="$(random_token)"
export SECRET_SIDECAR_TOKEN

start sidecar env RUST_LOG="${RUST_LOG:-info}" "$SIDECAR" --config "$CONFIG_DIR/sidecar.toml"
healthz() { "${CURL[@]}" -f -H "Authorization: Bearer $SECRET_SIDECAR_TOKEN" "http://127.0.0.1:$SIDECAR_PORT/healthz"; }
ready sidecar 20 healthz

start upstream "$PY" scripts/echo_upstream.py --port "$UPSTREAM_PORT"
ready upstream 20 "${CURL[@]}" -f "http://127.0.0.1:$UPSTREAM_PORT/"

start envoy "$ENVOY_BIN" -c "$CONFIG_DIR/envoy.yaml" --disable-hot-restart --concurrency 2 \
    -l info --component-log-level wasm:debug
envoy_ready() { "${CURL[@]}" -f "http://127.0.0.1:$ADMIN_PORT/ready" && ! port_free "$ENVOY_PORT"; }
ready envoy 30 envoy_ready

# A first look, so that the demo shows it works before handing over (not on /limit: that would
# use up the quota the printed command shows).
status() { "${CURL[@]}" -o /dev/null -w '%{http_code}' "$@" "http://127.0.0.1:$ENVOY_PORT/ip"; }
log "GET /ip with apikey alice-key -> $(status -H 'apikey: alice-key')"
log "GET /ip without a key         -> $(status)"
log "GET /ip with a wrong key      -> $(status -H 'apikey: wrong-key')"

# --- the commands to try ------------------------------------------------------------------------
# example PHASE COMMENT COMMAND EXPECTED...: prints COMMENT and COMMAND; with DEMO_COMMANDS_FILE
# also records them, with the texts the command's output must contain (PHASE "rotated": once the
# filter has picked up the rotated key, within refresh_interval_s + ttl_seconds).
URL="http://127.0.0.1:$ENVOY_PORT"
COMMANDS_TMP=""
if [ -n "${DEMO_COMMANDS_FILE:-}" ]; then
    COMMANDS_TMP="$DEMO_COMMANDS_FILE.tmp"
    "$PY" -c 'import json, sys; print(json.dumps({"ports": {k: int(v) for k, v in zip(
        ["moto", "sidecar", "upstream", "envoy", "admin", "redis"], sys.argv[1:])}}))' \
        "$MOTO_PORT" "$SIDECAR_PORT" "$UPSTREAM_PORT" "$ENVOY_PORT" "$ADMIN_PORT" "$REDIS_PORT" \
        >"$COMMANDS_TMP"
fi
example() {
    local phase="$1" comment="$2" command="$3"; shift 3
    printf '  # %s\n  %s\n\n' "$comment" "$command"
    if [ -n "$COMMANDS_TMP" ]; then
        "$PY" -c 'import json, sys; print(json.dumps({"phase": sys.argv[1], "comment": sys.argv[2],
            "command": sys.argv[3], "expect": sys.argv[4:]}))' \
            "$phase" "$comment" "$command" "$@" >>"$COMMANDS_TMP"
    fi
}
SIGN=".venv/bin/python scripts/sign.py"
PUT="AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo .venv/bin/python scripts/put_secret.py --endpoint http://127.0.0.1:$MOTO_PORT"
ALICE='"x-consumer-username": "alice"'

cat <<TXT

Envoy is listening on $URL (admin http://127.0.0.1:$ADMIN_PORT). Try:

TXT
example now "key-auth: 200, the upstream sees X-Consumer-Username: alice" \
    "curl -i $URL/ip -H 'apikey: alice-key'" \
    "HTTP/1.1 200 OK" "$ALICE" '"x-credential-identifier": "primary-key"'
example now 'key-auth: 401 {"message":"Missing API key in request"}' \
    "curl -i $URL/ip" \
    "HTTP/1.1 401 Unauthorized" '{"message":"Missing API key in request"}'
example now 'key-auth: 401 {"message":"Invalid API key in request"}' \
    "curl -i $URL/ip -H 'apikey: wrong-key'" \
    "HTTP/1.1 401 Unauthorized" '{"message":"Invalid API key in request"}'
example now "basic-auth: alice and the password field of alice-credentials" \
    "curl -i $URL/basic -u alice:alice-password" \
    "HTTP/1.1 200 OK" "$ALICE" '"x-credential-identifier": "primary-basic"'
example now "jwt-auth: an HS256 token with claim key=alice-key, signed with the secret field" \
    "curl -i $URL/jwt -H \"Authorization: Bearer \$($SIGN jwt --key alice-key --secret alice-secret)\"" \
    "HTTP/1.1 200 OK" "$ALICE" '"x-credential-identifier": "primary-jwt"'
example now "hmac-auth: a request signed now with key id alice-keyid and the secret-key field" \
    "$SIGN hmac --key-id alice-keyid --secret-key alice-secret-key GET /hmac | curl -i $URL/hmac -H @-" \
    "HTTP/1.1 200 OK" "$ALICE" '"x-credential-identifier": "primary-hmac"'
example now "limit-count in Redis (database 1, ACL user from the secret redis): 3 a minute, then 429" \
    "for i in 1 2 3 4; do curl -s -o /dev/null -w '%{http_code} remaining %header{x-ratelimit-remaining}\n' $URL/limit; done" \
    $'200 remaining 2\n200 remaining 1\n200 remaining 0\n429 remaining 0'

cat <<TXT
Rotate alice's key in AWS Secrets Manager; the filter picks it up within ~20 s
(refresh_interval_s + the sidecar's ttl_seconds), then the old key gets 401 and the new one 200:

TXT
example now "store a new alice-key-auth (the other fields stay)" \
    "$PUT --merge alice-credentials '{\"alice-key-auth\":\"alice-key-2\"}'" \
    "stored a new version of secret 'alice-credentials'"
example rotated 'after ~20 s: 401 {"message":"Invalid API key in request"}' \
    "curl -i $URL/ip -H 'apikey: alice-key'" \
    "HTTP/1.1 401 Unauthorized" '{"message":"Invalid API key in request"}'
example rotated "after ~20 s: 200" \
    "curl -i $URL/ip -H 'apikey: alice-key-2'" \
    "HTTP/1.1 200 OK" "$ALICE"

if [ -n "$COMMANDS_TMP" ]; then
    mv "$COMMANDS_TMP" "$DEMO_COMMANDS_FILE"
fi
echo "Logs: $RUN_DIR/{redis,moto,sidecar,upstream,envoy}.log    Stop: Ctrl-C"

deadline=$((SECONDS + ${DEMO_SECONDS:-0}))
while true; do
    for name in "${BG_NAMES[@]}"; do
        alive "$name" || die "$name stopped unexpectedly"
    done
    if [ -n "${DEMO_SECONDS:-}" ] && ((SECONDS >= deadline)); then
        log "DEMO_SECONDS=$DEMO_SECONDS elapsed"
        break
    fi
    sleep 1
done
