//! Issue #10, "rotation without failed requests", through a real Envoy, the sidecar and moto:
//! with `rotation_grace_s`, a client still on the old key and a client already on the new one
//! both pass during the grace (the old one marked `X-Credential-Version: previous` upstream),
//! and the old key is refused right after it. The grace counts from when AWS replaced the value
//! (the sidecar's `AWSPREVIOUS` and the new version's creation time).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use e2e::{get, SidecarCache, Stack};
use serde_json::json;

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
const GRACE_S: u64 = 8;

async fn status_and_version(stack: &Stack, key: &str) -> Result<(u16, Option<String>)> {
    let reply = get(&stack.envoy.url("/ip"), &[("apikey", key)]).await?;
    let version = if reply.status == 200 {
        reply.json()?["headers"]["x-credential-version"]
            .as_str()
            .map(str::to_owned)
    } else {
        None
    };
    Ok((reply.status, version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_the_old_and_the_new_key_both_pass_during_the_grace() -> Result<()> {
    let filter = json!({
        "sidecar": e2e::filter_sidecar_section(),
        "refresh_interval_s": 1,
        "rotation_grace_s": GRACE_S,
        "consumers": [{"username": "alice", "credentials": [
            {"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF}]}],
        "plugins": {"key-auth": {}}
    });
    let cache = SidecarCache {
        ttl_seconds: 1,
        not_found_ttl_seconds: 1,
    };
    let stack = Stack::start(
        "rotation_grace",
        &[("alice-credentials", json!({"alice-key-auth": "key-1"}))],
        cache,
        filter,
        &[],
    )
    .await?;
    ensure!(
        status_and_version(&stack, "key-1").await? == (200, None),
        "key-1 before the rotation"
    );

    stack
        .moto
        .put_secret_value("alice-credentials", &json!({"alice-key-auth": "key-2"}))
        .await?;
    let rotated_at = Instant::now();
    // The new client switches once the new key is accepted (refresh + cache TTL).
    loop {
        if status_and_version(&stack, "key-2").await?.0 == 200 {
            break;
        }
        ensure!(
            rotated_at.elapsed() < Duration::from_secs(GRACE_S - 3),
            "key-2 not accepted within {}s",
            GRACE_S - 3
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let switched = rotated_at.elapsed();
    // That was one worker (Envoy runs two here): each refreshes on its own, so the other may
    // hold the old value until its next refresh, at most refresh_interval_s and a tick later.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    // Both clients until shortly before the grace ends (the sidecar's time has whole seconds,
    // and the filter stops a tick early): not one failed request.
    let mut old_previous = 0;
    let mut rounds = 0;
    while rotated_at.elapsed() < Duration::from_millis(GRACE_S * 1000 - 2_500) {
        let (old, new) = (
            status_and_version(&stack, "key-1").await?,
            status_and_version(&stack, "key-2").await?,
        );
        ensure!(
            old.0 == 200 && new == (200, None),
            "during the grace at {:?}: old key {old:?}, new key {new:?}",
            rotated_at.elapsed()
        );
        if old.1.as_deref() == Some("previous") {
            old_previous += 1;
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        rounds > 10 && old_previous > 0,
        "{rounds} rounds, {old_previous} marked previous"
    );
    // Right after the grace: refused (within a tick and one refresh of slack).
    let deadline = Duration::from_secs(GRACE_S + 2);
    loop {
        let old = status_and_version(&stack, "key-1").await?;
        if old.0 == 401 {
            break;
        }
        if rotated_at.elapsed() > deadline {
            bail!(
                "the old key still answers {old:?} {:?} after the rotation",
                rotated_at.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused_after = rotated_at.elapsed();
    ensure!(status_and_version(&stack, "key-2").await? == (200, None));
    eprintln!(
        "new key accepted after {switched:?}; {rounds} rounds without a failure; old key refused \
         after {refused_after:?} (grace {GRACE_S}s)"
    );
    Ok(())
}
