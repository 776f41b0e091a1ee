//! Rate-limit counters in Redis for the filter's limit-count plugin (docs/DESIGN.md, section 4):
//! the request format ([`request`]), Redis connections and the counter script ([`store`]), and
//! here the glue: resolve the backend's credentials, run the ops, say what went wrong.

pub mod request;
pub mod store;

use secret_ref::SecretValue;
use sidecar_api::ErrorCode;

use crate::config::LimitConfig;
use crate::resolve::{Resolution, Resolver};

pub use request::{parse, LimitRequest, RequestError};
pub use store::{Counter, Login, Store, StoreError};

use request::{Backend, Credential, Target};

/// Why `/v1/limit` failed (answered `502 {"error": {"code", "message"}}`). Messages name the
/// backend and the cause, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{backend} unavailable: {detail}")]
    Unavailable { backend: String, detail: String },
    #[error("{backend} refused the login ({detail}); check backend.username / backend.password and the Redis ACL")]
    AuthFailed { backend: String, detail: String },
    #[error("{backend} answered an error: {detail}")]
    Redis { backend: String, detail: String },
    /// The request names a Redis the sidecar's config does not list (answered `403`).
    #[error("{what} is not allowed: list it in the sidecar's [limit] {setting} setting to use it")]
    BackendNotAllowed {
        /// `redis 10.0.0.9:6379` or `redis-cluster node 10.0.0.9:7000`; never a credential.
        what: String,
        setting: &'static str,
    },
    #[error("{field}: reference {reference:?} did not resolve: {code}: {message}")]
    SecretUnresolved {
        field: &'static str,
        reference: String,
        code: ErrorCode,
        message: String,
    },
}

impl LimitError {
    /// The error code on the wire (docs/DESIGN.md, section 4): the one mapping of these errors
    /// to the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            LimitError::Unavailable { .. } => ErrorCode::RedisUnavailable,
            LimitError::AuthFailed { .. } => ErrorCode::RedisAuthFailed,
            LimitError::Redis { .. } => ErrorCode::RedisError,
            LimitError::SecretUnresolved { .. } => ErrorCode::SecretUnresolved,
            LimitError::BackendNotAllowed { .. } => ErrorCode::BackendNotAllowed,
        }
    }

    fn from_store(backend: &Backend, e: StoreError) -> Self {
        let backend = backend.to_string();
        match e {
            StoreError::Unavailable(detail) => LimitError::Unavailable { backend, detail },
            StoreError::AuthFailed(detail) => LimitError::AuthFailed { backend, detail },
            StoreError::Redis(detail) => LimitError::Redis { backend, detail },
        }
    }
}

