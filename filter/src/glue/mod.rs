//! The only code that names proxy_wasm: the root context (configure, ticks, sidecar callouts),
//! the HTTP context (per-request decision), and the host calls behind [`runtime::Host`].
//! Host calls are made through `hostcalls`, whose errors are handled, never unwrapped.

use crate::auth::{
    self, BodyCheck, Decision, Hide, RequestView, CONSUMER_CUSTOM_ID, CONSUMER_USERNAME,
    CREDENTIAL_IDENTIFIER,
};
use crate::config::{self, Sidecar};
use crate::limit::key::{self as limit_key, VarSource};
use crate::limit::local::{self, Hit, SharedStore, StoreError};
use crate::limit::{self, remote, LimitOptions, Policy};
use crate::runtime::{Host, Level, Runtime, LIMIT_PATH};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, Status};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

const LOG_PREFIX: &str = "envoy-secret-auth: ";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// State shared by a worker's root context and its HTTP contexts (one thread, so `Rc`).
#[derive(Default)]
struct Shared {
    runtime: Option<Runtime>,
    /// HTTP contexts paused until the first answer from the sidecar.
    waiting: Vec<(u32, Rc<RefCell<ReqState>>)>,
    /// Per-request Redis rate-limit callouts: token -> the waiting request.
    limit_calls: HashMap<u32, (u32, Rc<RefCell<ReqState>>)>,
}

/// Where one request stands; shared with the root while it waits.
#[derive(Default)]
struct ReqState {
    phase: Phase,
    body_size: usize,
    body_complete: bool,
    /// `X-RateLimit-*` values for the response.
    quota: Option<[(&'static str, String); 3]>,
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

// The last rate-limit backend error logged (one line per change, not per request).
thread_local! {
    static LAST_LIMIT_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
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
}

struct ProxyHost;

fn log(level: Level, message: &str) {
    let level = match level {
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    };
    // Nothing sensible to do if logging itself fails.
    let _ = hostcalls::log(level, &format!("{LOG_PREFIX}{message}"));
}

impl Host for ProxyHost {
    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_millis()).ok())
            .unwrap_or(0)
    }

    fn log(&self, level: Level, message: &str) {
        log(level, message);
    }

    fn dispatch(&mut self, sidecar: &Sidecar, path: &str, body: Vec<u8>) -> Result<u32, String> {
        let authorization = format!("Bearer {}", sidecar.token.expose());
        let headers = vec![
            (":method", "POST"),
            (":path", path),
            (":authority", sidecar.authority.as_str()),
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        hostcalls::dispatch_http_call(
            &sidecar.cluster,
            headers,
            Some(&body),
            vec![],
            sidecar.timeout,
        )
        .map_err(|status| format!("{status:?}"))
    }
}

impl Root {
    fn set_tick(&mut self, period: Duration) {
        if period != self.tick && hostcalls::set_tick_period(period).is_ok() {
            self.tick = period;
        }
    }

