//! `secret-sidecar check --config sidecar.toml --envoy envoy.yaml`: every instance of the filter
//! in an Envoy config (YAML or JSON bootstrap, or a bare filter JSON file), compiled by the
//! filter's own parser (`envoy_secret_auth_filter::config::compile`, the code Envoy runs), and
//! every `$secret://` reference it uses resolved once. Prints a table (reference, where it is
//! used, ok or the error with its reason and "did you mean"), never a value.
//!
//! An instance is a wasm plugin config whose name is `envoy-secret-auth`, or whose
//! configuration compiles as this filter's: Envoy's `PluginConfig` (`configuration`, named by
//! `root_id` or `name`), also inside Kubernetes manifests (several YAML documents): Istio's
//! `WasmPlugin` spec (`pluginConfig`, `pluginName`) and Envoy Gateway's `EnvoyExtensionPolicy`
//! wasm entries (`config` beside `code`, `rootID` or `name`). Its `$env://` values are looked up
//! as the VM would see them: values given inline (`vm_config.environment_variables.key_values`,
//! Istio `valueFrom: INLINE`) as written, host variables (`host_env_keys`, Istio
//! `valueFrom: HOST`, Envoy Gateway `env.hostKeys`) from this process's environment (a variable
//! unset here is assumed set in Envoy's and noted), anything else unset. A bare filter JSON
//! file has no VM config: its `$env://` values come from this process's environment, or are
//! assumed set.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use envoy_secret_auth_filter::config::{compile, Compiled, CredentialKind, PluginSet};
use envoy_secret_auth_filter::limit::Policy;
use secret_ref::{Reference, SecretValue};
use serde_json::Value;

use crate::resolve::{Resolution, Resolver};

/// The filter's name in Envoy configs (`root_id` / `name` of the wasm plugin).
pub const FILTER_NAME: &str = "envoy-secret-auth";

/// Stands for a `host_env_keys` variable that is not set where `check` runs.
const ASSUMED_ENV_VALUE: &str = "assumed-set-in-envoy";

/// Why the Envoy file could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: neither JSON nor YAML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: no {FILTER_NAME} filter found (a wasm plugin config with root_id or name \"{FILTER_NAME}\", or whose configuration is this filter's)")]
    NoFilter { path: PathBuf },
}

/// One instance of the filter in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Where it is in the file: `static_resources.listeners[0]....http_filters[0].typed_config.config`
    /// (`.` for a bare filter file).
    pub location: String,
    /// The filter's configuration, as Envoy hands it to the VM.
    pub config: Vec<u8>,
    pub env: VmEnv,
}

/// Where the VM's environment variables come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum VmEnv {
    /// A bare filter file: this process's environment, missing ones assumed set.
    #[default]
    Bare,
    /// `vm_config.environment_variables`.
    Vm {
        key_values: BTreeMap<String, String>,
        host_env_keys: BTreeSet<String>,
    },
}

/// Reads `path` (JSON or YAML) and finds the filter's instances.
pub fn load(path: &Path) -> Result<Vec<Instance>, EnvoyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnvoyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let docs: Vec<Value> = match serde_json::from_str(&text) {
        Ok(v) => vec![v],
        Err(_) => {
            let mut docs = Vec::new();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = <Value as serde::Deserialize>::deserialize(doc).map_err(|e| {
                    EnvoyFileError::Parse {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    }
                })?;
                if !value.is_null() {
                    docs.push(value);
                }
            }
            docs
        }
    };
    let instances = match docs.as_slice() {
        [doc] => find_instances(doc),
        _ => {
            let mut out = Vec::new();
            for (i, doc) in docs.iter().enumerate() {
                walk(doc, format!("document[{i}]"), &mut out);
            }
            out
        }
    };
    if instances.is_empty() {
        return Err(EnvoyFileError::NoFilter {
            path: path.to_path_buf(),
        });
    }
    Ok(instances)
}

