//! The secret cache: one entry per (provider id, secret name).
//!
//! * A value is served for `ttl`; a "not found" answer, and every other definitive answer about
//!   the secret (deleted or marked for deletion, cannot be decrypted, request refused), is
//!   remembered for `not_found_ttl`. A definitive answer replaces the value: it is never served
//!   again (revocation by deleting the secret takes effect at the first lookup after `ttl`).
//! * When the provider fails transiently (unreachable, throttled, 5xx, access denied, ...) the
//!   last answer it gave is served again, marked stale; a value only while it is less than
//!   `ttl + max_stale` old (since the provider last gave it), then [`Lookup::StaleExpired`].
//!   With no earlier answer the failure is returned.
//! * Concurrent lookups of one secret make one provider call: the first caller fetches while
//!   the others wait on the entry, and every caller that waited shares that call's outcome
//!   (also when it failed, so an outage does not turn into a queue of calls).
//! * After the TTL, a value with a version id is revalidated: the provider is asked whether the
//!   current version moved ([`Provider::current_version`], AWS `DescribeSecret`) and the value
//!   is fetched again only when it did; otherwise the cached value is fresh for another TTL. At
//!   most [`MAX_REVALIDATIONS`] times in a row, so that what only a fetch shows (AWS: a disabled
//!   KMS key) is seen within `(MAX_REVALIDATIONS + 1) * ttl`.
//! * A *refetch* ([`Cache::refetch`]: a caller saw a credential that matched nobody, so the
//!   secret may just have rotated) asks the provider even while the cached value is fresh,
//!   unless the provider was asked about this secret less than `refetch_min_interval` ago:
//!   however many callers ask, at most one provider call per secret and interval (plus the
//!   usual ones after the TTL). Concurrent refetches share one call, as lookups do. A transient
//!   failure answers as a plain lookup would (the fresh cached value; after the TTL the stale
//!   one). Only values are refetched: a remembered "not found" or refusal is kept for
//!   `not_found_ttl` as usual.
//! * The previous version of a secret (for rotation grace) is fetched only when asked for
//!   ([`Cache::previous`]), once per fetched current value, and kept with it.
//! * The provider's name list is cached for `ttl` too (one per provider); a failed listing is
//!   not retried within `ttl` either, and meanwhile the last list, if any, is served marked not
//!   fresh. A name the list shows absent can be recorded as
//!   "not found" as of the listing ([`Cache::note_absent`]), as if the provider had said so.
//! * Lookups are counted ([`Metrics`]: hits, misses, stale values served), and the age of the
//!   oldest value served within [`SERVED_WINDOW`] is kept for the metrics.
//! * Time comes from an injected [`Clock`].

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secret_ref::SecretValue;

use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::metrics::{CacheGauges, Metrics};
use crate::providers::{PreviousSecret, Provider, ProviderError, Secret, SecretNames};

/// A value is revalidated (its version id compared) instead of fetched at most this many times
/// in a row; the next time it is fetched.
pub const MAX_REVALIDATIONS: u32 = 9;

/// The metric of the oldest served value looks at the values served within this time.
pub const SERVED_WINDOW: Duration = Duration::from_secs(300);

/// The outcome of looking a secret up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The secret's value; `stale` when the provider just failed and this is the last good one.
    Found { value: SecretValue, stale: bool },
    /// The provider says there is no such secret (`stale`: it said so earlier and now failed).
    NotFound { stale: bool },
    /// The provider's definitive answer other than "not found": deleted, cannot be decrypted,
    /// refused (`stale`: it said so earlier and now failed).
    Refused { error: ProviderError, stale: bool },
    /// The provider fails (`error`) and the last good value was last given more than
    /// `ttl + max_stale` ago: it is no longer served.
    StaleExpired {
        error: ProviderError,
        max_stale: Duration,
    },
    /// The provider failed and there is no earlier answer to fall back on.
    Failed(ProviderError),
}

/// An answer the provider gave, and when.
#[derive(Debug, Clone)]
struct Known {
    answer: Answer,
    at: Instant,
}

#[derive(Debug, Clone)]
enum Answer {
    Value(Secret),
    NotFound,
    /// A definitive answer other than "not found" ([`ProviderError::is_definitive`]).
    Refused(ProviderError),
}

impl Answer {
    fn lookup(&self, stale: bool) -> Lookup {
        match self {
            Answer::Value(v) => Lookup::Found {
                value: v.value.clone(),
                stale,
            },
            Answer::NotFound => Lookup::NotFound { stale },
            Answer::Refused(error) => Lookup::Refused {
                error: error.clone(),
                stale,
            },
        }
    }
}

#[derive(Default)]
struct SecretSlot {
    /// Counts finished provider calls; a waiter that sees it move shares the outcome.
    attempts: AtomicU64,
    state: tokio::sync::Mutex<SecretState>,
    /// When a value of this secret was last served, and when the provider gave that value.
    served: Mutex<Option<(Instant, Instant)>>,
}

