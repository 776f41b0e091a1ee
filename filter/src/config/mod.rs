//! Plugin configuration: strict raw types ([`raw`]) compiled once into validated [`Config`].

mod compiler;
mod error;
mod fields;
mod limit;
mod plugins;
pub use raw_config as raw;

pub use error::{ConfigError, ConfigErrorKind};

use compiler::Compiler;
use fields::{header_name, non_empty_field};
use limit::limit_options;
use plugins::plugin_set;

use crate::auth::basic::BasicAuthOptions;
use crate::auth::hmac::{HmacAlgorithm, HmacAuthOptions};
use crate::auth::jwt::{JwtAlgorithm, JwtAuthOptions, VerifyKey};
use crate::auth::key::KeyAuthOptions;
use crate::limit::key::KeySpec;
use crate::limit::{LimitOptions, Policy};
use raw::{RawConfig, RawConsumer, RawCredential, RawPluginSet};
use secret_ref::{extract_key, Reference, SecretRef, SecretValue};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Index of a `$secret://` reference in [`Config::refs`].
pub type RefId = usize;

/// The validated configuration, shared read-only by every request.
#[derive(Debug)]
pub struct Config {
    pub sidecar: Option<Sidecar>,
    pub refresh_interval: Duration,
    /// How long a resolved value stays in force without a fresh answer from the sidecar.
    pub max_stale: Duration,
    pub startup_wait: Duration,
    /// Whether the filter removes client copies of the identity headers itself (`false`: Envoy
    /// removes them before routing, see docs/DESIGN.md "Envoy wiring").
    pub strip_identity_headers: bool,
    /// Some credential has a `rotation_grace_s`.
    pub rotation_grace_used: bool,
    /// At most one early refresh per this interval and worker after a credential matched
    /// nobody (zero: never).
    pub miss_refresh_min_interval: Duration,
    pub consumers: Vec<Consumer>,
    /// Every credential of every consumer, flattened.
    pub credentials: Vec<Credential>,
    /// Distinct `$secret://` references, resolved by the sidecar.
    pub refs: Vec<RefName>,
    pub default_plugins: PluginSet,
    pub routes: HashMap<String, PluginSet>,
}

#[derive(Debug)]
pub struct Sidecar {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout: Duration,
    pub token: SecretValue,
}

#[derive(Debug)]
pub struct Consumer {
    pub username: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Credential {
    /// Index into [`Config::consumers`].
    pub consumer: usize,
    /// Its position in the consumer's `credentials` (see [`Credential::path`]).
    pub slot: usize,
    pub id: String,
    pub kind: CredentialKind,
    /// From then on (ms since the epoch) the credential matches nobody.
    pub expires_at_ms: Option<u64>,
    /// How long its previous value still matches after a rotation (0: not at all).
    pub rotation_grace_ms: u64,
}

#[derive(Debug)]
pub enum CredentialKind {
    KeyAuth {
        /// The key, or with `sha256` its SHA-256 digest in hex.
        key: Source,
        sha256: bool,
    },
    BasicAuth {
        username: String,
        password: Source,
    },
    JwtAuth {
        key: String,
        algorithm: JwtAlgorithm,
        /// The HMAC secret (HS*) or the PEM public key (others).
        material: Source,
        base64_secret: bool,
        grace_period_s: u64,
    },
    HmacAuth {
        key_id: String,
        secret_key: Source,
    },
}

impl Config {
    /// Whether any credential keeps its previous value for a while after a rotation (known
    /// at compile time: the request path asks).
    pub fn uses_rotation_grace(&self) -> bool {
        self.rotation_grace_used
    }
}

impl Credential {
    /// Where it was written, for log lines: `consumers[0].credentials[1]` (made when needed,
    /// not kept: a VM keeps its peak memory).
    pub fn path(&self) -> String {
        format!("consumers[{}].credentials[{}]", self.consumer, self.slot)
    }
}

impl CredentialKind {
    /// The sensitive field (the one that may be a reference).
    pub fn secret(&self) -> &Source {
        match self {
            CredentialKind::KeyAuth { key, .. } => key,
            CredentialKind::BasicAuth { password, .. } => password,
            CredentialKind::JwtAuth { material, .. } => material,
            CredentialKind::HmacAuth { secret_key, .. } => secret_key,
        }
    }

