//! The `redis` / `redis-cluster` policies: counters kept by the sidecar in Redis
//! (`POST /v1/limit`, docs/DESIGN.md §4), per request or batched every `sync_interval`.

use super::local::Hit;
use super::LimitBackend;
use crate::http::callout::{status_code, MalformedJson};
use crate::json;
use json_read::Reader;
use sidecar_api::{ErrorCode, LimitCounter};
use std::collections::HashMap;
use std::fmt;

/// The most ops the sidecar takes in one `/v1/limit` call; larger pushes are split.
pub const MAX_OPS_PER_CALL: usize = 1000;

/// The most `sync_interval` counters a worker keeps per scope. Past it, a new key is not
/// counted: the request is judged as when the counter store fails (`allow_degradation`).
pub const MAX_SYNC_COUNTERS: usize = 65_536;

/// One counter operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: String,
    pub limit: u64,
    pub window_s: u64,
    pub cost: u64,
}

/// The request body: the backend (as configured; credentials are references the sidecar
/// resolves) and the operations.
pub fn request_body(backend: &LimitBackend, ops: &[Op]) -> Vec<u8> {
    // Numbers are signed on the wire.
    let wire = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut body = String::with_capacity(ops.len().saturating_mul(64).saturating_add(128));
    let mut o = json::Object::new(&mut body);
    write_backend(o.field("backend"), backend);
    json::array(o.field("ops"), ops, |out, op| {
        json::Object::new(out)
            .str("key", &op.key)
            .int("limit", wire(op.limit))
            .int("window_s", wire(op.window_s))
            .int("cost", wire(op.cost))
            .end();
    });
    o.end();
    body.into_bytes()
}

/// [`LimitBackend`] as serde writes it: its fields in order, the absent ones left out.
fn write_backend(out: &mut String, b: &LimitBackend) {
    let mut o = json::Object::new(out);
    o.str("policy", b.policy.as_str());
    if let Some(host) = &b.host {
        o.str("host", host);
    }
    for (name, v) in [("port", b.port), ("database", b.database)] {
        if let Some(v) = v {
            o.int(name, v);
        }
    }
    for (name, v) in [("username", &b.username), ("password", &b.password)] {
        if let Some(v) = v {
            o.str(name, v.expose());
        }
    }
    if let Some(t) = b.timeout_ms {
        o.int("timeout_ms", t);
    }
    if let Some(ssl) = b.ssl {
        o.bool("ssl", ssl);
    }
    if let Some(nodes) = &b.cluster_nodes {
        json::array(o.field("cluster_nodes"), nodes, |out, n| {
            json::string(out, n)
        });
    }
    o.end();
}

/// The counter after an op: `remaining` may be negative (over the limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub remaining: i64,
    pub reset_s: u64,
}

/// Why a `/v1/limit` answer gives no counters. `Display` is the line to log (never a secret:
/// the sidecar does not put any in its messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The call failed (no answer, reset, timeout).
    NoAnswer,
    /// A `200` whose body is not the documented JSON.
    Malformed(MalformedJson),
    /// A `200` with a negative `reset_s`.
    NegativeReset(i64),
    /// A `200` with a different number of results than ops.
    Count { results: usize, ops: usize },
    /// The sidecar's documented failure (`{"error": {"code", "message"}}`).
    Refused {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// Any other status.
    Status(u16),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::NoAnswer => f.write_str("no answer from the sidecar"),
            AnswerError::Malformed(e) => write!(f, "malformed answer from the sidecar: {e}"),
            AnswerError::NegativeReset(r) => {
                write!(
                    f,
                    "malformed answer from the sidecar: reset_s {r} is negative"
                )
            }
            AnswerError::Count { results, ops } => {
                write!(f, "the sidecar answered {results} results for {ops} ops")
            }
            AnswerError::Refused {
                status,
                code,
                message,
            } => write!(f, "{message} ({code}, HTTP {status})"),
            AnswerError::Status(s) => write!(f, "the sidecar answered HTTP {s}"),
        }
    }
}

impl std::error::Error for AnswerError {}

