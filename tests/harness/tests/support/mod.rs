//! What the harness tests on the real filter `.wasm` share: the `Filter` host with its end-of-test
//! checks, the sidecar section of a config, the sidecar's answers to the filter's callouts, and
//! requests and assertions on their outcome.
//!
//! Each test binary includes this module (`mod support;`) and uses a part of it.
#![allow(dead_code)]

use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::time::Duration;

use proxy_wasm_harness::{
    filter_wasm, header_all, workspace_dir, Host, HostOptions, HttpCall, LogLevel, Outcome, Stream,
};
use serde_json::{json, Value};

/// The sidecar token, in the VM's environment as `SECRET_SIDECAR_TOKEN`.
pub const TOKEN: &str = "test-sidecar-token";
/// The first fetch happens "on the first tick after configure": within this.
pub const FIRST_FETCH: Duration = Duration::from_secs(1);

// ---- the host ------------------------------------------------------------------------------

/// A host running the filter. When the test ends it checks the VM is alive and the filter made
/// no host call that Envoy would ignore or refuse (see `Host::violations`).
pub struct Filter(pub Host);

impl Filter {
    /// The filter with `config`; `SECRET_SIDECAR_TOKEN` and then `options.env` in the VM's
    /// environment. Not started.
    pub fn new(config: &Value, options: HostOptions) -> Filter {
        let mut env = vec![("SECRET_SIDECAR_TOKEN".to_owned(), TOKEN.to_owned())];
        env.extend(options.env.iter().cloned());
        let options = HostOptions {
            env,
            plugin_config: config.to_string().into_bytes(),
            ..options
        };
        Filter(Host::new(filter_wasm().unwrap(), options).unwrap())
    }
}

impl Deref for Filter {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.0
    }
}

impl DerefMut for Filter {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.0
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(!self.0.is_dead(), "the VM died: {}", self.0.stderr());
            assert!(
                self.0.violations().is_empty(),
                "host calls Envoy would ignore or refuse: {:?}",
                self.0.violations()
            );
        }
    }
}

/// Configured and accepted, but the sidecar not asked yet.
pub fn started(config: &Value) -> Filter {
    started_with(config, HostOptions::default())
}

/// `started`, with `options` (its `env` added to the token's).
pub fn started_with(config: &Value, options: HostOptions) -> Filter {
    let mut host = Filter::new(config, options);
    assert!(host.start().unwrap(), "config refused: {:?}", host.logs());
    host
}

/// Asserts `config` is refused with a log line containing every one of `needles`.
pub fn assert_refused(config: &Value, needles: &[&str]) {
    let mut host = Filter::new(config, HostOptions::default());
    assert!(!host.start().unwrap(), "config accepted: {config}");
    assert!(
        host.logs()
            .iter()
            .any(|(_, line)| needles.iter().all(|n| line.contains(n))),
        "no log line contains {needles:?}: {:?}",
        host.logs()
    );
}

/// The config's `sidecar` section: cluster `secret_sidecar`, the token from the environment.
pub fn sidecar() -> Value {
    json!({
        "cluster": "secret_sidecar",
        "authority": "secret-sidecar",
        "timeout_ms": 2000,
        "token": "$env://SECRET_SIDECAR_TOKEN"
    })
}

// ---- callouts to the sidecar ---------------------------------------------------------------

/// Advances the clock until the filter has made callouts, returns them (at most `within`).
pub fn callouts_within(host: &mut Host, within: Duration) -> Vec<HttpCall> {
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while waited < within {
        host.advance(step).unwrap();
        waited += step;
        let calls = host.take_http_calls();
        if !calls.is_empty() {
            return calls;
        }
    }
    Vec::new()
}

/// The one callout the filter makes within `within`.
pub fn one_callout(host: &mut Host, within: Duration) -> HttpCall {
    let mut calls = callouts_within(host, within);
    assert_eq!(
        calls.len(),
        1,
        "expected exactly one callout within {within:?}: {calls:?}"
    );
    calls.remove(0)
}

/// The one callout made since the last look, without moving the clock.
pub fn the_callout(host: &mut Host) -> HttpCall {
    let mut calls = host.take_http_calls();
    assert_eq!(calls.len(), 1, "expected exactly one callout: {calls:?}");
    calls.remove(0)
}

pub fn body_of(call: &HttpCall) -> Value {
    serde_json::from_slice(&call.body)
        .unwrap_or_else(|_| panic!("callout body is not JSON: {:?}", call.body_str()))
}

