//! Secret providers: where secret values come from. The cache and the resolver see only the
//! [`Provider`] trait, so their tests use an in-memory fake; only `aws.rs` names the AWS SDK and
//! only `vault.rs` speaks Vault's HTTP API.

pub mod aws;
pub mod vault;

use std::future::Future;
use std::pin::Pin;

use secret_ref::SecretValue;

/// A boxed, sendable future (keeps [`Provider`] object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A secret's current version as the store gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub value: SecretValue,
    /// The store's id of this version (AWS `VersionId`, Vault KV v2 version number), compared
    /// with [`Provider::current_version`]; `None`: the store has no versions (Vault KV v1).
    pub version: Option<String>,
    /// When this version was created, i.e. replaced the previous one (unix seconds), if known.
    pub created_at: Option<u64>,
}

impl Secret {
    /// A value without version information.
    pub fn unversioned(value: impl Into<String>) -> Self {
        Secret {
            value: SecretValue::new(value),
            version: None,
            created_at: None,
        }
    }
}

/// The version a secret's current version replaced (for rotation grace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub value: SecretValue,
    /// When the current version replaced it (unix seconds).
    pub replaced_at: u64,
}

/// A secret store.
pub trait Provider: Send + Sync {
    /// The secret's current string value, by name.
    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ProviderError>>;

    /// The id of the secret's current version, if the store can tell it more cheaply than the
    /// value (AWS: `DescribeSecret`). The cache asks this after the TTL and fetches the value
    /// again only when the id moved. `Ok(None)`: the store cannot tell; fetch the value.
    fn current_version<'a>(
        &'a self,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// The version `current` replaced, if the store keeps one (AWS: `AWSPREVIOUS`; Vault KV v2:
    /// the version before). `Ok(None)`: there is none.
    fn get_previous<'a>(
        &'a self,
        _name: &'a str,
        _current: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<PreviousSecret>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// The names of the secrets the store holds: for "did you mean" hints, and to skip
    /// candidate names that do not exist without asking for each.
    fn list_secret_names(&self) -> BoxFuture<'_, Result<SecretNames, ProviderError>>;
}

/// A provider's secret names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNames {
    pub names: Vec<String>,
    /// `false` when the listing stopped early: a name missing from `names` may still exist.
    pub complete: bool,
}

/// Why a provider could not give a secret. Details come from the provider (never a secret value).
///
/// Answers are *definitive* (the store said what it thinks of this secret: it does not exist, is
/// deleted, cannot be decrypted, the request is refused as such) or *transient* (the store could
/// not answer: unreachable, throttled, failing, or our own credentials are refused). The cache
/// never serves a last good value after a definitive answer; after a transient one it serves it
/// for a bounded time (docs/DESIGN.md, section 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The store answered: there is no such secret. (Definitive.)
    #[error("not found")]
    NotFound,
    /// The store answered: the secret is deleted or scheduled for deletion. (Definitive.)
    #[error("deleted: {0}")]
    Deleted(String),
    /// The store answered: it cannot decrypt the secret (its KMS key is disabled, deleted or
    /// not usable). (Definitive.)
    #[error("decryption failed: {0}")]
    DecryptionFailed(String),
    /// The store refused the request for this secret as such (InvalidRequestException,
    /// InvalidParameterException: e.g. a disabled secret; Vault: 403 for this path while the
    /// sidecar's token is valid, i.e. its policy denies the path). (Definitive.)
    #[error("request refused: {0}")]
    Rejected(String),
    /// The store refused our credentials or their permissions. (Transient: an IAM mistake on the
    /// sidecar's side must not disable every credential at once; bounded by `max_stale_s`.)
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The store could not be reached (connection refused, DNS, timeout). (Transient.)
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Anything else the store reported: throttling, internal errors, unknown codes.
    /// (Transient.)
    #[error("{0}")]
    Other(String),
}

