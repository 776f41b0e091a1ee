#!/usr/bin/env python3
"""Writes the benchmark's Envoy bootstrap (JSON): one listener whose only route answers
200 "ok" itself (direct_response), so that only the filter differs between scenarios.

    gen_envoy.py --filter KIND --port P --admin-port A [--sidecar-port S --wasm PATH]
                 [--keys-file F] [--creds-file F] [options] --out FILE

KIND (`wasm-*`: this project's filter, every sensitive value a `$secret://` reference resolved
by the sidecar from moto; `native-*`: Envoy's own filter with the same values inline):

* `none`: no filter (baseline).
Every `wasm-*` filter runs with `strip_identity_headers: false`, as the shipped configs do (the
listener's early header mutation removes client identity headers for every KIND);
--strip-identity-headers makes the filter remove them too.

* `wasm-key` (alias `wasm`), `native-key` (alias `native`): key-auth with --consumers consumers,
  keys `$secret://aws/bench/bench-keys/consumer-<i>` / Envoy api_key_auth (keys from --keys-file).
  `wasm-key --consumers 0 --no-plugins`: the filter with no plugin (its fixed cost).
* `wasm-noop` with --noop-mode noop|key-auth-calls and --wasm the bench/noop-filter module: what
  any Wasm filter costs (noop), plus the host calls of the key-auth happy path (key-auth-calls).
* `wasm-basic`, `native-basic`: basic-auth, one user / Envoy basic_auth with an htpasswd line
  `user:{SHA}base64(sha1(password))`.
* `wasm-jwt`, `native-jwt` with --alg HS256|RS256|ES256: jwt-auth with `secret` / `public_key`
  referenced / Envoy jwt_authn with local_jwks (an "oct", "RSA" or "EC" JWK), `forward: true` so that
  it keeps the Authorization header as the Wasm filter does; --jwt-cache turns on its
  jwt_cache_config (off by default; the Wasm filter always caches verified RS*/PS*/ES* tokens).
* `wasm-hmac`: hmac-auth (hmac-sha256, signed headers "@request-target date").
* `wasm-limit` with --limit-policy local|redis [--redis-port P --sync-interval S]: limit-count,
  no auth plugin, key remote_addr, a count that never runs out; `native-limit`: Envoy
  local_ratelimit with a token bucket that never runs out, enabled and enforced for 100% of the
  requests, with the X-RateLimit-* headers (the Wasm filter sends them by default).

--creds-file: the JSON object stored in moto as `bench-creds` (see run.sh): basic user and
password, jwt secrets and keys, hmac key id and secret.
"""
import argparse
import base64
import hashlib
import json

# A count / bucket no benchmark run can exhaust.
HUGE_COUNT = 1_000_000_000
LIMIT_WINDOW_S = 3600


# Client copies of the identity headers the Wasm filter writes, removed before route matching.
EARLY_IDENTITY_HEADER_REMOVAL = [
    {
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            "mutations": [
                {"remove": "x-consumer-username"},
                {"remove": "x-credential-identifier"},
                {"remove": "x-consumer-custom-id"},
                {"remove": "x-credential-version"},
            ],
        },
    }
]


def socket(port):
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def ref(field):
    return f"$secret://aws/bench/bench-creds/{field}"


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def wasm_filter(args, consumers, plugins):
    config = {
        "sidecar": {
            "cluster": "secret_sidecar",
            "authority": "secret-sidecar",
            "timeout_ms": args.sidecar_timeout_ms,
            "token": "$env://SECRET_SIDECAR_TOKEN",
        },
        "refresh_interval_s": 300,
        "startup_wait_ms": 5000,
        # As shipped: Envoy's early header mutation (below) removes client identity headers, so
        # the filter does not (--strip-identity-headers measures the filter doing it too).
        "strip_identity_headers": args.strip_identity_headers,
        "consumers": consumers,
        "plugins": plugins,
    }
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "envoy-secret-auth",
                "root_id": "envoy-secret-auth",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(config),
                },
                # Required with Envoy >= 1.35 (docs/DESIGN.md, "Envoy wiring").
                "allow_on_headers_stop_iteration": True,
                # As in every shipped config: never fail open (docs/SECURITY.md).
                "failure_policy": "FAIL_RELOAD",
                "vm_config": {
                    "vm_id": "envoy-secret-auth",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": args.wasm}},
                    "environment_variables": {"host_env_keys": ["SECRET_SIDECAR_TOKEN"]},
                },
            },
        },
    }


