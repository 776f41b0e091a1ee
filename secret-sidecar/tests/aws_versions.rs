//! The AWS provider's versions against moto's server, through the real SDK and router: after
//! the TTL an unchanged secret costs one `DescribeSecret` and no `GetSecretValue` (counted by a
//! wrapper around the provider), a rotated one is fetched again; `AWSPREVIOUS` with the time the
//! current version replaced it; `version_stage`; secrets named by ARN; an IAM policy without
//! `DescribeSecret` (moto enforcing IAM) still giving fresh values; and the `profile` option
//! through the binary with a temp shared credentials file.
//!
//! Needs `moto_server` (see `aws_moto.rs`); never skipped.

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secret_ref::{Manager, SecretValue};
use secret_sidecar::cache::Cache;
use secret_sidecar::clock::ManualClock;
use secret_sidecar::config::{Config, ProviderKind};
use secret_sidecar::providers::aws::AwsProvider;
use secret_sidecar::providers::{
    BoxFuture, PreviousSecret, Provider, ProviderError, Secret, SecretNames,
};
use secret_sidecar::resolve::Resolver;
use secret_sidecar::{app, AppState};
use serde_json::{json, Value};

use common::{create_secret, free_port, put_secret_value, sdk_client, start_moto, TempDir};
use test_support::Process;

const TOKEN: &str = "integration-token";

/// Counts the calls a provider gets.
struct Counting {
    inner: AwsProvider,
    gets: AtomicUsize,
    describes: AtomicUsize,
    previous: AtomicUsize,
}

impl Provider for Counting {
    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ProviderError>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_secret(name)
    }

    fn current_version<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        self.describes.fetch_add(1, Ordering::SeqCst);
        self.inner.current_version(name)
    }

    fn get_previous<'a>(
        &'a self,
        name: &'a str,
        current: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<PreviousSecret>, ProviderError>> {
        self.previous.fetch_add(1, Ordering::SeqCst);
        self.inner.get_previous(name, current)
    }

    fn list_secret_names(&self) -> BoxFuture<'_, Result<SecretNames, ProviderError>> {
        self.inner.list_secret_names()
    }
}

impl Counting {
    /// (GetSecretValue of the current version, DescribeSecret, previous-version reads)
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.gets.load(Ordering::SeqCst),
            self.describes.load(Ordering::SeqCst),
            self.previous.load(Ordering::SeqCst),
        )
    }
}

fn provider_toml(id: &str, endpoint: &str, extra: &str) -> String {
    format!(
        r#"
[[providers]]
id = "{id}"
kind = "aws"
region = "us-east-1"
endpoint_url = "{endpoint}"
{extra}
"#
    )
}

