//! Benchmark reference filter. Configuration (plugin `configuration` string):
//! * `""` / `"noop"`: continue every request, no host call;
//! * `"key-auth-calls"`: the host calls of the key-auth happy path and nothing else: read the
//!   `apikey` request header, then set two consumer headers and remove a third;
//! * `"get-only"` / `"set-only"`: only the read / only the three writes;
//! * `"key-auth-map"`: the same outcome in two calls: read every request header at once, then
//!   replace the whole map with the consumer headers set (measured slower than the four calls in
//!   Envoy 1.40: the replacement removes and re-adds every header).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Clone, Copy, Default)]
struct Calls {
    get: bool,
    set: bool,
    map: bool,
}

#[derive(Default)]
struct Root {
    calls: Calls,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let (get, set, map) = match config.as_slice() {
            b"key-auth-calls" => (true, true, false),
            b"get-only" => (true, false, false),
            b"set-only" => (false, true, false),
            b"key-auth-map" => (false, false, true),
            _ => (false, false, false),
        };
        self.calls = Calls { get, set, map };
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter { calls: self.calls }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    calls: Calls,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.calls.map {
            let mut headers = self.get_http_request_headers_bytes();
            let found = headers.iter().any(|(n, _)| n == "apikey");
            headers.retain(|(n, _)| {
                !matches!(
                    n.as_str(),
                    "x-consumer-username" | "x-credential-identifier" | "x-consumer-custom-id"
                )
            });
            let user: &[u8] = if found { b"bench" } else { b"-" };
            headers.push(("x-consumer-username".into(), user.to_vec()));
            headers.push(("x-credential-identifier".into(), b"bench-key-auth".to_vec()));
            let refs: Vec<(&str, &[u8])> =
                headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
            self.set_http_request_headers_bytes(refs);
            return Action::Continue;
        }
        let mut found = false;
        if self.calls.get {
            found = self.get_http_request_header("apikey").is_some();
        }
        if self.calls.set {
            let user = if found { "bench" } else { "-" };
            self.set_http_request_header("x-consumer-username", Some(user));
            self.set_http_request_header("x-credential-identifier", Some("bench-key-auth"));
            self.set_http_request_header("x-consumer-custom-id", None);
        }
        Action::Continue
    }
}