    /// Judges the requests that waited for the first answer, once the gate is open.
    fn release_waiting(&mut self) {
        let ids = {
            let mut shared = self.shared.borrow_mut();
            if !shared.runtime.as_ref().is_some_and(Runtime::gate_open) {
                return;
            }
            std::mem::take(&mut shared.waiting)
        };
        let shared = self.shared.borrow();
        let Some(rt) = shared.runtime.as_ref() else {
            return;
        };
        let mut limit_calls = HashMap::new();
        for (id, state) in ids {
            // The stream may be gone (client went away): then there is nothing to do.
            if hostcalls::set_effective_context(id).is_err() {
                continue;
            }
            let verdict = process(rt, &state);
            if let Verdict::Continue = settle(verdict, id, &state, &mut limit_calls) {
                let _ = hostcalls::resume_http_request();
            }
        }
        drop(shared);
        self.shared.borrow_mut().limit_calls.extend(limit_calls);
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
            let Some(rt) = shared.runtime.as_mut() else {
                return;
            };
            let (status, body) = callout_answer(num_headers, body_size);
            if !rt.on_sync_answer(&mut ProxyHost, token, status.as_deref(), &body) {
                rt.on_answer(&mut ProxyHost, token, status.as_deref(), &body);
            }
        }
        self.release_waiting();
        let period = self
            .shared
            .borrow()
            .runtime
            .as_ref()
            .map(Runtime::tick_period);
        if let Some(p) = period {
            self.set_tick(p);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            Ok(None) => Vec::new(),
            Err(status) => {
                log(
                    Level::Error,
                    &format!("cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let compiled = match config::compile(&bytes, &|name| std::env::var(name).ok()) {
            Ok(c) => c,
            Err(e) => {
                log(Level::Error, &format!("invalid configuration: {e}"));
                return false;
            }
        };
        let runtime = Runtime::new(compiled, &mut ProxyHost);
        let period = runtime.tick_period();
        self.shared.borrow_mut().runtime = Some(runtime);
        // The first fetch happens on the first tick, once Envoy's cluster manager is ready.
        self.set_tick(period);
        true
    }

    fn on_tick(&mut self) {
        let period = {
            let mut shared = self.shared.borrow_mut();
            let Some(rt) = shared.runtime.as_mut() else {
                return;
            };
            rt.on_tick(&mut ProxyHost);
            rt.tick_period()
        };
        self.release_waiting();
        self.set_tick(period);
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
        let Some(rt) = shared.runtime.as_ref() else {
            // Not configured: Envoy would not run us; refuse rather than let anyone through.
            reply(&auth::key::invalid(), None);
            return Action::Pause;
        };
        if !rt.gate_open() {
            self.state.borrow_mut().phase = Phase::WaitingSecrets;
            shared.waiting.push((self.id, Rc::clone(&self.state)));
            return Action::Pause;
        }
        let verdict = process(rt, &self.state);
        let mut calls = HashMap::new();
        let verdict = settle(verdict, self.id, &self.state, &mut calls);
        shared.limit_calls.extend(calls);
        match verdict {
            Verdict::Continue => Action::Continue,
            _ => Action::Pause,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
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
        if body_size > check.max_size {
            reply(&too_large(), None);
            state.phase = Phase::Done;
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let verdict = finish_body(check, body_size);
        state.phase = Phase::Done;
        match verdict {
            Verdict::Continue => Action::Continue,
            _ => Action::Pause,
        }
    }

    /// Trailers end the request: without this, Envoy would continue a paused request (one
    /// waiting for secrets, a Redis counter or a body check) on the SDK's default `Continue`.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        let mut state = self.state.borrow_mut();
        state.body_complete = true;
        match &state.phase {
            Phase::WaitingSecrets | Phase::WaitingLimit(..) => Action::Pause,
            Phase::WaitingBody(check) => {
                let verdict = finish_body(check, state.body_size);
                state.phase = Phase::Done;
                match verdict {
                    Verdict::Continue => Action::Continue,
                    _ => Action::Pause,
                }
            }
            Phase::Headers | Phase::Done => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(quota) = &self.state.borrow().quota {
            for (name, value) in quota {
                let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
            }
        }
        Action::Continue
    }
}

/// Moves a request to the phase its verdict calls for; returns the verdict to act on now.
fn settle(
    verdict: Verdict,
    id: u32,
    state: &Rc<RefCell<ReqState>>,
    limit_calls: &mut HashMap<u32, (u32, Rc<RefCell<ReqState>>)>,
) -> Verdict {
    let mut st = state.borrow_mut();
    let verdict = match verdict {
        Verdict::NeedBody(check) if st.body_complete => finish_body(&check, st.body_size),
        Verdict::NeedBody(check) => {
            st.phase = Phase::WaitingBody(check);
            return Verdict::Replied;
        }
        Verdict::WaitLimit(token, opts, check) => {
            st.phase = Phase::WaitingLimit(opts, check);
            limit_calls.insert(token, (id, Rc::clone(state)));
            return Verdict::Replied;
        }
        other => other,
    };
    st.phase = Phase::Done;
    verdict
}

/// The `:status` (none when the callout failed) and body of the callout being answered.
fn callout_answer(num_headers: usize, body_size: usize) -> (Option<String>, Vec<u8>) {
    let status = if num_headers == 0 {
        None
    } else {
        hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
    };
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    (status, body)
}

/// The sidecar's answer to a per-request Redis counter call; `false` if `token` is not one.
fn on_limit_answer(
    shared: &Rc<RefCell<Shared>>,
    token: u32,
    num_headers: usize,
    body_size: usize,
) -> bool {
    let Some((id, state)) = shared.borrow_mut().limit_calls.remove(&token) else {
        return false;
    };
    // Read the answer before switching context: it belongs to the context that called.
    let (status, body) = callout_answer(num_headers, body_size);
    if hostcalls::set_effective_context(id).is_err() {
        return true;
    }
    let mut st = state.borrow_mut();
    let Phase::WaitingLimit(opts, check) = std::mem::take(&mut st.phase) else {
        return true;
    };
    st.phase = Phase::Done;
    let outcome = remote::parse_answer(status.as_deref(), &body, 1)
        .map(|c| c.first().map(|c| c.to_hit(opts.count)));
    let verdict = match outcome {
        Ok(Some(hit)) => apply_hit(&opts, &hit, &mut st),
        Ok(None) | Err(_) => {
            let reason = outcome.err().unwrap_or_else(|| "empty answer".into());
            degrade(&opts, &reason)
        }
    };
    let verdict = match (verdict, check) {
        (Verdict::Continue, Some(check)) if st.body_complete => finish_body(&check, st.body_size),
        (Verdict::Continue, Some(check)) => {
            st.phase = Phase::WaitingBody(check);
            return true;
        }
        (v, _) => v,
    };
    if let Verdict::Continue = verdict {
        let _ = hostcalls::resume_http_request();
    }
    true
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.waiting.retain(|(id, _)| *id != self.id);
        }
    }
}

/// Request headers, read one at a time on demand, each at most once per decision (a host call
/// costs microseconds; checks may ask for the same header twice, e.g. hmac-auth's `date`).
#[derive(Default)]
struct Headers {
    seen: Vec<(String, Option<String>)>,
}

impl RequestView for Headers {
    fn header(&mut self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.seen.iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        let value = hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten();
        self.seen.push((name.to_string(), value.clone()));
        value
    }

    fn now_s(&mut self) -> u64 {
        ProxyHost.now_ms() / 1000
    }
}

enum Verdict {
    Continue,
    /// Answered (or parked until a callout or the body): nothing more to do now.
    Replied,
    /// Allowed once the body matches (headers already set).
    NeedBody(BodyCheck),
    /// Waiting for the sidecar's Redis counter (callout token), then the body check if any.
    WaitLimit(u32, Box<LimitOptions>, Option<BodyCheck>),
}

fn too_large() -> auth::Reject {
    auth::Reject::message(413, "Request Entity Too Large", None, "body_too_large")
}

/// Checks the buffered body of the current request against the signed digest.
fn finish_body(check: &BodyCheck, body_size: usize) -> Verdict {
    if body_size > check.max_size {
        reply(&too_large(), None);
        return Verdict::Replied;
    }
    let body = if body_size == 0 {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    if auth::hmac::body_matches(&check.digest, &body) {
        Verdict::Continue
    } else {
        let reject = auth::hmac::digest_mismatch();
        log(
            Level::Warn,
            &format!("{}: {}", reject.body.trim_end(), reject.detail),
        );
        reply(&reject, None);
        Verdict::Replied
    }
}

fn set_header(name: &str, value: Option<&str>) {
    // Fails only if the stream is gone.
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

fn reply(reject: &auth::Reject, quota: Option<&[(&'static str, String); 3]>) {
    let mut headers = vec![("content-type", "text/plain; charset=utf-8")];
    if let Some(w) = reject.www_authenticate {
        headers.push(("www-authenticate", w));
    }
    if let Some(q) = quota {
        headers.extend(q.iter().map(|(n, v)| (*n, v.as_str())));
    }
    let _ = hostcalls::send_http_response(
        u32::from(reject.status),
        headers,
        Some(reject.body.as_bytes()),
    );
}

/// Variables for rate-limit keys, read from Envoy on demand (sharing the auth's header reads).
struct Vars<'a>(&'a mut Headers);

impl VarSource for Vars<'_> {
    fn remote_addr(&mut self) -> Option<String> {
        let address = hostcalls::get_property(vec!["source", "address"])
            .ok()
            .flatten()?;
        let address = String::from_utf8(address).ok()?;
        Some(limit_key::strip_port(&address).to_string())
    }
    fn route_name(&mut self) -> Option<String> {
        route_name()
    }
    fn header(&mut self, name: &str) -> Option<String> {
        self.0.header(name)
    }
}

fn route_name() -> Option<String> {
    hostcalls::get_property(vec!["xds", "route_name"])
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Envoy's shared data, for the `local` policy.
struct SharedData;

impl SharedStore for SharedData {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(v), Some(cas))) => Some((v, cas)),
            _ => None,
        }
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Failed),
        }
    }
}

