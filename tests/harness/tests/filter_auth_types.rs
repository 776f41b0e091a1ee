//! The real filter `.wasm` against DESIGN.md section 3 for the credential types of issue 3:
//! APISIX-compatible basic-auth, jwt-auth and hmac-auth, the anonymous consumer, per-route plugin
//! sets and multi-auth. Sensitive fields are `$secret://` references answered through the sidecar
//! callout, plus a few plain values.
//!
//! Tokens, keys and signatures are made at test time by Python (PyJWT, `cryptography`, `hmac`),
//! never by our code; the harness clock starts at the real time so their `exp` / `Date` line up.
//!
//! Build the filter first:
//!     cargo build --profile wasm-release --target wasm32-wasip1 -p envoy-secret-auth-filter

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use proxy_wasm_harness::{
    filter_wasm, header_all, workspace_dir, Host, HostOptions, HttpCall, LogLevel, Outcome, Stream,
};
use serde_json::{json, Value};

const TOKEN: &str = "test-sidecar-token";
const FIRST_FETCH: Duration = Duration::from_secs(1);

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

// ---- python: keys, tokens, signatures --------------------------------------------------------

/// Runs `script` with the venv's Python, `input` as JSON on stdin; its stdout is JSON.
fn python(script: &str, input: &Value) -> Value {
    let python = workspace_dir().join(".venv/bin/python");
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Keys {
    rsa_private: String,
    rsa_public: String,
    /// Another RSA key pair, for rotation.
    rsa2_private: String,
    rsa2_public: String,
    ec_private: String,
    ec_public: String,
}

/// Two RSA-2048 and an EC P-256 key pair, made once per test run.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let script = r#"
import json
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec, rsa
r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
r2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
e = ec.generate_private_key(ec.SECP256R1())
priv = lambda k: k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode()
pub = lambda k: k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode()
print(json.dumps({"rsa_private": priv(r), "rsa_public": pub(r), "rsa2_private": priv(r2),
                  "rsa2_public": pub(r2), "ec_private": priv(e), "ec_public": pub(e)}))
"#;
        let v = python(script, &json!({}));
        let field = |k: &str| v[k].as_str().unwrap().to_owned();
        Keys {
            rsa_private: field("rsa_private"),
            rsa_public: field("rsa_public"),
            rsa2_private: field("rsa2_private"),
            rsa2_public: field("rsa2_public"),
            ec_private: field("ec_private"),
            ec_public: field("ec_public"),
        }
    })
}

/// Tokens made by PyJWT from specs `{"alg", "key", "claims", "exp_in"?, "nbf_in"?}` (`*_in`:
/// seconds from now). `"raw_hmac": true` signs HS256 by hand with `key` as the HMAC secret
/// whatever `alg` says (PyJWT refuses a PEM as an HMAC secret).
fn jwts(specs: &[Value]) -> Vec<String> {
    let script = r#"
import base64, hashlib, hmac, json, sys, time
import jwt
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
out = []
for t in json.load(sys.stdin):
    claims = dict(t.get("claims", {}))
    for name in ("exp", "nbf", "iat"):
        if name + "_in" in t:
            claims[name] = now + t[name + "_in"]
    if t.get("raw_hmac"):
        head = b64(json.dumps({"alg": t["alg"], "typ": "JWT"}).encode())
        body = b64(json.dumps(claims).encode())
        sig = hmac.new(t["key"].encode(), (head + "." + body).encode(), hashlib.sha256).digest()
        out.append(head + "." + body + "." + b64(sig))
    else:
        out.append(jwt.encode(claims, t["key"], algorithm=t["alg"]))
print(json.dumps(out))
"#;
    let v = python(script, &Value::Array(specs.to_vec()));
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn hs256(secret: &str, key: &str, exp_in: i64) -> Value {
    json!({"alg": "HS256", "key": secret, "claims": {"key": key}, "exp_in": exp_in})
}

/// One hmac-auth request to sign, APISIX 3.11+ scheme.
#[derive(Clone, Copy)]
struct HmacSpec<'a> {
    key_id: &'a str,
    secret: &'a str,
    algorithm: &'a str,
    method: &'a str,
    path: &'a str,
    /// Space separated, as in the `headers` field.
    headers: &'a str,
    date_offset_s: i64,
    /// Its `Digest` is made too (and is the value of a signed `digest` header).
    body: &'a str,
}

impl Default for HmacSpec<'_> {
    fn default() -> Self {
        HmacSpec {
            key_id: "alice-keyid",
            secret: ALICE_HMAC_SECRET,
            algorithm: "hmac-sha256",
            method: "GET",
            path: "/ip?x=1",
            headers: "@request-target date",
            date_offset_s: 0,
            body: "",
        }
    }
}

struct Signed {
    date: String,
    digest: String,
    authorization: String,
}

/// Signs with Python's `hmac`: signing string = keyId, then per signed header `name: value`
/// (`@request-target`: `METHOD path`), each line ending in `\n`.
fn sign(specs: &[HmacSpec]) -> Vec<Signed> {
    let script = r#"
import base64, email.utils, hashlib, hmac, json, sys, time
out = []
for r in json.load(sys.stdin):
    date = email.utils.formatdate(time.time() + r["date_offset_s"], usegmt=True)
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(r["body"].encode()).digest()).decode()
    values = {"date": date, "digest": digest}
    lines = [r["key_id"]]
    for h in r["headers"].split(" "):
        if h == "@request-target":
            lines.append(r["method"] + " " + r["path"])
        else:
            lines.append(h + ": " + values[h])
    mod = {"hmac-sha1": hashlib.sha1, "hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512}[r["algorithm"]]
    mac = hmac.new(r["secret"].encode(), ("\n".join(lines) + "\n").encode(), mod).digest()
    out.append({"date": date, "digest": digest, "signature": base64.b64encode(mac).decode()})
print(json.dumps(out))
"#;
    let input: Vec<Value> = specs
        .iter()
        .map(|s| {
            json!({"key_id": s.key_id, "secret": s.secret, "algorithm": s.algorithm,
                   "method": s.method, "path": s.path, "headers": s.headers,
                   "date_offset_s": s.date_offset_s, "body": s.body})
        })
        .collect();
    let out = python(script, &Value::Array(input));
    out.as_array()
        .unwrap()
        .iter()
        .zip(specs)
        .map(|(o, s)| Signed {
            date: o["date"].as_str().unwrap().to_owned(),
            digest: o["digest"].as_str().unwrap().to_owned(),
            authorization: format!(
                r#"Signature keyId="{}",algorithm="{}",headers="{}",signature="{}""#,
                s.key_id,
                s.algorithm,
                s.headers,
                o["signature"].as_str().unwrap()
            ),
        })
        .collect()
}

// ---- the host --------------------------------------------------------------------------------

/// A host running the filter. When the test ends it checks the VM is alive and the filter made
/// no host call Envoy would ignore or refuse.
struct Filter(Host);

impl Deref for Filter {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.0
    }
}

