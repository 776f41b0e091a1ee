//! The sidecar's TOML configuration: strict raw serde types, validated once into [`Config`].
//!
//! Every error names the field it is about (`providers[0].region: missing`). `$env://` values of
//! provider credentials are resolved here, at start-up, so a missing variable stops the sidecar
//! with a clear message instead of failing on the first request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secret_ref::{extract_key, ExtractError, Manager, ParseError, Reference, SecretValue};
use serde::Deserialize;

/// Where the sidecar listens unless the config says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// The environment variable holding the bearer token unless the config says otherwise.
pub const DEFAULT_TOKEN_ENV: &str = "SECRET_SIDECAR_TOKEN";
/// Positive answers are cached this long by default.
pub const DEFAULT_TTL_SECONDS: u64 = 60;
/// "Secret not found" answers are cached this long by default.
pub const DEFAULT_NOT_FOUND_TTL_SECONDS: u64 = 5;
/// While the provider fails transiently, a value is served (stale) this long after its TTL by
/// default, then refused (`stale_expired`).
pub const DEFAULT_MAX_STALE_S: u64 = 3600;
/// The largest `cache.max_stale_s`: a revocation during an outage must take effect within a day.
pub const MAX_MAX_STALE_S: u64 = 86_400;
/// A secret named in a request's `refetch` is fetched from the provider again only if it was
/// not fetched within this time, by default.
pub const DEFAULT_REFETCH_MIN_INTERVAL_MS: u64 = 1000;
/// The largest `cache.refetch_min_interval_ms`.
pub const MAX_REFETCH_MIN_INTERVAL_MS: u64 = 60_000;
/// A client must send a request's headers within this time by default (from connecting, or
/// from the first byte of a later request on a kept-alive connection).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// A kept-alive connection with no request for this long is closed by default.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 120_000;
/// At most this many connections are served at once by default; more wait to be accepted.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// The largest `server.max_connections`.
pub const MAX_MAX_CONNECTIONS: u64 = 65_536;
/// Largest `server.header_read_timeout_ms`.
pub const MAX_HEADER_READ_TIMEOUT_MS: u64 = 300_000;
/// Largest `server.idle_timeout_ms`.
pub const MAX_IDLE_TIMEOUT_MS: u64 = 3_600_000;
/// File mode of the Unix socket (`listen = "unix:/path"`) by default: the owner only.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// The prefix of a Unix socket path in `listen`.
pub const UNIX_PREFIX: &str = "unix:";

/// Looks up an environment variable; `None` when it is unset (or not valid UTF-8).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for [`Config::load`] and [`TokenSource::load`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The validated configuration. `Debug` never shows a credential (they are [`SecretValue`]s).
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub token: TokenSource,
    pub cache: CacheConfig,
    pub server: ServerConfig,
    pub limit: LimitConfig,
    /// `[log] format` (the `--log-format` flag wins).
    pub log_format: LogFormat,
    pub providers: Vec<ProviderConfig>,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (tracing's format).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's fields.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn parse(text: &str) -> Result<LogFormat, Problem> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(Problem::NotALogFormat(text.into())),
        }
    }
}

/// Where the sidecar accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix socket at this path (`listen = "unix:/run/sidecar/sidecar.sock"`).
    Unix(PathBuf),
}

impl Listen {
    /// `127.0.0.1:7070`, `[::1]:7070` or `unix:/path/to.sock`.
    pub fn parse(text: &str) -> Result<Listen, Problem> {
        if let Some(path) = text.strip_prefix(UNIX_PREFIX) {
            if path.is_empty() {
                return Err(Problem::EmptySocketPath);
            }
            if !path.starts_with('/') {
                return Err(Problem::RelativeSocketPath(path.into()));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        text.parse()
            .map(Listen::Tcp)
            .map_err(|_| Problem::NotASocketAddress(text.into()))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

/// Limits on the HTTP server, against slow or too many clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// A request's headers must arrive within this time: counted from connecting for the first
    /// request, from its first byte for later ones on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// File mode of a Unix socket.
    pub socket_mode: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            socket_mode: DEFAULT_SOCKET_MODE,
        }
    }
}

/// The Redis backends `/v1/limit` may connect to (`[limit]`). Empty: `/v1/limit` is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitConfig {
    /// Single Redis servers (`redis = ["host:port", ...]`).
    pub redis: Vec<AllowedAddr>,
    /// Redis Clusters, each the list of its nodes (`redis_clusters = [["host:port", ...]]`).
    pub redis_clusters: Vec<Vec<AllowedAddr>>,
}

/// A `host:port` (or `host:*`, any port) that `/v1/limit` may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedAddr {
    /// Lower case, without IPv6 brackets.
    pub host: String,
    /// `None`: any port (`host:*`).
    pub port: Option<u16>,
}

impl AllowedAddr {
    /// `host:port`, `[v6::addr]:port`, `host:*`.
    pub fn parse(text: &str) -> Result<AllowedAddr, Problem> {
        let bad = || Problem::NotAllowedAddr(text.into());
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(bad());
        }
        let port = match port {
            "*" => None,
            p => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad()),
                Ok(p) => Some(p),
            },
        };
        Ok(AllowedAddr {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether `host:port` (as a request gives it) is this address.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        host.eq_ignore_ascii_case(&self.host) && self.port.is_none_or(|p| p == port)
    }
}

/// Where the bearer token that callers must present comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a secret's value is served from the cache.
    pub ttl: Duration,
    /// How long a "secret not found" answer (or another definitive refusal) is remembered.
    pub not_found_ttl: Duration,
    /// While the provider fails transiently, how long after its TTL a value is still served
    /// (marked stale); after that the reference fails with `stale_expired`.
    pub max_stale: Duration,
    /// A `refetch` asks the provider again only if the secret was not fetched (nor asked for)
    /// within this time: however many callers ask, one provider call per interval and secret.
    pub refetch_min_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(DEFAULT_TTL_SECONDS),
            not_found_ttl: Duration::from_secs(DEFAULT_NOT_FOUND_TTL_SECONDS),
            max_stale: Duration::from_secs(DEFAULT_MAX_STALE_S),
            refetch_min_interval: Duration::from_millis(DEFAULT_REFETCH_MIN_INTERVAL_MS),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The provider id that references name: `$secret://aws/<id>/...`.
    pub id: String,
    pub kind: ProviderKind,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    Aws(AwsProviderConfig),
    Vault(VaultProviderConfig),
}

