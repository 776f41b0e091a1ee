//! Fixtures shared by the integration tests: moto (with the AWS SDK pointed at it), Redis, temp
//! dirs and ports. The processes come from the `test-support` crate (shared with the e2e tests):
//! each on a free loopback port, killed (by PID) when its guard drops. Missing tools fail the test
//! with what to run; nothing is skipped.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::Client;

pub use test_support::{Moto, TempDir};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    test_support::free_port().unwrap()
}

/// Runs `redis-cli -p <port> <args>` (auth arguments go in `args`), failing on a non-zero exit.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    test_support::redis_cli(port, args).unwrap()
}

// --- moto -----------------------------------------------------------------------------------

/// moto's server (`MOTO_SERVER`, or the one `scripts/deps.sh` installs) on a free loopback port,
/// killed (by PID) when dropped.
pub fn start_moto() -> Moto {
    let bin = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
        });
    assert!(
        bin.exists(),
        "moto_server not found at {}: run scripts/deps.sh (or set MOTO_SERVER)",
        bin.display()
    );
    Moto::start(&bin, None).unwrap()
}

pub async fn sdk_client(endpoint: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

pub async fn create_secret(client: &Client, name: &str, value: &str) {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
}

pub async fn put_secret_value(client: &Client, name: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutSecretValue {name}: {e:?}"));
}

/// `DeleteSecret`: with a recovery window of `recovery_days` (the secret is "marked for
/// deletion"), or at once without one.
pub async fn delete_secret(client: &Client, name: &str, recovery_days: Option<i64>) {
    let request = client.delete_secret().secret_id(name);
    let request = match recovery_days {
        Some(days) => request.recovery_window_in_days(days),
        None => request.force_delete_without_recovery(true),
    };
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteSecret {name}: {e:?}"));
}

// --- the HTTP API ------------------------------------------------------------------------------

/// `POST /v1/resolve` with `body` to the sidecar's router, bearer `token`: the `results`
/// (asserting a 200).
pub async fn resolve_results(
    app: &axum::Router,
    token: &str,
    body: serde_json::Value,
) -> Vec<serde_json::Value> {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let req = Request::builder()
        .method("POST")
        .uri("/v1/resolve")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["results"].as_array().unwrap().clone()
}
