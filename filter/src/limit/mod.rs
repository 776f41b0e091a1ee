//! limit-count (APISIX semantics): `count` requests per `time_window` seconds per key, in a
//! fixed window that starts at the key's first request; kept per Envoy (`local`) or in Redis
//! through the sidecar (`redis`, `redis-cluster`). Runs after authentication.

pub mod batch;
pub mod key;
pub mod local;
pub mod remote;

use crate::http::Reject;
use local::Hit;
pub use sidecar_api::{LimitBackend, LimitPolicy};
use std::time::Duration;

/// Where the counters are kept. `Debug` shows the Redis credentials only when they are
/// `$secret://` references (see [`LimitBackend`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    Local,
    /// `backend` is the sidecar's `/v1/limit` backend (credentials stay references).
    Redis {
        backend: LimitBackend,
        sync_interval: Option<Duration>,
        /// `redis_timeout`: how long a request waits for its counter.
        timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitOptions {
    pub count: u64,
    pub window_s: u64,
    pub key: key::KeySpec,
    pub rejected_code: u16,
    pub rejected_msg: Option<String>,
    pub show_limit_quota_header: bool,
    /// Counters are shared by routes with the same scope: the `group`, else the route.
    pub scope: String,
    pub policy: Policy,
    pub allow_degradation: bool,
}

/// The reason code of a request over its limit (logs, metrics).
pub const REJECTED_DETAIL: &str = "limit_count_rejected";

impl LimitOptions {
    /// The counter's name: scope and key.
    pub fn counter_key(&self, key: &str) -> String {
        format!("limit-count:{}:{key}", self.scope)
    }

    pub fn window_ms(&self) -> u64 {
        self.window_s.saturating_mul(1000)
    }

    /// The answer over the limit: `rejected_code`, `{"error_msg": ...}` when `rejected_msg` is set.
    pub fn reject(&self) -> Reject {
        let body = self
            .rejected_msg
            .as_ref()
            .map(|m| {
                let mut body = String::with_capacity(m.len() + 16);
                crate::json::Object::new(&mut body)
                    .str("error_msg", m)
                    .end();
                body.push('\n');
                body
            })
            .unwrap_or_default();
        Reject {
            status: self.rejected_code,
            body: body.into(),
            www_authenticate: None,
            detail: REJECTED_DETAIL.into(),
            log_detail: false,
            retry_after_s: None,
            miss: None,
        }
    }
}

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset` for a hit.
pub fn quota_headers(hit: &Hit) -> [(&'static str, String); 3] {
    [
        ("x-ratelimit-limit", hit.limit.to_string()),
        ("x-ratelimit-remaining", hit.remaining().to_string()),
        ("x-ratelimit-reset", hit.reset_s().to_string()),
    ]
}

/// The answer when the counter store fails and `allow_degradation` is false.
pub fn unavailable() -> Reject {
    Reject::message(
        500,
        "rate limiting is unavailable",
        None,
        "limit_count_unavailable",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(msg: Option<&str>) -> LimitOptions {
        LimitOptions {
            count: 3,
            window_s: 60,
            key: key::KeySpec::Constant("c".into()),
            rejected_code: 429,
            rejected_msg: msg.map(str::to_string),
            show_limit_quota_header: true,
            scope: "g".into(),
            policy: Policy::Local,
            allow_degradation: false,
        }
    }

    #[test]
    fn rejection_and_headers() {
        let r = opts(Some("Too many requests")).reject();
        assert_eq!(
            (r.status, r.body.as_ref()),
            (429, "{\"error_msg\":\"Too many requests\"}\n")
        );
        assert_eq!(opts(None).reject().body, "");
        let h = quota_headers(&Hit {
            used: 4,
            limit: 3,
            reset_ms: 1500,
        });
        assert_eq!(h[0], ("x-ratelimit-limit", "3".to_string()));
        assert_eq!(h[1], ("x-ratelimit-remaining", "0".to_string()));
        assert_eq!(h[2], ("x-ratelimit-reset", "2".to_string()));
        assert_eq!(opts(None).counter_key("1.2.3.4"), "limit-count:g:1.2.3.4");
    }
}
