# Shared by the scripts in this folder: `source "$(dirname "$0")/common.sh"`.
# Paths, logging, and small helpers for starting and stopping what a script started.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
RUN_DIR="$ROOT/.run"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WASM="$TARGET_DIR/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm"
SIDECAR_BIN="$TARGET_DIR/debug/secret-sidecar"           # the tests' build (scripts/build.sh --tests)
SIDECAR_RELEASE_BIN="$TARGET_DIR/release/secret-sidecar"  # the demo's and the benchmark's (scripts/build.sh)
ENVOY_BIN="$VENV/bin/envoy"
MOTO_BIN="$VENV/bin/moto_server"
PY="$VENV/bin/python"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*"; }
die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Removes from the built filter ($WASM) the exports of proxy-wasm callbacks it does not
# implement, so that Envoy skips them instead of crossing into the VM for the SDK's default:
# `proxy_on_done` and `proxy_on_log` on every request, `proxy_on_response_body` on every response
# with a body (issue #9; the list and why: scripts/wasm_exports.py). Every build of the filter
# runs it: a new file in place of cargo's (a hard link to its deps/ copy, which stays as it is).
strip_unused_exports() {
    command -v python3 >/dev/null || die "python3 is needed (scripts/deps.sh needs it too)"
    python3 "$ROOT/scripts/wasm_exports.py" strip "$WASM" "$WASM.tmp"
    mv "$WASM.tmp" "$WASM"
}

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

# --- background processes: started by bg_start, stopped by PID by bg_stop_all -------------------
BG_PIDS=()
BG_NAMES=()

# bg_start NAME LOG CMD...: runs CMD in the background with its output in LOG; records its PID
# (also in $RUN_DIR/NAME.pid). Needs setsid (util-linux).
bg_start() {
    local name="$1" logfile="$2"; shift 2
    mkdir -p "$RUN_DIR"
    # In a session of its own, so that Ctrl-C reaches only the script, which then stops the
    # processes in order (setsid execs in place here: the PID stays the one recorded).
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    BG_PIDS+=("$!")
    BG_NAMES+=("$name")
    echo "$!" >"$RUN_DIR/$name.pid"
    log "started $name (pid $!, log ${logfile#"$ROOT"/})"
}

# bg_pid NAME: the PID bg_start recorded for NAME (the latest one).
bg_pid() {
    local i
    for ((i = ${#BG_NAMES[@]} - 1; i >= 0; i--)); do
        if [ "${BG_NAMES[i]}" = "$1" ]; then echo "${BG_PIDS[i]}"; return 0; fi
    done
    return 1
}

# bg_alive NAME: fails when the process started as NAME has exited.
bg_alive() {
    local pid
    pid="$(bg_pid "$1")" && kill -0 "$pid" 2>/dev/null
}

# bg_stop NAME: stops the process started as NAME (SIGTERM, then SIGKILL after 5 s).
bg_stop() {
    local pid i
    pid="$(bg_pid "$1")" || return 0
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping $1 (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/$1.pid"
}

# bg_stop_all: stops everything bg_start started, newest first.
bg_stop_all() {
    local i
    for ((i = ${#BG_NAMES[@]} - 1; i >= 0; i--)); do
        bg_stop "${BG_NAMES[i]}"
    done
}

# free_port: a port that was free a moment ago on 127.0.0.1.
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# random_token: 32 random bytes, hex.
random_token() {
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}
