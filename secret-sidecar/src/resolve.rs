//! Turning `$secret://` references into values.
//!
//! A reference's secret name may contain `/`, so its `(name, key)` candidates are tried longest
//! name first while the provider says "not found"; the longest existing name wins. Asking the
//! provider for each candidate costs a refused call per reference when many references point
//! into one secret (`bench-keys/consumer-1`, `bench-keys/consumer-2`, ...), so for each
//! candidate, longest first:
//!
//! 1. a fresh cached answer (value or "not found") is used as is;
//! 2. else, if the provider's name list (one listing per TTL, shared with "did you mean") is
//!    fresh and complete, the name is not in it and a shorter candidate is, the name is skipped
//!    (and recorded as "not found" as of the listing, so an outage still serves stale values);
//! 3. else the provider is asked (through the cache).
//!
//! So a name created after the list was taken is found by asking when no candidate of the
//! reference is listed; when a shorter candidate is listed, it is found once the list is
//! refreshed (within the TTL). When listing fails, every candidate is asked for, as in 3.
//!
//! The split a reference first resolved through is kept for the life of the process: when a
//! different secret name would answer later (someone created `alice-credentials/alice-key-auth`
//! next to `alice-credentials`, or the first one disappeared and a shorter one exists), the
//! reference fails with `ambiguous_secret_name`, naming both, instead of silently switching to
//! a secret that whoever may create secrets controls.
//!
//! A value that is the empty string is an error (`empty_value`), never a credential.
//!
//! Asked for previous values ([`Resolver::resolve_batch_with`]), each resolved reference also
//! gets the same key of its secret's previous version, when there is one (not when the value is
//! stale: then only a previous value already known is given).
//!
//! A reference listed in a request's `refetch` ([`Resolver::resolve_request`]) has its secret
//! fetched from the provider again even while cached ([`Cache::refetch`]: at most once per
//! secret and `refetch_min_interval`). Refetched references are resolved first, so every other
//! reference of the batch into the same secret gets the refetched value too.
//!
//! A batch fetches each distinct secret and the name list once (even with a zero TTL), parses
//! each JSON secret once (not once per key taken from it), and resolves distinct references
//! concurrently, at most `concurrency` at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use secret_ref::{ExtractError, Manager, ParseError, Reference, SecretRef, SecretValue};
use sidecar_api::ErrorCode;
use tokio::sync::OnceCell;

use crate::cache::{Cache, Listing, Lookup};
use crate::metrics::{Instrumented, Metrics};
use crate::providers::{PreviousSecret, Provider, ProviderError};

/// How many distinct references of a batch are resolved at the same time by default.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// At most this many "did you mean" suggestions.
const MAX_SUGGESTIONS: usize = 3;

/// What a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// `stale`: the provider failed and this is the last good value. `previous`: the same
    /// key of the secret's previous version (only when asked for, and when there is one).
    Value {
        value: SecretValue,
        stale: bool,
        previous: Option<PreviousSecret>,
    },
    Error(ResolveError),
}

/// Why a string given to the sidecar is not a reference it resolves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReference {
    #[error("invalid reference: {0}")]
    Parse(ParseError),
    #[error("$env:// references are resolved by the filter from its own environment, not by the sidecar")]
    EnvReference,
    #[error("not a reference: expected $secret://<manager>/<provider-id>/<secret-name>/<key>")]
    NotAReference,
}

/// Why a reference did not resolve. Messages never contain secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    InvalidReference(InvalidReference),
    #[error("unknown provider {provider:?} (configured: {})", quoted_list(.configured, ", "))]
    UnknownProvider {
        provider: String,
        configured: Vec<String>,
    },
    #[error("the reference names manager \"{manager}\" but provider {provider:?} is of kind \"{serves}\"")]
    UnsupportedManager {
        manager: Manager,
        provider: String,
        serves: Manager,
    },
    #[error("secret {secret:?} not found in provider {provider:?}{}", did_you_mean_suffix(.did_you_mean))]
    SecretNotFound {
        secret: String,
        provider: String,
        did_you_mean: Vec<String>,
    },
    #[error("key {key:?} not found in secret {secret:?} (provider {provider:?})")]
    KeyNotFound {
        secret: String,
        key: String,
        provider: String,
    },
    #[error("secret {secret:?} (provider {provider:?}) is not a JSON object, so key {key:?} cannot be taken from it")]
    NotJsonObject {
        secret: String,
        key: String,
        provider: String,
    },
    #[error("key {key:?} in secret {secret:?} (provider {provider:?}) is not a string")]
    NotAString {
        secret: String,
        key: String,
        provider: String,
    },
    #[error("access denied reading secret {secret:?} from provider {provider:?}: {detail}")]
    AccessDenied {
        secret: String,
        provider: String,
        detail: String,
    },
    #[error("provider {provider:?} unreachable reading secret {secret:?}: {detail}")]
    ProviderUnreachable {
        secret: String,
        provider: String,
        detail: String,
    },
    #[error("provider {provider:?} failed reading secret {secret:?}: {detail}")]
    ProviderError {
        secret: String,
        provider: String,
        detail: String,
    },
    #[error("{} is an empty string; an empty value is never used as a credential", value_name(.secret, .key.as_deref(), .provider))]
    EmptyValue {
        secret: String,
        key: Option<String>,
        provider: String,
    },
    #[error(
        "secret {secret:?} (provider {provider:?}) is deleted or scheduled for deletion: {detail}"
    )]
    SecretDeleted {
        secret: String,
        provider: String,
        detail: String,
    },
    #[error("provider {provider:?} cannot decrypt secret {secret:?} (is its KMS key disabled?): {detail}")]
    DecryptionFailed {
        secret: String,
        provider: String,
        detail: String,
    },
    #[error("provider {provider:?} refused the request for secret {secret:?}: {detail}")]
    ProviderRejected {
        secret: String,
        provider: String,
        detail: String,
    },
    #[error("provider {provider:?} has been failing for secret {secret:?} ({detail}) and its last good value is more than max_stale_s ({max_stale_s} s) past its TTL; it is no longer served")]
    StaleExpired {
        secret: String,
        provider: String,
        detail: String,
        max_stale_s: u64,
    },
    #[error("secret name {now:?} now answers this reference, which first resolved through secret {first:?} (provider {provider:?}); refusing to switch (delete one of the two secrets, or restart the sidecar to accept the new split)")]
    AmbiguousSecretName {
        first: String,
        now: String,
        provider: String,
    },
}

fn value_name(secret: &str, key: Option<&str>, provider: &str) -> String {
    match key {
        Some(key) => format!("key {key:?} in secret {secret:?} (provider {provider:?})"),
        None => format!("secret {secret:?} (provider {provider:?})"),
    }
}