impl ProviderKind {
    /// The reference manager (`$secret://<manager>/...`) this kind of provider serves.
    pub fn manager(&self) -> Manager {
        match self {
            ProviderKind::Aws(_) => Manager::Aws,
            ProviderKind::Vault(_) => Manager::Vault,
        }
    }
}

/// The version stage read unless `version_stage` says otherwise.
pub const DEFAULT_VERSION_STAGE: &str = "AWSCURRENT";
/// The KV mount of a Vault provider unless `mount` says otherwise.
pub const DEFAULT_VAULT_MOUNT: &str = "secret";
/// The AppRole auth mount unless `approle_mount` says otherwise.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

#[derive(Debug, Clone)]
pub struct AwsProviderConfig {
    pub region: String,
    /// Overrides the service endpoint (moto, LocalStack, a VPC endpoint). When `None`,
    /// `AWS_ENDPOINT_URL` is honoured by the SDK.
    pub endpoint_url: Option<String>,
    /// Static credentials; `None` means the SDK's default credential chain.
    pub credentials: Option<StaticCredentials>,
    /// The shared config / credentials profile the default chain reads (`None`: `AWS_PROFILE`,
    /// else `default`).
    pub profile: Option<String>,
    /// The version stage whose value is read (`AWSCURRENT` by default).
    pub version_stage: String,
}

/// A HashiCorp Vault / OpenBao KV secrets engine.
#[derive(Debug, Clone)]
pub struct VaultProviderConfig {
    /// `https://vault.example:8200` (no trailing `/`).
    pub address: String,
    /// The KV mount path (no leading or trailing `/`).
    pub mount: String,
    pub kv_version: KvVersion,
    /// Sent as `X-Vault-Namespace` (Vault Enterprise, OpenBao).
    pub namespace: Option<String>,
    pub auth: VaultAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    V1,
    V2,
}

/// How the sidecar gets its Vault token. `Debug` never shows a credential.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token from the environment variable `var` (read at start-up).
    TokenEnv { var: String, token: SecretValue },
    /// A token read from a file at start-up, and again when Vault no longer accepts the token
    /// (a Vault Agent sink rewrites it).
    TokenFile(PathBuf),
    /// AppRole login: `POST /v1/auth/<mount>/login` with the role id and the secret id read from
    /// `secret_id_file` (at each login).
    AppRole {
        role_id: SecretValue,
        secret_id_file: PathBuf,
        mount: String,
    },
}

#[derive(Debug, Clone)]
pub struct StaticCredentials {
    pub access_key_id: SecretValue,
    pub secret_access_key: SecretValue,
    pub session_token: Option<SecretValue>,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema (unknown key, wrong type).
    #[error("{}", toml_message(.field, .message, *.line))]
    Toml {
        /// The dotted path of the offending field, if the error is about one.
        field: Option<String>,
        message: String,
        line: Option<usize>,
    },
    /// A field has a value the sidecar cannot use.
    #[error("{field}: {problem}")]
    Field { field: String, problem: Problem },
}

impl ConfigError {
    fn field(field: impl Into<String>, problem: Problem) -> Self {
        ConfigError::Field {
            field: field.into(),
            problem,
        }
    }
}

fn toml_message(field: &Option<String>, message: &str, line: Option<usize>) -> String {
    let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
    match field {
        Some(field) => format!("{field}: {message}{at}"),
        None => format!("invalid TOML{at}: {message}"),
    }
}

/// What is wrong with a field's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("missing")]
    Missing,
    #[error("empty")]
    Empty,
    #[error("{0:?} is not an IP address and port (expected e.g. \"127.0.0.1:7070\" or \"unix:/run/secret-sidecar/sidecar.sock\")")]
    NotASocketAddress(String),
    #[error(
        "no socket path after \"unix:\" (expected e.g. \"unix:/run/secret-sidecar/sidecar.sock\")"
    )]
    EmptySocketPath,
    #[error("socket path {0:?} is not absolute")]
    RelativeSocketPath(String),
    #[error("must be at most {max}, got {got}")]
    TooLarge { max: u64, got: u64 },
    #[error("must be at least {min}, got {got}")]
    TooSmall { min: u64, got: u64 },
    #[error("{0:?} is not a file mode in octal, at most \"0777\" (e.g. \"0600\" or \"0660\")")]
    NotAFileMode(String),
    #[error("{0:?} is not \"text\" or \"json\"")]
    NotALogFormat(String),
    #[error("only used with listen = \"unix:/path\"")]
    OnlyForUnixSocket,
    #[error("{0:?} is not \"host:port\" or \"host:*\"")]
    NotAllowedAddr(String),
    #[error("set either token_env or token_file, not both")]
    BothTokenSources,
    #[error("no provider configured (add a [[providers]] table with id, kind and region)")]
    NoProviders,
    #[error("unsupported kind {0:?} (expected \"aws\" or \"vault\")")]
    UnsupportedKind(String),
    #[error("only used with kind = \"{0}\"")]
    OnlyForKind(&'static str),
    #[error("must be 1 or 2, got {0}")]
    NotAKvVersion(u64),
    #[error("no Vault authentication: set token_env, token_file, or role_id with secret_id_file")]
    NoVaultAuth,
    #[error("set only one of token_env, token_file and role_id (AppRole)")]
    SeveralVaultAuths,
    #[error("{0:?} contains '/', which cannot appear in a reference's provider id")]
    IdHasSlash(String),
    #[error("duplicate id {id:?} (also used by providers[{first}])")]
    DuplicateId { id: String, first: usize },
    #[error("{0:?} must start with http:// or https://")]
    NotAnHttpUrl(String),
    #[error("missing (required when {0} is set)")]
    RequiredWith(&'static str),
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("environment variable {0} is set but empty")]
    EnvEmpty(String),
    #[error("environment variable {var}: {error}")]
    EnvKey { var: String, error: ExtractError },
    #[error("$secret:// references cannot be used for the sidecar's own settings; use $env://NAME or a plain value")]
    SecretRefNotAllowed,
    #[error("{0}")]
    BadReference(ParseError),
    #[error("cannot read {path:?}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{0:?} is empty")]
    EmptyFile(PathBuf),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    cache: Option<RawCache>,
    server: Option<RawServer>,
    limit: Option<RawLimit>,
    log: Option<RawLog>,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    ttl_seconds: Option<u64>,
    not_found_ttl_seconds: Option<u64>,
    max_stale_s: Option<u64>,
    refetch_min_interval_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<u64>,
    socket_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    #[serde(default)]
    redis: Vec<String>,
    #[serde(default)]
    redis_clusters: Vec<Vec<String>>,
}

