//! `secret-sidecar check --config sidecar.toml --envoy envoy.yaml` (issue #11) as an operator runs
//! it before a deploy: the demo's Envoy and sidecar configs against moto holding the tutorial's
//! secrets, then the same Envoy config with a broken reference and with a filter configuration
//! the filter refuses, and the filter's configuration alone as a bare JSON file.
//!
//! Needs moto's server (scripts/deps.sh); it fails rather than skips without it.

// A test crate: its helpers may fail loudly (clippy.toml allows this only inside #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `check --config <sidecar> --envoy <envoy>`: exit code, stdout, stderr.
fn check(sidecar: &Path, envoy: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_secret-sidecar"))
        .args(["check", "--config"])
        .arg(sidecar)
        .arg("--envoy")
        .arg(envoy)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("SECRET_SIDECAR_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    // never a value, whatever the outcome
    for text in [&stdout, &stderr] {
        for value in VALUES {
            assert!(!text.contains(value), "{value} in\n{text}");
        }
    }
    (out.status.code(), stdout, stderr)
}

/// The table row (reference, used by, result) for `reference` used by `used_by`.
fn row(out: &str, reference: &str, used_by: &str) -> String {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.len() == 3 && cells[0] == reference && cells[1] == used_by)
        .map(|cells| cells[2].to_string())
        .unwrap_or_else(|| panic!("no row {reference} / {used_by} in\n{out}"))
}

const VALUES: [&str; 6] = [
    "alice-key\"",
    "alice-password",
    "alice-secret",
    "alice-secret-key",
    "redis-api7",
    "\"api7\"",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_envoy_config_checks_and_broken_ones_fail() {
    let moto = common::start_moto();
    let client = common::sdk_client(&moto.endpoint()).await;
    common::create_secret(
        &client,
        "alice-credentials",
        r#"{"alice-key-auth":"alice-key","password":"alice-password","secret":"alice-secret","secret-key":"alice-secret-key"}"#,
    )
    .await;
    common::create_secret(
        &client,
        "redis",
        r#"{"username":"api7","password":"redis-api7"}"#,
    )
    .await;
    let dir = common::TempDir::new("sidecar-check-envoy").unwrap();
    let sidecar = dir.path().join("sidecar.toml");
    let demo_toml = std::fs::read_to_string(workspace().join("envoy/demo/sidecar.toml")).unwrap();
    assert!(demo_toml.contains("http://127.0.0.1:5000"));
    std::fs::write(
        &sidecar,
        demo_toml.replace("http://127.0.0.1:5000", &moto.endpoint()),
    )
    .unwrap();
    let demo_envoy = workspace().join("envoy/demo/envoy.yaml");

    // the demo as shipped: every reference resolves
    let (code, out, err) = check(&sidecar, &demo_envoy);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("configuration ok (1 consumers, 4 credentials, 6 references)"),
        "{out}"
    );
    let tutorial = "$secret://aws/my-secrets-manager/alice-credentials";
    for (reference, used_by) in [
        (
            format!("{tutorial}/alice-key-auth"),
            "alice / primary-key / key",
        ),
        (
            format!("{tutorial}/password"),
            "alice / primary-basic / password",
        ),
        (format!("{tutorial}/secret"), "alice / primary-jwt / secret"),
        (
            format!("{tutorial}/secret-key"),
            "alice / primary-hmac / secret_key",
        ),
        (
            "$secret://aws/my-secrets-manager/redis/username".to_string(),
            "routes.limit / limit-count / redis_username",
        ),
        (
            "$secret://aws/my-secrets-manager/redis/password".to_string(),
            "routes.limit / limit-count / redis_password",
        ),
    ] {
        assert_eq!(row(&out, &reference, used_by), "ok");
    }
    assert!(out.contains("6 references in 6 uses: 0 failed"), "{out}");
    // the token comes from Envoy's environment (host_env_keys): noted, not an error
    assert!(
        err.contains(
            "$env://SECRET_SIDECAR_TOKEN is not set here; assumed set in Envoy's environment"
        ),
        "{err}"
    );

    let yaml = std::fs::read_to_string(&demo_envoy).unwrap();
    // a typo in one reference: that row fails with the reason and a suggestion, exit 1
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        yaml.replace(
            "alice-credentials/alice-key-auth",
            "alice-credentias/alice-key-auth",
        ),
    )
    .unwrap();
    let (code, out, err) = check(&sidecar, &typo);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert_eq!(
        row(
            &out,
            "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth",
            "alice / primary-key / key"
        ),
        "secret_not_found: secret \"alice-credentias\" not found in provider \"my-secrets-manager\"; did you mean \"alice-credentials\"?"
    );
    assert_eq!(
        row(
            &out,
            &format!("{tutorial}/password"),
            "alice / primary-basic / password"
        ),
        "ok"
    );
    assert!(out.contains("6 references in 6 uses: 1 failed"), "{out}");

    // a filter configuration the filter refuses: its own parser's message, exit 1
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        yaml.replace("\"type\": \"hmac-auth\"", "\"type\": \"hmac-aut\""),
    )
    .unwrap();
    let (code, out, err) = check(&sidecar, &broken);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("invalid filter configuration (Envoy would refuse it): consumers[0].credentials[3].type"),
        "{out}"
    );
    assert!(out.contains("hmac-aut"), "{out}");

    // the filter's configuration alone, as a JSON file
    let instances = secret_sidecar::envoy_check::load(&demo_envoy).unwrap();
    assert_eq!(instances.len(), 1);
    let bare = dir.path().join("filter.json");
    std::fs::write(&bare, &instances[0].config).unwrap();
    let (code, out, err) = check(&sidecar, &bare);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("filter [1] at .: configuration ok"), "{out}");

    // the Kubernetes examples: Istio's WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy, in
    // manifests of several YAML documents
    for (manifest, at) in [
        ("deploy/k8s/istio/wasmplugin.yaml", "spec"),
        (
            "deploy/k8s/envoy-gateway/extension-policy.yaml",
            "spec.wasm[0]",
        ),
    ] {
        let (code, out, err) = check(&sidecar, &workspace().join(manifest));
        assert_eq!(code, Some(0), "{manifest}: {out}\n{err}");
        assert!(out.contains("] at document["), "{out}");
        assert!(
            out.contains(&format!(
                "{at}: configuration ok (1 consumers, 4 credentials, 4 references)"
            )),
            "{manifest}: {out}"
        );
        assert_eq!(
            row(
                &out,
                &format!("{tutorial}/secret-key"),
                "alice / primary-hmac / secret_key"
            ),
            "ok"
        );
        assert!(
            err.contains("$env://SECRET_SIDECAR_TOKEN is not set here"),
            "{err}"
        );
    }

    // an Envoy config without the filter
    let none = dir.path().join("none.yaml");
    std::fs::write(&none, "static_resources: {listeners: []}\n").unwrap();
    let (code, _, err) = check(&sidecar, &none);
    assert_eq!(code, Some(1));
    assert!(err.contains("no envoy-secret-auth filter found"), "{err}");
}
