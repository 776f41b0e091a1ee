//! limit-count through a real Envoy, the real filter `.wasm` and the real sidecar (DESIGN.md §3
//! and §4): the API7 tutorial (key-auth, Redis with an ACL user whose credentials live in moto),
//! two Envoys sharing one counter, a Redis Cluster, a Redis that dies (with and without
//! `allow_degradation`), the `local` policy across Envoy's worker threads, and `sync_interval`.
//!
//! Needs `redis-server` and `redis-cli` on PATH besides the usual e2e binaries; without them the
//! tests fail with what to run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e::{
    free_port, get, random_token, render_sidecar_config, test_dir, wait_for, Envoy, EnvoySpec,
    Moto, Paths, Reply, Sidecar, SidecarCache, Upstream, SIDECAR_CLUSTER,
};
use serde_json::{json, Value};
use test_support::{keys, redis_cli, RedisCluster, RedisServer};

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
const REDIS_USER_REF: &str = "$secret://aws/my-secrets-manager/redis-credentials/username";
const REDIS_PASSWORD_REF: &str = "$secret://aws/my-secrets-manager/redis-credentials/password";
/// Every counter the filter keeps in Redis starts with this.
const COUNTERS: &str = "limit-count:*";

// ------------------------------------------------------------------------------------------------
// Helpers

fn sidecar_block() -> Value {
    json!({
        "cluster": SIDECAR_CLUSTER,
        "authority": "secret-sidecar",
        "timeout_ms": 3000,
        "token": "$env://SECRET_SIDECAR_TOKEN"
    })
}

/// limit-count options: 429 with the tutorial's message, plus `extra`.
fn limit_count(count: u64, extra: Value) -> Value {
    let mut options = json!({
        "count": count,
        "time_window": 60,
        "key_type": "var",
        "key": "remote_addr",
        "rejected_code": 429,
        "rejected_msg": "Too many requests"
    });
    if let (Some(options), Some(extra)) = (options.as_object_mut(), extra.as_object()) {
        options.extend(extra.clone());
    }
    options
}

/// A filter config with a sidecar and `limit` as the default plugin set's only plugin.
fn limit_only(limit: Value) -> Value {
    json!({"sidecar": sidecar_block(), "plugins": {"limit-count": limit}})
}

/// The sidecar with a provider nobody calls (these tests have no `$secret://` references):
/// it serves `/v1/limit` only. Saves starting moto.
async fn redis_only_sidecar(paths: &Paths, dir: &Path) -> Result<Sidecar> {
    let port = free_port()?;
    let nowhere = format!("http://127.0.0.1:{}", free_port()?);
    let config = render_sidecar_config(port, &nowhere, SidecarCache::default());
    Sidecar::start_with_config(paths, dir, &config, port).await
}