impl DerefMut for Filter {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.0
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(!self.0.is_dead(), "the VM died: {}", self.0.stderr());
            assert!(
                self.0.violations().is_empty(),
                "host calls Envoy would ignore or refuse: {:?}",
                self.0.violations()
            );
        }
    }
}

/// alice (label custom_id) has one credential of each type, her secrets behind references; bob
/// (no labels) has plain basic/hmac values and an RS256 key behind a reference; carol has an ES256
/// key behind a reference and a plain HS256 secret with a 60 s grace period; anon has nothing.
fn config(plugins: Value) -> Value {
    json!({
        "sidecar": {
            "cluster": "secret_sidecar",
            "authority": "secret-sidecar",
            "timeout_ms": 2000,
            "token": "$env://SECRET_SIDECAR_TOKEN"
        },
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
    let wasm = filter_wasm().unwrap();
    let mut host = Filter(
        Host::new(
            wasm,
            HostOptions {
                env: vec![("SECRET_SIDECAR_TOKEN".to_owned(), TOKEN.to_owned())],
                plugin_config: config.to_string().into_bytes(),
                now: SystemTime::now(),
                ..HostOptions::default()
            },
        )
        .unwrap(),
    );
    assert!(host.start().unwrap(), "config refused: {:?}", host.logs());
    host
}

/// The one callout the filter makes within `within`.
fn one_callout(host: &mut Host, within: Duration) -> HttpCall {
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while waited < within {
        host.advance(step).unwrap();
        waited += step;
        let mut calls = host.take_http_calls();
        if !calls.is_empty() {
            assert_eq!(calls.len(), 1, "expected exactly one callout: {calls:?}");
            return calls.remove(0);
        }
    }
    panic!("no callout within {within:?}");
}

/// Answers a resolve callout like the sidecar: refs in `values` resolve, others are not found.
fn answer(host: &mut Host, call: &HttpCall, values: &[(&str, &str)]) {
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    let results: Vec<Value> = body["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_str().unwrap();
            match values.iter().find(|(k, _)| *k == r) {
                Some((_, v)) => json!({"ref": r, "value": v, "stale": false}),
                None => json!({"ref": r, "error": {"code": "secret_not_found",
                    "message": "not found", "did_you_mean": []}}),
            }
        })
        .collect();
    let body = json!({ "results": results }).to_string();
    host.respond(
        call.token,
        &[(":status", "200"), ("content-type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
}

/// Started and the first callout answered with every referenced value.
fn configured(config: &Value) -> Filter {
    let mut host = started(config);
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, &values());
    host
}

fn request(host: &mut Host, method: &str, path: &str, extra: &[(&str, &str)], eos: bool) -> Stream {
    let mut headers = vec![
        (":method", method),
        (":path", path),
        (":authority", "example.com"),
    ];
    headers.extend_from_slice(extra);
    host.request(&headers, eos).unwrap()
}

fn get(host: &mut Host, path: &str, extra: &[(&str, &str)]) -> Stream {
    request(host, "GET", path, extra, true)
}

/// Asserts the stream went upstream as `username` / `credential`, with `custom_id` (or no
/// `X-Consumer-Custom-Id` at all).
fn assert_authenticated(
    host: &Host,
    s: Stream,
    username: &str,
    credential: &str,
    custom_id: Option<&str>,
) {
    assert_eq!(
        host.outcome(s),
        Outcome::Continue,
        "logs: {:?}",
        host.logs()
    );
    let forwarded = host.request_headers(s);
    assert_eq!(header_all(&forwarded, "x-consumer-username"), [username]);
    assert_eq!(
        header_all(&forwarded, "x-credential-identifier"),
        [credential]
    );
    let custom: Vec<&str> = custom_id.into_iter().collect();
    assert_eq!(header_all(&forwarded, "x-consumer-custom-id"), custom);
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

fn assert_warn_logged(host: &Host, reason: &str) {
    assert!(
        host.logs()
            .iter()
            .any(|(level, line)| *level == LogLevel::Warn && line.contains(reason)),
        "no warn log line contains {reason:?}: {:?}",
        host.logs()
    );
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

// ---- basic-auth ------------------------------------------------------------------------------

fn basic() -> Value {
    config(json!({"basic-auth": {}}))
}

#[test]
fn basic_auth_accepts_and_replaces_spoofed_consumer_headers() {
    let mut host = configured(&basic());
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &with_spoofed(&[("authorization", &auth)]));
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    // hide_credentials is false: the header goes upstream.
    assert_eq!(host.request_header(s, "authorization"), Some(auth));

    // bob has no custom_id label: the client's copy is removed, not passed on.
    let auth = format!("Basic {B64_BOB}");
    let s = get(&mut host, "/ip", &with_spoofed(&[("authorization", &auth)]));
    assert_authenticated(&host, s, "bob", "bob-basic", None);
}

#[test]
fn basic_auth_scheme_is_case_insensitive() {
    let mut host = configured(&basic());
    for scheme in ["basic", "BASIC"] {
        let auth = format!("{scheme} {B64_ALICE}");
        let s = get(&mut host, "/ip", &[("authorization", &auth)]);
        assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    }
}

#[test]
fn basic_auth_missing_header_is_401_missing() {
    let mut host = configured(&basic());
    let s = get(&mut host, "/ip", &[]);
    assert_reply(
        &host,
        s,
        401,
        "Missing authorization in request",
        Some(BASIC_REALM),
    );
}

#[test]
fn basic_auth_malformed_header_is_401_invalid_authorization() {
    let mut host = configured(&basic());
    let no_colon = format!("Basic {B64_NO_COLON}");
    for auth in [
        "Bearer abc",
        "Digest YWxpY2U6YWxpY2UtcGFzc3dvcmQ=",
        "Basic",
        "Basic !!!not-base64!!!",
        no_colon.as_str(),
    ] {
        let s = get(&mut host, "/ip", &[("authorization", auth)]);
        assert_reply(
            &host,
            s,
            401,
            "Invalid authorization in request",
            Some(BASIC_REALM),
        );
    }
}

#[test]
fn basic_auth_wrong_password_or_unknown_user_is_401_invalid_user() {
    let mut host = configured(&basic());
    for b64 in [B64_ALICE_WRONG, B64_ALICE_LONGER, B64_EVE] {
        let auth = format!("Basic {b64}");
        let s = get(&mut host, "/ip", &[("authorization", &auth)]);
        assert_reply(
            &host,
            s,
            401,
            "Invalid user authorization",
            Some(BASIC_REALM),
        );
    }
}

#[test]
fn basic_auth_password_reference_that_does_not_resolve_matches_nobody() {
    let mut host = started(&basic());
    let call = one_callout(&mut host, FIRST_FETCH);
    let without_password: Vec<_> = values()
        .into_iter()
        .filter(|(r, _)| *r != ALICE_PASSWORD_REF)
        .collect();
    answer(&mut host, &call, &without_password);
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &[("authorization", &auth)]);
    assert_reply(
        &host,
        s,
        401,
        "Invalid user authorization",
        Some(BASIC_REALM),
    );
    // The reference string itself is no password either.
    let s = get(
        &mut host,
        "/ip",
        &[("authorization", "Basic YWxpY2U6JHNlY3JldDovL2F3cy9teS1zZWNyZXRzLW1hbmFnZXIvYWxpY2UtY3JlZGVudGlhbHMvYWxpY2UtcGFzc3dvcmQ=")],
    );
    assert_reply(
        &host,
        s,
        401,
        "Invalid user authorization",
        Some(BASIC_REALM),
    );
}

#[test]
fn basic_auth_hide_credentials_removes_authorization() {
    let mut host = configured(&config(json!({"basic-auth": {"hide_credentials": true}})));
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &[("authorization", &auth)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), None);
}

// ---- jwt-auth --------------------------------------------------------------------------------

fn jwt() -> Value {
    config(json!({"jwt-auth": {}}))
}

fn assert_jwt_failed(host: &Host, s: Stream, message: &str) {
    assert_reply(host, s, 401, message, Some(JWT_REALM));
}

const FAILED: &str = "failed to verify jwt";

#[test]
fn jwt_hs256_in_header_query_and_cookie() {
    let mut host = configured(&jwt());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);

    let bearer = format!("Bearer {token}");
    let s = get(
        &mut host,
        "/ip",
        &with_spoofed(&[("authorization", &bearer)]),
    );
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), Some(bearer));

    let path = format!("/ip?jwt={token}&page=2");
    let s = get(&mut host, &path, &[]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, ":path"), Some(path));

    let cookie = format!("theme=dark; jwt={token}");
    let s = get(&mut host, "/ip", &[("cookie", &cookie)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "cookie"), Some(cookie));
}

