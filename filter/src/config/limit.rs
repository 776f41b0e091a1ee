//! limit-count's options, validated, with the Redis backend the sidecar is asked to use.

use super::*;

pub(super) fn limit_options(
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
                ConfigErrorKind::NotPositiveSeconds(seconds_text(s)),
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

/// A number of seconds as the operator wrote it, to the millisecond (`-1`, `-0.25`), without
/// `f64`'s formatting code (about 20 KB of the `.wasm`, issue #9).
fn seconds_text(s: f64) -> String {
    let sign = if s < 0.0 { "-" } else { "" };
    // Saturating: any huge value prints as the largest u64 of milliseconds.
    let ms = (s.abs() * 1000.0).round() as u64;
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let frac = format!("{frac:03}");
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}