/// The filter's instances in a parsed Envoy config; a bare filter configuration (an object
/// with `consumers`, `sidecar` or `plugins` at the top) is one instance at `.`.
pub fn find_instances(doc: &Value) -> Vec<Instance> {
    let bare = doc.as_object().is_some_and(|o| {
        ["consumers", "sidecar", "plugins"]
            .iter()
            .any(|k| o.contains_key(*k))
    });
    if bare {
        return vec![Instance {
            location: ".".into(),
            config: serde_json::to_vec(doc).unwrap_or_default(),
            env: VmEnv::Bare,
        }];
    }
    let mut out = Vec::new();
    walk(doc, String::new(), &mut out);
    out
}

fn walk(v: &Value, at: String, out: &mut Vec<Instance>) {
    match v {
        Value::Object(o) => {
            if let Some(instance) = instance(o, &at) {
                out.push(instance);
                return;
            }
            for (k, child) in o {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                walk(child, path, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A wasm plugin config of this filter: Envoy's `{"name", "root_id", "configuration":
/// {"@type", "value"}, "vm_config": {...}}`, Istio's WasmPlugin spec `{"pluginName",
/// "pluginConfig", "vmConfig"}` or an Envoy Gateway wasm entry `{"name", "rootID", "code",
/// "config", "env"}`.
fn instance(o: &serde_json::Map<String, Value>, at: &str) -> Option<Instance> {
    let (config, env, names): (&Value, VmEnv, &[&str]) =
        if let Some(configuration) = o.get("configuration").and_then(Value::as_object) {
            (
                configuration.get("value")?,
                vm_env(o.get("vm_config")),
                &["root_id", "name"],
            )
        } else if let Some(config) = o.get("pluginConfig") {
            (config, istio_env(o.get("vmConfig")), &["pluginName"])
        } else if let (Some(config), true) = (o.get("config"), o.contains_key("code")) {
            (config, gateway_env(o.get("env")), &["rootID", "name"])
        } else {
            return None;
        };
    let config = match config {
        Value::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).ok()?,
    };
    let named = names
        .iter()
        .any(|k| o.get(*k).and_then(Value::as_str) == Some(FILTER_NAME));
    // a wasm plugin of another name counts if its configuration is this filter's
    let ours = named || compile(&config, &|name| vm_lookup(&env, name, &Mutex::default())).is_ok();
    ours.then(|| Instance {
        location: if at.is_empty() { ".".into() } else { at.into() },
        config,
        env,
    })
}

fn vm_env(vm_config: Option<&Value>) -> VmEnv {
    let vars = vm_config.and_then(|v| v.get("environment_variables"));
    let key_values = vars
        .and_then(|v| v.get("key_values"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    VmEnv::Vm {
        key_values,
        host_env_keys: string_list(vars, "host_env_keys"),
    }
}

/// The strings of the list `key` of `object` (anything else in it skipped).
fn string_list(object: Option<&Value>, key: &str) -> BTreeSet<String> {
    object
        .and_then(|o| o.get(key))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|k| Some(k.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Istio's `vmConfig.env`: `[{"name", "value", "valueFrom": "INLINE" (default) | "HOST"}]`.
fn istio_env(vm_config: Option<&Value>) -> VmEnv {
    let mut key_values = BTreeMap::new();
    let mut host_env_keys = BTreeSet::new();
    let vars = vm_config
        .and_then(|v| v.get("env"))
        .and_then(Value::as_array);
    for var in vars.into_iter().flatten() {
        let Some(name) = var.get("name").and_then(Value::as_str) else {
            continue;
        };
        if var.get("valueFrom").and_then(Value::as_str) == Some("HOST") {
            host_env_keys.insert(name.to_string());
        } else if let Some(value) = var.get("value").and_then(Value::as_str) {
            key_values.insert(name.to_string(), value.to_string());
        }
    }
    VmEnv::Vm {
        key_values,
        host_env_keys,
    }
}

/// Envoy Gateway's `env`: `{"hostKeys": [...]}`.
fn gateway_env(env: Option<&Value>) -> VmEnv {
    VmEnv::Vm {
        key_values: BTreeMap::new(),
        host_env_keys: string_list(env, "hostKeys"),
    }
}

/// A variable as the VM would see it; `assumed` collects those taken to be set in Envoy's
/// environment.
fn vm_lookup(env: &VmEnv, name: &str, assumed: &Mutex<BTreeSet<String>>) -> Option<String> {
    let from_host = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            assumed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(name.to_string());
            Some(ASSUMED_ENV_VALUE.to_string())
        })
    };
    match env {
        VmEnv::Bare => from_host(name),
        VmEnv::Vm {
            key_values,
            host_env_keys,
        } => match key_values.get(name) {
            Some(v) => Some(v.clone()),
            None if host_env_keys.contains(name) => from_host(name),
            None => None,
        },
    }
}

/// One use of a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub reference: String,
    /// `alice / primary-key / key`, `routes.limit / limit-count / redis_password`.
    pub used_by: String,
}

/// Every `$secret://` reference a compiled configuration uses, and where.
pub fn usages(compiled: &Compiled) -> Vec<Usage> {
    let config = &compiled.config;
    let mut out = Vec::new();
    for c in &config.credentials {
        let consumer = config
            .consumers
            .get(c.consumer)
            .map_or("?", |u| u.username.as_str());
        let field = match &c.kind {
            CredentialKind::KeyAuth { sha256: false, .. } => "key",
            CredentialKind::KeyAuth { sha256: true, .. } => "key_sha256",
            CredentialKind::BasicAuth { .. } => "password",
            CredentialKind::JwtAuth { algorithm, .. } if algorithm.is_hmac() => "secret",
            CredentialKind::JwtAuth { .. } => "public_key",
            CredentialKind::HmacAuth { .. } => "secret_key",
        };
        for id in c.kind.ref_ids() {
            if let Some(r) = config.refs.get(id) {
                out.push(Usage {
                    reference: r.to_string(),
                    used_by: format!("{consumer} / {} / {field}", c.id),
                });
            }
        }
    }
    let mut sets: Vec<(String, &PluginSet)> = vec![("plugins".into(), &config.default_plugins)];
    let mut routes: Vec<(&String, &PluginSet)> = config.routes.iter().collect();
    routes.sort_by_key(|(name, _)| *name);
    sets.extend(routes.into_iter().map(|(n, p)| (format!("routes.{n}"), p)));
    for (at, set) in sets {
        let Some(Policy::Redis { backend, .. }) = set.limit_count.as_ref().map(|l| &l.policy)
        else {
            continue;
        };
        for (field, value) in [
            ("redis_username", &backend.username),
            ("redis_password", &backend.password),
        ] {
            if let Some(reference) = value.as_ref().and_then(secret_reference) {
                out.push(Usage {
                    reference,
                    used_by: format!("{at} / limit-count / {field}"),
                });
            }
        }
    }
    out
}

/// The text of a `$secret://` reference; `None` for a plain value (never shown).
fn secret_reference(value: &SecretValue) -> Option<String> {
    match secret_ref::parse(value.expose()) {
        Ok(Some(Reference::Secret(r))) => Some(r.to_string()),
        _ => None,
    }
}

/// Compiles each instance, resolves every reference once and writes the report to `out`
/// (notes on `$env://` values assumed set to `notes`). Returns whether everything is usable.
pub async fn check(
    resolver: &Resolver,
    instances: &[Instance],
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> std::io::Result<bool> {
    let mut all_ok = true;
    let mut rows: Vec<(String, String)> = Vec::new();
    let many = instances.len() > 1;
    for (i, instance) in instances.iter().enumerate() {
        let assumed = Mutex::new(BTreeSet::new());
        let compiled = compile(&instance.config, &|name| {
            vm_lookup(&instance.env, name, &assumed)
        });
        let label = format!("filter [{}] at {}", i + 1, instance.location);
        match compiled {
            Err(e) => {
                all_ok = false;
                writeln!(
                    out,
                    "{label}: invalid filter configuration (Envoy would refuse it): {e}"
                )?;
            }
            Ok(compiled) => {
                let found = usages(&compiled);
                writeln!(
                    out,
                    "{label}: configuration ok ({} consumers, {} credentials, {} references)",
                    compiled.config.consumers.len(),
                    compiled.config.credentials.len(),
                    found.len()
                )?;
                for warning in &compiled.warnings {
                    writeln!(out, "{label}: warning: {warning}")?;
                }
                let prefix = if many {
                    format!("[{}] ", i + 1)
                } else {
                    String::new()
                };
                rows.extend(
                    found
                        .into_iter()
                        .map(|u| (u.reference, format!("{prefix}{}", u.used_by))),
                );
            }
        }
        for name in assumed.into_inner().unwrap_or_default() {
            writeln!(
                notes,
                "note: {}: $env://{name} is not set here; assumed set in Envoy's environment",
                instance.location
            )?;
        }
    }
    let distinct: Vec<String> = rows
        .iter()
        .map(|(r, _)| r.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let results: BTreeMap<&str, Resolution> = distinct
        .iter()
        .map(String::as_str)
        .zip(resolver.resolve_batch(&distinct).await)
        .collect();
    if rows.is_empty() {
        return Ok(all_ok);
    }
    let width_ref = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0).max(9);
    let width_use = rows.iter().map(|(_, u)| u.len()).max().unwrap_or(0).max(7);
    writeln!(out)?;
    writeln!(
        out,
        "{:width_ref$}  {:width_use$}  RESULT",
        "REFERENCE", "USED BY"
    )?;
    let mut failed = 0usize;
    for (reference, used_by) in &rows {
        let result = match results.get(reference.as_str()) {
            Some(Resolution::Value { stale: false, .. }) => "ok".to_string(),
            Some(Resolution::Value { stale: true, .. }) => {
                "stale (the provider fails; last good value)".to_string()
            }
            Some(Resolution::Error(e)) => {
                failed += 1;
                format!("{}: {e}", e.code())
            }
            None => "not resolved".to_string(),
        };
        writeln!(
            out,
            "{reference:width_ref$}  {used_by:width_use$}  {result}"
        )?;
    }
    writeln!(
        out,
        "\n{} references in {} uses: {} failed",
        distinct.len(),
        rows.len(),
        failed
    )?;
    Ok(all_ok && failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::clock::ManualClock;
    use crate::config::CacheConfig;
    use crate::providers::fake::FakeProvider;
    use secret_ref::Manager;
    use serde_json::json;
    use std::sync::Arc;

    fn filter_config(key_ref: &str) -> Value {
        json!({
            "sidecar": {"cluster": "secret_sidecar", "token": "$env://CHECK_TEST_TOKEN"},
            "consumers": [{"username": "alice", "credentials": [
                {"id": "k1", "type": "key-auth", "key": key_ref},
                {"id": "b1", "type": "basic-auth", "username": "alice",
                 "password": "$secret://aws/sm/alice-credentials/password"},
                {"id": "h1", "type": "hmac-auth", "key_id": "kid", "secret_key": "plain-hmac-secret"}
            ]}],
            "plugins": {"key-auth": {}},
            "routes": {"limit": {"limit-count": {
                "count": 3, "time_window": 60, "key": "remote_addr", "policy": "redis",
                "redis_host": "127.0.0.1",
                "redis_password": "$secret://aws/sm/redis/password",
                "redis_username": "plain-user"}}}
        })
    }

    fn bootstrap(filter: &Value, name: &str) -> Value {
        json!({"static_resources": {"listeners": [{"name": "l", "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {"http_filters": [
                {"name": "envoy.filters.http.wasm", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {
                        "name": name, "root_id": name,
                        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                          "value": filter.to_string()},
                        "vm_config": {"environment_variables": {"key_values": {"CHECK_TEST_TOKEN": "t"}}}}}},
                {"name": "envoy.filters.http.router"}]}}]}]}]}})
    }

    fn resolver() -> Resolver {
        let p = FakeProvider::new()
            .with(
                "alice-credentials",
                r#"{"alice-key-auth":"alice-key","password":"alice-password"}"#,
            )
            .with("redis", r#"{"password":"redis-password"}"#);
        let mut r = Resolver::new(Cache::new(
            CacheConfig::default(),
            Arc::new(ManualClock::new()),
        ));
        r.add_provider("sm", Manager::Aws, Arc::new(p));
        r
    }

    /// The cells of the table row for `reference` and `used_by`.
    fn row(out: &str, reference: &str, used_by: &str) -> Vec<String> {
        out.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .find(|cells| cells.len() == 3 && cells[0] == reference && cells[1] == used_by)
            .unwrap_or_else(|| panic!("no row {reference} / {used_by} in\n{out}"))
    }

    async fn run(instances: &[Instance]) -> (bool, String, String) {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let ok = check(&resolver(), instances, &mut out, &mut notes)
            .await
            .unwrap();
        (
            ok,
            String::from_utf8(out).unwrap(),
            String::from_utf8(notes).unwrap(),
        )
    }

    #[tokio::test]
    async fn finds_the_filter_and_reports_each_use_without_values() {
        let doc = bootstrap(
            &filter_config("$secret://aws/sm/alice-credentials/alice-key-auth"),
            FILTER_NAME,
        );
        let instances = find_instances(&doc);
        assert_eq!(instances.len(), 1);
        assert_eq!(
            instances[0].location,
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config"
        );
        let (ok, out, notes) = run(&instances).await;
        assert!(ok, "{out}");
        assert!(notes.is_empty(), "{notes}");
        for want in [
            "configuration ok (1 consumers, 3 credentials, 3 references)",
            "3 references in 3 uses: 0 failed",
        ] {
            assert!(out.contains(want), "{want:?} not in\n{out}");
        }
        for (reference, used_by) in [
            (
                "$secret://aws/sm/alice-credentials/alice-key-auth",
                "alice / k1 / key",
            ),
            (
                "$secret://aws/sm/alice-credentials/password",
                "alice / b1 / password",
            ),
            (
                "$secret://aws/sm/redis/password",
                "routes.limit / limit-count / redis_password",
            ),
        ] {
            assert_eq!(row(&out, reference, used_by)[2], "ok");
        }
        for value in [
            "alice-key\"",
            "alice-password",
            "redis-password",
            "plain-user",
            "plain-hmac-secret",
        ] {
            assert!(!out.contains(value), "{value} in\n{out}");
        }
    }

    #[tokio::test]
    async fn a_broken_reference_fails_with_did_you_mean() {
        let doc = bootstrap(
            &filter_config("$secret://aws/sm/alice-credentias/alice-key-auth"),
            FILTER_NAME,
        );
        let (ok, out, _) = run(&find_instances(&doc)).await;
        assert!(!ok);
        assert_eq!(
            row(&out, "$secret://aws/sm/alice-credentias/alice-key-auth", "alice / k1 / key")[2],
            "secret_not_found: secret \"alice-credentias\" not found in provider \"sm\"; did you mean \"alice-credentials\"?"
        );
        assert!(out.contains(": 1 failed"), "{out}");
    }

    #[tokio::test]
    async fn a_config_the_filter_refuses_is_reported_with_its_field() {
        let mut config = filter_config("$secret://awss/sm/alice-credentials/alice-key-auth");
        config["consumers"][0]["credentials"][1]["pasword"] = json!("x");
        let doc = bootstrap(&config, FILTER_NAME);
        let (ok, out, _) = run(&find_instances(&doc)).await;
        assert!(!ok);
        assert!(
            out.contains(
                "invalid filter configuration (Envoy would refuse it): consumers[0].credentials["
            ),
            "{out}"
        );
    }

    #[tokio::test]
    async fn other_wasm_plugins_count_only_if_their_configuration_is_this_filters() {
        let ours = filter_config("$secret://aws/sm/alice-credentials/alice-key-auth");
        assert_eq!(find_instances(&bootstrap(&ours, "renamed")).len(), 1);
        let other = json!({"some": "other plugin"});
        assert!(find_instances(&bootstrap(&other, "other")).is_empty());
        // a bare filter file; its $env:// values from here, or assumed set
        let instances = find_instances(&ours);
        assert_eq!(instances[0].location, ".");
        let (ok, _, notes) = run(&instances).await;
        assert!(ok);
        assert!(
            notes.contains("$env://CHECK_TEST_TOKEN is not set here"),
            "{notes}"
        );
    }

    #[tokio::test]
    async fn a_variable_the_vm_does_not_get_is_the_filters_error() {
        let filter = filter_config("$secret://aws/sm/alice-credentials/alice-key-auth");
        let mut doc = bootstrap(&filter, FILTER_NAME);
        let config = &mut doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["http_filters"][0]["typed_config"]["config"];
        config["vm_config"] = json!({});
        let (ok, out, _) = run(&find_instances(&doc)).await;
        assert!(!ok);
        assert!(
            out.contains("sidecar.token: environment variable CHECK_TEST_TOKEN is not set"),
            "{out}"
        );
    }
}