#[test]
fn jwt_header_wins_over_query_and_cookie() {
    let mut host = configured(&jwt());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let path = format!("/ip?jwt={token}");
    let cookie = format!("jwt={token}");
    let s = get(
        &mut host,
        &path,
        &[("authorization", "Bearer garbage"), ("cookie", &cookie)],
    );
    assert_jwt_failed(&host, s, "JWT token invalid");
}

#[test]
fn jwt_hide_credentials_removes_the_token_where_it_was() {
    let config = config(json!({"jwt-auth": {"hide_credentials": true}}));
    let mut host = configured(&config);
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);

    let bearer = format!("Bearer {token}");
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), None);

    let s = get(&mut host, &format!("/ip?page=2&jwt={token}"), &[]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(
        host.request_header(s, ":path").as_deref(),
        Some("/ip?page=2")
    );

    let cookie = format!("theme=dark; jwt={token}");
    let s = get(&mut host, "/ip", &[("cookie", &cookie)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(
        host.request_header(s, "cookie").as_deref(),
        Some("theme=dark")
    );

    let cookie = format!("jwt={token}");
    let s = get(&mut host, "/ip", &[("cookie", &cookie)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "cookie"), None);
}

#[test]
fn jwt_rs256_and_es256_with_referenced_public_keys() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        json!({"alg": "RS256", "key": k.rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
        json!({"alg": "ES256", "key": k.ec_private, "claims": {"key": "carol-ec"}, "exp_in": 3600}),
    ]);
    for _ in 0..2 {
        // Twice: the second time the verification cache answers.
        let bearer = format!("Bearer {}", tokens[0]);
        let s = get(
            &mut host,
            "/ip",
            &with_spoofed(&[("authorization", &bearer)]),
        );
        assert_authenticated(&host, s, "bob", "bob-jwt", None);
        let bearer = format!("Bearer {}", tokens[1]);
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_authenticated(&host, s, "carol", "carol-ec", None);
    }
}

#[test]
fn jwt_signed_with_another_key_fails() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        hs256("not-alice-secret", "alice-jwt-key", 3600),
        // For bob's RS256 credential but signed with the EC key (ES256).
        json!({"alg": "ES256", "key": k.ec_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
    ]);
    for token in &tokens {
        let bearer = format!("Bearer {token}");
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_jwt_failed(&host, s, FAILED);
    }
    // A valid token with its payload swapped for another one's.
    let good = jwts(&[
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", 60),
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", 7200),
    ]);
    let a: Vec<&str> = good[0].split('.').collect();
    let b: Vec<&str> = good[1].split('.').collect();
    let spliced = format!("Bearer {}.{}.{}", a[0], b[1], a[2]);
    let s = get(&mut host, "/ip", &[("authorization", &spliced)]);
    assert_jwt_failed(&host, s, FAILED);
}

#[test]
fn jwt_expired_is_failed_to_verify() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", -600),
        json!({"alg": "RS256", "key": k.rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": -600}),
        // Not valid yet.
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"key": "alice-jwt-key"},
               "exp_in": 3600, "nbf_in": 600}),
    ]);
    for token in &tokens {
        let bearer = format!("Bearer {token}");
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_jwt_failed(&host, s, FAILED);
    }
}

#[test]
fn jwt_cached_asymmetric_token_still_expires() {
    // Tokens first: the harness clock starts after Python's, so `exp_in` bounds hold on it.
    let token = jwts(&[
        json!({"alg": "RS256", "key": keys().rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 20}),
    ])
    .remove(0);
    let mut host = configured(&jwt());
    let bearer = format!("Bearer {token}");
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_authenticated(&host, s, "bob", "bob-jwt", None);
    host.advance(Duration::from_secs(25)).unwrap();
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_jwt_failed(&host, s, FAILED);
}

#[test]
fn jwt_wrong_algorithm_and_alg_none_fail() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        // HS512 with the right secret, the credential is HS256.
        json!({"alg": "HS512", "key": ALICE_JWT_SECRET, "claims": {"key": "alice-jwt-key"}, "exp_in": 3600}),
        // Algorithm confusion: HS256 keyed with bob's RSA public key PEM.
        json!({"alg": "HS256", "key": k.rsa_public, "claims": {"key": "bob-rsa"}, "exp_in": 3600,
               "raw_hmac": true}),
        // Unsigned.
        json!({"alg": "none", "key": null, "claims": {"key": "alice-jwt-key"}, "exp_in": 3600}),
    ]);
    assert!(
        tokens[2].ends_with('.'),
        "not an unsigned token: {}",
        tokens[2]
    );
    for token in &tokens {
        let bearer = format!("Bearer {token}");
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_jwt_failed(&host, s, FAILED);
    }
}

#[test]
fn jwt_missing_token_is_401_missing() {
    let mut host = configured(&jwt());
    for extra in [
        vec![],
        vec![("cookie", "theme=dark; jwtx=abc")],
        vec![("x-jwt", "abc")],
    ] {
        let s = get(&mut host, "/ip?jwtx=1", &extra);
        assert_jwt_failed(&host, s, "Missing JWT token in request");
    }
}