/// Whether the sidecar's config lists `target`: a single server must be in `redis`; a
/// cluster's nodes must all be in one entry of `redis_clusters` (the nodes the cluster itself
/// announces are then trusted as part of it).
pub fn check_allowed(allowed: &LimitConfig, target: &Target) -> Result<(), LimitError> {
    match target {
        Target::Single { host, port, .. } => {
            if allowed.redis.iter().any(|a| a.matches(host, *port)) {
                return Ok(());
            }
            Err(LimitError::BackendNotAllowed {
                what: format!("redis {}", host_port(host, *port)),
                setting: "redis",
            })
        }
        Target::Cluster { nodes } => {
            let in_cluster = |cluster: &Vec<crate::config::AllowedAddr>,
                              (host, port): &(String, u16)| {
                cluster.iter().any(|a| a.matches(host, *port))
            };
            if allowed
                .redis_clusters
                .iter()
                .any(|cluster| nodes.iter().all(|node| in_cluster(cluster, node)))
            {
                return Ok(());
            }
            // name a node that no allowed cluster lists, else the first (nodes of two clusters)
            let unlisted = nodes
                .iter()
                .find(|node| !allowed.redis_clusters.iter().any(|c| in_cluster(c, node)))
                .or(nodes.first());
            let what = match unlisted {
                Some((host, port)) => format!("redis-cluster node {}", host_port(host, *port)),
                None => "redis-cluster with no nodes".to_string(),
            };
            Err(LimitError::BackendNotAllowed {
                what,
                setting: "redis_clusters",
            })
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks that the config allows `request`'s backend (before anything is resolved or sent to
/// it), resolves its credentials through `resolver` (and its cache) and runs its ops on
/// `store`; one counter per op, in order.
pub async fn run(
    store: &Store,
    resolver: &Resolver,
    allowed: &LimitConfig,
    request: &LimitRequest,
) -> Result<Vec<Counter>, LimitError> {
    let backend = &request.backend;
    check_allowed(allowed, &backend.target)?;
    let login = Login {
        username: credential(resolver, "backend.username", backend.username.as_ref()).await?,
        password: credential(resolver, "backend.password", backend.password.as_ref()).await?,
    };
    store
        .run(backend, login, &request.ops)
        .await
        .map_err(|e| LimitError::from_store(backend, e))
}

async fn credential(
    resolver: &Resolver,
    field: &'static str,
    credential: Option<&Credential>,
) -> Result<Option<SecretValue>, LimitError> {
    match credential {
        None => Ok(None),
        Some(Credential::Plain(value)) => Ok(Some(value.clone())),
        // a stale value (provider down, last good value) is still the best login we have
        Some(Credential::Reference(reference)) => match resolver.resolve(reference).await {
            Resolution::Value { value, .. } => Ok(Some(value)),
            Resolution::Error(e) => Err(LimitError::SecretUnresolved {
                field,
                reference: reference.clone(),
                code: e.code(),
                message: e.to_string(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::clock::ManualClock;
    use crate::config::CacheConfig;
    use crate::providers::fake::FakeProvider;
    use secret_ref::Manager;
    use std::sync::Arc;

    fn resolver(provider: FakeProvider) -> Resolver {
        let cache = Cache::new(CacheConfig::default(), Arc::new(ManualClock::new()));
        let mut r = Resolver::new(cache);
        r.add_provider("my-secrets-manager", Manager::Aws, Arc::new(provider));
        r
    }

    #[tokio::test]
    async fn credentials_plain_referenced_and_unresolved() {
        let r = resolver(FakeProvider::new().with("redis", r#"{"password":"pw-1"}"#));
        let plain = Credential::Plain(SecretValue::new("plain-pw"));
        assert_eq!(
            credential(&r, "backend.password", Some(&plain)).await,
            Ok(Some(SecretValue::new("plain-pw")))
        );
        assert_eq!(credential(&r, "backend.password", None).await, Ok(None));
        let good = Credential::Reference("$secret://aws/my-secrets-manager/redis/password".into());
        assert_eq!(
            credential(&r, "backend.password", Some(&good)).await,
            Ok(Some(SecretValue::new("pw-1")))
        );

        let missing_key = "$secret://aws/my-secrets-manager/redis/pasword";
        let err = credential(
            &r,
            "backend.password",
            Some(&Credential::Reference(missing_key.into())),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "secret_unresolved");
        assert_eq!(
            err.to_string(),
            "backend.password: reference \"$secret://aws/my-secrets-manager/redis/pasword\" did not resolve: key_not_found: key \"pasword\" not found in secret \"redis\" (provider \"my-secrets-manager\")"
        );

        let unknown = "$secret://aws/other/redis/password";
        let err = credential(
            &r,
            "backend.username",
            Some(&Credential::Reference(unknown.into())),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend.username: reference \"$secret://aws/other/redis/password\" did not resolve: unknown_provider: unknown provider \"other\" (configured: \"my-secrets-manager\")"
        );
    }

    fn allowed(toml: &str) -> LimitConfig {
        let text = format!("{toml}\n[[providers]]\nid = \"p\"\nkind = \"aws\"\nregion = \"r\"\n");
        crate::config::Config::parse(&text, &|_| None)
            .unwrap()
            .limit
    }

    fn target(backend: &str) -> Target {
        let body = format!(
            r#"{{"backend": {backend}, "ops": [{{"key": "k", "limit": 1, "window_s": 1}}]}}"#
        );
        parse(body.as_bytes()).unwrap().backend.target
    }

    #[test]
    fn only_listed_backends_are_allowed() {
        let config = allowed(
            r#"[limit]
redis = ["127.0.0.1:6379", "redis.internal:*"]
redis_clusters = [["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"], ["10.1.0.1:7000"]]"#,
        );
        let ok = [
            r#"{"policy": "redis", "host": "127.0.0.1", "port": 6379}"#,
            r#"{"policy": "redis", "host": "127.0.0.1"}"#,
            r#"{"policy": "redis", "host": "REDIS.internal", "port": 6380}"#,
            r#"{"policy": "redis-cluster", "cluster_nodes": ["10.0.0.2:7000"]}"#,
            r#"{"policy": "redis-cluster", "cluster_nodes": ["10.0.0.1:7000", "10.0.0.3:7000"]}"#,
        ];
        for b in ok {
            assert_eq!(check_allowed(&config, &target(b)), Ok(()), "{b}");
        }
        let refused = [
            (r#"{"policy": "redis", "host": "127.0.0.1", "port": 6380}"#, "redis 127.0.0.1:6380 is not allowed: list it in the sidecar's [limit] redis setting to use it"),
            (r#"{"policy": "redis", "host": "evil.example", "port": 6379, "password": "$secret://aws/p/redis/password"}"#,
             "redis evil.example:6379 is not allowed: list it in the sidecar's [limit] redis setting to use it"),
            (r#"{"policy": "redis", "host": "::1", "port": 6379}"#, "redis [::1]:6379 is not allowed: list it in the sidecar's [limit] redis setting to use it"),
            (r#"{"policy": "redis-cluster", "cluster_nodes": ["10.0.0.1:7000", "10.9.9.9:7000"]}"#,
             "redis-cluster node 10.9.9.9:7000 is not allowed: list it in the sidecar's [limit] redis_clusters setting to use it"),
            // each node is listed, but not in the same cluster
            (r#"{"policy": "redis-cluster", "cluster_nodes": ["10.0.0.1:7000", "10.1.0.1:7000"]}"#,
             "redis-cluster node 10.0.0.1:7000 is not allowed: list it in the sidecar's [limit] redis_clusters setting to use it"),
            // a single server's address is not a cluster's
            (r#"{"policy": "redis-cluster", "cluster_nodes": ["127.0.0.1:6379"]}"#,
             "redis-cluster node 127.0.0.1:6379 is not allowed: list it in the sidecar's [limit] redis_clusters setting to use it"),
        ];
        for (b, message) in refused {
            let e = check_allowed(&config, &target(b)).unwrap_err();
            assert_eq!(
                (e.code().as_str(), e.to_string().as_str()),
                ("backend_not_allowed", message),
                "{b}"
            );
        }
        // nothing configured: nothing allowed
        let none = allowed("");
        assert!(check_allowed(&none, &target(ok[0])).is_err());
        assert!(check_allowed(&none, &target(ok[3])).is_err());
    }

    #[tokio::test]
    async fn an_unlisted_backend_is_refused_before_its_password_is_resolved() {
        let p = Arc::new(FakeProvider::new().with("redis", r#"{"password":"pw-1"}"#));
        let cache = Cache::new(CacheConfig::default(), Arc::new(ManualClock::new()));
        let mut r = Resolver::new(cache);
        r.add_provider("my-secrets-manager", Manager::Aws, p.clone());
        let body = br#"{"backend": {"policy": "redis", "host": "203.0.113.9", "port": 6379,
            "password": "$secret://aws/my-secrets-manager/redis/password"},
            "ops": [{"key": "k", "limit": 1, "window_s": 1}]}"#;
        let request = parse(body).unwrap();
        let e = run(&Store::new(), &r, &LimitConfig::default(), &request)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "backend_not_allowed");
        assert_eq!(
            p.get_calls(),
            0,
            "no secret is looked up for an unlisted backend"
        );
    }

    #[test]
    fn store_errors_name_the_backend() {
        let body =
            br#"{"backend": {"policy": "redis", "host": "10.0.0.7", "port": 6380, "database": 2},
                        "ops": [{"key": "k", "limit": 1, "window_s": 1}]}"#;
        let backend = parse(body).unwrap().backend;
        let cases = [
            (
                StoreError::Unavailable("Connection refused (os error 111)".into()),
                "redis_unavailable",
                "redis 10.0.0.7:6380 db 2 unavailable: Connection refused (os error 111)",
            ),
            (
                StoreError::AuthFailed("WRONGPASS invalid username-password pair".into()),
                "redis_auth_failed",
                "redis 10.0.0.7:6380 db 2 refused the login (WRONGPASS invalid username-password pair); check backend.username / backend.password and the Redis ACL",
            ),
            (
                StoreError::Redis("ERR something".into()),
                "redis_error",
                "redis 10.0.0.7:6380 db 2 answered an error: ERR something",
            ),
        ];
        for (e, code, message) in cases {
            let e = LimitError::from_store(&backend, e);
            assert_eq!((e.code().as_str(), e.to_string().as_str()), (code, message));
        }
    }
}
