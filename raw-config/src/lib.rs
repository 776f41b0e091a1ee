//! The filter's configuration as written by the operator: strict raw types, no validation
//! beyond shape (the filter's `config` module validates and compiles it), and [`parse`], which
//! names the field of an error. [`parse`] reads with `json-read` (module `read`); the serde
//! derives stay for [`parse_with_serde`], the oracle the tests and the fuzz target compare it
//! with (generic code that nothing in the filter instantiates, so not in its `.wasm`).

mod credential;
#[cfg(any(test, feature = "oracle"))]
pub mod oracle;
mod read;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A field that may hold a secret (a key, a password, a token): a plain value or a reference.
/// `Debug` shows references (they are addresses, not secrets) and hides plain values.
#[derive(Deserialize, PartialEq, Eq, Clone, Default)]
#[serde(transparent)]
pub struct RawSecret(pub String);

impl RawSecret {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a string that parses as a reference is shown.
        if matches!(secret_ref::parse(&self.0), Ok(Some(_))) {
            write!(f, "{:?}", self.0)
        } else {
            write!(f, "[redacted, {} bytes]", self.0.len())
        }
    }
}

fn default_refresh_interval_s() -> u64 {
    30
}
fn default_startup_wait_ms() -> u64 {
    5000
}
fn default_max_stale_s() -> u64 {
    3600
}
fn default_miss_refresh_min_interval_s() -> u64 {
    1
}
/// A list without spare capacity: serde grows a list of unknown length to at least 4 elements,
/// and a consumer usually has one credential (with 10,000 consumers that spare room was most of
/// the parsed configuration's memory, which a VM keeps: its memory never shrinks).
fn shrunk<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut list = Vec::<T>::deserialize(deserializer)?;
    list.shrink_to_fit();
    Ok(list)
}
fn default_authority() -> String {
    "secret-sidecar".to_string()
}
fn default_timeout_ms() -> u64 {
    10000
}
fn default_resolve_path() -> String {
    "/v1/resolve".to_string()
}
fn default_apikey() -> String {
    "apikey".to_string()
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub sidecar: Option<RawSidecar>,
    #[serde(default = "default_refresh_interval_s")]
    pub refresh_interval_s: u64,
    #[serde(default = "default_startup_wait_ms")]
    pub startup_wait_ms: u64,
    #[serde(default = "default_max_stale_s")]
    pub max_stale_s: u64,
    #[serde(default = "default_true")]
    pub strip_identity_headers: bool,
    #[serde(default)]
    pub rotation_grace_s: u64,
    #[serde(default = "default_miss_refresh_min_interval_s")]
    pub miss_refresh_min_interval_s: u64,
    #[serde(default)]
    pub consumers: Vec<RawConsumer>,
    #[serde(default)]
    pub plugins: RawPluginSet,
    #[serde(default)]
    pub routes: BTreeMap<String, RawPluginSet>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSidecar {
    pub cluster: String,
    #[serde(default = "default_authority")]
    pub authority: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    pub token: RawSecret,
    #[serde(default = "default_resolve_path")]
    pub path: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub username: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "shrunk")]
    pub credentials: Vec<RawCredential>,
}