impl ResolveError {
    /// The error code on the wire (docs/DESIGN.md, section 2): the one mapping of these errors to
    /// the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            ResolveError::InvalidReference(_) => ErrorCode::InvalidReference,
            ResolveError::UnknownProvider { .. } => ErrorCode::UnknownProvider,
            ResolveError::UnsupportedManager { .. } => ErrorCode::UnsupportedManager,
            ResolveError::SecretNotFound { .. } => ErrorCode::SecretNotFound,
            ResolveError::KeyNotFound { .. } => ErrorCode::KeyNotFound,
            ResolveError::NotJsonObject { .. } => ErrorCode::NotJsonObject,
            ResolveError::NotAString { .. } => ErrorCode::NotAString,
            ResolveError::AccessDenied { .. } => ErrorCode::AccessDenied,
            ResolveError::ProviderUnreachable { .. } => ErrorCode::ProviderUnreachable,
            ResolveError::ProviderError { .. } => ErrorCode::ProviderError,
            ResolveError::EmptyValue { .. } => ErrorCode::EmptyValue,
            ResolveError::SecretDeleted { .. } => ErrorCode::SecretDeleted,
            ResolveError::DecryptionFailed { .. } => ErrorCode::DecryptionFailed,
            ResolveError::ProviderRejected { .. } => ErrorCode::ProviderRejected,
            ResolveError::StaleExpired { .. } => ErrorCode::StaleExpired,
            ResolveError::AmbiguousSecretName { .. } => ErrorCode::AmbiguousSecretName,
        }
    }

    /// Whether the failure is transient: the provider could not answer and nothing about the
    /// secret is known (`provider_unreachable`, `provider_error`, `access_denied`). A caller may
    /// keep a last good value of its own for these; every other code is definitive (the
    /// reference must not be used).
    pub fn is_transient(&self) -> bool {
        self.code().is_transient()
    }

    /// Close existing secret names, for `secret_not_found`.
    pub fn did_you_mean(&self) -> Option<&[String]> {
        match self {
            ResolveError::SecretNotFound { did_you_mean, .. } => Some(did_you_mean),
            _ => None,
        }
    }
}

fn quoted_list(items: &[String], last_sep: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    match quoted.split_last() {
        None => "none".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{}{last_sep}{last}", rest.join(", ")),
    }
}

fn did_you_mean_suffix(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", quoted_list(names, " or "))
    }
}

#[derive(Clone)]
struct RegisteredProvider {
    manager: Manager,
    provider: Arc<dyn Provider>,
}

/// Resolves references against the configured providers, through the cache.
pub struct Resolver {
    /// Replaced as a whole on a configuration reload ([`Resolver::replace_providers`]).
    providers: std::sync::RwLock<Arc<Providers>>,
    cache: Cache,
    concurrency: usize,
    /// The secret name each reference (by provider and path) first resolved through.
    splits: Mutex<HashMap<(String, String), String>>,
}

type SecretKey = (String, String);

type Providers = HashMap<String, RegisteredProvider>;

type ListOutcome = Result<Listing, ProviderError>;

/// A secret's value parsed as a JSON object (`None`: it is not one).
type ParsedSecret = Option<serde_json::Map<String, serde_json::Value>>;

/// Per-batch memo: each distinct reference, each distinct secret and each provider's name list
/// is looked up once.
#[derive(Default)]
struct Batch {
    /// Whether previous values are wanted.
    previous: bool,
    /// References whose secrets are fetched from the provider again.
    refetch: HashSet<String>,
    refs: Mutex<HashMap<String, Arc<OnceCell<Resolution>>>>,
    secrets: Mutex<HashMap<SecretKey, Arc<OnceCell<Lookup>>>>,
    lists: Mutex<HashMap<String, Arc<OnceCell<ListOutcome>>>>,
    /// Parsed values of the secrets in `secrets` (the same value: both are set once per batch).
    parsed: Mutex<HashMap<SecretKey, Arc<OnceLock<ParsedSecret>>>>,
}

impl Batch {
    fn ref_cell(&self, reference: &str) -> Arc<OnceCell<Resolution>> {
        let mut map = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(reference.to_string()).or_default().clone()
    }

    fn secret_cell(&self, provider_id: &str, name: &str) -> Arc<OnceCell<Lookup>> {
        let mut map = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((provider_id.to_string(), name.to_string()))
            .or_default()
            .clone()
    }

    fn list_cell(&self, provider_id: &str) -> Arc<OnceCell<ListOutcome>> {
        let mut map = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(provider_id.to_string()).or_default().clone()
    }

    /// Field `key` of secret `name`, whose value in this batch is `raw`; `raw` is parsed once
    /// per batch however many keys are taken from it.
    fn field(
        &self,
        provider_id: &str,
        name: &str,
        raw: &SecretValue,
        key: &str,
    ) -> Result<SecretValue, ExtractError> {
        let cell = {
            let mut map = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry((provider_id.to_string(), name.to_string()))
                .or_default()
                .clone()
        };
        let parsed = cell.get_or_init(|| parse_object(raw.expose()));
        field_of(parsed.as_ref(), key)
    }

    /// Field `key` of the previous version of secret `name`, parsed once per batch.
    fn previous_field(
        &self,
        provider_id: &str,
        name: &str,
        raw: &SecretValue,
        key: &str,
    ) -> Result<SecretValue, ExtractError> {
        // (a secret name never contains NUL: it cannot clash with a real name)
        self.field(provider_id, &format!("{name}\0previous"), raw, key)
    }
}

