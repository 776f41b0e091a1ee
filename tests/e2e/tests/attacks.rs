//! The attacks of issue #7, tried through a real Envoy 1.40 with the release `.wasm`, the real
//! sidecar and moto, the way a reviewer of an API gateway would try them. Each test is named after
//! the item it covers (`itemN_...`); the threat model in docs/SECURITY.md points here.
//!
//! Envoy runs with one worker where "the same worker" matters (item 1 and the failure policy).
//! Checks on a shared stack are named cases: every failure is reported, not just the first.

mod auth_support;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use auth_support::{
    alice, alice_hmac, alice_secret, base64, basic, expect_consumer, expect_reject, filter_config,
    get, secret_ref, with, AuthStack, Cases, Crypto, StackOptions, ALICE_CUSTOM_ID, ALICE_SECRET,
    HMAC_POST_ROUTE, REQUEST_TIMEOUT,
};
use e2e::{
    assert_filter_config_refused, client, free_port, render_sidecar_config_with, test_dir,
    wait_for, Paths, RedisAllowlist, Reply, Sidecar, SidecarCache,
};
use serde_json::{json, Value};

const KEY_REALM: &str = r#"apikey realm="key""#;
const INVALID_KEY: &str = "Invalid API key in request";
/// A value that is not UTF-8, with an ASCII marker to look for in Envoy's log.
const MARKED: &[u8] = b"leak-me-\xff\xfe-leak-me";
/// How the marker looks in a Rust `Debug` of the bytes (`FromUtf8Error { bytes: [108, ...`).
const MARKED_AS_DECIMALS: &str = "108, 101, 97, 107, 45, 109, 101";
/// The identity headers the filter sets (DESIGN §3).
const IDENTITY: [&str; 3] = [
    "x-consumer-username",
    "x-credential-identifier",
    "x-consumer-custom-id",
];

// ------------------------------------------------------------------------------------------------
// The stack's extra routes and consumers

/// A consumer without credentials, used as the anonymous consumer of route `anon`.
fn guest() -> Value {
    json!({"username": "guest", "labels": {"custom_id": "guest-001"}})
}

/// Routes besides auth_support's: `anon` (key-auth with an anonymous consumer) and `limited`
/// (limit-count keyed by the client's `X-User` header, no auth).
const ATTACK_ROUTES: [(&str, &str); 2] = [("anon", "/anon"), ("limited", "/limited")];

/// auth_support's filter config (one route per auth type) for `consumers` and [`guest`], plus the
/// [`ATTACK_ROUTES`].
fn attack_filter(consumers: &[Value], refresh_interval_s: u64) -> Value {
    let mut all = consumers.to_vec();
    all.push(guest());
    let mut filter = filter_config(Value::Array(all), refresh_interval_s);
    filter["routes"]["anon"] = json!({"key-auth": {"anonymous_consumer": "guest"}});
    filter["routes"]["limited"] = json!({"limit-count": {
        "count": 1_000_000, "time_window": 60, "key_type": "var", "key": "http_x_user",
        "policy": "local"
    }});
    filter
}

fn options(concurrency: u32) -> StackOptions {
    StackOptions {
        routes: ATTACK_ROUTES.to_vec(),
        concurrency,
        ..StackOptions::default()
    }
}

/// The usual stack: alice's secret as the tutorial has it, [`attack_filter`] for alice (30 s
/// refresh), the sidecar's default cache.
async fn alice_stack(name: &str, opts: &StackOptions) -> Result<AuthStack> {
    AuthStack::start_with(
        name,
        &[(ALICE_SECRET, alice_secret())],
        SidecarCache::default(),
        attack_filter(&[alice()], 30),
        opts,
    )
    .await
}

// ------------------------------------------------------------------------------------------------
// Requests and checks

/// `GET url` with byte header values, bounded by [`REQUEST_TIMEOUT`].
async fn get_raw(url: &str, headers: &[(&str, &[u8])]) -> Result<Reply> {
    tokio::time::timeout(REQUEST_TIMEOUT, e2e::get_bytes(url, headers))
        .await
        .with_context(|| format!("GET {url}: no answer within {REQUEST_TIMEOUT:?}"))?
}