/// Parses the sidecar's answer: one counter per op.
pub fn parse_answer(
    status: Option<&str>,
    body: &[u8],
    ops: usize,
) -> Result<Vec<Counter>, AnswerError> {
    match status_code(status) {
        None => Err(AnswerError::NoAnswer),
        Some(200) => {
            let results = read_counters(body).map_err(|e| AnswerError::Malformed(e.into()))?;
            if results.len() != ops {
                return Err(AnswerError::Count {
                    results: results.len(),
                    ops,
                });
            }
            results
                .into_iter()
                .map(|c| match u64::try_from(c.reset_s) {
                    Ok(reset_s) => Ok(Counter {
                        remaining: c.remaining,
                        reset_s,
                    }),
                    Err(_) => Err(AnswerError::NegativeReset(c.reset_s)),
                })
                .collect()
        }
        Some(s) => match read_failure(body) {
            Ok((code, message)) => Err(AnswerError::Refused {
                status: s,
                code,
                message,
            }),
            Err(_) => Err(AnswerError::Status(s)),
        },
    }
}

/// `{"results": [{"remaining", "reset_s"}, ...]}` ([`sidecar_api::LimitResponse`]; other fields
/// are ignored, as serde did).
fn read_counters(body: &[u8]) -> Result<Vec<LimitCounter>, json_read::Error> {
    let mut r = Reader::from_slice(body);
    let mut results = None;
    r.begin_object("an object with \"results\"")?;
    while let Some(key) = r.next_key()? {
        if key != "results" {
            r.skip()?;
            continue;
        }
        if results.is_some() {
            return Err(r.error("duplicate field `results`"));
        }
        let mut list = Vec::new();
        r.begin_array("a list of counters")?;
        while r.next_element()? {
            let (mut remaining, mut reset_s) = (None, None);
            r.begin_object("a counter")?;
            while let Some(key) = r.next_key()? {
                match key {
                    "remaining" if remaining.is_none() => remaining = Some(r.signed()?),
                    "reset_s" if reset_s.is_none() => reset_s = Some(r.signed()?),
                    "remaining" | "reset_s" => return Err(r.error("duplicate field")),
                    _ => r.skip()?,
                }
            }
            match (remaining, reset_s) {
                (Some(remaining), Some(reset_s)) => list.push(LimitCounter { remaining, reset_s }),
                _ => return Err(r.error("missing field in a counter")),
            }
        }
        results = Some(list);
    }
    r.end()?;
    results.ok_or_else(|| r.error("missing field `results`"))
}

/// `{"error": {"code", "message"}}` ([`sidecar_api::LimitFailure`]).
fn read_failure(body: &[u8]) -> Result<(ErrorCode, String), json_read::Error> {
    let mut r = Reader::from_slice(body);
    let mut failure = None;
    r.begin_object("an object with \"error\"")?;
    while let Some(key) = r.next_key()? {
        if key != "error" || failure.is_some() {
            r.skip()?;
            continue;
        }
        let (mut code, mut message) = (None, None);
        r.begin_object("an error")?;
        while let Some(key) = r.next_key()? {
            match key {
                "code" if code.is_none() => code = Some(ErrorCode::parse(r.str()?)),
                "message" if message.is_none() => message = Some(r.string()?),
                _ => r.skip()?,
            }
        }
        failure = code.zip(message);
    }
    r.end()?;
    failure.ok_or_else(|| r.error("missing field `error`"))
}

impl Counter {
    pub fn to_hit(self, limit: u64) -> Hit {
        // remaining = limit - used
        let used = i128::from(limit) - i128::from(self.remaining);
        Hit {
            used: u64::try_from(used.max(0)).unwrap_or(u64::MAX),
            limit,
            reset_ms: self.reset_s.saturating_mul(1000),
        }
    }
}

/// `sync_interval`: each worker counts locally and pushes its hits to Redis in the background.
/// A request is allowed while `remaining` as last seen in Redis, minus the hits not yet pushed,
/// is positive. Traffic between two syncs may overshoot the limit (bounded by one interval's hits
/// per worker and Envoy); in exchange no request waits for Redis.
#[derive(Debug)]
pub struct SyncCounters {
    entries: HashMap<String, Entry>,
    capacity: usize,
    /// Hits of keys that could not be counted because the map was full.
    dropped: u64,
}