/// Applies a counter's state: quota headers, and the rejection when over the limit.
fn apply_hit(opts: &LimitOptions, hit: &Hit, state: &mut ReqState) -> Verdict {
    limit_ok();
    if opts.show_limit_quota_header {
        state.quota = Some(limit::quota_headers(hit));
    }
    if hit.allowed() {
        Verdict::Continue
    } else {
        reply(&opts.reject(), state.quota.as_ref());
        Verdict::Replied
    }
}

/// The counter store failed: pass (`allow_degradation`) or answer 500.
fn degrade(opts: &LimitOptions, reason: &str) -> Verdict {
    limit_failed(reason);
    if opts.allow_degradation {
        Verdict::Continue
    } else {
        reply(&limit::unavailable(), None);
        Verdict::Replied
    }
}

/// Counts the request against its limit-count counter.
fn rate_limit(
    rt: &Runtime,
    headers: &mut Headers,
    opts: &LimitOptions,
    consumer: Option<&str>,
    state: &mut ReqState,
    body_check: Option<BodyCheck>,
) -> Verdict {
    let key = limit_key::resolve(&opts.key, consumer, &mut Vars(headers));
    let counter = opts.counter_key(&key);
    let now = ProxyHost.now_ms();
    let verdict = match &opts.policy {
        Policy::Local => {
            match local::hit(&mut SharedData, &counter, opts.count, opts.window_ms(), now) {
                Ok(hit) => apply_hit(opts, &hit, state),
                Err(e) => degrade(opts, &e.to_string()),
            }
        }
        Policy::Redis {
            sync_interval: Some(_),
            ..
        } => apply_hit(opts, &rt.sync_hit(opts, &counter, now), state),
        Policy::Redis { backend, .. } => {
            let Some(sidecar) = rt.config().sidecar.as_ref() else {
                return degrade(opts, "no sidecar configured");
            };
            let op = remote::Op {
                key: counter,
                limit: opts.count,
                window_s: opts.window_s,
                cost: 1,
            };
            let body = remote::request_body(backend, std::slice::from_ref(&op));
            return match ProxyHost.dispatch(sidecar, LIMIT_PATH, body) {
                Ok(token) => Verdict::WaitLimit(token, Box::new(opts.clone()), body_check),
                Err(e) => degrade(opts, &format!("could not call the sidecar: {e}")),
            };
        }
    };
    match (verdict, body_check) {
        (Verdict::Continue, Some(check)) => Verdict::NeedBody(check),
        (v, _) => v,
    }
}