/// The refs a `/v1/resolve` callout asks for.
pub fn refs_of(call: &HttpCall) -> Vec<String> {
    body_of(call)["refs"]
        .as_array()
        .expect("callout body has a refs array")
        .iter()
        .map(|r| r.as_str().expect("refs are strings").to_owned())
        .collect()
}

/// Answers a `/v1/resolve` callout like the sidecar: one result per ref, in order. Refs in
/// `values` resolve, refs in `errors` get `(code, message)`, others are "secret_not_found".
pub fn answer(
    host: &mut Host,
    call: &HttpCall,
    values: &[(&str, &str)],
    errors: &[(&str, &str, &str)],
) {
    assert_eq!(call.header(":path"), Some("/v1/resolve"));
    let results: Vec<Value> = refs_of(call)
        .iter()
        .map(|r| {
            if let Some((_, v)) = values.iter().find(|(k, _)| k == r) {
                json!({"ref": r, "value": v, "stale": false})
            } else if let Some((_, code, message)) = errors.iter().find(|(k, _, _)| k == r) {
                json!({"ref": r, "error": {"code": code, "message": message}})
            } else {
                json!({"ref": r, "error": {"code": "secret_not_found", "message": "not found",
                                           "did_you_mean": []}})
            }
        })
        .collect();
    respond_json(host, call, &json!({ "results": results }));
}

/// Answers a `/v1/limit` callout with one counter.
pub fn answer_counter(host: &mut Host, call: &HttpCall, remaining: i64, reset_s: u64) {
    let body = json!({"results": [{"remaining": remaining, "reset_s": reset_s}]});
    respond_json(host, call, &body);
}

/// Answers `call` with 200 and `body`.
pub fn respond_json(host: &mut Host, call: &HttpCall, body: &Value) {
    host.respond(
        call.token,
        &[(":status", "200"), ("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
}

// ---- requests and outcomes -----------------------------------------------------------------

pub fn request(
    host: &mut Host,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    eos: bool,
) -> Stream {
    let mut headers = vec![
        (":method", method),
        (":path", path),
        (":authority", "example.com"),
    ];
    headers.extend_from_slice(extra);
    host.request(&headers, eos).unwrap()
}

/// A GET with `extra` headers, headers only.
pub fn get(host: &mut Host, path: &str, extra: &[(&str, &str)]) -> Stream {
    request(host, "GET", path, extra, true)
}

/// Asserts the stream went upstream as `username` with credential `credential`.
pub fn assert_forwarded_as(host: &Host, s: Stream, username: &str, credential: &str) {
    assert_eq!(
        host.outcome(s),
        Outcome::Continue,
        "logs: {:?}",
        host.logs()
    );
    let forwarded = host.request_headers(s);
    assert_eq!(header_all(&forwarded, "x-consumer-username"), [username]);
    assert_eq!(
        header_all(&forwarded, "x-credential-identifier"),
        [credential]
    );
}

/// `assert_forwarded_as`, and with `custom_id` (or no `X-Consumer-Custom-Id` at all).
pub fn assert_authenticated(
    host: &Host,
    s: Stream,
    username: &str,
    credential: &str,
    custom_id: Option<&str>,
) {
    assert_forwarded_as(host, s, username, credential);
    let forwarded = host.request_headers(s);
    let custom: Vec<&str> = custom_id.into_iter().collect();
    assert_eq!(header_all(&forwarded, "x-consumer-custom-id"), custom);
}

/// The filter's `warn` log lines that contain `needle`.
pub fn warnings(host: &Host, needle: &str) -> Vec<String> {
    host.logs()
        .iter()
        .filter(|(level, line)| *level == LogLevel::Warn && line.contains(needle))
        .map(|(_, line)| line.clone())
        .collect()
}

pub fn assert_warn_logged(host: &Host, reason: &str) {
    assert!(
        !warnings(host, reason).is_empty(),
        "no warn log line contains {reason:?}: {:?}",
        host.logs()
    );
}

/// `host` once its first `/v1/resolve` callout is answered with `values`.
pub fn first_answered(mut host: Filter, values: &[(&str, &str)]) -> Filter {
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, values, &[]);
    host
}

/// Runs `script` with the venv's Python (`scripts/` on its path, for `import sign`), `input` as
/// JSON on stdin; its stdout is JSON.
pub fn python(script: &str, input: &Value) -> Value {
    let python = workspace_dir().join(".venv/bin/python");
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .env("PYTHONPATH", workspace_dir().join("scripts"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
