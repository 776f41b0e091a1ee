//! `POST /v1/limit` against real `redis-server` processes (docs/DESIGN.md, section 4): the
//! fixed window and its counts, several ops and costs in one request, the script cache
//! flushed, key expiry, an ACL user whose password is a `$secret://` reference stored in moto
//! (and rotated), wrong and missing passwords, a stopped and an unresponsive server, a
//! three-node Redis Cluster, and TLS through the binary.
//!
//! Needs `redis-server`, `redis-cli` and `openssl` on PATH and moto's server (see
//! tests/common); without them the tests fail with what to run (scripts/deps.sh).

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use secret_ref::SecretValue;
use secret_sidecar::clock::ManualClock;
use secret_sidecar::config::Config;
use secret_sidecar::{app, build_resolver, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{
    create_secret, free_port, put_secret_value, redis_cli, sdk_client, start_moto, TempDir,
};
use test_support::{RedisCluster, RedisServer};

const TOKEN: &str = "limit-token";

fn config_toml(aws_endpoint: &str) -> String {
    format!(
        r#"
[cache]
ttl_seconds = 60

# every test Redis runs on a free loopback port
[limit]
redis = ["127.0.0.1:*", "localhost:*"]
redis_clusters = [["127.0.0.1:*"]]

[[providers]]
id = "my-secrets-manager"
kind = "aws"
region = "us-east-1"
endpoint_url = "{aws_endpoint}"
access_key_id = "test"
secret_access_key = "test"
"#
    )
}

/// The router over a config whose provider is at `aws_endpoint`; the cache runs on `clock`.
async fn sidecar(aws_endpoint: &str, clock: Arc<ManualClock>) -> Router {
    let config = Config::parse(&config_toml(aws_endpoint), &|_| None).unwrap();
    let resolver = build_resolver(&config, clock).await.unwrap();
    app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ))
}

/// A sidecar whose provider is never reached (plain credentials only).
async fn plain_sidecar() -> Router {
    let closed = format!("http://127.0.0.1:{}", free_port());
    sidecar(&closed, Arc::new(ManualClock::new())).await
}

async fn limit(app: &Router, backend: &Value, ops: Value) -> (StatusCode, Value, String) {
    let req = Request::builder()
        .method("POST")
        .uri("/v1/limit")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"backend": backend, "ops": ops}).to_string(),
        ))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body).to_string();
    let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, v, text)
}

