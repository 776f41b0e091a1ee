//! Secret providers: where secret values come from. The cache and the resolver see only the
//! [`Provider`] trait, so their tests use an in-memory fake and only `aws.rs` names the AWS SDK.

pub mod aws;

use std::future::Future;
use std::pin::Pin;

use secret_ref::SecretValue;

/// A boxed, sendable future (keeps [`Provider`] object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A secret store.
pub trait Provider: Send + Sync {
    /// The secret's string value, by name.
    fn get_secret<'a>(&'a self, name: &'a str)
        -> BoxFuture<'a, Result<SecretValue, ProviderError>>;

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
    /// InvalidParameterException: e.g. a disabled secret). (Definitive.)
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
        secrets: Mutex<BTreeMap<String, String>>,
        failure: Mutex<Option<ProviderError>>,
        list_failure: Mutex<Option<ProviderError>>,
        /// Lists at most this many names (then says the list is incomplete).
        list_cap: Mutex<Option<usize>>,
        gate: Option<Semaphore>,
        get_calls: AtomicUsize,
        list_calls: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        calls_by_name: Mutex<BTreeMap<String, usize>>,
    }

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

        pub fn with(self, name: &str, value: &str) -> Self {
            self.set(name, value);
            self
        }

        pub fn set(&self, name: &str, value: &str) {
            self.secrets
                .lock()
                .unwrap()
                .insert(name.to_string(), value.to_string());
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
    }

    impl Provider for FakeProvider {
        fn get_secret<'a>(
            &'a self,
            name: &'a str,
        ) -> BoxFuture<'a, Result<SecretValue, ProviderError>> {
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
                if let Some(err) = self.failure.lock().unwrap().clone() {
                    return Err(err);
                }
                match self.secrets.lock().unwrap().get(name) {
                    Some(v) => Ok(SecretValue::new(v.as_str())),
                    None => Err(ProviderError::NotFound),
                }
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
