//! `POST /v1/limit` (docs/DESIGN.md §4). Requests are read strictly (unknown fields refused);
//! numbers are signed on the wire so that the sidecar can say what is wrong with a negative one.

use crate::code::ErrorCode;
use secret_ref::SecretValue;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `{"backend": {...}, "ops": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    pub backend: LimitBackend,
    pub ops: Vec<LimitOp>,
}

/// Which kind of Redis deployment holds the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitPolicy {
    Redis,
    RedisCluster,
}

impl LimitPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitPolicy::Redis => "redis",
            LimitPolicy::RedisCluster => "redis-cluster",
        }
    }
}

/// Where the counters live and how to log in. `redis`: `host`, `port`, `database`;
/// `redis-cluster`: `cluster_nodes` (`"host:port"`). Absent fields take the sidecar's defaults.
///
/// `username` / `password` are each a plain value or a `$secret://` reference the sidecar resolves
/// (the filter passes them through unresolved). `Debug` shows references and hides plain values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitBackend {
    pub policy: LimitPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::secret::opt"
    )]
    pub username: Option<SecretValue>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::secret::opt"
    )]
    pub password: Option<SecretValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_nodes: Option<Vec<String>>,
}

impl LimitBackend {
    /// A backend with only its policy set.
    pub fn new(policy: LimitPolicy) -> Self {
        LimitBackend {
            policy,
            host: None,
            port: None,
            database: None,
            username: None,
            password: None,
            timeout_ms: None,
            ssl: None,
            cluster_nodes: None,
        }
    }
}

/// A credential for `Debug`: a `$secret://` reference as is, a plain value hidden.
struct Credential<'a>(&'a Option<SecretValue>);

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("None"),
            // Only a string that parses as a reference is shown: a password that merely starts
            // like one stays hidden.
            Some(v) if matches!(secret_ref::parse(v.expose()), Ok(Some(_))) => {
                write!(f, "{:?}", v.expose())
            }
            Some(_) => f.write_str("[redacted]"),
        }
    }
}

impl fmt::Debug for LimitBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitBackend")
            .field("policy", &self.policy)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &Credential(&self.username))
            .field("password", &Credential(&self.password))
            .field("timeout_ms", &self.timeout_ms)
            .field("ssl", &self.ssl)
            .field("cluster_nodes", &self.cluster_nodes)
            .finish()
    }
}

/// One fixed-window counter update (`cost` absent: 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOp {
    pub key: String,
    pub limit: i64,
    pub window_s: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<i64>,
}

/// `200 {"results": [...]}`, one counter per op, in op order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitResponse {
    pub results: Vec<LimitCounter>,
}

/// The counter after an op: `remaining` may be negative (over the limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitCounter {
    pub remaining: i64,
    pub reset_s: i64,
}

/// `502` (`403` for `backend_not_allowed`): `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitFailure {
    pub error: LimitErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_request_round_trips() {
        let wire = json!({"backend": {"policy": "redis", "host": "127.0.0.1", "port": 6379, "database": 0,
                     "username": "$secret://aws/my-secrets-manager/redis/user",
                     "password": "$secret://aws/my-secrets-manager/redis/password",
                     "timeout_ms": 1000, "ssl": false, "cluster_nodes": []},
         "ops": [{"key": "limit-count:route:ip:127.0.0.1", "limit": 3, "window_s": 60, "cost": 1}]});
        let typed: LimitRequest = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(typed.backend.policy, LimitPolicy::Redis);
        assert_eq!(typed.backend.port, Some(6379));
        assert_eq!(serde_json::to_value(&typed).unwrap(), wire);

        let cluster = json!({"backend": {"policy": "redis-cluster", "cluster_nodes": ["a:1"]},
                             "ops": [{"key": "k", "limit": 1, "window_s": 1}]});
        let typed: LimitRequest = serde_json::from_value(cluster.clone()).unwrap();
        assert_eq!(typed.ops[0].cost, None);
        assert_eq!(typed.backend.policy, LimitPolicy::RedisCluster);
        assert_eq!(serde_json::to_value(&typed).unwrap(), cluster);
        assert!(serde_json::from_value::<LimitRequest>(
            json!({"backend": {"policy": "redis", "x": 1}, "ops": []})
        )
        .is_err());
        assert!(serde_json::from_value::<LimitRequest>(
            json!({"backend": {"policy": "memcached"}, "ops": []})
        )
        .is_err());
    }

    #[test]
    fn debug_hides_plain_credentials_only() {
        let mut b = LimitBackend::new(LimitPolicy::Redis);
        b.username = Some(SecretValue::new("$secret://aws/sm/redis/user"));
        b.password = Some(SecretValue::new("hunter2"));
        let shown = format!("{b:?}");
        assert!(shown.contains("$secret://aws/sm/redis/user"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        // a password that only starts like a reference is not one: hidden too
        b.password = Some(SecretValue::new("$secret://not-a-reference"));
        assert!(!format!("{b:?}").contains("not-a-reference"));
        b.password = Some(SecretValue::new("hunter2"));
        // the wire carries them as they are
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["password"], "hunter2");
    }

    #[test]
    fn answers_round_trip() {
        let ok = json!({"results": [{"remaining": -1, "reset_s": 60}]});
        let typed: LimitResponse = serde_json::from_value(ok.clone()).unwrap();
        assert_eq!(
            typed.results[0],
            LimitCounter {
                remaining: -1,
                reset_s: 60
            }
        );
        assert_eq!(serde_json::to_value(&typed).unwrap(), ok);
        let failed = json!({"error": {"code": "redis_unavailable", "message": "down"}});
        let typed: LimitFailure = serde_json::from_value(failed.clone()).unwrap();
        assert_eq!(typed.error.code, ErrorCode::RedisUnavailable);
        assert_eq!(serde_json::to_value(&typed).unwrap(), failed);
    }
}
