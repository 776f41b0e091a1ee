//! Fixtures for the end-to-end tests: a real Envoy running the filter `.wasm`, the real sidecar
//! binary, moto standing in for AWS Secrets Manager, and an in-process upstream that echoes what it
//! received. Every fixture owns what it started and stops it on `Drop` (processes by PID).
//!
//! Nothing is skipped: when Envoy, moto, the `.wasm` or the sidecar binary is missing, starting a
//! fixture fails and says which script to run (`scripts/deps.sh`, `scripts/build.sh`).
//! Every wait is bounded ([`READY_TIMEOUT`]).

use std::fs::{self, File};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use test_support::{port_open, tail, Process};

pub use test_support::free_port;

/// How long a fixture may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The provider id the tutorial uses, and the one [`Sidecar::start`] configures.
pub const PROVIDER_ID: &str = "my-secrets-manager";
/// The region the sidecar is configured with and moto is called in.
const REGION: &str = "us-east-1";
/// The Envoy cluster the filter sends its callouts to.
pub const SIDECAR_CLUSTER: &str = "secret_sidecar";

/// The filter configuration's `sidecar` section for the e2e stacks: the sidecar cluster, the
/// token from Envoy's environment (`SECRET_SIDECAR_TOKEN`), a 2 s callout timeout.
pub fn filter_sidecar_section() -> serde_json::Value {
    serde_json::json!({
        "cluster": SIDECAR_CLUSTER,
        "authority": "secret-sidecar",
        "timeout_ms": 2000,
        "token": "$env://SECRET_SIDECAR_TOKEN"
    })
}

/// The identity headers the filter writes; client copies are removed before route matching.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-consumer-username",
    "x-credential-identifier",
    "x-consumer-custom-id",
    "x-credential-version",
];

/// The HTTP connection manager's `early_header_mutation_extensions` every shipped config carries:
/// client copies of [`IDENTITY_HEADERS`] are removed before Envoy matches the route, so that no
/// client can steer routing with them (Envoy re-matches the route after the filter removes them;
/// docs/SECURITY.md "Route re-matching").
pub fn early_identity_header_removal() -> Value {
    let mutations: Vec<Value> = IDENTITY_HEADERS
        .iter()
        .map(|h| json!({ "remove": h }))
        .collect();
    json!([{
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            "mutations": mutations
        }
    }])
}

// ------------------------------------------------------------------------------------------------
// Locations

/// Where the things the tests run live, found from the workspace root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub envoy: PathBuf,
    pub moto: PathBuf,
    pub wasm: PathBuf,
    pub sidecar: PathBuf,
}

impl Paths {
    /// Locates every binary, failing with the script to run when one is missing.
    /// `E2E_WASM` and `E2E_SIDECAR` override where the `.wasm` and the sidecar binary are taken from.
    pub fn locate() -> Result<Paths> {
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|dir| {
                if dir.is_absolute() {
                    dir
                } else {
                    root.join(dir)
                }
            })
            .unwrap_or_else(|| root.join("target"));
        let paths = Paths {
            envoy: root.join(".venv/bin/envoy"),
            moto: root.join(".venv/bin/moto_server"),
            wasm: std::env::var_os("E2E_WASM").map_or_else(
                || target.join("wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm"),
                PathBuf::from,
            ),
            sidecar: std::env::var_os("E2E_SIDECAR")
                .map_or_else(|| target.join("debug/secret-sidecar"), PathBuf::from),
            root,
        };
        for (what, path, script) in [
            ("envoy", &paths.envoy, "scripts/deps.sh"),
            ("moto_server", &paths.moto, "scripts/deps.sh"),
            ("the filter .wasm", &paths.wasm, "scripts/build.sh"),
            ("the sidecar binary", &paths.sidecar, "scripts/build.sh"),
        ] {
            if !path.is_file() {
                bail!("{what} not found at {}: run {script}", path.display());
            }
        }
        Ok(paths)
    }
}

/// The workspace root (this crate lives in `tests/e2e`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// A YAML file (a shipped Envoy config, `docker-compose.yaml`) as JSON, read with the venv's
/// Python (PyYAML, installed with moto by `scripts/deps.sh`).
pub fn yaml_file_as_json(path: &Path) -> Result<Value> {
    let python = workspace_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}: run scripts/deps.sh", python.display()))?;
    if !out.status.success() {
        bail!(
            "reading {} as YAML failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{} as JSON", path.display()))
}

