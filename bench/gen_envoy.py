#!/usr/bin/env python3
"""Writes the benchmark's Envoy bootstrap (JSON): one listener whose only route answers
200 "ok" itself (direct_response), so that only the auth filter differs between scenarios.

    gen_envoy.py --filter none|wasm|native --consumers N --port P --admin-port A \
                 [--sidecar-port S --wasm PATH] --out FILE

`wasm`: the secret-auth filter with N key-auth consumers whose keys are
$secret://aws/bench/bench-keys/consumer-<i> (one secret, N JSON fields, resolved by the sidecar).
`native`: Envoy's own api_key_auth filter with the same N keys inline (read from --keys-file),
for comparison in the same run.
"""
import argparse
import json


def socket(port):
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def wasm_filter(args):
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
    config = {
        "sidecar": {
            "cluster": "secret_sidecar",
            "authority": "secret-sidecar",
            "timeout_ms": args.sidecar_timeout_ms,
            "token": "$env://SECRET_SIDECAR_TOKEN",
        },
        "refresh_interval_s": 300,
        "startup_wait_ms": 5000,
        "consumers": consumers,
        "plugins": {"key-auth": {"header": "apikey", "query": "apikey", "hide_credentials": False}},
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
                "allow_on_headers_stop_iteration": True,
                "vm_config": {
                    "vm_id": "envoy-secret-auth",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": args.wasm}},
                    "environment_variables": {"host_env_keys": ["SECRET_SIDECAR_TOKEN"]},
                },
            },
        },
    }


def native_filter(args):
    with open(args.keys_file, encoding="utf-8") as f:
        keys = json.load(f)
    credentials = [{"key": keys[f"consumer-{i}"], "client": f"consumer-{i}"} for i in range(args.consumers)]
    return {
        "name": "envoy.filters.http.api_key_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
            "credentials": credentials,
            "key_sources": [{"header": "apikey"}],
        },
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--filter", choices=["none", "wasm", "native"], required=True)
    p.add_argument("--consumers", type=int, default=1)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--sidecar-port", type=int, default=7070)
    p.add_argument("--sidecar-timeout-ms", type=int, default=60000)
    p.add_argument("--wasm")
    p.add_argument("--keys-file")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    filters = []
    if args.filter == "wasm":
        filters.append(wasm_filter(args))
    elif args.filter == "native":
        filters.append(native_filter(args))
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
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(bootstrap, f)


if __name__ == "__main__":
    main()
