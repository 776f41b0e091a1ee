//! key-auth through a real Envoy: the tutorial's validate step, consumer headers, rotation,
//! a dead sidecar, a typo'd reference, and configs Envoy must refuse.

use std::time::Duration;

use anyhow::Result;
use e2e::{assert_filter_config_refused, get, wait_for, SidecarCache, Stack};
use serde_json::{json, Value};

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
const TYPO_REF: &str = "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth";
const MISSING: &str = r#"{"message":"Missing API key in request"}"#;
const INVALID: &str = r#"{"message":"Invalid API key in request"}"#;
const WWW_AUTHENTICATE: &str = r#"apikey realm="key""#;

/// The tutorial's secret.
fn alice_secret() -> Value {
    json!({
        "alice-key-auth": "alice-key",
        "alice-basic-auth": "alice-password",
        "alice-jwt-auth": "alice-secret",
        "alice-hmac-auth": "alice-secret-key"
    })
}

fn consumer(username: &str, credential_id: &str, key: &str) -> Value {
    json!({
        "username": username,
        "credentials": [{"id": credential_id, "type": "key-auth", "key": key}]
    })
}

fn filter_config(consumers: Value, refresh_interval_s: u64) -> Value {
    json!({
        "sidecar": e2e::filter_sidecar_section(),
        "refresh_interval_s": refresh_interval_s,
        "startup_wait_ms": 5000,
        "consumers": consumers,
        "plugins": {"key-auth": {"header": "apikey", "query": "apikey", "hide_credentials": false}}
    })
}

async fn alice_stack(name: &str, cache: SidecarCache, refresh_interval_s: u64) -> Result<Stack> {
    Stack::start(
        name,
        &[("alice-credentials", alice_secret())],
        cache,
        filter_config(
            json!([consumer("alice", "alice-key-auth", ALICE_REF)]),
            refresh_interval_s,
        ),
        &[],
    )
    .await
}

/// Asserts an APISIX-compatible key-auth rejection.
fn assert_rejected(reply: &e2e::Reply, body: &str) {
    assert_eq!(reply.status, 401, "body: {}", reply.body);
    assert_eq!(
        reply.json().ok(),
        serde_json::from_str::<Value>(body).ok(),
        "body: {}",
        reply.body
    );
    assert_eq!(
        reply.header("www-authenticate").as_deref(),
        Some(WWW_AUTHENTICATE)
    );
}

