//! Speed probe for builds of the filter `.wasm` (issue #9: a smaller `.wasm` without losing
//! speed): times key-auth, basic-auth, jwt-auth HS256 / RS256 / ES256 / ES384 / EdDSA and
//! hmac-auth on wasmtime, every request with a credential of its own (distinct tokens and
//! signatures: every signature is checked, nothing comes from the RS256 verification cache). Not
//! a test: run it on purpose, against the build to measure,
//!
//!     FILTER_WASM=path/to/variant.wasm cargo test -p proxy-wasm-harness --release \
//!         --test speed_probe -- --ignored --nocapture
//!
//! It prints one line per plugin: microseconds per request (the best of `ROUNDS` rounds, the
//! least disturbed by other load; each round with tokens of its own). Compare builds on the same machine, one right after the other.
//! `SPEED_PROBE_REQUESTS` sets the requests per plugin and round (default 2000). With
//! `HARNESS_FUEL=1` it also prints the Wasm instructions per request (wasmtime's fuel, the same
//! on every run: the figure to compare on a busy machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::{Duration, Instant, SystemTime};

use proxy_wasm_harness::{HostOptions, Outcome};
use serde_json::{json, Value};
use support::{get, python, started_with, Filter};

const ROUNDS: usize = 3;

/// A request to time: its path and its headers.
type Request = (String, Vec<(String, String)>);

/// Credentials made by `scripts/sign.py` (PyJWT, `cryptography`): `n` of each kind, all valid now.
fn credentials(n: usize) -> Value {
    let script = r#"
import json, sys, time
import sign
n = int(json.load(sys.stdin))
rsa, ec = sign.new_key("rsa"), sign.new_key("ec")
ec384, ed = sign.new_key("ec384"), sign.new_key("ed25519")
now = time.time()
def hmac_headers(i):
    date = sign.http_date(now)
    text = sign.signing_string("probe-keyid", "GET", f"/ip?n={i}", ["@request-target", "date"],
                               {"date": date})
    sig = sign.hmac_signature("probe-hmac-secret", "hmac-sha256", text)
    auth = ('Signature keyId="probe-keyid",algorithm="hmac-sha256",'
            f'headers="@request-target date",signature="{sig}"')
    return [auth, date]
print(json.dumps({
    "rsa_public": sign.public_pem(rsa),
    "ec_public": sign.public_pem(ec),
    "ec384_public": sign.public_pem(ec384),
    "ed_public": sign.public_pem(ed),
    "hs256": [sign.jwt_token({"key": "probe-hs", "jti": i}, "probe-jwt-secret-0123456789abcdef", "HS256", exp_in=3600) for i in range(n)],
    "rs256": [sign.jwt_token({"key": "probe-rs", "jti": i}, rsa, "RS256", exp_in=3600) for i in range(n)],
    "es256": [sign.jwt_token({"key": "probe-es", "jti": i}, ec, "ES256", exp_in=3600) for i in range(n)],
    "es384": [sign.jwt_token({"key": "probe-es384", "jti": i}, ec384, "ES384", exp_in=3600) for i in range(n)],
    "eddsa": [sign.jwt_token({"key": "probe-ed", "jti": i}, ed, "EdDSA", exp_in=3600) for i in range(n)],
    "hmac": [hmac_headers(i) for i in range(n)],
}))
"#;
    python(script, &json!(n))
}

/// One consumer per credential type, all values literal (no callout), and `plugins` on the route.
fn config(creds: &Value, plugins: Value) -> Value {
    json!({
        "sidecar": support::sidecar(),
        "consumers": [
            {"username": "probe", "credentials": [
                {"id": "probe-key", "type": "key-auth", "key": "probe-key-value"},
                {"id": "probe-basic", "type": "basic-auth", "username": "probe",
                 "password": "probe-password"},
                {"id": "probe-hs", "type": "jwt-auth", "key": "probe-hs",
                 "secret": "probe-jwt-secret-0123456789abcdef"},
                {"id": "probe-rs", "type": "jwt-auth", "key": "probe-rs", "algorithm": "RS256",
                 "public_key": creds["rsa_public"]},
                {"id": "probe-es", "type": "jwt-auth", "key": "probe-es", "algorithm": "ES256",
                 "public_key": creds["ec_public"]},
                {"id": "probe-es384", "type": "jwt-auth", "key": "probe-es384", "algorithm": "ES384",
                 "public_key": creds["ec384_public"]},
                {"id": "probe-ed", "type": "jwt-auth", "key": "probe-ed", "algorithm": "EdDSA",
                 "public_key": creds["ed_public"]},
                {"id": "probe-hmac", "type": "hmac-auth", "key_id": "probe-keyid",
                 "secret_key": "probe-hmac-secret"}
            ]}
        ],
        "plugins": plugins
    })
}