impl SecretSlot {
    /// Notes that `lookup` is being served (if it is a value) at `now`.
    fn note_served(&self, lookup: &Lookup, state: &SecretState, now: Instant) {
        if let (Lookup::Found { .. }, Some(known)) = (lookup, &state.known) {
            *self.served.lock().unwrap_or_else(PoisonError::into_inner) = Some((now, known.at));
        }
    }
}

#[derive(Default)]
struct SecretState {
    known: Option<Known>,
    last_outcome: Option<Lookup>,
    /// Revalidations since the value was last fetched.
    revalidations: u32,
    /// When the provider was last asked about this secret (any outcome).
    last_call: Option<Instant>,
    /// When a refetch last asked the provider about this secret: bounds refetches. Regular
    /// fetches do not count: a rotation just after one must not wait for the next TTL.
    last_refetch: Option<Instant>,
    /// The previous version of the known value, once asked for (`Some(None)`: there is none).
    /// Cleared whenever a value is fetched.
    previous: Option<Option<PreviousSecret>>,
}

/// What the provider said when asked after the TTL.
enum Fetched {
    /// A value (new or the same).
    Value(Secret),
    /// The current version is the cached one.
    Unchanged,
}

#[derive(Default)]
struct NamesSlot {
    state: tokio::sync::Mutex<NamesState>,
}

#[derive(Default)]
struct NamesState {
    list: Option<Arc<NameList>>,
    /// The last listing failure and when; cleared by a successful listing.
    failure: Option<(ProviderError, Instant)>,
}

/// A provider's secret names as listed at `listed_at`.
#[derive(Debug, PartialEq, Eq)]
pub struct NameList {
    pub names: BTreeSet<String>,
    /// `false` when the provider stopped listing early: absence from `names` proves nothing.
    pub complete: bool,
    pub listed_at: Instant,
}

impl NameList {
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// A name list and whether it is fresh (listed within the TTL; not fresh: listing just failed
/// and this is the last list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub list: Arc<NameList>,
    pub fresh: bool,
}

type SecretKey = (String, String);

pub struct Cache {
    /// Replaced on a configuration reload ([`Cache::set_config`]); entries are kept.
    config: std::sync::RwLock<CacheConfig>,
    clock: Arc<dyn Clock>,
    secrets: Mutex<HashMap<SecretKey, Arc<SecretSlot>>>,
    names: Mutex<HashMap<String, Arc<NamesSlot>>>,
    metrics: Arc<Metrics>,
}

impl Cache {
    pub fn new(config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        Cache {
            config: std::sync::RwLock::new(config),
            clock,
            secrets: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
        }
    }