/// `Debug` shows which credentials are set, never their text (they may be plain values).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: Option<String>,
    kind: Option<String>,
    // kind = "aws"
    region: Option<String>,
    endpoint_url: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    profile: Option<String>,
    version_stage: Option<String>,
    // kind = "vault"
    address: Option<String>,
    mount: Option<String>,
    kv_version: Option<u64>,
    namespace: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    role_id: Option<String>,
    secret_id_file: Option<PathBuf>,
    approle_mount: Option<String>,
}

impl Config {
    /// Reads and validates the config file at `path`, resolving `$env://` values from `env`.
    pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, env)
    }

    /// Validates a config document, resolving `$env://` values from `env`.
    pub fn parse(text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let raw = parse_raw(text)?;
        validate(raw, env)
    }
}

fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Toml {
        field: None,
        message: e.message().to_string(),
        line: line_of(e.span()),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Toml {
            field: (path != ".").then_some(path),
            message: inner.message().to_string(),
            line: line_of(inner.span()),
        }
    })
}

impl std::fmt::Debug for RawProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("RawProvider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("profile", &self.profile)
            .field("version_stage", &self.version_stage)
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("kv_version", &self.kv_version)
            .field("namespace", &self.namespace)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("role_id", &redacted(&self.role_id))
            .field("secret_id_file", &self.secret_id_file)
            .field("approle_mount", &self.approle_mount)
            .finish()
    }
}

fn validate(raw: RawConfig, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = Listen::parse(listen_text).map_err(|p| ConfigError::field("listen", p))?;
    let server = validate_server(raw.server, &listen)?;
    let limit = validate_limit(raw.limit)?;
    let log_format = match raw.log.and_then(|l| l.format) {
        None => LogFormat::default(),
        Some(text) => LogFormat::parse(&text).map_err(|p| ConfigError::field("log.format", p))?,
    };

    let token = match (raw.token_env, raw.token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::field("token_file", Problem::BothTokenSources))
        }
        (Some(var), None) if var.is_empty() => {
            return Err(ConfigError::field("token_env", Problem::Empty))
        }
        (Some(var), None) => TokenSource::Env(var),
        (None, Some(path)) if path.as_os_str().is_empty() => {
            return Err(ConfigError::field("token_file", Problem::Empty))
        }
        (None, Some(path)) => TokenSource::File(path),
        (None, None) => TokenSource::Env(DEFAULT_TOKEN_ENV.to_string()),
    };

    let cache = match raw.cache {
        None => CacheConfig::default(),
        Some(c) => CacheConfig {
            ttl: Duration::from_secs(c.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS)),
            not_found_ttl: Duration::from_secs(
                c.not_found_ttl_seconds
                    .unwrap_or(DEFAULT_NOT_FOUND_TTL_SECONDS),
            ),
            max_stale: Duration::from_secs(at_most(
                "cache.max_stale_s",
                c.max_stale_s.unwrap_or(DEFAULT_MAX_STALE_S),
                MAX_MAX_STALE_S,
            )?),
            refetch_min_interval: Duration::from_millis(at_most(
                "cache.refetch_min_interval_ms",
                c.refetch_min_interval_ms
                    .unwrap_or(DEFAULT_REFETCH_MIN_INTERVAL_MS),
                MAX_REFETCH_MIN_INTERVAL_MS,
            )?),
        },
    };

    if raw.providers.is_empty() {
        return Err(ConfigError::field("providers", Problem::NoProviders));
    }
    let mut providers: Vec<ProviderConfig> = Vec::with_capacity(raw.providers.len());
    for (i, p) in raw.providers.into_iter().enumerate() {
        let provider = validate_provider(i, p, env)?;
        if let Some(first) = providers.iter().position(|q| q.id == provider.id) {
            return Err(ConfigError::field(
                format!("providers[{i}].id"),
                Problem::DuplicateId {
                    id: provider.id,
                    first,
                },
            ));
        }
        providers.push(provider);
    }

    Ok(Config {
        listen,
        token,
        cache,
        server,
        limit,
        log_format,
        providers,
    })
}

fn at_most(field: &str, value: u64, max: u64) -> Result<u64, ConfigError> {
    if value > max {
        return Err(ConfigError::field(
            field,
            Problem::TooLarge { max, got: value },
        ));
    }
    Ok(value)
}

fn in_range(field: &str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if value < min {
        return Err(ConfigError::field(
            field,
            Problem::TooSmall { min, got: value },
        ));
    }
    at_most(field, value, max)
}

fn validate_server(raw: Option<RawServer>, listen: &Listen) -> Result<ServerConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ServerConfig::default());
    };
    let header_read_timeout = in_range(
        "server.header_read_timeout_ms",
        raw.header_read_timeout_ms
            .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_MS),
        1,
        MAX_HEADER_READ_TIMEOUT_MS,
    )?;
    let idle_timeout = in_range(
        "server.idle_timeout_ms",
        raw.idle_timeout_ms.unwrap_or(DEFAULT_IDLE_TIMEOUT_MS),
        1,
        MAX_IDLE_TIMEOUT_MS,
    )?;
    let max_connections = in_range(
        "server.max_connections",
        raw.max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS as u64),
        1,
        MAX_MAX_CONNECTIONS,
    )?;
    let socket_mode = match raw.socket_mode {
        None => DEFAULT_SOCKET_MODE,
        Some(_) if !matches!(listen, Listen::Unix(_)) => {
            return Err(ConfigError::field(
                "server.socket_mode",
                Problem::OnlyForUnixSocket,
            ))
        }
        Some(text) => match u32::from_str_radix(&text, 8) {
            Ok(mode) if mode <= 0o777 && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) => mode,
            _ => {
                return Err(ConfigError::field(
                    "server.socket_mode",
                    Problem::NotAFileMode(text),
                ))
            }
        },
    };
    Ok(ServerConfig {
        header_read_timeout: Duration::from_millis(header_read_timeout),
        idle_timeout: Duration::from_millis(idle_timeout),
        max_connections: usize::try_from(max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
        socket_mode,
    })
}