/// A local 401 from the filter (`{"message": ...}`, not the upstream's echo).
fn expect_401(reply: &Reply) -> Result<()> {
    ensure!(
        reply.status == 401,
        "expected 401, got {}: {}",
        reply.status,
        reply.body
    );
    let body = reply.json()?;
    ensure!(
        body.get("message").is_some() && body.get("headers").is_none(),
        "not the filter's reply: {}",
        reply.body
    );
    Ok(())
}

/// alice's key on the key-auth route gets her through (the worker still serves).
async fn alice_gets_through(s: &AuthStack) -> Result<()> {
    let ok = get(&s.url("/ip"), &[("apikey", "alice-key")]).await?;
    expect_consumer(&ok, "alice", "alice-key-auth", Some(ALICE_CUSTOM_ID))
        .context("a valid request afterwards")
        .map(drop)
}

// ------------------------------------------------------------------------------------------------
// Item 1: request bytes that are not UTF-8

/// Header names and values as bytes.
type ByteHeaders = Vec<(&'static str, Vec<u8>)>;
/// A named request: (case name, url, headers).
type ByteRequest = (&'static str, String, ByteHeaders);

fn item1_crypto() -> Value {
    json!({"tokens": {}, "hmac": {"get": alice_hmac("GET", "/hmac")}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_non_utf8_values_are_bad_credentials_and_never_take_the_worker_down() -> Result<()> {
    let crypto = Crypto::make(&item1_crypto()).await?;
    let stack = alice_stack("attack_item1", &options(1)).await?;
    let s = &stack;
    let mut cases = Cases::default();
    alice_gets_through(s).await?;

    // Each case: one request with a value that is not UTF-8, then a valid request on the same
    // (only) worker, which must get through at once.
    let rejected: Vec<ByteRequest> = vec![
        (
            "key-auth apikey header",
            s.url("/ip"),
            vec![("apikey", MARKED.to_vec())],
        ),
        (
            "key-auth apikey query (percent-encoded)",
            s.url("/ip?apikey=leak-me-%FF%FE"),
            vec![],
        ),
        (
            "basic-auth Authorization bytes",
            s.url("/basic"),
            vec![("authorization", [b"Basic ", MARKED].concat())],
        ),
        (
            "basic-auth password decoding to bytes",
            s.url("/basic"),
            vec![(
                "authorization",
                format!("Basic {}", base64(&[b"alice:", MARKED].concat())).into_bytes(),
            )],
        ),
        (
            "jwt-auth Authorization bytes",
            s.url("/jwt"),
            vec![("authorization", [b"Bearer ", MARKED].concat())],
        ),
        (
            "jwt-auth query (percent-encoded)",
            s.url("/jwt?jwt=%FF%FE"),
            vec![],
        ),
        (
            "jwt-auth cookie",
            s.url("/jwt"),
            vec![("cookie", [b"jwt=", MARKED].concat())],
        ),
        (
            "hmac-auth Authorization bytes",
            s.url("/hmac"),
            vec![(
                "authorization",
                [
                    b"Signature keyId=\"".as_slice(),
                    MARKED,
                    b"\",algorithm=\"hmac-sha256\",headers=\"date\",signature=\"AAAA\"",
                ]
                .concat(),
            )],
        ),
    ];
    for (name, url, headers) in &rejected {
        cases
            .run(name, async {
                let headers: Vec<(&str, &[u8])> =
                    headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
                expect_401(&get_raw(url, &headers).await?)?;
                alice_gets_through(s).await
            })
            .await;
    }
    cases
        .run("hmac-auth Date bytes in a signed request", async {
            let mut headers: Vec<(&str, Vec<u8>)> = crypto
                .hmac("get")?
                .into_iter()
                .map(|(n, v)| (n, v.as_bytes().to_vec()))
                .collect();
            for (name, value) in &mut headers {
                if *name == "date" {
                    *value = [b"Thu, 03 Dec 2026 ".as_slice(), MARKED, b" GMT"].concat();
                }
            }
            let headers: Vec<(&str, &[u8])> =
                headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            expect_401(&get_raw(&s.url("/hmac"), &headers).await?)?;
            alice_gets_through(s).await
        })
        .await;
    cases
        .run("limit-count key from a header with bytes", async {
            let reply = get_raw(&s.url("/limited"), &[("x-user", MARKED)]).await?;
            ensure!(
                reply.status == 200 || (400..500).contains(&reply.status),
                "expected the upstream's 200 or a 4xx, got {}: {}",
                reply.status,
                reply.body
            );
            alice_gets_through(s).await
        })
        .await;
    cases
        .run(
            "an unrelated header with bytes next to a valid key",
            async {
                let reply = get_raw(
                    &s.url("/ip"),
                    &[("apikey", b"alice-key"), ("x-unrelated", MARKED)],
                )
                .await?;
                expect_consumer(&reply, "alice", "alice-key-auth", Some(ALICE_CUSTOM_ID))?;
                let open = get_raw(&s.url("/open"), &[("x-unrelated", MARKED)]).await?;
                ensure!(
                    open.status == 200,
                    "open route: {} {}",
                    open.status,
                    open.body
                );
                alice_gets_through(s).await
            },
        )
        .await;
    cases
        .run("no VM failed", async {
            // FAIL_RELOAD counts every request that meets a failed VM: reloaded, refused while
            // backing off, or a reload that failed.
            let mut met_failed_vm = 0;
            for outcome in ["success", "backoff", "failure"] {
                let name = format!("wasm.envoy-secret-auth.vm_reload_{outcome}");
                met_failed_vm += s.envoy.stat(&name).await?.unwrap_or(0);
            }
            ensure!(
                met_failed_vm == 0,
                "{met_failed_vm} requests met a failed VM: requests crashed it"
            );
            Ok(())
        })
        .await;
    cases
        .run("Envoy's log holds none of the bytes sent", async {
            let logs = s.envoy.logs();
            for needle in ["leak-me", MARKED_AS_DECIMALS, "255, 254"] {
                if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
                    bail!("the log shows {needle:?}: {line}");
                }
            }
            Ok(())
        })
        .await;
    cases.finish()
}

// ------------------------------------------------------------------------------------------------
// The failure policy: a VM that fails is replaced, and nothing is let through meanwhile

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policy_fails_closed_and_reloads_the_vm() -> Result<()> {
    let stack = alice_stack("attack_failure_policy", &options(1)).await?;
    let url = stack.url("/ip");
    alice_gets_through(&stack).await?;

    // With proxy-wasm 0.2.5's unwraps this crashes the VM (issue #7 item 1); once the filter
    // reads bytes it is an ordinary bad key. Either way it must not get through.
    let bad = get_raw(&url, &[("apikey", b"\xff\xfe")]).await?;
    ensure!(
        !(200..300).contains(&bad.status),
        "a non-UTF-8 key was let through: {} {}",
        bad.status,
        bad.body
    );
    // Until the worker's VM is back, every answer is the right one or a 503 (fail closed).
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    let mut fail_closed = 0;
    loop {
        let valid = get(&url, &[("apikey", "alice-key")]).await?;
        let wrong = get(&url, &[("apikey", "wrong-key")]).await?;
        let missing = get(&url, &[]).await?;
        let answers = [
            ("valid", &valid, 200),
            ("wrong", &wrong, 401),
            ("no", &missing, 401),
        ];
        for (what, reply, want) in answers {
            ensure!(
                reply.status == want || reply.status == 503,
                "{what} key after the VM failure: {} {}",
                reply.status,
                reply.body
            );
            if reply.status == 503 {
                fail_closed += 1;
            }
        }
        if answers.iter().all(|(_, r, want)| r.status == *want) {
            break;
        }
        ensure!(Instant::now() < deadline, "the VM was not back within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back_after = started.elapsed();
    alice_gets_through(&stack).await?;
    expect_reject(
        &get(&url, &[("apikey", "wrong-key")]).await?,
        401,
        INVALID_KEY,
        Some(KEY_REALM),
    )?;
    let reloads = stack
        .envoy
        .stat("wasm.envoy-secret-auth.vm_reload_success")
        .await?
        .unwrap_or(0);
    eprintln!(
        "non-UTF-8 key: {}; VM reloads: {reloads}; 503s while reloading: {fail_closed}; \
         all answers right again after {back_after:?}",
        bad.status
    );
    if bad.status == 503 {
        ensure!(
            reloads >= 1,
            "503 for the bad key, but no VM reload counted"
        );
    }
    ensure!(
        (400..500).contains(&bad.status),
        "the non-UTF-8 key got {} (503: the VM crashed, issue #7 item 1); the failure policy \
         held (nothing let through, {reloads} reload(s), right answers again after \
         {back_after:?}), but a bad key must be a 4xx",
        bad.status
    );
    Ok(())
}

/// A proxy-wasm module that traps (a Wasm `unreachable`, as a Rust panic ends) on any request
/// with an `x-crash` header and lets every other request through: the failure policy's test
/// needs a VM that fails on demand, and no request crashes the filter any more.
const CRASHER_WAT: &str = r#"
(module
  (import "env" "proxy_get_header_map_value"
    (func $header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "x-crash")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7))
                               (i32.const -8)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; map 0 = request headers; status 0 = the header is there
    (if (i32.eqz (call $header (i32.const 0) (i32.const 16) (i32.const 7)
                               (i32.const 64) (i32.const 68)))
      (then unreachable))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
"#;

/// [`CRASHER_WAT`] as an Envoy HTTP filter with the failure policy of the shipped configs.
fn crasher_filter(dir: &std::path::Path) -> Result<Value> {
    let wasm = wat::parse_str(CRASHER_WAT).context("assembling the crasher module")?;
    let path = dir.join("crasher.wasm");
    std::fs::write(&path, wasm)?;
    Ok(json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "crasher",
                "root_id": "crasher",
                "failure_policy": "FAIL_RELOAD",
                "vm_config": {
                    "vm_id": "crasher",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": path.display().to_string()}}
                }
            }
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policy_a_crashing_vm_answers_503_and_is_reloaded() -> Result<()> {
    let dir = test_dir("attack_failure_policy_crasher_wasm")?;
    let mut opts = options(1);
    opts.filters_before = vec![crasher_filter(&dir)?];
    let stack = alice_stack("attack_failure_policy_crasher", &opts).await?;
    let url = stack.url("/ip");
    alice_gets_through(&stack).await?;
    let stat = |outcome: &str| {
        let name = format!("wasm.crasher.vm_reload_{outcome}");
        let envoy = &stack.envoy;
        async move { envoy.stat(&name).await.map(Option::unwrap_or_default) }
    };

    // A valid key does not help a request that crashes the VM.
    let crash = get(&url, &[("apikey", "alice-key"), ("x-crash", "1")]).await?;
    ensure!(
        crash.status == 503 && crash.body.is_empty(),
        "the crashing request: expected an empty 503, got {} {:?}",
        crash.status,
        crash.body
    );
    let started = Instant::now();
    let mut while_down = Vec::new();
    loop {
        let valid = get(&url, &[("apikey", "alice-key")]).await?;
        let wrong = get(&url, &[("apikey", "wrong-key")]).await?;
        ensure!(
            matches!(valid.status, 200 | 503) && matches!(wrong.status, 401 | 503),
            "while the VM is reloaded: valid key {}, wrong key {}",
            valid.status,
            wrong.status
        );
        while_down.extend([valid.status, wrong.status]);
        if valid.status == 200 && wrong.status == 401 {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(15),
            "the VM was not back within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back_after = started.elapsed();
    let refused = while_down.iter().filter(|s| **s == 503).count();
    ensure!(refused > 0, "no request met the failed VM: {while_down:?}");
    ensure!(stat("success").await? == 1, "one reload expected");
    ensure!(
        stat("backoff").await? >= 1,
        "requests during the back-off are counted"
    );
    eprintln!("a crashed VM: {refused} requests refused (503), back after {back_after:?}");

    // Crash again: the worker comes back again.
    let again_at = Instant::now();
    let again = get(&url, &[("x-crash", "1")]).await?;
    ensure!(again.status == 503, "second crash: {}", again.status);
    wait_for(
        Duration::from_secs(15),
        "the VM back after a second crash",
        || {
            let url = url.clone();
            async move {
                let reply = get(&url, &[("apikey", "alice-key")]).await.ok()?;
                (reply.status == 200).then_some(())
            }
        },
    )
    .await?;
    ensure!(stat("success").await? == 2, "two reloads expected");
    eprintln!("second crash: back after {:?}", again_at.elapsed());
    alice_gets_through(&stack).await
}

// ------------------------------------------------------------------------------------------------
// Item 2: a secret that resolves to an empty string

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_empty_secret_values_are_no_credentials() -> Result<()> {
    let crypto = Crypto::make(&json!({
        "tokens": {"empty-secret": {"payload": {"key": "alice-key"}, "exp_in": 3600,
                                    "hs256_by_hand": ""}},
        "hmac": {"empty-secret": with(alice_hmac("GET", "/hmac"), "secret", json!(""))}
    }))
    .await?;
    let empty = json!({
        "alice-key-auth": "", "alice-basic-auth": "", "alice-jwt-auth": "", "alice-hmac-auth": ""
    });
    let carol = json!({
        "username": "carol",
        "credentials": [{"id": "carol-key-auth", "type": "key-auth",
                         "key": secret_ref("carol-credentials", "carol-key-auth")}]
    });
    let stack = AuthStack::start_with(
        "attack_item2",
        &[
            (ALICE_SECRET, empty),
            ("carol-credentials", json!({"carol-key-auth": "carol-key"})),
        ],
        SidecarCache::default(),
        attack_filter(&[alice(), carol], 30),
        &options(2),
    )
    .await?;
    let s = &stack;
    let c = &crypto;
    let mut cases = Cases::default();
    cases
        .run(
            "a consumer with a non-empty key still gets through",
            async {
                let ok = get(&s.url("/ip"), &[("apikey", "carol-key")]).await?;
                expect_consumer(&ok, "carol", "carol-key-auth", None).map(drop)
            },
        )
        .await;
    cases
        .run("key-auth: empty apikey header", async {
            expect_401(&get(&s.url("/ip"), &[("apikey", "")]).await?)
        })
        .await;
    cases
        .run("key-auth: empty apikey query", async {
            expect_401(&get(&s.url("/ip?apikey="), &[]).await?)
        })
        .await;
    cases
        .run("basic-auth: alice with an empty password", async {
            // `Basic YWxpY2U6`
            let reply = get(&s.url("/basic"), &[("authorization", &basic("alice", ""))]).await?;
            expect_401(&reply)
        })
        .await;
    cases
        .run("jwt-auth: HS256 token signed with an empty secret", async {
            let bearer = format!("Bearer {}", c.token("empty-secret")?);
            expect_401(&get(&s.url("/jwt"), &[("authorization", &bearer)]).await?)
        })
        .await;
    cases
        .run("hmac-auth: signature with an empty secret", async {
            expect_401(&get(&s.url("/hmac"), &c.hmac("empty-secret")?).await?)
        })
        .await;
    cases
        .run(
            "the empty value is logged with its reference and reason",
            async {
                let reference = secret_ref(ALICE_SECRET, "alice-key-auth");
                s.envoy
                    .wait_for_log_line(Duration::from_secs(5), "the empty reference", |line| {
                        line.contains(&reference) && line.contains("empty_value")
                    })
                    .await
                    .map(drop)
            },
        )
        .await;
    cases.finish()
}

// ------------------------------------------------------------------------------------------------
// Item 3: hmac-auth signatures that do not cover what they claim

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_hmac_signatures_cannot_be_replayed() -> Result<()> {
    let get_hmac = |path: &str| alice_hmac("GET", path);
    let crypto = Crypto::make(&json!({
        "tokens": {},
        "hmac": {
            "valid": get_hmac("/hmac"),
            // The issue's replay: headers="date", no Date, so the signing string is "keyId\n";
            // a fresh X-Date makes it look recent.
            "key-id-only": with(with(with(get_hmac("/hmac/anything"), "signed", json!(["date"])),
                                     "omit", json!(["date"])), "x_date", json!(true)),
            "listed-but-absent": with(
                with(get_hmac("/hmac"), "signed", json!(["@request-target", "date", "x-custom"])),
                "omit", json!(["x-custom"])),
            // signed_headers (default ["date"]) must be signed: here Date is sent unsigned.
            "date-unsigned": with(get_hmac("/hmac"), "signed", json!(["@request-target"])),
            // Freshness comes from the signed Date only, never from an unsigned X-Date.
            "stale-date-fresh-x-date": with(with(get_hmac("/hmac"), "date_offset_s", json!(-3600)),
                                            "x_date", json!(true)),
            // validate_request_body: a Digest that is sent but not signed proves nothing.
            "digest-unsigned": with(alice_hmac("POST", "/hmac"), "digest_of",
                                    json!(r#"{"order":1}"#)),
        }
    }))
    .await?;
    let stack = alice_stack("attack_item3", &options(2)).await?;
    let s = &stack;
    let c = &crypto;
    let mut cases = Cases::default();
    cases
        .run("control: a valid signature gets through", async {
            let ok = get(&s.url("/hmac"), &c.hmac("valid")?).await?;
            expect_consumer(&ok, "alice", "alice-hmac-auth", Some(ALICE_CUSTOM_ID)).map(drop)
        })
        .await;
    cases
        .run("signature over keyId only, no Date, fresh X-Date", async {
            for path in ["/hmac/anything", "/hmac", "/hmac/admin?delete=all"] {
                let reply = get(&s.url(path), &c.hmac("key-id-only")?).await?;
                expect_401(&reply).with_context(|| format!("GET {path}"))?;
            }
            Ok(())
        })
        .await;
    for (name, which) in [
        (
            "a header listed in headers= but absent",
            "listed-but-absent",
        ),
        ("Date sent but not signed", "date-unsigned"),
        ("stale signed Date, fresh X-Date", "stale-date-fresh-x-date"),
    ] {
        cases
            .run(name, async {
                expect_401(&get(&s.url("/hmac"), &c.hmac(which)?).await?)
            })
            .await;
    }
    cases
        .run(
            "validate_request_body: Digest present but not signed",
            async {
                // The route `hmac-post` validates the body; the attacker sends their own body with
                // its (correct) digest under a signature that does not cover the digest.
                let reply = auth_support::send(
                    "POST",
                    &s.url("/hmac"),
                    &c.hmac("digest-unsigned")?,
                    Some(r#"{"order":1}"#),
                )
                .await?;
                expect_401(&reply).context(HMAC_POST_ROUTE)
            },
        )
        .await;
    cases.finish()
}

// ------------------------------------------------------------------------------------------------
// Item 4: revocation by deleting the secret

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item4_a_deleted_secret_stops_authenticating_within_refresh_plus_ttl() -> Result<()> {
    let refresh_interval_s = 1;
    let cache = SidecarCache {
        ttl_seconds: 1,
        not_found_ttl_seconds: 1,
    };
    let bob = json!({
        "username": "bob",
        "credentials": [{"id": "bob-key-auth", "type": "key-auth",
                         "key": secret_ref("bob-credentials", "bob-key-auth")}]
    });
    let stack = AuthStack::start_with(
        "attack_item4",
        &[
            (ALICE_SECRET, alice_secret()),
            ("bob-credentials", json!({"bob-key-auth": "bob-key"})),
        ],
        cache,
        attack_filter(&[alice(), bob], refresh_interval_s),
        &options(2),
    )
    .await?;
    let url = stack.url("/ip");
    for key in ["alice-key", "bob-key"] {
        for _ in 0..4 {
            let ok = get(&url, &[("apikey", key)]).await?;
            ensure!(
                ok.status == 200,
                "{key} before deletion: {} {}",
                ok.status,
                ok.body
            );
        }
    }

    // alice's secret is marked for deletion (AWS's default, 7-30 days of recovery window; AWS
    // refuses every read meanwhile); bob's is deleted at once.
    stack.moto.delete_secret(ALICE_SECRET, Some(7)).await?;
    stack.moto.delete_secret("bob-credentials", None).await?;
    let deleted = Instant::now();
    // The bound: the filter's refresh interval plus the sidecar's TTL; 3 s for callouts and the
    // two workers' timers.
    let bound = Duration::from_secs(refresh_interval_s + cache.ttl_seconds + 3);
    let mut failures = Vec::new();
    for (key, how) in [
        ("bob-key", "deleted without recovery"),
        ("alice-key", "marked for deletion"),
    ] {
        let refused = wait_for(
            bound.saturating_sub(deleted.elapsed()),
            &format!("{key} ({how}) to get 401"),
            || {
                let url = url.clone();
                async move {
                    let reply = get(&url, &[("apikey", key)]).await.ok()?;
                    (reply.status == 401).then_some(())
                }
            },
        )
        .await;
        match refused {
            Ok(()) => eprintln!("{key} ({how}): first 401 after {:?}", deleted.elapsed()),
            Err(e) => failures.push(format!("{key} ({how}): {e:#}")),
        }
    }
    // Then on every connection (both workers): refused, never 200.
    tokio::time::sleep(Duration::from_secs(refresh_interval_s)).await;
    for key in ["alice-key", "bob-key"] {
        for _ in 0..6 {
            let reply = get(&url, &[("apikey", key)]).await?;
            if reply.status != 401 {
                failures.push(format!(
                    "{key}: {} {} after {:?}",
                    reply.status,
                    reply.body,
                    deleted.elapsed()
                ));
                break;
            }
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Item 5: identity headers forged by the client

/// Every spelling of the identity headers a client might try; underscores are what many
/// frameworks (CGI, PHP, Django, Rails...) read as the same variable as the dashed name.
const FORGED: &[(&str, &str)] = &[
    ("X_Consumer_Username", "admin"),
    ("x_consumer_username", "admin"),
    ("X-Consumer_Username", "admin"),
    ("X-Consumer-Username", "admin"),
    ("X-Credential-Identifier", "forged"),
    ("X_Credential_Identifier", "forged"),
    ("X-Consumer-Custom-Id", "forged"),
    ("x_consumer_custom_id", "forged"),
];

/// The upstream saw exactly `expected` (name, value) of the identity headers, once each, and no
/// client spelling of any of them.
fn expect_identity(reply: &Reply, expected: &[(&str, &str)]) -> Result<()> {
    ensure!(
        reply.status == 200,
        "expected 200, got {}: {}",
        reply.status,
        reply.body
    );
    let echoed = reply.json()?;
    let headers = echoed["headers"]
        .as_object()
        .context("no headers in the echo")?;
    for (name, value) in headers {
        let normal = name.to_ascii_lowercase().replace('_', "-");
        if !IDENTITY.contains(&normal.as_str()) {
            continue;
        }
        ensure!(
            name == &normal,
            "the upstream got the client's {name}: {value}"
        );
        let want = expected.iter().find(|(n, _)| *n == normal).map(|(_, v)| *v);
        ensure!(
            want.is_some() && value.as_str() == want,
            "the upstream got {name}: {value}, expected {want:?}"
        );
    }
    for (name, _) in expected {
        ensure!(headers.contains_key(*name), "the upstream got no {name}");
    }
    Ok(())
}

/// (case name, path, request headers, the identity headers the upstream must see).
type ForgeryCase<'a> = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'a [(&'static str, &'static str)],
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item5_identity_headers_cannot_be_forged_with_underscores() -> Result<()> {
    let stack = alice_stack("attack_item5", &options(2)).await?;
    let s = &stack;
    let alice_identity = [
        ("x-consumer-username", "alice"),
        ("x-credential-identifier", "alice-key-auth"),
        ("x-consumer-custom-id", ALICE_CUSTOM_ID),
    ];
    let guest_identity = [
        ("x-consumer-username", "guest"),
        ("x-consumer-custom-id", "guest-001"),
    ];
    let forged = |extra: &[(&'static str, &'static str)]| {
        let mut headers = FORGED.to_vec();
        headers.extend_from_slice(extra);
        headers
    };
    let mut cases = Cases::default();
    let routes: [ForgeryCase; 5] = [
        (
            "authenticated route",
            "/ip",
            forged(&[("apikey", "alice-key")]),
            &alice_identity,
        ),
        (
            "anonymous-consumer route, no key",
            "/anon",
            forged(&[]),
            &guest_identity,
        ),
        (
            "anonymous-consumer route, alice's key",
            "/anon",
            forged(&[("apikey", "alice-key")]),
            &alice_identity,
        ),
        ("open route", "/open", forged(&[]), &[]),
        ("limit-count only route", "/limited", forged(&[]), &[]),
    ];
    for (name, path, headers, expected) in &routes {
        cases
            .run(name, async {
                expect_identity(&get(&s.url(path), headers).await?, expected)
            })
            .await;
    }
    cases
        .run("Envoy counts the dropped headers", async {
            let dropped = s
                .envoy
                .stat("http1.dropped_headers_with_underscores")
                .await?;
            ensure!(dropped.unwrap_or(0) > 0, "dropped: {dropped:?}");
            Ok(())
        })
        .await;
    cases.finish()
}

// ------------------------------------------------------------------------------------------------
// Item 10: the sidecar's and the filter's trust boundary

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item10_sidecar_refuses_redis_backends_not_in_its_config() -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir("attack_item10_limit")?;
    // An attacker's "Redis": it must never see a connection (with it, the resolved password).
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let trap_port = trap.local_addr()?.port();
    // The listed backend is down: the control request must reach it and fail as unavailable.
    let allowed_port = free_port()?;
    let sidecar_port = free_port()?;
    let nowhere = format!("http://127.0.0.1:{}", free_port()?);
    let allowlist = RedisAllowlist {
        redis: vec![format!("127.0.0.1:{allowed_port}")],
        redis_clusters: vec![vec![format!("127.0.0.1:{allowed_port}")]],
    };
    let config =
        render_sidecar_config_with(sidecar_port, &nowhere, SidecarCache::default(), &allowlist);
    let sidecar = Sidecar::start_with_config(&paths, &dir, &config, sidecar_port).await?;
    let limit = |backend: Value| {
        let body = json!({
            "backend": backend,
            "ops": [{"key": "limit-count:attack", "limit": 3, "window_s": 60, "cost": 1}]
        });
        let url = format!("http://127.0.0.1:{sidecar_port}/v1/limit");
        let token = sidecar.token().to_owned();
        async move {
            let resp = client()?
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await?;
            Ok::<_, anyhow::Error>((resp.status().as_u16(), resp.text().await?))
        }
    };
    let redis = |port: u16| {
        json!({"policy": "redis", "host": "127.0.0.1", "port": port, "database": 0,
               "password": "hunter2", "timeout_ms": 500, "ssl": false, "cluster_nodes": []})
    };
    let mut failures = Vec::new();
    let (status, body) = limit(redis(allowed_port)).await?;
    if status != 502 || !body.contains("redis_unavailable") {
        failures.push(format!(
            "control: the listed (down) backend should answer 502 redis_unavailable, got {status} {body}"
        ));
    }
    let cluster = json!({"policy": "redis-cluster", "host": "", "port": 0, "database": 0,
                         "password": "hunter2", "timeout_ms": 500, "ssl": false,
                         "cluster_nodes": [format!("127.0.0.1:{trap_port}")]});
    for (what, backend) in [
        ("an unlisted Redis", redis(trap_port)),
        ("an unlisted Redis Cluster node", cluster),
    ] {
        let (status, body) = limit(backend).await?;
        if !(400..500).contains(&status) {
            failures.push(format!(
                "{what}: expected a 4xx refusal, got {status} {body}"
            ));
        }
    }
    if let Ok(accepted) = tokio::time::timeout(Duration::from_millis(300), trap.accept()).await {
        failures.push(format!(
            "the sidecar connected to the unlisted Redis at 127.0.0.1:{trap_port}: {:?}",
            accepted.map(|(_, peer)| peer)
        ));
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item10_a_plain_sidecar_token_in_the_filter_config_is_refused() -> Result<()> {
    let mut filter = filter_config(json!([alice()]), 30);
    let literal = "plain-token-in-config-dump";
    filter["sidecar"]["token"] = json!(literal);
    let logs =
        assert_filter_config_refused("attack_item10_token", filter, &["sidecar.token"]).await?;
    ensure!(
        !logs.contains(literal),
        "the refusal shows the token itself"
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Item 12: strings that look like references but do not parse

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_near_miss_references_are_refused_not_used_as_literals() -> Result<()> {
    let path = "aws/my-secrets-manager/alice-credentials/alice-key-auth";
    let near_misses = [
        format!("$Secret://{path}"),
        format!("$SECRET://{path}"),
        format!("secret://{path}"),
        format!(" $secret://{path}"),
        format!("$secret:/{path}"),
        "$Env://SECRET_SIDECAR_TOKEN".to_owned(),
    ];
    let mut cases = Cases::default();
    for (i, near_miss) in near_misses.iter().enumerate() {
        let mut consumer = alice();
        consumer["credentials"][0]["key"] = json!(near_miss);
        let filter = filter_config(json!([consumer]), 30);
        cases
            .run(&format!("key {near_miss:?}"), async {
                assert_filter_config_refused(
                    &format!("attack_item12_{i}"),
                    filter,
                    &["consumers[0].credentials[0].key"],
                )
                .await
                .map(drop)
            })
            .await;
    }
    // The other sensitive fields are read by the same rule.
    for (i, (index, field)) in [(1, "password"), (2, "secret"), (3, "secret_key")]
        .into_iter()
        .enumerate()
    {
        let mut consumer = alice();
        consumer["credentials"][index][field] = json!(format!("$Secret://{path}"));
        let filter = filter_config(json!([consumer]), 30);
        cases
            .run(&format!("{field} \"$Secret://...\""), async {
                assert_filter_config_refused(
                    &format!("attack_item12_field_{i}"),
                    filter,
                    &[&format!("consumers[0].credentials[{index}].{field}")],
                )
                .await
                .map(drop)
            })
            .await;
    }
    cases.finish()
}
