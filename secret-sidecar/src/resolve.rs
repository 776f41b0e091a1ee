//! Turning `$secret://` references into values.
//!
//! A reference's secret name may contain `/`, so its `(name, key)` candidates are tried longest
//! name first while the provider says "not found". A batch fetches each distinct secret once
//! (even with a zero TTL) and resolves distinct references concurrently, at most
//! `concurrency` at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::stream::{FuturesOrdered, StreamExt};
use secret_ref::{
    extract_key, ExtractError, Manager, ParseError, Reference, SecretRef, SecretValue,
};
use tokio::sync::OnceCell;

use crate::cache::{Cache, Lookup};
use crate::providers::{Provider, ProviderError};

/// How many distinct references of a batch are resolved at the same time by default.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// At most this many "did you mean" suggestions.
const MAX_SUGGESTIONS: usize = 3;

/// What a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// `stale`: the provider failed and this is the last good value.
    Value {
        value: SecretValue,
        stale: bool,
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
}

impl ResolveError {
    /// The error code on the wire (docs/DESIGN.md, section 2).
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::InvalidReference(_) => "invalid_reference",
            ResolveError::UnknownProvider { .. } => "unknown_provider",
            ResolveError::UnsupportedManager { .. } => "unsupported_manager",
            ResolveError::SecretNotFound { .. } => "secret_not_found",
            ResolveError::KeyNotFound { .. } => "key_not_found",
            ResolveError::NotJsonObject { .. } => "not_json_object",
            ResolveError::NotAString { .. } => "not_a_string",
            ResolveError::AccessDenied { .. } => "access_denied",
            ResolveError::ProviderUnreachable { .. } => "provider_unreachable",
            ResolveError::ProviderError { .. } => "provider_error",
        }
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

struct RegisteredProvider {
    manager: Manager,
    provider: Arc<dyn Provider>,
}

/// Resolves references against the configured providers, through the cache.
pub struct Resolver {
    providers: HashMap<String, RegisteredProvider>,
    cache: Cache,
    concurrency: usize,
}

type SecretKey = (String, String);

/// Per-batch memo: each distinct reference and each distinct secret is looked up once.
#[derive(Default)]
struct Batch {
    refs: Mutex<HashMap<String, Arc<OnceCell<Resolution>>>>,
    secrets: Mutex<HashMap<SecretKey, Arc<OnceCell<Lookup>>>>,
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
}