/// A fresh directory for one test's generated configs and logs: `<root>/.run/e2e/<name>`.
pub fn test_dir(name: &str) -> Result<PathBuf> {
    let dir = workspace_root().join(".run/e2e").join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A random token for the sidecar API (hex of 32 bytes from the OS).
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    let mut urandom = File::open("/dev/urandom").context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes).context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An HTTP client that never uses a proxy and opens a new connection for every request (so that
/// successive requests are spread over Envoy's worker threads).
pub fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(15))
        .build()
        .context("building the HTTP client")
}

/// Polls `check` every 100 ms until it yields `Some`, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------------------------------------
// moto

/// moto's server mode, standing in for AWS Secrets Manager.
#[derive(Debug)]
pub struct Moto {
    server: test_support::Moto,
    http: reqwest::Client,
}

impl Moto {
    pub async fn start(paths: &Paths, dir: &Path) -> Result<Moto> {
        let (bin, log) = (paths.moto.clone(), dir.join("moto.log"));
        let server =
            tokio::task::spawn_blocking(move || test_support::Moto::start(&bin, Some(&log)))
                .await??;
        let mut moto = Moto {
            server,
            http: client()?,
        };
        let url = format!("{}/moto-api/", moto.endpoint());
        let http = moto.http.clone();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            moto.server.ensure_running()?;
            if let Ok(resp) = http.get(&url).send().await {
                if resp.status().is_success() {
                    return Ok(moto);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "moto did not answer {url} within {READY_TIMEOUT:?}:\n{}",
                    tail(&moto.server.logs(), 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// One call of the Secrets Manager JSON 1.1 protocol. moto routes on the credential scope
    /// of the Authorization header and does not check the signature.
    async fn call(&self, action: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}/", self.endpoint()))
            .header("X-Amz-Target", format!("secretsmanager.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20250101/{REGION}/secretsmanager/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("calling moto {action}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("moto {action} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("moto {action} answered {text}"))
    }

    /// Creates a secret whose SecretString is `value` serialized (a JSON object for key lookups).
    pub async fn create_secret(&self, name: &str, value: &Value) -> Result<()> {
        self.call(
            "CreateSecret",
            json!({"Name": name, "SecretString": value.to_string()}),
        )
        .await
        .map(drop)
    }

    /// The current SecretString of a secret.
    pub async fn get_secret_string(&self, name: &str) -> Result<String> {
        let answer = self
            .call("GetSecretValue", json!({"SecretId": name}))
            .await?;
        answer["SecretString"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("moto GetSecretValue answered without SecretString: {answer}"))
    }

    /// Deletes a secret: with `recovery_window_days` it is only marked for deletion (AWS answers
    /// every read with "marked for deletion" until the window ends); with `None` at once.
    pub async fn delete_secret(&self, name: &str, recovery_window_days: Option<u32>) -> Result<()> {
        let body = match recovery_window_days {
            Some(days) => json!({"SecretId": name, "RecoveryWindowInDays": days}),
            None => json!({"SecretId": name, "ForceDeleteWithoutRecovery": true}),
        };
        self.call("DeleteSecret", body).await.map(drop)
    }

    /// Stores a new current version of a secret (a rotation).
    pub async fn put_secret_value(&self, name: &str, value: &Value) -> Result<()> {
        self.call(
            "PutSecretValue",
            json!({"SecretId": name, "SecretString": value.to_string()}),
        )
        .await
        .map(drop)
    }
}

// ------------------------------------------------------------------------------------------------
// the sidecar

/// Cache settings for the sidecar's config.
#[derive(Debug, Clone, Copy)]
pub struct SidecarCache {
    pub ttl_seconds: u64,
    pub not_found_ttl_seconds: u64,
}

impl Default for SidecarCache {
    fn default() -> Self {
        SidecarCache {
            ttl_seconds: 60,
            not_found_ttl_seconds: 5,
        }
    }
}

/// The real `secret-sidecar` binary, configured with one AWS provider ([`PROVIDER_ID`]) on moto.
#[derive(Debug)]
pub struct Sidecar {
    port: u16,
    token: String,
    process: Process,
}

/// The Redis servers the sidecar's `/v1/limit` may use (its `[limit]` table).
#[derive(Debug, Clone)]
pub struct RedisAllowlist {
    /// `host:port` or `host:*` of single servers.
    pub redis: Vec<String>,
    /// Each cluster's nodes.
    pub redis_clusters: Vec<Vec<String>>,
}

impl RedisAllowlist {
    /// Any server and any cluster on 127.0.0.1 (the tests' Redis servers take free ports).
    pub fn loopback() -> RedisAllowlist {
        RedisAllowlist {
            redis: vec!["127.0.0.1:*".into()],
            redis_clusters: vec![vec!["127.0.0.1:*".into()]],
        }
    }
}

/// The sidecar config [`Sidecar::start`] uses: one AWS provider ([`PROVIDER_ID`]) at `endpoint`,
/// Redis on loopback allowed ([`RedisAllowlist::loopback`]).
pub fn render_sidecar_config(port: u16, endpoint: &str, cache: SidecarCache) -> String {
    render_sidecar_config_with(port, endpoint, cache, &RedisAllowlist::loopback())
}

/// [`render_sidecar_config`] with another `[limit]` allowlist.
pub fn render_sidecar_config_with(
    port: u16,
    endpoint: &str,
    cache: SidecarCache,
    limit: &RedisAllowlist,
) -> String {
    let quoted = |addrs: &[String]| {
        let items: Vec<String> = addrs.iter().map(|a| format!("{a:?}")).collect();
        format!("[{}]", items.join(", "))
    };
    let clusters: Vec<String> = limit.redis_clusters.iter().map(|c| quoted(c)).collect();
    format!(
        r#"listen = "127.0.0.1:{port}"
token_env = "SECRET_SIDECAR_TOKEN"

[cache]
ttl_seconds = {ttl}
not_found_ttl_seconds = {not_found}

[[providers]]
id = "{PROVIDER_ID}"
kind = "aws"
region = "{REGION}"
endpoint_url = "{endpoint}"
access_key_id = "$env://AWS_ACCESS_KEY_ID"
secret_access_key = "$env://AWS_SECRET_ACCESS_KEY"

[limit]
redis = {redis}
redis_clusters = [{clusters}]
"#,
        ttl = cache.ttl_seconds,
        not_found = cache.not_found_ttl_seconds,
        redis = quoted(&limit.redis),
        clusters = clusters.join(", "),
    )
}

impl Sidecar {
    /// Starts the sidecar on a free port with [`render_sidecar_config`] pointing at `moto`.
    pub async fn start(
        paths: &Paths,
        dir: &Path,
        moto: &Moto,
        cache: SidecarCache,
    ) -> Result<Sidecar> {
        let port = free_port()?;
        let config = render_sidecar_config(port, &moto.endpoint(), cache);
        Sidecar::start_with_config(paths, dir, &config, port).await
    }

    /// Starts the sidecar with the given TOML, which must listen on `127.0.0.1:<port>` and take
    /// its token from `SECRET_SIDECAR_TOKEN` (a random one is generated). AWS credentials are
    /// moto's dummies, in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub async fn start_with_config(
        paths: &Paths,
        dir: &Path,
        config: &str,
        port: u16,
    ) -> Result<Sidecar> {
        let token = random_token()?;
        let config_path = dir.join("sidecar.toml");
        fs::write(&config_path, config)?;

        let mut command = Command::new(&paths.sidecar);
        command
            .arg("--config")
            .arg(&config_path)
            .env("SECRET_SIDECAR_TOKEN", &token)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", "info");
        let process = Process::spawn("secret-sidecar", command, Some(dir.join("sidecar.log")))?;
        let mut sidecar = Sidecar {
            port,
            token,
            process,
        };

        let http = client()?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            sidecar.process.ensure_running()?;
            if let Ok(resp) = http.get(&url).bearer_auth(&sidecar.token).send().await {
                if resp.status().is_success() {
                    return Ok(sidecar);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the sidecar did not answer {url} within {READY_TIMEOUT:?}:\n{}",
                    tail(&sidecar.process.logs(), 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bearer token; Envoy must be started with it in `SECRET_SIDECAR_TOKEN`.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Kills the sidecar now (the test goes on without it).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

// ------------------------------------------------------------------------------------------------
// the upstream

/// An in-process HTTP server that answers every request with JSON:
/// `{"origin": <client ip>, "method": ..., "path": ..., "query": ..., "headers": {name: value | [values]}}`.
#[derive(Debug)]
pub struct Upstream {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Result<Upstream> {
        use axum::extract::ConnectInfo;
        use axum::http::{HeaderMap, Method, Uri};

        async fn echo(
            ConnectInfo(peer): ConnectInfo<SocketAddr>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
        ) -> axum::Json<Value> {
            let mut map = serde_json::Map::new();
            for name in headers.keys() {
                let values: Vec<Value> = headers
                    .get_all(name)
                    .iter()
                    .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                let value = match <[Value; 1]>::try_from(values) {
                    Ok([one]) => one,
                    Err(many) => Value::Array(many),
                };
                map.insert(name.as_str().to_owned(), value);
            }
            axum::Json(json!({
                "origin": peer.ip().to_string(),
                "method": method.as_str(),
                "path": uri.path(),
                "query": uri.query(),
                "headers": map,
            }))
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let app = axum::Router::new().fallback(echo);
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Ok(Upstream { port, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ------------------------------------------------------------------------------------------------
// Envoy

/// What an Envoy config is rendered from.
#[derive(Debug, Clone)]
pub struct EnvoySpec {
    /// The filter's JSON configuration (DESIGN §3).
    pub filter: Value,
    pub upstream_port: u16,
    pub sidecar_port: u16,
    /// Put into Envoy's environment as `SECRET_SIDECAR_TOKEN` (the VM sees it via `host_env_keys`).
    pub token: String,
    /// Extra routes before the catch-all `/` route (named `ip`): `(route name, path prefix)`.
    pub extra_routes: Vec<(String, String)>,
    /// Envoy's `--concurrency` (worker threads): 2 unless a test needs one ("the same worker").
    pub concurrency: u32,
}

impl EnvoySpec {
    pub fn new(filter: Value, upstream_port: u16, sidecar_port: u16, token: &str) -> EnvoySpec {
        EnvoySpec {
            filter,
            upstream_port,
            sidecar_port,
            token: token.to_owned(),
            extra_routes: Vec::new(),
            concurrency: 2,
        }
    }
}

/// The Envoy bootstrap: one listener, `http_connection_manager` with the Wasm filter then the
/// router, clusters `upstream` and `secret_sidecar`. The same shape as `envoy/demo/envoy.yaml`.
pub fn render_envoy_config(
    spec: &EnvoySpec,
    wasm: &Path,
    listener_port: u16,
    admin_port: u16,
) -> Value {
    let socket =
        |port: u16| json!({"socket_address": {"address": "127.0.0.1", "port_value": port}});
    let cluster = |name: &str, port: u16| {
        json!({
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(port)}}]}]
            }
        })
    };
    let mut routes: Vec<Value> = spec
        .extra_routes
        .iter()
        .map(|(name, prefix)| {
            json!({"name": name, "match": {"prefix": prefix}, "route": {"cluster": "upstream"}})
        })
        .collect();
    routes.push(json!({"name": "ip", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}));
    // As in the shipped configs: Envoy closes idle sidecar connections before the sidecar does.
    let mut sidecar_cluster = cluster(SIDECAR_CLUSTER, spec.sidecar_port);
    sidecar_cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"idle_timeout": "60s"},
            "explicit_http_config": {"http_protocol_options": {}}
        }
    });
    json!({
        "admin": {"address": socket(admin_port)},
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": socket(listener_port),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress_http",
                        // As in every shipped config (docs/SECURITY.md).
                        "common_http_protocol_options": {"headers_with_underscores_action": "DROP_HEADER"},
                        "early_header_mutation_extensions": early_identity_header_removal(),
                        "route_config": {
                            "name": "local_route",
                            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]
                        },
                        "http_filters": [
                            {
                                "name": "envoy.filters.http.wasm",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                    "config": {
                                        "name": "envoy-secret-auth",
                                        "root_id": "envoy-secret-auth",
                                        "configuration": {
                                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                                            "value": spec.filter.to_string()
                                        },
                                        "allow_on_headers_stop_iteration": true,
                                        "failure_policy": "FAIL_RELOAD",
                                        "vm_config": {
                                            "vm_id": "envoy-secret-auth",
                                            "runtime": "envoy.wasm.runtime.v8",
                                            "code": {"local": {"filename": wasm.display().to_string()}},
                                            "environment_variables": {"host_env_keys": ["SECRET_SIDECAR_TOKEN"]}
                                        }
                                    }
                                }
                            },
                            {
                                "name": "envoy.filters.http.router",
                                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                            }
                        ]
                    }
                }]}]
            }],
            "clusters": [cluster("upstream", spec.upstream_port), sidecar_cluster]
        }
    })
}