fn parse_object(raw: &str) -> ParsedSecret {
    match serde_json::from_str(raw) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// [`secret_ref::extract_key`] on an already parsed value (same answers; see the test).
fn field_of(
    parsed: Option<&serde_json::Map<String, serde_json::Value>>,
    key: &str,
) -> Result<SecretValue, ExtractError> {
    let object = parsed.ok_or(ExtractError::NotJsonObject)?;
    match object.get(key) {
        None => Err(ExtractError::KeyNotFound(key.to_string())),
        Some(serde_json::Value::String(s)) => Ok(SecretValue::new(s.as_str())),
        Some(_) => Err(ExtractError::NotAString(key.to_string())),
    }
}

impl Resolver {
    pub fn new(cache: Cache) -> Self {
        Resolver {
            providers: std::sync::RwLock::new(Arc::new(HashMap::new())),
            cache,
            concurrency: DEFAULT_CONCURRENCY,
            splits: Mutex::new(HashMap::new()),
        }
    }

    /// At most `n` (at least 1) distinct references of a batch are resolved at the same time.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Registers `provider` under `id` for references to `manager` (its calls counted in the
    /// cache's metrics).
    pub fn add_provider(&mut self, id: &str, manager: Manager, provider: Arc<dyn Provider>) {
        let registered = self.register(id, manager, provider);
        let providers = self
            .providers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::make_mut(providers).insert(id.to_string(), registered);
    }

    fn register(
        &self,
        id: &str,
        manager: Manager,
        provider: Arc<dyn Provider>,
    ) -> RegisteredProvider {
        let provider: Arc<dyn Provider> =
            Arc::new(Instrumented::new(id, provider, self.cache.metrics()));
        RegisteredProvider { manager, provider }
    }

    /// Replaces every provider (a configuration reload). The cache is kept: a provider id
    /// that stays keeps its cached answers; lookups in flight finish with the old providers.
    pub fn replace_providers(&self, providers: Vec<(String, Manager, Arc<dyn Provider>)>) {
        let ids: Vec<&str> = providers.iter().map(|(id, _, _)| id.as_str()).collect();
        self.cache.metrics().retain_providers(&ids);
        let map: Providers = providers
            .iter()
            .map(|(id, manager, provider)| {
                (id.clone(), self.register(id, *manager, provider.clone()))
            })
            .collect();
        *self
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
    }

    /// The providers in force now.
    fn providers(&self) -> Arc<Providers> {
        self.providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The configured provider ids, sorted.
    pub fn provider_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.providers().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The metrics of this resolver's cache and providers.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.cache.metrics()
    }

    /// The cache, for its gauges.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Asks each provider that has not answered yet for its secret names (at most once per
    /// TTL, through the cache), so that readiness does not wait for the first request.
    pub async fn probe_providers(&self) {
        let not_reached = self.metrics().providers_not_reached();
        for id in not_reached {
            if let Some(registered) = self.providers().get(&id) {
                let _ = self
                    .cache
                    .secret_names(&id, registered.provider.as_ref())
                    .await;
            }
        }
    }

    /// Resolves `refs`; one result per reference, in the same order.
    pub async fn resolve_batch(&self, refs: &[String]) -> Vec<Resolution> {
        self.resolve_batch_with(refs, false).await
    }

    /// [`Resolver::resolve_batch`], with the previous version of each value when `previous`.
    pub async fn resolve_batch_with(&self, refs: &[String], previous: bool) -> Vec<Resolution> {
        self.resolve_request(refs, previous, &[]).await
    }

    /// A `/v1/resolve` request: [`Resolver::resolve_batch_with`], and the secrets of the
    /// references in `refetch` that are also in `refs` fetched from the provider again (within
    /// the cache's bound).
    pub async fn resolve_request(
        &self,
        refs: &[String],
        previous: bool,
        refetch: &[String],
    ) -> Vec<Resolution> {
        let listed: HashSet<&str> = refs.iter().map(String::as_str).collect();
        let batch = Batch {
            previous,
            refetch: refetch
                .iter()
                .filter(|r| listed.contains(r.as_str()))
                .cloned()
                .collect(),
            ..Batch::default()
        };
        if !batch.refetch.is_empty() {
            // first, so that the other references into these secrets see the new values
            let first: Vec<&String> = batch.refetch.iter().collect();
            self.resolve_all(&batch, first).await;
        }
        let results = self.resolve_all(&batch, refs.iter().collect()).await;
        log_batch(&results, batch.refetch.len());
        results
    }

    /// Resolves `refs` in `batch`, at most `concurrency` at a time, results in order.
    async fn resolve_all(&self, batch: &Batch, refs: Vec<&String>) -> Vec<Resolution> {
        // (A plain loop: `stream::iter(..).map(..).buffered(..)` trips rustc's higher-ranked
        // Send inference.)
        let mut in_flight = FuturesOrdered::new();
        let mut pending = refs.into_iter();
        let mut results = Vec::with_capacity(pending.len());
        loop {
            while in_flight.len() < self.concurrency {
                match pending.next() {
                    Some(r) => in_flight.push_back(self.resolve_in_batch(batch, r)),
                    None => break,
                }
            }
            match in_flight.next().await {
                Some(result) => results.push(result),
                None => break,
            }
        }
        results
    }

    /// Resolves one reference through the cache, without the batch log line (for the
    /// credentials of `/v1/limit`, looked up on every request).
    pub async fn resolve(&self, reference: &str) -> Resolution {
        self.resolve_one(&Batch::default(), reference).await
    }

    /// Identical references in one batch are resolved once.
    async fn resolve_in_batch(&self, batch: &Batch, text: &str) -> Resolution {
        batch
            .ref_cell(text)
            .get_or_init(|| self.resolve_one(batch, text))
            .await
            .clone()
    }

    async fn resolve_one(&self, batch: &Batch, text: &str) -> Resolution {
        match self.try_resolve(batch, text).await {
            Ok((value, stale, previous)) => Resolution::Value {
                value,
                stale,
                previous,
            },
            Err(e) => Resolution::Error(e),
        }
    }

    async fn try_resolve(
        &self,
        batch: &Batch,
        text: &str,
    ) -> Result<(SecretValue, bool, Option<PreviousSecret>), ResolveError> {
        let r = match secret_ref::parse(text) {
            Err(e) => return Err(ResolveError::InvalidReference(InvalidReference::Parse(e))),
            Ok(None) => {
                return Err(ResolveError::InvalidReference(
                    InvalidReference::NotAReference,
                ))
            }
            Ok(Some(Reference::Env(_))) => {
                return Err(ResolveError::InvalidReference(
                    InvalidReference::EnvReference,
                ))
            }
            Ok(Some(Reference::Secret(r))) => r,
        };
        let providers = self.providers();
        let Some(registered) = providers.get(&r.provider) else {
            let mut configured: Vec<String> = providers.keys().cloned().collect();
            configured.sort();
            return Err(ResolveError::UnknownProvider {
                provider: r.provider,
                configured,
            });
        };
        if registered.manager != r.manager {
            return Err(ResolveError::UnsupportedManager {
                manager: r.manager,
                provider: r.provider,
                serves: registered.manager,
            });
        }

        let refetch = batch.refetch.contains(text);
        let candidates = r.candidates();
        for (i, (name, key)) in candidates.iter().enumerate() {
            let known = if refetch {
                // only what this batch already fetched, not the cache
                batch.secret_cell(&r.provider, name).get().cloned()
            } else {
                self.known(batch, &r.provider, name).await
            };
            let lookup = match known {
                Some(known) => known,
                None => {
                    let shorter = &candidates[i + 1..];
                    if self
                        .listed_absent(batch, &r.provider, registered, name, shorter)
                        .await
                    {
                        continue;
                    }
                    self.lookup(batch, &r.provider, registered, name, refetch)
                        .await
                }
            };
            match lookup {
                Lookup::NotFound { .. } | Lookup::Failed(ProviderError::NotFound) => continue,
                Lookup::Found { value, stale } => {
                    self.keep_split(&r, name)?;
                    let value = match key {
                        None => value,
                        Some(key) => batch
                            .field(&r.provider, name, &value, key)
                            .map_err(|e| key_error(e, name, Some(key), &r.provider))?,
                    };
                    if value.expose().is_empty() {
                        return Err(ResolveError::EmptyValue {
                            secret: name.clone(),
                            key: key.clone(),
                            provider: r.provider.clone(),
                        });
                    }
                    let previous = if batch.previous {
                        self.previous(batch, &r.provider, registered, name, key.as_deref(), stale)
                            .await
                    } else {
                        None
                    };
                    return Ok((value, stale, previous));
                }
                Lookup::Refused { error, .. } | Lookup::Failed(error) => {
                    return Err(provider_error(error, name, &r.provider))
                }
                Lookup::StaleExpired { error, max_stale } => {
                    return Err(stale_expired(&error, name, &r.provider, max_stale))
                }
            }
        }
        // no candidate exists: a reference that resolved before is simply not found (its
        // split is kept, so the secret coming back answers again)

        let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
        let did_you_mean = self.suggest(batch, &r.provider, registered, &names).await;
        Err(ResolveError::SecretNotFound {
            secret: shown_secret_name(&r),
            provider: r.provider,
            did_you_mean,
        })
    }

    /// The previous version of secret `name` (its field `key`), if there is one and it is usable
    /// (the key present, a non-empty string). Fetched only when the current value is not stale.
    async fn previous(
        &self,
        batch: &Batch,
        provider_id: &str,
        registered: &RegisteredProvider,
        name: &str,
        key: Option<&str>,
        stale: bool,
    ) -> Option<PreviousSecret> {
        let previous = self
            .cache
            .previous(provider_id, registered.provider.as_ref(), name, !stale)
            .await?;
        let value = match key {
            None => previous.value,
            Some(key) => batch
                .previous_field(provider_id, name, &previous.value, key)
                .ok()?,
        };
        (!value.expose().is_empty()).then_some(PreviousSecret {
            value,
            replaced_at: previous.replaced_at,
        })
    }

    /// Records `name` as the secret name `r` resolves through, or fails if `r` first resolved
    /// through another name.
    fn keep_split(&self, r: &SecretRef, name: &str) -> Result<(), ResolveError> {
        let mut splits = self.splits.lock().unwrap_or_else(PoisonError::into_inner);
        let first = splits
            .entry((r.provider.clone(), r.path.join("/")))
            .or_insert_with(|| name.to_string());
        if first == name {
            return Ok(());
        }
        let first = first.clone();
        drop(splits);
        tracing::warn!(
            reference = %r,
            first_secret = %first,
            now_secret = name,
            "a different secret name now answers this reference: refusing it"
        );
        Err(ResolveError::AmbiguousSecretName {
            first,
            now: name.to_string(),
            provider: r.provider.clone(),
        })
    }

    /// What this batch or the cache already knows about secret `name`, without a provider call.
    /// A cached answer becomes the batch's answer for `name`.
    async fn known(&self, batch: &Batch, provider_id: &str, name: &str) -> Option<Lookup> {
        let cell = batch.secret_cell(provider_id, name);
        if let Some(lookup) = cell.get() {
            return Some(lookup.clone());
        }
        let cached = self.cache.peek(provider_id, name).await?;
        // (if another reference set the batch's answer meanwhile, that one is used)
        Some(cell.get_or_init(|| async { cached }).await.clone())
    }

    /// The secret `name`, fetched once per batch (through the cache; with `refetch`, asking
    /// the provider again within the cache's bound).
    async fn lookup(
        &self,
        batch: &Batch,
        provider_id: &str,
        registered: &RegisteredProvider,
        name: &str,
        refetch: bool,
    ) -> Lookup {
        let provider = registered.provider.as_ref();
        batch
            .secret_cell(provider_id, name)
            .get_or_init(|| async move {
                if refetch {
                    self.cache.refetch(provider_id, provider, name).await
                } else {
                    self.cache.get(provider_id, provider, name).await
                }
            })
            .await
            .clone()
    }

    /// Whether a fresh, complete name list shows that `name` does not exist while one of the
    /// `shorter` candidates does, so `name` can be skipped without asking the provider. The
    /// absence is recorded in the cache.
    async fn listed_absent(
        &self,
        batch: &Batch,
        provider_id: &str,
        registered: &RegisteredProvider,
        name: &str,
        shorter: &[(String, Option<String>)],
    ) -> bool {
        if shorter.is_empty() {
            // the last candidate: nothing to fall back on, so it is worth asking for
            return false;
        }
        let Ok(listing) = self.names(batch, provider_id, registered).await else {
            return false;
        };
        let list = &listing.list;
        let skip = listing.fresh
            && list.complete
            && !list.contains(name)
            && shorter.iter().any(|(n, _)| list.contains(n));
        if skip {
            self.cache
                .note_absent(provider_id, name, list.listed_at)
                .await;
        }
        skip
    }

    /// The provider's name list, listed at most once per batch (and per TTL by the cache).
    async fn names(
        &self,
        batch: &Batch,
        provider_id: &str,
        registered: &RegisteredProvider,
    ) -> ListOutcome {
        batch
            .list_cell(provider_id)
            .get_or_init(|| {
                self.cache
                    .secret_names(provider_id, registered.provider.as_ref())
            })
            .await
            .clone()
    }

    async fn suggest(
        &self,
        batch: &Batch,
        provider_id: &str,
        registered: &RegisteredProvider,
        written: &[&str],
    ) -> Vec<String> {
        match self.names(batch, provider_id, registered).await {
            Ok(listing) => closest_names(written, listing.list.names.iter()),
            // the cache logged the failure
            Err(_) => Vec::new(),
        }
    }
}

/// The secret name to report when no candidate exists: the name as the user most likely meant
/// it, i.e. everything but the last segment (the key) when there is more than one segment.
fn shown_secret_name(r: &SecretRef) -> String {
    match r.path.split_last() {
        Some((_, rest)) if !rest.is_empty() => rest.join("/"),
        _ => r.path.join("/"),
    }
}

fn key_error(e: ExtractError, secret: &str, key: Option<&str>, provider: &str) -> ResolveError {
    let (secret, provider) = (secret.to_string(), provider.to_string());
    match e {
        ExtractError::KeyNotFound(key) => ResolveError::KeyNotFound {
            secret,
            key,
            provider,
        },
        ExtractError::NotAString(key) => ResolveError::NotAString {
            secret,
            key,
            provider,
        },
        ExtractError::NotJsonObject => ResolveError::NotJsonObject {
            secret,
            // only reached with a key: without one the whole value is used
            key: key.unwrap_or_default().to_string(),
            provider,
        },
    }
}

fn provider_error(e: ProviderError, secret: &str, provider: &str) -> ResolveError {
    let (secret, provider) = (secret.to_string(), provider.to_string());
    match e {
        ProviderError::AccessDenied(detail) => ResolveError::AccessDenied {
            secret,
            provider,
            detail,
        },
        ProviderError::Unreachable(detail) => ResolveError::ProviderUnreachable {
            secret,
            provider,
            detail,
        },
        ProviderError::Other(detail) => ResolveError::ProviderError {
            secret,
            provider,
            detail,
        },
        ProviderError::NotFound => ResolveError::SecretNotFound {
            secret,
            provider,
            did_you_mean: Vec::new(),
        },
        ProviderError::Deleted(detail) => ResolveError::SecretDeleted {
            secret,
            provider,
            detail,
        },
        ProviderError::DecryptionFailed(detail) => ResolveError::DecryptionFailed {
            secret,
            provider,
            detail,
        },
        ProviderError::Rejected(detail) => ResolveError::ProviderRejected {
            secret,
            provider,
            detail,
        },
    }
}

fn stale_expired(
    error: &ProviderError,
    secret: &str,
    provider: &str,
    max_stale: Duration,
) -> ResolveError {
    ResolveError::StaleExpired {
        secret: secret.to_string(),
        provider: provider.to_string(),
        detail: error.to_string(),
        max_stale_s: max_stale.as_secs(),
    }
}

fn log_batch(results: &[Resolution], refetch: usize) {
    let mut errors: BTreeMap<ErrorCode, usize> = BTreeMap::new();
    let mut stale = 0usize;
    for r in results {
        match r {
            Resolution::Value { stale: true, .. } => stale += 1,
            Resolution::Value { .. } => {}
            Resolution::Error(e) => *errors.entry(e.code()).or_default() += 1,
        }
    }
    let failed: usize = errors.values().sum();
    // logged by wire code: {"secret_not_found": 2}
    let errors: BTreeMap<String, usize> = errors
        .into_iter()
        .map(|(code, n)| (code.to_string(), n))
        .collect();
    tracing::info!(
        refs = results.len(),
        resolved = results.len() - failed,
        stale,
        refetch,
        errors = ?errors,
        "resolve batch"
    );
}

/// Existing names close to any of the written candidate names, closest first, at most
/// [`MAX_SUGGESTIONS`].
fn closest_names<'a>(
    written: &[&str],
    existing: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = existing
        .into_iter()
        .filter_map(|name| {
            written
                .iter()
                .filter_map(|w| close_enough(w, name))
                .min()
                .map(|d| (d, name))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, n)| n.clone())
        .collect()
}