async fn start_envoy(
    paths: &Paths,
    dir: &Path,
    filter: Value,
    upstream: &Upstream,
    sidecar_port: u16,
    token: &str,
) -> Result<Envoy> {
    std::fs::create_dir_all(dir)?;
    let spec = EnvoySpec::new(filter, upstream.port(), sidecar_port, token);
    Envoy::start(paths, dir, &spec).await
}

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset` of a reply, each `None` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<u64>,
}

fn quota(reply: &Reply) -> Result<Quota> {
    let number = |name: &str| -> Result<Option<u64>> {
        reply
            .header(name)
            .map(|v| v.parse().with_context(|| format!("{name}: {v:?}")))
            .transpose()
    };
    Ok(Quota {
        limit: number("x-ratelimit-limit")?,
        remaining: number("x-ratelimit-remaining")?,
        reset: number("x-ratelimit-reset")?,
    })
}

/// A request the limit let through: 200 from the upstream with the quota headers
/// (`limit`, `remaining`, a reset within the window).
fn assert_passed(reply: &Reply, limit: u64, remaining: u64) -> Result<()> {
    ensure!(reply.status == 200, "expected 200, got {reply:?}");
    ensure!(
        reply.json()?["path"].is_string(),
        "not the upstream's answer: {}",
        reply.body
    );
    let q = quota(reply)?;
    ensure!(
        (q.limit, q.remaining) == (Some(limit), Some(remaining)),
        "expected limit {limit} remaining {remaining}, got {q:?}"
    );
    ensure!(
        q.reset.is_some_and(|r| (1..=60).contains(&r)),
        "reset outside the 60 s window: {q:?}"
    );
    Ok(())
}

/// A request over the limit: 429 `{"error_msg":"Too many requests"}`.
fn assert_limited(reply: &Reply) -> Result<()> {
    ensure!(reply.status == 429, "expected 429, got {reply:?}");
    ensure!(
        reply.json()? == json!({"error_msg": "Too many requests"}),
        "body: {}",
        reply.body
    );
    Ok(())
}

/// The only counter in the Redis at `port`: `(key, value, ttl)`.
fn only_counter(port: u16, auth: &[&str]) -> Result<(String, i64, i64)> {
    let found = keys(port, auth, COUNTERS)?;
    let [key] = <[String; 1]>::try_from(found)
        .map_err(|found| anyhow!("expected one counter in Redis, found {found:?}"))?;
    let (value, ttl) = counter(port, auth, &key)?;
    Ok((key, value, ttl))
}

/// `(GET key, TTL key)` on the node at `port`.
fn counter(port: u16, auth: &[&str], key: &str) -> Result<(i64, i64)> {
    let read = |command: &str| -> Result<i64> {
        let mut args = auth.to_vec();
        args.extend([command, key]);
        let out = redis_cli(port, &args)?;
        out.parse()
            .with_context(|| format!("{command} {key} answered {out:?}"))
    };
    Ok((read("GET")?, read("TTL")?))
}

/// `tasks` clients in parallel, each sending `per_task` GETs one after the other, every one on a
/// new connection (so that Envoy's workers share them).
async fn parallel_gets(url: &str, tasks: usize, per_task: usize) -> Result<Vec<Reply>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let url = url.to_owned();
        set.spawn(async move {
            let mut replies = Vec::new();
            for _ in 0..per_task {
                replies.push(get(&url, &[]).await?);
            }
            anyhow::Ok(replies)
        });
    }
    let mut replies = Vec::new();
    while let Some(done) = set.join_next().await {
        replies.extend(done??);
    }
    Ok(replies)
}

/// How many requests Envoy has sent to the sidecar (its cluster's `upstream_rq_total`).
async fn sidecar_calls(envoy: &Envoy) -> Result<u64> {
    let name = format!("cluster.{SIDECAR_CLUSTER}.upstream_rq_total");
    envoy
        .stat(&name)
        .await?
        .ok_or_else(|| anyhow!("Envoy has no stat {name}"))
}

fn ensure_fast(test: &str, started: Instant, limit: Duration) -> Result<()> {
    let took = started.elapsed();
    eprintln!("{test}: {took:?}");
    ensure!(took < limit, "{test} took {took:?} (limit {limit:?})");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Tests

/// The API7 tutorial: key-auth plus limit-count in Redis, whose ACL user and password the
/// sidecar resolves from moto; Envoy only ever sees the references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_redis_with_acl_user_from_secrets_manager() -> Result<()> {
    let started = Instant::now();
    let paths = Paths::locate()?;
    let dir = test_dir("limit_count_tutorial")?;
    let password = random_token()?;

    let redis = RedisServer::start(
        &dir.join("redis"),
        &[
            "--user",
            "api7",
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
            "--user",
            "default",
            "off",
        ],
    )?;
    // Only the ACL user gets in.
    let anonymous = redis_cli(redis.port(), &["PING"])?;
    ensure!(anonymous.contains("NOAUTH"), "PING answered {anonymous:?}");
    let auth = ["--user", "api7", "--pass", password.as_str()];

    let moto = Moto::start(&paths, &dir).await?;
    moto.create_secret("alice-credentials", &json!({"alice-key-auth": "alice-key"}))
        .await?;
    moto.create_secret(
        "redis-credentials",
        &json!({"username": "api7", "password": password}),
    )
    .await?;
    let sidecar = Sidecar::start(&paths, &dir, &moto, SidecarCache::default()).await?;
    let upstream = Upstream::start().await?;
    let filter = json!({
        "sidecar": sidecar_block(),
        "consumers": [{
            "username": "alice",
            "credentials": [{"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF}]
        }],
        "routes": {"ip": {
            "key-auth": {},
            "limit-count": limit_count(3, json!({
                "policy": "redis",
                "redis_host": "127.0.0.1",
                "redis_port": redis.port(),
                "redis_username": REDIS_USER_REF,
                "redis_password": REDIS_PASSWORD_REF
            }))
        }}
    });
    let envoy = start_envoy(
        &paths,
        &dir,
        filter,
        &upstream,
        sidecar.port(),
        sidecar.token(),
    )
    .await?;
    let url = envoy.url("/ip");

    // limit-count runs after authentication: a refused request is not counted.
    let refused = get(&url, &[]).await?;
    ensure!(refused.status == 401, "{refused:?}");
    ensure!(refused.header("x-ratelimit-limit").is_none(), "{refused:?}");

    for remaining in [2, 1, 0] {
        let reply = get(&url, &[("apikey", "alice-key")]).await?;
        assert_passed(&reply, 3, remaining)?;
    }
    let over = get(&url, &[("apikey", "alice-key")]).await?;
    assert_limited(&over)?;
    assert_eq!(quota(&over)?.remaining, Some(0), "{over:?}");

    // The counter is Redis' own, written as the ACL user: four hits, one over the limit.
    let (key, value, ttl) = only_counter(redis.port(), &auth)?;
    assert_eq!(value, -1, "{key}");
    assert!((1..=60).contains(&ttl), "{key}: TTL {ttl}");

    // The password never reaches Envoy: not in its config file, its config dump, its logs.
    let config_file = std::fs::read_to_string(dir.join("envoy.json"))?;
    assert!(
        config_file.contains(REDIS_PASSWORD_REF),
        "the reference is what Envoy holds"
    );
    let dump = get(&envoy.admin_url("/config_dump"), &[]).await?;
    assert_eq!(dump.status, 200);
    assert!(dump.body.contains(REDIS_PASSWORD_REF), "config dump");
    for (what, text) in [
        ("envoy.json", &config_file),
        ("Envoy's /config_dump", &dump.body),
        ("Envoy's log", &envoy.logs()),
        ("the sidecar's log", &sidecar.logs()),
    ] {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(
            !text.contains(password.as_str()),
            "{what} contains the Redis password"
        );
    }
    ensure_fast("tutorial", started, Duration::from_secs(60))
}

/// Two Envoys, one Redis, one sidecar: the counter is shared, `count` pass in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_envoys_share_one_redis_counter() -> Result<()> {
    let started = Instant::now();
    let paths = Paths::locate()?;
    let dir = test_dir("limit_count_two_envoys")?;
    let redis = RedisServer::start(&dir.join("redis"), &[])?;
    let sidecar = redis_only_sidecar(&paths, &dir).await?;
    let upstream = Upstream::start().await?;
    let filter = limit_only(limit_count(
        5,
        json!({"policy": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port()}),
    ));
    let (dir_a, dir_b) = (dir.join("a"), dir.join("b"));
    let (a, b) = tokio::try_join!(
        start_envoy(
            &paths,
            &dir_a,
            filter.clone(),
            &upstream,
            sidecar.port(),
            sidecar.token()
        ),
        start_envoy(
            &paths,
            &dir_b,
            filter,
            &upstream,
            sidecar.port(),
            sidecar.token()
        ),
    )?;
    ensure!(a.url("/") != b.url("/"), "the Envoys share a port");

    let mut statuses = Vec::new();
    for i in 0..12 {
        let envoy = if i % 2 == 0 { &a } else { &b };
        let reply = get(&envoy.url("/ip"), &[]).await?;
        if i < 5 {
            // 4, 3, 2, 1, 0 alternately from A and B: one counter.
            assert_passed(&reply, 5, 4 - i)
                .with_context(|| format!("request {i} via Envoy {}", ["A", "B"][i as usize % 2]))?;
        } else {
            assert_limited(&reply).with_context(|| format!("request {i}"))?;
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    let (key, value, _) = only_counter(redis.port(), &[])?;
    assert_eq!(value, 5 - 12, "{key}: every request counted once");
    ensure_fast("two envoys", started, Duration::from_secs(60))
}

/// `redis-cluster`: counters spread over three nodes, each counted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_counts_exactly_on_every_node() -> Result<()> {
    let started = Instant::now();
    let paths = Paths::locate()?;
    let dir = test_dir("limit_count_cluster")?;
    let cluster = RedisCluster::start(Some(&dir.join("cluster")))?;
    let sidecar = redis_only_sidecar(&paths, &dir).await?;
    let upstream = Upstream::start().await?;
    let filter = limit_only(limit_count(
        3,
        json!({
            "key": "http_x_tenant",
            "policy": "redis-cluster",
            "redis_cluster_nodes": cluster.addresses(),
            "redis_timeout": 2000
        }),
    ));
    let envoy = start_envoy(
        &paths,
        &dir,
        filter,
        &upstream,
        sidecar.port(),
        sidecar.token(),
    )
    .await?;

    // 12 tenants, one counter each: their keys hash to slots on all three nodes.
    let tenants: Vec<String> = (0..12).map(|i| format!("tenant-{i}")).collect();
    for round in 0..4u64 {
        for tenant in &tenants {
            let reply = get(&envoy.url("/ip"), &[("x-tenant", tenant)]).await?;
            let checked = if round < 3 {
                assert_passed(&reply, 3, 2 - round)
            } else {
                assert_limited(&reply)
            };
            checked.with_context(|| format!("{tenant}, request {round}"))?;
        }
    }

    // Each node holds the counters of its slots (KEYS is per node), each exact: 3 - 4 = -1.
    let mut all = Vec::new();
    for node in &cluster.nodes {
        let on_node = keys(node.port(), &[], COUNTERS)?;
        ensure!(
            !on_node.is_empty(),
            "node {} holds no counter (all: {all:?})",
            node.address()
        );
        for key in &on_node {
            let (value, ttl) = counter(node.port(), &[], key)?;
            assert_eq!(value, -1, "{key} on {}", node.address());
            assert!((1..=60).contains(&ttl), "{key}: TTL {ttl}");
        }
        all.extend(on_node);
    }
    assert_eq!(all.len(), tenants.len(), "{all:?}");
    for tenant in &tenants {
        assert!(
            all.iter()
                .filter(|k| k.ends_with(&format!(":{tenant}")))
                .count()
                == 1,
            "{tenant} in {all:?}"
        );
    }
    ensure_fast("cluster", started, Duration::from_secs(60))
}

/// Redis goes away: `allow_degradation` passes, otherwise 500; counting resumes when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_degrades_or_fails_closed() -> Result<()> {
    let started = Instant::now();
    let paths = Paths::locate()?;
    let dir = test_dir("limit_count_redis_down")?;
    let mut redis = RedisServer::start(&dir.join("redis"), &[])?;
    let sidecar = redis_only_sidecar(&paths, &dir).await?;
    let upstream = Upstream::start().await?;
    let backend = json!({"policy": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port()});
    let with = |degrade: bool| {
        let mut options = limit_count(100, backend.clone());
        options["allow_degradation"] = degrade.into();
        json!({"limit-count": options})
    };
    let filter = json!({
        "sidecar": sidecar_block(),
        "routes": {"degrade": with(true), "ip": with(false)}
    });
    let mut spec = EnvoySpec::new(filter, upstream.port(), sidecar.port(), sidecar.token());
    spec.extra_routes = vec![("degrade".into(), "/degrade".into())];
    let envoy = Envoy::start(&paths, &dir, &spec).await?;
    let lenient = envoy.url("/degrade");
    let strict = envoy.url("/ip");

    // Both count while Redis is up (each route its own counter).
    assert_passed(&get(&lenient, &[]).await?, 100, 99)?;
    assert_passed(&get(&strict, &[]).await?, 100, 99)?;
    ensure!(keys(redis.port(), &[], COUNTERS)?.len() == 2);

    redis.kill();
    for _ in 0..3 {
        let asked = Instant::now();
        let passed = get(&lenient, &[]).await?;
        assert_eq!(passed.status, 200, "allow_degradation: {passed:?}");
        assert!(passed.json()?["path"].is_string(), "{}", passed.body);
        let refused = get(&strict, &[]).await?;
        assert_eq!(refused.status, 500, "no degradation: {refused:?}");
        assert_eq!(
            refused.json()?,
            json!({"message": "rate limiting is unavailable"})
        );
        // A refused connection fails at once, not after a timeout.
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
    }

    // Back (empty): counting starts over on both routes.
    redis.restart()?;
    wait_for(Duration::from_secs(10), "Redis to be used again", || {
        let strict = strict.clone();
        async move { (get(&strict, &[]).await.ok()?.status == 200).then_some(()) }
    })
    .await?;
    assert_passed(&get(&lenient, &[]).await?, 100, 99)?;
    ensure!(keys(redis.port(), &[], COUNTERS)?.len() == 2);
    ensure_fast("redis down", started, Duration::from_secs(60))
}

/// `local` under `--concurrency 2`: parallel clients on fresh connections reach both workers,
/// which share one counter through Envoy's shared data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_policy_is_exact_across_workers() -> Result<()> {
    const TASKS: usize = 8;
    const PER_TASK: usize = 5;
    let started = Instant::now();
    let paths = Paths::locate()?;
    let dir = test_dir("limit_count_local")?;
    let upstream = Upstream::start().await?;
    // No sidecar in the filter config; the cluster points at a closed port.
    let filter = json!({"plugins": {"limit-count": limit_count(10, json!({"policy": "local"}))}});
    let envoy = start_envoy(&paths, &dir, filter, &upstream, free_port()?, "unused").await?;
    let url = envoy.url("/ip");

    let replies = parallel_gets(&url, TASKS, PER_TASK).await?;
    assert_eq!(replies.len(), TASKS * PER_TASK);

    let passed: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let mut remaining = passed
        .iter()
        .map(|r| quota(r).map(|q| q.remaining))
        .collect::<Result<Vec<_>>>()?;
    remaining.sort();
    assert_eq!(
        remaining,
        (0..10).map(Some).collect::<Vec<_>>(),
        "exactly 10 pass, each seeing its own count"
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_limited(reply)?;
    }

    // Both workers took connections (else this would not test sharing between them).
    let stats = get(
        &envoy.admin_url("/stats?filter=worker_.*downstream_cx_total"),
        &[],
    )
    .await?;
    let per_worker: Vec<u64> = stats
        .body
        .lines()
        .filter(|l| l.starts_with("listener.") && l.contains(".worker_"))
        .filter_map(|l| l.rsplit_once(": ").and_then(|(_, n)| n.parse().ok()))
        .collect();
    assert_eq!(per_worker.len(), 2, "{}", stats.body);
    assert!(per_worker.iter().all(|n| *n > 0), "{}", stats.body);
    // (Plus the fixture's readiness probe.)
    assert!(per_worker.iter().sum::<u64>() >= (TASKS * PER_TASK) as u64);
    ensure_fast("local", started, Duration::from_secs(60))
}

/// `sync_interval`: requests are decided locally and the hits reach Redis in batches within an
/// interval or two; hits elsewhere (another Envoy) are learned from Redis at the next push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_interval_pushes_hits_to_redis() -> Result<()> {
    let started = Instant::now();
    let paths = Paths::locate()?;
    let dir = test_dir("limit_count_sync")?;
    let redis = RedisServer::start(&dir.join("redis"), &[])?;
    let sidecar = redis_only_sidecar(&paths, &dir).await?;
    let upstream = Upstream::start().await?;
    let filter = limit_only(limit_count(
        30,
        json!({"policy": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port(),
               "sync_interval": 0.2}),
    ));
    let envoy = start_envoy(
        &paths,
        &dir,
        filter,
        &upstream,
        sidecar.port(),
        sidecar.token(),
    )
    .await?;
    let url = envoy.url("/ip");

    // A burst of 20, all within the limit.
    let burst = parallel_gets(&url, 4, 5).await?;
    for reply in &burst {
        ensure!(reply.status == 200, "{reply:?}");
        let q = quota(reply)?;
        ensure!(q.limit == Some(30) && q.remaining < Some(30), "{q:?}");
    }
    // The pushes land within a few intervals: 30 - 20.
    let key = wait_for(Duration::from_secs(5), "the 20 hits in Redis", || {
        let port = redis.port();
        async move {
            let (key, value, _) = only_counter(port, &[]).ok()?;
            (value == 10).then_some(key)
        }
    })
    .await
    .with_context(|| format!("Redis holds {:?}", only_counter(redis.port(), &[])))?;
    // ... in batches: fewer calls to the sidecar than requests (per-request counting makes 20).
    let calls = sidecar_calls(&envoy).await?;
    eprintln!("sync_interval: 20 requests, {calls} sidecar calls");
    ensure!(
        (1..20).contains(&calls),
        "{calls} sidecar calls for 20 requests"
    );

    // Someone else (another Envoy) uses up the rest of the window.
    assert_eq!(redis_cli(redis.port(), &["DECRBY", &key, "10"])?, "0");
    // Spaced well over an interval: each worker lets at most one through before its push
    // answers that the window is used up; after that everything is refused.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let reply = get(&url, &[]).await?;
        if reply.status != 200 {
            assert_limited(&reply)?;
        }
        statuses.push(reply.status);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    eprintln!("sync_interval: after the window was used up elsewhere: {statuses:?}");
    assert!(
        passed <= 2,
        "overshoot beyond one hit per worker: {statuses:?}"
    );
    // Only admitted hits are pushed under sync_interval (refused ones used nothing, and
    // pushing them late would start Redis' next window over the limit).
    let expected = -(passed as i64);
    wait_for(
        Duration::from_secs(5),
        "the admitted later hits in Redis",
        || {
            let port = redis.port();
            async move { (only_counter(port, &[]).ok()?.1 == expected).then_some(()) }
        },
    )
    .await
    .with_context(|| format!("Redis holds {:?}", only_counter(redis.port(), &[])))?;
    ensure_fast("sync_interval", started, Duration::from_secs(60))
}

/// The helpers above decide what passes: make sure they can fail.
#[test]
fn reply_checks_refuse_what_they_should() -> Result<()> {
    let reply = |status: u16, headers: &[(&'static str, &'static str)], body: &str| Reply {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    reqwest::header::HeaderName::from_static(n),
                    reqwest::header::HeaderValue::from_static(v),
                )
            })
            .collect(),
        body: body.to_owned(),
    };
    let quota_headers = [
        ("x-ratelimit-limit", "3"),
        ("x-ratelimit-remaining", "1"),
        ("x-ratelimit-reset", "60"),
    ];
    let echoed = r#"{"path":"/ip"}"#;
    assert_passed(&reply(200, &quota_headers, echoed), 3, 1)?;
    assert!(assert_passed(&reply(200, &quota_headers, echoed), 3, 2).is_err());
    assert!(assert_passed(&reply(200, &[], echoed), 3, 1).is_err());
    assert!(assert_passed(&reply(200, &quota_headers, "{}"), 3, 1).is_err());
    assert!(assert_passed(&reply(429, &quota_headers, echoed), 3, 1).is_err());
    let too_late = [
        ("x-ratelimit-limit", "3"),
        ("x-ratelimit-remaining", "1"),
        ("x-ratelimit-reset", "61"),
    ];
    assert!(assert_passed(&reply(200, &too_late, echoed), 3, 1).is_err());
    assert_limited(&reply(429, &[], "{\"error_msg\":\"Too many requests\"}\n"))?;
    assert!(assert_limited(&reply(503, &[], r#"{"error_msg":"Too many requests"}"#)).is_err());
    assert!(assert_limited(&reply(429, &[], r#"{"error_msg":"slow down"}"#)).is_err());
    if quota(&reply(200, &[("x-ratelimit-limit", "x")], "")).is_ok() {
        bail!("a malformed header was accepted");
    }
    Ok(())
}
