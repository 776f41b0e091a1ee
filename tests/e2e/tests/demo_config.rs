//! The configs users run (`envoy/demo/*`, `envoy/docker/*`, `docker-compose.yaml`) work and
//! agree with each other: the same routes, plugins, references and secrets (the demo itself is
//! run by `demo.rs`), and every shipped or generated Envoy config carries the security settings
//! of docs/SECURITY.md.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{render_envoy_config, test_dir, EnvoySpec, Paths};
use serde_json::{json, Value};

fn read(relative: &str) -> Result<String> {
    let path = e2e::workspace_root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn yaml(relative: &str) -> Result<Value> {
    e2e::yaml_file_as_json(&e2e::workspace_root().join(relative))
}

/// A TOML file as JSON, read with the venv's Python (`tomllib`).
fn toml(relative: &str) -> Result<Value> {
    let python = e2e::workspace_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, tomllib; json.dump(tomllib.load(open(sys.argv[1], 'rb')), sys.stdout)",
        ])
        .arg(e2e::workspace_root().join(relative))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}: run scripts/deps.sh", python.display()))?;
    ensure!(
        out.status.success(),
        "reading {relative} as TOML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("{relative} as JSON"))
}

/// Replaces `from` (which must occur exactly once, so that drift is noticed) with `to`.
fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => bail!("expected {from:?} once in the config, found it {n} times"),
    }
}

/// The Wasm filter's `config` in a bootstrap (the one listener's one Wasm filter).
fn wasm_plugin_config(bootstrap: &mut Value) -> Result<&mut Value> {
    let filters = bootstrap
        .pointer_mut(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters",
        )
        .and_then(Value::as_array_mut)
        .context("no http_filters")?;
    filters
        .iter_mut()
        .find(|f| f["name"] == "envoy.filters.http.wasm")
        .map(|f| &mut f["typed_config"]["config"])
        .context("no Wasm filter")
}

/// The filter configuration (JSON) of a bootstrap.
fn filter_config(bootstrap: &Value) -> Result<Value> {
    let mut bootstrap = bootstrap.clone();
    let text = wasm_plugin_config(&mut bootstrap)?["configuration"]["value"]
        .as_str()
        .context("no configuration value")?
        .to_owned();
    serde_json::from_str(&text).context("the filter configuration is not JSON")
}

/// The cluster named `name`.
fn cluster<'a>(bootstrap: &'a mut Value, name: &str) -> Result<&'a mut Value> {
    bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .and_then(|c| c.iter_mut().find(|c| c["name"] == name))
        .with_context(|| format!("no cluster {name}"))
}

/// Every string in `value` (at any depth) that is a `$secret://` reference.
fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if s.starts_with("$secret://") => {
            out.insert(s.clone());
        }
        Value::Object(map) => map.values().for_each(|v| references(v, out)),
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Compiles a filter configuration with the filter's own parser (`SECRET_SIDECAR_TOKEN` set):
/// what Envoy would refuse fails here, and so does a warning (a disabled credential).
pub fn compiles_in_the_filter(config: &Value) -> Result<()> {
    let env = |name: &str| (name == "SECRET_SIDECAR_TOKEN").then(|| "t".to_owned());
    let compiled = envoy_secret_auth_filter::config::compile(config.to_string().as_bytes(), &env)
        .map_err(|e| anyhow::anyhow!("the filter refuses the configuration: {e}"))?;
    ensure!(
        compiled.warnings.is_empty(),
        "the filter warns: {:?}",
        compiled.warnings
    );
    Ok(())
}

