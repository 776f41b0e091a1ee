//! Rate-limit counters in Redis for the filter's limit-count plugin (docs/DESIGN.md, section 4):
//! the request format ([`request`]), Redis connections and the counter script ([`store`]), and
//! here the glue: resolve the backend's credentials, run the ops, say what went wrong.

pub mod request;
pub mod store;

use secret_ref::SecretValue;

use crate::resolve::{Resolution, Resolver};

pub use request::{parse, LimitRequest, RequestError};
pub use store::{Counter, Login, Store, StoreError};

use request::{Backend, Credential};

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
    #[error("{field}: reference {reference:?} did not resolve: {code}: {message}")]
    SecretUnresolved {
        field: &'static str,
        reference: String,
        code: &'static str,
        message: String,
    },
}

impl LimitError {
    /// The error code on the wire (docs/DESIGN.md, section 4).
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::Unavailable { .. } => "redis_unavailable",
            LimitError::AuthFailed { .. } => "redis_auth_failed",
            LimitError::Redis { .. } => "redis_error",
            LimitError::SecretUnresolved { .. } => "secret_unresolved",
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

/// Resolves `request`'s credentials through `resolver` (and its cache) and runs its ops on
/// `store`; one counter per op, in order.
pub async fn run(
    store: &Store,
    resolver: &Resolver,
    request: &LimitRequest,
) -> Result<Vec<Counter>, LimitError> {
    let backend = &request.backend;
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
            assert_eq!((e.code(), e.to_string().as_str()), (code, message));
        }
    }
}