# --- a filter that does (almost) nothing: bench/noop-filter ------------------------------------
def wasm_noop(args):
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "bench-noop",
                "root_id": "bench-noop",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": args.noop_mode,
                },
                "allow_on_headers_stop_iteration": True,
                "failure_policy": "FAIL_RELOAD",
                "vm_config": {
                    "vm_id": "bench-noop",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": args.wasm}},
                },
            },
        },
    }


# --- key-auth -----------------------------------------------------------------------------------
def wasm_key(args):
    consumers = [
        {
            "username": f"consumer-{i}",
            "credentials": [
                {
                    "id": f"consumer-{i}-key-auth",
                    "type": "key-auth",
                    "key": f"$secret://aws/bench/bench-keys/consumer-{i}",
                }
            ],
        }
        for i in range(args.consumers)
    ]
    plugins = {"key-auth": {"header": "apikey", "query": "apikey", "hide_credentials": False}}
    if args.no_plugins:
        plugins = {}
    return wasm_filter(args, consumers, plugins)


def native_key(args):
    keys = load_json(args.keys_file)
    credentials = [{"key": keys[f"consumer-{i}"], "client": f"consumer-{i}"} for i in range(args.consumers)]
    return {
        "name": "envoy.filters.http.api_key_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
            "credentials": credentials,
            "key_sources": [{"header": "apikey"}],
        },
    }


# --- basic-auth ---------------------------------------------------------------------------------
def wasm_basic(args):
    creds = load_json(args.creds_file)
    consumers = [
        {
            "username": "bench-basic",
            "credentials": [
                {
                    "id": "bench-basic-auth",
                    "type": "basic-auth",
                    "username": creds["basic-user"],
                    "password": ref("basic-password"),
                }
            ],
        }
    ]
    return wasm_filter(args, consumers, {"basic-auth": {"hide_credentials": False}})


def native_basic(args):
    creds = load_json(args.creds_file)
    sha = base64.b64encode(hashlib.sha1(creds["basic-password"].encode()).digest()).decode()
    return {
        "name": "envoy.filters.http.basic_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
            "users": {"inline_string": f"{creds['basic-user']}:{{SHA}}{sha}\n"},
        },
    }


# --- jwt-auth -----------------------------------------------------------------------------------
def wasm_jwt(args):
    creds = load_json(args.creds_file)
    alg = args.alg.lower()
    credential = {
        "id": f"bench-jwt-{alg}",
        "type": "jwt-auth",
        "key": creds[f"jwt-{alg}-key"],
        "algorithm": args.alg,
    }
    if args.alg.startswith("HS"):
        credential["secret"] = ref(f"jwt-{alg}-secret")
    else:
        credential["public_key"] = ref(f"jwt-{alg}-public-key")
    consumers = [{"username": f"bench-jwt-{alg}", "credentials": [credential]}]
    return wasm_filter(args, consumers, {"jwt-auth": {"hide_credentials": False}})


def native_jwt(args):
    creds = load_json(args.creds_file)
    alg = args.alg.lower()
    if args.alg.startswith("HS"):
        secret = creds[f"jwt-{alg}-secret"].encode()
        jwk = {"kty": "oct", "alg": args.alg, "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    else:
        jwk = dict(creds[f"jwt-{alg}-jwk"], alg=args.alg)
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "bench": {
                    "local_jwks": {"inline_string": json.dumps({"keys": [jwk]})},
                    "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                    # Keep the token in the request, like the Wasm filter (hide_credentials false).
                    "forward": True,
                    **({"jwt_cache_config": {"jwt_cache_size": 100}} if args.jwt_cache else {}),
                }
            },
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }


# --- hmac-auth ----------------------------------------------------------------------------------
def wasm_hmac(args):
    creds = load_json(args.creds_file)
    consumers = [
        {
            "username": "bench-hmac",
            "credentials": [
                {
                    "id": "bench-hmac-auth",
                    "type": "hmac-auth",
                    "key_id": creds["hmac-key-id"],
                    "secret_key": ref("hmac-secret"),
                }
            ],
        }
    ]
    plugins = {
        "hmac-auth": {
            "allowed_algorithms": ["hmac-sha256"],
            "clock_skew": 300,
            "signed_headers": ["@request-target", "date"],
        }
    }
    return wasm_filter(args, consumers, plugins)