#[test]
fn jwt_garbage_is_401_token_invalid() {
    let mut host = configured(&jwt());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let two_parts = token.rsplit_once('.').unwrap().0.to_owned();
    let four_parts = format!("{token}.xyz");
    for auth in [
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Bearer ..",
        "Bearer",
        two_parts.as_str(),
        four_parts.as_str(),
    ] {
        let s = get(&mut host, "/ip", &[("authorization", auth)]);
        assert_jwt_failed(&host, s, "JWT token invalid");
    }
}

#[test]
fn jwt_without_key_claim_or_with_unknown_key() {
    let mut host = configured(&jwt());
    let tokens = jwts(&[
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"sub": "alice"}, "exp_in": 3600}),
        hs256(ALICE_JWT_SECRET, "nobody-key", 3600),
    ]);
    let bearer = format!("Bearer {}", tokens[0]);
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_jwt_failed(&host, s, "missing user key in JWT token");
    let bearer = format!("Bearer {}", tokens[1]);
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_jwt_failed(&host, s, "Invalid user key in JWT token");
}

#[test]
fn jwt_lifetime_grace_period_is_honoured() {
    // Tokens first: the harness clock starts after Python's, so `exp_in` bounds hold on it.
    let tokens = jwts(&[
        hs256(CAROL_GRACE_SECRET, "carol-grace", -30),
        hs256(CAROL_GRACE_SECRET, "carol-grace", -120),
        // The same age for a credential without grace.
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", -30),
        hs256(CAROL_GRACE_SECRET, "carol-grace", 10),
    ]);
    let mut host = configured(&jwt());
    let bearer = |i: usize| format!("Bearer {}", tokens[i]);
    let s = get(&mut host, "/ip", &[("authorization", &bearer(0))]);
    assert_authenticated(&host, s, "carol", "carol-grace", None);
    let s = get(&mut host, "/ip", &[("authorization", &bearer(1))]);
    assert_jwt_failed(&host, s, FAILED);
    let s = get(&mut host, "/ip", &[("authorization", &bearer(2))]);
    assert_jwt_failed(&host, s, FAILED);

    // On the harness clock: expired 40 s ago is within the grace, 70 s ago is not.
    host.advance(Duration::from_secs(50)).unwrap();
    let s = get(&mut host, "/ip", &[("authorization", &bearer(3))]);
    assert_authenticated(&host, s, "carol", "carol-grace", None);
    host.advance(Duration::from_secs(30)).unwrap();
    let s = get(&mut host, "/ip", &[("authorization", &bearer(3))]);
    assert_jwt_failed(&host, s, FAILED);
}

#[test]
fn jwt_key_claim_name_and_claims_to_verify_are_configurable() {
    let tokens = jwts(&[
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"iss": "alice-jwt-key"},
               "exp_in": -600}),
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"iss": "alice-jwt-key"},
               "exp_in": 3600, "nbf_in": 600}),
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600),
    ]);
    let config =
        config(json!({"jwt-auth": {"key_claim_name": "iss", "claims_to_verify": ["nbf"]}}));
    let mut host = configured(&config);
    let bearer = |i: usize| format!("Bearer {}", tokens[i]);
    // exp is not checked any more, nbf still is.
    let s = get(&mut host, "/ip", &[("authorization", &bearer(0))]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    let s = get(&mut host, "/ip", &[("authorization", &bearer(1))]);
    assert_jwt_failed(&host, s, FAILED);
    // The key is read from "iss" now.
    let s = get(&mut host, "/ip", &[("authorization", &bearer(2))]);
    assert_jwt_failed(&host, s, "missing user key in JWT token");
}

