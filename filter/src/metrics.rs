//! The filter's metrics (issue #11), tallied in the VM's memory on the request path (a host
//! call per request would cost more than the check itself, issue #9) and handed to Envoy as
//! deltas on the worker's tick. Envoy shows them in `/stats` and `/stats/prometheus` with the
//! prefix `wasmcustom.` (Prometheus: `envoy_secret_auth_...`).
//!
//! Names carry consumer names, plugin reason codes and Envoy route names: never a key, a
//! secret, a secret's name or a reference.

use std::borrow::Cow;
use std::collections::HashMap;

/// Every metric's name starts with this.
pub const PREFIX: &str = "envoy_secret_auth.";

/// A metric and its value to hand to Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Add to a counter.
    Count(String, u64),
    /// Set a gauge.
    Gauge(String, u64),
}

/// Counts since the last flush, and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: HashMap<Cow<'static, str>, u64>,
    /// Requests allowed per consumer (by index into the configuration's consumers).
    consumers: HashMap<usize, u64>,
    gauges: HashMap<Cow<'static, str>, u64>,
}

impl Metrics {
    /// Adds one to counter `name` (without the prefix).
    pub fn count(&mut self, name: impl Into<Cow<'static, str>>) {
        let n = self.counters.entry(name.into()).or_default();
        *n = n.saturating_add(1);
    }

    /// A request allowed as consumer `consumer` (index), or anonymously.
    pub fn allowed(&mut self, consumer: Option<usize>, anonymous: bool) {
        self.count("requests.allowed");
        if anonymous {
            self.count("requests.anonymous");
        }
        if let Some(c) = consumer {
            let n = self.consumers.entry(c).or_default();
            *n = n.saturating_add(1);
        }
    }

    /// A request refused with `reason` (a plugin's reason code, e.g. `key_auth_invalid`).
    pub fn denied(&mut self, reason: &str) {
        self.count(format!("requests.denied.{}", sanitize(reason)));
    }

    /// A request over its limit on `route` (`None`: a route the filter does not know by name).
    pub fn limited(&mut self, route: Option<&str>) {
        self.count(format!("limited.{}", sanitize(route.unwrap_or("default"))));
    }

    /// Sets gauge `name` (without the prefix).
    pub fn gauge(&mut self, name: impl Into<Cow<'static, str>>, value: u64) {
        self.gauges.insert(name.into(), value);
    }

    /// The updates since the last call, with full names; `consumer` names consumer indexes.
    pub fn drain<'a>(&mut self, consumer: impl Fn(usize) -> Option<&'a str>) -> Vec<Update> {
        let mut out: Vec<Update> = self
            .counters
            .drain()
            .map(|(name, n)| Update::Count(format!("{PREFIX}{name}"), n))
            .collect();
        out.extend(self.consumers.drain().filter_map(|(i, n)| {
            consumer(i).map(|name| {
                Update::Count(format!("{PREFIX}consumer.{}.allowed", sanitize(name)), n)
            })
        }));
        out.extend(
            self.gauges
                .drain()
                .map(|(name, v)| Update::Gauge(format!("{PREFIX}{name}"), v)),
        );
        out.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        out
    }
}

fn name_of(u: &Update) -> &str {
    match u {
        Update::Count(n, _) | Update::Gauge(n, _) => n,
    }
}

/// A name part safe in Envoy's stat names and Prometheus: letters, digits, `_` and `-` kept,
/// anything else (`.`, spaces, bytes that are not ASCII) as `_`; at most 64 characters.
pub fn sanitize(part: &str) -> String {
    part.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_become_deltas_once() {
        let mut m = Metrics::default();
        m.allowed(Some(1), false);
        m.allowed(Some(1), false);
        m.allowed(None, true);
        m.denied("key_auth_invalid");
        m.limited(Some("api.v1 route"));
        m.gauge("refresh.seconds_since_success", 3);
        let names = ["alice", "bob.smith"];
        let got = m.drain(|i| names.get(i).copied());
        assert_eq!(
            got,
            vec![
                Update::Count("envoy_secret_auth.consumer.bob_smith.allowed".into(), 2),
                Update::Count("envoy_secret_auth.limited.api_v1_route".into(), 1),
                Update::Gauge("envoy_secret_auth.refresh.seconds_since_success".into(), 3),
                Update::Count("envoy_secret_auth.requests.allowed".into(), 3),
                Update::Count("envoy_secret_auth.requests.anonymous".into(), 1),
                Update::Count(
                    "envoy_secret_auth.requests.denied.key_auth_invalid".into(),
                    1
                ),
            ]
        );
        assert!(m.drain(|_| None).is_empty(), "drained");
    }

    #[test]
    fn names_are_sanitized_and_bounded() {
        assert_eq!(sanitize("a.b c/d\u{e9}"), "a_b_c_d_");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 64);
    }
}