# --- limit-count --------------------------------------------------------------------------------
def wasm_limit(args):
    limit = {
        "count": HUGE_COUNT,
        "time_window": LIMIT_WINDOW_S,
        "key_type": "var",
        "key": "remote_addr",
        "policy": args.limit_policy,
    }
    if args.limit_policy == "redis":
        limit.update({"redis_host": "127.0.0.1", "redis_port": args.redis_port, "redis_timeout": 1000})
        if args.sync_interval:
            limit["sync_interval"] = args.sync_interval
    return wasm_filter(args, [], {"limit-count": limit})


def native_limit(args):
    def percent_100(key):
        return {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": key}

    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench_ratelimit",
            # HUGE_COUNT tokens at start, one more per window: never empty in a run, and
            # X-RateLimit-Remaining visibly goes down (with a fast refill it would stay at max).
            "token_bucket": {
                "max_tokens": HUGE_COUNT,
                "tokens_per_fill": 1,
                "fill_interval": f"{LIMIT_WINDOW_S}s",
            },
            # Without these two the filter is off (it defaults to 0% of the requests).
            "filter_enabled": percent_100("bench_ratelimit_enabled"),
            "filter_enforced": percent_100("bench_ratelimit_enforced"),
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        },
    }


FILTERS = {
    "wasm": wasm_key,
    "wasm-key": wasm_key,
    "native": native_key,
    "native-key": native_key,
    "wasm-basic": wasm_basic,
    "native-basic": native_basic,
    "wasm-jwt": wasm_jwt,
    "native-jwt": native_jwt,
    "wasm-hmac": wasm_hmac,
    "wasm-noop": wasm_noop,
    "wasm-limit": wasm_limit,
    "native-limit": native_limit,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--filter", choices=["none", *FILTERS], required=True)
    p.add_argument("--consumers", type=int, default=1)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--sidecar-port", type=int, default=7070)
    p.add_argument("--sidecar-timeout-ms", type=int, default=60000)
    p.add_argument("--wasm")
    p.add_argument("--keys-file")
    p.add_argument("--creds-file")
    p.add_argument("--alg", choices=["HS256", "RS256", "ES256"], default="HS256")
    p.add_argument("--jwt-cache", action="store_true", help="native-jwt: turn on jwt_cache_config")
    p.add_argument("--no-plugins", action="store_true", help="wasm-key: no plugin at all (fixed cost)")
    p.add_argument(
        "--strip-identity-headers",
        action="store_true",
        help="wasm-*: the filter removes client identity headers itself (default: Envoy does, as shipped)",
    )
    p.add_argument("--noop-mode", choices=["noop", "key-auth-calls", "get-only", "set-only", "key-auth-map"], default="noop")
    p.add_argument("--limit-policy", choices=["local", "redis"], default="local")
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--sync-interval", type=float)
    p.add_argument("--release-memory", action="store_true", help="memory_allocator_manager in the bootstrap")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    filters = []
    if args.filter != "none":
        filters.append(FILTERS[args.filter](args))
    filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }
    )
    bootstrap = {
        "admin": {"address": socket(args.admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": socket(args.port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "bench",
                                        # As in every shipped config (docs/SECURITY.md).
                                        "common_http_protocol_options": {
                                            "headers_with_underscores_action": "DROP_HEADER"
                                        },
                                        # As in every shipped config (docs/SECURITY.md "Route
                                        # re-matching"): client identity headers are removed
                                        # before routing. Set for every KIND, the native filters
                                        # and `none` included, so that the ratios stay fair.
                                        "early_header_mutation_extensions": EARLY_IDENTITY_HEADER_REMOVAL,
                                        "route_config": {
                                            "name": "bench",
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "name": "ok",
                                                            "match": {"prefix": "/"},
                                                            "direct_response": {
                                                                "status": 200,
                                                                "body": {"inline_string": "ok"},
                                                            },
                                                        }
                                                    ],
                                                }
                                            ],
                                        },
                                        "http_filters": filters,
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "secret_sidecar",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "secret_sidecar",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(args.sidecar_port)}}]}],
                    },
                }
            ],
        },
    }
    if args.release_memory:
        # Hand the allocator's free pages back to the OS (what configuring a large plugin
        # configuration leaves behind): bytes_to_release every memory_release_interval.
        bootstrap["memory_allocator_manager"] = {
            "bytes_to_release": 64 * 1024 * 1024,
            "memory_release_interval": "1s",
        }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(bootstrap, f)


if __name__ == "__main__":
    main()
