//! Issue #10 "accept a rotated key at once", through Envoy, the sidecar and moto: with a 30 s
//! refresh interval and a 60 s sidecar cache, a client that already has a just-rotated key is
//! accepted within seconds: its first request misses, the worker refreshes on its next tick
//! asking the sidecar to refetch, and the sidecar reads AWS again (at most once a second per
//! secret). The old key is refused at the same moment.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use e2e::{get, SidecarCache, Stack};
use serde_json::json;

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_rotated_key_is_accepted_within_seconds() -> Result<()> {
    let filter = json!({
        "sidecar": e2e::filter_sidecar_section(),
        "refresh_interval_s": 30,
        "consumers": [{"username": "alice", "credentials": [
            {"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF}]}],
        "plugins": {"key-auth": {}}
    });
    let stack = Stack::start(
        "miss_refresh",
        &[("alice-credentials", json!({"alice-key-auth": "key-1"}))],
        SidecarCache::default(),
        filter,
        &[],
    )
    .await?;
    let status = |key: &'static str| {
        let url = stack.envoy.url("/ip");
        async move { Ok::<u16, anyhow::Error>(get(&url, &[("apikey", key)]).await?.status) }
    };
    ensure!(status("key-1").await? == 200, "key-1 before the rotation");
    stack
        .moto
        .put_secret_value("alice-credentials", &json!({"alice-key-auth": "key-2"}))
        .await?;
    let rotated = Instant::now();
    // Far below refresh_interval_s (30 s) + the sidecar's ttl (60 s).
    let bound = Duration::from_secs(6);
    loop {
        if status("key-2").await? == 200 {
            break;
        }
        if rotated.elapsed() > bound {
            bail!(
                "key-2 still refused {:?} after the rotation",
                rotated.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let accepted = rotated.elapsed();
    // Every worker has it after its own miss; the old key is refused.
    for _ in 0..10 {
        if status("key-2").await? != 200 {
            ensure!(rotated.elapsed() < bound, "key-2 refused again");
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    ensure!(
        status("key-1").await? == 401,
        "the old key after the rotation"
    );
    eprintln!("the rotated key was accepted {accepted:?} after the rotation");
    Ok(())
}