    /// The TTLs and bounds in force.
    pub fn config(&self) -> CacheConfig {
        *self.config.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// New TTLs and bounds (a configuration reload): cached entries are kept and judged by
    /// them from now on.
    pub fn set_config(&self, config: CacheConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The metrics this cache counts into (shared with the providers and the HTTP API).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn secret_slot(&self, provider_id: &str, name: &str) -> Arc<SecretSlot> {
        let mut map = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((provider_id.to_string(), name.to_string()))
            .or_default()
            .clone()
    }

    fn names_slot(&self, provider_id: &str) -> Arc<NamesSlot> {
        let mut map = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(provider_id.to_string()).or_default().clone()
    }

    fn is_fresh(&self, known: &Known, now: Instant) -> bool {
        let ttl = match known.answer {
            Answer::Value(_) => self.config().ttl,
            Answer::NotFound | Answer::Refused(_) => self.config().not_found_ttl,
        };
        now.saturating_duration_since(known.at) < ttl
    }

    /// The fresh answer cached for `name`, without asking the provider (waits while a lookup of
    /// `name` is in flight).
    pub async fn peek(&self, provider_id: &str, name: &str) -> Option<Lookup> {
        let slot = self.secret_slot(provider_id, name);
        let state = slot.state.lock().await;
        let known = state.known.as_ref()?;
        let now = self.clock.now();
        if !self.is_fresh(known, now) {
            return None;
        }
        let lookup = known.answer.lookup(false);
        self.metrics.cache_hit();
        slot.note_served(&lookup, &state, now);
        Some(lookup)
    }

    /// Records that `name` did not exist when the provider's names were listed at `listed_at`,
    /// unless something newer is known. Served like a "not found" answer from then on (fresh
    /// for `not_found_ttl`, and as the last answer when the provider fails).
    pub async fn note_absent(&self, provider_id: &str, name: &str, listed_at: Instant) {
        let slot = self.secret_slot(provider_id, name);
        let mut state = slot.state.lock().await;
        if state.known.as_ref().is_some_and(|k| k.at >= listed_at) {
            return;
        }
        state.known = Some(Known {
            answer: Answer::NotFound,
            at: listed_at,
        });
    }

    /// The secret `name` of provider `provider_id`, from the cache or from `provider`.
    pub async fn get(&self, provider_id: &str, provider: &dyn Provider, name: &str) -> Lookup {
        self.lookup(provider_id, provider, name, false).await
    }

    /// [`Cache::get`], but a cached value, even a fresh one, is fetched from `provider` again
    /// unless the provider was asked about `name` less than `refetch_min_interval` ago.
    pub async fn refetch(&self, provider_id: &str, provider: &dyn Provider, name: &str) -> Lookup {
        self.lookup(provider_id, provider, name, true).await
    }

    async fn lookup(
        &self,
        provider_id: &str,
        provider: &dyn Provider,
        name: &str,
        refetch: bool,
    ) -> Lookup {
        let slot = self.secret_slot(provider_id, name);
        let attempts_seen = slot.attempts.load(Ordering::SeqCst);
        let mut state = slot.state.lock().await;

        if slot.attempts.load(Ordering::SeqCst) != attempts_seen {
            // Another caller fetched this secret while we waited: share its outcome.
            if let Some(outcome) = &state.last_outcome {
                self.metrics.cache_hit();
                if matches!(outcome, Lookup::Found { stale: true, .. }) {
                    self.metrics.stale_served();
                }
                slot.note_served(outcome, &state, self.clock.now());
                return outcome.clone();
            }
        }
        let now = self.clock.now();
        let mut refetching = false;
        if let Some(known) = &state.known {
            let refetch_now = refetch
                && matches!(known.answer, Answer::Value(_))
                && state.last_refetch.is_none_or(|at| {
                    now.saturating_duration_since(at) >= self.config().refetch_min_interval
                });
            refetching = refetch_now;
            if self.is_fresh(known, now) && !refetch_now {
                let lookup = known.answer.lookup(false);
                self.metrics.cache_hit();
                slot.note_served(&lookup, &state, now);
                return lookup;
            }
        }

        self.metrics.cache_miss();
        let result = self.fetch(provider, name, &mut state).await;
        let now = self.clock.now();
        state.last_call = Some(now);
        if refetching {
            state.last_refetch = Some(now);
        }
        let outcome = match result {
            Ok(Fetched::Unchanged) => {
                state.revalidations += 1;
                match state.known.as_mut() {
                    Some(known) => {
                        known.at = now;
                        known.answer.lookup(false)
                    }
                    // (fetch only answers Unchanged for a known value)
                    None => Lookup::Failed(ProviderError::Other("no cached value".into())),
                }
            }
            Ok(Fetched::Value(secret)) => {
                let value = secret.value.clone();
                state.known = Some(Known {
                    answer: Answer::Value(secret),
                    at: now,
                });
                state.revalidations = 0;
                state.previous = None;
                Lookup::Found {
                    value,
                    stale: false,
                }
            }
            Err(ProviderError::NotFound) => {
                state.known = Some(Known {
                    answer: Answer::NotFound,
                    at: now,
                });
                state.previous = None;
                Lookup::NotFound { stale: false }
            }
            Err(err) if err.is_definitive() => {
                tracing::warn!(
                    provider = provider_id,
                    secret = name,
                    error = %err,
                    "provider refused the secret: no value is served for it"
                );
                state.known = Some(Known {
                    answer: Answer::Refused(err.clone()),
                    at: now,
                });
                state.previous = None;
                Lookup::Refused {
                    error: err,
                    stale: false,
                }
            }
            Err(err) => {
                let config = self.config();
                let max_age = config.ttl.saturating_add(config.max_stale);
                let outcome = match &state.known {
                    // (a refetch of a fresh value: answered as without the refetch)
                    Some(known) if self.is_fresh(known, now) => known.answer.lookup(false),
                    Some(Known {
                        answer: Answer::Value(_),
                        at,
                    }) if now.saturating_duration_since(*at) >= max_age => Lookup::StaleExpired {
                        error: err.clone(),
                        max_stale: config.max_stale,
                    },
                    Some(known) => known.answer.lookup(true),
                    None => Lookup::Failed(err.clone()),
                };
                tracing::warn!(
                    provider = provider_id,
                    secret = name,
                    error = %err,
                    serving_last_answer = !matches!(outcome, Lookup::Failed(_) | Lookup::StaleExpired { .. }),
                    stale_expired = matches!(outcome, Lookup::StaleExpired { .. }),
                    "provider call failed"
                );
                outcome
            }
        };
        if matches!(outcome, Lookup::Found { stale: true, .. }) {
            self.metrics.stale_served();
        }
        slot.note_served(&outcome, &state, now);
        state.last_outcome = Some(outcome.clone());
        slot.attempts.fetch_add(1, Ordering::SeqCst);
        outcome
    }

    /// Revalidates the known value if it has a version id and was not revalidated too often,
    /// else fetches the value.
    async fn fetch(
        &self,
        provider: &dyn Provider,
        name: &str,
        state: &mut SecretState,
    ) -> Result<Fetched, ProviderError> {
        let cached_version = match &state.known {
            Some(Known {
                answer:
                    Answer::Value(Secret {
                        version: Some(v), ..
                    }),
                ..
            }) if state.revalidations < MAX_REVALIDATIONS => Some(v.clone()),
            _ => None,
        };
        if let Some(cached) = cached_version {
            if provider.current_version(name).await? == Some(cached) {
                return Ok(Fetched::Unchanged);
            }
        }
        provider.get_secret(name).await.map(Fetched::Value)
    }

    /// The version the cached value of `name` replaced, for rotation grace. Asked from
    /// `provider` once per fetched value when `fetch` is set (a transient failure is not
    /// remembered: asked again next time); without `fetch` only what is already known. `None`
    /// without a cached value, or when there is no previous version.
    pub async fn previous(
        &self,
        provider_id: &str,
        provider: &dyn Provider,
        name: &str,
        fetch: bool,
    ) -> Option<PreviousSecret> {
        let slot = self.secret_slot(provider_id, name);
        let mut state = slot.state.lock().await;
        let Some(Known {
            answer: Answer::Value(current),
            ..
        }) = &state.known
        else {
            return None;
        };
        if let Some(known) = &state.previous {
            return known.clone();
        }
        if !fetch {
            return None;
        }
        match provider.get_previous(name, current).await {
            Ok(previous) => {
                state.previous = Some(previous.clone());
                previous
            }
            Err(err) if err.is_definitive() => {
                state.previous = Some(None);
                None
            }
            Err(err) => {
                tracing::warn!(
                    provider = provider_id,
                    secret = name,
                    error = %err,
                    "cannot read the previous version: answering without it"
                );
                None
            }
        }
    }

    /// The provider's secret names, listed at most once per positive TTL (also when listing
    /// fails). Without a fresh list, the last list (however old) is returned, not fresh, if
    /// there is one; else the listing's failure.
    pub async fn secret_names(
        &self,
        provider_id: &str,
        provider: &dyn Provider,
    ) -> Result<Listing, ProviderError> {
        let slot = self.names_slot(provider_id);
        let mut state = slot.state.lock().await;
        let now = self.clock.now();
        let ttl = self.config().ttl;
        let within_ttl = |at: Instant| now.saturating_duration_since(at) < ttl;
        let last = |state: &NamesState, err: &ProviderError| match &state.list {
            Some(list) => Ok(Listing {
                list: list.clone(),
                fresh: false,
            }),
            None => Err(err.clone()),
        };
        if let Some(list) = &state.list {
            if within_ttl(list.listed_at) {
                return Ok(Listing {
                    list: list.clone(),
                    fresh: true,
                });
            }
        }
        if let Some((err, at)) = &state.failure {
            if within_ttl(*at) {
                return last(&state, err);
            }
        }
        match provider.list_secret_names().await {
            Ok(SecretNames { names, complete }) => {
                let list = Arc::new(NameList {
                    names: names.into_iter().collect(),
                    complete,
                    listed_at: self.clock.now(),
                });
                state.list = Some(list.clone());
                state.failure = None;
                Ok(Listing { list, fresh: true })
            }
            Err(err) => {
                tracing::warn!(
                    provider = provider_id,
                    error = %err,
                    serving_last_list = state.list.is_some(),
                    "listing secret names failed: asking for every candidate name, and \"did you mean\" hints come from the last list if any"
                );
                state.failure = Some((err.clone(), self.clock.now()));
                last(&state, &err)
            }
        }
    }
}

impl CacheGauges for Cache {
    fn oldest_served_value_age(&self) -> Option<Duration> {
        let now = self.clock.now();
        let slots: Vec<Arc<SecretSlot>> = self
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        slots
            .iter()
            .filter_map(|slot| *slot.served.lock().unwrap_or_else(PoisonError::into_inner))
            .filter(|(served, _)| now.saturating_duration_since(*served) <= SERVED_WINDOW)
            .map(|(_, given)| now.saturating_duration_since(given))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::providers::fake::FakeProvider;
    use std::time::Duration;

    fn cache(ttl: u64, not_found_ttl: u64) -> (Arc<Cache>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let config = CacheConfig {
            ttl: Duration::from_secs(ttl),
            not_found_ttl: Duration::from_secs(not_found_ttl),
            max_stale: Duration::from_secs(3600),
            ..CacheConfig::default()
        };
        (Arc::new(Cache::new(config, clock.clone())), clock)
    }

    fn found(v: &str, stale: bool) -> Lookup {
        Lookup::Found {
            value: SecretValue::new(v),
            stale,
        }
    }

    #[tokio::test]
    async fn values_are_served_for_the_ttl_then_refetched() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("s", "v1");
        assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
        p.set("s", "v2");
        clock.advance(Duration::from_secs(59));
        assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
        assert_eq!(p.get_calls(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.get("p", &p, "s").await, found("v2", false));
        assert_eq!(p.get_calls(), 2);
    }

    #[tokio::test]
    async fn not_found_is_remembered_for_the_shorter_ttl() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new();
        assert_eq!(
            cache.get("p", &p, "s").await,
            Lookup::NotFound { stale: false }
        );
        p.set("s", "created");
        clock.advance(Duration::from_secs(4));
        assert_eq!(
            cache.get("p", &p, "s").await,
            Lookup::NotFound { stale: false }
        );
        assert_eq!(p.get_calls(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.get("p", &p, "s").await, found("created", false));
        assert_eq!(p.get_calls(), 2);
        // a deleted secret becomes "not found" after the positive TTL, not stale
        p.remove("s");
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            cache.get("p", &p, "s").await,
            Lookup::NotFound { stale: false }
        );
    }

    #[tokio::test]
    async fn ttl_zero_asks_the_provider_every_time() {
        let (cache, _clock) = cache(0, 0);
        let p = FakeProvider::new().with("s", "v");
        for _ in 0..3 {
            assert_eq!(cache.get("p", &p, "s").await, found("v", false));
        }
        assert_eq!(p.get_calls(), 3);
    }

    #[tokio::test]
    async fn provider_failure_serves_the_last_answer_marked_stale() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("s", "v1");
        assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
        assert_eq!(
            cache.get("p", &p, "gone").await,
            Lookup::NotFound { stale: false }
        );

        clock.advance(Duration::from_secs(61));
        let down = ProviderError::Unreachable("connection refused".into());
        p.fail_with(Some(down.clone()));
        assert_eq!(cache.get("p", &p, "s").await, found("v1", true));
        assert_eq!(
            cache.get("p", &p, "gone").await,
            Lookup::NotFound { stale: true }
        );
        // nothing known about this one: the failure itself
        assert_eq!(cache.get("p", &p, "never").await, Lookup::Failed(down));
        let denied = ProviderError::AccessDenied("no".into());
        p.fail_with(Some(denied.clone()));
        assert_eq!(cache.get("p", &p, "s").await, found("v1", true));

        // recovery: fresh values again
        p.fail_with(None);
        p.set("s", "v2");
        assert_eq!(cache.get("p", &p, "s").await, found("v2", false));
    }

    #[tokio::test]
    async fn a_definitive_answer_replaces_the_value_after_the_ttl() {
        for refusal in [
            ProviderError::Deleted("marked for deletion".into()),
            ProviderError::DecryptionFailed("KMS key disabled".into()),
            ProviderError::Rejected("secret disabled".into()),
        ] {
            let (cache, clock) = cache(60, 5);
            let p = FakeProvider::new().with("s", "v1");
            assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
            p.fail_with(Some(refusal.clone()));
            // the cached value until the TTL
            clock.advance(Duration::from_secs(59));
            assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
            // then the refusal, never the last value
            clock.advance(Duration::from_secs(1));
            let refused = Lookup::Refused {
                error: refusal.clone(),
                stale: false,
            };
            assert_eq!(cache.get("p", &p, "s").await, refused);
            // remembered for not_found_ttl, then asked again
            assert_eq!(cache.peek("p", "s").await, Some(refused.clone()));
            assert_eq!(p.get_calls(), 2);
            clock.advance(Duration::from_secs(5));
            assert_eq!(cache.peek("p", "s").await, None);
            // an outage after the refusal: still refused (stale), not the old value
            p.fail_with(Some(ProviderError::Unreachable("down".into())));
            assert_eq!(
                cache.get("p", &p, "s").await,
                Lookup::Refused {
                    error: refusal,
                    stale: true
                }
            );
        }
    }

    #[tokio::test]
    async fn stale_values_are_served_for_at_most_max_stale() {
        let clock = Arc::new(ManualClock::new());
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(5),
            max_stale: Duration::from_secs(100),
            ..CacheConfig::default()
        };
        let cache = Cache::new(config, clock.clone());
        let p = FakeProvider::new().with("s", "v1");
        assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
        let down = ProviderError::Unreachable("connection refused".into());
        p.fail_with(Some(down.clone()));
        // fresh for the TTL, then stale for max_stale
        clock.advance(Duration::from_secs(60));
        assert_eq!(cache.get("p", &p, "s").await, found("v1", true));
        clock.advance(Duration::from_secs(99));
        assert_eq!(cache.get("p", &p, "s").await, found("v1", true));
        clock.advance(Duration::from_secs(1));
        let expired = Lookup::StaleExpired {
            error: down.clone(),
            max_stale: Duration::from_secs(100),
        };
        assert_eq!(cache.get("p", &p, "s").await, expired);
        // throttling or access denied count the same
        p.fail_with(Some(ProviderError::AccessDenied("no".into())));
        assert!(matches!(
            cache.get("p", &p, "s").await,
            Lookup::StaleExpired { .. }
        ));
        // recovery: a fresh value, and a new stale budget
        p.fail_with(None);
        p.set("s", "v2");
        assert_eq!(cache.get("p", &p, "s").await, found("v2", false));
        p.fail_with(Some(down));
        clock.advance(Duration::from_secs(61));
        assert_eq!(cache.get("p", &p, "s").await, found("v2", true));
    }