/// The best time per request over `ROUNDS` rounds, each a `1/ROUNDS` share of `requests` (so
/// that no token is seen twice), every request accepted, on one VM; and the Wasm instructions
/// per request over all rounds (with `HARNESS_FUEL`).
fn time_plugin(config: &Value, requests: &[Request]) -> (Duration, Option<u64>) {
    let options = HostOptions {
        now: SystemTime::now(),
        ..HostOptions::default()
    };
    let mut host: Filter = started_with(config, options);
    let mut best = Duration::MAX;
    let fuel_before = host.fuel_used();
    for round in requests.chunks(requests.len() / ROUNDS) {
        let start = Instant::now();
        for (path, headers) in round {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let s = get(&mut host, path, &headers);
            assert_eq!(host.outcome(s), Outcome::Continue, "{:?}", host.logs());
            host.finish(s).unwrap();
            host.forget(s);
        }
        best = best.min(start.elapsed() / round.len() as u32);
    }
    let fuel = host
        .fuel_used()
        .zip(fuel_before)
        .map(|(after, before)| (after - before) / requests.len() as u64);
    (best, fuel)
}

#[test]
#[ignore]
fn speed_probe() {
    let n: usize = std::env::var("SPEED_PROBE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
        * ROUNDS;
    let creds = credentials(n);
    let strings = |kind: &str| -> Vec<String> {
        creds[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    let same = |header: &str, value: &str| -> Vec<Request> {
        (0..n)
            .map(|_| {
                (
                    "/ip".to_owned(),
                    vec![(header.to_owned(), value.to_owned())],
                )
            })
            .collect()
    };
    let bearer = |kind: &str| -> Vec<Request> {
        strings(kind)
            .into_iter()
            .map(|t| {
                (
                    "/ip".to_owned(),
                    vec![("authorization".to_owned(), format!("Bearer {t}"))],
                )
            })
            .collect()
    };
    let hmac: Vec<Request> = creds["hmac"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                format!("/ip?n={i}"),
                vec![
                    (
                        "authorization".to_owned(),
                        h[0].as_str().unwrap().to_owned(),
                    ),
                    ("date".to_owned(), h[1].as_str().unwrap().to_owned()),
                ],
            )
        })
        .collect();
    // "cHJvYmU6cHJvYmUtcGFzc3dvcmQ=" is base64("probe:probe-password").
    let cases: Vec<(&str, Value, Vec<Request>)> = vec![
        ("no plugin", json!({}), same("x-probe", "1")),
        (
            "key-auth",
            json!({"key-auth": {}}),
            same("apikey", "probe-key-value"),
        ),
        (
            "basic-auth",
            json!({"basic-auth": {}}),
            same("authorization", "Basic cHJvYmU6cHJvYmUtcGFzc3dvcmQ="),
        ),
        ("jwt HS256", json!({"jwt-auth": {}}), bearer("hs256")),
        ("hmac-auth", json!({"hmac-auth": {}}), hmac),
        ("jwt ES256", json!({"jwt-auth": {}}), bearer("es256")),
        ("jwt ES384", json!({"jwt-auth": {}}), bearer("es384")),
        ("jwt EdDSA", json!({"jwt-auth": {}}), bearer("eddsa")),
        ("jwt RS256", json!({"jwt-auth": {}}), bearer("rs256")),
    ];
    println!(
        "speed probe: {} ({} requests per plugin and round, best of {ROUNDS} rounds)",
        proxy_wasm_harness::filter_wasm_path().display(),
        n / ROUNDS
    );
    for (name, plugins, requests) in cases {
        let (per_request, fuel) = time_plugin(&config(&creds, plugins), &requests);
        let instructions = fuel.map_or(String::new(), |f| format!("  {f:>9} instructions/request"));
        println!(
            "speed-probe {name:<12} {:>9.1} µs/request{instructions}",
            per_request.as_secs_f64() * 1e6
        );
    }
}