impl Resolver {
    pub fn new(cache: Cache) -> Self {
        Resolver {
            providers: HashMap::new(),
            cache,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// At most `n` (at least 1) distinct references of a batch are resolved at the same time.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Registers `provider` under `id` for references to `manager`.
    pub fn add_provider(&mut self, id: &str, manager: Manager, provider: Arc<dyn Provider>) {
        self.providers
            .insert(id.to_string(), RegisteredProvider { manager, provider });
    }

    /// Resolves `refs`; one result per reference, in the same order.
    pub async fn resolve_batch(&self, refs: &[String]) -> Vec<Resolution> {
        let batch = Batch::default();
        // At most `concurrency` references in flight, results kept in order. (A plain loop:
        // `stream::iter(..).map(..).buffered(..)` trips rustc's higher-ranked Send inference.)
        let mut in_flight = FuturesOrdered::new();
        let mut pending = refs.iter();
        let mut results = Vec::with_capacity(refs.len());
        loop {
            while in_flight.len() < self.concurrency {
                match pending.next() {
                    Some(r) => in_flight.push_back(self.resolve_in_batch(&batch, r)),
                    None => break,
                }
            }
            match in_flight.next().await {
                Some(result) => results.push(result),
                None => break,
            }
        }
        log_batch(&results);
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
            Ok((value, stale)) => Resolution::Value { value, stale },
            Err(e) => Resolution::Error(e),
        }
    }

    async fn try_resolve(
        &self,
        batch: &Batch,
        text: &str,
    ) -> Result<(SecretValue, bool), ResolveError> {
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
        let Some(registered) = self.providers.get(&r.provider) else {
            let mut configured: Vec<String> = self.providers.keys().cloned().collect();
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

        let candidates = r.candidates();
        for (name, key) in &candidates {
            let lookup = batch
                .secret_cell(&r.provider, name)
                .get_or_init(|| {
                    self.cache
                        .get(&r.provider, registered.provider.as_ref(), name)
                })
                .await
                .clone();
            match lookup {
                Lookup::NotFound { .. } | Lookup::Failed(ProviderError::NotFound) => continue,
                Lookup::Found { value, stale } => {
                    let value = extract_key(value.expose(), key.as_deref())
                        .map_err(|e| key_error(e, name, key.as_deref(), &r.provider))?;
                    return Ok((value, stale));
                }
                Lookup::Failed(err) => return Err(provider_error(err, name, &r.provider)),
            }
        }

        let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
        let did_you_mean = self.suggest(&r.provider, registered, &names).await;
        Err(ResolveError::SecretNotFound {
            secret: shown_secret_name(&r),
            provider: r.provider,
            did_you_mean,
        })
    }

    async fn suggest(
        &self,
        provider_id: &str,
        registered: &RegisteredProvider,
        written: &[&str],
    ) -> Vec<String> {
        match self
            .cache
            .secret_names(provider_id, registered.provider.as_ref())
            .await
        {
            Ok(existing) => closest_names(written, &existing),
            Err(err) => {
                tracing::warn!(
                    provider = provider_id,
                    error = %err,
                    "cannot list secrets for \"did you mean\" hints"
                );
                Vec::new()
            }
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
    }
}

fn log_batch(results: &[Resolution]) {
    let mut errors: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut stale = 0usize;
    for r in results {
        match r {
            Resolution::Value { stale: true, .. } => stale += 1,
            Resolution::Value { .. } => {}
            Resolution::Error(e) => *errors.entry(e.code()).or_default() += 1,
        }
    }
    let failed: usize = errors.values().sum();
    tracing::info!(
        refs = results.len(),
        resolved = results.len() - failed,
        stale,
        errors = ?errors,
        "resolve batch"
    );
}

/// Existing names close to any of the written candidate names, closest first, at most
/// [`MAX_SUGGESTIONS`].
fn closest_names(written: &[&str], existing: &[String]) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = existing
        .iter()
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
                .with("team/app/db", r#"{"password":"pw"}"#)
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
        }
    }

    fn error(res: Resolution) -> ResolveError {
        match res {
            Resolution::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn candidates_are_tried_longest_name_first() {
        let p = tutorial_provider();
        let r = resolver_with(p.clone(), 60);
        let aws = |path: &str| format!("$secret://aws/{PROVIDER}/{path}");
        assert_eq!(
            one(&r, &aws("alice-credentials/alice-key-auth")).await,
            value("alice-key")
        );
        assert_eq!(p.calls_for("alice-credentials/alice-key-auth"), 1);
        assert_eq!(p.calls_for("alice-credentials"), 1);
        // names containing '/'
        assert_eq!(one(&r, &aws("team/app/db/password")).await, value("pw"));
        assert_eq!(p.calls_for("team/app/db/password"), 1);
        assert_eq!(p.calls_for("team/app"), 0, "stops at the first found name");
        // no key: the whole string
        assert_eq!(one(&r, &aws("plain/token")).await, value("just-a-string"));
        assert_eq!(p.calls_for("plain"), 0);
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
                (e.code(), e.to_string().as_str()),
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
                (e.code(), e.to_string().as_str()),
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
        ];
        for (err, code, message) in cases {
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
            assert_eq!((e.code(), e.to_string().as_str()), (code, message));
        }
    }

    #[tokio::test]
    async fn stale_answers_carry_through_the_candidates() {
        // ttl 0: every batch asks the provider again
        let p = tutorial_provider();
        let r = resolver_with(p.clone(), 0);
        let tutorial = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
        assert_eq!(one(&r, tutorial).await, value("alice-key"));
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        // the long name was "not found" before (stale now), the short one is served stale
        assert_eq!(
            one(&r, tutorial).await,
            Resolution::Value {
                value: SecretValue::new("alice-key"),
                stale: true
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
        assert_eq!(p.calls_for("alice-credentials/alice-key-auth"), 1);
        assert_eq!(p.get_calls(), 5);
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
}
