//! Plugin configuration: strict raw types ([`raw`]) compiled once into validated [`Config`].

mod error;
pub mod raw;

pub use error::{ConfigError, ConfigErrorKind};

use raw::{RawConfig, RawConsumer, RawCredential, RawKeyAuth, RawPluginSet};
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
    pub startup_wait: Duration,
    pub consumers: Vec<Consumer>,
    /// Every credential of every consumer, flattened.
    pub credentials: Vec<Credential>,
    /// Distinct `$secret://` references, resolved by the sidecar.
    pub refs: Vec<SecretRef>,
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
    pub id: String,
    /// Where it was written, for log lines: `consumers[0].credentials[1]`.
    pub path: String,
    pub kind: CredentialKind,
}

#[derive(Debug)]
pub enum CredentialKind {
    KeyAuth { key: Source },
}

impl CredentialKind {
    /// The `$secret://` references this credential's fields use.
    pub fn ref_ids(&self) -> impl Iterator<Item = RefId> + '_ {
        let fields: [&Source; 1] = match self {
            CredentialKind::KeyAuth { key } => [key],
        };
        fields.into_iter().filter_map(|s| match s {
            Source::Ref(id) => Some(*id),
            _ => None,
        })
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
}

impl PluginSet {
    pub fn has_auth(&self) -> bool {
        self.key_auth.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct KeyAuthOptions {
    /// Lowercase header name.
    pub header: String,
    pub query: String,
    pub hide_credentials: bool,
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
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(path, ConfigErrorKind::Syntax(e.into_inner().to_string()))
    })?;
    Compiler {
        env,
        refs: Vec::new(),
        ref_ids: HashMap::new(),
        warnings: Vec::new(),
    }
    .compile(raw)
}

struct Compiler<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    refs: Vec<SecretRef>,
    ref_ids: HashMap<SecretRef, RefId>,
    warnings: Vec<String>,
}

