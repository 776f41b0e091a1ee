//! The only code that names proxy_wasm: the root context (configure, ticks, sidecar callouts),
//! the HTTP context (per-request decision), and the host calls behind [`worker::Host`].
//! Host calls go through [`abi`], where every status is handled and request data is read as
//! bytes; nothing a client sends can make this code panic.

mod abi;

use crate::auth::BodyCheck;
use crate::config::{self, Sidecar};
use crate::http::callout::DispatchError;
use crate::http::{Reject, RequestView};
use crate::limit::batch::{self, Batches};
use crate::limit::key::strip_port;
use crate::limit::local::{self, SharedStore, StoreError};
use crate::limit::remote::{Counter, Op};
use crate::limit::LimitBackend;
use crate::limit::LimitOptions;
use crate::request::{self, Edit, Next, Note, Plan};
use crate::throttle::LogThrottle;
use crate::worker::{Host, Level, Worker, LIMIT_PATH};
use abi::Buffer;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

const LOG_PREFIX: &str = "envoy-secret-auth: ";

proxy_wasm::main! {{
    // Not the SDK's logger: its panic hook logs the panic message, which may hold request data.
    abi::install_panic_hook();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// State shared by a worker's root context and its HTTP contexts (one thread, so `Rc`).
#[derive(Default)]
struct Shared {
    worker: Option<Worker>,
    /// HTTP contexts paused until the first answer from the sidecar.
    waiting: Vec<(u32, Rc<RefCell<ReqState>>)>,
    /// Per-request Redis counter ops waiting for the end of this event-loop turn.
    batches: Batches<Waiter>,
    /// The worker's own shared queue: an item in it brings `on_queue_ready` to this root at the
    /// end of the turn, where the batches are sent (from the root, so that no request's end
    /// cancels a call others wait for). `None` if it could not be registered: each request then
    /// sends its own op at once.
    queue: Option<u32>,
    /// `/v1/limit` calls in flight: token -> the requests waiting, in the order of the call's
    /// ops (`None`: the request ended).
    limit_calls: HashMap<u32, Vec<Option<Waiter>>>,
}

/// A request's headers as read in one call.
type HeaderPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A request waiting for its Redis counter.
type Waiter = (u32, Rc<RefCell<ReqState>>);

/// The Redis counter ops requests asked for while `Shared` was borrowed, handed to it after
/// ([`Counting::hand_over`]).
#[derive(Default)]
struct Counting {
    /// Whether ops wait for the end of the turn (the worker's queue is registered).
    batch: bool,
    /// Ops waiting for the end of the turn: backend, timeout, op.
    queued: Vec<(LimitBackend, Duration, Op, Waiter)>,
    /// Sent at once (no queue): token -> the request.
    sent: Vec<(u32, Waiter)>,
}

impl Counting {
    /// Queues the batched ops (scheduling the end-of-turn flush when the first arrives) and
    /// records the calls sent. Returns whether it had to send the batches at once (the queue
    /// refused the item): then the effective context may be another request's.
    fn hand_over(self, shared: &mut Shared) -> bool {
        for (token, waiter) in self.sent {
            shared.limit_calls.insert(token, vec![Some(waiter)]);
        }
        let mut schedule = false;
        for (backend, timeout, op, waiter) in self.queued {
            schedule |= shared.batches.push(&backend, timeout, op, waiter);
        }
        if schedule && shared.queue.is_none_or(|q| abi::enqueue(q, b"").is_err()) {
            flush_counts(shared);
            return true;
        }
        false
    }
}

/// Sends the waiting counter ops, one call per backend (from the current context: the root's at
/// the end of the turn); a call that cannot be made fails its requests as the store would.
fn flush_counts(shared: &mut Shared) {
    let Shared {
        worker,
        batches,
        limit_calls,
        ..
    } = shared;
    let sidecar = worker.as_ref().and_then(|w| w.config().sidecar.as_ref());
    for call in batches.flush() {
        let sent = match sidecar {
            Some(sidecar) => dispatch(sidecar, LIMIT_PATH, &call.body, call.timeout)
                .map_err(request::CounterError::Dispatch),
            None => Err(request::CounterError::NoSidecar),
        };
        match sent {
            Ok(token) => {
                limit_calls.insert(token, call.waiters.into_iter().map(Some).collect());
            }
            Err(reason) => {
                for waiter in call.waiters {
                    judge_counter(waiter, Err(reason.clone()));
                }
            }
        }
    }
}

/// A waiting request's counter, or why there is none: judge it and resume it if it may go on.
fn judge_counter((id, state): Waiter, counter: Result<Counter, request::CounterError>) {
    if abi::set_effective_context(id).is_err() {
        return; // the stream is gone
    }
    let Phase::WaitingLimit(opts, check) = std::mem::take(&mut state.borrow_mut().phase) else {
        return;
    };
    let hit = counter.map(|c| c.to_hit(opts.count));
    let plan = request::counter_answered(&opts, hit, check);
    // A counter's answer never counts again.
    if apply(plan, id, &state, None, &mut Counting::default()) {
        let _ = abi::resume_request();
    }
}

/// Where one request stands; shared with the root while it waits.
#[derive(Default)]
struct ReqState {
    phase: Phase,
    body_size: usize,
    body_complete: bool,
    /// `X-RateLimit-*` values for the response.
    quota: Option<[(&'static str, String); 3]>,
    /// Who the request was accepted as (metrics).
    who: request::Who,
}

#[derive(Default)]
enum Phase {
    #[default]
    Headers,
    WaitingSecrets,
    /// Waiting for the sidecar's Redis counter; the body check (if any) comes after.
    WaitingLimit(Box<LimitOptions>, Option<BodyCheck>),
    WaitingBody(BodyCheck),
    Done,
}

// The last rate-limit backend error logged (one line per change, not per request), and the
// throttle for log lines clients can cause (failed hmac-auth requests).
thread_local! {
    static LAST_LIMIT_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
    static REJECT_LOG: RefCell<LogThrottle> = RefCell::new(LogThrottle::new(REJECT_LOG_PERIOD_MS));
}

/// At most one log line per worker per period for refusals whose reason only the log shows.
const REJECT_LOG_PERIOD_MS: u64 = 10_000;

/// Logs a refusal's hidden reason, throttled: a client controls how many of these there are.
fn log_reject(reject: &Reject) {
    let now = ProxyHost.now_ms();
    let line = REJECT_LOG.with(|t| t.borrow_mut().admit(now));
    if let Some(suppressed) = line {
        let more = if suppressed > 0 {
            format!(
                " ({suppressed} more such refusals in the previous {}s)",
                REJECT_LOG_PERIOD_MS / 1000
            )
        } else {
            String::new()
        };
        log(
            Level::Warn,
            &format!("{}: {}{more}", reject.body.trim_end(), reject.detail),
        );
    }
}

/// The counter store answered: log once that it works again after a logged failure.
fn limit_ok() {
    LAST_LIMIT_ERROR.with(|last| {
        if last.borrow_mut().take().is_some() {
            log(Level::Info, "limit-count: the counter store works again");
        }
    });
}

fn limit_failed(error: &str) {
    LAST_LIMIT_ERROR.with(|last| {
        let mut last = last.borrow_mut();
        if last.as_deref() != Some(error) {
            log(Level::Warn, &format!("limit-count: {error}"));
            *last = Some(error.to_string());
        }
    });
}

#[derive(Default)]
struct Root {
    shared: Rc<RefCell<Shared>>,
    tick: Duration,
    /// Envoy's ids of the metrics defined so far, by name.
    metric_ids: HashMap<String, u32>,
}

thread_local! {
    /// What requests did since the last tick (see `crate::metrics`): counted in memory, handed
    /// to Envoy on the tick, so that no request pays a host call for it.
    static REQUESTS: RefCell<crate::metrics::Metrics> = RefCell::default();
}

struct ProxyHost;

fn log(level: Level, message: &str) {
    let level = match level {
        Level::Info => abi::Level::Info,
        Level::Warn => abi::Level::Warn,
        Level::Error => abi::Level::Error,
    };
    // Nothing sensible to do if logging itself fails.
    let _ = abi::log(level, &format!("{LOG_PREFIX}{message}"));
}

/// A POST to the sidecar; the callout's token.
fn dispatch(
    sidecar: &Sidecar,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<u32, DispatchError> {
    let authorization = format!("Bearer {}", sidecar.token.expose());
    let headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", sidecar.authority.as_str()),
        ("content-type", "application/json"),
        ("authorization", authorization.as_str()),
    ];
    // Through the SDK, which must register the callout to route its answer; Envoy answers
    // this call only with statuses the SDK turns into errors (see `abi`).
    hostcalls::dispatch_http_call(&sidecar.cluster, headers, Some(body), vec![], timeout).map_err(
        |status| match status {
            proxy_wasm::types::Status::BadArgument => DispatchError::UnknownCluster,
            _ => DispatchError::Refused,
        },
    )
}

impl Host for ProxyHost {
    fn now_ms(&self) -> u64 {
        abi::now_ns().map(|ns| ns / 1_000_000).unwrap_or(0)
    }

    fn log(&self, level: Level, message: &str) {
        log(level, message);
    }

    fn dispatch(
        &mut self,
        sidecar: &Sidecar,
        path: &str,
        body: Vec<u8>,
    ) -> Result<u32, DispatchError> {
        dispatch(sidecar, path, &body, sidecar.timeout)
    }
}

impl Root {
    /// Hands metric updates to Envoy (a metric is defined the first time it is seen).
    fn flush_metrics(&mut self, updates: Vec<crate::metrics::Update>) {
        use crate::metrics::Update;
        for update in updates {
            let (name, gauge, value) = match &update {
                Update::Count(n, v) => (n, false, *v),
                Update::Gauge(n, v) => (n, true, *v),
            };
            let id = match self.metric_ids.get(name) {
                Some(id) => *id,
                None => match abi::define_metric(gauge, name) {
                    Ok(id) => {
                        self.metric_ids.insert(name.clone(), id);
                        id
                    }
                    Err(_) => continue,
                },
            };
            let _ = if gauge {
                abi::record_metric(id, value)
            } else {
                abi::increment_metric(id, value)
            };
        }
    }

    fn set_tick(&mut self, period: Duration) {
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        if period != self.tick && abi::set_tick_period_ms(ms).is_ok() {
            self.tick = period;
        }
    }

    /// Judges the requests that waited for the first answer, once the gate is open.
    fn release_waiting(&mut self) {
        let ids = {
            let mut shared = self.shared.borrow_mut();
            if !shared.worker.as_ref().is_some_and(Worker::gate_open) {
                return;
            }
            std::mem::take(&mut shared.waiting)
        };
        let shared = self.shared.borrow();
        let Some(rt) = shared.worker.as_ref() else {
            return;
        };
        let mut counting = Counting {
            batch: shared.queue.is_some(),
            ..Counting::default()
        };
        for (id, state) in ids {
            // The stream may be gone (client went away): then there is nothing to do.
            if abi::set_effective_context(id).is_err() {
                continue;
            }
            let (plan, all) = decide(rt);
            if apply_with(
                plan,
                all.as_deref(),
                id,
                &state,
                rt.config().sidecar.as_ref(),
                &mut counting,
            ) {
                let _ = abi::resume_request();
            }
        }
        drop(shared);
        // In the root context already: send the batches now.
        let mut shared = self.shared.borrow_mut();
        let _ = counting.hand_over(&mut shared);
        flush_counts(&mut shared);
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        // Per-request Redis calls made while releasing waiting requests belong to the root.
        if on_limit_answer(&self.shared, token, num_headers, body_size) {
            return;
        }
        {
            let mut shared = self.shared.borrow_mut();
            let Some(rt) = shared.worker.as_mut() else {
                return;
            };
            if rt.expects_sync_answer(token) {
                let (status, body) = callout_answer(num_headers, body_size);
                rt.on_sync_answer(&mut ProxyHost, token, status.as_deref(), &body);
            } else {
                // Read in pieces as it is parsed: never the whole answer at once.
                let body = std::io::BufReader::with_capacity(
                    CALLOUT_CHUNK,
                    CalloutBody {
                        offset: 0,
                        size: body_size,
                    },
                );
                rt.on_answer(
                    &mut ProxyHost,
                    token,
                    callout_status(num_headers).as_deref(),
                    body,
                );
            }
        }
        self.release_waiting();
        let period = self
            .shared
            .borrow()
            .worker
            .as_ref()
            .map(Worker::tick_period);
        if let Some(p) = period {
            self.set_tick(p);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match abi::buffer(Buffer::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            Ok(None) => Vec::new(),
            Err(status) => {
                log(
                    Level::Error,
                    &format!("cannot read the plugin configuration: {status}"),
                );
                return false;
            }
        };
        let raw = config::parse(&bytes);
        // The JSON goes before compiling: its room is reused (a VM keeps its peak memory).
        drop(bytes);
        let compiled =
            match raw.and_then(|raw| config::compile_raw(raw, &|name| std::env::var(name).ok())) {
                Ok(c) => c,
                Err(e) => {
                    log(Level::Error, &format!("invalid configuration: {e}"));
                    return false;
                }
            };
        let mut worker = Worker::new(compiled, &mut ProxyHost);
        if worker.uses_local_limits() {
            match local::HashKey::shared(&mut SharedData, random_key()) {
                Ok(key) => worker.set_limit_hash_key(key),
                Err(e) => log(
                    Level::Error,
                    &format!("limit-count: cannot set up local counters: {e}"),
                ),
            }
        }
        let period = worker.tick_period();
        let mut shared = self.shared.borrow_mut();
        shared.worker = Some(worker);
        if shared.queue.is_none() {
            // A name of this VM's own: Envoy calls back the root that registered a name last.
            let name: String = random_key()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            match abi::register_queue(&format!("envoy-secret-auth.limit.{name}")) {
                Ok(id) => shared.queue = Some(id),
                Err(status) => log(
                    Level::Warn,
                    &format!("limit-count: no queue to batch Redis counters ({status}): one call per request"),
                ),
            }
        }
        drop(shared);
        // The first fetch happens on the first tick, once Envoy's cluster manager is ready.
        self.set_tick(period);
        true
    }

    fn on_tick(&mut self) {
        let (period, updates) = {
            let mut shared = self.shared.borrow_mut();
            let Some(rt) = shared.worker.as_mut() else {
                return;
            };
            rt.on_tick(&mut ProxyHost);
            let mut updates = rt.drain_metrics();
            updates.extend(REQUESTS.with(|m| m.borrow_mut().drain(|i| rt.consumer_name(i))));
            (rt.tick_period(), updates)
        };
        self.flush_metrics(updates);
        self.release_waiting();
        self.set_tick(period);
    }

    /// The end of an event-loop turn in which requests asked for Redis counters: send them.
    fn on_queue_ready(&mut self, queue: u32) {
        let mut shared = self.shared.borrow_mut();
        if shared.queue != Some(queue) {
            return;
        }
        // One item per scheduled flush, and one call of this per item.
        let _ = abi::dequeue(queue);
        flush_counts(&mut shared);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            id: context_id,
            shared: Rc::clone(&self.shared),
            state: Rc::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    id: u32,
    shared: Rc<RefCell<Shared>>,
    state: Rc<RefCell<ReqState>>,
}

impl Request {
    /// The body this request waits for is complete (or too large): judge it.
    fn body_done(&mut self) -> Action {
        let (check, size) = {
            let mut state = self.state.borrow_mut();
            let Phase::WaitingBody(check) = std::mem::take(&mut state.phase) else {
                return Action::Continue;
            };
            (check, state.body_size)
        };
        let plan = judge_body(&check, size);
        if apply(plan, self.id, &self.state, None, &mut Counting::default()) {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

impl Context for Request {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        on_limit_answer(&self.shared, token, num_headers, body_size);
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let mut shared = self.shared.borrow_mut();
        self.state.borrow_mut().body_complete = end_of_stream;
        let Some(rt) = shared.worker.as_ref() else {
            // Not configured: Envoy would not run us; refuse rather than let anyone through.
            reply(&crate::auth::key::invalid(), None);
            return Action::Pause;
        };
        if !rt.gate_open() {
            self.state.borrow_mut().phase = Phase::WaitingSecrets;
            shared.waiting.push((self.id, Rc::clone(&self.state)));
            return Action::Pause;
        }
        let (plan, all) = decide(rt);
        let miss = plan.miss;
        let mut counting = Counting {
            batch: shared.queue.is_some(),
            ..Counting::default()
        };
        let go_on = apply_with(
            plan,
            all.as_deref(),
            self.id,
            &self.state,
            rt.config().sidecar.as_ref(),
            &mut counting,
        );
        if counting.hand_over(&mut shared) {
            let _ = abi::set_effective_context(self.id);
        }
        if let (Some(miss), Some(rt)) = (miss, shared.worker.as_mut()) {
            rt.on_miss(&mut ProxyHost, miss);
        }
        if go_on {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        {
            let mut state = self.state.borrow_mut();
            state.body_size = body_size;
            state.body_complete = end_of_stream;
            let Phase::WaitingBody(check) = &state.phase else {
                return match state.phase {
                    // Keep the body until the request is judged.
                    Phase::WaitingSecrets | Phase::WaitingLimit(..) => Action::Pause,
                    _ => Action::Continue,
                };
            };
            // Past the limit: answer now, without waiting for (or buffering) the rest.
            if body_size <= check.max_size && !end_of_stream {
                return Action::Pause;
            }
        }
        self.body_done()
    }

    /// Trailers end the request: without this, Envoy would continue a paused request (one
    /// waiting for secrets, a Redis counter or a body check) on the SDK's default `Continue`.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        {
            let mut state = self.state.borrow_mut();
            state.body_complete = true;
            match &state.phase {
                Phase::WaitingSecrets | Phase::WaitingLimit(..) => return Action::Pause,
                Phase::WaitingBody(_) => {}
                Phase::Headers | Phase::Done => return Action::Continue,
            }
        }
        self.body_done()
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(quota) = &self.state.borrow().quota {
            for (name, value) in quota {
                let _ = abi::set_header(abi::Headers::Response, name, Some(value.as_bytes()));
            }
        }
        Action::Continue
    }
}

/// The `:status` (none when the callout failed) and body of the callout being answered.
fn callout_answer(num_headers: usize, body_size: usize) -> (Option<String>, Vec<u8>) {
    let body = abi::buffer(Buffer::CallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    (callout_status(num_headers), body)
}

/// A callout answer's `:status` (`None`: no answer).
fn callout_status(num_headers: usize) -> Option<String> {
    if num_headers == 0 {
        return None;
    }
    abi::header(abi::Headers::CallResponse, ":status")
        .ok()
        .flatten()
        .and_then(|s| String::from_utf8(s).ok())
}

/// How much of a callout's answer body is read from Envoy at a time.
const CALLOUT_CHUNK: usize = 64 * 1024;

/// A callout's answer body, read from Envoy piece by piece (only during the callout's
/// `on_http_call_response`).
struct CalloutBody {
    offset: usize,
    size: usize,
}

impl std::io::Read for CalloutBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(self.size.saturating_sub(self.offset));
        if want == 0 {
            return Ok(0);
        }
        let piece = abi::buffer(Buffer::CallResponseBody, self.offset, want)
            .map_err(|status| std::io::Error::other(format!("reading the answer: {status}")))?
            .unwrap_or_default();
        let n = piece.len().min(want);
        let (Some(dst), Some(src)) = (buf.get_mut(..n), piece.get(..n)) else {
            return Ok(0);
        };
        dst.copy_from_slice(src);
        self.offset = self.offset.saturating_add(n);
        Ok(n)
    }
}

/// The sidecar's answer to a per-request Redis counter call; `false` if `token` is not one.
fn on_limit_answer(
    shared: &Rc<RefCell<Shared>>,
    token: u32,
    num_headers: usize,
    body_size: usize,
) -> bool {
    let Some(waiters) = shared.borrow_mut().limit_calls.remove(&token) else {
        return false;
    };
    // Read the answer before switching context: it belongs to the context that called.
    let (status, body) = callout_answer(num_headers, body_size);
    for (waiter, counter) in batch::share_answer(waiters, status.as_deref(), &body) {
        if let Some(waiter) = waiter {
            judge_counter(waiter, counter.map_err(request::CounterError::Answer));
        }
    }
    true
}

impl Drop for Request {
    /// A request that ends early (client reset) leaves nothing behind: its place in the queue
    /// for secrets, and its pending counter call (whose late answer is then ignored).
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.waiting.retain(|(id, _)| *id != self.id);
            shared.batches.retain(|(id, _)| *id != self.id);
            // Its place in a call in flight stays (the answer's counters are in op order);
            // a call nobody waits for any more is forgotten.
            shared.limit_calls.retain(|_, waiters| {
                for w in waiters.iter_mut() {
                    if w.as_ref().is_some_and(|(id, _)| *id == self.id) {
                        *w = None;
                    }
                }
                waiters.iter().any(Option::is_some)
            });
        }
    }
}

/// Request headers, read one at a time on demand, each at most once per decision (a host call
/// costs microseconds; checks may ask for the same header twice, e.g. hmac-auth's `date`).
/// Values are raw bytes: nothing is assumed about their encoding.
#[derive(Default)]
struct Headers {
    seen: Vec<(String, Option<Vec<u8>>)>,
    /// Every request header, once [`RequestView::read_all_headers`] fetched them.
    all: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl RequestView for Headers {
    fn read_all_headers(&mut self) {
        if self.all.is_none() {
            self.all = abi::header_pairs(abi::Headers::Request)
                .ok()
                .flatten()
                .and_then(|bytes| crate::http::pairs::parse(&bytes));
        }
    }

    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        if let Some(all) = &self.all {
            // Envoy's single-header read answers the first value too.
            return all
                .iter()
                .find(|(n, _)| n == name.as_bytes())
                .map(|(_, v)| v.clone());
        }
        if let Some((_, v)) = self.seen.iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        let value = abi::header(abi::Headers::Request, name).ok().flatten();
        self.seen.push((name.to_string(), value.clone()));
        value
    }

    fn now_s(&mut self) -> u64 {
        ProxyHost.now_ms() / 1000
    }

    fn remote_addr(&mut self) -> Option<String> {
        let address = abi::property(&["source", "address"]).ok().flatten()?;
        let address = String::from_utf8(address).ok()?;
        Some(strip_port(&address).to_string())
    }

    fn route_name(&mut self) -> Option<String> {
        route_name()
    }
}

/// The body a request waited for: 413 past the limit (without reading it), else its digest.
fn judge_body(check: &BodyCheck, body_size: usize) -> Plan {
    if body_size > check.max_size {
        return Plan::then(Next::Reply(request::too_large()));
    }
    let body = if body_size == 0 {
        Vec::new()
    } else {
        abi::buffer(Buffer::RequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    let (next, note) = request::body_arrived(check, &body);
    let mut plan = Plan::then(next);
    plan.notes.extend(note);
    plan
}

fn reply(reject: &Reject, quota: Option<&[(&'static str, String); 3]>) {
    let mut headers: Vec<(&str, &[u8])> = vec![("content-type", b"text/plain; charset=utf-8")];
    if let Some(w) = reject.www_authenticate {
        headers.push(("www-authenticate", w.as_bytes()));
    }
    if let Some(q) = quota {
        headers.extend(q.iter().map(|(n, v)| (*n, v.as_bytes())));
    }
    let retry_after = reject.retry_after_s.map(|s| s.to_string());
    if let Some(r) = &retry_after {
        headers.push(("retry-after", r.as_bytes()));
    }
    let _ = abi::send_response(u32::from(reject.status), &headers, reject.body.as_bytes());
}

fn route_name() -> Option<String> {
    abi::property(&["xds", "route_name"])
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
}

/// 32 random bytes (std's `RandomState` draws its keys from WASI `random_get`).
fn random_key() -> [u8; 32] {
    use std::hash::{BuildHasher, RandomState};
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&RandomState::new().hash_one(i).to_le_bytes());
    }
    out
}

/// Envoy's shared data, for the `local` policy.
struct SharedData;

impl SharedStore for SharedData {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        abi::shared_get(key).ok().flatten()
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match abi::shared_set(key, value, cas.unwrap_or(0)) {
            Ok(()) => Ok(()),
            Err(status) if status.is_cas_mismatch() => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Failed),
        }
    }
}

/// Decides the current request (the effective context); the request's headers if the decision
/// read them all.
fn decide(rt: &Worker) -> (Plan, Option<HeaderPairs>) {
    let mut headers = Headers::default();
    let plan = request::decide(rt, &mut headers, &mut SharedData, &mut || {
        ProxyHost.now_ms()
    });
    (plan, headers.all)
}

/// A plan's header edits that change something, one host call each (`all`: the request's
/// headers, if read).
fn write_headers(map: abi::Headers, all: Option<&request::headers::Pairs>, edits: &[Edit]) {
    for edit in request::headers::needed(all, edits) {
        // Fails only if the stream is gone.
        let _ = match edit {
            Edit::Set(name, value) => abi::set_header(map, name, Some(value)),
            Edit::Remove(name) => abi::set_header(map, name, None),
        };
    }
}

/// Applies a plan to the current request (the effective context): the header edits, the log
/// lines, then its next step. Returns whether the request may go on now; otherwise it was
/// answered, or waits (for its body, or for a counter call registered in `limit_calls`).
fn apply(
    plan: Plan,
    id: u32,
    state: &Rc<RefCell<ReqState>>,
    sidecar: Option<&Sidecar>,
    counting: &mut Counting,
) -> bool {
    apply_with(plan, None, id, state, sidecar, counting)
}

/// [`apply`], with the request's headers if the decision read them all.
fn apply_with(
    plan: Plan,
    all: Option<&request::headers::Pairs>,
    id: u32,
    state: &Rc<RefCell<ReqState>>,
    sidecar: Option<&Sidecar>,
    counting: &mut Counting,
) -> bool {
    write_headers(abi::Headers::Request, all, &plan.edits);
    for note in &plan.notes {
        match note {
            Note::Refused(reject) => log_reject(reject),
            Note::LimitFailed(reason) => limit_failed(&reason.to_string()),
            Note::LimitWorks => limit_ok(),
        }
    }
    if plan.quota.is_some() {
        state.borrow_mut().quota = plan.quota;
    }
    if plan.who != request::Who::default() {
        state.borrow_mut().who = plan.who;
    }
    let next = match plan.next {
        Next::CountInRedis(call) => {
            let Some(sidecar) = sidecar else {
                let reason = request::CounterError::NoSidecar;
                let plan = request::counter_answered(&call.opts, Err(reason), call.body_check);
                return apply(plan, id, state, None, counting);
            };
            if counting.batch {
                // Batched with the turn's other ops (see `limit::batch`).
                let request::CounterCall {
                    backend,
                    op,
                    timeout,
                    opts,
                    body_check,
                } = call;
                state.borrow_mut().phase = Phase::WaitingLimit(opts, body_check);
                let waiter = (id, Rc::clone(state));
                counting.queued.push((backend, timeout, op, waiter));
                return false;
            }
            return match dispatch(sidecar, LIMIT_PATH, &call.body(), call.timeout) {
                Ok(token) => {
                    state.borrow_mut().phase = Phase::WaitingLimit(call.opts, call.body_check);
                    counting.sent.push((token, (id, Rc::clone(state))));
                    false
                }
                Err(e) => {
                    let reason = request::CounterError::Dispatch(e);
                    let plan = request::counter_answered(&call.opts, Err(reason), call.body_check);
                    apply(plan, id, state, None, counting)
                }
            };
        }
        other => other,
    };
    let mut st = state.borrow_mut();
    match next {
        Next::Continue => {
            st.phase = Phase::Done;
            REQUESTS.with(|m| m.borrow_mut().allowed(st.who.consumer, st.who.anonymous));
            true
        }
        Next::Reply(reject) => {
            reply(&reject, st.quota.as_ref());
            st.phase = Phase::Done;
            REQUESTS.with(|m| {
                let mut m = m.borrow_mut();
                if reject.detail == crate::limit::REJECTED_DETAIL {
                    m.limited(st.who.route.as_deref());
                } else if reject.log_detail {
                    // The detail is the logged reason, not a code (hmac-auth).
                    m.denied("hmac_auth_invalid");
                } else {
                    m.denied(&reject.detail);
                }
            });
            false
        }
        Next::WaitBody(check) if st.body_complete => {
            let size = st.body_size;
            drop(st);
            apply(judge_body(&check, size), id, state, None, counting)
        }
        Next::WaitBody(check) => {
            st.phase = Phase::WaitingBody(check);
            false
        }
        // Dispatched above.
        Next::CountInRedis(_) => false,
    }
}
