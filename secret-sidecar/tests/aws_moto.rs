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
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use secret_ref::SecretValue;
use secret_sidecar::clock::ManualClock;
use secret_sidecar::config::Config;
use secret_sidecar::{app, build_resolver, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{create_secret, free_port, sdk_client, Moto};

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
    let req = Request::builder()
        .method("POST")
        .uri("/v1/resolve")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "refs": refs }).to_string()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let results = v["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), refs.len());
    results
}

fn ok(reference: &str, value: &str, stale: bool) -> Value {
    json!({"ref": reference, "value": value, "stale": stale})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_against_moto() {
    let started = Instant::now();
    let mut moto = Moto::start();
    let client = sdk_client(&moto.endpoint).await;
    create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key"}"#,
    )
    .await;
    create_secret(&client, "team/app/db", r#"{"password":"db-pw"}"#).await;
    create_secret(&client, "plain/with/slash", "raw-value").await;

    let closed_port = free_port();
    let config = Config::parse(&config_toml(&moto.endpoint, closed_port), &test_env).unwrap();
    let clock = Arc::new(ManualClock::new());
    let resolver = build_resolver(&config, clock.clone()).await;
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
    check_binary(&moto.endpoint, closed_port);

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
    let moto = Moto::start();
    let client = sdk_client(&moto.endpoint).await;
    let fields: serde_json::Map<String, Value> = (0..N)
        .map(|i| (format!("consumer-{i}"), json!(format!("key-{i}"))))
        .collect();
    create_secret(&client, "bench-keys", &Value::Object(fields).to_string()).await;
    // a name containing '/' that exists as a whole wins over its shorter prefix
    create_secret(&client, "bench-keys/special", r#"{"k":"whole-name"}"#).await;

    let config = Config::parse(&config_toml(&moto.endpoint, free_port()), &test_env).unwrap();
    let resolver = build_resolver(&config, Arc::new(ManualClock::new())).await;
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