#[test]
fn jwt_rotated_public_key_refuses_tokens_of_the_old_key() {
    let k = keys();
    let tokens = jwts(&[
        json!({"alg": "RS256", "key": k.rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
        json!({"alg": "RS256", "key": k.rsa2_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
    ]);
    let old = format!("Bearer {}", tokens[0]);
    let new = format!("Bearer {}", tokens[1]);
    let mut host = configured(&jwt());
    // Verified once, so remembered by the verification cache.
    let s = get(&mut host, "/ip", &[("authorization", &old)]);
    assert_authenticated(&host, s, "bob", "bob-jwt", None);
    let s = get(&mut host, "/ip", &[("authorization", &new)]);
    assert_jwt_failed(&host, s, FAILED);

    let call = one_callout(&mut host, Duration::from_secs(31));
    let mut rotated = values();
    rotated.retain(|(r, _)| *r != BOB_RSA_REF);
    rotated.push((BOB_RSA_REF, k.rsa2_public.as_str()));
    answer(&mut host, &call, &rotated);

    let s = get(&mut host, "/ip", &[("authorization", &old)]);
    assert_jwt_failed(&host, s, FAILED);
    let s = get(&mut host, "/ip", &[("authorization", &new)]);
    assert_authenticated(&host, s, "bob", "bob-jwt", None);
}

#[test]
fn jwt_public_key_reference_that_is_not_a_pem_disables_the_credential() {
    let token = jwts(&[
        json!({"alg": "RS256", "key": keys().rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
    ])
    .remove(0);
    let mut host = started(&jwt());
    let call = one_callout(&mut host, FIRST_FETCH);
    let mut broken = values();
    broken.retain(|(r, _)| *r != BOB_RSA_REF);
    broken.push((BOB_RSA_REF, "garbage-key-material-7f3a"));
    answer(&mut host, &call, &broken);
    let s = get(
        &mut host,
        "/ip",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_jwt_failed(&host, s, "Invalid user key in JWT token");
    assert!(
        host.logs()
            .iter()
            .any(|(level, l)| *level == LogLevel::Error && l.contains("bob-jwt")),
        "{:?}",
        host.logs()
    );
    assert!(
        host.logs_containing("garbage-key-material").is_empty(),
        "the value was logged: {:?}",
        host.logs_containing("garbage-key-material")
    );
}

// ---- hmac-auth -------------------------------------------------------------------------------

fn hmac() -> Value {
    config(json!({"hmac-auth": {}}))
}

fn hmac_request(host: &mut Host, spec: &HmacSpec, signed: &Signed) -> Stream {
    get(
        host,
        spec.path,
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
        ],
    )
}

/// The generic 401, with the reason in the log. Such lines are throttled (one per 10 s per
/// worker: a client controls how many there are), so the clock moves on past the period.
fn assert_hmac_generic(host: &mut Host, s: Stream, reason: &str) {
    assert_reply(host, s, 401, HMAC_GENERIC, Some(HMAC_REALM));
    assert_warn_logged(host, reason);
    host.advance(HMAC_LOG_PERIOD).unwrap();
}

const HMAC_LOG_PERIOD: Duration = Duration::from_secs(10);

#[test]
fn hmac_sha256_with_request_target_and_date() {
    let mut host = configured(&hmac());
    let specs = [
        HmacSpec::default(),
        HmacSpec {
            key_id: "bob-keyid",
            secret: BOB_HMAC_SECRET,
            algorithm: "hmac-sha512",
            path: "/anything/x?a=1&b=%20",
            ..HmacSpec::default()
        },
        HmacSpec {
            key_id: "bob-keyid",
            secret: BOB_HMAC_SECRET,
            algorithm: "hmac-sha1",
            headers: "date @request-target",
            ..HmacSpec::default()
        },
    ];
    let signed = sign(&specs);
    let s = hmac_request(&mut host, &specs[0], &signed[0]);
    let s2 = {
        let mut headers = with_spoofed(&[]);
        headers.push(("authorization", &signed[0].authorization));
        headers.push(("date", &signed[0].date));
        get(&mut host, specs[0].path, &headers)
    };
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
    assert_authenticated(&host, s2, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(
        host.request_header(s, "authorization").as_deref(),
        Some(signed[0].authorization.as_str())
    );
    for i in [1, 2] {
        let s = hmac_request(&mut host, &specs[i], &signed[i]);
        assert_authenticated(&host, s, "bob", "bob-hmac", None);
    }
}

#[test]
fn hmac_hide_credentials_removes_authorization() {
    let mut host = configured(&config(json!({"hmac-auth": {"hide_credentials": true}})));
    let spec = HmacSpec::default();
    let signed = sign(&[spec]).remove(0);
    let s = hmac_request(&mut host, &spec, &signed);
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), None);
}

#[test]
fn hmac_clock_skew_exceeded() {
    let mut host = configured(&hmac());
    let specs = [
        HmacSpec {
            date_offset_s: -400,
            ..HmacSpec::default()
        },
        HmacSpec {
            date_offset_s: 400,
            ..HmacSpec::default()
        },
    ];
    for (spec, signed) in specs.iter().zip(sign(&specs)) {
        host.clear_logs();
        let s = hmac_request(&mut host, spec, &signed);
        assert_hmac_generic(&mut host, s, "Clock skew exceeded");
    }
    // Within the default 300 s.
    let spec = HmacSpec {
        date_offset_s: -200,
        ..HmacSpec::default()
    };
    let signed = sign(&[spec]).remove(0);
    let s = hmac_request(&mut host, &spec, &signed);
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn hmac_wrong_signature() {
    let mut host = configured(&hmac());
    let specs = [
        HmacSpec {
            secret: "not-alice-secret",
            ..HmacSpec::default()
        },
        // Signed for another path than the one requested.
        HmacSpec {
            path: "/other",
            ..HmacSpec::default()
        },
    ];
    let signed = sign(&specs);
    host.clear_logs();
    let s = hmac_request(&mut host, &specs[0], &signed[0]);
    assert_hmac_generic(&mut host, s, "Invalid signature");
    host.clear_logs();
    let s = get(
        &mut host,
        "/ip?x=1",
        &[
            ("authorization", &signed[1].authorization),
            ("date", &signed[1].date),
        ],
    );
    assert_hmac_generic(&mut host, s, "Invalid signature");
}

#[test]
fn hmac_missing_or_non_signature_authorization_exposes_the_reason() {
    let mut host = configured(&hmac());
    let s = get(&mut host, "/ip", &[]);
    assert_reply(
        &host,
        s,
        401,
        "client request can't be validated: missing Authorization header",
        Some(HMAC_REALM),
    );
    let s = get(&mut host, "/ip", &[("authorization", "Bearer abc")]);
    assert_reply(
        &host,
        s,
        401,
        "client request can't be validated: Authorization header does not start with 'Signature'",
        Some(HMAC_REALM),
    );
}

#[test]
fn hmac_other_failures_are_generic_with_the_reason_logged() {
    let config =
        config(json!({"hmac-auth": {"allowed_algorithms": ["hmac-sha256", "hmac-sha512"]}}));
    let mut host = configured(&config);
    let specs = [
        HmacSpec {
            key_id: "nobody-keyid",
            ..HmacSpec::default()
        },
        HmacSpec {
            algorithm: "hmac-sha1",
            ..HmacSpec::default()
        },
        // date not signed
        HmacSpec {
            headers: "@request-target",
            ..HmacSpec::default()
        },
    ];
    let signed = sign(&specs);
    // alice's key id: the checks before the signature's pass.
    let alice_auth = signed[0]
        .authorization
        .replace("nobody-keyid", "alice-keyid");
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "Invalid key_id",
            vec![
                ("authorization", &signed[0].authorization),
                ("date", &signed[0].date),
            ],
        ),
        (
            "Invalid algorithm",
            vec![
                ("authorization", &signed[1].authorization),
                ("date", &signed[1].date),
            ],
        ),
        (
            r#"expected header "date" missing in signing"#,
            vec![
                ("authorization", &signed[2].authorization),
                ("date", &signed[2].date),
            ],
        ),
        ("Date header missing", vec![("authorization", &alice_auth)]),
        (
            "keyId or signature missing",
            vec![(
                "authorization",
                r#"Signature algorithm="hmac-sha256",headers="date""#,
            )],
        ),
        (
            "Invalid GMT format time",
            vec![("authorization", &alice_auth), ("date", "yesterday")],
        ),
    ];
    for (reason, headers) in &cases {
        host.clear_logs();
        let s = get(&mut host, "/ip?x=1", headers);
        assert_hmac_generic(&mut host, s, reason);
    }
}

fn hmac_body() -> Value {
    config(json!({"hmac-auth": {"validate_request_body": true, "max_req_body_size": 64}}))
}

/// A POST signed over `@request-target date digest`, `body` given to Python for the digest.
fn signed_post(body: &str) -> (HmacSpec<'_>, Signed) {
    let spec = HmacSpec {
        method: "POST",
        path: "/post",
        headers: "@request-target date digest",
        body,
        ..HmacSpec::default()
    };
    (spec, sign(&[spec]).remove(0))
}

fn post(host: &mut Host, spec: &HmacSpec, signed: &Signed, eos: bool) -> Stream {
    request(
        host,
        spec.method,
        spec.path,
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
            ("digest", &signed.digest),
        ],
        eos,
    )
}

#[test]
fn hmac_body_is_checked_before_the_request_continues() {
    let mut host = configured(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);
    let s = post(&mut host, &spec, &signed, false);
    assert_eq!(host.outcome(s), Outcome::Paused);
    assert_eq!(
        host.send_body(s, &body.as_bytes()[..5], false).unwrap(),
        Outcome::Paused
    );
    assert_eq!(
        host.send_body(s, &body.as_bytes()[5..], true).unwrap(),
        Outcome::Continue
    );
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(host.request_body(s), body.as_bytes());
}

#[test]
fn hmac_body_that_does_not_match_the_digest_is_401() {
    let mut host = configured(&hmac_body());
    let (spec, signed) = signed_post(r#"{"order": 42}"#);
    let s = post(&mut host, &spec, &signed, false);
    assert_eq!(host.outcome(s), Outcome::Paused);
    host.clear_logs();
    host.send_body(s, br#"{"order": 43}"#, true).unwrap();
    assert_hmac_generic(&mut host, s, "Invalid digest");
}

#[test]
fn hmac_body_without_digest_header_is_401() {
    let mut host = configured(&hmac_body());
    let spec = HmacSpec {
        method: "POST",
        path: "/post",
        ..HmacSpec::default()
    };
    let signed = sign(&[spec]).remove(0);
    host.clear_logs();
    let s = request(
        &mut host,
        spec.method,
        spec.path,
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
        ],
        true,
    );
    assert_hmac_generic(&mut host, s, "Invalid digest");
}

#[test]
fn hmac_body_larger_than_max_req_body_size_is_413() {
    let mut host = configured(&hmac_body());
    let body = "x".repeat(100);
    let (spec, signed) = signed_post(&body);
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, &body.as_bytes()[..40], false).unwrap();
    assert_eq!(host.outcome(s), Outcome::Paused);
    host.send_body(s, &body.as_bytes()[40..], false).unwrap();
    assert_reply(&host, s, 413, "Request Entity Too Large", None);
    // The rest of the body changes nothing.
    host.send_body(s, b"", true).unwrap();
    assert_reply(&host, s, 413, "Request Entity Too Large", None);

    // The whole body at once.
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, body.as_bytes(), true).unwrap();
    assert_reply(&host, s, 413, "Request Entity Too Large", None);
}

#[test]
fn hmac_headers_only_request_with_digest_of_empty_body_continues() {
    let mut host = configured(&hmac_body());
    let (spec, signed) = signed_post("");
    let s = post(&mut host, &spec, &signed, true);
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));

    // The digest of a non-empty body, no body: refused.
    let (spec, signed) = signed_post("not empty");
    let s = post(&mut host, &spec, &signed, true);
    assert_reply(&host, s, 401, HMAC_GENERIC, Some(HMAC_REALM));
}