/// A real Envoy with the filter loaded.
#[derive(Debug)]
pub struct Envoy {
    listener_port: u16,
    admin_port: u16,
    process: Process,
}

/// A ready-made Envoy config and what the fixture needs to know about it.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub text: String,
    /// `envoy.yaml` or `envoy.json`: Envoy picks the format from the extension.
    pub file_name: &'static str,
    pub listener_port: u16,
    pub admin_port: u16,
    /// Put into Envoy's environment as `SECRET_SIDECAR_TOKEN`.
    pub token: String,
    /// Envoy's `--concurrency`.
    pub concurrency: u32,
}

/// How an Envoy that was expected not to start ended up.
#[derive(Debug)]
pub struct FailedStart {
    /// `Some` when Envoy exited; `None` when it kept running but its listener never came up.
    pub status: Option<ExitStatus>,
    pub logs: String,
}

impl EnvoyConfig {
    /// [`render_envoy_config`] for `spec` on two free ports, changed by `edit` (a test's own
    /// clusters, routes, ...) before it is serialized.
    pub fn rendered(
        spec: &EnvoySpec,
        wasm: &Path,
        edit: impl FnOnce(&mut Value) -> Result<()>,
    ) -> Result<EnvoyConfig> {
        let listener_port = free_port()?;
        let admin_port = free_port()?;
        let mut config = render_envoy_config(spec, wasm, listener_port, admin_port);
        edit(&mut config)?;
        Ok(EnvoyConfig {
            text: serde_json::to_string_pretty(&config)?,
            file_name: "envoy.json",
            listener_port,
            admin_port,
            token: spec.token.clone(),
            concurrency: spec.concurrency,
        })
    }
}

