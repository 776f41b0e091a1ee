//! The configs users run (`envoy/demo/*`, `envoy/docker/*`) work and agree with each other, and
//! every shipped or generated Envoy config carries the security settings of docs/SECURITY.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{
    free_port, get, render_envoy_config, test_dir, Envoy, EnvoyConfig, EnvoySpec, Moto, Paths,
    Sidecar, Upstream,
};
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

// ------------------------------------------------------------------------------------------------
// Security settings every shipped Envoy config carries (docs/SECURITY.md)

/// Every JSON object in `value` (at any depth) for which `pick` holds.
fn objects_where<'a>(value: &'a Value, pick: &dyn Fn(&Value) -> bool, out: &mut Vec<&'a Value>) {
    if pick(value) {
        out.push(value);
    }
    match value {
        Value::Object(map) => map.values().for_each(|v| objects_where(v, pick, out)),
        Value::Array(items) => items.iter().for_each(|v| objects_where(v, pick, out)),
        _ => {}
    }
}

/// Every Envoy bootstrap the project ships or generates, by name: the YAML/JSON files under
/// `envoy/`, the e2e fixture's and the benchmark's generated configs (one per Wasm kind).
fn shipped_envoy_configs() -> Result<Vec<(String, Value)>> {
    let root = e2e::workspace_root();
    let mut configs = Vec::new();
    let mut dirs = vec![root.join("envoy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if path.is_dir() {
                dirs.push(path);
            } else if ["yaml", "yml", "json"].contains(&ext) {
                let config = e2e::yaml_file_as_json(&path)?;
                if config.get("static_resources").is_some() {
                    configs.push((path.display().to_string(), config));
                }
            }
        }
    }
    let spec = EnvoySpec::new(json!({}), 1, 2, "t");
    configs.push((
        "tests/e2e render_envoy_config".into(),
        render_envoy_config(&spec, Path::new("/x.wasm"), 3, 4),
    ));
    let dir = test_dir("shipped_envoy_configs")?;
    for kind in ["wasm-key", "wasm-limit", "wasm-noop", "native-limit"] {
        let out = dir.join(format!("bench-{kind}.json"));
        let status = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("bench/gen_envoy.py"))
            .args(["--filter", kind, "--port", "1", "--admin-port", "2"])
            .args(["--wasm", "/x.wasm", "--out"])
            .arg(&out)
            .status()
            .context("running bench/gen_envoy.py")?;
        ensure!(
            status.success(),
            "bench/gen_envoy.py --filter {kind}: {status}"
        );
        let text = std::fs::read_to_string(&out)?;
        configs.push((
            format!("bench/gen_envoy.py --filter {kind}"),
            serde_json::from_str(&text)?,
        ));
    }
    Ok(configs)
}