/// envoy/docker/envoy.yaml is envoy/demo/envoy.yaml with container addresses, and nothing else:
/// the same listener, routes, filter configuration (byte for byte), clusters and settings.
#[test]
fn docker_envoy_config_is_the_demo_one_with_container_addresses() -> Result<()> {
    let mut expected = yaml("envoy/demo/envoy.yaml")?;
    let docker = yaml("envoy/docker/envoy.yaml")?;
    expected["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] =
        json!("0.0.0.0");
    let upstream = cluster(&mut expected, "upstream")?;
    upstream["type"] = json!("STRICT_DNS");
    upstream["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["address"] = json!("echo");
    wasm_plugin_config(&mut expected)?["vm_config"]["code"]["local"]["filename"] =
        json!("/etc/envoy/envoy_secret_auth_filter.wasm");
    ensure!(
        expected == docker,
        "envoy/docker/envoy.yaml differs from envoy/demo/envoy.yaml in more than its container \
         addresses:\nexpected {}\nfound {}",
        serde_json::to_string_pretty(&expected)?,
        serde_json::to_string_pretty(&docker)?
    );
    Ok(())
}

/// envoy/docker/sidecar.toml is envoy/demo/sidecar.toml but for moto's address.
#[test]
fn docker_sidecar_config_is_the_demo_one_but_for_motos_address() -> Result<()> {
    let mut demo = toml("envoy/demo/sidecar.toml")?;
    let docker = toml("envoy/docker/sidecar.toml")?;
    demo["providers"][0]["endpoint_url"] = json!("http://moto:5000");
    ensure!(
        demo == docker,
        "demo (moto's address changed) {demo}\ndocker {docker}"
    );
    Ok(())
}

/// The demo's Envoy has one route per plugin of the tutorial; the filter configures exactly the
/// routes Envoy has; every reference resolves in the secrets the demo and docker-compose store;
/// the limit-count Redis is the one the sidecar allows, with the ACL user the `redis` secret
/// holds; and the filter's own parser accepts the configuration.
#[test]
fn demo_routes_plugins_references_and_secrets_agree() -> Result<()> {
    let bootstrap = yaml("envoy/demo/envoy.yaml")?;
    let filter = filter_config(&bootstrap)?;
    compiles_in_the_filter(&filter)?;

    let envoy_routes: BTreeSet<String> = bootstrap
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes")
        .and_then(Value::as_array)
        .context("no routes")?
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    let filter_routes = filter["routes"].as_object().context("no filter routes")?;
    let configured: BTreeSet<String> = filter_routes.keys().cloned().collect();
    ensure!(
        envoy_routes == configured,
        "Envoy's routes {envoy_routes:?}, the filter's {configured:?}"
    );
    for plugin in [
        "key-auth",
        "basic-auth",
        "jwt-auth",
        "hmac-auth",
        "limit-count",
    ] {
        ensure!(
            filter_routes.values().any(|set| set
                .as_object()
                .is_some_and(|s| s.len() == 1 && s.contains_key(plugin))),
            "no route with {plugin} alone"
        );
    }
    let limit = filter_routes
        .values()
        .find_map(|set| set.get("limit-count"))
        .context("no limit-count")?;
    for (field, want) in [
        ("policy", json!("redis")),
        ("redis_database", json!(1)),
        ("redis_timeout", json!(1001)),
        (
            "redis_username",
            json!("$secret://aws/my-secrets-manager/redis/username"),
        ),
        (
            "redis_password",
            json!("$secret://aws/my-secrets-manager/redis/password"),
        ),
    ] {
        ensure!(
            limit[field] == want,
            "limit-count {field} is {}, not {want}",
            limit[field]
        );
    }

    // Every reference names a field of a secret the demo (and docker-compose) store.
    let mut refs = BTreeSet::new();
    references(&filter, &mut refs);
    ensure!(refs.len() >= 6, "only {refs:?}");
    for reference in &refs {
        let rest = reference
            .strip_prefix("$secret://aws/my-secrets-manager/")
            .with_context(|| format!("{reference}: not the tutorial's provider"))?;
        let (secret, key) = rest.split_once('/').context("no key")?;
        let stored = read(&format!("envoy/secrets/{secret}.json"))?;
        let stored: Value = serde_json::from_str(&stored)?;
        ensure!(
            stored[key].as_str().is_some_and(|v| !v.is_empty()),
            "{reference}: envoy/secrets/{secret}.json has no {key:?}"
        );
    }

    // The sidecars allow exactly the limit-count Redis.
    let redis_at = format!(
        "{}:{}",
        limit["redis_host"].as_str().context("host")?,
        limit["redis_port"]
    );
    for relative in ["envoy/demo/sidecar.toml", "envoy/docker/sidecar.toml"] {
        let allowed = &toml(relative)?["limit"]["redis"];
        ensure!(
            allowed == &json!([redis_at]),
            "{relative}: [limit] redis = {allowed}"
        );
    }

    // The Redis servers' ACL user is the one in the `redis` secret.
    let redis: Value = serde_json::from_str(&read("envoy/secrets/redis.json")?)?;
    let (user, password) = (
        redis["username"].as_str().context("username")?,
        redis["password"].as_str().context("password")?,
    );
    let demo_sh = read("scripts/demo.sh")?;
    let acl = format!("--user {user} on '>{password}' '~*' '&*' '+@all' --user default off");
    ensure!(
        demo_sh.contains(&acl),
        "scripts/demo.sh does not start Redis with {acl}"
    );
    let compose = yaml("envoy/docker-compose.yaml")?;
    let command: Vec<&str> = compose["services"]["redis"]["command"]
        .as_array()
        .context("no redis command")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let acl = [
        "--user",
        user,
        "on",
        &format!(">{password}"),
        "~*",
        "&*",
        "+@all",
    ];
    ensure!(
        command.windows(acl.len()).any(|w| w == acl)
            && command
                .windows(3)
                .any(|w| w == ["--user", "default", "off"])
            && command.windows(2).any(|w| w == ["--port", "6379"])
            && command.windows(2).any(|w| w == ["--bind", "127.0.0.1"]),
        "docker-compose's redis: {command:?}"
    );
    ensure!(
        compose["services"]["redis"]["network_mode"] == "service:envoy",
        "docker-compose's redis must share Envoy's (and the sidecar's) loopback"
    );
    Ok(())
}

/// docker-compose seeds moto with every file of envoy/secrets (as scripts/demo.sh does) and
/// mounts the configs where the images read them.
#[test]
fn docker_compose_seeds_the_secrets_and_mounts_the_configs() -> Result<()> {
    let compose = yaml("envoy/docker-compose.yaml")?;
    let services = &compose["services"];
    let seed = services["seed"]["command"][0]
        .as_str()
        .context("no seed command")?;
    ensure!(
        services["seed"]["volumes"] == json!(["./secrets:/seed:ro"]),
        "the seed must mount ./secrets at /seed"
    );
    let mut names = Vec::new();
    for entry in std::fs::read_dir(e2e::workspace_root().join("envoy/secrets"))? {
        let path = entry?.path();
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let create =
            format!("create-secret --name {name} --secret-string file:///seed/{name}.json");
        ensure!(
            seed.contains(&create),
            "docker-compose's seed does not run {create:?}"
        );
        names.push(name);
    }
    names.sort();
    ensure!(
        names == ["alice-credentials", "redis"],
        "envoy/secrets holds {names:?}"
    );
    ensure!(
        read("scripts/demo.sh")?.contains("for name in alice-credentials redis; do"),
        "scripts/demo.sh must store every file of envoy/secrets"
    );

    let volumes = |service: &str| -> Vec<String> {
        services[service]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let mut docker = yaml("envoy/docker/envoy.yaml")?;
    let wasm = wasm_plugin_config(&mut docker)?["vm_config"]["code"]["local"]["filename"]
        .as_str()
        .context("no wasm filename")?
        .to_owned();
    let envoy = volumes("envoy");
    for mount in [
        "./docker/envoy.yaml:/etc/envoy/envoy.yaml:ro".to_owned(),
        format!("../target/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm:{wasm}:ro"),
    ] {
        ensure!(
            envoy.contains(&mount),
            "Envoy's volumes {envoy:?} lack {mount}"
        );
    }
    let dockerfile = read("envoy/docker/sidecar.Dockerfile")?;
    ensure!(
        dockerfile.contains(r#"CMD ["--config", "/etc/secret-sidecar/sidecar.toml"]"#)
            && volumes("sidecar")
                .contains(&"./docker/sidecar.toml:/etc/secret-sidecar/sidecar.toml:ro".to_owned()),
        "the sidecar reads /etc/secret-sidecar/sidecar.toml, mounted from docker/sidecar.toml"
    );
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
