//! The only code that names proxy_wasm: the root context (configure, ticks, sidecar callouts),
//! the HTTP context (per-request decision), and the host calls behind [`runtime::Host`].
//! Host calls are made through `hostcalls`, whose errors are handled, never unwrapped.

use crate::auth::{
    self, BodyCheck, Decision, Hide, RequestView, CONSUMER_CUSTOM_ID, CONSUMER_USERNAME,
    CREDENTIAL_IDENTIFIER,
};
use crate::config::{self, Sidecar};
use crate::runtime::{Host, Level, Runtime};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::cell::RefCell;
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
}

/// Where one request stands; shared with the root while it waits for secrets.
#[derive(Default)]
struct ReqState {
    phase: Phase,
    body_size: usize,
    body_complete: bool,
}

#[derive(Default)]
enum Phase {
    #[default]
    Headers,
    WaitingSecrets,
    WaitingBody(BodyCheck),
    Done,
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

    fn dispatch(&mut self, sidecar: &Sidecar, body: Vec<u8>) -> Result<u32, String> {
        let authorization = format!("Bearer {}", sidecar.token.expose());
        let headers = vec![
            (":method", "POST"),
            (":path", sidecar.path.as_str()),
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
        for (id, state) in ids {
            // The stream may be gone (client went away): then there is nothing to do.
            if hostcalls::set_effective_context(id).is_err() {
                continue;
            }
            let mut state = state.borrow_mut();
            let verdict = match process(rt) {
                Verdict::NeedBody(check) if state.body_complete => {
                    finish_body(&check, state.body_size)
                }
                Verdict::NeedBody(check) => {
                    state.phase = Phase::WaitingBody(check);
                    continue;
                }
                other => other,
            };
            state.phase = Phase::Done;
            if let Verdict::Continue = verdict {
                let _ = hostcalls::resume_http_request();
            }
        }
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
        {
            let mut shared = self.shared.borrow_mut();
            let Some(rt) = shared.runtime.as_mut() else {
                return;
            };
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
            rt.on_answer(&mut ProxyHost, token, status.as_deref(), &body);
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

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let mut shared = self.shared.borrow_mut();
        let mut state = self.state.borrow_mut();
        state.body_complete = end_of_stream;
        let Some(rt) = shared.runtime.as_ref() else {
            // Not configured: Envoy would not run us; refuse rather than let anyone through.
            reply(&auth::key::invalid());
            return Action::Pause;
        };
        if !rt.gate_open() {
            state.phase = Phase::WaitingSecrets;
            shared.waiting.push((self.id, Rc::clone(&self.state)));
            return Action::Pause;
        }
        let verdict = match process(rt) {
            Verdict::NeedBody(check) if end_of_stream => finish_body(&check, 0),
            Verdict::NeedBody(check) => {
                state.phase = Phase::WaitingBody(check);
                return Action::Pause;
            }
            other => other,
        };
        state.phase = Phase::Done;
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
                // Keep the body until the secrets are known and the request is judged.
                Phase::WaitingSecrets => Action::Pause,
                _ => Action::Continue,
            };
        };
        if body_size > check.max_size {
            reply(&too_large());
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
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.waiting.retain(|(id, _)| *id != self.id);
        }
    }
}

/// Request headers, read one at a time on demand.
struct Headers;

impl RequestView for Headers {
    fn header(&mut self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn now_s(&mut self) -> u64 {
        ProxyHost.now_ms() / 1000
    }
}

enum Verdict {
    Continue,
    Replied,
    /// Allowed once the body matches (headers already set).
    NeedBody(BodyCheck),
}

fn too_large() -> auth::Reject {
    auth::Reject::message(413, "Request Entity Too Large", None, "body_too_large")
}

/// Checks the buffered body of the current request against the signed digest.
fn finish_body(check: &BodyCheck, body_size: usize) -> Verdict {
    if body_size > check.max_size {
        reply(&too_large());
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
        reply(&reject);
        Verdict::Replied
    }
}

fn set_header(name: &str, value: Option<&str>) {
    // Fails only if the stream is gone.
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

fn reply(reject: &auth::Reject) {
    let mut headers = vec![("content-type", "text/plain; charset=utf-8")];
    if let Some(w) = reject.www_authenticate {
        headers.push(("www-authenticate", w));
    }
    let _ = hostcalls::send_http_response(
        u32::from(reject.status),
        headers,
        Some(reject.body.as_bytes()),
    );
}

/// Decides the current request (the effective context) and applies the decision.
fn process(rt: &Runtime) -> Verdict {
    let route = if rt.routes_configured() {
        hostcalls::get_property(vec!["xds", "route_name"])
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
    } else {
        None
    };
    let plugins = rt.plugins_for(route.as_deref());
    match auth::authenticate(plugins, rt.credentials(), &mut Headers) {
        None => {
            set_header(CONSUMER_USERNAME, None);
            set_header(CREDENTIAL_IDENTIFIER, None);
            set_header(CONSUMER_CUSTOM_ID, None);
            Verdict::Continue
        }
        Some(Decision::Allow(allow)) => {
            let Some((username, credential_id, custom_id)) =
                rt.who(allow.credential, allow.consumer)
            else {
                reply(&auth::key::invalid());
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
            match allow.body_check {
                Some(check) => Verdict::NeedBody(check),
                None => Verdict::Continue,
            }
        }
        Some(Decision::Reject(r)) => {
            if r.log_detail {
                log(Level::Warn, &format!("{}: {}", r.body.trim_end(), r.detail));
            }
            reply(&r);
            Verdict::Replied
        }
    }
}