/// Polls (bounded) until `GET /ip` with `key` gets `status`.
async fn wait_for_status(stack: &Stack, key: &str, status: u16, timeout: Duration) -> Result<()> {
    let url = stack.envoy.url("/ip");
    wait_for(timeout, &format!("apikey {key:?} to get {status}"), || {
        let url = url.clone();
        async move {
            let reply = get(&url, &[("apikey", key)]).await.ok()?;
            (reply.status == status).then_some(())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_validate_step() -> Result<()> {
    let stack = alice_stack("tutorial_validate_step", SidecarCache::default(), 30).await?;
    let url = stack.envoy.url("/ip");

    // The first request may arrive before the first resolution: it waits for it.
    let ok = get(&url, &[("apikey", "alice-key")]).await?;
    assert_eq!(ok.status, 200, "body: {}", ok.body);
    let echoed = ok.json()?;
    assert_eq!(echoed["path"], "/ip");
    assert_eq!(echoed["origin"], "127.0.0.1");
    // hide_credentials is false: the key reaches the upstream.
    assert_eq!(echoed["headers"]["apikey"], "alice-key");

    let by_query = get(&stack.envoy.url("/ip?apikey=alice-key"), &[]).await?;
    assert_eq!(by_query.status, 200, "body: {}", by_query.body);

    assert_rejected(&get(&url, &[]).await?, MISSING);
    assert_rejected(&get(&url, &[("apikey", "wrong-key")]).await?, INVALID);
    assert_rejected(
        &get(&stack.envoy.url("/ip?apikey=wrong-key"), &[]).await?,
        INVALID,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_headers_reach_upstream_and_client_copies_do_not() -> Result<()> {
    let stack = alice_stack("consumer_headers", SidecarCache::default(), 30).await?;
    let url = stack.envoy.url("/ip");

    let ok = get(
        &url,
        &[
            ("apikey", "alice-key"),
            ("X-Consumer-Username", "mallory"),
            ("X-Credential-Identifier", "forged-credential"),
        ],
    )
    .await?;
    assert_eq!(ok.status, 200, "body: {}", ok.body);
    let headers = &ok.json()?["headers"];
    // Exactly one value each (a JSON array would mean the client's copy was kept as well).
    assert_eq!(headers["x-consumer-username"], "alice", "{headers}");
    assert_eq!(
        headers["x-credential-identifier"], "alice-key-auth",
        "{headers}"
    );

    // A spoofed identity without a valid key gets nowhere.
    let spoofed = get(&url, &[("X-Consumer-Username", "alice")]).await?;
    assert_rejected(&spoofed, MISSING);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_with_empty_plugin_set_needs_no_key() -> Result<()> {
    let mut filter = filter_config(json!([consumer("alice", "alice-key-auth", ALICE_REF)]), 30);
    filter["routes"] = json!({"public": {}});
    let stack = Stack::start(
        "route_with_empty_plugin_set",
        &[("alice-credentials", alice_secret())],
        SidecarCache::default(),
        filter,
        &[("public", "/public")],
    )
    .await?;

    let public = get(&stack.envoy.url("/public/anything"), &[]).await?;
    assert_eq!(public.status, 200, "body: {}", public.body);
    assert_eq!(public.json()?["path"], "/public/anything");
    // Routes not listed keep the default plugin set.
    assert_rejected(&get(&stack.envoy.url("/ip"), &[]).await?, MISSING);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_is_picked_up_and_old_key_rejected() -> Result<()> {
    let cache = SidecarCache {
        ttl_seconds: 1,
        not_found_ttl_seconds: 1,
    };
    let refresh_interval_s = 1;
    let stack = alice_stack("rotation", cache, refresh_interval_s).await?;
    let url = stack.envoy.url("/ip");
    let before = get(&url, &[("apikey", "alice-key")]).await?;
    assert_eq!(before.status, 200, "body: {}", before.body);

    let mut rotated = alice_secret();
    rotated["alice-key-auth"] = json!("alice-key-rotated");
    stack
        .moto
        .put_secret_value("alice-credentials", &rotated)
        .await?;

    wait_for_status(&stack, "alice-key-rotated", 200, Duration::from_secs(15)).await?;
    // Every worker refreshes on its own timer: give the others one more interval (plus margin),
    // after which the new key must work and the old one must fail on every connection.
    tokio::time::sleep(Duration::from_secs(refresh_interval_s + 1)).await;
    for _ in 0..6 {
        let new = get(&url, &[("apikey", "alice-key-rotated")]).await?;
        assert_eq!(new.status, 200, "body: {}", new.body);
        assert_rejected(&get(&url, &[("apikey", "alice-key")]).await?, INVALID);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_key_keeps_working_after_sidecar_dies() -> Result<()> {
    let cache = SidecarCache {
        ttl_seconds: 1,
        not_found_ttl_seconds: 1,
    };
    let refresh_interval_s = 1;
    let mut stack = alice_stack("sidecar_dies", cache, refresh_interval_s).await?;
    let url = stack.envoy.url("/ip");
    // Both workers must have had their first answer before the sidecar goes away.
    for _ in 0..6 {
        let ok = get(&url, &[("apikey", "alice-key")]).await?;
        assert_eq!(ok.status, 200, "body: {}", ok.body);
    }

    stack.sidecar.kill();
    // Let at least two refreshes fail on every worker.
    tokio::time::sleep(Duration::from_secs(2 * refresh_interval_s + 1)).await;
    for _ in 0..6 {
        let ok = get(&url, &[("apikey", "alice-key")]).await?;
        assert_eq!(ok.status, 200, "after the sidecar died: {}", ok.body);
        assert_rejected(&get(&url, &[("apikey", "wrong-key")]).await?, INVALID);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typo_in_reference_is_logged_with_did_you_mean_and_disables_the_credential() -> Result<()> {
    let consumers = json!([
        consumer("alice", "alice-key-auth", ALICE_REF),
        consumer("bob", "bob-key-auth", TYPO_REF)
    ]);
    let stack = Stack::start(
        "typo_in_reference",
        &[("alice-credentials", alice_secret())],
        SidecarCache::default(),
        filter_config(consumers, 30),
        &[],
    )
    .await?;

    let line = stack
        .envoy
        .wait_for_log_line(
            Duration::from_secs(15),
            "a log line naming the typo'd reference and the sidecar's reason",
            |line| {
                line.contains(TYPO_REF)
                    && line.contains("\"alice-credentials\"")
                    && (line.contains("not found") || line.contains("secret_not_found"))
            },
        )
        .await?;
    assert!(line.contains("did you mean"), "{line}");

    let url = stack.envoy.url("/ip");
    // The unresolved reference is never used as a literal key.
    assert_rejected(&get(&url, &[("apikey", TYPO_REF)]).await?, INVALID);
    let ok = get(&url, &[("apikey", "alice-key")]).await?;
    assert_eq!(ok.status, 200, "other consumers still work: {}", ok.body);
    assert_eq!(ok.json()?["headers"]["x-consumer-username"], "alice");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_field_in_filter_config_is_refused() -> Result<()> {
    let mut filter = filter_config(json!([consumer("alice", "alice-key-auth", ALICE_REF)]), 30);
    filter["sidecar"]["timeuot_ms"] = json!(2000);
    assert_filter_config_refused("unknown_field", filter, &["sidecar", "timeuot_ms"])
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reference_in_filter_config_is_refused() -> Result<()> {
    let bad = "$secret://awss/my-secrets-manager/alice-credentials/alice-key-auth";
    let filter = filter_config(json!([consumer("alice", "alice-key-auth", bad)]), 30);
    assert_filter_config_refused(
        "bad_reference",
        filter,
        &["consumers[0].credentials[0].key", "awss"],
    )
    .await
    .map(drop)
}