impl Compiler<'_> {
    fn compile(mut self, raw: RawConfig) -> Result<Compiled, ConfigError> {
        if raw.refresh_interval_s < 1 {
            return Err(ConfigError::new(
                "refresh_interval_s",
                ConfigErrorKind::TooSmall { min: 1 },
            ));
        }
        let mut consumers = Vec::with_capacity(raw.consumers.len());
        let mut credentials = Vec::new();
        let mut usernames = HashMap::new();
        let mut credential_ids = HashMap::new();
        for (ci, rc) in raw.consumers.into_iter().enumerate() {
            let base = format!("consumers[{ci}]");
            let RawConsumer {
                username,
                labels,
                credentials: raw_creds,
            } = rc;
            if username.is_empty() {
                return Err(ConfigError::new(
                    format!("{base}.username"),
                    ConfigErrorKind::Empty,
                ));
            }
            if usernames.insert(username.clone(), ci).is_some() {
                return Err(ConfigError::new(
                    format!("{base}.username"),
                    ConfigErrorKind::DuplicateUsername(username),
                ));
            }
            for (li, (k, _)) in labels.iter().enumerate() {
                if k.is_empty() {
                    return Err(ConfigError::new(
                        format!("{base}.labels[{li}]"),
                        ConfigErrorKind::Empty,
                    ));
                }
            }
            for (ki, cred) in raw_creds.into_iter().enumerate() {
                let path = format!("{base}.credentials[{ki}]");
                let credential = self.credential(ci, path, cred)?;
                if credential_ids
                    .insert(credential.id.clone(), credentials.len())
                    .is_some()
                {
                    return Err(ConfigError::new(
                        format!("{}.id", credential.path),
                        ConfigErrorKind::DuplicateCredentialId(credential.id),
                    ));
                }
                credentials.push(credential);
            }
            consumers.push(Consumer { username, labels });
        }
        check_plain_duplicates(&credentials)?;

        let sidecar = match raw.sidecar {
            None if !self.refs.is_empty() => {
                return Err(ConfigError::new(
                    "sidecar",
                    ConfigErrorKind::SidecarRequired,
                ))
            }
            None => None,
            Some(s) => Some(self.sidecar(s)?),
        };
        let default_plugins = plugin_set("plugins", raw.plugins)?;
        let mut routes = HashMap::with_capacity(raw.routes.len());
        for (name, set) in raw.routes {
            let compiled = plugin_set(&format!("routes.{name}"), set)?;
            routes.insert(name, compiled);
        }
        Ok(Compiled {
            config: Config {
                sidecar,
                refresh_interval: Duration::from_secs(raw.refresh_interval_s),
                startup_wait: Duration::from_millis(raw.startup_wait_ms),
                consumers,
                credentials,
                refs: self.refs,
                default_plugins,
                routes,
            },
            warnings: self.warnings,
        })
    }

    fn credential(
        &mut self,
        consumer: usize,
        path: String,
        raw: RawCredential,
    ) -> Result<Credential, ConfigError> {
        match raw {
            RawCredential::KeyAuth { id, key } => {
                if id.is_empty() {
                    return Err(ConfigError::new(
                        format!("{path}.id"),
                        ConfigErrorKind::Empty,
                    ));
                }
                let key = self.sensitive(&format!("{path}.key"), &key)?;
                Ok(Credential {
                    consumer,
                    id,
                    path,
                    kind: CredentialKind::KeyAuth { key },
                })
            }
        }
    }

    /// A field that may hold a reference.
    fn sensitive(&mut self, path: &str, value: &str) -> Result<Source, ConfigError> {
        let reference = secret_ref::parse(value)
            .map_err(|e| ConfigError::new(path, ConfigErrorKind::Reference(e)))?;
        match reference {
            None if value.is_empty() => Err(ConfigError::new(path, ConfigErrorKind::Empty)),
            None => Ok(Source::Value(SecretValue::new(value))),
            Some(Reference::Secret(r)) => {
                let next = self.refs.len();
                let id = *self.ref_ids.entry(r.clone()).or_insert(next);
                if id == next {
                    self.refs.push(r);
                }
                Ok(Source::Ref(id))
            }
            Some(Reference::Env(e)) => match self.env_value(path, &e) {
                Ok(v) if v.expose().is_empty() => {
                    self.warnings
                        .push(format!("{path}: {e} is empty; the credential is disabled"));
                    Ok(Source::Unavailable(format!("{e} is empty")))
                }
                Ok(v) => Ok(Source::Value(v)),
                Err(err) => {
                    self.warnings
                        .push(format!("{path}: {}; the credential is disabled", err.kind));
                    Ok(Source::Unavailable(err.kind.to_string()))
                }
            },
        }
    }

    fn env_value(&self, path: &str, e: &secret_ref::EnvRef) -> Result<SecretValue, ConfigError> {
        let raw = (self.env)(&e.name)
            .ok_or_else(|| ConfigError::new(path, ConfigErrorKind::EnvNotSet(e.name.clone())))?;
        extract_key(&raw, e.key.as_deref()).map_err(|error| {
            ConfigError::new(
                path,
                ConfigErrorKind::EnvKey {
                    name: e.name.clone(),
                    error,
                },
            )
        })
    }

    fn sidecar(&mut self, raw: raw::RawSidecar) -> Result<Sidecar, ConfigError> {
        if raw.cluster.is_empty() {
            return Err(ConfigError::new("sidecar.cluster", ConfigErrorKind::Empty));
        }
        if raw.authority.is_empty() {
            return Err(ConfigError::new(
                "sidecar.authority",
                ConfigErrorKind::Empty,
            ));
        }
        if !raw.path.starts_with('/') {
            return Err(ConfigError::new(
                "sidecar.path",
                ConfigErrorKind::Syntax(format!("\"{}\" must start with '/'", raw.path)),
            ));
        }
        if raw.timeout_ms < 1 {
            return Err(ConfigError::new(
                "sidecar.timeout_ms",
                ConfigErrorKind::TooSmall { min: 1 },
            ));
        }
        let token = match secret_ref::parse(&raw.token) {
            Err(e) => {
                return Err(ConfigError::new(
                    "sidecar.token",
                    ConfigErrorKind::Reference(e),
                ))
            }
            Ok(Some(Reference::Secret(_))) => {
                return Err(ConfigError::new(
                    "sidecar.token",
                    ConfigErrorKind::SecretNotAllowed,
                ))
            }
            Ok(Some(Reference::Env(e))) => self.env_value("sidecar.token", &e)?,
            Ok(None) => SecretValue::new(raw.token),
        };
        if token.expose().is_empty() {
            return Err(ConfigError::new("sidecar.token", ConfigErrorKind::Empty));
        }
        Ok(Sidecar {
            cluster: raw.cluster,
            authority: raw.authority,
            path: raw.path,
            timeout: Duration::from_millis(raw.timeout_ms),
            token,
        })
    }
}

fn plugin_set(path: &str, raw: RawPluginSet) -> Result<PluginSet, ConfigError> {
    Ok(PluginSet {
        key_auth: raw
            .key_auth
            .map(|k| key_auth_options(&format!("{path}.key-auth"), k))
            .transpose()?,
    })
}

fn key_auth_options(path: &str, raw: RawKeyAuth) -> Result<KeyAuthOptions, ConfigError> {
    let header = raw.header.to_ascii_lowercase();
    if !is_header_name(&header) {
        return Err(ConfigError::new(
            format!("{path}.header"),
            ConfigErrorKind::InvalidHeaderName(raw.header),
        ));
    }
    if raw.query.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.query"),
            ConfigErrorKind::Empty,
        ));
    }
    Ok(KeyAuthOptions {
        header,
        query: raw.query,
        hide_credentials: raw.hide_credentials,
    })
}

/// RFC 9110 token characters, not starting with ':' (pseudo-headers are not credentials).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Two credentials of one type with the same plain value would make the lookup ambiguous.
fn check_plain_duplicates(credentials: &[Credential]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for c in credentials {
        let CredentialKind::KeyAuth {
            key: Source::Value(v),
        } = &c.kind
        else {
            continue;
        };
        if let Some(other) = seen.insert(v.expose(), &c.id) {
            return Err(ConfigError::new(
                format!("{}.key", c.path),
                ConfigErrorKind::DuplicateKey {
                    other: other.to_string(),
                },
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