    /// The `$secret://` references this credential's fields use.
    pub fn ref_ids(&self) -> impl Iterator<Item = RefId> + '_ {
        match self.secret() {
            Source::Ref(id) => Some(*id),
            _ => None,
        }
        .into_iter()
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            CredentialKind::KeyAuth { .. } => "key-auth",
            CredentialKind::BasicAuth { .. } => "basic-auth",
            CredentialKind::JwtAuth { .. } => "jwt-auth",
            CredentialKind::HmacAuth { .. } => "hmac-auth",
        }
    }
}

/// A `$secret://` reference, kept as its text (what the sidecar is sent and log lines show):
/// one allocation, not a parsed reference's several (a VM keeps its peak memory).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefName(Box<str>);

impl RefName {
    pub fn new(r: &SecretRef) -> Self {
        RefName(r.to_string().into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RefName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a sensitive field's value comes from.
#[derive(Debug)]
pub enum Source {
    /// A plain value, or an `$env://` reference resolved at configure time.
    Value(SecretValue),
    /// A `$secret://` reference resolved through the sidecar.
    Ref(RefId),
    /// An `$env://` reference that could not be resolved: the credential is disabled.
    Unavailable(String),
}

/// The plugins enabled for a route, each with its options.
#[derive(Debug, Default, Clone)]
pub struct PluginSet {
    pub key_auth: Option<KeyAuthOptions>,
    pub basic_auth: Option<BasicAuthOptions>,
    pub jwt_auth: Option<JwtAuthOptions>,
    pub hmac_auth: Option<HmacAuthOptions>,
    pub limit_count: Option<LimitOptions>,
}

impl PluginSet {
    /// How many auth plugins the route enables.
    pub fn auth_count(&self) -> usize {
        usize::from(self.key_auth.is_some())
            + usize::from(self.basic_auth.is_some())
            + usize::from(self.jwt_auth.is_some())
            + usize::from(self.hmac_auth.is_some())
    }

    pub fn has_auth(&self) -> bool {
        self.auth_count() > 0
    }

    /// Whether a failed authentication falls back to an anonymous consumer (the first configured).
    pub fn anonymous(&self) -> Option<usize> {
        self.key_auth
            .as_ref()
            .and_then(|o| o.anonymous)
            .or(self.basic_auth.as_ref().and_then(|o| o.anonymous))
            .or(self.jwt_auth.as_ref().and_then(|o| o.anonymous))
            .or(self.hmac_auth.as_ref().and_then(|o| o.anonymous))
    }
}

/// A configuration that compiled, with warnings worth a log line (disabled credentials).
#[derive(Debug)]
pub struct Compiled {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Parses and validates the plugin configuration. `env` looks up the VM's environment variables.
pub fn compile(
    bytes: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Compiled, ConfigError> {
    compile_raw(parse(bytes)?, env)
}

/// The configuration's JSON read into its raw types, which own all they hold: the bytes can go
/// before [`compile_raw`] (a VM keeps its peak memory).
pub fn parse(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    raw::parse(bytes)
        .map_err(|e| ConfigError::new(e.path, ConfigErrorKind::Json(redact_value(e.message))))
}

/// Validates a parsed configuration.
pub fn compile_raw(
    raw: RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Compiled, ConfigError> {
    Compiler {
        env,
        refs: Vec::new(),
        ref_ids: HashMap::new(),
        warnings: Vec::new(),
        rotation_grace_s: 0,
    }
    .compile(raw)
}

/// A sensitive field given the wrong type must not end up in Envoy's log: a quoted value in a
/// type error (`invalid type: integer `123`, expected a string`, as serde wrote them) is dropped
/// and only its kind kept. `raw-config`'s reader names only the kind already; this stays as the
/// guard that keeps it so. Field and variant names (`unknown field `x``) are kept.
fn redact_value(message: String) -> String {
    if !(message.starts_with("invalid type:") || message.starts_with("invalid value:")) {
        return message;
    }
    let expected = message.find(", expected").unwrap_or(message.len());
    match message[..expected].find(['`', '"']) {
        Some(quote) => format!("{}{}", message[..quote].trim_end(), &message[expected..]),
        None => message,
    }
}

#[cfg(test)]
mod tests;