fn validate_limit(raw: Option<RawLimit>) -> Result<LimitConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(LimitConfig::default());
    };
    let addr = |field: String, text: &str| {
        AllowedAddr::parse(text).map_err(|p| ConfigError::field(field, p))
    };
    let redis = raw
        .redis
        .iter()
        .enumerate()
        .map(|(i, a)| addr(format!("limit.redis[{i}]"), a))
        .collect::<Result<_, _>>()?;
    let mut redis_clusters = Vec::with_capacity(raw.redis_clusters.len());
    for (i, nodes) in raw.redis_clusters.iter().enumerate() {
        if nodes.is_empty() {
            return Err(ConfigError::field(
                format!("limit.redis_clusters[{i}]"),
                Problem::Empty,
            ));
        }
        redis_clusters.push(
            nodes
                .iter()
                .enumerate()
                .map(|(j, a)| addr(format!("limit.redis_clusters[{i}][{j}]"), a))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(LimitConfig {
        redis,
        redis_clusters,
    })
}

fn required(field: String, value: Option<String>) -> Result<String, ConfigError> {
    match value {
        None => Err(ConfigError::field(field, Problem::Missing)),
        Some(v) if v.trim().is_empty() => Err(ConfigError::field(field, Problem::Empty)),
        Some(v) => Ok(v),
    }
}

fn validate_provider(
    i: usize,
    p: RawProvider,
    env: EnvLookup<'_>,
) -> Result<ProviderConfig, ConfigError> {
    let at = |name: &str| format!("providers[{i}].{name}");

    let id = required(at("id"), p.id.clone())?;
    if id.contains('/') {
        return Err(ConfigError::field(at("id"), Problem::IdHasSlash(id)));
    }
    let kind = required(at("kind"), p.kind.clone())?;
    let kind = match kind.as_str() {
        "aws" => ProviderKind::Aws(validate_aws(&at, p, env)?),
        "vault" => ProviderKind::Vault(validate_vault(&at, p, env)?),
        _ => {
            return Err(ConfigError::field(
                at("kind"),
                Problem::UnsupportedKind(kind),
            ))
        }
    };
    Ok(ProviderConfig { id, kind })
}

/// Fails naming the first field that is set but belongs to the other kind of provider.
fn refuse_fields(
    at: &dyn Fn(&str) -> String,
    fields: &[(&str, bool)],
    only_for: &'static str,
) -> Result<(), ConfigError> {
    match fields.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(ConfigError::field(at(name), Problem::OnlyForKind(only_for))),
        None => Ok(()),
    }
}

fn http_url(field: String, url: String) -> Result<String, ConfigError> {
    if url.is_empty() {
        return Err(ConfigError::field(field, Problem::Empty));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::field(field, Problem::NotAnHttpUrl(url)));
    }
    Ok(url)
}

fn optional_non_empty(field: String, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(ConfigError::field(field, Problem::Empty)),
        other => Ok(other),
    }
}

fn validate_aws(
    at: &dyn Fn(&str) -> String,
    p: RawProvider,
    env: EnvLookup<'_>,
) -> Result<AwsProviderConfig, ConfigError> {
    refuse_fields(
        at,
        &[
            ("address", p.address.is_some()),
            ("mount", p.mount.is_some()),
            ("kv_version", p.kv_version.is_some()),
            ("namespace", p.namespace.is_some()),
            ("token_env", p.token_env.is_some()),
            ("token_file", p.token_file.is_some()),
            ("role_id", p.role_id.is_some()),
            ("secret_id_file", p.secret_id_file.is_some()),
            ("approle_mount", p.approle_mount.is_some()),
        ],
        "vault",
    )?;
    let region = required(at("region"), p.region)?;
    let endpoint_url = p
        .endpoint_url
        .map(|url| http_url(at("endpoint_url"), url))
        .transpose()?;
    let profile = optional_non_empty(at("profile"), p.profile)?;
    let version_stage = optional_non_empty(at("version_stage"), p.version_stage)?
        .unwrap_or_else(|| DEFAULT_VERSION_STAGE.to_string());

    let credentials = match (p.access_key_id, p.secret_access_key, p.session_token) {
        (None, None, None) => None,
        (Some(_), None, _) => {
            return Err(ConfigError::field(
                at("secret_access_key"),
                Problem::RequiredWith("access_key_id"),
            ))
        }
        (None, Some(_), _) => {
            return Err(ConfigError::field(
                at("access_key_id"),
                Problem::RequiredWith("secret_access_key"),
            ))
        }
        (None, None, Some(_)) => {
            return Err(ConfigError::field(
                at("access_key_id"),
                Problem::RequiredWith("session_token"),
            ))
        }
        (Some(ak), Some(sk), token) => Some(StaticCredentials {
            access_key_id: config_value(at("access_key_id"), &ak, env)?,
            secret_access_key: config_value(at("secret_access_key"), &sk, env)?,
            session_token: token
                .map(|t| config_value(at("session_token"), &t, env))
                .transpose()?,
        }),
    };

    Ok(AwsProviderConfig {
        region,
        endpoint_url,
        credentials,
        profile,
        version_stage,
    })
}

/// A path inside Vault: no leading or trailing `/`, not empty.
fn vault_path(field: String, value: String) -> Result<String, ConfigError> {
    let trimmed = value.trim_matches('/');
    if trimmed.trim().is_empty() {
        return Err(ConfigError::field(field, Problem::Empty));
    }
    Ok(trimmed.to_string())
}

