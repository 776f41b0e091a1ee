//! One request's way through the filter, decided without the host, in this order:
//!
//! 1. **authenticate** with the route's auth plugins (the first that accepts wins; anonymous
//!    consumer; multi-auth's answer);
//! 2. **identity headers**: set `X-Consumer-Username`, `X-Credential-Identifier`,
//!    `X-Consumer-Custom-Id` for the consumer (client copies replaced or removed), hide the
//!    credential if asked;
//! 3. **limit-count**: count the request (local shared counters, the worker's `sync_interval`
//!    counters, or a call to the sidecar for a Redis counter); a store failure passes with
//!    `allow_degradation`, else answers 500;
//! 4. **body check** (hmac-auth `validate_request_body`): wait for the body, 413 past
//!    `max_req_body_size`, else compare its digest.
//!
//! [`decide`] takes the request's view and returns a [`Plan`]: header edits, then what comes
//! [`Next`]. The functions below it decide the steps that resume a paused request (the counter's
//! answer, the body). The glue only applies plans and answers the host.

mod authenticate;
pub mod headers;

pub use authenticate::{all_failed, authenticate};

use crate::auth::{self, BodyCheck, Decision, Hide};
use crate::http::callout::DispatchError;
use crate::http::{Reject, RequestView};
use crate::limit::local::{self, Hit, SharedStore, StoreError};
use crate::limit::{self, remote, LimitBackend, LimitOptions, Policy};
use crate::worker::Worker;
use std::time::Duration;

/// Headers the upstream gets for an authenticated consumer. Client-sent copies are replaced or
/// removed on every request.
pub const CONSUMER_USERNAME: &str = "x-consumer-username";
/// `previous` when a credential's previous value matched (rotation grace), else absent.
pub const CREDENTIAL_VERSION: &str = "x-credential-version";
pub const CREDENTIAL_IDENTIFIER: &str = "x-credential-identifier";
pub const CONSUMER_CUSTOM_ID: &str = "x-consumer-custom-id";

/// What a per-request counter call may take beyond `redis_timeout` (the sidecar's own work).
pub const COUNTER_CALL_MARGIN: Duration = Duration::from_millis(100);

/// A change to the request's headers (`:path` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Set(String, Vec<u8>),
    Remove(String),
}

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
pub type Quota = [(&'static str, String); 3];

/// What happens after the header edits.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// On to the upstream.
    Continue,
    /// A local reply (with the plan's quota headers, if any).
    Reply(Reject),
    /// Read the whole body, then [`body_arrived`].
    WaitBody(BodyCheck),
    /// Ask the sidecar for the Redis counter, then [`counter_answered`].
    CountInRedis(CounterCall),
}

/// A request's Redis counter op for `/v1/limit` (sent alone or batched with others, see
/// `limit::batch`), and what to do with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterCall {
    pub backend: LimitBackend,
    pub op: remote::Op,
    pub timeout: Duration,
    pub opts: Box<LimitOptions>,
    pub body_check: Option<BodyCheck>,
}

impl CounterCall {
    /// The body of a call with this op alone.
    pub fn body(&self) -> Vec<u8> {
        remote::request_body(&self.backend, std::slice::from_ref(&self.op))
    }
}

/// Something worth a log line; the glue decides how often (a client controls how many).
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// A refusal whose reason the answer hides (hmac-auth).
    Refused(Reject),
    /// The counter store failed (logged once per distinct reason).
    LimitFailed(CounterError),
    /// The counter store answered (logged once after a failure).
    LimitWorks,
}

/// Why a request's counter could not be counted (judged by `allow_degradation`).
#[derive(Debug, Clone, PartialEq)]
pub enum CounterError {
    /// Envoy's shared data (the `local` policy).
    Store(StoreError),
    /// The worker already tracks as many `sync_interval` counters as it may.
    TooManySyncCounters,
    /// No `sidecar` to ask (refused at configure time; kept for safety).
    NoSidecar,
    /// The call to the sidecar could not be made (the host's reason).
    Dispatch(DispatchError),
    /// The sidecar's answer (or its absence).
    Answer(remote::AnswerError),
}

