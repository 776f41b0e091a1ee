//! Plugin configuration: strict raw types ([`raw`]) compiled once into validated [`Config`].

mod error;
pub mod raw;

pub use error::{ConfigError, ConfigErrorKind};

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
    KeyAuth {
        key: Source,
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

impl CredentialKind {
    /// The sensitive field (the one that may be a reference).
    pub fn secret(&self) -> &Source {
        match self {
            CredentialKind::KeyAuth { key } => key,
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
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(
            path,
            ConfigErrorKind::Json(redact_value(e.into_inner().to_string())),
        )
    })?;
    Compiler {
        env,
        refs: Vec::new(),
        ref_ids: HashMap::new(),
        warnings: Vec::new(),
    }
    .compile(raw)
}

/// serde quotes the offending value in type errors (`invalid type: integer `123`, expected a
/// string`); a sensitive field given the wrong type must not end up in Envoy's log, so the value
/// is dropped and only its kind kept. Field and variant names (`unknown field `x``) are kept.
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
        // Values must be able to outlive one refresh, or every credential would blink out.
        if raw.max_stale_s <= raw.refresh_interval_s {
            return Err(ConfigError::new(
                "max_stale_s",
                ConfigErrorKind::TooSmall {
                    min: raw.refresh_interval_s.saturating_add(1),
                },
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
        let mut groups = HashMap::new();
        let default_plugins =
            plugin_set("plugins", "default", raw.plugins, &usernames, &mut groups)?;
        let mut routes = HashMap::with_capacity(raw.routes.len());
        for (name, set) in raw.routes {
            let path = format!("routes.{name}");
            let compiled = plugin_set(
                &path,
                &format!("route:{name}"),
                set,
                &usernames,
                &mut groups,
            )?;
            routes.insert(name, compiled);
        }
        // Redis counters are kept by the sidecar: without one, every request would fail over.
        if sidecar.is_none() {
            let redis = std::iter::once(("plugins", &default_plugins))
                .chain(routes.iter().map(|(n, p)| (n.as_str(), p)))
                .find(|(_, p)| {
                    p.limit_count
                        .as_ref()
                        .is_some_and(|l| matches!(l.policy, Policy::Redis { .. }))
                });
            if let Some((name, _)) = redis {
                let path = if name == "plugins" {
                    "plugins.limit-count.policy".to_string()
                } else {
                    format!("routes.{name}.limit-count.policy")
                };
                return Err(ConfigError::new(path, ConfigErrorKind::SidecarRequired));
            }
        }
        Ok(Compiled {
            config: Config {
                sidecar,
                refresh_interval: Duration::from_secs(raw.refresh_interval_s),
                max_stale: Duration::from_secs(raw.max_stale_s),
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
        let id = match &raw {
            RawCredential::KeyAuth { id, .. }
            | RawCredential::BasicAuth { id, .. }
            | RawCredential::JwtAuth { id, .. }
            | RawCredential::HmacAuth { id, .. } => id.clone(),
        };
        if id.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.id"),
                ConfigErrorKind::Empty,
            ));
        }
        let non_empty = |field: &str, value: String| {
            if value.is_empty() {
                Err(ConfigError::new(
                    format!("{path}.{field}"),
                    ConfigErrorKind::Empty,
                ))
            } else {
                Ok(value)
            }
        };
        let kind = match raw {
            RawCredential::KeyAuth { key, .. } => CredentialKind::KeyAuth {
                key: self.sensitive(&format!("{path}.key"), key.as_str())?,
            },
            RawCredential::BasicAuth {
                username, password, ..
            } => CredentialKind::BasicAuth {
                username: non_empty("username", username)?,
                password: self.sensitive(&format!("{path}.password"), password.as_str())?,
            },
            RawCredential::HmacAuth {
                key_id, secret_key, ..
            } => CredentialKind::HmacAuth {
                key_id: non_empty("key_id", key_id)?,
                secret_key: self.sensitive(&format!("{path}.secret_key"), secret_key.as_str())?,
            },
            RawCredential::JwtAuth {
                key,
                secret,
                public_key,
                algorithm,
                base64_secret,
                exp: _,
                lifetime_grace_period,
                ..
            } => {
                let key = non_empty("key", key)?;
                let algorithm: JwtAlgorithm = algorithm.parse().map_err(|_| {
                    ConfigError::new(
                        format!("{path}.algorithm"),
                        ConfigErrorKind::Unknown {
                            what: "algorithm",
                            given: algorithm.clone(),
                            expected: format!("one of {}", JwtAlgorithm::names().join(", ")),
                        },
                    )
                })?;
                let (field, value) = match (algorithm.is_hmac(), secret, public_key) {
                    (true, Some(s), _) => ("secret", s),
                    (false, _, Some(k)) => ("public_key", k),
                    (true, None, _) => {
                        return Err(ConfigError::new(
                            format!("{path}.secret"),
                            ConfigErrorKind::Required {
                                when: format!("for {algorithm}"),
                            },
                        ))
                    }
                    (false, _, None) => {
                        return Err(ConfigError::new(
                            format!("{path}.public_key"),
                            ConfigErrorKind::Required {
                                when: format!("for {algorithm}"),
                            },
                        ))
                    }
                };
                let field_path = format!("{path}.{field}");
                let material = self.sensitive(&field_path, value.as_str())?;
                // A literal key is checked now; a referenced one when it resolves.
                if let Source::Value(v) = &material {
                    VerifyKey::new(algorithm, v.expose(), base64_secret)
                        .map_err(|e| ConfigError::new(field_path, ConfigErrorKind::JwtKey(e)))?;
                }
                CredentialKind::JwtAuth {
                    key,
                    algorithm,
                    material,
                    base64_secret,
                    grace_period_s: lifetime_grace_period,
                }
            }
        };
        Ok(Credential {
            consumer,
            id,
            path,
            kind,
        })
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
                ConfigErrorKind::NotAbsolutePath(raw.path.clone()),
            ));
        }
        if raw.timeout_ms < 1 {
            return Err(ConfigError::new(
                "sidecar.timeout_ms",
                ConfigErrorKind::TooSmall { min: 1 },
            ));
        }
        let token = match secret_ref::parse(raw.token.as_str()) {
            Err(e) => {
                return Err(ConfigError::new(
                    "sidecar.token",
                    ConfigErrorKind::Reference(e),
                ))
            }
            // A plain token would be readable by anyone with Envoy's /config_dump.
            Ok(Some(Reference::Secret(_)) | None) => {
                return Err(ConfigError::new(
                    "sidecar.token",
                    ConfigErrorKind::TokenNotFromEnv,
                ))
            }
            Ok(Some(Reference::Env(e))) => self.env_value("sidecar.token", &e)?,
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

fn plugin_set(
    path: &str,
    scope: &str,
    raw: RawPluginSet,
    usernames: &HashMap<String, usize>,
    groups: &mut HashMap<String, (String, raw::RawLimitCount)>,
) -> Result<PluginSet, ConfigError> {
    let anonymous = |plugin: &str, name: Option<String>| -> Result<Option<usize>, ConfigError> {
        name.map(|n| {
            usernames.get(&n).copied().ok_or_else(|| {
                ConfigError::new(
                    format!("{path}.{plugin}.anonymous_consumer"),
                    ConfigErrorKind::UnknownConsumer(n),
                )
            })
        })
        .transpose()
    };
    let key_auth = match raw.key_auth {
        None => None,
        Some(k) => {
            let p = format!("{path}.key-auth");
            Some(KeyAuthOptions {
                header: header_name(&format!("{p}.header"), &k.header)?,
                query: non_empty_field(&format!("{p}.query"), k.query)?,
                hide_credentials: k.hide_credentials,
                anonymous: anonymous("key-auth", k.anonymous_consumer)?,
            })
        }
    };
    let basic_auth = match raw.basic_auth {
        None => None,
        Some(b) => Some(BasicAuthOptions {
            hide_credentials: b.hide_credentials,
            anonymous: anonymous("basic-auth", b.anonymous_consumer)?,
        }),
    };
    let jwt_auth = match raw.jwt_auth {
        None => None,
        Some(j) => {
            let p = format!("{path}.jwt-auth");
            let (mut verify_exp, mut verify_nbf) = (true, true);
            if let Some(claims) = j.claims_to_verify {
                (verify_exp, verify_nbf) = (false, false);
                for (i, c) in claims.iter().enumerate() {
                    match c.as_str() {
                        "exp" => verify_exp = true,
                        "nbf" => verify_nbf = true,
                        other => {
                            return Err(ConfigError::new(
                                format!("{p}.claims_to_verify[{i}]"),
                                ConfigErrorKind::Unknown {
                                    what: "claim",
                                    given: other.to_string(),
                                    expected: "\"exp\" or \"nbf\"".into(),
                                },
                            ))
                        }
                    }
                }
            }
            Some(JwtAuthOptions {
                header: header_name(&format!("{p}.header"), &j.header)?,
                query: non_empty_field(&format!("{p}.query"), j.query)?,
                cookie: non_empty_field(&format!("{p}.cookie"), j.cookie)?,
                hide_credentials: j.hide_credentials,
                key_claim_name: non_empty_field(&format!("{p}.key_claim_name"), j.key_claim_name)?,
                verify_exp,
                verify_nbf,
                anonymous: anonymous("jwt-auth", j.anonymous_consumer)?,
            })
        }
    };
    let hmac_auth = match raw.hmac_auth {
        None => None,
        Some(h) => {
            let p = format!("{path}.hmac-auth");
            let allowed_algorithms = match h.allowed_algorithms {
                None => HmacAlgorithm::ALL.to_vec(),
                Some(list) if list.is_empty() => {
                    return Err(ConfigError::new(
                        format!("{p}.allowed_algorithms"),
                        ConfigErrorKind::Empty,
                    ))
                }
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        a.parse().map_err(|_| {
                            ConfigError::new(
                                format!("{p}.allowed_algorithms[{i}]"),
                                ConfigErrorKind::Unknown {
                                    what: "algorithm",
                                    given: a.clone(),
                                    expected: "hmac-sha1, hmac-sha256 or hmac-sha512".into(),
                                },
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            if h.clock_skew < 1 {
                return Err(ConfigError::new(
                    format!("{p}.clock_skew"),
                    ConfigErrorKind::TooSmall { min: 1 },
                ));
            }
            let signed_headers = h
                .signed_headers
                .unwrap_or_else(|| vec!["date".to_string()])
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let lower = name.to_ascii_lowercase();
                    if lower == "@request-target" {
                        Ok(lower)
                    } else {
                        header_name(&format!("{p}.signed_headers[{i}]"), name)
                    }
                })
                .collect::<Result<_, _>>()?;
            Some(HmacAuthOptions {
                allowed_algorithms,
                clock_skew_s: h.clock_skew,
                signed_headers,
                validate_request_body: h.validate_request_body,
                max_req_body_size: h.max_req_body_size,
                hide_credentials: h.hide_credentials,
                anonymous: anonymous("hmac-auth", h.anonymous_consumer)?,
            })
        }
    };
    let limit_count = match raw.limit_count {
        None => None,
        Some(l) => Some(limit_options(
            &format!("{path}.limit-count"),
            scope,
            l,
            groups,
        )?),
    };
    Ok(PluginSet {
        key_auth,
        basic_auth,
        jwt_auth,
        hmac_auth,
        limit_count,
    })
}

fn limit_options(
    p: &str,
    scope: &str,
    l: raw::RawLimitCount,
    groups: &mut HashMap<String, (String, raw::RawLimitCount)>,
) -> Result<LimitOptions, ConfigError> {
    let err = |field: &str, kind: ConfigErrorKind| ConfigError::new(format!("{p}.{field}"), kind);
    if l.count < 1 {
        return Err(err("count", ConfigErrorKind::TooSmall { min: 1 }));
    }
    if l.time_window < 1 {
        return Err(err("time_window", ConfigErrorKind::TooSmall { min: 1 }));
    }
    if !(200..=599).contains(&l.rejected_code) {
        return Err(err(
            "rejected_code",
            ConfigErrorKind::NotAnHttpStatus(l.rejected_code),
        ));
    }
    let key = KeySpec::parse(&l.key_type, &l.key).map_err(|e| match e {
        crate::limit::key::KeyError::UnknownKeyType(_) => {
            err("key_type", ConfigErrorKind::LimitKey(e))
        }
        _ => err("key", ConfigErrorKind::LimitKey(e)),
    })?;
    let credential = |field: &str, v: &Option<raw::RawSecret>| -> Result<(), ConfigError> {
        match v.as_ref().map(|v| secret_ref::parse(v.as_str())) {
            Some(Err(e)) => Err(err(field, ConfigErrorKind::Reference(e))),
            Some(Ok(Some(secret_ref::Reference::Env(_)))) => {
                Err(err(field, ConfigErrorKind::EnvNotAllowed))
            }
            _ => Ok(()),
        }
    };
    if !(1..=60_000).contains(&l.redis_timeout) {
        return Err(err(
            "redis_timeout",
            ConfigErrorKind::OutOfRange {
                value: l.redis_timeout,
                min: 1,
                max: 60_000,
                unit: " ms",
            },
        ));
    }
    credential("redis_username", &l.redis_username)?;
    credential("redis_password", &l.redis_password)?;
    let sync_interval = match l.sync_interval {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && l.policy != "local" => {
            Some(Duration::from_secs_f64(s.min(3600.0)))
        }
        Some(_) if l.policy == "local" => {
            return Err(err("sync_interval", ConfigErrorKind::OnlyForRedis))
        }
        Some(s) => {
            return Err(err(
                "sync_interval",
                ConfigErrorKind::NotPositiveSeconds(s.to_string()),
            ))
        }
    };
    let backend = |policy| crate::limit::LimitBackend {
        database: Some(i64::from(l.redis_database)),
        timeout_ms: Some(i64::try_from(l.redis_timeout).unwrap_or(i64::MAX)),
        ssl: Some(l.redis_ssl),
        username: l
            .redis_username
            .as_ref()
            .map(|v| SecretValue::new(v.as_str())),
        password: l
            .redis_password
            .as_ref()
            .map(|v| SecretValue::new(v.as_str())),
        ..crate::limit::LimitBackend::new(policy)
    };
    let policy = match l.policy.as_str() {
        "local" => Policy::Local,
        "redis" => {
            let host = l
                .redis_host
                .clone()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    err(
                        "redis_host",
                        ConfigErrorKind::Required {
                            when: "with policy \"redis\"".into(),
                        },
                    )
                })?;
            Policy::Redis {
                backend: crate::limit::LimitBackend {
                    host: Some(host),
                    port: Some(i64::from(l.redis_port)),
                    ..backend(crate::limit::LimitPolicy::Redis)
                },
                sync_interval,
                timeout: Duration::from_millis(l.redis_timeout),
            }
        }
        "redis-cluster" => {
            let nodes = l.redis_cluster_nodes.clone().unwrap_or_default();
            if nodes.is_empty() {
                return Err(err(
                    "redis_cluster_nodes",
                    ConfigErrorKind::Required {
                        when: "with policy \"redis-cluster\"".into(),
                    },
                ));
            }
            Policy::Redis {
                backend: crate::limit::LimitBackend {
                    cluster_nodes: Some(nodes),
                    ..backend(crate::limit::LimitPolicy::RedisCluster)
                },
                sync_interval,
                timeout: Duration::from_millis(l.redis_timeout),
            }
        }
        other => {
            return Err(err(
                "policy",
                ConfigErrorKind::Unknown {
                    what: "policy",
                    given: other.to_string(),
                    expected: "local, redis or redis-cluster".into(),
                },
            ))
        }
    };
    let scope = match &l.group {
        Some(g) if g.is_empty() => return Err(err("group", ConfigErrorKind::Empty)),
        Some(g) => {
            if let Some((other, first)) = groups.get(g) {
                if *first != l {
                    return Err(err(
                        "group",
                        ConfigErrorKind::GroupDiffers {
                            group: g.clone(),
                            first: other.clone(),
                        },
                    ));
                }
            }
            format!("group:{g}")
        }
        None => scope.to_string(),
    };
    let options = LimitOptions {
        count: l.count,
        window_s: l.time_window,
        key,
        rejected_code: l.rejected_code,
        rejected_msg: l.rejected_msg.clone(),
        show_limit_quota_header: l.show_limit_quota_header,
        scope,
        policy,
        allow_degradation: l.allow_degradation,
    };
    if let Some(g) = l.group.clone() {
        groups.entry(g).or_insert_with(|| (p.to_string(), l));
    }
    Ok(options)
}

fn non_empty_field(path: &str, value: String) -> Result<String, ConfigError> {
    if value.is_empty() {
        Err(ConfigError::new(path, ConfigErrorKind::Empty))
    } else {
        Ok(value)
    }
}

/// A valid header name, lowercased.
fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    if is_header_name(&lower) {
        Ok(lower)
    } else {
        Err(ConfigError::new(
            path,
            ConfigErrorKind::InvalidHeaderName(name.to_string()),
        ))
    }
}

/// RFC 9110 token characters, not starting with ':' (pseudo-headers are not credentials).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Two credentials of one type with the same plain key, username, JWT key or HMAC key id would
/// make the lookup ambiguous.
fn check_plain_duplicates(credentials: &[Credential]) -> Result<(), ConfigError> {
    let mut seen: HashMap<(&str, &str), &str> = HashMap::new();
    for c in credentials {
        let (field, name) = match &c.kind {
            CredentialKind::KeyAuth {
                key: Source::Value(v),
            } => ("key", v.expose()),
            CredentialKind::KeyAuth { .. } => continue,
            CredentialKind::BasicAuth { username, .. } => ("username", username.as_str()),
            CredentialKind::JwtAuth { key, .. } => ("key", key.as_str()),
            CredentialKind::HmacAuth { key_id, .. } => ("key_id", key_id.as_str()),
        };
        if let Some(other) = seen.insert((c.kind.type_name(), name), &c.id) {
            let kind = if field == "key" && matches!(c.kind, CredentialKind::KeyAuth { .. }) {
                ConfigErrorKind::DuplicateKey {
                    other: other.to_string(),
                }
            } else {
                ConfigErrorKind::DuplicateName {
                    other: other.to_string(),
                }
            };
            return Err(ConfigError::new(format!("{}.{field}", c.path), kind));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