/// The `(remaining, reset_s)` pairs of a successful answer.
async fn counters(app: &Router, backend: &Value, ops: Value) -> Vec<(i64, i64)> {
    let n = ops.as_array().map(Vec::len).unwrap_or(0);
    let (status, v, text) = limit(app, backend, ops).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), n, "{text}");
    results
        .iter()
        .map(|r| {
            assert_eq!(r.as_object().unwrap().len(), 2, "{r}");
            (
                r["remaining"].as_i64().unwrap(),
                r["reset_s"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The `(code, message)` of a failed answer, which must be a 502.
async fn failure(app: &Router, backend: &Value, ops: Value) -> (String, String) {
    let (status, v, text) = limit(app, backend, ops).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    (
        v["error"]["code"].as_str().unwrap().to_string(),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

fn op(key: &str, limit: i64, window_s: i64, cost: i64) -> Value {
    json!({"key": key, "limit": limit, "window_s": window_s, "cost": cost})
}

fn single(port: u16, extra: Value) -> Value {
    let mut b = json!({"policy": "redis", "host": "127.0.0.1", "port": port, "database": 0,
                       "timeout_ms": 1000, "ssl": false, "cluster_nodes": []});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_counts_in_a_real_redis() {
    let started = Instant::now();
    let mut redis = RedisServer::start_temp(&["--requirepass", "plain-pw"]).unwrap();
    let port = redis.port();
    let cli = |args: &[&str]| {
        let mut all = vec!["-a", "plain-pw"];
        all.extend_from_slice(args);
        redis_cli(port, &all)
    };
    let app = plain_sidecar().await;
    let backend = single(port, json!({"password": "plain-pw"}));

    // count 3, window 60: 2, 1, 0, -1 (the fourth is over the limit)
    for want in [2, 1, 0, -1] {
        let got = counters(&app, &backend, json!([op("c3", 3, 60, 1)])).await;
        let (remaining, reset_s) = got[0];
        assert_eq!(remaining, want);
        assert!((58..=60).contains(&reset_s), "reset_s {reset_s}");
    }
    // the counter is Redis' own
    assert_eq!(cli(&["GET", "c3"]), "-1");
    let ttl: i64 = cli(&["TTL", "c3"]).parse().unwrap();
    assert!((58..=60).contains(&ttl), "ttl {ttl}");

    // several ops in one request, answered in order; cost 5 in one op; cost 0 reads
    let got = counters(
        &app,
        &backend,
        json!([
            op("a", 5, 60, 1),
            op("b", 10, 30, 5),
            op("a", 5, 60, 1),
            op("b", 10, 30, 5),
            op("b", 10, 30, 0),
            op("b", 10, 30, 5),
        ]),
    )
    .await;
    let remaining: Vec<i64> = got.iter().map(|c| c.0).collect();
    assert_eq!(remaining, [4, 5, 3, 0, 0, -5]);
    assert!(got.iter().all(|c| (28..=60).contains(&c.1)), "{got:?}");
    assert_eq!(cli(&["GET", "b"]), "-5");

    // a full request (1000 ops, one key) is answered in op order
    let many: Vec<Value> = (0..1000).map(|_| op("many", 2000, 60, 1)).collect();
    let got = counters(&app, &backend, Value::Array(many)).await;
    let remaining: Vec<i64> = got.iter().map(|c| c.0).collect();
    assert_eq!(remaining, (1000..=1999).rev().collect::<Vec<i64>>());

    // concurrent requests on one key: every hit counted once
    let hits = (0..40).map(|_| counters(&app, &backend, json!([op("busy", 100, 60, 1)])));
    let mut remaining: Vec<i64> = futures_util::future::join_all(hits)
        .await
        .into_iter()
        .map(|c| c[0].0)
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (60..=99).collect::<Vec<i64>>());
    assert_eq!(cli(&["GET", "busy"]), "60");

    // the script cache emptied (restart, SCRIPT FLUSH): EVALSHA falls back to EVAL
    assert_eq!(cli(&["SCRIPT", "FLUSH"]), "OK");
    let got = counters(
        &app,
        &backend,
        json!([op("a", 5, 60, 1), op("f", 2, 60, 1)]),
    )
    .await;
    assert_eq!((got[0].0, got[1].0), (2, 1));

    // a key a foreign program left without an expiry starts a new window
    cli(&["SET", "foreign", "100"]);
    let got = counters(&app, &backend, json!([op("foreign", 3, 60, 1)])).await;
    assert_eq!(got, [(2, 60)]);

    // a key holding something else: Redis' error, named
    cli(&["HSET", "hash", "f", "v"]);
    cli(&["EXPIRE", "hash", "60"]);
    let (code, message) = failure(&app, &backend, json!([op("hash", 3, 60, 1)])).await;
    assert_eq!(code, "redis_error");
    assert!(
        message.starts_with(&format!("redis 127.0.0.1:{port} db 0 answered an error: ")),
        "{message}"
    );
    assert!(message.contains("WRONGTYPE"), "{message}");

    // window 1: the key expires on Redis' clock and a new window starts
    let got = counters(
        &app,
        &backend,
        json!([op("w1", 2, 1, 1), op("w1", 2, 1, 1)]),
    )
    .await;
    assert_eq!(got, [(1, 1), (0, 1)]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while cli(&["EXISTS", "w1"]) != "0" {
        assert!(Instant::now() < deadline, "w1 did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = counters(&app, &backend, json!([op("w1", 2, 1, 1)])).await;
    assert_eq!(got, [(1, 1)]);

    // another database of the same server is another counter
    let db3 = single(port, json!({"password": "plain-pw", "database": 3}));
    let got = counters(&app, &db3, json!([op("c3", 3, 60, 1)])).await;
    assert_eq!(got[0].0, 2);
    assert_eq!(cli(&["-n", "3", "GET", "c3"]), "2");

    // a wrong password, and none at all
    let wrong = single(port, json!({"password": "not-the-password"}));
    let (code, message) = failure(&app, &wrong, json!([op("c3", 3, 60, 1)])).await;
    assert_eq!(code, "redis_auth_failed", "{message}");
    assert!(
        message.starts_with(&format!("redis 127.0.0.1:{port} db 0 refused the login")),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
    let (code, message) =
        failure(&app, &single(port, json!({})), json!([op("c3", 3, 60, 1)])).await;
    assert_eq!(code, "redis_auth_failed", "{message}");
    assert!(message.contains("NOAUTH"), "{message}");
    // the good login still works (its connection is its own)
    assert_eq!(
        counters(&app, &backend, json!([op("n", 3, 60, 1)])).await[0].0,
        2
    );

    // Redis stopped: unavailable, within the timeout, while it stays down
    redis.kill();
    let fast = single(port, json!({"password": "plain-pw", "timeout_ms": 500}));
    for _ in 0..2 {
        let t = Instant::now();
        let (code, message) = failure(&app, &fast, json!([op("c3", 3, 60, 1)])).await;
        assert_eq!(code, "redis_unavailable", "{message}");
        assert!(
            message.starts_with(&format!("redis 127.0.0.1:{port} db 0 unavailable: ")),
            "{message}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
    }
    // and back (empty, no persistence): the next request reconnects
    redis.restart().unwrap();
    assert_eq!(
        counters(&app, &fast, json!([op("c3", 3, 60, 1)])).await[0].0,
        2
    );

    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresponsive_redis_times_out() {
    // accepts connections and never answers
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            match listener.accept() {
                Ok((c, _)) => conns.push(c),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let app = plain_sidecar().await;
    let backend = single(port, json!({"timeout_ms": 300}));
    let t = Instant::now();
    let (code, message) = failure(&app, &backend, json!([op("k", 3, 60, 1)])).await;
    let took = t.elapsed();
    assert_eq!(code, "redis_unavailable", "{message}");
    assert!(
        message.starts_with(&format!("redis 127.0.0.1:{port} db 0 unavailable: ")),
        "{message}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_with_its_password_in_moto() {
    let moto = start_moto();
    let client = sdk_client(&moto.endpoint()).await;
    create_secret(
        &client,
        "redis-credentials",
        r#"{"username":"api7","password":"s3cret-pw"}"#,
    )
    .await;
    let redis = RedisServer::start_temp(&[
        "--user",
        "api7",
        "on",
        ">s3cret-pw",
        "~*",
        "&*",
        "+@all",
        "--user",
        "default",
        "off",
    ])
    .unwrap();
    let port = redis.port();
    let cli = |args: &[&str]| {
        let mut all = vec!["--user", "api7", "--pass", "s3cret-pw"];
        all.extend_from_slice(args);
        redis_cli(port, &all)
    };
    let clock = Arc::new(ManualClock::new());
    let app = sidecar(&moto.endpoint(), clock.clone()).await;
    let user_ref = "$secret://aws/my-secrets-manager/redis-credentials/username";
    let pass_ref = "$secret://aws/my-secrets-manager/redis-credentials/password";
    let backend = single(port, json!({"username": user_ref, "password": pass_ref}));

    let got = counters(&app, &backend, json!([op("acl", 3, 60, 1)])).await;
    assert_eq!(got[0].0, 2);
    assert_eq!(cli(&["GET", "acl"]), "2");

    // the right user with a wrong password; no login at all (the default user is off)
    let wrong = single(port, json!({"username": user_ref, "password": "wrong"}));
    let (code, message) = failure(&app, &wrong, json!([op("acl", 3, 60, 1)])).await;
    assert_eq!(code, "redis_auth_failed", "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let (code, _) = failure(&app, &single(port, json!({})), json!([op("acl", 3, 60, 1)])).await;
    assert_eq!(code, "redis_auth_failed");

    // a reference that does not resolve: named, with the resolver's reason
    let typo = "$secret://aws/my-secrets-manager/redis-credentials/pasword";
    let bad_ref = single(port, json!({"username": user_ref, "password": typo}));
    let (code, message) = failure(&app, &bad_ref, json!([op("acl", 3, 60, 1)])).await;
    assert_eq!(code, "secret_unresolved");
    assert_eq!(
        message,
        format!("backend.password: reference \"{typo}\" did not resolve: key_not_found: key \"pasword\" not found in secret \"redis-credentials\" (provider \"my-secrets-manager\")")
    );

    // rotation: new password in the store and in Redis, the old connection killed. Once the
    // cache has the new value, a new connection logs in with it.
    put_secret_value(
        &client,
        "redis-credentials",
        r#"{"username":"api7","password":"rotated-pw"}"#,
    )
    .await;
    cli(&["ACL", "SETUSER", "api7", "resetpass", ">rotated-pw"]);
    redis_cli(
        port,
        &[
            "--user",
            "api7",
            "--pass",
            "rotated-pw",
            "CLIENT",
            "KILL",
            "USER",
            "api7",
        ],
    );
    clock.advance(Duration::from_secs(61));
    let got = counters(&app, &backend, json!([op("acl", 3, 60, 1)])).await;
    assert_eq!(got[0].0, 1);
}

/// For each node, a key whose slot that node serves (slots are split evenly in order).
fn key_per_node(nodes: &[RedisServer]) -> Vec<(String, u16)> {
    let mut found: Vec<Option<String>> = vec![None; nodes.len()];
    for i in 0..1000 {
        let key = format!("limit-count:route1:remote_addr:10.0.0.{i}");
        let node = owner(nodes[0].port(), &key, nodes);
        if found[node].is_none() {
            found[node] = Some(key);
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
        .into_iter()
        .zip(nodes)
        .map(|(k, n)| (k.unwrap(), n.port()))
        .collect()
}

/// Which of `nodes` serves `key`, as the node at `port` sees the slot map.
fn owner(port: u16, key: &str, nodes: &[RedisServer]) -> usize {
    let slot: u16 = redis_cli(port, &["CLUSTER", "KEYSLOT", key])
        .parse()
        .unwrap();
    let id = slot_owner_id(port, slot);
    nodes
        .iter()
        .position(|n| redis_cli(n.port(), &["CLUSTER", "MYID"]) == id)
        .unwrap()
}

fn slot_owner_id(port: u16, slot: u16) -> String {
    // CLUSTER NODES: "<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <state> <slots...>"
    let nodes = redis_cli(port, &["CLUSTER", "NODES"]);
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        for range in fields.iter().skip(8) {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
                if (lo..=hi).contains(&slot) {
                    return fields[0].to_string();
                }
            }
        }
    }
    panic!("no node serves slot {slot}: {nodes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_routes_each_key_to_its_slot() {
    let started = Instant::now();
    let cluster = RedisCluster::start(None).unwrap();
    let nodes = &cluster.nodes;
    let keys = key_per_node(nodes);
    let app = plain_sidecar().await;
    // one seed node is enough to find the others
    let backend = json!({"policy": "redis-cluster", "timeout_ms": 2000,
                         "cluster_nodes": [format!("127.0.0.1:{}", nodes[1].port())]});
    let ops: Vec<Value> = keys.iter().map(|(k, _)| op(k, 3, 60, 1)).collect();
    for want in [2, 1, 0, -1] {
        let got = counters(&app, &backend, Value::Array(ops.clone())).await;
        assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), [want; 3]);
        assert!(got.iter().all(|c| (58..=60).contains(&c.1)), "{got:?}");
    }
    // each counter sits on its own node, exact
    for (key, port) in &keys {
        assert_eq!(redis_cli(*port, &["GET", key]), "-1", "{key} on {port}");
    }
    // cost 5 and a read, mixed over the nodes, in order
    let got = counters(
        &app,
        &backend,
        json!([
            op("c5", 10, 60, 5),
            op(&keys[0].0, 3, 60, 0),
            op("c5", 10, 60, 5)
        ]),
    )
    .await;
    assert_eq!(got.iter().map(|c| c.0).collect::<Vec<_>>(), [5, -1, 0]);

    // all nodes gone: unavailable
    drop(cluster);
    let (code, message) = failure(&app, &backend, json!([op("x", 3, 60, 1)])).await;
    assert_eq!(code, "redis_unavailable", "{message}");
    assert!(message.starts_with("redis-cluster 127.0.0.1:"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
}

// --- TLS ----------------------------------------------------------------------------------------

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new(test_support::on_path("openssl").unwrap())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA and a server certificate for 127.0.0.1 signed by it: `ca.crt`, `server.crt`,
/// `server.key` in `dir`.
fn make_certs(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=limit-test-ca"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

struct Sidecar(Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_post(port: u16, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_backend() {
    let certs = TempDir::new("tls").unwrap();
    make_certs(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let redis = RedisServer::start_with(None, |port| {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    })
    .unwrap();
    let body = json!({"backend": single(redis.port(), json!({"ssl": true})),
                      "ops": [op("tls", 2, 60, 1)]})
    .to_string();

    // this process does not trust the test CA: the certificate is refused
    let app = plain_sidecar().await;
    let backend = single(redis.port(), json!({"ssl": true}));
    let (code, message) = failure(&app, &backend, json!([op("tls", 2, 60, 1)])).await;
    assert_eq!(code, "redis_unavailable", "{message}");
    assert!(message.contains("certificate"), "{message}");

    // the binary with the CA in its trust store (SSL_CERT_FILE) speaks TLS to Redis
    let config = certs.path().join("sidecar.toml");
    let closed = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(
        &config,
        format!("token_env = \"TEST_LIMIT_TOKEN\"\n{}", config_toml(&closed)),
    )
    .unwrap();
    let port = free_port();
    let mut sidecar = Sidecar(
        Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("TEST_LIMIT_TOKEN", TOKEN)
            .env("SSL_CERT_FILE", file("ca.crt"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            sidecar.0.try_wait().unwrap().is_none(),
            "sidecar exited early"
        );
        assert!(
            Instant::now() < deadline,
            "sidecar did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, v) = http_post(port, "/v1/limit", &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"results": [{"remaining": 1, "reset_s": 60}]}));
    let (_, v) = http_post(port, "/v1/limit", &body);
    assert_eq!(v["results"][0]["remaining"], 0);
}
