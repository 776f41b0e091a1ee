//! Compiling the raw configuration: consumers and their credentials (sensitive fields as
//! plain values, `$env://` values or `$secret://` references), the sidecar section, then the
//! plugin sets.

use super::*;

/// The longest `rotation_grace_s` (7 days): a previous value is a leaked one's way back in.
pub(super) const MAX_ROTATION_GRACE_S: u64 = 7 * 86_400;

fn grace_out_of_range(value: u64) -> ConfigErrorKind {
    ConfigErrorKind::OutOfRange {
        value,
        min: 0,
        max: MAX_ROTATION_GRACE_S,
        unit: "s",
    }
}

pub(super) struct Compiler<'a> {
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    /// The configuration's `rotation_grace_s` (credentials may override it).
    pub(super) rotation_grace_s: u64,
    pub(super) refs: Vec<RefName>,
    /// Distinct references by their hash (not a copy of each: a large config's peak memory):
    /// a hit is confirmed against `refs`.
    pub(super) ref_ids: HashMap<u64, RefId>,
    pub(super) warnings: Vec<String>,
}

impl Compiler<'_> {
    pub(super) fn compile(mut self, raw: RawConfig) -> Result<Compiled, ConfigError> {
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
        // Exact capacities: a VM keeps the peak of configuring (its memory never shrinks), and a
        // growing list can hold twice what it needs.
        if raw.miss_refresh_min_interval_s > 3600 {
            return Err(ConfigError::new(
                "miss_refresh_min_interval_s",
                ConfigErrorKind::OutOfRange {
                    value: raw.miss_refresh_min_interval_s,
                    min: 0,
                    max: 3600,
                    unit: "s",
                },
            ));
        }
        if raw.rotation_grace_s > MAX_ROTATION_GRACE_S {
            return Err(ConfigError::new(
                "rotation_grace_s",
                grace_out_of_range(raw.rotation_grace_s),
            ));
        }
        self.rotation_grace_s = raw.rotation_grace_s;
        let mut consumers = Vec::with_capacity(raw.consumers.len());
        let credential_count = raw.consumers.iter().map(|c| c.credentials.len()).sum();
        let mut credentials = Vec::with_capacity(credential_count);
        self.refs.reserve_exact(credential_count);
        for (ci, rc) in raw.consumers.into_iter().enumerate() {
            let RawConsumer {
                username,
                labels,
                credentials: raw_creds,
            } = rc;
            if username.is_empty() {
                return Err(ConfigError::new(
                    format!("consumers[{ci}].username"),
                    ConfigErrorKind::Empty,
                ));
            }
            for (li, (k, _)) in labels.iter().enumerate() {
                if k.is_empty() {
                    return Err(ConfigError::new(
                        format!("consumers[{ci}].labels[{li}]"),
                        ConfigErrorKind::Empty,
                    ));
                }
            }
            for (ki, cred) in raw_creds.into_iter().enumerate() {
                credentials.push(self.credential(ci, ki, cred)?);
            }
            consumers.push(Consumer { username, labels });
        }
        // Names that must be unique, checked once all are read, over the compiled lists (not
        // a copy of each name: a VM keeps its peak memory).
        let mut usernames: HashMap<&str, usize> = HashMap::with_capacity(consumers.len());
        for (ci, c) in consumers.iter().enumerate() {
            if usernames.insert(&c.username, ci).is_some() {
                return Err(ConfigError::new(
                    format!("consumers[{ci}].username"),
                    ConfigErrorKind::DuplicateUsername(c.username.clone()),
                ));
            }
        }
        let mut credential_ids: HashMap<&str, ()> = HashMap::with_capacity(credentials.len());
        for c in &credentials {
            if credential_ids.insert(&c.id, ()).is_some() {
                return Err(ConfigError::new(
                    format!("{}.id", c.path()),
                    ConfigErrorKind::DuplicateCredentialId(c.id.clone()),
                ));
            }
        }
        drop(credential_ids);
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
                strip_identity_headers: raw.strip_identity_headers,
                rotation_grace_used: credentials.iter().any(|c| c.rotation_grace_ms > 0),
                miss_refresh_min_interval: Duration::from_secs(raw.miss_refresh_min_interval_s),
                consumers,
                credentials,
                refs: {
                    let mut refs = self.refs;
                    refs.shrink_to_fit();
                    refs
                },
                default_plugins,
                routes,
            },
            warnings: self.warnings,
        })
    }

    fn credential(
        &mut self,
        consumer: usize,
        slot: usize,
        raw: RawCredential,
    ) -> Result<Credential, ConfigError> {
        let path = format!("consumers[{consumer}].credentials[{slot}]");
        let (id, expires_at, grace_s) = match &raw {
            RawCredential::KeyAuth {
                id,
                expires_at,
                rotation_grace_s,
                ..
            }
            | RawCredential::BasicAuth {
                id,
                expires_at,
                rotation_grace_s,
                ..
            }
            | RawCredential::JwtAuth {
                id,
                expires_at,
                rotation_grace_s,
                ..
            }
            | RawCredential::HmacAuth {
                id,
                expires_at,
                rotation_grace_s,
                ..
            } => (id.clone(), expires_at.clone(), *rotation_grace_s),
        };
        if id.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.id"),
                ConfigErrorKind::Empty,
            ));
        }
        let expires_at_ms = match expires_at {
            None => None,
            Some(t) => Some(sidecar_api::time::parse_rfc3339_ms(&t).ok_or_else(|| {
                ConfigError::new(
                    format!("{path}.expires_at"),
                    ConfigErrorKind::NotRfc3339(t.clone()),
                )
            })?),
        };
        let grace_s = grace_s.unwrap_or(self.rotation_grace_s);
        if grace_s > MAX_ROTATION_GRACE_S {
            return Err(ConfigError::new(
                format!("{path}.rotation_grace_s"),
                grace_out_of_range(grace_s),
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
            RawCredential::KeyAuth {
                key, key_sha256, ..
            } => match (key, key_sha256) {
                (Some(key), None) => CredentialKind::KeyAuth {
                    key: self.sensitive(&format!("{path}.key"), key.as_str())?,
                    sha256: false,
                },
                (None, Some(digest)) => {
                    let field = format!("{path}.key_sha256");
                    let key = self.sensitive(&field, digest.as_str())?;
                    // A literal digest is checked now; a referenced one when it resolves.
                    if let Source::Value(v) = &key {
                        if crate::auth::key::parse_sha256_hex(v.expose()).is_none() {
                            return Err(ConfigError::new(field, ConfigErrorKind::NotSha256Hex));
                        }
                    }
                    CredentialKind::KeyAuth { key, sha256: true }
                }
                _ => {
                    return Err(ConfigError::new(
                        path,
                        ConfigErrorKind::ExactlyOneOf("key", "key_sha256"),
                    ))
                }
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
            slot,
            id,
            kind,
            expires_at_ms,
            rotation_grace_ms: grace_s.saturating_mul(1000),
        })
    }

    /// A field that may hold a reference.
    fn sensitive(&mut self, path: &str, value: &str) -> Result<Source, ConfigError> {
        let reference = secret_ref::parse(value)
            .map_err(|e| ConfigError::new(path, ConfigErrorKind::Reference(e)))?;
        match reference {
            None if value.is_empty() => Err(ConfigError::new(path, ConfigErrorKind::Empty)),
            None => Ok(Source::Value(SecretValue::new(value))),
            Some(Reference::Secret(r)) => Ok(Source::Ref(self.ref_id(&r))),
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

    /// The id of reference `r`, added to `refs` if new.
    pub(super) fn ref_id(&mut self, r: &SecretRef) -> RefId {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let r = RefName::new(r);
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(&r);
        let same = |id: &RefId| self.refs.get(*id) == Some(&r);
        let known = match self.ref_ids.get(&hash) {
            Some(id) if same(id) => Some(*id),
            // Two references with one hash: look for this one the slow way.
            Some(_) => self.refs.iter().position(|known| *known == r),
            None => None,
        };
        known.unwrap_or_else(|| {
            let id = self.refs.len();
            self.ref_ids.entry(hash).or_insert(id);
            self.refs.push(r);
            id
        })
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

/// Two credentials of one type with the same plain key, username, JWT key or HMAC key id would
/// make the lookup ambiguous.
pub(super) fn check_plain_duplicates(credentials: &[Credential]) -> Result<(), ConfigError> {
    let mut seen: HashMap<(&str, &str), &str> = HashMap::new();
    for c in credentials {
        let (field, name) = match &c.kind {
            CredentialKind::KeyAuth {
                key: Source::Value(v),
                sha256: false,
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
            return Err(ConfigError::new(format!("{}.{field}", c.path()), kind));
        }
    }
    Ok(())
}
