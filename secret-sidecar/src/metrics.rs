//! The sidecar's own numbers, for `GET /metrics` (Prometheus text format 0.0.4) and
//! `GET /readyz` (docs/DESIGN.md §2, "Metrics and readiness").
//!
//! Counted in memory with atomics and small maps; written by hand (no metrics crate). Labels
//! hold only endpoint paths (a fixed set), HTTP statuses, provider ids (from the config), call
//! kinds, outcome classes and error codes: never a secret value, a secret name or a reference.
//!
//! Providers are counted through [`Instrumented`], a [`Provider`] wrapper that times each call
//! and classifies its outcome; a provider that answered once (a value, or a definitive answer
//! such as "not found") is *reached*, which `/readyz` reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::providers::{BoxFuture, PreviousSecret, Provider, ProviderError, Secret, SecretNames};

/// Upper bounds (seconds) of the provider latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The endpoints counted by name; any other path is counted as `other`.
pub const ENDPOINTS: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/resolve",
    "/v1/limit",
];

/// Where the cache's numbers come from at scrape time (the oldest served value's age).
pub trait CacheGauges: Send + Sync {
    /// Among the values served in the last [`crate::cache::SERVED_WINDOW`], the age of the
    /// oldest (time since the provider last gave or confirmed it).
    fn oldest_served_value_age(&self) -> Option<Duration>;
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    stale_served: AtomicU64,
    provider_calls: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    provider_latency: Mutex<BTreeMap<String, Histogram>>,
    /// Configured providers and whether each has answered once.
    reached: Mutex<BTreeMap<String, bool>>,
    redis_ops: AtomicU64,
    redis_errors: Mutex<BTreeMap<String, u64>>,
    reloads: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The label for a request path: one of [`ENDPOINTS`], else `other` (never the path itself).
pub fn endpoint_label(path: &str) -> &'static str {
    ENDPOINTS
        .iter()
        .find(|e| **e == path)
        .copied()
        .unwrap_or("other")
}

