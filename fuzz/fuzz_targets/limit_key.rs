//! limit-count's key: `KeySpec::parse` on any key type and template, then `resolve` with any
//! variable values (headers, query arguments, address, route, consumer) and `strip_port`.
//!
//! The key, which a client shapes, then goes into the `/v1/limit` body the filter writes by hand:
//! it must be byte for byte what serde_json writes for the sidecar's `LimitRequest`.
//!
//! Input lines: key_type, key, consumer, remote address, route name, then the request format of
//! `src/lib.rs` without its route line (headers, then the body, ignored).
#![no_main]

use envoy_secret_auth_filter::http::RequestView;
use envoy_secret_auth_filter::limit::key::{resolve, strip_port, KeySpec};
use envoy_secret_auth_filter::limit::remote::{request_body, Op};
use envoy_secret_auth_filter::limit::{LimitBackend, LimitPolicy};
use envoy_secret_auth_fuzz::{parse_request, FakeRequest};
use libfuzzer_sys::fuzz_target;
use sidecar_api::{LimitOp, LimitRequest};

struct Vars {
    remote_addr: Option<String>,
    route: Option<String>,
    request: FakeRequest,
}

impl RequestView for Vars {
    fn now_s(&mut self) -> u64 {
        0
    }

    fn remote_addr(&mut self) -> Option<String> {
        self.remote_addr
            .as_deref()
            .map(|a| strip_port(a).to_owned())
    }

    fn route_name(&mut self) -> Option<String> {
        self.route.clone()
    }

    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.request.header(name)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(6, |b| *b == b'\n');
    let mut next = || String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let (key_type, key, consumer, addr, route) = (next(), next(), next(), next(), next());
    let rest = lines.next().unwrap_or_default();
    let mut with_route = b"\n".to_vec();
    with_route.extend_from_slice(rest);
    let request = parse_request(&with_route);
    let Ok(spec) = KeySpec::parse(&key_type, &key) else {
        return;
    };
    let mut vars = Vars {
        remote_addr: (!addr.is_empty()).then_some(addr),
        route: (!route.is_empty()).then_some(route),
        request: FakeRequest::new(&request.headers),
    };
    let consumer = (!consumer.is_empty()).then_some(consumer.as_str());
    let first = resolve(&spec, consumer, &mut vars);
    assert_eq!(first, resolve(&spec, consumer, &mut vars));

    let backend = LimitBackend::new(LimitPolicy::Redis);
    let op = Op {
        key: first,
        limit: 3,
        window_s: 60,
        cost: 1,
    };
    let want = LimitRequest {
        backend: backend.clone(),
        ops: vec![LimitOp {
            key: op.key.clone(),
            limit: 3,
            window_s: 60,
            cost: Some(1),
        }],
    };
    let written = request_body(&backend, std::slice::from_ref(&op));
    assert_eq!(written, serde_json::to_vec(&want).unwrap());
});
