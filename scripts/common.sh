# Shared by the scripts in this folder: `source "$(dirname "$0")/common.sh"`.
# Paths, logging, and small helpers for starting and stopping what a script started.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
RUN_DIR="$ROOT/.run"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WASM="$TARGET_DIR/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm"
SIDECAR_BIN="$TARGET_DIR/debug/secret-sidecar"
ENVOY_BIN="$VENV/bin/envoy"
MOTO_BIN="$VENV/bin/moto_server"
PY="$VENV/bin/python"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*"; }
die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_until SECONDS DESCRIPTION CMD...: run CMD every 0.2 s until it succeeds, or fail after SECONDS.
wait_until() {
    local seconds="$1" what="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${seconds}s waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}