fn validate_vault(
    at: &dyn Fn(&str) -> String,
    p: RawProvider,
    env: EnvLookup<'_>,
) -> Result<VaultProviderConfig, ConfigError> {
    refuse_fields(
        at,
        &[
            ("region", p.region.is_some()),
            ("endpoint_url", p.endpoint_url.is_some()),
            ("access_key_id", p.access_key_id.is_some()),
            ("secret_access_key", p.secret_access_key.is_some()),
            ("session_token", p.session_token.is_some()),
            ("profile", p.profile.is_some()),
            ("version_stage", p.version_stage.is_some()),
        ],
        "aws",
    )?;
    let address = http_url(at("address"), required(at("address"), p.address)?)?
        .trim_end_matches('/')
        .to_string();
    let mount = vault_path(
        at("mount"),
        p.mount.unwrap_or_else(|| DEFAULT_VAULT_MOUNT.to_string()),
    )?;
    let kv_version = match p.kv_version {
        None | Some(2) => KvVersion::V2,
        Some(1) => KvVersion::V1,
        Some(n) => {
            return Err(ConfigError::field(
                at("kv_version"),
                Problem::NotAKvVersion(n),
            ))
        }
    };
    let namespace = p
        .namespace
        .map(|ns| vault_path(at("namespace"), ns))
        .transpose()?;

    let approle = p.role_id.is_some() || p.secret_id_file.is_some() || p.approle_mount.is_some();
    let sources = [p.token_env.is_some(), p.token_file.is_some(), approle];
    if sources.iter().filter(|set| **set).count() > 1 {
        let field = if p.token_file.is_some() && p.token_env.is_some() {
            "token_file"
        } else {
            "role_id"
        };
        return Err(ConfigError::field(at(field), Problem::SeveralVaultAuths));
    }
    let auth = if let Some(var) = p.token_env {
        if var.is_empty() {
            return Err(ConfigError::field(at("token_env"), Problem::Empty));
        }
        let token = match env(&var) {
            None => return Err(ConfigError::field(at("token_env"), Problem::EnvUnset(var))),
            Some(t) if t.trim().is_empty() => {
                return Err(ConfigError::field(at("token_env"), Problem::EnvEmpty(var)))
            }
            Some(t) => SecretValue::new(t.trim()),
        };
        VaultAuth::TokenEnv { var, token }
    } else if let Some(path) = p.token_file {
        if path.as_os_str().is_empty() {
            return Err(ConfigError::field(at("token_file"), Problem::Empty));
        }
        VaultAuth::TokenFile(path)
    } else if approle {
        let role_id = match p.role_id {
            None => {
                return Err(ConfigError::field(
                    at("role_id"),
                    Problem::RequiredWith(if p.secret_id_file.is_some() {
                        "secret_id_file"
                    } else {
                        "approle_mount"
                    }),
                ))
            }
            Some(r) => config_value(at("role_id"), &r, env)?,
        };
        let secret_id_file = match p.secret_id_file {
            None => {
                return Err(ConfigError::field(
                    at("secret_id_file"),
                    Problem::RequiredWith("role_id"),
                ))
            }
            Some(path) if path.as_os_str().is_empty() => {
                return Err(ConfigError::field(at("secret_id_file"), Problem::Empty))
            }
            Some(path) => path,
        };
        let mount = vault_path(
            at("approle_mount"),
            p.approle_mount
                .unwrap_or_else(|| DEFAULT_APPROLE_MOUNT.to_string()),
        )?;
        VaultAuth::AppRole {
            role_id,
            secret_id_file,
            mount,
        }
    } else {
        return Err(ConfigError::field(at("token_env"), Problem::NoVaultAuth));
    };

    Ok(VaultProviderConfig {
        address,
        mount,
        kv_version,
        namespace,
        auth,
    })
}

/// Reads a credential file (a Vault token, an AppRole secret id): the text without surrounding
/// whitespace, not empty. The error names `field` and the path, never the content.
pub fn read_credential_file(field: &str, path: &Path) -> Result<SecretValue, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::field(
            field,
            Problem::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        )
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ConfigError::field(
            field,
            Problem::EmptyFile(path.to_path_buf()),
        ));
    }
    Ok(SecretValue::new(value))
}

/// A setting that may be a plain value or a `$env://NAME[/key]` reference.
fn config_value(field: String, raw: &str, env: EnvLookup<'_>) -> Result<SecretValue, ConfigError> {
    let value = match secret_ref::parse(raw) {
        Err(e) => return Err(ConfigError::field(field, Problem::BadReference(e))),
        Ok(Some(Reference::Secret(_))) => {
            return Err(ConfigError::field(field, Problem::SecretRefNotAllowed))
        }
        Ok(None) => SecretValue::new(raw),
        Ok(Some(Reference::Env(r))) => {
            let Some(var) = env(&r.name) else {
                return Err(ConfigError::field(field, Problem::EnvUnset(r.name)));
            };
            extract_key(&var, r.key.as_deref()).map_err(|error| {
                ConfigError::field(
                    field.clone(),
                    Problem::EnvKey {
                        var: r.name.clone(),
                        error,
                    },
                )
            })?
        }
    };
    if value.expose().is_empty() {
        return Err(ConfigError::field(field, Problem::Empty));
    }
    Ok(value)
}

impl TokenSource {
    /// Reads the bearer token. A token file's trailing newline is not part of the token.
    pub fn load(&self, env: EnvLookup<'_>) -> Result<SecretValue, ConfigError> {
        match self {
            TokenSource::Env(var) => match env(var) {
                None => Err(ConfigError::field(
                    "token_env",
                    Problem::EnvUnset(var.clone()),
                )),
                Some(v) if v.is_empty() => Err(ConfigError::field(
                    "token_env",
                    Problem::EnvEmpty(var.clone()),
                )),
                Some(v) => Ok(SecretValue::new(v)),
            },
            TokenSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::field(
                        "token_file",
                        Problem::Unreadable {
                            path: path.clone(),
                            reason: e.to_string(),
                        },
                    )
                })?;
                let token = text.trim_end_matches(['\r', '\n']);
                if token.is_empty() {
                    return Err(ConfigError::field(
                        "token_file",
                        Problem::EmptyFile(path.clone()),
                    ));
                }
                Ok(SecretValue::new(token))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "AK" => Some("AKIDEXAMPLE".into()),
            "SK" => Some("wJalrXUtnFEMI".into()),
            "EMPTY" => Some(String::new()),
            "CREDS" => Some(r#"{"ak":"from-json","n":1}"#.into()),
            "SECRET_SIDECAR_TOKEN" => Some("t0ken".into()),
            "VAULT_TOKEN" => Some("hvs.vault-token-text\n".into()),
            "ROLE" => Some("role-id-text".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &env)
    }