impl std::fmt::Display for CounterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CounterError::Store(e) => write!(f, "{e}"),
            CounterError::TooManySyncCounters => {
                write!(f, "too many sync_interval counters on this worker")
            }
            CounterError::NoSidecar => write!(f, "no sidecar to count with"),
            CounterError::Dispatch(e) => write!(f, "could not call the sidecar: {e}"),
            CounterError::Answer(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub edits: Vec<Edit>,
    pub next: Next,
    /// Quota headers for the response (and a rate-limit refusal).
    pub quota: Option<Quota>,
    pub notes: Vec<Note>,
    /// Who the request is (for metrics): the consumer's index, and whether it is the
    /// anonymous consumer; the route's name when the filter read it.
    pub who: Who,
    /// A credential that matched nobody (the worker may refresh early).
    pub miss: Option<crate::http::Miss>,
}

/// Who a request was accepted as, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    pub consumer: Option<usize>,
    pub anonymous: bool,
    pub route: Option<String>,
}

impl Plan {
    /// A plan with no edits: just `next`.
    pub fn then(next: Next) -> Self {
        Plan {
            edits: Vec::new(),
            next,
            quota: None,
            notes: Vec::new(),
            who: Who::default(),
            miss: None,
        }
    }
}

/// Decides the request in front of `req` with the worker's configuration and credentials.
/// Local counters are kept in `store`; `now_ms` reads the clock (a host call in Envoy: only
/// limit-count asks for it).
pub fn decide(
    worker: &Worker,
    req: &mut dyn RequestView,
    store: &mut dyn SharedStore,
    now_ms: &mut dyn FnMut() -> u64,
) -> Plan {
    // The route name is read only when plugin sets differ by route.
    let route = if worker.routes_configured() {
        req.route_name()
    } else {
        None
    };
    let plugins = worker.plugins_for(route.as_deref());
    // Client copies of the identity headers: removed here unless Envoy removes them before
    // routing (`strip_identity_headers: false`); then only the values this filter sets are
    // written, and a request without a consumer costs no header write at all.
    let strip = worker.config().strip_identity_headers;
    // hmac-auth reads up to six headers: one call for all of them is cheaper. Stripping client
    // copies of the identity headers: with the map read, removals of headers the request does
    // not carry cost no call (see `headers`).
    if plugins.hmac_auth.is_some() || strip {
        req.read_all_headers();
    }
    let mut plan = Plan::then(Next::Continue);
    plan.who.route = route;
    let (consumer, body_check) = match authenticate(plugins, worker.credentials(), req) {
        None => {
            if strip {
                for name in [CONSUMER_USERNAME, CREDENTIAL_IDENTIFIER, CONSUMER_CUSTOM_ID] {
                    plan.edits.push(Edit::Remove(name.into()));
                }
                if worker.config().uses_rotation_grace() {
                    plan.edits.push(Edit::Remove(CREDENTIAL_VERSION.into()));
                }
            }
            (None, None)
        }
        Some(Decision::Allow(allow)) => {
            plan.who.consumer = allow
                .credential
                .and_then(|c| worker.config().credentials.get(c))
                .map(|c| c.consumer)
                .or(allow.consumer);
            plan.who.anonymous = allow.credential.is_none();
            let Some((username, credential_id, custom_id)) =
                worker.who(allow.credential, allow.consumer)
            else {
                // An index that names nobody: never let it through.
                plan.next = Next::Reply(auth::key::invalid());
                return plan;
            };
            let mut identity = vec![
                (CONSUMER_USERNAME, Some(username)),
                (CREDENTIAL_IDENTIFIER, credential_id),
                (CONSUMER_CUSTOM_ID, custom_id),
            ];
            // The version header exists only where rotation grace is configured.
            if allow.previous {
                identity.push((CREDENTIAL_VERSION, Some("previous")));
            } else if strip && worker.config().uses_rotation_grace() {
                identity.push((CREDENTIAL_VERSION, None));
            }
            for (name, value) in identity {
                match value {
                    Some(v) => plan
                        .edits
                        .push(Edit::Set(name.into(), v.as_bytes().to_vec())),
                    None if strip => plan.edits.push(Edit::Remove(name.into())),
                    None => {}
                }
            }
            match allow.hide {
                None => {}
                Some(Hide::Header(h)) => plan.edits.push(Edit::Remove(h)),
                Some(Hide::Path(p)) => plan.edits.push(Edit::Set(":path".into(), p)),
                Some(Hide::SetHeader(h, v)) if v.is_empty() => plan.edits.push(Edit::Remove(h)),
                Some(Hide::SetHeader(h, v)) => plan.edits.push(Edit::Set(h, v)),
            }
            (Some(username), allow.body_check)
        }
        Some(Decision::Reject(r)) => {
            plan.miss = r.miss;
            if r.log_detail {
                plan.notes.push(Note::Refused(r.clone()));
            }
            plan.next = Next::Reply(r);
            return plan;
        }
    };
    match &plugins.limit_count {
        Some(opts) => count(
            worker,
            req,
            store,
            now_ms(),
            opts,
            consumer,
            body_check,
            plan,
        ),
        None => {
            if let Some(check) = body_check {
                plan.next = Next::WaitBody(check);
            }
            plan
        }
    }
}

