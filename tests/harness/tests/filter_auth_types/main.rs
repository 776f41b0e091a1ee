//! The real filter `.wasm` against DESIGN.md section 3 for the credential types of issue 3:
//! APISIX-compatible basic-auth, jwt-auth and hmac-auth, the anonymous consumer, per-route plugin
//! sets and multi-auth. Sensitive fields are `$secret://` references answered through the sidecar
//! callout, plus a few plain values.
//!
//! Tokens, keys and signatures are made at test time by Python (PyJWT, `cryptography`, `hmac`),
//! never by our code; the harness clock starts at the real time so their `exp` / `Date` line up.
//!
//! Build the filter first (cargo, then the removal of unused callback exports):
//!     scripts/build.sh

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod basic;
mod hmac;
mod host_calls;
mod hostile;
mod jwt;
mod metrics;
mod python;
mod routes;

use std::time::{Duration, SystemTime};

use proxy_wasm_harness::{header_all, Host, HostOptions, LogLevel, Outcome, Stream};
use serde_json::{json, Value};
use support::{
    answer, assert_authenticated, assert_refused, assert_warn_logged, first_answered, get,
    one_callout, request, sidecar, started_with, Filter, FIRST_FETCH,
};

use python::{hs256, jwts, keys, sign, HmacSpec, Signed};

const ALICE_PASSWORD_REF: &str =
    "$secret://aws/my-secrets-manager/alice-credentials/alice-password";
const ALICE_JWT_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-jwt-secret";
const ALICE_HMAC_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-hmac-secret";
const ALICE_KEY_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
const BOB_RSA_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/bob-rsa-public-key";
const CAROL_EC_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/carol-ec-public-key";

const ALICE_PASSWORD: &str = "alice-password";
const ALICE_JWT_SECRET: &str = "alice-jwt-secret-value";
const ALICE_HMAC_SECRET: &str = "alice-hmac-secret-value";
const ALICE_KEY: &str = "alice-key";
const BOB_PASSWORD: &str = "bob-plain-pw";
const BOB_HMAC_SECRET: &str = "bob-hmac-plain-secret";
const CAROL_GRACE_SECRET: &str = "carol-grace-secret";

// `printf 'user:password' | base64`
const B64_ALICE: &str = "YWxpY2U6YWxpY2UtcGFzc3dvcmQ="; // alice:alice-password
const B64_BOB: &str = "Ym9iOmJvYi1wbGFpbi1wdw=="; // bob:bob-plain-pw
const B64_ALICE_WRONG: &str = "YWxpY2U6d3Jvbmc="; // alice:wrong
const B64_ALICE_LONGER: &str = "YWxpY2U6YWxpY2UtcGFzc3dvcmQtYnV0LWxvbmdlcg=="; // alice:alice-password-but-longer
const B64_EVE: &str = "ZXZlOndoYXRldmVy"; // eve:whatever
const B64_NO_COLON: &str = "YWxpY2U="; // alice

const BASIC_REALM: &str = r#"Basic realm="basic""#;
const JWT_REALM: &str = r#"Bearer realm="jwt""#;
const HMAC_REALM: &str = r#"hmac realm="hmac""#;
const HMAC_GENERIC: &str = "client request can't be validated";

// ---- the host --------------------------------------------------------------------------------

/// alice (label custom_id) has one credential of each type, her secrets behind references; bob
/// (no labels) has plain basic/hmac values and an RS256 key behind a reference; carol has an ES256
/// key behind a reference and a plain HS256 secret with a 60 s grace period; anon has nothing.
fn config(plugins: Value) -> Value {
    json!({
        "sidecar": sidecar(),
        "refresh_interval_s": 30,
        "startup_wait_ms": 5000,
        "consumers": [
            {"username": "alice", "labels": {"custom_id": "alice-001"},
             "credentials": [
                {"id": "alice-basic", "type": "basic-auth", "username": "alice",
                 "password": ALICE_PASSWORD_REF},
                {"id": "alice-jwt", "type": "jwt-auth", "key": "alice-jwt-key",
                 "secret": ALICE_JWT_REF},
                {"id": "alice-hmac", "type": "hmac-auth", "key_id": "alice-keyid",
                 "secret_key": ALICE_HMAC_REF},
                {"id": "alice-key-auth", "type": "key-auth", "key": ALICE_KEY_REF}
             ]},
            {"username": "bob",
             "credentials": [
                {"id": "bob-basic", "type": "basic-auth", "username": "bob",
                 "password": BOB_PASSWORD},
                {"id": "bob-jwt", "type": "jwt-auth", "key": "bob-rsa", "algorithm": "RS256",
                 "public_key": BOB_RSA_REF},
                {"id": "bob-hmac", "type": "hmac-auth", "key_id": "bob-keyid",
                 "secret_key": BOB_HMAC_SECRET}
             ]},
            {"username": "carol",
             "credentials": [
                {"id": "carol-ec", "type": "jwt-auth", "key": "carol-ec", "algorithm": "ES256",
                 "public_key": CAROL_EC_REF},
                {"id": "carol-grace", "type": "jwt-auth", "key": "carol-grace",
                 "secret": CAROL_GRACE_SECRET, "lifetime_grace_period": 60}
             ]},
            {"username": "anon"}
        ],
        "plugins": plugins
    })
}
fn values() -> Vec<(&'static str, &'static str)> {
    vec![
        (ALICE_PASSWORD_REF, ALICE_PASSWORD),
        (ALICE_JWT_REF, ALICE_JWT_SECRET),
        (ALICE_HMAC_REF, ALICE_HMAC_SECRET),
        (ALICE_KEY_REF, ALICE_KEY),
        (BOB_RSA_REF, keys().rsa_public.as_str()),
        (CAROL_EC_REF, keys().ec_public.as_str()),
    ]
}
/// Configured and accepted, the sidecar not asked yet; the clock at the real time.
fn started(config: &Value) -> Filter {
    let options = HostOptions {
        now: SystemTime::now(),
        ..HostOptions::default()
    };
    started_with(config, options)
}

/// Started and the first callout answered with every referenced value.
fn configured(config: &Value) -> Filter {
    first_answered(started(config), &values())
}

/// Asserts a local reply `status` with body exactly `{"message":"<message>"}\n` and
/// `WWW-Authenticate: <www>` (or none).
fn assert_reply(host: &Host, s: Stream, status: u32, message: &str, www: Option<&str>) {
    let reply = host
        .local_reply(s)
        .unwrap_or_else(|| panic!("expected a {status}, got {:?}", host.outcome(s)));
    assert_eq!(
        (reply.status, reply.body_str().as_ref()),
        (status, format!("{{\"message\":\"{message}\"}}\n").as_str())
    );
    assert_eq!(reply.header("www-authenticate"), www, "{reply:?}");
}

const SPOOFED: &[(&str, &str)] = &[
    ("x-consumer-username", "mallory"),
    ("x-consumer-username", "eve"),
    ("x-credential-identifier", "forged"),
    ("x-consumer-custom-id", "forged-001"),
];

fn with_spoofed<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut headers = extra.to_vec();
    headers.extend_from_slice(SPOOFED);
    headers
}