/// The outcome class of a provider call.
fn outcome(result: Result<(), &ProviderError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(ProviderError::NotFound) => "not_found",
        Err(ProviderError::Deleted(_)) => "deleted",
        Err(ProviderError::DecryptionFailed(_)) => "decryption_failed",
        Err(ProviderError::Rejected(_)) => "rejected",
        Err(ProviderError::AccessDenied(_)) => "access_denied",
        Err(ProviderError::Unreachable(_)) => "unreachable",
        Err(ProviderError::Other(_)) => "error",
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub fn request(&self, path: &str, status: u16) {
        *lock(&self.requests)
            .entry((endpoint_label(path), status))
            .or_default() += 1;
    }

    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stale_served(&self) {
        self.stale_served.fetch_add(1, Ordering::Relaxed);
    }

    /// Redis counter ops that were answered.
    pub fn redis_ops(&self, n: usize) {
        self.redis_ops
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A `/v1/limit` request that failed, by its error code.
    pub fn redis_error(&self, code: &str) {
        *lock(&self.redis_errors)
            .entry(code.to_string())
            .or_default() += 1;
    }

    /// A configuration reload (SIGHUP): `ok` or `error`.
    pub fn reload(&self, result: &'static str) {
        *lock(&self.reloads).entry(result).or_default() += 1;
    }

    /// Registers a configured provider (not reached yet, unless it was before).
    pub fn provider_configured(&self, id: &str) {
        lock(&self.reached).entry(id.to_string()).or_insert(false);
    }

    /// Keeps only the providers in `ids` for readiness (after a reload).
    pub fn retain_providers(&self, ids: &[&str]) {
        lock(&self.reached).retain(|id, _| ids.contains(&id.as_str()));
    }

    /// The configured providers that have not answered yet.
    pub fn providers_not_reached(&self) -> Vec<String> {
        lock(&self.reached)
            .iter()
            .filter(|(_, reached)| !**reached)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn provider_call(
        &self,
        id: &str,
        call: &'static str,
        result: Result<(), &ProviderError>,
        took: Duration,
    ) {
        let outcome = outcome(result);
        *lock(&self.provider_calls)
            .entry((id.to_string(), call, outcome))
            .or_default() += 1;
        lock(&self.provider_latency)
            .entry(id.to_string())
            .or_default()
            .observe(took.as_secs_f64());
        let answered = match result {
            Ok(()) => true,
            Err(e) => e.is_definitive(),
        };
        if answered {
            if let Some(reached) = lock(&self.reached).get_mut(id) {
                *reached = true;
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, cache: &dyn CacheGauges) -> String {
        let mut out = String::new();
        let w = &mut out;
        header(
            w,
            "secret_sidecar_requests_total",
            "counter",
            "HTTP requests by endpoint and status.",
        );
        for ((endpoint, status), n) in lock(&self.requests).iter() {
            line(
                w,
                "secret_sidecar_requests_total",
                &[("endpoint", endpoint), ("status", &status.to_string())],
                *n,
            );
        }
        header(
            w,
            "secret_sidecar_cache_lookups_total",
            "counter",
            "Secret lookups answered from the cache (hit) or by asking the provider (miss).",
        );
        line(
            w,
            "secret_sidecar_cache_lookups_total",
            &[("result", "hit")],
            self.cache_hits.load(Ordering::Relaxed),
        );
        line(
            w,
            "secret_sidecar_cache_lookups_total",
            &[("result", "miss")],
            self.cache_misses.load(Ordering::Relaxed),
        );
        header(
            w,
            "secret_sidecar_cache_stale_served_total",
            "counter",
            "Values served stale because the provider failed transiently.",
        );
        line(
            w,
            "secret_sidecar_cache_stale_served_total",
            &[],
            self.stale_served.load(Ordering::Relaxed),
        );
        header(w, "secret_sidecar_served_value_max_age_seconds", "gauge",
            "Among the values served in the last 5 minutes, the age of the oldest (since the provider last gave or confirmed it); 0 when none.");
        let age = cache.oldest_served_value_age().unwrap_or_default();
        let _ = writeln!(
            w,
            "secret_sidecar_served_value_max_age_seconds {:.3}",
            age.as_secs_f64()
        );
        header(
            w,
            "secret_sidecar_provider_calls_total",
            "counter",
            "Provider calls by provider id, call (get, describe, previous, list) and outcome.",
        );
        for ((id, call, outcome), n) in lock(&self.provider_calls).iter() {
            line(
                w,
                "secret_sidecar_provider_calls_total",
                &[("provider", id), ("call", call), ("outcome", outcome)],
                *n,
            );
        }
        header(
            w,
            "secret_sidecar_provider_call_duration_seconds",
            "histogram",
            "Provider call latency by provider id.",
        );
        for (id, h) in lock(&self.provider_latency).iter() {
            for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                line(
                    w,
                    "secret_sidecar_provider_call_duration_seconds_bucket",
                    &[("provider", id), ("le", &bound.to_string())],
                    n,
                );
            }
            line(
                w,
                "secret_sidecar_provider_call_duration_seconds_bucket",
                &[("provider", id), ("le", "+Inf")],
                h.count,
            );
            let _ = writeln!(
                w,
                "secret_sidecar_provider_call_duration_seconds_sum{{provider=\"{}\"}} {}",
                escape(id),
                h.sum
            );
            line(
                w,
                "secret_sidecar_provider_call_duration_seconds_count",
                &[("provider", id)],
                h.count,
            );
        }
        header(
            w,
            "secret_sidecar_provider_reached",
            "gauge",
            "1 once the provider has answered (a value or a definitive answer), else 0.",
        );
        for (id, reached) in lock(&self.reached).iter() {
            line(
                w,
                "secret_sidecar_provider_reached",
                &[("provider", id)],
                u64::from(*reached),
            );
        }
        header(
            w,
            "secret_sidecar_redis_ops_total",
            "counter",
            "Rate-limit counter ops answered by Redis.",
        );
        line(
            w,
            "secret_sidecar_redis_ops_total",
            &[],
            self.redis_ops.load(Ordering::Relaxed),
        );
        header(
            w,
            "secret_sidecar_redis_errors_total",
            "counter",
            "Failed /v1/limit requests by error code.",
        );
        for (code, n) in lock(&self.redis_errors).iter() {
            line(
                w,
                "secret_sidecar_redis_errors_total",
                &[("code", code)],
                *n,
            );
        }
        header(
            w,
            "secret_sidecar_config_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP) by result.",
        );
        for (result, n) in lock(&self.reloads).iter() {
            line(
                w,
                "secret_sidecar_config_reloads_total",
                &[("result", result)],
                *n,
            );
        }
        out
    }
}

fn header(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn line(w: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    let _ = w.write_str(name);
    if !labels.is_empty() {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = write!(w, "{{{}}}", labels.join(","));
    }
    let _ = writeln!(w, " {value}");
}

/// A label value as the text format wants it (`\`, `"` and newlines escaped).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A provider whose calls are counted, timed and classified under its id.
pub struct Instrumented {
    id: String,
    inner: Arc<dyn Provider>,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    pub fn new(id: &str, inner: Arc<dyn Provider>, metrics: Arc<Metrics>) -> Self {
        metrics.provider_configured(id);
        Instrumented {
            id: id.to_string(),
            inner,
            metrics,
        }
    }

    async fn timed<T>(
        &self,
        call: &'static str,
        fut: BoxFuture<'_, Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let result = fut.await;
        self.metrics.provider_call(
            &self.id,
            call,
            result.as_ref().map(|_| ()),
            started.elapsed(),
        );
        result
    }
}

impl Provider for Instrumented {
    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ProviderError>> {
        Box::pin(self.timed("get", self.inner.get_secret(name)))
    }

    fn current_version<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.current_version(name).await;
            // a provider without a version call answers Ok(None) without asking anyone
            if !matches!(result, Ok(None)) {
                self.metrics.provider_call(
                    &self.id,
                    "describe",
                    result.as_ref().map(|_| ()),
                    started.elapsed(),
                );
            }
            result
        })
    }

    fn get_previous<'a>(
        &'a self,
        name: &'a str,
        current: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<PreviousSecret>, ProviderError>> {
        Box::pin(self.timed("previous", self.inner.get_previous(name, current)))
    }

    fn list_secret_names(&self) -> BoxFuture<'_, Result<SecretNames, ProviderError>> {
        Box::pin(self.timed("list", self.inner.list_secret_names()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::fake::FakeProvider;

    struct NoCache;
    impl CacheGauges for NoCache {
        fn oldest_served_value_age(&self) -> Option<Duration> {
            Some(Duration::from_millis(1500))
        }
    }

    #[tokio::test]
    async fn provider_calls_are_counted_by_outcome_and_reach_readiness() {
        let metrics = Metrics::new();
        let fake = Arc::new(FakeProvider::new().with("s", "v"));
        let p = Instrumented::new("my \"aws\"", fake.clone(), metrics.clone());
        assert_eq!(
            metrics.providers_not_reached(),
            vec!["my \"aws\"".to_string()]
        );
        fake.fail_with(Some(ProviderError::Unreachable("down".into())));
        assert!(p.get_secret("s").await.is_err());
        // a transient failure is not an answer
        assert_eq!(metrics.providers_not_reached().len(), 1);
        fake.fail_with(None);
        assert!(p.get_secret("nope").await.is_err());
        assert!(metrics.providers_not_reached().is_empty());
        assert!(p.get_secret("s").await.is_ok());
        p.list_secret_names().await.unwrap();
        // the fake without versions answers Ok(None) itself: not a call
        assert_eq!(p.current_version("s").await, Ok(None));
        let text = metrics.render(&NoCache);
        for want in [
            r#"secret_sidecar_provider_calls_total{provider="my \"aws\"",call="get",outcome="ok"} 1"#,
            r#"secret_sidecar_provider_calls_total{provider="my \"aws\"",call="get",outcome="not_found"} 1"#,
            r#"secret_sidecar_provider_calls_total{provider="my \"aws\"",call="get",outcome="unreachable"} 1"#,
            r#"secret_sidecar_provider_calls_total{provider="my \"aws\"",call="list",outcome="ok"} 1"#,
            r#"secret_sidecar_provider_call_duration_seconds_bucket{provider="my \"aws\"",le="+Inf"} 4"#,
            r#"secret_sidecar_provider_call_duration_seconds_count{provider="my \"aws\""} 4"#,
            r#"secret_sidecar_provider_reached{provider="my \"aws\""} 1"#,
            "secret_sidecar_served_value_max_age_seconds 1.500",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("call=\"describe\""), "{text}");
        // the secret names asked for never appear
        assert!(!text.contains("nope") && !text.contains("\"s\""), "{text}");
    }

    #[test]
    fn requests_are_labelled_by_known_endpoints_only() {
        let metrics = Metrics::new();
        metrics.request("/v1/resolve", 200);
        metrics.request("/v1/resolve", 200);
        metrics.request("/v1/resolve", 401);
        metrics.request("/$secret://aws/p/alice-credentials", 404);
        metrics.redis_ops(3);
        metrics.redis_error("redis_unavailable");
        let text = metrics.render(&NoCache);
        for want in [
            r#"secret_sidecar_requests_total{endpoint="/v1/resolve",status="200"} 2"#,
            r#"secret_sidecar_requests_total{endpoint="/v1/resolve",status="401"} 1"#,
            r#"secret_sidecar_requests_total{endpoint="other",status="404"} 1"#,
            "secret_sidecar_redis_ops_total 3",
            r#"secret_sidecar_redis_errors_total{code="redis_unavailable"} 1"#,
            "# TYPE secret_sidecar_provider_call_duration_seconds histogram",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("alice"), "{text}");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.003);
        h.observe(0.2);
        h.observe(30.0);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[5], 2);
        assert_eq!(h.buckets[LATENCY_BUCKETS.len() - 1], 2);
        assert_eq!(h.count, 3);
    }
}