/// One credential; read by `credential` (its `type` picks the variant).
#[derive(Debug, PartialEq)]
pub enum RawCredential {
    KeyAuth {
        id: String,
        key: Option<RawSecret>,
        /// The key's SHA-256, hex: the secret store need not hold the key itself.
        key_sha256: Option<RawSecret>,
        expires_at: Option<String>,
        rotation_grace_s: Option<u64>,
    },
    BasicAuth {
        id: String,
        username: String,
        password: RawSecret,
        expires_at: Option<String>,
        rotation_grace_s: Option<u64>,
    },
    JwtAuth {
        id: String,
        expires_at: Option<String>,
        rotation_grace_s: Option<u64>,
        key: String,
        secret: Option<RawSecret>,
        public_key: Option<RawSecret>,
        /// Default `HS256`.
        algorithm: String,
        base64_secret: bool,
        /// Accepted for APISIX compatibility (it sets the lifetime of tokens APISIX signs); unused.
        exp: Option<u64>,
        lifetime_grace_period: u64,
    },
    HmacAuth {
        id: String,
        key_id: String,
        secret_key: RawSecret,
        expires_at: Option<String>,
        rotation_grace_s: Option<u64>,
    },
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPluginSet {
    #[serde(rename = "key-auth")]
    pub key_auth: Option<RawKeyAuth>,
    #[serde(rename = "basic-auth")]
    pub basic_auth: Option<RawBasicAuth>,
    #[serde(rename = "jwt-auth")]
    pub jwt_auth: Option<RawJwtAuth>,
    #[serde(rename = "hmac-auth")]
    pub hmac_auth: Option<RawHmacAuth>,
    #[serde(rename = "limit-count")]
    pub limit_count: Option<RawLimitCount>,
}

fn default_key_type() -> String {
    "var".to_string()
}
fn default_limit_key() -> String {
    "remote_addr".to_string()
}
fn default_rejected_code() -> u16 {
    503
}
fn default_policy() -> String {
    "local".to_string()
}
fn default_true() -> bool {
    true
}
fn default_redis_port() -> u16 {
    6379
}
fn default_redis_timeout() -> u64 {
    1000
}

/// APISIX's limit-count options.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLimitCount {
    pub count: u64,
    pub time_window: u64,
    #[serde(default = "default_key_type")]
    pub key_type: String,
    #[serde(default = "default_limit_key")]
    pub key: String,
    #[serde(default = "default_rejected_code")]
    pub rejected_code: u16,
    pub rejected_msg: Option<String>,
    #[serde(default = "default_policy")]
    pub policy: String,
    #[serde(default = "default_true")]
    pub show_limit_quota_header: bool,
    pub group: Option<String>,
    #[serde(default)]
    pub allow_degradation: bool,
    pub redis_host: Option<String>,
    #[serde(default = "default_redis_port")]
    pub redis_port: u16,
    pub redis_username: Option<RawSecret>,
    pub redis_password: Option<RawSecret>,
    #[serde(default)]
    pub redis_database: u32,
    #[serde(default = "default_redis_timeout")]
    pub redis_timeout: u64,
    #[serde(default)]
    pub redis_ssl: bool,
    pub redis_cluster_nodes: Option<Vec<String>>,
    pub redis_cluster_name: Option<String>,
    /// Seconds between pushes of locally counted hits to Redis (redis policies only).
    pub sync_interval: Option<f64>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawKeyAuth {
    #[serde(default = "default_apikey")]
    pub header: String,
    #[serde(default = "default_apikey")]
    pub query: String,
    #[serde(default)]
    pub hide_credentials: bool,
    pub anonymous_consumer: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    #[serde(default)]
    pub hide_credentials: bool,
    pub anonymous_consumer: Option<String>,
}

fn default_jwt_header() -> String {
    "authorization".to_string()
}
fn default_jwt() -> String {
    "jwt".to_string()
}
fn default_key_claim_name() -> String {
    "key".to_string()
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawJwtAuth {
    #[serde(default = "default_jwt_header")]
    pub header: String,
    #[serde(default = "default_jwt")]
    pub query: String,
    #[serde(default = "default_jwt")]
    pub cookie: String,
    #[serde(default)]
    pub hide_credentials: bool,
    #[serde(default = "default_key_claim_name")]
    pub key_claim_name: String,
    pub claims_to_verify: Option<Vec<String>>,
    pub anonymous_consumer: Option<String>,
}

fn default_clock_skew() -> u64 {
    300
}
fn default_max_req_body_size() -> usize {
    1024 * 1024
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHmacAuth {
    pub allowed_algorithms: Option<Vec<String>>,
    #[serde(default = "default_clock_skew")]
    pub clock_skew: u64,
    pub signed_headers: Option<Vec<String>>,
    #[serde(default)]
    pub validate_request_body: bool,
    #[serde(default = "default_max_req_body_size")]
    pub max_req_body_size: usize,
    #[serde(default)]
    pub hide_credentials: bool,
    pub anonymous_consumer: Option<String>,
}

/// Why the configuration's JSON could not be read: where (`consumers[0].credentials[1].key`,
/// empty at the top) and serde's message, which may quote the offending value (the filter
/// redacts it before it is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub path: String,
    pub message: String,
}

/// The configuration's JSON read into its raw types, which own all they hold.
pub fn parse(bytes: &[u8]) -> Result<RawConfig, ParseError> {
    read::config(&mut json_read::Reader::from_slice(bytes)).map_err(read::Failure::into_parse_error)
}

/// [`parse`] as serde's derives read it (serde_json, serde_path_to_error): the tests' and fuzz
/// targets' oracle for the hand-written reader.
#[cfg(any(test, feature = "oracle"))]
pub fn parse_with_serde(bytes: &[u8]) -> Result<RawConfig, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| ParseError {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

#[cfg(test)]
mod tests;
