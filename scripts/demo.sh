#!/usr/bin/env bash
# THE demo: key-auth through Envoy with the consumer's key held in (moto's) AWS Secrets Manager.
#   moto :5000  <-  secret-sidecar :7070  <-  Envoy :9080 (+ Wasm filter, admin :9901)  ->  echo :8081
# Everything binds 127.0.0.1. Runs until Ctrl-C (or for DEMO_SECONDS seconds when that is set),
# then stops exactly what it started. Logs and pid files go to .run/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

"$ROOT/scripts/deps.sh"
"$ROOT/scripts/build.sh"

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

# start NAME CMD...: runs CMD in the background, logging to .run/NAME.log.
start() {
    local name="$1"; shift
    bg_start "$name" "$RUN_DIR/$name.log" "$@"
}

# alive NAME: fails (and shows the log tail) when NAME has exited.
alive() {
    bg_alive "$1" && return 0
    log "$1 exited; last lines of .run/$1.log:"
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

for port in 5000 7070 8081 9080 9901; do
    port_free "$port" || die "port $port on 127.0.0.1 is in use (another demo running? see .run/*.pid)"
done

CURL=(curl --noproxy '*' -sS --max-time 5)

# moto's dummy credentials, for boto3 and the sidecar.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_PROFILE

start moto "$MOTO_BIN" -H 127.0.0.1 -p 5000
ready moto 20 "${CURL[@]}" -f http://127.0.0.1:5000/moto-api/

"$PY" "$ROOT/scripts/put_secret.py" --endpoint http://127.0.0.1:5000 alice-credentials \
    '{"alice-key-auth":"alice-key","alice-basic-auth":"alice-password","alice-jwt-auth":"alice-secret","alice-hmac-auth":"alice-secret-key"}'

# The sidecar's bearer token, shared with Envoy only through the environment.
SECRET_SIDECAR_TOKEN="$(random_token)"
export SECRET_SIDECAR_TOKEN

start sidecar env RUST_LOG="${RUST_LOG:-info}" "$SIDECAR_RELEASE_BIN" --config envoy/demo/sidecar.toml
healthz() { "${CURL[@]}" -f -H "Authorization: Bearer $SECRET_SIDECAR_TOKEN" http://127.0.0.1:7070/healthz; }
ready sidecar 20 healthz

start upstream "$PY" "$ROOT/scripts/echo_upstream.py" --port 8081
ready upstream 20 "${CURL[@]}" -f http://127.0.0.1:8081/

start envoy "$ENVOY_BIN" -c envoy/demo/envoy.yaml --disable-hot-restart --concurrency 2 \
    -l info --component-log-level wasm:debug
envoy_ready() { "${CURL[@]}" -f http://127.0.0.1:9901/ready && ! port_free 9080; }
ready envoy 30 envoy_ready

# A first look, so that the demo shows it works before handing over.
status() { "${CURL[@]}" -o /dev/null -w '%{http_code}' "$@" http://127.0.0.1:9080/ip; }
log "GET /ip with apikey alice-key -> $(status -H 'apikey: alice-key')"
log "GET /ip without a key         -> $(status)"
log "GET /ip with a wrong key      -> $(status -H 'apikey: wrong-key')"

cat <<TXT

Envoy is listening on http://127.0.0.1:9080 (admin http://127.0.0.1:9901). Try:

  curl -i http://127.0.0.1:9080/ip -H 'apikey: alice-key'      # 200, upstream sees X-Consumer-Username: alice
  curl -i http://127.0.0.1:9080/ip                             # 401 {"message":"Missing API key in request"}
  curl -i http://127.0.0.1:9080/ip -H 'apikey: wrong-key'      # 401 {"message":"Invalid API key in request"}

Rotate the key (the filter picks it up within ~20 s; then alice-key gets 401):

  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo .venv/bin/python scripts/put_secret.py \\
    --endpoint http://127.0.0.1:5000 alice-credentials '{"alice-key-auth":"alice-key-2"}'
  curl -i http://127.0.0.1:9080/ip -H 'apikey: alice-key-2'

Logs: .run/{moto,sidecar,upstream,envoy}.log    Stop: Ctrl-C
TXT

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