/// `early_header_mutation_extensions` holds Envoy's header_mutation extension removing every
/// identity header the filter writes.
fn removes_identity_headers_before_routing(extensions: &Value) -> bool {
    extensions.as_array().into_iter().flatten().any(|ext| {
        let config = &ext["typed_config"];
        let removed: Vec<&str> = config["mutations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["remove"].as_str())
            .collect();
        ext["name"] == "envoy.http.early_header_mutation.header_mutation"
            && config["@type"]
                == "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation"
            && e2e::IDENTITY_HEADERS.iter().all(|h| removed.contains(h))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_envoy_config_carries_the_security_settings() -> Result<()> {
    let configs = shipped_envoy_configs()?;
    ensure!(configs.len() >= 7, "found only {} configs", configs.len());
    let mut wasm_filters = 0;
    for (name, config) in &configs {
        let mut wasm = Vec::new();
        objects_where(
            config,
            &|v| v["name"] == "envoy.filters.http.wasm",
            &mut wasm,
        );
        for filter in wasm {
            let plugin = &filter["typed_config"]["config"];
            ensure!(
                plugin["failure_policy"] == "FAIL_RELOAD" && plugin.get("fail_open").is_none(),
                "{name}: a Wasm filter without failure_policy FAIL_RELOAD: {plugin}"
            );
            wasm_filters += 1;
        }
        let mut managers = Vec::new();
        let is_hcm = |v: &Value| {
            v["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(".HttpConnectionManager"))
        };
        objects_where(config, &is_hcm, &mut managers);
        ensure!(!managers.is_empty(), "{name}: no HTTP connection manager");
        for hcm in managers {
            let action = &hcm["common_http_protocol_options"]["headers_with_underscores_action"];
            ensure!(
                action == "DROP_HEADER",
                "{name}: headers_with_underscores_action is {action}, not DROP_HEADER"
            );
            // Client copies of the identity headers are removed before the route is matched
            // (docs/SECURITY.md "Route re-matching").
            let early = &hcm["early_header_mutation_extensions"];
            ensure!(
                removes_identity_headers_before_routing(early),
                "{name}: early_header_mutation_extensions must remove {:?} before routing, \
                 found {early}",
                e2e::IDENTITY_HEADERS
            );
        }
    }
    ensure!(wasm_filters >= 6, "found only {wasm_filters} Wasm filters");
    // Envoy closes idle sidecar connections before the sidecar does (its 120 s default).
    let mut sidecar_clusters = 0;
    for (name, config) in configs.iter().filter(|(n, _)| !n.starts_with("bench/")) {
        let mut clusters = Vec::new();
        objects_where(
            config,
            &|v| v["name"] == e2e::SIDECAR_CLUSTER,
            &mut clusters,
        );
        for cluster in clusters {
            let idle = &cluster["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                ["common_http_protocol_options"]["idle_timeout"];
            ensure!(
                idle == "60s",
                "{name}: sidecar cluster idle_timeout is {idle}, not 60s"
            );
            sidecar_clusters += 1;
        }
    }
    ensure!(
        sidecar_clusters >= 3,
        "found only {sidecar_clusters} sidecar clusters to check"
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The Docker example (there is no Docker engine in CI: its files are checked instead)

#[test]
fn docker_compose_publishes_only_envoys_listener_on_loopback() -> Result<()> {
    let root = e2e::workspace_root();
    let compose = e2e::yaml_file_as_json(&root.join("envoy/docker-compose.yaml"))?;
    let services = compose["services"]
        .as_object()
        .context("no services in docker-compose.yaml")?;
    let mut published = Vec::new();
    for (name, service) in services {
        ensure!(
            service.get("expose").is_none() && service["network_mode"] != "host",
            "{name}: exposes ports or uses the host's network"
        );
        for port in service["ports"].as_array().into_iter().flatten() {
            // Short syntax "127.0.0.1:HOST:CONTAINER", or the long one with host_ip.
            let (host_ip, target) = match port {
                Value::String(s) => {
                    let parts: Vec<&str> = s.split(':').collect();
                    ensure!(
                        parts.len() == 3,
                        "{name}: port {s} is not bound to an address"
                    );
                    (parts[0].to_owned(), parts[2].to_owned())
                }
                other => (
                    other["host_ip"].as_str().unwrap_or("").to_owned(),
                    other["target"].to_string(),
                ),
            };
            ensure!(
                host_ip == "127.0.0.1",
                "{name}: port {port} is published beyond loopback"
            );
            published.push(format!("{name}:{target}"));
        }
    }
    ensure!(
        published == ["envoy:9080"],
        "only Envoy's listener may be published, found {published:?}"
    );
    // The sidecar lives in Envoy's network namespace, on its loopback.
    let sidecar = &services["sidecar"];
    ensure!(
        sidecar["network_mode"] == "service:envoy",
        "the sidecar must share Envoy's network namespace: {sidecar}"
    );
    let toml = read("envoy/docker/sidecar.toml")?;
    ensure!(
        toml.lines()
            .any(|l| l.trim() == "listen = \"127.0.0.1:7070\""),
        "envoy/docker/sidecar.toml must listen on 127.0.0.1:7070"
    );
    // Envoy: admin on loopback; the sidecar cluster is that loopback address.
    let envoy = e2e::yaml_file_as_json(&root.join("envoy/docker/envoy.yaml"))?;
    let admin = &envoy["admin"]["address"]["socket_address"];
    ensure!(admin["address"] == "127.0.0.1", "admin bound to {admin}");
    let clusters = envoy["static_resources"]["clusters"]
        .as_array()
        .context("no clusters")?;
    let sidecar_cluster = clusters
        .iter()
        .find(|c| c["name"] == e2e::SIDECAR_CLUSTER)
        .context("no sidecar cluster")?;
    let endpoint = &sidecar_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        ["endpoint"]["address"]["socket_address"];
    ensure!(
        endpoint["address"] == "127.0.0.1" && endpoint["port_value"] == 7070,
        "the sidecar cluster points at {endpoint}"
    );
    Ok(())
}

/// `envoy --mode validate` on a shipped config (the `.wasm` path pointed at the built one): Envoy
/// loads the filter, which checks its own configuration, and exits.
fn envoy_validates(relative: &str, wasm_path_in_config: &str) -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir(&format!("validate_{}", relative.replace('/', "_")))?;
    let config = replace_once(
        &read(relative)?,
        &format!("filename: {wasm_path_in_config}"),
        &format!("filename: {}", paths.wasm.display()),
    )?;
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config)?;
    let log = std::fs::File::create(dir.join("validate.log"))?;
    let mut child = Command::new(&paths.envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .env("SECRET_SIDECAR_TOKEN", "validate-only")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("envoy --mode validate {relative} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(dir.join("validate.log"))?;
    ensure!(
        status.success() && output.contains("OK"),
        "envoy --mode validate {relative}: {status}\n{output}"
    );
    Ok(())
}

#[test]
fn docker_envoy_config_passes_envoy_validate() -> Result<()> {
    envoy_validates(
        "envoy/docker/envoy.yaml",
        "/etc/envoy/envoy_secret_auth_filter.wasm",
    )
}

#[test]
fn demo_envoy_config_passes_envoy_validate() -> Result<()> {
    envoy_validates(
        "envoy/demo/envoy.yaml",
        "target/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm",
    )
}

/// The sidecar image builds from the workspace: every workspace member's directory is copied
/// into the build stage (a member missing there fails `cargo build` inside `docker build`).
#[test]
fn the_sidecar_image_copies_every_workspace_member() -> Result<()> {
    let manifest = read("Cargo.toml")?;
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .context("no members line in Cargo.toml")?;
    let dockerfile = read("envoy/docker/sidecar.Dockerfile")?;
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let members: Vec<&str> = members
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    // A `members` list spread over several lines would parse as none: nothing checked.
    ensure!(
        members.contains(&"secret-sidecar") && members.contains(&"filter"),
        "could not read the workspace members from Cargo.toml: {members:?}"
    );
    for member in members {
        let covered = copied
            .iter()
            .any(|c| member == *c || member.starts_with(&format!("{c}/")));
        ensure!(
            covered,
            "envoy/docker/sidecar.Dockerfile does not COPY {member}"
        );
    }
    Ok(())
}