#[test]
fn request_waiting_for_secrets_with_its_whole_body_is_judged_by_the_answer() {
    let mut host = started(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);

    let good = post(&mut host, &spec, &signed, false);
    assert_eq!(host.outcome(good), Outcome::Paused);
    assert_eq!(
        host.send_body(good, body.as_bytes(), true).unwrap(),
        Outcome::Paused
    );

    let bad = post(&mut host, &spec, &signed, false);
    assert_eq!(
        host.send_body(bad, b"{\"order\": 43}", true).unwrap(),
        Outcome::Paused
    );

    // Half of the body before the answer, the rest after.
    let split = post(&mut host, &spec, &signed, false);
    host.send_body(split, &body.as_bytes()[..4], false).unwrap();

    let call = one_callout(&mut host, FIRST_FETCH);
    assert_eq!(host.outcome(good), Outcome::Paused);
    answer(&mut host, &call, &values());

    assert_authenticated(&host, good, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(host.request_body(good), body.as_bytes());
    assert_reply(&host, bad, 401, HMAC_GENERIC, Some(HMAC_REALM));
    assert_eq!(host.outcome(split), Outcome::Paused);
    host.send_body(split, &body.as_bytes()[4..], true).unwrap();
    assert_authenticated(&host, split, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn hmac_body_of_exactly_max_req_body_size_is_accepted() {
    let mut host = configured(&hmac_body());
    let body = "y".repeat(64);
    let (spec, signed) = signed_post(&body);
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, &body.as_bytes()[..32], false).unwrap();
    host.send_body(s, &body.as_bytes()[32..], true).unwrap();
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn request_waiting_for_secrets_with_a_too_large_body_is_413_after_the_answer() {
    let mut host = started(&hmac_body());
    let body = "z".repeat(100);
    let (spec, signed) = signed_post(&body);
    let s = post(&mut host, &spec, &signed, false);
    assert_eq!(
        host.send_body(s, body.as_bytes(), true).unwrap(),
        Outcome::Paused
    );
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, &values());
    assert_reply(&host, s, 413, "Request Entity Too Large", None);
}

// ---- anonymous consumer, routes, multi-auth --------------------------------------------------

#[test]
fn anonymous_consumer_when_no_credential_is_given() {
    let mut host = configured(&config(
        json!({"basic-auth": {"anonymous_consumer": "anon"}}),
    ));
    let s = get(&mut host, "/ip", SPOOFED);
    assert_eq!(host.outcome(s), Outcome::Continue, "{:?}", host.logs());
    let forwarded = host.request_headers(s);
    assert_eq!(header_all(&forwarded, "x-consumer-username"), ["anon"]);
    assert!(header_all(&forwarded, "x-credential-identifier").is_empty());
    assert!(header_all(&forwarded, "x-consumer-custom-id").is_empty());

    // A good credential still identifies its consumer.
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &[("authorization", &auth)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
}

#[test]
fn anonymous_consumer_must_exist() {
    let config = config(json!({"basic-auth": {"anonymous_consumer": "ghost"}}));
    let mut host = Filter(
        Host::new(
            filter_wasm().unwrap(),
            HostOptions {
                env: vec![("SECRET_SIDECAR_TOKEN".to_owned(), TOKEN.to_owned())],
                plugin_config: config.to_string().into_bytes(),
                ..HostOptions::default()
            },
        )
        .unwrap(),
    );
    assert!(!host.start().unwrap());
    assert!(
        host.logs()
            .iter()
            .any(|(_, l)| l.contains("basic-auth.anonymous_consumer") && l.contains("ghost")),
        "{:?}",
        host.logs()
    );
}

fn routed() -> Value {
    let mut config = config(json!({"basic-auth": {}}));
    config["routes"] = json!({
        "ip": {"key-auth": {}},
        "jwt": {"jwt-auth": {}},
        "open": {},
        "multi": {"key-auth": {}, "basic-auth": {}},
        "authorization": {"basic-auth": {}, "jwt-auth": {}, "hmac-auth": {}}
    });
    config
}

fn on_route(host: &mut Host, route: &str, path: &str, extra: &[(&str, &str)]) -> Stream {
    host.set_property(&["xds", "route_name"], route.as_bytes());
    get(host, path, extra)
}

#[test]
fn routes_have_their_own_plugins() {
    let mut host = configured(&routed());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let bearer = format!("Bearer {token}");
    let basic = format!("Basic {B64_ALICE}");

    let s = on_route(&mut host, "ip", "/ip", &[("apikey", ALICE_KEY)]);
    assert_authenticated(&host, s, "alice", "alice-key-auth", Some("alice-001"));
    let s = on_route(&mut host, "ip", "/ip", &[("authorization", &basic)]);
    assert_reply(
        &host,
        s,
        401,
        "Missing API key in request",
        Some(r#"apikey realm="key""#),
    );

    let s = on_route(&mut host, "jwt", "/ip", &[("authorization", &bearer)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    let s = on_route(&mut host, "jwt", "/ip", &[("apikey", ALICE_KEY)]);
    assert_jwt_failed(&host, s, "Missing JWT token in request");

    // Unlisted route: the default set (basic-auth).
    let s = on_route(&mut host, "elsewhere", "/ip", &[("authorization", &basic)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    let s = on_route(&mut host, "elsewhere", "/ip", &[("apikey", ALICE_KEY)]);
    assert_reply(
        &host,
        s,
        401,
        "Missing authorization in request",
        Some(BASIC_REALM),
    );
}

#[test]
fn route_without_plugins_continues_without_consumer_headers() {
    let mut host = configured(&routed());
    let s = on_route(&mut host, "open", "/", SPOOFED);
    assert_eq!(host.outcome(s), Outcome::Continue);
    let forwarded = host.request_headers(s);
    for name in [
        "x-consumer-username",
        "x-credential-identifier",
        "x-consumer-custom-id",
    ] {
        assert!(
            header_all(&forwarded, name).is_empty(),
            "{name}: {forwarded:?}"
        );
    }
}

#[test]
fn route_with_several_plugins_accepts_either_and_fails_as_a_whole() {
    let mut host = configured(&routed());
    let basic = format!("Basic {B64_BOB}");
    let s = on_route(&mut host, "multi", "/", &[("apikey", ALICE_KEY)]);
    assert_authenticated(&host, s, "alice", "alice-key-auth", Some("alice-001"));
    let s = on_route(
        &mut host,
        "multi",
        "/",
        &with_spoofed(&[("authorization", &basic)]),
    );
    assert_authenticated(&host, s, "bob", "bob-basic", None);

    let wrong = format!("Basic {B64_ALICE_WRONG}");
    for extra in [
        vec![],
        vec![("apikey", "nope")],
        vec![("authorization", wrong.as_str())],
        vec![("apikey", "nope"), ("authorization", wrong.as_str())],
    ] {
        let s = on_route(&mut host, "multi", "/", &extra);
        assert_reply(&host, s, 401, "Authorization Failed", None);
    }
}

// ---- malformed input -------------------------------------------------------------------------

/// URL-safe base64 without padding, for hand-made broken tokens.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn everything() -> Value {
    let mut config = config(json!({
        "key-auth": {}, "basic-auth": {}, "jwt-auth": {}, "hmac-auth": {"validate_request_body": true}
    }));
    config["routes"] = json!({
        "basic": {"basic-auth": {}},
        "jwt": {"jwt-auth": {}},
        "hmac": {"hmac-auth": {}}
    });
    config
}

#[test]
fn malformed_credentials_never_kill_the_vm() {
    let mut host = configured(&everything());
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let es_header = b64url(br#"{"alg":"ES256"}"#);
    let hs_header = b64url(br#"{"alg":"HS256"}"#);
    let bob = b64url(br#"{"key":"bob-rsa"}"#);
    let carol = b64url(br#"{"key":"carol-ec"}"#);
    let huge = "A".repeat(1 << 20);
    let deep = b64url(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes());
    let mut values: Vec<String> = vec![
        huge.clone(),
        format!("Basic {huge}"),
        format!("Bearer {huge}"),
        format!("Signature {huge}"),
        format!("Basic {}", b64url(format!("alice:{huge}").as_bytes())),
        format!("Signature {}", ",".repeat(100_000)),
        format!("Signature {}", "keyId=\"".repeat(10_000)),
        "Basic é".into(),
        "Basic \u{fffd}\u{fffd}".into(),
        "Bearer ééé.ééé.ééé".into(),
        "Bearer \u{7f}.\u{1}.\u{2}".into(),
        "Signature keyId=\"é\",algorithm=\"hmac-sha256\",signature=\"ü\"".into(),
        "Signature keyId=\"alice-keyid\",algorithm=\"hmac-sha256\",headers=\"\",signature=\"\""
            .into(),
        "Bearer .".into(),
        "Bearer ...".into(),
        "Bearer ....".into(),
        "Bearer a.b".into(),
        "Bearer a.b.c.d".into(),
        "Bearer a.b.c.d.e".into(),
        format!("Bearer {deep}.{deep}.{deep}"),
        format!("Bearer {hs_header}.{deep}.x"),
        // Valid header and key claim, broken signatures for the asymmetric credentials.
        format!("Bearer {header}.{bob}."),
        format!("Bearer {header}.{bob}.{}", b64url(&[0xff; 1000])),
        format!("Bearer {header}.{bob}.{}", b64url(&[0; 256])),
        format!("Bearer {es_header}.{carol}."),
        format!("Bearer {es_header}.{carol}.{}", b64url(&[0xff; 64])),
        format!("Bearer {es_header}.{carol}.{}", b64url(&[0; 1000])),
        // Odd claims.
        format!("Bearer {hs_header}.{}.x", b64url(br#"{"key":{"a":1}}"#)),
        format!(
            "Bearer {hs_header}.{}.x",
            b64url(br#"{"key":12345678901234567890123}"#)
        ),
        format!(
            "Bearer {hs_header}.{}.x",
            b64url(br#"{"key":"alice-jwt-key","exp":"tomorrow"}"#)
        ),
        format!(
            "Bearer {hs_header}.{}.x",
            b64url(br#"{"key":"alice-jwt-key","exp":-1e308,"nbf":1e308}"#)
        ),
        format!("Bearer {}.{hs_header}.x", b64url(b"[1,2,3]")),
        format!("Bearer {}.{bob}.x", b64url(br#"{"alg":null}"#)),
    ];
    // Dates the parser may choke on, with a known key id and algorithm.
    let hmac_auth = r#"Signature keyId="alice-keyid",algorithm="hmac-sha256",headers="@request-target date",signature="AAAA""#;
    let dates = [
        "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
        "Sun, 06 Feb -9223372036854775808 08:49:37 GMT",
        "Sun, 31 Feb 2026 23:59:60 GMT",
        "Sunday, 06-Nov-9223372036854775807 08:49:37 GMT",
        "Sun Nov  6 08:49:37 -1",
        "Sun, -1 Nov 2026 -1:-1:-1 GMT",
        "\u{fffd}",
    ];
    values.push(hmac_auth.into());

    for route in ["basic", "jwt", "hmac", "default"] {
        for value in &values {
            for name in ["authorization", "apikey", "cookie"] {
                let cookie = format!("jwt={value}");
                let v = if name == "cookie" { &cookie } else { value };
                let s = on_route(&mut host, route, "/ip", &[(name, v)]);
                let reply = host
                    .local_reply(s)
                    .unwrap_or_else(|| panic!("{route} {name}: {:?}", host.outcome(s)));
                assert_eq!(reply.status, 401, "{route} {name}: {reply:?}");
                host.finish(s).unwrap();
            }
        }
        for date in dates {
            let s = on_route(
                &mut host,
                route,
                "/ip",
                &[("authorization", hmac_auth), ("date", date)],
            );
            assert_eq!(host.local_reply(s).map(|r| r.status), Some(401), "{date}");
        }
        for path in [
            "/ip?jwt=%",
            "/ip?jwt=%ff%fe%00",
            "/ip?jwt",
            "/ip?&&&=&jwt=..",
            "/ip?apikey=%zz",
        ] {
            let s = on_route(&mut host, route, path, &[]);
            assert_eq!(host.local_reply(s).map(|r| r.status), Some(401), "{path}");
        }
        // A body after a refusal changes nothing.
        let s = request(
            &mut host,
            "POST",
            "/ip",
            &[("authorization", "Basic é")],
            false,
        );
        host.send_body(s, b"payload", true).unwrap();
        assert_eq!(host.local_reply(s).map(|r| r.status), Some(401));
    }
    assert!(!host.is_dead(), "{}", host.stderr());
    assert!(host.violations().is_empty(), "{:?}", host.violations());

    // Still working.
    let auth = format!("Basic {B64_ALICE}");
    let s = on_route(&mut host, "basic", "/ip", &[("authorization", &auth)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
}

#[test]
fn plugins_sharing_the_authorization_header_each_accept_their_scheme() {
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let mut host = configured(&routed());
    let spec = HmacSpec {
        key_id: "bob-keyid",
        secret: BOB_HMAC_SECRET,
        path: "/",
        ..HmacSpec::default()
    };
    let signed = sign(&[spec]).remove(0);

    let basic = format!("Basic {B64_BOB}");
    let s = on_route(
        &mut host,
        "authorization",
        "/",
        &[("authorization", &basic)],
    );
    assert_authenticated(&host, s, "bob", "bob-basic", None);
    let bearer = format!("Bearer {token}");
    let s = on_route(
        &mut host,
        "authorization",
        "/",
        &[("authorization", &bearer)],
    );
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    let s = on_route(
        &mut host,
        "authorization",
        "/",
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
        ],
    );
    assert_authenticated(&host, s, "bob", "bob-hmac", None);

    let wrong = format!("Basic {B64_ALICE_WRONG}");
    for auth in [
        wrong.as_str(),
        "Bearer x.y.z",
        "Signature keyId=\"bob-keyid\"",
    ] {
        let s = on_route(&mut host, "authorization", "/", &[("authorization", auth)]);
        assert_reply(&host, s, 401, "Authorization Failed", None);
    }
}

#[test]
fn trailers_never_release_a_request_waiting_for_secrets() {
    let mut host = started(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, body.as_bytes(), false).unwrap();
    // the trailers end the request, but nothing is judged before the secrets are known
    assert_eq!(host.send_trailers(s, 1).unwrap(), Outcome::Paused);
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, &values());
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn trailers_end_the_body_for_the_digest_check() {
    let mut host = configured(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);

    let good = post(&mut host, &spec, &signed, false);
    host.send_body(good, body.as_bytes(), false).unwrap();
    assert_eq!(host.send_trailers(good, 1).unwrap(), Outcome::Continue);
    assert_authenticated(&host, good, "alice", "alice-hmac", Some("alice-001"));

    let bad = post(&mut host, &spec, &signed, false);
    host.send_body(bad, b"{\"order\": 43}", false).unwrap();
    host.clear_logs();
    host.send_trailers(bad, 1).unwrap();
    assert_hmac_generic(&mut host, bad, "Invalid digest");
}

/// Issue #7, item 1: header values that are not UTF-8, sent to every plugin (and a limit-count
/// key), are refused with the plugin's usual 401 (or counted, for a limit key), never a panic:
/// after each, a valid request on the same worker passes, and no log line holds the bytes.
#[test]
fn bytes_that_are_not_utf8_never_kill_the_vm() {
    let mut config = routed();
    config["routes"]["hmac"] = json!({"hmac-auth": {}});
    config["routes"]["limited"] = json!({
        "key-auth": {},
        "limit-count": {"count": 1000, "time_window": 60, "key": "http_x_tenant"}
    });
    let mut host = configured(&config);
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let bearer = format!("Bearer {token}");
    let basic = format!("Basic {B64_ALICE}");
    const MARK: &[u8] = b"\xff\xfeHOSTILE-MARK\xc3";
    let with_mark = |prefix: &[u8]| [prefix, MARK].concat();

    type Case = (
        &'static str,
        Vec<(&'static str, Vec<u8>)>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "ip",
            vec![("apikey", MARK.to_vec())],
            Some("Invalid API key in request"),
        ),
        (
            "ip",
            vec![(":path", with_mark(b"/ip?apikey="))],
            Some("Invalid API key in request"),
        ),
        (
            "elsewhere",
            vec![("authorization", MARK.to_vec())],
            Some("Invalid authorization in request"),
        ),
        (
            "elsewhere",
            vec![("authorization", with_mark(b"Basic "))],
            Some("Invalid authorization in request"),
        ),
        (
            "jwt",
            vec![("authorization", with_mark(b"Bearer "))],
            Some("JWT token invalid"),
        ),
        (
            "jwt",
            vec![("cookie", with_mark(b"jwt="))],
            Some("JWT token invalid"),
        ),
        ("hmac", vec![("authorization", MARK.to_vec())], None),
        (
            "hmac",
            vec![
                ("authorization", with_mark(b"Signature keyId=\"")),
                ("date", MARK.to_vec()),
            ],
            None,
        ),
        (
            "limited",
            vec![("apikey", ALICE_KEY.into()), ("x-tenant", MARK.to_vec())],
            Some(""),
        ),
    ];
    for (route, extra, answer) in cases {
        host.set_property(&["xds", "route_name"], route.as_bytes());
        let mut headers: Vec<(&str, Vec<u8>)> = vec![
            (":method", b"GET".to_vec()),
            (":authority", b"example.com".to_vec()),
        ];
        if !extra.iter().any(|(k, _)| *k == ":path") {
            headers.push((":path", b"/ip".to_vec()));
        }
        headers.extend(extra.iter().cloned());
        let s = host.request_bytes(&headers, true).unwrap();
        assert!(!host.is_dead(), "{route}: {:?}", host.dead_reason());
        match answer {
            Some("") => assert_eq!(host.outcome(s), Outcome::Continue, "{route}"),
            Some(message) => {
                let reply = host.local_reply(s).expect("a local reply");
                assert_eq!(reply.status, 401, "{route}");
                assert!(reply.body_str().contains(message), "{route}: {reply:?}");
            }
            None => {
                let reply = host.local_reply(s).expect("a local reply");
                assert_eq!(reply.status, 401, "{route}");
                assert!(
                    reply.body_str().contains(HMAC_GENERIC),
                    "{route}: {reply:?}"
                );
            }
        }
        // The same worker still serves valid requests.
        let valid: Vec<(&str, &str)> = match route {
            "ip" | "limited" => vec![("apikey", ALICE_KEY)],
            "elsewhere" => vec![("authorization", &basic)],
            "jwt" => vec![("authorization", &bearer)],
            _ => vec![],
        };
        if route == "hmac" {
            let spec = HmacSpec::default();
            let signed = sign(&[spec]).remove(0);
            let s = hmac_request(&mut host, &spec, &signed);
            assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
        } else {
            let s = on_route(&mut host, route, "/ip", &valid);
            assert_eq!(
                host.outcome(s),
                Outcome::Continue,
                "{route}: {:?}",
                host.logs()
            );
        }
        // Failed hmac requests log at most one line per period: let the next one through.
        host.advance(HMAC_LOG_PERIOD).unwrap();
    }
    let everything = host.panic_output();
    assert!(!everything.contains("HOSTILE-MARK"), "{everything}");
}