/// The `static_resources.clusters` list of a rendered Envoy config.
pub fn clusters_mut(config: &mut Value) -> Result<&mut Vec<Value>> {
    config["static_resources"]["clusters"]
        .as_array_mut()
        .context("the config has no static_resources.clusters list")
}

impl Envoy {
    fn spawn(paths: &Paths, dir: &Path, spec: &EnvoySpec) -> Result<Envoy> {
        let config = EnvoyConfig::rendered(spec, &paths.wasm, |_| Ok(()))?;
        Envoy::spawn_config(paths, dir, &config)
    }

    fn spawn_config(paths: &Paths, dir: &Path, config: &EnvoyConfig) -> Result<Envoy> {
        let config_path = dir.join(config.file_name);
        fs::write(&config_path, &config.text)?;
        let mut command = Command::new(&paths.envoy);
        command
            .arg("-c")
            .arg(&config_path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                &config.concurrency.to_string(),
                "-l",
                "info",
                "--component-log-level",
                "wasm:debug",
            ])
            .env("SECRET_SIDECAR_TOKEN", &config.token);
        let process = Process::spawn("envoy", command, Some(dir.join("envoy.log")))?;
        Ok(Envoy {
            listener_port: config.listener_port,
            admin_port: config.admin_port,
            process,
        })
    }

    /// Whether the admin endpoint says LIVE and the listener accepts connections.
    async fn is_ready(&self, http: &reqwest::Client) -> bool {
        let ready = match http
            .get(format!("http://127.0.0.1:{}/ready", self.admin_port))
            .send()
            .await
        {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        };
        ready && port_open(self.listener_port)
    }

    /// Starts Envoy and waits until it is ready and its listener accepts connections.
    pub async fn start(paths: &Paths, dir: &Path, spec: &EnvoySpec) -> Result<Envoy> {
        let envoy = Envoy::spawn(paths, dir, spec)?;
        envoy.wait_ready().await
    }

    /// Starts Envoy with a config written elsewhere (e.g. `envoy/demo/envoy.yaml` with its
    /// ports replaced) and waits until it is ready.
    pub async fn start_with_config(
        paths: &Paths,
        dir: &Path,
        config: &EnvoyConfig,
    ) -> Result<Envoy> {
        let envoy = Envoy::spawn_config(paths, dir, config)?;
        envoy.wait_ready().await
    }

    async fn wait_ready(mut self) -> Result<Envoy> {
        let http = client()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.process.ensure_running()?;
            if self.is_ready(&http).await {
                return Ok(self);
            }
            if Instant::now() >= deadline {
                bail!(
                    "Envoy was not ready within {READY_TIMEOUT:?}:\n{}",
                    tail(&self.logs(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts Envoy expecting it to refuse the config: it must exit, or keep its listener down
    /// for [`READY_TIMEOUT`]. Fails when Envoy becomes ready.
    pub async fn start_expecting_failure(
        paths: &Paths,
        dir: &Path,
        spec: &EnvoySpec,
    ) -> Result<FailedStart> {
        let mut envoy = Envoy::spawn(paths, dir, spec)?;
        let http = client()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = envoy.process.exited() {
                return Ok(FailedStart {
                    status: Some(status),
                    logs: envoy.logs(),
                });
            }
            if envoy.is_ready(&http).await {
                bail!(
                    "Envoy started although its config should have been refused:\n{}",
                    tail(&envoy.logs(), 40)
                );
            }
            if Instant::now() >= deadline {
                return Ok(FailedStart {
                    status: None,
                    logs: envoy.logs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listener_port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// The value of the counter or gauge `name` from the admin `/stats`, `None` when Envoy has
    /// no such stat.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>> {
        let stats = get(&self.admin_url(&format!("/stats?filter=^{name}$")), &[]).await?;
        let prefix = format!("{name}: ");
        Ok(stats
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse().ok()))
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Everything Envoy has logged so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Waits until a log line satisfies `matches`, and returns that line.
    pub async fn wait_for_log_line(
        &self,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let found = wait_for(timeout, what, || {
            let line = self.logs().lines().find(|l| matches(l)).map(str::to_owned);
            async move { line }
        })
        .await;
        found.with_context(|| format!("Envoy log tail:\n{}", tail(&self.logs(), 40)))
    }
}

/// Starts Envoy with `filter` as the filter configuration and expects it to refuse it, with a log
/// line containing every one of `needles` (e.g. the field's path and the problem). Returns
/// Envoy's log.
pub async fn assert_filter_config_refused(
    test_name: &str,
    filter: Value,
    needles: &[&str],
) -> Result<String> {
    let paths = Paths::locate()?;
    let dir = test_dir(test_name)?;
    // Nothing listens on these ports: a refused config never gets that far.
    let spec = EnvoySpec::new(filter, free_port()?, free_port()?, "unused-token");
    let failed = Envoy::start_expecting_failure(&paths, &dir, &spec).await?;
    if let Some(status) = failed.status {
        if status.success() {
            bail!("Envoy exited with {status}");
        }
    }
    if !failed
        .logs
        .lines()
        .any(|line| needles.iter().all(|n| line.contains(n)))
    {
        bail!(
            "no log line contains all of {needles:?}; log tail:\n{}",
            tail(&failed.logs, 30)
        );
    }
    Ok(failed.logs)
}

// ------------------------------------------------------------------------------------------------
// A whole stack

/// moto + the sidecar + an upstream + Envoy, started in that order; dropped in reverse.
#[derive(Debug)]
pub struct Stack {
    pub envoy: Envoy,
    pub upstream: Upstream,
    pub sidecar: Sidecar,
    pub moto: Moto,
    pub dir: PathBuf,
    pub paths: Paths,
}

impl Stack {
    /// Starts moto, stores `secrets` (name -> JSON value), starts the sidecar with `cache`, the
    /// upstream, and Envoy with `filter` as the filter configuration.
    pub async fn start(
        test_name: &str,
        secrets: &[(&str, Value)],
        cache: SidecarCache,
        filter: Value,
        extra_routes: &[(&str, &str)],
    ) -> Result<Stack> {
        let paths = Paths::locate()?;
        let dir = test_dir(test_name)?;
        let moto = Moto::start(&paths, &dir).await?;
        for (name, value) in secrets {
            moto.create_secret(name, value).await?;
        }
        let sidecar = Sidecar::start(&paths, &dir, &moto, cache).await?;
        let upstream = Upstream::start().await?;
        let mut spec = EnvoySpec::new(filter, upstream.port(), sidecar.port(), sidecar.token());
        spec.extra_routes = extra_routes
            .iter()
            .map(|(n, p)| ((*n).to_owned(), (*p).to_owned()))
            .collect();
        let envoy = Envoy::start(&paths, &dir, &spec).await?;
        Ok(Stack {
            envoy,
            upstream,
            sidecar,
            moto,
            dir,
            paths,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Requests

/// What a test looks at in an answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// `GET url` with the given headers, on a new connection.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Result<Reply> {
    let bytes: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    get_bytes(url, &bytes).await
}

/// `GET url` with header values given as bytes (which need not be UTF-8: HTTP allows bytes
/// 0x80-0xFF in a value, and so do Envoy and reqwest), on a new connection.
pub async fn get_bytes(url: &str, headers: &[(&str, &[u8])]) -> Result<Reply> {
    let mut request = client()?.get(url);
    for (name, value) in headers {
        let value = reqwest::header::HeaderValue::from_bytes(value)
            .with_context(|| format!("header {name}: not a valid HTTP header value"))?;
        request = request.header(*name, value);
    }
    let resp = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}
