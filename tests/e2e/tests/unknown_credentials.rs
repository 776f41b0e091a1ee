//! Issue #10 "503 when the answer is unknown" and issue #11 "metrics", through a real Envoy:
//! with the sidecar unreachable since start, a key that only an unresolved credential could
//! match gets 503 with Retry-After (not 401), a plain-value credential still works, a request
//! without a key is still a 401; and Envoy's stats show it all, with no secret in any name.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use e2e::{get, test_dir, Envoy, EnvoySpec, Paths, Upstream};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_credentials_answer_503_and_the_stats_count_it() -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir("unknown_credentials")?;
    let upstream = Upstream::start().await?;
    // Nothing listens on the sidecar's port.
    let dead_port = e2e::free_port()?;
    let filter = json!({
        "sidecar": e2e::filter_sidecar_section(),
        "refresh_interval_s": 30,
        "startup_wait_ms": 500,
        "strip_identity_headers": false,
        "consumers": [
            {"username": "alice", "credentials": [{"id": "alice-key-auth", "type": "key-auth",
             "key": "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth"}]},
            {"username": "bob", "credentials": [{"id": "bob-key-auth", "type": "key-auth",
             "key": "bob-plain-key"}]}
        ],
        "plugins": {"key-auth": {}}
    });
    let spec = EnvoySpec::new(filter, upstream.port(), dead_port, "some-token");
    let envoy = Envoy::start(&paths, &dir, &spec).await?;

    let reply = get(&envoy.url("/ip"), &[("apikey", "alice-key")]).await?;
    ensure!(
        reply.status == 503 && reply.header("retry-after").as_deref() == Some("5"),
        "alice's key while her secret is unknown: {} {:?} {}",
        reply.status,
        reply.header("retry-after"),
        reply.body
    );
    ensure!(
        reply.json()? == json!({"message": "the credential store is unavailable, retry later"}),
        "{}",
        reply.body
    );
    let reply = get(&envoy.url("/ip"), &[("apikey", "bob-plain-key")]).await?;
    ensure!(reply.status == 200, "bob's plain key: {}", reply.status);
    let reply = get(&envoy.url("/ip"), &[]).await?;
    ensure!(reply.status == 401, "no key: {}", reply.status);

    // The stats arrive on the workers' next tick.
    let stat = |name: &'static str| {
        let envoy = &envoy;
        async move {
            envoy
                .stat(&format!("wasmcustom.envoy_secret_auth.{name}"))
                .await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if stat("requests.denied.credential_unknown").await? >= Some(1)
            && stat("consumer.bob.allowed").await? >= Some(1)
        {
            break;
        }
        ensure!(Instant::now() < deadline, "stats never showed the requests");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(stat("requests.denied.key_auth_missing").await? >= Some(1));
    ensure!(stat("refresh.failure").await? >= Some(1));
    ensure!(stat("credentials.disabled.unknown").await? >= Some(1));
    let prometheus = get(&envoy.admin_url("/stats/prometheus"), &[]).await?;
    ensure!(
        prometheus
            .body
            .contains("envoy_secret_auth_consumer_bob_allowed{} 1"),
        "Prometheus output lacks the filter's metrics: {}",
        prometheus
            .body
            .lines()
            .filter(|l| l.contains("secret_auth"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let all = get(&envoy.admin_url("/stats?filter=envoy_secret_auth"), &[]).await?;
    for secret in [
        "bob-plain-key",
        "alice-key",
        "secret://",
        "alice-credentials",
    ] {
        ensure!(
            !all.body.contains(secret),
            "a stat name contains {secret:?}:\n{}",
            all.body
        );
    }
    ensure!(
        all.body.lines().count() > 5,
        "expected the filter's stats: {}",
        all.body
    );
    Ok(())
}