    const MINIMAL: &str = r#"
[[providers]]
id = "my-secrets-manager"
kind = "aws"
region = "us-east-1"
"#;

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen, Listen::Tcp("127.0.0.1:7070".parse().unwrap()));
        assert_eq!(c.cache.max_stale, Duration::from_secs(3600));
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.server.max_connections, 256);
        assert_eq!(c.limit, LimitConfig::default());
        assert_eq!(c.token, TokenSource::Env("SECRET_SIDECAR_TOKEN".into()));
        assert_eq!(c.cache.ttl, Duration::from_secs(60));
        assert_eq!(c.cache.not_found_ttl, Duration::from_secs(5));
        assert_eq!(c.cache.refetch_min_interval, Duration::from_secs(1));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].id, "my-secrets-manager");
        let ProviderKind::Aws(aws) = &c.providers[0].kind else {
            panic!("not aws")
        };
        assert_eq!(aws.region, "us-east-1");
        assert!(aws.endpoint_url.is_none());
        assert!(aws.credentials.is_none());
    }

    #[test]
    fn full_config_from_design() {
        let c = parse(
            r#"
listen = "127.0.0.1:7171"
token_file = "/run/token"

[cache]
ttl_seconds = 30
not_found_ttl_seconds = 2

[[providers]]
id = "my-secrets-manager"
kind = "aws"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:5000"
access_key_id = "$env://AK"
secret_access_key = "$env://SK"
session_token = "plain-session"

[[providers]]
id = "second"
kind = "aws"
region = "us-east-1"
access_key_id = "$env://CREDS/ak"
secret_access_key = "plain"
"#,
        )
        .unwrap();
        assert_eq!(c.listen, Listen::Tcp("127.0.0.1:7171".parse().unwrap()));
        assert_eq!(c.token, TokenSource::File("/run/token".into()));
        assert_eq!(c.cache.ttl, Duration::from_secs(30));
        assert_eq!(c.cache.not_found_ttl, Duration::from_secs(2));
        let ProviderKind::Aws(aws) = &c.providers[0].kind else {
            panic!("not aws")
        };
        assert_eq!(aws.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        let creds = aws.credentials.as_ref().unwrap();
        assert_eq!(creds.access_key_id.expose(), "AKIDEXAMPLE");
        assert_eq!(creds.secret_access_key.expose(), "wJalrXUtnFEMI");
        assert_eq!(
            creds.session_token.as_ref().unwrap().expose(),
            "plain-session"
        );
        let ProviderKind::Aws(second) = &c.providers[1].kind else {
            panic!("not aws")
        };
        let creds = second.credentials.as_ref().unwrap();
        assert_eq!(creds.access_key_id.expose(), "from-json");
        assert_eq!(c.providers[1].kind.manager(), Manager::Aws);
        // credentials never show in Debug output
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("wJalrXUtnFEMI") && !dbg.contains("AKIDEXAMPLE"),
            "{dbg}"
        );
    }

    fn provider(extra: &str) -> String {
        format!("[[providers]]\nid = \"p\"\nkind = \"aws\"\nregion = \"us-east-1\"\n{extra}\n")
    }

    #[test]
    fn bad_configs_name_the_field() {
        let two = format!("{}{}", provider(""), provider(""));
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "providers: no provider configured (add a [[providers]] table with id, kind and region)"),
            ("[[providers]]\nkind = \"aws\"\nregion = \"r\"".into(), "providers[0].id: missing"),
            ("[[providers]]\nid = \"p\"\nregion = \"r\"".into(), "providers[0].kind: missing"),
            ("[[providers]]\nid = \"p\"\nkind = \"aws\"".into(), "providers[0].region: missing"),
            ("[[providers]]\nid = \"p\"\nkind = \"aws\"\nregion = \"\"".into(), "providers[0].region: empty"),
            ("[[providers]]\nid = \"a/b\"\nkind = \"aws\"\nregion = \"r\"".into(),
             "providers[0].id: \"a/b\" contains '/', which cannot appear in a reference's provider id"),
            ("[[providers]]\nid = \"p\"\nkind = \"gcp\"\nregion = \"r\"".into(),
             "providers[0].kind: unsupported kind \"gcp\" (expected \"aws\" or \"vault\")"),
            (two, "providers[1].id: duplicate id \"p\" (also used by providers[0])"),
            (provider("endpoint_url = \"127.0.0.1:5000\""),
             "providers[0].endpoint_url: \"127.0.0.1:5000\" must start with http:// or https://"),
            (provider("access_key_id = \"x\""),
             "providers[0].secret_access_key: missing (required when access_key_id is set)"),
            (provider("secret_access_key = \"x\""),
             "providers[0].access_key_id: missing (required when secret_access_key is set)"),
            (provider("session_token = \"x\""),
             "providers[0].access_key_id: missing (required when session_token is set)"),
            (provider("access_key_id = \"$env://NOPE\"\nsecret_access_key = \"$env://SK\""),
             "providers[0].access_key_id: environment variable NOPE is not set"),
            (provider("access_key_id = \"$env://AK\"\nsecret_access_key = \"$env://EMPTY\""),
             "providers[0].secret_access_key: empty"),
            (provider("access_key_id = \"$env://CREDS/nope\"\nsecret_access_key = \"x\""),
             "providers[0].access_key_id: environment variable CREDS: key \"nope\" not found in the secret"),
            (provider("access_key_id = \"$env://AK\"\nsecret_access_key = \"$secret://aws/p/s/k\""),
             "providers[0].secret_access_key: $secret:// references cannot be used for the sidecar's own settings; use $env://NAME or a plain value"),
            (provider("access_key_id = \"$env:/AK\"\nsecret_access_key = \"x\""),
             "providers[0].access_key_id: looks like a reference but does not start with \"$secret://\" or \"$env://\""),
            (format!("listen = \"localhost:7070\"\n{MINIMAL}"),
             "listen: \"localhost:7070\" is not an IP address and port (expected e.g. \"127.0.0.1:7070\" or \"unix:/run/secret-sidecar/sidecar.sock\")"),
            (format!("token_env = \"A\"\ntoken_file = \"/t\"\n{MINIMAL}"),
             "token_file: set either token_env or token_file, not both"),
            (format!("token_env = \"\"\n{MINIMAL}"), "token_env: empty"),
        ];
        for (text, want) in cases {
            match parse(&text) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => assert_eq!(e.to_string(), want, "config:\n{text}"),
            }
        }
    }

    #[test]
    fn server_limit_and_stale_settings() {
        let c = parse(&format!(
            r#"
listen = "unix:/run/sidecar/sidecar.sock"

[cache]
max_stale_s = 0
refetch_min_interval_ms = 0

[log]
format = "json"

[server]
header_read_timeout_ms = 500
idle_timeout_ms = 2000
max_connections = 4
socket_mode = "0660"

[limit]
redis = ["127.0.0.1:6379", "Redis.Internal:6380", "[::1]:*"]
redis_clusters = [["10.0.0.1:7000", "10.0.0.2:7000"]]
{MINIMAL}"#
        ))
        .unwrap();
        assert_eq!(c.listen, Listen::Unix("/run/sidecar/sidecar.sock".into()));
        assert_eq!(c.listen.to_string(), "unix:/run/sidecar/sidecar.sock");
        assert_eq!(c.cache.max_stale, Duration::ZERO);
        assert_eq!(c.cache.refetch_min_interval, Duration::ZERO);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.server,
            ServerConfig {
                header_read_timeout: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(2),
                max_connections: 4,
                socket_mode: 0o660,
            }
        );
        let redis = &c.limit.redis;
        assert!(redis[0].matches("127.0.0.1", 6379));
        assert!(!redis[0].matches("127.0.0.1", 6380));
        assert!(!redis[0].matches("127.0.0.2", 6379));
        assert!(redis[1].matches("redis.internal", 6380));
        assert!(redis[2].matches("::1", 1234) && redis[2].matches("[::1]", 6379));
        assert_eq!(c.limit.redis_clusters[0].len(), 2);
        assert!(c.limit.redis_clusters[0][1].matches("10.0.0.2", 7000));
    }

    #[test]
    fn bad_server_limit_and_stale_settings() {
        let cases = [
            ("[cache]\nmax_stale_s = 86401", "cache.max_stale_s: must be at most 86400, got 86401"),
            ("[log]\nformat = \"yaml\"", "log.format: \"yaml\" is not \"text\" or \"json\""),
            ("[cache]\nrefetch_min_interval_ms = 60001", "cache.refetch_min_interval_ms: must be at most 60000, got 60001"),
            ("[server]\nheader_read_timeout_ms = 0", "server.header_read_timeout_ms: must be at least 1, got 0"),
            ("[server]\nidle_timeout_ms = 3600001", "server.idle_timeout_ms: must be at most 3600000, got 3600001"),
            ("[server]\nmax_connections = 0", "server.max_connections: must be at least 1, got 0"),
            ("[server]\nsocket_mode = \"0600\"", "server.socket_mode: only used with listen = \"unix:/path\""),
            ("listen = \"unix:/s\"\n[server]\nsocket_mode = \"0800\"",
             "server.socket_mode: \"0800\" is not a file mode in octal, at most \"0777\" (e.g. \"0600\" or \"0660\")"),
            ("listen = \"unix:/s\"\n[server]\nsocket_mode = \"+600\"",
             "server.socket_mode: \"+600\" is not a file mode in octal, at most \"0777\" (e.g. \"0600\" or \"0660\")"),
            ("listen = \"unix:/s\"\n[server]\nsocket_mode = \"1777\"",
             "server.socket_mode: \"1777\" is not a file mode in octal, at most \"0777\" (e.g. \"0600\" or \"0660\")"),
            ("listen = \"unix:\"", "listen: no socket path after \"unix:\" (expected e.g. \"unix:/run/secret-sidecar/sidecar.sock\")"),
            ("listen = \"unix:run/s.sock\"", "listen: socket path \"run/s.sock\" is not absolute"),
            ("[limit]\nredis = [\"127.0.0.1\"]", "limit.redis[0]: \"127.0.0.1\" is not \"host:port\" or \"host:*\""),
            ("[limit]\nredis = [\"h:0\"]", "limit.redis[0]: \"h:0\" is not \"host:port\" or \"host:*\""),
            ("[limit]\nredis = [\":6379\"]", "limit.redis[0]: \":6379\" is not \"host:port\" or \"host:*\""),
            ("[limit]\nredis_clusters = [[]]", "limit.redis_clusters[0]: empty"),
            ("[limit]\nredis_clusters = [[\"a:1\", \"b\"]]", "limit.redis_clusters[0][1]: \"b\" is not \"host:port\" or \"host:*\""),
        ];
        for (text, want) in cases {
            match parse(&format!("{text}\n{MINIMAL}")) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => assert_eq!(e.to_string(), want, "config:\n{text}"),
            }
        }
    }

    #[test]
    fn debug_never_shows_credentials() {
        let text = format!(
            "{}access_key_id = \"AKIAPLAINTEXT\"\nsecret_access_key = \"plain-secret-key\"\nsession_token = \"plain-session\"\n",
            provider("")
        );
        let raw = parse_raw(&text).unwrap();
        let c = parse(&text).unwrap();
        for dbg in [format!("{raw:?}"), format!("{c:?}"), format!("{c:#?}")] {
            for secret in ["AKIAPLAINTEXT", "plain-secret-key", "plain-session"] {
                assert!(!dbg.contains(secret), "{dbg}");
            }
        }
        assert!(format!("{raw:?}").contains("secret_access_key: Some(\"[redacted]\")"));
    }

    #[test]
    fn schema_errors_name_the_field_and_line() {
        let cases = [
            (
                format!("{MINIMAL}regoin = \"x\"\n"),
                "providers[0].regoin: unknown field `regoin`",
                "(line 6)",
            ),
            (
                format!("lisen = \"x\"\n{MINIMAL}"),
                "lisen: unknown field `lisen`",
                "(line 1)",
            ),
            (
                format!("[cache]\nttl_seconds = \"60\"\n{MINIMAL}"),
                "cache.ttl_seconds: invalid type: string \"60\", expected u64",
                "(line 2)",
            ),
            (
                format!("[cache]\nttl_seconds = -1\n{MINIMAL}"),
                "cache.ttl_seconds: ",
                "(line 2)",
            ),
        ];
        for (text, prefix, line) in cases {
            let msg = parse(&text).unwrap_err().to_string();
            assert!(
                msg.starts_with(prefix),
                "{msg:?} should start with {prefix:?}"
            );
            assert!(msg.ends_with(line), "{msg:?} should end with {line:?}");
        }
        let msg = parse("listen = \n").unwrap_err().to_string();
        assert!(msg.starts_with("invalid TOML (line 1): "), "{msg}");
    }

    #[test]
    fn token_sources() {
        let from_env = TokenSource::Env("SECRET_SIDECAR_TOKEN".into());
        assert_eq!(from_env.load(&env).unwrap().expose(), "t0ken");
        let err = TokenSource::Env("NOPE".into()).load(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token_env: environment variable NOPE is not set"
        );
        let err = TokenSource::Env("EMPTY".into()).load(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token_env: environment variable EMPTY is set but empty"
        );

        let dir = std::env::temp_dir().join(format!("sidecar-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(
            TokenSource::File(file.clone()).load(&env).unwrap().expose(),
            "s3cret"
        );
        std::fs::write(&file, "\n").unwrap();
        let err = TokenSource::File(file.clone()).load(&env).unwrap_err();
        assert_eq!(err.to_string(), format!("token_file: {file:?} is empty"));
        let missing = dir.join("missing");
        let err = TokenSource::File(missing.clone()).load(&env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("token_file: cannot read {missing:?}: ")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn aws_profile_and_version_stage() {
        let c = parse(&provider(
            "profile = \"prod\"\nversion_stage = \"AWSPENDING\"",
        ))
        .unwrap();
        let ProviderKind::Aws(aws) = &c.providers[0].kind else {
            panic!("not aws")
        };
        assert_eq!(aws.profile.as_deref(), Some("prod"));
        assert_eq!(aws.version_stage, "AWSPENDING");
        let c = parse(MINIMAL).unwrap();
        let ProviderKind::Aws(aws) = &c.providers[0].kind else {
            panic!("not aws")
        };
        assert_eq!(
            (aws.profile.as_deref(), aws.version_stage.as_str()),
            (None, "AWSCURRENT")
        );
    }

    fn vault(extra: &str) -> String {
        format!("[[providers]]\nid = \"v\"\nkind = \"vault\"\naddress = \"https://vault.example:8200/\"\n{extra}\n")
    }

    #[test]
    fn vault_providers() {
        let c = parse(&vault("token_env = \"VAULT_TOKEN\"")).unwrap();
        assert_eq!(c.providers[0].kind.manager(), Manager::Vault);
        let ProviderKind::Vault(v) = &c.providers[0].kind else {
            panic!("not vault")
        };
        assert_eq!(v.address, "https://vault.example:8200");
        assert_eq!(v.mount, "secret");
        assert_eq!(v.kv_version, KvVersion::V2);
        assert_eq!(v.namespace, None);
        let VaultAuth::TokenEnv { var, token } = &v.auth else {
            panic!("{:?}", v.auth)
        };
        assert_eq!(
            (var.as_str(), token.expose()),
            ("VAULT_TOKEN", "hvs.vault-token-text")
        );

        let c = parse(&vault(
            "mount = \"/kv/\"\nkv_version = 1\nnamespace = \"team-a/\"\ntoken_file = \"/run/vault-token\"",
        ))
        .unwrap();
        let ProviderKind::Vault(v) = &c.providers[0].kind else {
            panic!("not vault")
        };
        assert_eq!((v.mount.as_str(), v.kv_version), ("kv", KvVersion::V1));
        assert_eq!(v.namespace.as_deref(), Some("team-a"));
        assert!(matches!(&v.auth, VaultAuth::TokenFile(p) if p == Path::new("/run/vault-token")));

        let c = parse(&vault(
            "role_id = \"$env://ROLE\"\nsecret_id_file = \"/run/secret-id\"\napprole_mount = \"ci\"",
        ))
        .unwrap();
        let ProviderKind::Vault(v) = &c.providers[0].kind else {
            panic!("not vault")
        };
        let VaultAuth::AppRole {
            role_id,
            secret_id_file,
            mount,
        } = &v.auth
        else {
            panic!("{:?}", v.auth)
        };
        assert_eq!(role_id.expose(), "role-id-text");
        assert_eq!(secret_id_file, Path::new("/run/secret-id"));
        assert_eq!(mount, "ci");
        let c = parse(&vault("role_id = \"plain-role\"\nsecret_id_file = \"/s\"")).unwrap();
        let ProviderKind::Vault(v) = &c.providers[0].kind else {
            panic!("not vault")
        };
        assert!(matches!(&v.auth, VaultAuth::AppRole { mount, .. } if mount == "approle"));

        // credentials never show in Debug output
        for text in [
            vault("token_env = \"VAULT_TOKEN\""),
            vault("role_id = \"plain-role\"\nsecret_id_file = \"/s\""),
        ] {
            let dbg = format!(
                "{:?} {:?}",
                parse(&text).unwrap(),
                parse_raw(&text).unwrap()
            );
            for secret in ["hvs.vault-token-text", "plain-role"] {
                assert!(!dbg.contains(secret), "{dbg}");
            }
        }
    }

    #[test]
    fn bad_vault_and_aws_options_name_the_field() {
        let cases = [
            (vault(""), "providers[0].token_env: no Vault authentication: set token_env, token_file, or role_id with secret_id_file"),
            ("[[providers]]\nid = \"v\"\nkind = \"vault\"\ntoken_env = \"VAULT_TOKEN\"".to_string(), "providers[0].address: missing"),
            (vault("token_env = \"VAULT_TOKEN\"\nregion = \"us-east-1\""), "providers[0].region: only used with kind = \"aws\""),
            (vault("token_env = \"VAULT_TOKEN\"\nprofile = \"p\""), "providers[0].profile: only used with kind = \"aws\""),
            (provider("mount = \"kv\""), "providers[0].mount: only used with kind = \"vault\""),
            (provider("token_env = \"VAULT_TOKEN\""), "providers[0].token_env: only used with kind = \"vault\""),
            (vault("token_env = \"VAULT_TOKEN\"\nkv_version = 3"), "providers[0].kv_version: must be 1 or 2, got 3"),
            (vault("token_env = \"VAULT_TOKEN\"\nmount = \"/\""), "providers[0].mount: empty"),
            (vault("token_env = \"VAULT_TOKEN\"\nnamespace = \"\""), "providers[0].namespace: empty"),
            (vault("token_env = \"NOPE\""), "providers[0].token_env: environment variable NOPE is not set"),
            (vault("token_env = \"EMPTY\""), "providers[0].token_env: environment variable EMPTY is set but empty"),
            (vault("token_env = \"VAULT_TOKEN\"\ntoken_file = \"/t\""), "providers[0].token_file: set only one of token_env, token_file and role_id (AppRole)"),
            (vault("token_file = \"/t\"\nrole_id = \"r\"\nsecret_id_file = \"/s\""), "providers[0].role_id: set only one of token_env, token_file and role_id (AppRole)"),
            (vault("role_id = \"r\""), "providers[0].secret_id_file: missing (required when role_id is set)"),
            (vault("secret_id_file = \"/s\""), "providers[0].role_id: missing (required when secret_id_file is set)"),
            (vault("role_id = \"$env://NOPE\"\nsecret_id_file = \"/s\""), "providers[0].role_id: environment variable NOPE is not set"),
            (vault("token_env = \"VAULT_TOKEN\"").replace("https://vault.example:8200/", "vault:8200"),
             "providers[0].address: \"vault:8200\" must start with http:// or https://"),
            (provider("version_stage = \"\""), "providers[0].version_stage: empty"),
            (provider("profile = \" \""), "providers[0].profile: empty"),
        ];
        for (text, want) in cases {
            match parse(&text) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => assert_eq!(e.to_string(), want, "config:\n{text}"),
            }
        }
        let msg = parse(&vault("token_env = \"VAULT_TOKEN\"\nmout = \"kv\""))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("providers[0].mout: unknown field `mout`"),
            "{msg}"
        );
    }

    #[test]
    fn credential_files() {
        let dir = std::env::temp_dir().join(format!("sidecar-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret-id");
        std::fs::write(&file, "  sid-text\n").unwrap();
        assert_eq!(
            read_credential_file("secret_id_file", &file)
                .unwrap()
                .expose(),
            "sid-text"
        );
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(
            read_credential_file("secret_id_file", &file)
                .unwrap_err()
                .to_string(),
            format!("secret_id_file: {file:?} is empty")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