/// The edit distance between `written` and `existing` when they differ a little: at most a
/// quarter of the written name's length, between 1 and 4 edits.
fn close_enough(written: &str, existing: &str) -> Option<usize> {
    let max = (written.chars().count() / 4).clamp(1, 4);
    let d = edit_distance(written, existing, max)?;
    (d > 0).then_some(d)
}

/// Levenshtein distance over chars, or `None` when it is certainly above `max`.
fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::CacheConfig;
    use crate::providers::fake::FakeProvider;
    use std::time::Duration;

    const PROVIDER: &str = "my-secrets-manager";

    fn resolver_with(p: Arc<FakeProvider>, ttl: u64) -> Resolver {
        let config = CacheConfig {
            ttl: Duration::from_secs(ttl),
            not_found_ttl: Duration::from_secs(ttl),
            max_stale: Duration::from_secs(3600),
            ..CacheConfig::default()
        };
        let mut r = Resolver::new(Cache::new(config, Arc::new(ManualClock::new())));
        r.add_provider(PROVIDER, Manager::Aws, p);
        r
    }

    fn tutorial_provider() -> Arc<FakeProvider> {
        Arc::new(
            FakeProvider::new()
                .with(
                    "alice-credentials",
                    r#"{"alice-key-auth":"alice-key","n":7}"#,
                )
                .with("bob-credentials", r#"{"bob-key-auth":"bob-key"}"#)
                .with("team/app/db", r#"{"password":"pw","user":"app"}"#)
                .with("plain/token", "just-a-string")
                .with("not-json", "[1,2]"),
        )
    }

    async fn one(r: &Resolver, reference: &str) -> Resolution {
        let mut out = r.resolve_batch(&[reference.to_string()]).await;
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn value(v: &str) -> Resolution {
        Resolution::Value {
            value: SecretValue::new(v),
            stale: false,
            previous: None,
        }
    }

    fn error(res: Resolution) -> ResolveError {
        match res {
            Resolution::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn aws(path: &str) -> String {
        format!("$secret://aws/{PROVIDER}/{path}")
    }

    #[tokio::test]
    async fn the_longest_existing_name_wins_without_asking_for_unlisted_ones() {
        let p = tutorial_provider();
        let r = resolver_with(p.clone(), 60);
        assert_eq!(
            one(&r, &aws("alice-credentials/alice-key-auth")).await,
            value("alice-key")
        );
        assert_eq!(p.calls_for("alice-credentials/alice-key-auth"), 0);
        assert_eq!(p.calls_for("alice-credentials"), 1);
        // names containing '/'
        assert_eq!(one(&r, &aws("team/app/db/password")).await, value("pw"));
        assert_eq!(p.calls_for("team/app/db/password"), 0);
        assert_eq!(p.calls_for("team/app"), 0, "stops at the first found name");
        // no key: the whole string
        assert_eq!(one(&r, &aws("plain/token")).await, value("just-a-string"));
        assert_eq!(p.calls_for("plain"), 0);
        assert_eq!((p.list_calls(), p.get_calls()), (1, 3));
    }

    #[tokio::test]
    async fn a_whole_name_containing_slashes_beats_its_prefixes() {
        let p = Arc::new(
            FakeProvider::new()
                .with("team", r#"{"app/db/password":"from-team"}"#)
                .with(
                    "team/app",
                    r#"{"db/password":"from-team-app","db":"app-db"}"#,
                )
                .with("team/app/db", r#"{"password":"from-team-app-db"}"#),
        );
        let r = resolver_with(p.clone(), 60);
        let refs = [aws("team/app/db/password"), aws("team/app/db")];
        let out = r.resolve_batch(&refs).await;
        assert_eq!(out[0], value("from-team-app-db"));
        assert_eq!(out[1], value(r#"{"password":"from-team-app-db"}"#));
        assert_eq!((p.list_calls(), p.get_calls()), (1, 1));
        assert_eq!(p.calls_for("team/app/db"), 1);
    }

    #[tokio::test]
    async fn a_thousand_refs_into_one_secret_cost_one_list_and_one_get() {
        let fields: Vec<String> = (0..1000)
            .map(|i| format!("\"consumer-{i}\":\"key-{i}\""))
            .collect();
        let p =
            Arc::new(FakeProvider::new().with("bench-keys", &format!("{{{}}}", fields.join(","))));
        let clock = Arc::new(ManualClock::new());
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(5),
            max_stale: Duration::from_secs(3600),
            ..CacheConfig::default()
        };
        let mut r = Resolver::new(Cache::new(config, clock.clone()));
        r.add_provider(PROVIDER, Manager::Aws, p.clone());
        let refs: Vec<String> = (0..1000)
            .map(|i| aws(&format!("bench-keys/consumer-{i}")))
            .collect();
        let check = |out: Vec<Resolution>| {
            assert_eq!(out.len(), 1000);
            for (i, o) in out.into_iter().enumerate() {
                assert_eq!(o, value(&format!("key-{i}")), "consumer-{i}");
            }
        };

        check(r.resolve_batch(&refs).await);
        assert_eq!((p.list_calls(), p.get_calls()), (1, 1));

        // the skipped names' "not found" has expired, the list and the value have not
        clock.advance(Duration::from_secs(30));
        check(r.resolve_batch(&refs).await);
        assert_eq!((p.list_calls(), p.get_calls()), (1, 1));

        // everything expired: one listing and one fetch again
        clock.advance(Duration::from_secs(30));
        check(r.resolve_batch(&refs).await);
        assert_eq!((p.list_calls(), p.get_calls()), (2, 2));
    }

    #[tokio::test]
    async fn a_secret_missing_from_a_stale_list_is_found_by_asking() {
        let p = tutorial_provider();
        let r = resolver_with(p.clone(), 60);
        assert_eq!(
            one(&r, &aws("alice-credentials/alice-key-auth")).await,
            value("alice-key")
        );
        // created after the list was taken: no candidate is listed, so each is asked for
        p.set("carol-credentials", r#"{"carol-key-auth":"carol-key"}"#);
        assert_eq!(
            one(&r, &aws("carol-credentials/carol-key-auth")).await,
            value("carol-key")
        );
        assert_eq!(p.calls_for("carol-credentials/carol-key-auth"), 1);
        assert_eq!(p.calls_for("carol-credentials"), 1);
        assert_eq!(p.list_calls(), 1, "the list is still fresh");
    }

    #[tokio::test]
    async fn a_longer_name_created_later_is_an_error_not_a_switch() {
        let p = tutorial_provider();
        let clock = Arc::new(ManualClock::new());
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(5),
            max_stale: Duration::from_secs(3600),
            ..CacheConfig::default()
        };
        let mut r = Resolver::new(Cache::new(config, clock.clone()));
        r.add_provider(PROVIDER, Manager::Aws, p.clone());
        let reference = aws("team/app/db/password");
        assert_eq!(one(&r, &reference).await, value("pw"));
        p.set("team/app/db/password", "whole");
        // the shorter name is listed and the list is fresh: it still answers
        clock.advance(Duration::from_secs(10));
        assert_eq!(one(&r, &reference).await, value("pw"));
        assert_eq!(p.calls_for("team/app/db/password"), 0);
        // once the list is refreshed, the longer name would answer: an error naming both
        clock.advance(Duration::from_secs(60));
        let e = error(one(&r, &reference).await);
        assert_eq!(e.code(), "ambiguous_secret_name");
        assert_eq!(
            e.to_string(),
            "secret name \"team/app/db/password\" now answers this reference, which first resolved through secret \"team/app/db\" (provider \"my-secrets-manager\"); refusing to switch (delete one of the two secrets, or restart the sidecar to accept the new split)"
        );
        assert!(!e.is_transient());
        // other references into the first secret are not affected
        assert_eq!(one(&r, &aws("team/app/db/user")).await, value("app"));
        // the longer secret deleted again: the first split answers again
        p.remove("team/app/db/password");
        clock.advance(Duration::from_secs(60));
        assert_eq!(one(&r, &reference).await, value("pw"));

        // a shorter name taking over when the first one disappears is refused too
        p.set("a/b", "whole-ab");
        p.set("a", r#"{"b":"key-b"}"#);
        assert_eq!(one(&r, &aws("a/b")).await, value("whole-ab"));
        p.remove("a/b");
        clock.advance(Duration::from_secs(60));
        let e = error(one(&r, &aws("a/b")).await);
        assert_eq!(e.code(), "ambiguous_secret_name");
        assert!(
            e.to_string()
                .contains("first resolved through secret \"a/b\""),
            "{e}"
        );
    }

    #[tokio::test]
    async fn empty_values_are_errors() {
        let p = tutorial_provider();
        p.set("empty-whole", "");
        p.set("empty-key", r#"{"k":"","other":"x"}"#);
        let r = resolver_with(p, 60);
        let e = error(one(&r, &aws("empty-whole")).await);
        assert_eq!(
            (e.code().as_str(), e.to_string().as_str()),
            ("empty_value", "secret \"empty-whole\" (provider \"my-secrets-manager\") is an empty string; an empty value is never used as a credential")
        );
        let e = error(one(&r, &aws("empty-key/k")).await);
        assert_eq!(
            (e.code().as_str(), e.to_string().as_str()),
            ("empty_value", "key \"k\" in secret \"empty-key\" (provider \"my-secrets-manager\") is an empty string; an empty value is never used as a credential")
        );
        assert!(!e.is_transient());
        assert_eq!(one(&r, &aws("empty-key/other")).await, value("x"));
    }

    #[tokio::test]
    async fn when_listing_fails_every_candidate_is_asked_for() {
        let p = tutorial_provider();
        p.fail_list_with(Some(ProviderError::AccessDenied(
            "not authorized to ListSecrets".into(),
        )));
        let r = resolver_with(p.clone(), 60);
        let refs = [
            aws("alice-credentials/alice-key-auth"),
            aws("bob-credentials/bob-key-auth"),
            aws("team/app/db/password"),
        ];
        let out = r.resolve_batch(&refs).await;
        assert_eq!(out, vec![value("alice-key"), value("bob-key"), value("pw")]);
        assert_eq!(p.calls_for("alice-credentials/alice-key-auth"), 1);
        assert_eq!(p.calls_for("bob-credentials/bob-key-auth"), 1);
        assert_eq!(p.calls_for("team/app/db/password"), 1);
        assert_eq!(p.get_calls(), 6);
        assert_eq!(
            p.list_calls(),
            1,
            "a failed listing is not retried within the TTL"
        );
        // not found: still the right error, without hints
        let e = error(one(&r, &aws("alice-credentias/alice-key-auth")).await);
        assert_eq!(e.code(), "secret_not_found");
        assert_eq!(e.did_you_mean(), Some(&[][..]));
    }

    #[tokio::test]
    async fn an_incomplete_list_does_not_prove_absence() {
        let p = tutorial_provider();
        // lists only "alice-credentials" (the first name), and says there is more
        p.cap_list(1);
        let r = resolver_with(p.clone(), 60);
        assert_eq!(
            one(&r, &aws("alice-credentials/alice-key-auth")).await,
            value("alice-key")
        );
        assert_eq!(p.calls_for("alice-credentials/alice-key-auth"), 1);
        assert_eq!(p.list_calls(), 1);
    }

    #[tokio::test]
    async fn key_errors() {
        let r = resolver_with(tutorial_provider(), 60);
        let cases = [
            (
                "alice-credentials/nope",
                "key_not_found",
                "key \"nope\" not found in secret \"alice-credentials\" (provider \"my-secrets-manager\")",
            ),
            (
                "alice-credentials/n",
                "not_a_string",
                "key \"n\" in secret \"alice-credentials\" (provider \"my-secrets-manager\") is not a string",
            ),
            (
                "not-json/k",
                "not_json_object",
                "secret \"not-json\" (provider \"my-secrets-manager\") is not a JSON object, so key \"k\" cannot be taken from it",
            ),
        ];
        for (path, code, message) in cases {
            let e = error(one(&r, &format!("$secret://aws/{PROVIDER}/{path}")).await);
            assert_eq!(
                (e.code().as_str(), e.to_string().as_str()),
                (code, message),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn reference_errors() {
        let r = resolver_with(tutorial_provider(), 60);
        let cases = [
            ("alice-key", "invalid_reference", "not a reference: expected $secret://<manager>/<provider-id>/<secret-name>/<key>"),
            ("$secret://awss/p/s/k", "invalid_reference", "invalid reference: unknown manager \"awss\" (expected \"aws\" or \"vault\")"),
            ("$env://TOKEN", "invalid_reference", "$env:// references are resolved by the filter from its own environment, not by the sidecar"),
            ("$secret://aws/nope/s/k", "unknown_provider", "unknown provider \"nope\" (configured: \"my-secrets-manager\")"),
            ("$secret://vault/my-secrets-manager/s/k", "unsupported_manager",
             "the reference names manager \"vault\" but provider \"my-secrets-manager\" is of kind \"aws\""),
        ];
        for (reference, code, message) in cases {
            let e = error(one(&r, reference).await);
            assert_eq!(
                (e.code().as_str(), e.to_string().as_str()),
                (code, message),
                "{reference}"
            );
        }
    }

    #[tokio::test]
    async fn not_found_suggests_close_names() {
        let p = tutorial_provider();
        let r = resolver_with(p.clone(), 60);
        let e = error(
            one(
                &r,
                "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth",
            )
            .await,
        );
        assert_eq!(e.code(), "secret_not_found");
        assert_eq!(
            e.to_string(),
            "secret \"alice-credentias\" not found in provider \"my-secrets-manager\"; did you mean \"alice-credentials\"?"
        );
        assert_eq!(
            e.did_you_mean(),
            Some(&["alice-credentials".to_string()][..])
        );

        // nothing close: no suggestion
        let e = error(one(&r, "$secret://aws/my-secrets-manager/zzz/k").await);
        assert_eq!(
            e.to_string(),
            "secret \"zzz\" not found in provider \"my-secrets-manager\""
        );
        assert_eq!(e.did_you_mean(), Some(&[][..]));

        // a single segment is reported as written; a deep one without its key
        let e = error(one(&r, "$secret://aws/my-secrets-manager/bob-credential").await);
        assert_eq!(e.did_you_mean(), Some(&["bob-credentials".to_string()][..]));
        let e = error(one(&r, "$secret://aws/my-secrets-manager/team/ap/db/password").await);
        assert!(
            e.to_string().starts_with("secret \"team/ap/db\" not found"),
            "{e}"
        );
        assert_eq!(e.did_you_mean(), Some(&["team/app/db".to_string()][..]));
        // the name list was fetched once (cached with the positive TTL)
        assert_eq!(p.list_calls(), 1);
    }

    #[test]
    fn fields_of_a_parsed_secret_match_extract_key() {
        let raws = [
            r#"{"a":"x","n":1,"o":{"a":"y"},"nul":null,"a/b":"slash"}"#,
            r#"{"a":"first","a":"second"}"#,
            "[1,2]",
            "plain",
            "",
            r#""a""#,
        ];
        for raw in raws {
            let parsed = parse_object(raw);
            for key in ["a", "n", "o", "nul", "a/b", "missing", ""] {
                assert_eq!(
                    field_of(parsed.as_ref(), key),
                    secret_ref::extract_key(raw, Some(key)),
                    "{raw} / {key}"
                );
            }
        }
    }

    #[test]
    fn suggestions_are_ranked_and_capped() {
        let existing: Vec<String> = ["db-prod", "db-prad", "db-pro", "db-prodd", "db-stage", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            closest_names(&["db-prodx"], &existing),
            vec!["db-prod", "db-prodd", "db-prad"]
        );
        assert_eq!(
            closest_names(&["db-prod"], &existing),
            vec!["db-prad", "db-pro", "db-prodd"]
        );
        assert_eq!(closest_names(&["q"], &existing), vec!["x"]);
        assert!(closest_names(&["completely-else"], &existing).is_empty());
        assert_eq!(edit_distance("kitten", "sitting", 5), Some(3));
        assert_eq!(edit_distance("kitten", "sitting", 2), None);
        assert_eq!(edit_distance("", "abc", 3), Some(3));
        assert_eq!(edit_distance("héllo", "hello", 1), Some(1));
        assert_eq!(
            did_you_mean_suffix(&["a".into(), "b".into(), "c".into()]),
            "; did you mean \"a\", \"b\" or \"c\"?"
        );
    }

    #[tokio::test]
    async fn provider_failures_map_to_codes() {
        let cases = [
            (ProviderError::AccessDenied("not authorized".into()), "access_denied",
             "access denied reading secret \"alice-credentials/alice-key-auth\" from provider \"my-secrets-manager\": not authorized"),
            (ProviderError::Unreachable("connection refused".into()), "provider_unreachable",
             "provider \"my-secrets-manager\" unreachable reading secret \"alice-credentials/alice-key-auth\": connection refused"),
            (ProviderError::Other("throttled".into()), "provider_error",
             "provider \"my-secrets-manager\" failed reading secret \"alice-credentials/alice-key-auth\": throttled"),
            (ProviderError::Deleted("marked for deletion".into()), "secret_deleted",
             "secret \"alice-credentials/alice-key-auth\" (provider \"my-secrets-manager\") is deleted or scheduled for deletion: marked for deletion"),
            (ProviderError::DecryptionFailed("DecryptionFailure: no".into()), "decryption_failed",
             "provider \"my-secrets-manager\" cannot decrypt secret \"alice-credentials/alice-key-auth\" (is its KMS key disabled?): DecryptionFailure: no"),
            (ProviderError::Rejected("InvalidRequestException: disabled".into()), "provider_rejected",
             "provider \"my-secrets-manager\" refused the request for secret \"alice-credentials/alice-key-auth\": InvalidRequestException: disabled"),
        ];
        for (err, code, message) in cases {
            let transient = !err.is_definitive();
            let p = tutorial_provider();
            p.fail_with(Some(err));
            let r = resolver_with(p, 60);
            let e = error(
                one(
                    &r,
                    "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth",
                )
                .await,
            );
            assert_eq!((e.code().as_str(), e.to_string().as_str()), (code, message));
            assert_eq!(e.is_transient(), transient, "{code}");
        }
    }

    #[tokio::test]
    async fn a_deleted_secret_fails_after_the_ttl_and_an_outage_after_max_stale() {
        let p = tutorial_provider();
        let clock = Arc::new(ManualClock::new());
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(5),
            max_stale: Duration::from_secs(120),
            ..CacheConfig::default()
        };
        let mut r = Resolver::new(Cache::new(config, clock.clone()));
        r.add_provider(PROVIDER, Manager::Aws, p.clone());
        let alice = aws("alice-credentials/alice-key-auth");
        let bob = aws("bob-credentials/bob-key-auth");
        assert_eq!(
            r.resolve_batch(&[alice.clone(), bob.clone()]).await,
            vec![value("alice-key"), value("bob-key")]
        );

        // an outage: stale values until ttl + max_stale, then stale_expired
        p.fail_with(Some(ProviderError::Unreachable(
            "connection refused".into(),
        )));
        clock.advance(Duration::from_secs(179));
        assert_eq!(
            one(&r, &bob).await,
            Resolution::Value {
                value: SecretValue::new("bob-key"),
                stale: true,
                previous: None,
            }
        );
        clock.advance(Duration::from_secs(1));
        let e = error(one(&r, &bob).await);
        assert_eq!(e.code(), "stale_expired");
        assert_eq!(
            e.to_string(),
            "provider \"my-secrets-manager\" has been failing for secret \"bob-credentials\" (unreachable: connection refused) and its last good value is more than max_stale_s (120 s) past its TTL; it is no longer served"
        );
        assert!(!e.is_transient());
        // back: the value again
        p.fail_with(None);
        assert_eq!(one(&r, &bob).await, value("bob-key"));
        clock.advance(Duration::from_secs(60));
        // deleted: refused, never stale
        p.fail_with(Some(ProviderError::Deleted(
            "InvalidRequestException: marked for deletion".into(),
        )));
        let e = error(one(&r, &alice).await);
        assert_eq!(e.code(), "secret_deleted");
        assert!(!e.to_string().contains("alice-key\""), "{e}");
    }

    #[tokio::test]
    async fn stale_answers_carry_through_the_candidates() {
        // ttl 0: every batch asks the provider again
        let p = tutorial_provider();
        let r = resolver_with(p.clone(), 0);
        let tutorial = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
        assert_eq!(one(&r, tutorial).await, value("alice-key"));
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        // the long name was skipped as unlisted (its absence recorded) and listing now fails:
        // it is asked for, fails, and its recorded absence is used; the short one is stale
        assert_eq!(
            one(&r, tutorial).await,
            Resolution::Value {
                value: SecretValue::new("alice-key"),
                stale: true,
                previous: None,
            }
        );
    }

    #[tokio::test]
    async fn a_batch_fetches_each_secret_once_and_keeps_order() {
        let p = tutorial_provider();
        let r = resolver_with(p.clone(), 0);
        let refs: Vec<String> = [
            "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth",
            "$secret://aws/my-secrets-manager/bob-credentials/bob-key-auth",
            "$secret://aws/my-secrets-manager/alice-credentials/nope",
            "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth",
            "not-a-ref",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = r.resolve_batch(&refs).await;
        assert_eq!(out[0], value("alice-key"));
        assert_eq!(out[1], value("bob-key"));
        assert_eq!(error(out[2].clone()).code(), "key_not_found");
        assert_eq!(out[3], value("alice-key"));
        assert_eq!(error(out[4].clone()).code(), "invalid_reference");
        assert_eq!(p.calls_for("alice-credentials"), 1);
        assert_eq!(p.calls_for("bob-credentials"), 1);
        assert_eq!((p.list_calls(), p.get_calls()), (1, 2));
    }

    #[tokio::test]
    async fn distinct_secrets_resolve_concurrently_up_to_the_bound() {
        let p = Arc::new(FakeProvider::gated());
        for i in 0..6 {
            p.set(&format!("s{i}"), "v");
        }
        let r = Arc::new(resolver_with(p.clone(), 60).with_concurrency(3));
        let refs: Vec<String> = (0..6)
            .map(|i| format!("$secret://aws/my-secrets-manager/s{i}"))
            .collect();
        let task = {
            let r = r.clone();
            tokio::spawn(async move { r.resolve_batch(&refs).await })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(p.get_calls(), 3, "three lookups in flight at once");
        p.release(6);
        let out = task.await.unwrap();
        assert!(out.iter().all(|o| *o == value("v")));
        assert_eq!(p.max_in_flight(), 3);
    }

    fn resolver_with_clock(p: Arc<FakeProvider>) -> (Resolver, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let mut r = Resolver::new(Cache::new(CacheConfig::default(), clock.clone()));
        r.add_provider(PROVIDER, Manager::Aws, p);
        (r, clock)
    }

    #[tokio::test]
    async fn refetch_is_bounded_per_secret_however_often_asked() {
        let p = tutorial_provider();
        let (r, clock) = resolver_with_clock(p.clone());
        let alice = aws("alice-credentials/alice-key-auth");
        assert_eq!(one(&r, &alice).await, value("alice-key"));
        p.set("alice-credentials", r#"{"alice-key-auth":"alice-key-2"}"#);
        // a plain resolve: the cached value
        assert_eq!(one(&r, &alice).await, value("alice-key"));
        clock.advance(Duration::from_secs(2));
        // 1,000 refetching requests within one second: one GetSecretValue
        let refs = [alice.clone()];
        for i in 0..1000 {
            let out = r.resolve_request(&refs, false, &refs).await;
            assert_eq!(out, vec![value("alice-key-2")], "{i}");
            clock.advance(Duration::from_millis(1));
        }
        assert_eq!(p.calls_for("alice-credentials"), 2);
        // the longer candidate name is skipped through the name list, never asked for
        assert_eq!(p.calls_for("alice-credentials/alice-key-auth"), 0);
        // after the interval: one more
        clock.advance(Duration::from_millis(1));
        p.set("alice-credentials", r#"{"alice-key-auth":"alice-key-3"}"#);
        let out = r.resolve_request(&refs, false, &refs).await;
        assert_eq!(out, vec![value("alice-key-3")]);
        assert_eq!(p.calls_for("alice-credentials"), 3);
    }

    #[tokio::test]
    async fn a_refetch_serves_the_whole_batch_and_only_listed_refs_count() {
        let p = tutorial_provider();
        let (r, clock) = resolver_with_clock(p.clone());
        let alice_key = aws("alice-credentials/alice-key-auth");
        let alice_n = aws("alice-credentials/password");
        let bob = aws("bob-credentials/bob-key-auth");
        r.resolve_batch(&[alice_key.clone(), bob.clone()]).await;
        p.set(
            "alice-credentials",
            r#"{"alice-key-auth":"alice-key-2","password":"pw-2"}"#,
        );
        p.set("bob-credentials", r#"{"bob-key-auth":"bob-key-2"}"#);
        clock.advance(Duration::from_secs(2));
        // the plain reference into the refetched secret sees the new value, whatever its
        // place in the batch; bob (named in refetch but not in refs) is not refetched
        let out = r
            .resolve_request(
                &[alice_n.clone(), bob.clone(), alice_key.clone()],
                false,
                &[alice_key.clone(), aws("bob-credentials/other")],
            )
            .await;
        assert_eq!(
            out,
            vec![value("pw-2"), value("bob-key"), value("alice-key-2")]
        );
        assert_eq!(p.calls_for("alice-credentials"), 2);
        assert_eq!(p.calls_for("bob-credentials"), 1);
        // an invalid or unknown reference in refetch is answered as usual
        let out = r
            .resolve_request(&["nope".into()], false, &["nope".into()])
            .await;
        assert_eq!(error(out[0].clone()).code(), "invalid_reference");
    }

    #[tokio::test]
    async fn previous_values_only_when_asked_with_the_same_key() {
        let p = Arc::new(
            FakeProvider::new()
                .with(
                    "alice-credentials",
                    r#"{"alice-key-auth":"old-key","gone":"x"}"#,
                )
                .with("bob-credentials", r#"{"bob-key-auth":"bob-key"}"#),
        );
        p.set(
            "alice-credentials",
            r#"{"alice-key-auth":"new-key","added":"y"}"#,
        );
        let r = resolver_with(p.clone(), 60);
        let refs = [
            aws("alice-credentials/alice-key-auth"),
            aws("alice-credentials/added"),
            aws("bob-credentials/bob-key-auth"),
            aws("alice-credentials"),
        ];
        // not asked: no previous values, no calls for them
        assert_eq!(r.resolve_batch(&refs[..1]).await, vec![value("new-key")]);
        assert_eq!(p.previous_calls(), 0);

        let out = r.resolve_batch_with(&refs, true).await;
        let replaced_at = crate::providers::fake::FAKE_EPOCH + 1;
        assert_eq!(
            out[0],
            Resolution::Value {
                value: SecretValue::new("new-key"),
                stale: false,
                previous: Some(PreviousSecret {
                    value: SecretValue::new("old-key"),
                    replaced_at,
                }),
            }
        );
        // a key the previous version does not have: none; a secret with one version: none
        assert_eq!(out[1], value("y"));
        assert_eq!(out[2], value("bob-key"));
        // the whole secret
        assert!(matches!(
            &out[3],
            Resolution::Value { previous: Some(p), .. } if p.value.expose().contains("old-key")
        ));
        // one previous-version call per secret
        assert_eq!(p.previous_calls(), 2);
    }
}