/// Step 3: counts the request against its limit-count counter.
#[allow(clippy::too_many_arguments)]
fn count(
    worker: &Worker,
    req: &mut dyn RequestView,
    store: &mut dyn SharedStore,
    now_ms: u64,
    opts: &LimitOptions,
    consumer: Option<&str>,
    body_check: Option<BodyCheck>,
    mut plan: Plan,
) -> Plan {
    let key = limit::key::resolve(&opts.key, consumer, req);
    let counter = opts.counter_key(&key);
    let outcome = match &opts.policy {
        Policy::Local => match worker.limit_hash_key() {
            Some(hash_key) => local::hit(
                store,
                hash_key,
                &opts.scope,
                &counter,
                opts.count,
                opts.window_ms(),
                now_ms,
            )
            .map_err(CounterError::Store),
            None => Err(CounterError::Store(StoreError::Failed)),
        },
        Policy::Redis {
            sync_interval: Some(_),
            ..
        } => worker
            .sync_hit(opts, &counter, now_ms)
            .ok_or(CounterError::TooManySyncCounters),
        Policy::Redis {
            backend, timeout, ..
        } => {
            let op = remote::Op {
                key: counter,
                limit: opts.count,
                window_s: opts.window_s,
                cost: 1,
            };
            plan.next = Next::CountInRedis(CounterCall {
                backend: backend.clone(),
                op,
                timeout: timeout.saturating_add(COUNTER_CALL_MARGIN),
                opts: Box::new(opts.clone()),
                body_check,
            });
            return plan;
        }
    };
    let judged = counter_answered(opts, outcome, body_check);
    plan.next = judged.next;
    plan.quota = judged.quota;
    plan.notes.extend(judged.notes);
    plan
}

/// The counter's state for this request (`Err`: the store failed, with the reason to log):
/// quota headers, the refusal over the limit, the degradation rule, then the body check.
pub fn counter_answered(
    opts: &LimitOptions,
    outcome: Result<Hit, CounterError>,
    body_check: Option<BodyCheck>,
) -> Plan {
    let mut plan = Plan::then(Next::Continue);
    match outcome {
        Ok(hit) => {
            plan.notes.push(Note::LimitWorks);
            if opts.show_limit_quota_header {
                plan.quota = Some(limit::quota_headers(&hit));
            }
            if !hit.allowed() {
                plan.next = Next::Reply(opts.reject());
                return plan;
            }
        }
        Err(reason) => {
            plan.notes.push(Note::LimitFailed(reason));
            if !opts.allow_degradation {
                plan.next = Next::Reply(limit::unavailable());
                return plan;
            }
        }
    }
    if let Some(check) = body_check {
        plan.next = Next::WaitBody(check);
    }
    plan
}

/// The answer past `max_req_body_size`.
pub fn too_large() -> Reject {
    Reject::message(413, "Request Entity Too Large", None, "body_too_large")
}

/// Step 4, once the whole body is there: 413 past the limit, else its digest must match.
pub fn body_arrived(check: &BodyCheck, body: &[u8]) -> (Next, Option<Note>) {
    if body.len() > check.max_size {
        return (Next::Reply(too_large()), None);
    }
    if auth::hmac::body_matches(&check.digest, body) {
        (Next::Continue, None)
    } else {
        let reject = auth::hmac::digest_mismatch();
        (Next::Reply(reject.clone()), Some(Note::Refused(reject)))
    }
}

#[cfg(test)]
mod tests;
