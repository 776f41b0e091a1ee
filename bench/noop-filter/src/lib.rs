//! Benchmark reference filter. Configuration (plugin `configuration` string):
//! * `""` / `"noop"`: continue every request, no host call;
//! * `"key-auth-calls"`: the host calls of the key-auth happy path and nothing else: read the
//!   `apikey` request header, then set two consumer headers and remove a third;
//! * `"get-only"` / `"set-only"`: only the read / only the three writes.

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
}

#[derive(Default)]
struct Root {
    calls: Calls,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let (get, set) = match config.as_slice() {
            b"key-auth-calls" => (true, true),
            b"get-only" => (true, false),
            b"set-only" => (false, true),
            _ => (false, false),
        };
        self.calls = Calls { get, set };
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
