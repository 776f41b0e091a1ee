//! basic-auth, jwt-auth (HS256, RS256, ES256), hmac-auth, key-auth, an open route and multi-auth
//! through a real Envoy, the real `.wasm` and sidecar, and moto: the API7 tutorial's consumer alice
//! with every credential referenced from the one secret `alice-credentials`. Routes are told
//! apart by their Envoy route name. Tokens and signatures are made by Python at test time.
//!
//! One stack serves every read-only case (each a named check; all failures are reported
//! together); the rotation test has its own stack with short refresh and cache TTLs.

mod auth_support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use auth_support::{
    alice, alice_hmac, alice_secret, basic, expect_consumer, expect_reject, filter_config, get,
    jwt_user, send, with, AuthStack, Cases, Crypto, ALICE_CUSTOM_ID, ALICE_SECRET, EC_SECRET,
    RSA_SECRET,
};
use e2e::{wait_for, Reply, SidecarCache};
use serde_json::{json, Value};

const KEY_REALM: &str = r#"apikey realm="key""#;
const BASIC_REALM: &str = r#"Basic realm="basic""#;
const JWT_REALM: &str = r#"Bearer realm="jwt""#;
const HMAC_REALM: &str = r#"hmac realm="hmac""#;
const HMAC_GENERIC: &str = "client request can't be validated";
const POST_BODY: &str = r#"{"order":42,"items":["a","b"]}"#;

fn basic_reject(reply: &Reply, message: &str) -> Result<()> {
    expect_reject(reply, 401, message, Some(BASIC_REALM))
}

fn jwt_reject(reply: &Reply, message: &str) -> Result<()> {
    expect_reject(reply, 401, message, Some(JWT_REALM))
}

