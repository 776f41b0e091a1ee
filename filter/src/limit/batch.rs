//! Per-request Redis counters, batched (issue #9): the counter ops of the requests one worker
//! sees in one turn of Envoy's event loop go to the sidecar in one `/v1/limit` call per backend,
//! which the sidecar sends to Redis as one pipeline. Each request still waits for its own counter
//! before it goes on (the count stays exact); what is saved is the callout per request, the
//! dearest part of this path in Envoy. With one request per turn, a batch is that one op.
//!
//! The glue pushes ops as requests decide, schedules one flush for the end of the turn when the
//! first op arrives, and on the flush sends the calls [`Batches::flush`] returns; each answer is
//! then shared out in order ([`share_answer`]).

use super::remote::{self, AnswerError, Counter, Op, MAX_OPS_PER_CALL};
use super::LimitBackend;
use std::time::Duration;

/// Ops waiting for the end of the turn, by backend and timeout.
#[derive(Debug)]
pub struct Batches<T> {
    lanes: Vec<Lane<T>>,
}

impl<T> Default for Batches<T> {
    fn default() -> Self {
        Batches { lanes: Vec::new() }
    }
}

#[derive(Debug)]
struct Lane<T> {
    backend: LimitBackend,
    timeout: Duration,
    waiting: Vec<(Op, T)>,
}

/// One `/v1/limit` call: its body, how long to wait, and who waits for which result (in order).
#[derive(Debug)]
pub struct Call<T> {
    pub body: Vec<u8>,
    pub timeout: Duration,
    pub waiters: Vec<T>,
}

impl<T> Batches<T> {
    /// Queues a request's op; `true` if it is the first since the last flush (schedule one).
    pub fn push(&mut self, backend: &LimitBackend, timeout: Duration, op: Op, waiter: T) -> bool {
        let first = self.is_empty();
        match self
            .lanes
            .iter_mut()
            .find(|l| l.timeout == timeout && l.backend == *backend)
        {
            Some(lane) => lane.waiting.push((op, waiter)),
            None => self.lanes.push(Lane {
                backend: backend.clone(),
                timeout,
                waiting: vec![(op, waiter)],
            }),
        }
        first
    }

    /// Whether no op waits.
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.waiting.is_empty())
    }

    /// Every waiting op, as calls: one per backend and timeout, split at the sidecar's
    /// [`MAX_OPS_PER_CALL`].
    pub fn flush(&mut self) -> Vec<Call<T>> {
        let mut calls = Vec::new();
        for lane in self.lanes.drain(..) {
            let mut waiting = lane.waiting;
            while !waiting.is_empty() {
                let rest = waiting.split_off(waiting.len().min(MAX_OPS_PER_CALL));
                let (ops, waiters): (Vec<Op>, Vec<T>) = waiting.into_iter().unzip();
                calls.push(Call {
                    body: remote::request_body(&lane.backend, &ops),
                    timeout: lane.timeout,
                    waiters,
                });
                waiting = rest;
            }
        }
        calls
    }

    /// Keeps only the waiters `keep` accepts (a request that ended before the flush).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for lane in &mut self.lanes {
            lane.waiting.retain(|(_, w)| keep(w));
        }
        self.lanes.retain(|l| !l.waiting.is_empty());
    }
}

/// A call's answer, shared out: the counter of each waiter in order, or the same failure for
/// every one of them.
pub fn share_answer<T>(
    waiters: Vec<T>,
    status: Option<&str>,
    body: &[u8],
) -> Vec<(T, Result<Counter, AnswerError>)> {
    match remote::parse_answer(status, body, waiters.len()) {
        Ok(counters) => waiters
            .into_iter()
            .zip(counters.into_iter().map(Ok))
            .collect(),
        Err(e) => waiters.into_iter().map(|w| (w, Err(e.clone()))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::LimitPolicy;

    fn op(key: &str) -> Op {
        Op {
            key: key.into(),
            limit: 10,
            window_s: 60,
            cost: 1,
        }
    }

    fn backend(host: &str) -> LimitBackend {
        let mut b = LimitBackend::new(LimitPolicy::Redis);
        b.host = Some(host.into());
        b
    }

    fn keys(body: &[u8]) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn one_call_per_backend_and_timeout_in_arrival_order() {
        let mut b = Batches::default();
        let t = Duration::from_millis(1000);
        assert!(b.push(&backend("a"), t, op("k1"), 1));
        assert!(!b.push(&backend("b"), t, op("k2"), 2));
        assert!(!b.push(&backend("a"), t, op("k3"), 3));
        assert!(!b.push(&backend("a"), Duration::from_millis(50), op("k4"), 4));
        let calls = b.flush();
        assert!(b.is_empty());
        let got: Vec<(Vec<String>, Duration, Vec<i32>)> = calls
            .iter()
            .map(|c| (keys(&c.body), c.timeout, c.waiters.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec!["k1".into(), "k3".into()], t, vec![1, 3]),
                (vec!["k2".into()], t, vec![2]),
                (vec!["k4".into()], Duration::from_millis(50), vec![4]),
            ]
        );
        let body: serde_json::Value = serde_json::from_slice(&calls[1].body).unwrap();
        assert_eq!(body["backend"]["host"], "b");
        // The next op after a flush schedules the next one.
        assert!(b.push(&backend("a"), t, op("k5"), 5));
    }

    #[test]
    fn large_batches_are_split_at_the_sidecars_limit() {
        let mut b = Batches::default();
        let t = Duration::from_millis(1000);
        for i in 0..(MAX_OPS_PER_CALL * 2 + 1) {
            b.push(&backend("a"), t, op(&format!("k{i}")), i);
        }
        let sizes: Vec<usize> = b.flush().iter().map(|c| c.waiters.len()).collect();
        assert_eq!(sizes, vec![MAX_OPS_PER_CALL, MAX_OPS_PER_CALL, 1]);
    }

    #[test]
    fn requests_that_ended_leave_the_batch() {
        let mut b = Batches::default();
        let t = Duration::from_millis(1000);
        b.push(&backend("a"), t, op("k1"), 1);
        b.push(&backend("b"), t, op("k2"), 2);
        b.retain(|w| *w != 2);
        let calls = b.flush();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].waiters, vec![1]);
        b.push(&backend("a"), t, op("k1"), 1);
        b.retain(|_| false);
        assert!(b.is_empty());
        assert!(b.flush().is_empty());
    }

    #[test]
    fn an_answer_is_shared_in_order_and_a_failure_reaches_everyone() {
        let body = br#"{"results":[{"remaining":9,"reset_s":60},{"remaining":-1,"reset_s":5}]}"#;
        let got = share_answer(vec!["a", "b"], Some("200"), body);
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].1.as_ref().unwrap().remaining, 9);
        assert_eq!(got[1].1.as_ref().unwrap().remaining, -1);
        // One result short: nobody gets someone else's counter.
        let short = br#"{"results":[{"remaining":9,"reset_s":60}]}"#;
        for (_, r) in share_answer(vec!["a", "b"], Some("200"), short) {
            assert_eq!(r, Err(AnswerError::Count { results: 1, ops: 2 }));
        }
        for (_, r) in share_answer(vec!["a", "b"], None, b"") {
            assert_eq!(r, Err(AnswerError::NoAnswer));
        }
    }
}
