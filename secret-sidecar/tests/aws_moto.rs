//! The sidecar against a real AWS Secrets Manager API (moto's server), through the real AWS SDK
//! and the real router: tutorial reference, names with '/', did-you-mean, rotation after the
//! TTL, an unreachable provider, stale values once moto is gone, and the `check` binary; and
//! 1000 references into one secret (the time is printed, not asserted).
//!
//! Needs `moto_server`: `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`
//! (installed by scripts/deps.sh). Without it the test fails; it is never skipped.

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use secret_ref::SecretValue;
use secret_sidecar::clock::ManualClock;
use secret_sidecar::config::Config;
use secret_sidecar::{app, build_resolver, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{create_secret, delete_secret, free_port, sdk_client, start_moto};

const TOKEN: &str = "integration-token";
const TUTORIAL_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";

fn config_toml(endpoint: &str, closed_port: u16) -> String {
    format!(
        r#"
[cache]
ttl_seconds = 60
not_found_ttl_seconds = 5

[[providers]]
id = "my-secrets-manager"
kind = "aws"
region = "us-east-1"
endpoint_url = "{endpoint}"
access_key_id = "$env://TEST_AWS_ACCESS_KEY_ID"
secret_access_key = "$env://TEST_AWS_SECRET_ACCESS_KEY"

[[providers]]
id = "down"
kind = "aws"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:{closed_port}"
access_key_id = "test"
secret_access_key = "test"
"#
    )
}

fn test_env(name: &str) -> Option<String> {
    match name {
        "TEST_AWS_ACCESS_KEY_ID" | "TEST_AWS_SECRET_ACCESS_KEY" => Some("test".into()),
        _ => None,
    }
}

async fn resolve(app: &axum::Router, refs: &[&str]) -> Vec<Value> {
    let results = common::resolve_results(app, TOKEN, json!({ "refs": refs })).await;
    assert_eq!(results.len(), refs.len());
    results
}

fn ok(reference: &str, value: &str, stale: bool) -> Value {
    json!({"ref": reference, "value": value, "stale": stale})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_against_moto() {
    let started = Instant::now();
    let mut moto = start_moto();
    let client = sdk_client(&moto.endpoint()).await;
    create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key"}"#,
    )
    .await;
    create_secret(&client, "team/app/db", r#"{"password":"db-pw"}"#).await;
    create_secret(&client, "plain/with/slash", "raw-value").await;

    let closed_port = free_port();
    let config = Config::parse(&config_toml(&moto.endpoint(), closed_port), &test_env).unwrap();
    let clock = Arc::new(ManualClock::new());
    let resolver = build_resolver(&config, clock.clone()).await.unwrap();
    let app = app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ));

    // the tutorial reference, names containing '/', a missing key
    let refs = [
        TUTORIAL_REF,
        "$secret://aws/my-secrets-manager/team/app/db/password",
        "$secret://aws/my-secrets-manager/plain/with/slash",
        "$secret://aws/my-secrets-manager/alice-credentials/nope",
    ];
    let results = resolve(&app, &refs).await;
    assert_eq!(results[0], ok(TUTORIAL_REF, "alice-key", false));
    assert_eq!(results[1], ok(refs[1], "db-pw", false));
    assert_eq!(results[2], ok(refs[2], "raw-value", false));
    assert_eq!(results[3]["error"]["code"], "key_not_found");

    // a typo in the secret name: not found, with the existing name suggested
    let typo = "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth";
    let results = resolve(&app, &[typo]).await;
    assert_eq!(
        results[0],
        json!({"ref": typo, "error": {
            "code": "secret_not_found",
            "message": "secret \"alice-credentias\" not found in provider \"my-secrets-manager\"; did you mean \"alice-credentials\"?",
            "did_you_mean": ["alice-credentials"]}})
    );

    // rotation: the cached value until the TTL has passed, then the new one
    client
        .put_secret_value()
        .secret_id("alice-credentials")
        .secret_string(r#"{"alice-key-auth":"alice-key-2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resolve(&app, &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key", false)
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        resolve(&app, &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key-2", false)
    );

    // a provider whose endpoint refuses connections
    let down_ref = "$secret://aws/down/alice-credentials/alice-key-auth";
    let t = Instant::now();
    let results = resolve(&app, &[down_ref]).await;
    assert_eq!(
        results[0]["error"]["code"], "provider_unreachable",
        "{}",
        results[0]
    );
    let message = results[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "provider \"down\" unreachable reading secret \"alice-credentials/alice-key-auth\": "
        ),
        "{message}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );

    // the check command, as a user runs it (values never printed)
    check_binary(&moto.endpoint(), closed_port);

    // moto gone: the last good values are served, marked stale
    moto.stop();
    clock.advance(Duration::from_secs(61));
    let results = resolve(&app, &[TUTORIAL_REF, refs[1]]).await;
    assert_eq!(results[0], ok(TUTORIAL_REF, "alice-key-2", true));
    assert_eq!(results[1], ok(refs[1], "db-pw", true));
    // nothing was ever known about this one: the failure itself
    let unknown = "$secret://aws/my-secrets-manager/never-seen/k";
    assert_eq!(
        resolve(&app, &[unknown]).await[0]["error"]["code"],
        "provider_unreachable"
    );

    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

fn check_binary(endpoint: &str, closed_port: u16) {
    let dir = std::env::temp_dir().join(format!("sidecar-moto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sidecar.toml");
    std::fs::write(&config, config_toml(endpoint, closed_port)).unwrap();
    let run = |refs: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
            .arg("check")
            .arg("--config")
            .arg(&config)
            .args(refs)
            .env("TEST_AWS_ACCESS_KEY_ID", "test")
            .env("TEST_AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };

    let out = run(&[TUTORIAL_REF]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{TUTORIAL_REF}: ok\n")
    );

    let typo = "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth";
    let out = run(&[TUTORIAL_REF, typo]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        format!(
            "{TUTORIAL_REF}: ok\n{typo}: secret_not_found: secret \"alice-credentias\" not found in provider \"my-secrets-manager\"; did you mean \"alice-credentials\"?\n"
        )
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("alice-key-2") && !stderr.contains("alice-key-2"));

    // a config error names the field and fails
    std::fs::write(&config, "[[providers]]\nid = \"x\"\nkind = \"aws\"\n").unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("providers[0].region: missing"),
        "{out:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// 1000 references into one secret holding 1000 JSON fields (the bench's consumers): each
/// candidate `bench-keys/consumer-N` is skipped thanks to the name list instead of being asked
/// for (and refused) one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_refs_into_one_secret() {
    const N: usize = 1000;
    let moto = start_moto();
    let client = sdk_client(&moto.endpoint()).await;
    let fields: serde_json::Map<String, Value> = (0..N)
        .map(|i| (format!("consumer-{i}"), json!(format!("key-{i}"))))
        .collect();
    create_secret(&client, "bench-keys", &Value::Object(fields).to_string()).await;
    // a name containing '/' that exists as a whole wins over its shorter prefix
    create_secret(&client, "bench-keys/special", r#"{"k":"whole-name"}"#).await;

    let config = Config::parse(&config_toml(&moto.endpoint(), free_port()), &test_env).unwrap();
    let resolver = build_resolver(&config, Arc::new(ManualClock::new()))
        .await
        .unwrap();
    let app = app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ));

    let mut refs: Vec<String> = (0..N)
        .map(|i| format!("$secret://aws/my-secrets-manager/bench-keys/consumer-{i}"))
        .collect();
    refs.push("$secret://aws/my-secrets-manager/bench-keys/special/k".to_string());
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();

    let t = Instant::now();
    let results = resolve(&app, &refs).await;
    let elapsed = t.elapsed();
    println!(
        "{} refs into one secret resolved in {elapsed:?}",
        refs.len()
    );

    assert_eq!(results.len(), N + 1);
    for (i, result) in results[..N].iter().enumerate() {
        assert_eq!(*result, ok(refs[i], &format!("key-{i}"), false));
    }
    assert_eq!(results[N], ok(refs[N], "whole-name", false));
}

/// Issue #7 against moto: empty values, a deleted secret (marked for deletion) failing after the
/// TTL instead of being served stale, a provider outage serving stale values for at most
/// `max_stale_s`, a longer secret name created later refused instead of taking over, and the
/// `check` command showing the codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_ambiguity_against_moto() {
    let started = Instant::now();
    let moto = start_moto();
    let mut flaky = start_moto();
    let client = sdk_client(&moto.endpoint()).await;
    let flaky_client = sdk_client(&flaky.endpoint()).await;
    create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key","empty":""}"#,
    )
    .await;
    create_secret(&client, "bob-credentials", r#"{"bob-key-auth":"bob-key"}"#).await;
    // (an empty SecretString as a whole cannot be stored: AWS and moto treat it as no value;
    // the resolver's unit tests cover it)
    create_secret(
        &flaky_client,
        "carol-credentials",
        r#"{"carol-key-auth":"carol-key"}"#,
    )
    .await;

    let toml = format!(
        r#"
[cache]
ttl_seconds = 60
not_found_ttl_seconds = 5
max_stale_s = 120

[[providers]]
id = "my-secrets-manager"
kind = "aws"
region = "us-east-1"
endpoint_url = "{}"
access_key_id = "test"
secret_access_key = "test"

[[providers]]
id = "flaky"
kind = "aws"
region = "us-east-1"
endpoint_url = "{}"
access_key_id = "test"
secret_access_key = "test"
"#,
        moto.endpoint(),
        flaky.endpoint()
    );
    let config = Config::parse(&toml, &test_env).unwrap();
    let clock = Arc::new(ManualClock::new());
    let resolver = build_resolver(&config, clock.clone()).await.unwrap();
    let app = app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ));

    let bob = "$secret://aws/my-secrets-manager/bob-credentials/bob-key-auth";
    let carol = "$secret://aws/flaky/carol-credentials/carol-key-auth";
    let empty_key = "$secret://aws/my-secrets-manager/alice-credentials/empty";
    let results = resolve(&app, &[TUTORIAL_REF, bob, carol, empty_key]).await;
    assert_eq!(results[0], ok(TUTORIAL_REF, "alice-key", false));
    assert_eq!(results[1], ok(bob, "bob-key", false));
    assert_eq!(results[2], ok(carol, "carol-key", false));
    // #2: an empty value is an error naming the reference's secret and key, never a value
    assert_eq!(
        results[3],
        json!({"ref": empty_key, "error": {"code": "empty_value",
            "message": "key \"empty\" in secret \"alice-credentials\" (provider \"my-secrets-manager\") is an empty string; an empty value is never used as a credential"}})
    );

    // #13: someone creates a longer secret name that would take over alice's reference
    create_secret(&client, "alice-credentials/alice-key-auth", "attacker-key").await;
    // #4: bob's secret is deleted with a recovery window ("marked for deletion")
    delete_secret(&client, "bob-credentials", Some(7)).await;
    // #4: the flaky provider goes away
    flaky.stop();

    // within the TTL: the cached answers
    clock.advance(Duration::from_secs(59));
    let results = resolve(&app, &[TUTORIAL_REF, bob, carol]).await;
    assert_eq!(results[0], ok(TUTORIAL_REF, "alice-key", false));
    assert_eq!(results[1], ok(bob, "bob-key", false));
    assert_eq!(results[2], ok(carol, "carol-key", false));

    // after the TTL: alice's reference refuses to switch, bob's fails, carol's is stale
    clock.advance(Duration::from_secs(2));
    let results = resolve(&app, &[TUTORIAL_REF, bob, carol]).await;
    assert_eq!(
        results[0],
        json!({"ref": TUTORIAL_REF, "error": {"code": "ambiguous_secret_name",
            "message": "secret name \"alice-credentials/alice-key-auth\" now answers this reference, which first resolved through secret \"alice-credentials\" (provider \"my-secrets-manager\"); refusing to switch (delete one of the two secrets, or restart the sidecar to accept the new split)"}})
    );
    assert_eq!(
        results[1]["error"]["code"], "secret_deleted",
        "{}",
        results[1]
    );
    let message = results[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("secret \"bob-credentials\" (provider \"my-secrets-manager\") is deleted or scheduled for deletion: InvalidRequestException: "),
        "{message}"
    );
    assert_eq!(results[2], ok(carol, "carol-key", true));
    for r in &results {
        assert!(!r.to_string().contains("attacker-key") && !r.to_string().contains("bob-key\""));
    }

    // still stale just before ttl + max_stale, refused from then on
    clock.advance(Duration::from_secs(118));
    assert_eq!(
        resolve(&app, &[carol]).await[0],
        ok(carol, "carol-key", true)
    );
    clock.advance(Duration::from_secs(1));
    let results = resolve(&app, &[carol, bob]).await;
    assert_eq!(
        results[0]["error"]["code"], "stale_expired",
        "{}",
        results[0]
    );
    let message = results[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("provider \"flaky\" has been failing for secret \"carol-credentials\" (unreachable: ")
            && message.ends_with("and its last good value is more than max_stale_s (120 s) past its TTL; it is no longer served"),
        "{message}"
    );
    assert_eq!(results[1]["error"]["code"], "secret_deleted");

    // the takeover secret removed again: alice's first split answers again
    delete_secret(&client, "alice-credentials/alice-key-auth", None).await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        resolve(&app, &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key", false)
    );

    // the check command shows the codes (a fresh process: nothing pinned, nothing cached)
    let dir = common::TempDir::new("check-codes").unwrap();
    let config_path = dir.path().join("sidecar.toml");
    std::fs::write(&config_path, &toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
        .arg("check")
        .arg("--config")
        .arg(&config_path)
        .args([
            bob,
            empty_key,
            "$Secret://aws/my-secrets-manager/bob-credentials/bob-key-auth",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("{bob}: secret_deleted: ")),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!("{empty_key}: empty_value: ")),
        "{stdout}"
    );
    assert!(
        lines[2].ends_with(": invalid_reference: invalid reference: looks like a reference but the prefix is not lower case; write \"$secret://\""),
        "{stdout}"
    );

    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

async fn resolve_refetch(app: &axum::Router, refs: &[&str], refetch: &[&str]) -> Vec<Value> {
    common::resolve_results(app, TOKEN, json!({ "refs": refs, "refetch": refetch })).await
}

/// Issue #10, "accept a rotated key at once": a plain resolve answers the cached value after a
/// rotation; one with `refetch` answers the new value at once, through `DescribeSecret` /
/// `GetSecretValue` against moto; and refetches within `refetch_min_interval_ms` do not reach
/// the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetch_answers_a_rotated_value_at_once() {
    let moto = start_moto();
    let client = sdk_client(&moto.endpoint()).await;
    create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key"}"#,
    )
    .await;
    let config = Config::parse(&config_toml(&moto.endpoint(), free_port()), &test_env).unwrap();
    assert_eq!(config.cache.refetch_min_interval, Duration::from_secs(1));
    let clock = Arc::new(ManualClock::new());
    let resolver = build_resolver(&config, clock.clone()).await.unwrap();
    let app = app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ));
    assert_eq!(
        resolve(&app, &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key", false)
    );

    common::put_secret_value(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key-2"}"#,
    )
    .await;
    clock.advance(Duration::from_secs(2));
    // without refetch: the cached value (the TTL is 60 s)
    assert_eq!(
        resolve(&app, &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key", false)
    );
    // with refetch: the new value at once
    assert_eq!(
        resolve_refetch(&app, &[TUTORIAL_REF], &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key-2", false)
    );
    // and from the cache for everyone after it
    assert_eq!(
        resolve(&app, &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key-2", false)
    );

    // within the interval a refetch does not reach the provider: a rotation right after is
    // seen only by a refetch once the interval has passed
    common::put_secret_value(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key-3"}"#,
    )
    .await;
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        resolve_refetch(&app, &[TUTORIAL_REF], &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key-2", false)
    );
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        resolve_refetch(&app, &[TUTORIAL_REF], &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key-3", false)
    );
}

async fn get_text(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The value of one series (`name{labels}` exactly as written) in a scrape; 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

/// Issue #11: `/readyz` and `/metrics` (no token) after traffic against moto: readiness names
/// the provider not reached yet, the counters move with the requests, and the scrape holds no
/// secret value, secret name or reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_against_moto() {
    let mut moto = start_moto();
    let client = sdk_client(&moto.endpoint()).await;
    create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key"}"#,
    )
    .await;
    let config = Config::parse(&config_toml(&moto.endpoint(), free_port()), &test_env).unwrap();
    let clock = Arc::new(ManualClock::new());
    let state = AppState::new(
        SecretValue::new(TOKEN),
        build_resolver(&config, clock.clone()).await.unwrap(),
        config.limit.clone(),
    );
    let app = app(state.clone());

    let (status, body) = get_text(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"ready": false, "not_reached": ["down", "my-secrets-manager"]})
    );

    let typo = "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth";
    let results = resolve(&app, &[TUTORIAL_REF, typo]).await;
    assert_eq!(results[0], ok(TUTORIAL_REF, "alice-key", false));
    let (_, before) = get_text(&app, "/metrics").await;
    // moto answered: only "down" is missing now
    let (status, body) = get_text(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"ready": false, "not_reached": ["down"]})
    );

    // the same reference again: a cache hit, no provider call
    resolve(&app, &[TUTORIAL_REF]).await;
    let down_ref = "$secret://aws/down/alice-credentials/alice-key-auth";
    resolve(&app, &[down_ref]).await;
    let (status, after) = get_text(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let get_ok = r#"secret_sidecar_provider_calls_total{provider="my-secrets-manager",call="get",outcome="ok"}"#;
    let hits = r#"secret_sidecar_cache_lookups_total{result="hit"}"#;
    let resolves = r#"secret_sidecar_requests_total{endpoint="/v1/resolve",status="200"}"#;
    assert_eq!(metric(&before, get_ok), 1.0, "{before}");
    assert_eq!(metric(&after, get_ok), 1.0, "{after}");
    assert!(metric(&after, hits) > metric(&before, hits), "{after}");
    assert_eq!(
        (metric(&before, resolves), metric(&after, resolves)),
        (1.0, 3.0)
    );
    assert_eq!(
        metric(
            &after,
            r#"secret_sidecar_provider_calls_total{provider="my-secrets-manager",call="list",outcome="ok"}"#
        ),
        1.0
    );
    assert!(
        metric(
            &after,
            r#"secret_sidecar_provider_calls_total{provider="down",call="get",outcome="unreachable"}"#
        ) >= 1.0,
        "{after}"
    );
    assert_eq!(
        metric(
            &after,
            r#"secret_sidecar_provider_reached{provider="down"}"#
        ),
        0.0
    );
    assert!(
        metric(
            &after,
            r#"secret_sidecar_provider_call_duration_seconds_count{provider="my-secrets-manager"}"#
        ) >= 2.0
    );
    assert_eq!(
        metric(
            &after,
            r#"secret_sidecar_requests_total{endpoint="/readyz",status="503"}"#
        ),
        2.0
    );

    // moto gone: the value is served stale, and the oldest served value ages
    moto.stop();
    clock.advance(Duration::from_secs(90));
    assert_eq!(
        resolve(&app, &[TUTORIAL_REF]).await[0],
        ok(TUTORIAL_REF, "alice-key", true)
    );
    let (_, stale) = get_text(&app, "/metrics").await;
    assert_eq!(
        metric(&stale, "secret_sidecar_cache_stale_served_total"),
        1.0
    );
    assert_eq!(
        metric(&stale, "secret_sidecar_served_value_max_age_seconds"),
        90.0
    );
    for text in [&before, &after, &stale] {
        for leak in ["alice-key", "alice-credentia", "$secret", TOKEN, "test"] {
            assert!(!text.contains(leak), "{leak:?} in\n{text}");
        }
    }

    // a sidecar whose one provider answers: the start-up probe makes it ready without traffic
    let moto = start_moto();
    let only_moto = format!(
        "[[providers]]\nid = \"my-secrets-manager\"\nkind = \"aws\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        moto.endpoint()
    );
    let config = Config::parse(&only_moto, &test_env).unwrap();
    let state = AppState::new(
        SecretValue::new(TOKEN),
        build_resolver(&config, clock.clone()).await.unwrap(),
        config.limit.clone(),
    );
    let app = secret_sidecar::app(state.clone());
    assert_eq!(
        get_text(&app, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::timeout(
        Duration::from_secs(20),
        state.probe_until_ready(Duration::from_millis(200)),
    )
    .await
    .expect("the probe reaches moto");
    assert_eq!(
        get_text(&app, "/readyz").await,
        (StatusCode::OK, r#"{"ready":true}"#.to_string())
    );
}
