//! The checks of `wasm_requests`, shared with the workspace's harness tests (which replay the
//! checked-in corpus with them on every `cargo test`): the real `.wasm` in the harness, every
//! plugin configured (`config_json`), one request at a time.

use std::time::Duration;

use crate::format::{config_json, route_name, Request};
use proxy_wasm_harness::{filter_wasm, Host, HostOptions, LogLevel, Outcome};

/// The guest's linear memory may not grow past this (it starts at about 1 MiB).
const MEMORY_LIMIT: usize = 256 << 20;

pub fn new_host() -> Host {
    let wasm = filter_wasm().unwrap_or_else(|e| panic!("{e:#}"));
    let mut host = Host::new(
        wasm,
        HostOptions {
            plugin_config: config_json().into_bytes(),
            log_level: LogLevel::Warn,
            ..HostOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("cannot load the filter: {e:#}"));
    assert!(
        host.start().unwrap_or_else(|e| panic!("start: {e:#}")),
        "config refused"
    );
    host
}

/// `FUZZ_VERBOSE=1`: print each request's outcome (to check what seeds do).
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("FUZZ_VERBOSE").is_some())
}

/// Sends one request; `Err` says what went wrong.
pub fn run(host: &mut Host, req: &Request) -> Result<(), String> {
    let route = route_name(&req.route).unwrap_or("default");
    host.set_property(&["xds", "route_name"], route.as_bytes());
    host.set_property(&["source", "address"], b"10.1.2.3:40000");
    let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(req.headers.len() + 2);
    for name in [&b":method"[..], b":path"] {
        if !req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            headers.push((name, if name == b":path" { b"/" } else { b"GET" }));
        }
    }
    headers.extend(
        req.headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice())),
    );
    let violations = host.violations().len();
    let has_body = !req.body.is_empty();
    let stream = host
        .request_bytes(&headers, !has_body)
        .map_err(|e| format!("request headers: {e:#}"))?;
    if has_body && matches!(host.outcome(stream), Outcome::Paused | Outcome::Continue) {
        host.send_body(stream, &req.body, true)
            .map_err(|e| format!("request body: {e:#}"))?;
    }
    let outcome = host.outcome(stream);
    let forwarded = host.request_headers_bytes(stream);
    host.finish(stream).map_err(|e| format!("finish: {e:#}"))?;
    host.forget(stream);
    host.advance(Duration::from_millis(7))
        .map_err(|e| format!("tick: {e:#}"))?;
    host.clear_logs();
    if verbose() {
        eprintln!("route {route}: {outcome:?}");
    }
    match &outcome {
        Outcome::Continue => check_identity(route, &forwarded)?,
        Outcome::LocalReply(reply) if (400..600).contains(&reply.status) => {}
        other => return Err(format!("request ended as {other:?}")),
    }
    let calls = host.take_http_calls();
    if !calls.is_empty() {
        return Err(format!("unexpected callouts: {calls:?}"));
    }
    if host.violations().len() > violations {
        return Err(format!(
            "host call violations: {:?}",
            &host.violations()[violations..]
        ));
    }
    if host.memory_bytes() > MEMORY_LIMIT {
        return Err(format!(
            "guest memory grew to {} bytes",
            host.memory_bytes()
        ));
    }
    Ok(())
}

/// The identity headers that reach the upstream are the filter's: one value each, naming a
/// configured consumer / credential / label, and none on a route without authentication (a
/// client's own copies are removed).
fn check_identity(route: &str, forwarded: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
    const KNOWN: [(&[u8], &[&str]); 3] = [
        (
            b"x-consumer-username",
            &["alice", "bob", "carol", "dave", "anon"],
        ),
        (
            b"x-credential-identifier",
            &[
                "alice-key",
                "alice-basic",
                "alice-jwt",
                "alice-hmac",
                "bob-rsa",
                "bob-basic",
                "carol-ec",
                "carol-key",
                "dave-ed",
                "dave-b64",
            ],
        ),
        (b"x-consumer-custom-id", &["alice-001"]),
    ];
    for (name, allowed) in KNOWN {
        let values: Vec<&[u8]> = forwarded
            .iter()
            .filter(|(k, _)| k.as_slice() == name)
            .map(|(_, v)| v.as_slice())
            .collect();
        let forged = values.len() > 1
            || (route == "limited" && !values.is_empty())
            || values
                .iter()
                .any(|v| !allowed.iter().any(|a| a.as_bytes() == *v));
        if forged {
            return Err(format!(
                "upstream gets {}: {values:?}",
                String::from_utf8_lossy(name)
            ));
        }
    }
    Ok(())
}