    #[tokio::test]
    async fn max_stale_zero_never_serves_a_stale_value() {
        let clock = Arc::new(ManualClock::new());
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(5),
            max_stale: Duration::ZERO,
            ..CacheConfig::default()
        };
        let cache = Cache::new(config, clock.clone());
        let p = FakeProvider::new().with("s", "v1");
        cache.get("p", &p, "s").await;
        p.fail_with(Some(ProviderError::Other("ThrottlingException".into())));
        clock.advance(Duration::from_secs(60));
        assert!(matches!(
            cache.get("p", &p, "s").await,
            Lookup::StaleExpired { .. }
        ));
    }

    #[tokio::test]
    async fn entries_are_per_provider() {
        let (cache, _clock) = cache(60, 5);
        let a = FakeProvider::new().with("s", "from-a");
        let b = FakeProvider::new().with("s", "from-b");
        assert_eq!(cache.get("a", &a, "s").await, found("from-a", false));
        assert_eq!(cache.get("b", &b, "s").await, found("from-b", false));
        assert_eq!((a.get_calls(), b.get_calls()), (1, 1));
    }

    /// Spawns `n` concurrent lookups of one secret against a provider that blocks, checks they
    /// are all waiting, releases the provider and returns the outcomes.
    async fn concurrent_lookups(
        cache: &Arc<Cache>,
        p: &Arc<FakeProvider>,
        n: usize,
    ) -> Vec<Lookup> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (cache, p) = (cache.clone(), p.clone());
                tokio::spawn(async move { cache.get("p", p.as_ref(), "s").await })
            })
            .collect();
        // current-thread runtime: a few yields let every task reach its await point
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            tasks.iter().all(|t| !t.is_finished()),
            "lookups should wait"
        );
        p.release(n);
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_provider_call() {
        let (cache, _clock) = cache(60, 5);
        let p = Arc::new(FakeProvider::gated().with("s", "v"));
        let outcomes = concurrent_lookups(&cache, &p, 8).await;
        assert_eq!(p.get_calls(), 1);
        assert!(
            outcomes.iter().all(|o| *o == found("v", false)),
            "{outcomes:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_misses_share_a_failure_too() {
        // ttl 0: nothing is ever fresh, so only sharing the in-flight call prevents more calls
        let (cache, _clock) = cache(0, 0);
        let p = Arc::new(FakeProvider::gated());
        let down = ProviderError::Unreachable("timeout".into());
        p.fail_with(Some(down.clone()));
        let outcomes = concurrent_lookups(&cache, &p, 6).await;
        assert_eq!(p.get_calls(), 1);
        assert!(outcomes.iter().all(|o| *o == Lookup::Failed(down.clone())));

        // a lookup that starts after the call finished asks again
        p.fail_with(None);
        p.set("s", "back");
        p.release(1);
        assert_eq!(cache.get("p", p.as_ref(), "s").await, found("back", false));
        assert_eq!(p.get_calls(), 2);
    }

    #[tokio::test]
    async fn refetches_are_bounded_per_secret_and_interval() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("s", "v1");
        assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
        // rotated right after a regular fetch: the first refetch asks at once (only refetches
        // count toward the bound)
        p.set("s", "v2");
        assert_eq!(cache.refetch("p", &p, "s").await, found("v2", false));
        assert_eq!(p.get_calls(), 2);
        // just refetched: a refetch is answered from the cache
        p.set("s", "v2b");
        assert_eq!(cache.refetch("p", &p, "s").await, found("v2", false));
        assert_eq!(p.get_calls(), 2);
        p.set("s", "v2");
        // 1,000 refetches within one second: one provider call, the new value at once
        clock.advance(Duration::from_secs(2));
        for i in 0..1000 {
            assert_eq!(cache.refetch("p", &p, "s").await, found("v2", false), "{i}");
            clock.advance(Duration::from_millis(1));
        }
        assert_eq!(p.get_calls(), 3);
        // a plain lookup meanwhile is a cache hit
        assert_eq!(cache.get("p", &p, "s").await, found("v2", false));
        assert_eq!(p.get_calls(), 3);
        // after the interval: one more
        clock.advance(Duration::from_millis(1));
        p.set("s", "v3");
        assert_eq!(cache.refetch("p", &p, "s").await, found("v3", false));
        assert_eq!(cache.refetch("p", &p, "s").await, found("v3", false));
        assert_eq!(p.get_calls(), 4);
    }

    #[tokio::test]
    async fn a_zero_refetch_interval_asks_every_time() {
        let clock = Arc::new(ManualClock::new());
        let config = CacheConfig {
            refetch_min_interval: Duration::ZERO,
            ..CacheConfig::default()
        };
        let cache = Cache::new(config, clock);
        let p = FakeProvider::new().with("s", "v1");
        for _ in 0..3 {
            assert_eq!(cache.refetch("p", &p, "s").await, found("v1", false));
        }
        assert_eq!(p.get_calls(), 3);
    }

    #[tokio::test]
    async fn a_refetch_revalidates_a_versioned_value() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::describing().with("s", "v1");
        cache.get("p", &p, "s").await;
        clock.advance(Duration::from_secs(1));
        // unchanged: one DescribeSecret, no GetSecretValue
        assert_eq!(cache.refetch("p", &p, "s").await, found("v1", false));
        assert_eq!((p.get_calls(), p.describe_calls()), (1, 1));
        // rotated: the new value
        p.set("s", "v2");
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.refetch("p", &p, "s").await, found("v2", false));
        assert_eq!((p.get_calls(), p.describe_calls()), (2, 2));
    }

    #[tokio::test]
    async fn a_failed_refetch_answers_as_a_lookup_would() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("s", "v1");
        cache.get("p", &p, "s").await;
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        // within the TTL: the cached value, not stale
        clock.advance(Duration::from_secs(2));
        assert_eq!(cache.refetch("p", &p, "s").await, found("v1", false));
        assert_eq!(p.get_calls(), 2);
        // a failed call counts for the bound too
        assert_eq!(cache.refetch("p", &p, "s").await, found("v1", false));
        assert_eq!(p.get_calls(), 2);
        // after the TTL: stale, as a plain lookup
        clock.advance(Duration::from_secs(60));
        assert_eq!(cache.refetch("p", &p, "s").await, found("v1", true));
        assert_eq!(cache.get("p", &p, "s").await, found("v1", true));
        assert_eq!(p.get_calls(), 4);
        // a definitive answer on a refetch replaces the value at once
        p.fail_with(Some(ProviderError::Deleted("gone".into())));
        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            cache.refetch("p", &p, "s").await,
            Lookup::Refused { stale: false, .. }
        ));
    }

    #[tokio::test]
    async fn not_found_is_not_refetched() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new();
        cache.get("p", &p, "s").await;
        p.set("s", "created");
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            cache.refetch("p", &p, "s").await,
            Lookup::NotFound { stale: false }
        );
        assert_eq!(p.get_calls(), 1);
    }

    #[tokio::test]
    async fn concurrent_refetches_make_one_provider_call() {
        let (cache, clock) = cache(60, 5);
        let p = Arc::new(FakeProvider::gated().with("s", "v1"));
        p.release(1);
        cache.get("p", p.as_ref(), "s").await;
        p.set("s", "v2");
        clock.advance(Duration::from_secs(2));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, p) = (cache.clone(), p.clone());
                tokio::spawn(async move { cache.refetch("p", p.as_ref(), "s").await })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(tasks.iter().all(|t| !t.is_finished()), "refetches wait");
        p.release(8);
        for t in tasks {
            assert_eq!(t.await.unwrap(), found("v2", false));
        }
        assert_eq!(p.get_calls(), 2);
    }

    /// The listed names and whether the listing was fresh.
    async fn names(cache: &Cache, p: &FakeProvider) -> (Vec<String>, bool) {
        let listing = cache.secret_names("p", p).await.unwrap();
        (listing.list.names.iter().cloned().collect(), listing.fresh)
    }

    #[tokio::test]
    async fn secret_names_are_cached_for_the_ttl() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("a", "1");
        assert_eq!(names(&cache, &p).await, (vec!["a".into()], true));
        p.set("b", "2");
        clock.advance(Duration::from_secs(30));
        assert_eq!(names(&cache, &p).await, (vec!["a".into()], true));
        assert_eq!(p.list_calls(), 1);
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            names(&cache, &p).await,
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(p.list_calls(), 2);
        let listing = cache.secret_names("p", &p).await.unwrap();
        assert!(listing.list.complete);
        assert_eq!(listing.list.listed_at, clock.now());
        // failure: the old list is better than none, but it is not fresh
        clock.advance(Duration::from_secs(60));
        p.fail_with(Some(ProviderError::Unreachable("x".into())));
        assert_eq!(
            names(&cache, &p).await,
            (vec!["a".into(), "b".into()], false)
        );
        assert_eq!(p.list_calls(), 3);
    }

    #[tokio::test]
    async fn a_failed_listing_is_retried_after_the_ttl() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("a", "1");
        let denied = ProviderError::AccessDenied("no".into());
        p.fail_list_with(Some(denied.clone()));
        assert_eq!(cache.secret_names("p", &p).await, Err(denied.clone()));
        clock.advance(Duration::from_secs(59));
        assert_eq!(cache.secret_names("p", &p).await, Err(denied));
        assert_eq!(p.list_calls(), 1);
        p.fail_list_with(None);
        clock.advance(Duration::from_secs(1));
        assert_eq!(names(&cache, &p).await, (vec!["a".into()], true));
        assert_eq!(p.list_calls(), 2);
    }

    #[tokio::test]
    async fn a_capped_listing_is_incomplete() {
        let (cache, _clock) = cache(60, 5);
        let p = FakeProvider::new().with("a", "1").with("b", "2");
        p.cap_list(1);
        let listing = cache.secret_names("p", &p).await.unwrap();
        assert!(!listing.list.complete);
        assert!(listing.list.contains("a") && !listing.list.contains("b"));
    }

    #[tokio::test]
    async fn peek_answers_only_fresh_entries_without_calls() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("s", "v");
        assert_eq!(cache.peek("p", "s").await, None);
        cache.get("p", &p, "s").await;
        cache.get("p", &p, "gone").await;
        assert_eq!(cache.peek("p", "s").await, Some(found("v", false)));
        assert_eq!(
            cache.peek("p", "gone").await,
            Some(Lookup::NotFound { stale: false })
        );
        clock.advance(Duration::from_secs(5));
        assert_eq!(cache.peek("p", "gone").await, None);
        clock.advance(Duration::from_secs(55));
        assert_eq!(cache.peek("p", "s").await, None);
        assert_eq!(p.get_calls(), 2);
    }

    #[tokio::test]
    async fn names_noted_absent_are_served_as_not_found() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("old", "v");
        let listed_at = clock.now();
        cache.note_absent("p", "a", listed_at).await;
        assert_eq!(
            cache.peek("p", "a").await,
            Some(Lookup::NotFound { stale: false })
        );
        // fresh for not_found_ttl from the listing, then the provider is asked
        clock.advance(Duration::from_secs(5));
        assert_eq!(cache.peek("p", "a").await, None);
        // the provider fails: the noted absence is the last answer
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        assert_eq!(
            cache.get("p", &p, "a").await,
            Lookup::NotFound { stale: true }
        );
        p.fail_with(None);

        // a newer answer is kept; an older one is replaced
        assert_eq!(cache.get("p", &p, "old").await, found("v", false));
        cache.note_absent("p", "old", listed_at).await;
        assert_eq!(cache.peek("p", "old").await, Some(found("v", false)));
        clock.advance(Duration::from_secs(1));
        cache.note_absent("p", "old", clock.now()).await;
        assert_eq!(
            cache.peek("p", "old").await,
            Some(Lookup::NotFound { stale: false })
        );
        assert_eq!(p.get_calls(), 2);
    }

    #[tokio::test]
    async fn after_the_ttl_an_unchanged_version_is_not_fetched_again() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::describing().with("s", "v1");
        assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
        assert_eq!((p.get_calls(), p.describe_calls()), (1, 0));
        // unchanged: one DescribeSecret per TTL, no fetch
        clock.advance(Duration::from_secs(60));
        for i in 1..=MAX_REVALIDATIONS as usize {
            assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
            assert_eq!((p.get_calls(), p.describe_calls()), (1, i));
            // fresh again for a whole TTL
            clock.advance(Duration::from_secs(59));
            assert_eq!(cache.peek("p", "s").await, Some(found("v1", false)));
            clock.advance(Duration::from_secs(1));
        }
        // after MAX_REVALIDATIONS in a row, the value is fetched
        assert_eq!(cache.get("p", &p, "s").await, found("v1", false));
        assert_eq!(p.get_calls(), 2);
        // a moved version is fetched at once
        p.set("s", "v2");
        clock.advance(Duration::from_secs(60));
        assert_eq!(cache.get("p", &p, "s").await, found("v2", false));
        assert_eq!(p.get_calls(), 3);
        // a definitive answer to the version question is the answer
        p.remove("s");
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            cache.get("p", &p, "s").await,
            Lookup::NotFound { stale: false }
        );
        assert_eq!(p.get_calls(), 3);
    }

    #[tokio::test]
    async fn a_failed_version_question_serves_the_value_stale() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::describing().with("s", "v1");
        cache.get("p", &p, "s").await;
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        clock.advance(Duration::from_secs(61));
        assert_eq!(cache.get("p", &p, "s").await, found("v1", true));
        assert_eq!((p.get_calls(), p.describe_calls()), (1, 1));
    }

    #[tokio::test]
    async fn previous_versions_are_fetched_once_per_value_and_only_when_asked() {
        let (cache, clock) = cache(60, 5);
        let p = FakeProvider::new().with("s", "v1");
        // nothing cached: nothing to say
        assert_eq!(cache.previous("p", &p, "s", true).await, None);
        cache.get("p", &p, "s").await;
        assert_eq!(cache.previous("p", &p, "s", true).await, None);
        assert_eq!(p.previous_calls(), 1);
        assert_eq!(cache.previous("p", &p, "s", true).await, None);
        assert_eq!(p.previous_calls(), 1, "\"none\" is remembered");

        p.set("s", "v2");
        clock.advance(Duration::from_secs(60));
        assert_eq!(cache.get("p", &p, "s").await, found("v2", false));
        // not asked without fetch
        assert_eq!(cache.previous("p", &p, "s", false).await, None);
        assert_eq!(p.previous_calls(), 1);
        let previous = cache.previous("p", &p, "s", true).await.unwrap();
        assert_eq!(previous.value.expose(), "v1");
        assert_eq!(previous.replaced_at, crate::providers::fake::FAKE_EPOCH + 1);
        assert_eq!(cache.previous("p", &p, "s", false).await, Some(previous));
        assert_eq!(p.previous_calls(), 2);

        // a transient failure is not remembered
        p.set("s", "v3");
        clock.advance(Duration::from_secs(60));
        cache.get("p", &p, "s").await;
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        assert_eq!(cache.previous("p", &p, "s", true).await, None);
        p.fail_with(None);
        assert_eq!(
            cache
                .previous("p", &p, "s", true)
                .await
                .map(|p| p.value.expose().to_string()),
            Some("v2".to_string())
        );
        assert_eq!(p.previous_calls(), 4);
    }
}