impl ProviderError {
    /// Whether this is the store's definitive answer about the secret (no last good value may be
    /// served after it), rather than a failure to answer.
    pub fn is_definitive(&self) -> bool {
        match self {
            ProviderError::NotFound
            | ProviderError::Deleted(_)
            | ProviderError::DecryptionFailed(_)
            | ProviderError::Rejected(_) => true,
            ProviderError::AccessDenied(_)
            | ProviderError::Unreachable(_)
            | ProviderError::Other(_) => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory provider for unit tests: counts calls, can fail, can block until released.

    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::sync::Semaphore;

    #[derive(Default)]
    pub struct FakeProvider {
        /// Each secret's versions, oldest first.
        secrets: Mutex<BTreeMap<String, Vec<String>>>,
        failure: Mutex<Option<ProviderError>>,
        list_failure: Mutex<Option<ProviderError>>,
        /// Lists at most this many names (then says the list is incomplete).
        list_cap: Mutex<Option<usize>>,
        /// Answers `current_version` (else `Ok(None)`, as a store without that call).
        describes: bool,
        gate: Option<Semaphore>,
        get_calls: AtomicUsize,
        list_calls: AtomicUsize,
        describe_calls: AtomicUsize,
        previous_calls: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        calls_by_name: Mutex<BTreeMap<String, usize>>,
    }

    /// The fake's version `i` (0-based) of a secret was created at unix time `1000 + i`.
    pub const FAKE_EPOCH: u64 = 1000;

    impl FakeProvider {
        pub fn new() -> Self {
            Self::default()
        }

        /// A provider whose calls wait until [`FakeProvider::release`] is called.
        pub fn gated() -> Self {
            FakeProvider {
                gate: Some(Semaphore::new(0)),
                ..Self::default()
            }
        }

        /// A provider that answers [`Provider::current_version`].
        pub fn describing() -> Self {
            FakeProvider {
                describes: true,
                ..Self::default()
            }
        }

        pub fn with(self, name: &str, value: &str) -> Self {
            self.set(name, value);
            self
        }

        /// Stores a new version of `name`.
        pub fn set(&self, name: &str, value: &str) {
            self.secrets
                .lock()
                .unwrap()
                .entry(name.to_string())
                .or_default()
                .push(value.to_string());
        }

        pub fn remove(&self, name: &str) {
            self.secrets.lock().unwrap().remove(name);
        }

        /// Every later call fails with `err` (`None`: answer normally again).
        pub fn fail_with(&self, err: Option<ProviderError>) {
            *self.failure.lock().unwrap() = err;
        }

        /// Every later listing fails with `err` (`None`: list normally again); values still
        /// answer.
        pub fn fail_list_with(&self, err: Option<ProviderError>) {
            *self.list_failure.lock().unwrap() = err;
        }

        /// Later listings stop after `cap` names and say so.
        pub fn cap_list(&self, cap: usize) {
            *self.list_cap.lock().unwrap() = Some(cap);
        }

        pub fn release(&self, calls: usize) {
            if let Some(gate) = &self.gate {
                gate.add_permits(calls);
            }
        }

        pub fn get_calls(&self) -> usize {
            self.get_calls.load(Ordering::SeqCst)
        }

        pub fn list_calls(&self) -> usize {
            self.list_calls.load(Ordering::SeqCst)
        }

        pub fn describe_calls(&self) -> usize {
            self.describe_calls.load(Ordering::SeqCst)
        }

        pub fn previous_calls(&self) -> usize {
            self.previous_calls.load(Ordering::SeqCst)
        }

        /// The most `get_secret` calls that were in progress at one time.
        pub fn max_in_flight(&self) -> usize {
            self.max_in_flight.load(Ordering::SeqCst)
        }

        pub fn calls_for(&self, name: &str) -> usize {
            self.calls_by_name
                .lock()
                .unwrap()
                .get(name)
                .copied()
                .unwrap_or(0)
        }

        async fn wait_gate(&self) {
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
        }

        fn failure(&self) -> Result<(), ProviderError> {
            match self.failure.lock().unwrap().clone() {
                Some(err) => Err(err),
                None => Ok(()),
            }
        }

        fn versions(&self, name: &str) -> Result<Vec<String>, ProviderError> {
            self.secrets
                .lock()
                .unwrap()
                .get(name)
                .cloned()
                .ok_or(ProviderError::NotFound)
        }
    }

    impl Provider for FakeProvider {
        fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ProviderError>> {
            Box::pin(async move {
                self.get_calls.fetch_add(1, Ordering::SeqCst);
                *self
                    .calls_by_name
                    .lock()
                    .unwrap()
                    .entry(name.to_string())
                    .or_default() += 1;
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                self.wait_gate().await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                self.failure()?;
                let versions = self.versions(name)?;
                let n = versions.len();
                Ok(Secret {
                    value: SecretValue::new(versions[n - 1].as_str()),
                    version: Some(n.to_string()),
                    created_at: Some(FAKE_EPOCH + n as u64 - 1),
                })
            })
        }

        fn current_version<'a>(
            &'a self,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
            Box::pin(async move {
                if !self.describes {
                    return Ok(None);
                }
                self.describe_calls.fetch_add(1, Ordering::SeqCst);
                self.failure()?;
                Ok(Some(self.versions(name)?.len().to_string()))
            })
        }

        fn get_previous<'a>(
            &'a self,
            name: &'a str,
            current: &'a Secret,
        ) -> BoxFuture<'a, Result<Option<PreviousSecret>, ProviderError>> {
            Box::pin(async move {
                self.previous_calls.fetch_add(1, Ordering::SeqCst);
                self.failure()?;
                let versions = self.versions(name)?;
                let current: usize = current
                    .version
                    .as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if current < 2 || current > versions.len() {
                    return Ok(None);
                }
                Ok(Some(PreviousSecret {
                    value: SecretValue::new(versions[current - 2].as_str()),
                    replaced_at: FAKE_EPOCH + current as u64 - 1,
                }))
            })
        }

        fn list_secret_names(&self) -> BoxFuture<'_, Result<SecretNames, ProviderError>> {
            Box::pin(async move {
                self.list_calls.fetch_add(1, Ordering::SeqCst);
                let failure = self.failure.lock().unwrap().clone();
                if let Some(err) = failure.or_else(|| self.list_failure.lock().unwrap().clone()) {
                    return Err(err);
                }
                let mut names: Vec<String> = self.secrets.lock().unwrap().keys().cloned().collect();
                let cap = self.list_cap.lock().unwrap().unwrap_or(usize::MAX);
                let complete = names.len() <= cap;
                names.truncate(cap);
                Ok(SecretNames { names, complete })
            })
        }
    }
}