async fn post(app: &axum::Router, body: Value) -> Vec<Value> {
    common::resolve_results(app, TOKEN, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_previous_values_and_arns() {
    let moto = start_moto();
    let client = sdk_client(&moto.endpoint()).await;
    create_secret(&client, "rotating", r#"{"k":"v1"}"#).await;
    let arn = client
        .describe_secret()
        .secret_id("rotating")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();

    let creds = "access_key_id = \"test\"\nsecret_access_key = \"test\"";
    let toml = format!(
        "[cache]\nttl_seconds = 60\n{}{}",
        provider_toml("sm", &moto.endpoint(), creds),
        provider_toml(
            "prev-stage",
            &moto.endpoint(),
            &format!("{creds}\nversion_stage = \"AWSPREVIOUS\"")
        ),
    );
    let config = Config::parse(&toml, &|_| None).unwrap();
    let clock = Arc::new(ManualClock::new());
    let mut resolver = Resolver::new(Cache::new(config.cache, clock.clone()));
    let mut counting = None;
    for p in &config.providers {
        let ProviderKind::Aws(aws) = &p.kind else {
            panic!("aws only")
        };
        let provider = Arc::new(Counting {
            inner: AwsProvider::new(aws).await,
            gets: AtomicUsize::new(0),
            describes: AtomicUsize::new(0),
            previous: AtomicUsize::new(0),
        });
        if p.id == "sm" {
            counting = Some(provider.clone());
        }
        resolver.add_provider(&p.id, Manager::Aws, provider);
    }
    let sm = counting.unwrap();
    let app = app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ));

    let reference = "$secret://aws/sm/rotating/k";
    let ask = |previous: bool| json!({"refs": [reference], "previous": previous});
    // one version: no previous value
    assert_eq!(
        post(&app, ask(true)).await[0],
        json!({"ref": reference, "value": "v1", "stale": false})
    );
    assert_eq!(sm.counts(), (1, 0, 1));

    // after the TTL, unchanged: DescribeSecret only, the value stays fresh
    for round in 1..=3 {
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            post(&app, ask(false)).await[0],
            json!({"ref": reference, "value": "v1", "stale": false})
        );
        assert_eq!(sm.counts(), (1, round, 1), "round {round}");
    }

    // rotated: the version moved, so the value is fetched again, and AWSPREVIOUS is the old one
    put_secret_value(&client, "rotating", r#"{"k":"v2"}"#).await;
    let current = client
        .get_secret_value()
        .secret_id("rotating")
        .send()
        .await
        .unwrap();
    let rotated_at = current.created_date().unwrap().secs();
    clock.advance(Duration::from_secs(61));
    let result = &post(&app, ask(true)).await[0];
    assert_eq!(result["value"], "v2", "{result}");
    assert_eq!(result["previous"]["value"], "v1", "{result}");
    assert_eq!(
        result["previous"]["replaced_at"].as_i64(),
        Some(rotated_at),
        "{result}"
    );
    assert_eq!(sm.counts(), (2, 4, 2));
    // asked again within the TTL: nothing new is fetched
    assert_eq!(post(&app, ask(true)).await[0], *result);
    assert_eq!(sm.counts(), (2, 4, 2));

    // version_stage = "AWSPREVIOUS": that stage's value
    let prev_ref = "$secret://aws/prev-stage/rotating/k";
    assert_eq!(
        post(&app, json!({ "refs": [prev_ref], "previous": true })).await[0],
        json!({"ref": prev_ref, "value": "v1", "stale": false})
    );

    // by ARN: `arn:...:secret:rotating-AbCdEf` is the secret name, the last segment the key
    let by_arn = format!("$secret://aws/sm/{arn}/k");
    assert!(by_arn.contains(":secret:rotating-"), "{by_arn}");
    assert_eq!(
        post(&app, json!({ "refs": [by_arn] })).await[0],
        json!({"ref": by_arn, "value": "v2", "stale": false})
    );
    // the ARN is listed, so the longer candidate "<arn>/k" was not asked for
    assert_eq!(sm.counts().0, 3);
    let typo = format!("$secret://aws/sm/{}x/k", arn);
    let result = &post(&app, json!({ "refs": [typo] })).await[0];
    assert_eq!(result["error"]["code"], "secret_not_found", "{result}");
    assert_eq!(result["error"]["did_you_mean"], json!([arn]), "{result}");
}

/// `profile = "..."` makes the default chain read that profile of the shared credentials file.
#[test]
fn the_profile_option_picks_shared_credentials() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let moto = start_moto();
    runtime.block_on(async {
        let client = sdk_client(&moto.endpoint()).await;
        create_secret(&client, "alice-credentials", r#"{"alice-key-auth":"k"}"#).await;
    });
    let dir = TempDir::new("aws-profile").unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[sidecar-test]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    let aws_config = dir.path().join("config");
    std::fs::write(&aws_config, "").unwrap();
    let reference = "$secret://aws/sm/alice-credentials/alice-key-auth";
    let run = |profile: &str| {
        let config = dir.path().join("sidecar.toml");
        std::fs::write(
            &config,
            provider_toml("sm", &moto.endpoint(), &format!("profile = \"{profile}\"")),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_secret-sidecar"));
        command
            .arg("check")
            .arg("--config")
            .arg(&config)
            .arg(reference)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_CONFIG_FILE", &aws_config)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            command.env_remove(var);
        }
        command.output().unwrap()
    };

    let out = run("sidecar-test");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{reference}: ok\n")
    );

    // a profile that is not in the file: the sidecar's own credentials are missing
    let out = run("nope");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{reference}: access_denied: ")),
        "{stdout}"
    );
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("profile-secret"), "{all}");
}

/// Sets up moto (enforcing IAM after its first 4 calls) with secret `s` and a user allowed only
/// `GetSecretValue` and `ListSecrets`; returns the user's access key id and secret key.
const IAM_SETUP: &str = r#"
import boto3, json, sys
ep = sys.argv[1]
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
boto3.client("secretsmanager", **kw).create_secret(Name="s", SecretString='{"k":"v1"}')
iam = boto3.client("iam", **kw)
iam.create_user(UserName="sidecar")
iam.put_user_policy(UserName="sidecar", PolicyName="read-only-values", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
     "Action": ["secretsmanager:GetSecretValue", "secretsmanager:ListSecrets"], "Resource": "*"}]}))
k = iam.create_access_key(UserName="sidecar")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

/// `secretsmanager:DescribeSecret` is optional: refused, the value is fetched after each TTL and
/// served fresh, not stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_secret_refused_by_iam_falls_back_to_fetching() {
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin");
    let port = free_port();
    let mut command = Command::new(venv.join("moto_server"));
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "4");
    let mut moto = Process::spawn("moto (IAM enforced)", command, None).unwrap();
    moto.wait_for_port(port, test_support::READY_TIMEOUT)
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = Command::new(venv.join("python"))
        .args(["-c", IAM_SETUP, &endpoint])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let keys = String::from_utf8(out.stdout).unwrap();
    let (key_id, secret_key) = keys.trim().split_once(' ').unwrap();

    let toml = format!(
        "[cache]\nttl_seconds = 60\n{}",
        provider_toml(
            "sm",
            &endpoint,
            &format!("access_key_id = \"{key_id}\"\nsecret_access_key = \"{secret_key}\"")
        )
    );
    let config = Config::parse(&toml, &|_| None).unwrap();
    let clock = Arc::new(ManualClock::new());
    let resolver = secret_sidecar::build_resolver(&config, clock.clone())
        .await
        .unwrap();
    let app = app(AppState::new(
        SecretValue::new(TOKEN),
        resolver,
        config.limit.clone(),
    ));
    let reference = "$secret://aws/sm/s/k";
    for _ in 0..3 {
        assert_eq!(
            post(&app, json!({ "refs": [reference] })).await[0],
            json!({"ref": reference, "value": "v1", "stale": false})
        );
        clock.advance(Duration::from_secs(61));
    }
    moto.kill();
}