/// Decides the current request (the effective context) and applies the decision.
fn process(rt: &Runtime, state: &Rc<RefCell<ReqState>>) -> Verdict {
    let route = if rt.routes_configured() {
        route_name()
    } else {
        None
    };
    let plugins = rt.plugins_for(route.as_deref());
    let mut headers = Headers::default();
    let (consumer, body_check) = match auth::authenticate(plugins, rt.credentials(), &mut headers) {
        None => {
            set_header(CONSUMER_USERNAME, None);
            set_header(CREDENTIAL_IDENTIFIER, None);
            set_header(CONSUMER_CUSTOM_ID, None);
            (None, None)
        }
        Some(Decision::Allow(allow)) => {
            let Some((username, credential_id, custom_id)) =
                rt.who(allow.credential, allow.consumer)
            else {
                reply(&auth::key::invalid(), None);
                return Verdict::Replied;
            };
            set_header(CONSUMER_USERNAME, Some(username));
            set_header(CREDENTIAL_IDENTIFIER, credential_id);
            set_header(CONSUMER_CUSTOM_ID, custom_id);
            match allow.hide {
                None => {}
                Some(Hide::Header(h)) => set_header(&h, None),
                Some(Hide::Path(p)) => set_header(":path", Some(&p)),
                Some(Hide::SetHeader(h, v)) => {
                    set_header(&h, (!v.is_empty()).then_some(v.as_str()))
                }
            }
            (Some(username), allow.body_check)
        }
        Some(Decision::Reject(r)) => {
            if r.log_detail {
                log(Level::Warn, &format!("{}: {}", r.body.trim_end(), r.detail));
            }
            reply(&r, None);
            return Verdict::Replied;
        }
    };
    match &plugins.limit_count {
        Some(opts) => rate_limit(
            rt,
            &mut headers,
            opts,
            consumer,
            &mut state.borrow_mut(),
            body_check,
        ),
        None => match body_check {
            Some(check) => Verdict::NeedBody(check),
            None => Verdict::Continue,
        },
    }
}