/// What Python has to make for the shared stack's cases.
fn crypto_spec() -> Value {
    let hs = |payload: Value, exp_in: i64, secret: &str| json!({"payload": payload, "exp_in": exp_in, "alg": "HS256", "secret": secret});
    let signed = |key: &str, alg: &str, user: &str| {
        json!({"payload": {"key": format!("{user}-key")}, "exp_in": 3600, "alg": alg,
               "private_key": key})
    };
    json!({
        "tokens": {
            "alice": hs(json!({"key": "alice-key"}), 3600, "alice-secret"),
            "alice-expired": hs(json!({"key": "alice-key"}), -3600, "alice-secret"),
            "alice-wrong-secret": hs(json!({"key": "alice-key"}), 3600, "not-alice-secret"),
            "unknown-key": hs(json!({"key": "nobody-key"}), 3600, "alice-secret"),
            "no-key-claim": hs(json!({"sub": "alice"}), 3600, "alice-secret"),
            "alice-alg-none": {"payload": {"key": "alice-key"}, "exp_in": 3600, "alg": "none"},
            "rsa": signed("rsa", "RS256", "rsa-user"),
            "rsa-other-key": signed("rsa-other", "RS256", "rsa-user"),
            "rsa-as-hs256": {"payload": {"key": "rsa-user-key"}, "exp_in": 3600,
                             "hs256_with_public_key_of": "rsa"},
            "ec": signed("ec", "ES256", "ec-user"),
            "ec-other-key": signed("ec-other", "ES256", "ec-user"),
        },
        "hmac": {
            "get": alice_hmac("GET", "/hmac"),
            "get-query": alice_hmac("GET", "/hmac/orders?page=2&sort=asc"),
            "get-sha512": with(alice_hmac("GET", "/hmac"), "algorithm", json!("hmac-sha512")),
            "get-wrong-secret": with(alice_hmac("GET", "/hmac"), "secret", json!("wrong-secret")),
            "get-other-path": alice_hmac("GET", "/hmac/other"),
            "get-unknown-key-id": with(alice_hmac("GET", "/hmac"), "key_id", json!("mallory")),
            "get-stale-date": with(alice_hmac("GET", "/hmac"), "date_offset_s", json!(-3600)),
            "post": with(
                with(alice_hmac("POST", "/hmac"), "digest_of", json!(POST_BODY)),
                "signed", json!(["@request-target", "date", "digest"])),
            "post-no-digest": alice_hmac("POST", "/hmac"),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_type_on_its_named_route() -> Result<()> {
    let started = Instant::now();
    let crypto = Crypto::make(&crypto_spec()).await?;
    let made = started.elapsed();
    let consumers = json!([
        alice(),
        jwt_user("rsa-user", "RS256", RSA_SECRET),
        jwt_user("ec-user", "ES256", EC_SECRET)
    ]);
    let stack = AuthStack::start(
        "auth_types",
        &[
            (ALICE_SECRET, alice_secret()),
            (RSA_SECRET, json!({"public_key": crypto.public_key("rsa")?})),
            (EC_SECRET, json!({"public_key": crypto.public_key("ec")?})),
        ],
        SidecarCache::default(),
        filter_config(consumers, 30),
    )
    .await?;
    let up = started.elapsed();
    let s = &stack;
    let c = &crypto;
    let mut cases = Cases::default();

    // key-auth on the catch-all route `ip`.
    cases
        .run("key-auth allows alice", async {
            let ok = get(&s.url("/ip"), &[("apikey", "alice-key")]).await?;
            let echoed = expect_consumer(&ok, "alice", "alice-key-auth", Some(ALICE_CUSTOM_ID))?;
            ensure!(echoed["path"] == "/ip", "{echoed}");
            Ok(())
        })
        .await;
    cases
        .run("key-auth missing and wrong keys", async {
            let url = s.url("/ip");
            let missing = "Missing API key in request";
            expect_reject(&get(&url, &[]).await?, 401, missing, Some(KEY_REALM))?;
            let wrong = get(&url, &[("apikey", "alice-password")]).await?;
            expect_reject(&wrong, 401, "Invalid API key in request", Some(KEY_REALM))?;
            // Another type's credential is no key.
            let basic = get(
                &url,
                &[("authorization", &basic("alice", "alice-password"))],
            )
            .await?;
            expect_reject(&basic, 401, missing, Some(KEY_REALM))
        })
        .await;

    // basic-auth.
    cases
        .run("basic-auth allows alice", async {
            let auth = basic("alice", "alice-password");
            let ok = get(&s.url("/basic/x"), &[("authorization", &auth)]).await?;
            let echoed = expect_consumer(&ok, "alice", "alice-basic-auth", Some(ALICE_CUSTOM_ID))?;
            // hide_credentials is false.
            ensure!(
                echoed["headers"]["authorization"] == auth.as_str(),
                "{echoed}"
            );
            Ok(())
        })
        .await;
    cases
        .run("basic-auth denials", async {
            let url = s.url("/basic");
            let r = basic_reject;
            r(&get(&url, &[]).await?, "Missing authorization in request")?;
            // A key is not a basic-auth credential on this route.
            let key = get(&url, &[("apikey", "alice-key")]).await?;
            r(&key, "Missing authorization in request")?;
            let invalid = "Invalid user authorization";
            let wrong = basic("alice", "alice-key");
            r(&get(&url, &[("authorization", &wrong)]).await?, invalid)?;
            let nobody = basic("bob", "alice-password");
            r(&get(&url, &[("authorization", &nobody)]).await?, invalid)?;
            let garbled = get(&url, &[("authorization", "Basic !!!")]).await?;
            r(&garbled, "Invalid authorization in request")
        })
        .await;

    // jwt-auth, HS256 from alice's secret.
    cases
        .run("jwt-auth allows alice by header, query and cookie", async {
            let token = c.token("alice")?;
            let bearer = format!("Bearer {token}");
            let by_header = get(&s.url("/jwt"), &[("authorization", &bearer)]).await?;
            expect_consumer(&by_header, "alice", "alice-jwt-auth", Some(ALICE_CUSTOM_ID))?;
            let by_query = get(&s.url(&format!("/jwt?jwt={token}")), &[]).await?;
            expect_consumer(&by_query, "alice", "alice-jwt-auth", Some(ALICE_CUSTOM_ID))?;
            let cookie = format!("theme=dark; jwt={token}");
            let by_cookie = get(&s.url("/jwt"), &[("cookie", &cookie)]).await?;
            expect_consumer(&by_cookie, "alice", "alice-jwt-auth", Some(ALICE_CUSTOM_ID))?;
            Ok(())
        })
        .await;
    cases
        .run("jwt-auth denials", async {
            let url = s.url("/jwt");
            let r = jwt_reject;
            let bearer = |name: &str| c.token(name).map(|t| format!("Bearer {t}"));
            let with = |auth: String| {
                let url = url.clone();
                async move { get(&url, &[("authorization", &auth)]).await }
            };
            r(&get(&url, &[]).await?, "Missing JWT token in request")?;
            r(&with("Bearer not-a-jwt".into()).await?, "JWT token invalid")?;
            let failed = "failed to verify jwt";
            r(&with(bearer("alice-expired")?).await?, failed)?;
            r(&with(bearer("alice-alg-none")?).await?, failed)?;
            r(&with(bearer("alice-wrong-secret")?).await?, failed)?;
            let unknown = with(bearer("unknown-key")?).await?;
            r(&unknown, "Invalid user key in JWT token")?;
            r(
                &with(bearer("no-key-claim")?).await?,
                "missing user key in JWT token",
            )
        })
        .await;

    // jwt-auth, RS256 and ES256 with public keys from moto.
    cases
        .run("jwt-auth RS256 and ES256 users", async {
            for (user, token) in [("rsa-user", "rsa"), ("ec-user", "ec")] {
                let bearer = format!("Bearer {}", c.token(token)?);
                // Twice: the second answer may come from the verification cache.
                for _ in 0..2 {
                    let ok = get(
                        &s.url("/jwt"),
                        &[
                            ("authorization", &bearer),
                            ("x-consumer-custom-id", "forged"),
                        ],
                    )
                    .await?;
                    // No custom_id label: the client's header is removed, not passed on.
                    expect_consumer(&ok, user, &format!("{user}-jwt-auth"), None)?;
                }
            }
            Ok(())
        })
        .await;
    cases
        .run("jwt-auth RS256 and ES256 forgeries", async {
            for token in ["rsa-other-key", "rsa-as-hs256", "ec-other-key"] {
                let bearer = format!("Bearer {}", c.token(token)?);
                let reply = get(&s.url("/jwt"), &[("authorization", &bearer)]).await?;
                expect_reject(&reply, 401, "failed to verify jwt", Some(JWT_REALM))
                    .map_err(|e| e.context(token.to_owned()))?;
            }
            Ok(())
        })
        .await;

    // hmac-auth: GET /hmac (route `hmac`), POST /hmac (route `hmac-post`, body validated).
    cases
        .run("hmac-auth allows signed GETs", async {
            let ok = get(&s.url("/hmac"), &c.hmac("get")?).await?;
            expect_consumer(&ok, "alice", "alice-hmac-auth", Some(ALICE_CUSTOM_ID))?;
            let sha512 = get(&s.url("/hmac"), &c.hmac("get-sha512")?).await?;
            expect_consumer(&sha512, "alice", "alice-hmac-auth", Some(ALICE_CUSTOM_ID))?;
            let url = s.url("/hmac/orders?page=2&sort=asc");
            let query = get(&url, &c.hmac("get-query")?).await?;
            let echoed =
                expect_consumer(&query, "alice", "alice-hmac-auth", Some(ALICE_CUSTOM_ID))?;
            ensure!(echoed["query"] == "page=2&sort=asc", "{echoed}");
            Ok(())
        })
        .await;
    cases
        .run("hmac-auth denials", async {
            let url = s.url("/hmac");
            let missing = get(&url, &[]).await?;
            let message = format!("{HMAC_GENERIC}: missing Authorization header");
            expect_reject(&missing, 401, &message, Some(HMAC_REALM))?;
            // The reason is logged, never told.
            for name in [
                "get-wrong-secret",
                "get-other-path",
                "get-unknown-key-id",
                "get-stale-date",
            ] {
                let reply = get(&url, &c.hmac(name)?).await?;
                expect_reject(&reply, 401, HMAC_GENERIC, Some(HMAC_REALM))
                    .map_err(|e| e.context(name))?;
            }
            // Signed for a query string the request does not carry.
            let no_query = get(&s.url("/hmac/orders"), &c.hmac("get-query")?).await?;
            expect_reject(&no_query, 401, HMAC_GENERIC, Some(HMAC_REALM))
        })
        .await;
    cases
        .run("hmac-auth POST with a body matching Digest", async {
            let ok = send("POST", &s.url("/hmac"), &c.hmac("post")?, Some(POST_BODY)).await?;
            let echoed = expect_consumer(&ok, "alice", "alice-hmac-auth", Some(ALICE_CUSTOM_ID))?;
            ensure!(echoed["method"] == "POST", "{echoed}");
            Ok(())
        })
        .await;
    cases
        .run("hmac-auth POST whose body does not match Digest", async {
            let headers = c.hmac("post")?;
            let tampered = POST_BODY.replace("42", "43");
            let reply = send("POST", &s.url("/hmac"), &headers, Some(&tampered)).await?;
            expect_reject(&reply, 401, HMAC_GENERIC, Some(HMAC_REALM))?;
            // A validly signed POST without any Digest header.
            let headers = c.hmac("post-no-digest")?;
            let reply = send("POST", &s.url("/hmac"), &headers, Some(POST_BODY)).await?;
            expect_reject(&reply, 401, HMAC_GENERIC, Some(HMAC_REALM))
                .map_err(|e| e.context("no Digest header"))
        })
        .await;

    // A route with no plugins.
    cases
        .run("open route forwards without consumer headers", async {
            let spoofed = [
                ("x-consumer-username", "alice"),
                ("x-credential-identifier", "alice-key-auth"),
                ("x-consumer-custom-id", ALICE_CUSTOM_ID),
            ];
            let ok = get(&s.url("/open/anything"), &spoofed).await?;
            ensure!(ok.status == 200, "{} {}", ok.status, ok.body);
            let echoed = ok.json()?;
            ensure!(echoed["path"] == "/open/anything", "{echoed}");
            for (name, _) in spoofed {
                ensure!(
                    echoed["headers"].get(name).is_none(),
                    "{name} reached the upstream: {echoed}"
                );
            }
            Ok(())
        })
        .await;

    // key-auth + basic-auth on one route.
    cases
        .run(
            "multi-auth: either credential, else Authorization Failed",
            async {
                let url = s.url("/multi");
                let by_key = get(&url, &[("apikey", "alice-key")]).await?;
                expect_consumer(&by_key, "alice", "alice-key-auth", Some(ALICE_CUSTOM_ID))?;
                let auth = basic("alice", "alice-password");
                let by_basic = get(&url, &[("authorization", &auth)]).await?;
                expect_consumer(
                    &by_basic,
                    "alice",
                    "alice-basic-auth",
                    Some(ALICE_CUSTOM_ID),
                )?;
                // A wrong key does not stop basic-auth from accepting.
                let both = get(&url, &[("apikey", "wrong"), ("authorization", &auth)]).await?;
                expect_consumer(&both, "alice", "alice-basic-auth", Some(ALICE_CUSTOM_ID))?;
                expect_reject(&get(&url, &[]).await?, 401, "Authorization Failed", None)?;
                let wrong = basic("alice", "wrong");
                let bad = get(&url, &[("apikey", "wrong"), ("authorization", &wrong)]).await?;
                expect_reject(&bad, 401, "Authorization Failed", None)?;
                // Credentials of plugins the route does not run do not count.
                let jwt = format!("Bearer {}", c.token("alice")?);
                let other = get(&url, &[("authorization", &jwt)]).await?;
                expect_reject(&other, 401, "Authorization Failed", None)
            },
        )
        .await;

    let result = cases.finish();
    eprintln!(
        "python {made:?}, stack up at {up:?}, all cases done at {:?}",
        started.elapsed()
    );
    if result.is_err() {
        eprintln!("logs in {}", stack.dir.display());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_basic_auth_password_is_picked_up_and_old_one_fails() -> Result<()> {
    let cache = SidecarCache {
        ttl_seconds: 1,
        not_found_ttl_seconds: 1,
    };
    let refresh_interval_s = 1;
    let stack = AuthStack::start(
        "auth_types_rotation",
        &[(ALICE_SECRET, alice_secret())],
        cache,
        filter_config(json!([alice()]), refresh_interval_s),
    )
    .await?;
    let url = stack.url("/basic");
    let old = basic("alice", "alice-password");
    let new = basic("alice", "alice-password-rotated");
    let before = get(&url, &[("authorization", &old)]).await?;
    expect_consumer(&before, "alice", "alice-basic-auth", Some(ALICE_CUSTOM_ID))?;
    let refused = get(&url, &[("authorization", &new)]).await?;
    expect_reject(
        &refused,
        401,
        "Invalid user authorization",
        Some(BASIC_REALM),
    )?;

    let mut rotated = alice_secret();
    rotated["alice-basic-auth"] = json!("alice-password-rotated");
    stack.moto.put_secret_value(ALICE_SECRET, &rotated).await?;
    let rotated_at = Instant::now();

    // Expected within refresh + cache TTL (2 s); the bound adds slack for a loaded machine.
    let bound = Duration::from_secs(refresh_interval_s + cache.ttl_seconds + 6);
    wait_for(bound, "the rotated password to be accepted", || {
        let (url, new) = (url.clone(), new.clone());
        async move {
            let reply = get(&url, &[("authorization", &new)]).await.ok()?;
            (reply.status == 200).then_some(())
        }
    })
    .await?;
    let picked_up = rotated_at.elapsed();
    // Each worker refreshes on its own timer: after one more interval every worker has it.
    tokio::time::sleep(Duration::from_secs(refresh_interval_s + 1)).await;
    for _ in 0..6 {
        let ok = get(&url, &[("authorization", &new)]).await?;
        expect_consumer(&ok, "alice", "alice-basic-auth", Some(ALICE_CUSTOM_ID))?;
        let stale = get(&url, &[("authorization", &old)]).await?;
        expect_reject(&stale, 401, "Invalid user authorization", Some(BASIC_REALM))?;
    }
    // The other credentials in the same secret did not change and still work.
    let key = get(&stack.url("/ip"), &[("apikey", "alice-key")]).await?;
    expect_consumer(&key, "alice", "alice-key-auth", Some(ALICE_CUSTOM_ID))?;
    eprintln!("rotation picked up after {picked_up:?}");
    Ok(())
}