impl Default for SyncCounters {
    fn default() -> Self {
        Self::with_capacity(MAX_SYNC_COUNTERS)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    limit: u64,
    window_s: u64,
    /// Remaining as last answered by Redis (before `unsent`).
    remaining: i64,
    /// Hits counted here and not yet pushed.
    unsent: u64,
    /// Hits pushed and not yet answered.
    in_flight: u64,
    window_end_ms: u64,
}

impl SyncCounters {
    pub fn with_capacity(capacity: usize) -> Self {
        SyncCounters {
            entries: HashMap::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Counts a hit and decides it locally; `None` when the key is new and the map is full
    /// (even after dropping idle, expired counters).
    pub fn hit(&mut self, key: &str, limit: u64, window_s: u64, now_ms: u64) -> Option<Hit> {
        let window_ms = window_s.saturating_mul(1000);
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            self.entries
                .retain(|_, e| e.unsent + e.in_flight > 0 || now_ms < e.window_end_ms);
            if self.entries.len() >= self.capacity {
                self.dropped = self.dropped.saturating_add(1);
                return None;
            }
        }
        let e = self
            .entries
            .entry(key.to_string())
            .or_insert_with(|| Entry {
                limit,
                window_s,
                remaining: i64::try_from(limit).unwrap_or(i64::MAX),
                unsent: 0,
                in_flight: 0,
                window_end_ms: now_ms.saturating_add(window_ms),
            });
        if now_ms >= e.window_end_ms {
            // Redis expires the key at the same time: start over, and forget hits of the old
            // window that were not pushed (they would count against the new one).
            e.remaining = i64::try_from(limit).unwrap_or(i64::MAX);
            e.window_end_ms = now_ms.saturating_add(window_ms);
            e.unsent = 0;
        }
        let pending = i64::try_from(e.unsent.saturating_add(e.in_flight)).unwrap_or(i64::MAX);
        let hit = Counter {
            remaining: e.remaining.saturating_sub(pending).saturating_sub(1),
            reset_s: e.window_end_ms.saturating_sub(now_ms).div_ceil(1000),
        }
        .to_hit(limit);
        // Only admitted hits are pushed: refused ones used nothing, and pushing them late would
        // start Redis' next window already over the limit.
        if hit.allowed() {
            e.unsent = e.unsent.saturating_add(1);
        }
        Some(hit)
    }

    /// Hits not counted because the map was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The deltas to push now (moved to in-flight). Entries long expired and idle are dropped.
    pub fn take_ops(&mut self, now_ms: u64) -> Vec<Op> {
        self.entries
            .retain(|_, e| e.unsent + e.in_flight > 0 || now_ms < e.window_end_ms);
        let mut ops = Vec::new();
        for (key, e) in self
            .entries
            .iter_mut()
            .filter(|(_, e)| e.unsent > 0 && e.in_flight == 0)
        {
            ops.push(Op {
                key: key.clone(),
                limit: e.limit,
                window_s: e.window_s,
                cost: e.unsent,
            });
            e.in_flight = e.unsent;
            e.unsent = 0;
        }
        ops.sort_by(|a, b| a.key.cmp(&b.key));
        ops
    }

    /// Applies Redis' answers for `ops` (from [`SyncCounters::take_ops`]).
    pub fn answered(&mut self, ops: &[Op], counters: &[Counter], now_ms: u64) {
        for (op, c) in ops.iter().zip(counters) {
            if let Some(e) = self.entries.get_mut(&op.key) {
                e.in_flight = 0;
                e.remaining = c.remaining;
                e.window_end_ms = now_ms.saturating_add(c.reset_s.saturating_mul(1000));
            }
        }
    }

    /// The push failed: the hits are pushed again next time.
    pub fn failed(&mut self, ops: &[Op]) {
        for op in ops {
            if let Some(e) = self.entries.get_mut(&op.key) {
                e.unsent = e.unsent.saturating_add(e.in_flight);
                e.in_flight = 0;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes serde_json wrote from [`sidecar_api::LimitRequest`] before the body was written
    /// by hand (issue #9): every backend field set, none set, and numbers past `i64::MAX`.
    #[test]
    fn request_body_is_byte_for_byte_what_serde_json_wrote() {
        use sidecar_api::{LimitOp, LimitRequest};
        let full = LimitBackend {
            host: Some("redis.\"internal\"".into()),
            port: Some(6380),
            database: Some(-1),
            username: Some(secret_ref::SecretValue::new("$secret://aws/sm/redis/user")),
            password: Some(secret_ref::SecretValue::new("p\u{1}ss\\word\u{e9}")),
            timeout_ms: Some(250),
            ssl: Some(false),
            cluster_nodes: Some(vec!["10.0.0.1:6379".into(), "[::1]:7000".into()]),
            ..LimitBackend::new(crate::limit::LimitPolicy::RedisCluster)
        };
        let bare = LimitBackend::new(crate::limit::LimitPolicy::Redis);
        let ops = [
            Op {
                key: "route\u{0}10.1.2.3\n".into(),
                limit: 3,
                window_s: 60,
                cost: 1,
            },
            Op {
                key: String::new(),
                limit: u64::MAX,
                window_s: 1 << 63,
                cost: 0,
            },
        ];
        for backend in [&full, &bare] {
            for ops in [&ops[..], &ops[..1], &[]] {
                let want = LimitRequest {
                    backend: backend.clone(),
                    ops: ops
                        .iter()
                        .map(|o| LimitOp {
                            key: o.key.clone(),
                            limit: i64::try_from(o.limit).unwrap_or(i64::MAX),
                            window_s: i64::try_from(o.window_s).unwrap_or(i64::MAX),
                            cost: Some(i64::try_from(o.cost).unwrap_or(i64::MAX)),
                        })
                        .collect(),
                };
                assert_eq!(
                    String::from_utf8(request_body(backend, ops)).unwrap(),
                    serde_json::to_string(&want).unwrap()
                );
            }
        }
    }

    #[test]
    fn body_and_answers() {
        let backend = LimitBackend {
            host: Some("127.0.0.1".into()),
            port: Some(6379),
            password: Some(secret_ref::SecretValue::new(
                "$secret://aws/sm/redis/password",
            )),
            ..LimitBackend::new(crate::limit::LimitPolicy::Redis)
        };
        let ops = [Op {
            key: "k".into(),
            limit: 3,
            window_s: 60,
            cost: 1,
        }];
        let v: serde_json::Value = serde_json::from_slice(&request_body(&backend, &ops)).unwrap();
        assert_eq!(v["backend"]["password"], "$secret://aws/sm/redis/password");
        assert_eq!(
            v["ops"][0],
            serde_json::json!({"key": "k", "limit": 3, "window_s": 60, "cost": 1})
        );

        let ok = parse_answer(
            Some("200"),
            br#"{"results":[{"remaining":-1,"reset_s":42}]}"#,
            1,
        )
        .unwrap();
        let hit = ok[0].to_hit(3);
        assert!(!hit.allowed());
        assert_eq!((hit.used, hit.remaining(), hit.reset_s()), (4, 0, 42));
        assert!(Counter {
            remaining: 2,
            reset_s: 60
        }
        .to_hit(3)
        .allowed());
        assert!(Counter {
            remaining: 0,
            reset_s: 60
        }
        .to_hit(3)
        .allowed());

        let e = parse_answer(
            Some("502"),
            br#"{"error":{"code":"redis_unavailable","message":"connection refused"}}"#,
            1,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "connection refused (redis_unavailable, HTTP 502)"
        );
        assert!(matches!(
            e,
            AnswerError::Refused {
                code: ErrorCode::RedisUnavailable,
                ..
            }
        ));
        assert!(parse_answer(None, b"", 1).is_err());
        assert!(parse_answer(Some("200"), br#"{"results":[]}"#, 1).is_err());
        assert!(parse_answer(Some("200"), b"nope", 1).is_err());
        assert_eq!(
            parse_answer(Some("503"), b"x", 1).unwrap_err().to_string(),
            "the sidecar answered HTTP 503"
        );
    }

    #[test]
    fn sync_counts_locally_then_pushes_deltas() {
        let mut s = SyncCounters::default();
        let allowed: Vec<bool> = (0..4)
            .map(|i| s.hit("k", 3, 60, i).unwrap().allowed())
            .collect();
        assert_eq!(
            allowed,
            [true, true, true, false],
            "exact while only this worker counts"
        );
        let ops = s.take_ops(10);
        assert_eq!(
            ops,
            vec![Op {
                key: "k".into(),
                limit: 3,
                window_s: 60,
                cost: 3
            }]
        );
        assert!(
            s.take_ops(11).is_empty(),
            "nothing new, and one push in flight per key"
        );
        // Redis saw other Envoys' hits too: it says 1 left... after our 4 it is -1
        s.answered(
            &ops,
            &[Counter {
                remaining: -1,
                reset_s: 50,
            }],
            20,
        );
        assert!(!s.hit("k", 3, 60, 21).unwrap().allowed());
        // the window ends when Redis said
        assert!(s.hit("k", 3, 60, 50_020).unwrap().allowed());
    }

    #[test]
    fn steady_overload_gets_count_per_window() {
        // 10 requests a second against count 3 per second, pushed every 200 ms to a model of
        // Redis' fixed window: every window admits exactly 3.
        let mut s = SyncCounters::default();
        let mut redis: Option<(i64, u64)> = None; // (value, expires_at_ms)
        let mut passed_per_window = vec![0u32; 5];
        for step in 0..50u64 {
            let now = step * 100;
            if s.hit("k", 3, 1, now).unwrap().allowed() {
                passed_per_window[(now / 1000) as usize] += 1;
            }
            if now % 200 == 0 {
                let ops = s.take_ops(now);
                if !ops.is_empty() {
                    let cost = ops[0].cost as i64;
                    let (v, exp) = match redis {
                        Some((v, exp)) if now < exp => (v - cost, exp),
                        _ => (3 - cost, now + 1000),
                    };
                    redis = Some((v, exp));
                    let reset_s = (exp - now).div_ceil(1000);
                    s.answered(
                        &ops,
                        &[Counter {
                            remaining: v,
                            reset_s,
                        }],
                        now,
                    );
                }
            }
        }
        assert!(
            passed_per_window.iter().all(|p| *p <= 3),
            "{passed_per_window:?}"
        );
        assert!(
            passed_per_window.iter().skip(1).all(|p| *p >= 2),
            "not locked out: {passed_per_window:?}"
        );
    }

    #[test]
    fn failed_push_is_retried() {
        let mut s = SyncCounters::default();
        s.hit("k", 10, 60, 0).unwrap();
        s.hit("k", 10, 60, 1).unwrap();
        let ops = s.take_ops(2);
        s.hit("k", 10, 60, 3).unwrap();
        s.failed(&ops);
        assert_eq!(s.take_ops(4)[0].cost, 3);
    }

    #[test]
    fn idle_expired_entries_are_dropped() {
        let mut s = SyncCounters::default();
        s.hit("k", 10, 1, 0).unwrap();
        let ops = s.take_ops(1);
        s.answered(
            &ops,
            &[Counter {
                remaining: 9,
                reset_s: 1,
            }],
            2,
        );
        assert_eq!(s.len(), 1);
        s.take_ops(5_000);
        assert!(s.is_empty());
    }

    #[test]
    fn the_counter_map_is_bounded_and_counts_what_it_drops() {
        let mut s = SyncCounters::with_capacity(3);
        for k in ["a", "b", "c"] {
            assert!(s.hit(k, 10, 60, 0).is_some());
        }
        assert!(
            s.hit("d", 10, 60, 1).is_none(),
            "full: a new key is not counted"
        );
        assert!(s.hit("a", 10, 60, 1).is_some(), "known keys still count");
        assert_eq!((s.len(), s.dropped()), (3, 1));
        // pushed, answered and expired counters make room again
        let ops = s.take_ops(2);
        let answers: Vec<Counter> = ops
            .iter()
            .map(|_| Counter {
                remaining: 8,
                reset_s: 1,
            })
            .collect();
        s.answered(&ops, &answers, 2);
        assert!(s.hit("d", 10, 60, 5_000).is_some());
        assert_eq!(s.dropped(), 1);
    }
}
