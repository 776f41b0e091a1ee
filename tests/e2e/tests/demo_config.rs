//! The configs users run (`envoy/demo/*`, `envoy/docker/*`) work and agree with each other.

use anyhow::{bail, Context, Result};
use e2e::{free_port, get, test_dir, Envoy, EnvoyConfig, Moto, Paths, Sidecar, Upstream};
use serde_json::{json, Value};

fn read(relative: &str) -> Result<String> {
    let path = e2e::workspace_root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Replaces `from` (which must occur exactly once, so that drift is noticed) with `to`.
fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => bail!("expected {from:?} once in the config, found it {n} times"),
    }
}

/// The filter configuration: the YAML block scalar after `value: |`.
fn filter_json_of(yaml: &str) -> Result<Value> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut lines = yaml
        .lines()
        .skip_while(|line| !line.trim_end().ends_with("value: |"));
    let header = lines.next().context("no `value: |` block in the config")?;
    let block: Vec<&str> = lines
        .take_while(|line| line.trim().is_empty() || indent(line) > indent(header))
        .collect();
    serde_json::from_str(&block.join("\n")).context("the filter configuration is not JSON")
}

#[test]
fn docker_and_demo_envoy_configs_carry_the_same_filter_configuration() -> Result<()> {
    let demo = filter_json_of(&read("envoy/demo/envoy.yaml")?)?;
    let docker = filter_json_of(&read("envoy/docker/envoy.yaml")?)?;
    assert_eq!(demo, docker);
    assert_eq!(
        demo["consumers"][0]["credentials"][0]["key"],
        "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth"
    );
    assert_eq!(demo["sidecar"]["token"], "$env://SECRET_SIDECAR_TOKEN");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_configs_serve_the_tutorial() -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir("demo_configs")?;
    let moto = Moto::start(&paths, &dir).await?;
    moto.create_secret(
        "alice-credentials",
        &json!({"alice-key-auth": "alice-key", "alice-basic-auth": "alice-password"}),
    )
    .await?;

    let sidecar_port = free_port()?;
    let sidecar_toml = read("envoy/demo/sidecar.toml")?;
    let sidecar_toml = replace_once(
        &sidecar_toml,
        "listen = \"127.0.0.1:7070\"",
        &format!("listen = \"127.0.0.1:{sidecar_port}\""),
    )?;
    let sidecar_toml = replace_once(
        &sidecar_toml,
        "endpoint_url = \"http://127.0.0.1:5000\"",
        &format!("endpoint_url = \"{}\"", moto.endpoint()),
    )?;
    let sidecar = Sidecar::start_with_config(&paths, &dir, &sidecar_toml, sidecar_port).await?;
    let upstream = Upstream::start().await?;

    let (listener_port, admin_port) = (free_port()?, free_port()?);
    let mut yaml = read("envoy/demo/envoy.yaml")?;
    for (from, to) in [
        ("port_value: 9080", listener_port),
        ("port_value: 9901", admin_port),
        ("port_value: 8081", upstream.port()),
        ("port_value: 7070", sidecar_port),
    ] {
        yaml = replace_once(&yaml, from, &format!("port_value: {to}"))?;
    }
    let yaml = replace_once(
        &yaml,
        "filename: target/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm",
        &format!("filename: {}", paths.wasm.display()),
    )?;
    let config = EnvoyConfig {
        text: yaml,
        file_name: "envoy.yaml",
        listener_port,
        admin_port,
        token: sidecar.token().to_owned(),
        concurrency: 2,
    };
    let envoy = Envoy::start_with_config(&paths, &dir, &config).await?;

    let ok = get(&envoy.url("/ip"), &[("apikey", "alice-key")]).await?;
    assert_eq!(ok.status, 200, "body: {}", ok.body);
    assert_eq!(ok.json()?["headers"]["x-consumer-username"], "alice");
    let missing = get(&envoy.url("/ip"), &[]).await?;
    assert_eq!(missing.status, 401, "body: {}", missing.body);
    Ok(())
}
