//! The real filter `.wasm` against DESIGN.md section 3 (`limit-count` options) and section 4
//! (the sidecar's `/v1/limit`): APISIX's limit-count with the `local` policy (counters in shared
//! data, shared by workers), the key types, authentication first, and the `redis` policy through
//! the sidecar, per request or with `sync_interval`.
//!
//! Build the filter first (cargo, then the removal of unused callback exports):
//!     scripts/build.sh

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use proxy_wasm_harness::{header_all, Headers, Host, HttpCall, Outcome, Stream};
use serde_json::{json, Value};
use support::{
    answer, answer_counter, body_of, callouts_within, first_answered, one_callout, request,
    respond_json, sidecar, started, the_callout, warnings, Filter, FIRST_FETCH,
};

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
const REDIS_PASSWORD_REF: &str = "$secret://aws/my-secrets-manager/redis/password";
/// The client's address as Envoy gives it (`source.address`, with the port).
const ADDR_A: &str = "10.0.0.1:5555";
const ADDR_B: &str = "10.0.0.2:6666";
const TOO_MANY: &str = "{\"error_msg\":\"Too many requests\"}\n";

// ---- helpers -------------------------------------------------------------------------------

/// alice and bob with plain keys (no `$secret://` reference: no startup wait).
fn consumers() -> Value {
    json!([
        {"username": "alice",
         "credentials": [{"id": "alice-key-auth", "type": "key-auth", "key": "alice-key"}]},
        {"username": "bob",
         "credentials": [{"id": "bob-key-auth", "type": "key-auth", "key": "bob-key"}]}
    ])
}

/// The task's local policy: 3 per 60 s per client address, 429 "Too many requests".
fn local_limit() -> Value {
    json!({
        "count": 3, "time_window": 60, "key": "remote_addr",
        "rejected_code": 429, "rejected_msg": "Too many requests"
    })
}

/// The default plugin set is `plugins`.
fn config_with(plugins: Value) -> Value {
    json!({"sidecar": sidecar(), "consumers": consumers(), "plugins": plugins})
}

/// A GET from `addr` (`source.address`) with `extra` headers.
fn get_from(host: &mut Host, addr: &str, extra: &[(&str, &str)]) -> Stream {
    get_path_from(host, addr, "/ip", extra)
}

fn get_path_from(host: &mut Host, addr: &str, path: &str, extra: &[(&str, &str)]) -> Stream {
    host.set_property(&["source", "address"], addr.as_bytes());
    request(host, "GET", path, extra, true)
}

/// The response headers the client gets when the upstream answers 200.
fn upstream_answers(host: &mut Host, s: Stream) -> Headers {
    host.response_headers(
        s,
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    )
    .unwrap()
}

/// `(X-RateLimit-Limit, -Remaining, -Reset)`, each present once; `None` if none is present.
fn quota(headers: &[(String, String)]) -> Option<(u64, u64, u64)> {
    let names = [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ];
    let values: Vec<Vec<&str>> = names.iter().map(|n| header_all(headers, n)).collect();
    if values.iter().all(Vec::is_empty) {
        return None;
    }
    let number = |i: usize| -> u64 {
        assert_eq!(values[i].len(), 1, "{}: {headers:?}", names[i]);
        values[i][0]
            .parse()
            .unwrap_or_else(|_| panic!("{}: {:?} is not a number", names[i], values[i][0]))
    };
    Some((number(0), number(1), number(2)))
}

/// Asserts the request went upstream; returns the response headers the client gets.
fn assert_passes(host: &mut Host, s: Stream) -> Headers {
    assert_eq!(
        host.outcome(s),
        Outcome::Continue,
        "logs: {:?}",
        host.logs()
    );
    upstream_answers(host, s)
}

/// Asserts the request was answered by the filter with `status` and `body`; returns the reply's
/// headers.
fn assert_limited(host: &Host, s: Stream, status: u32, body: &str) -> Headers {
    let reply = host
        .local_reply(s)
        .unwrap_or_else(|| panic!("expected a {status}, got {:?}", host.outcome(s)));
    assert_eq!(reply.status, status, "body: {:?}", reply.body_str());
    assert_eq!(reply.body_str(), body);
    reply.headers
}

/// Sends `n` requests from `addr`; returns how many went upstream (the others must be answered
/// locally).
fn passes_of(host: &mut Host, n: usize, addr: &str, extra: &[(&str, &str)]) -> usize {
    (0..n)
        .filter(|_| {
            let s = get_from(host, addr, extra);
            match host.outcome(s) {
                Outcome::Continue => true,
                Outcome::LocalReply(_) => false,
                other => panic!("neither passed nor answered: {other:?}"),
            }
        })
        .count()
}

/// The filter's `warn` log lines about limit-count.
fn limit_warnings(host: &Host) -> Vec<String> {
    warnings(host, "limit-count")
}

// ---- local policy --------------------------------------------------------------------------

#[test]
fn local_policy_passes_count_requests_then_rejects_with_quota_headers() {
    let mut host = started(&config_with(json!({ "limit-count": local_limit() })));
    for remaining in [2, 1, 0] {
        let s = get_from(&mut host, ADDR_A, &[]);
        let response = assert_passes(&mut host, s);
        let (limit, left, reset) = quota(&response).expect("quota headers on the response");
        assert_eq!((limit, left), (3, remaining), "{response:?}");
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let s = get_from(&mut host, ADDR_A, &[]);
    let headers = assert_limited(&host, s, 429, TOO_MANY);
    let (limit, left, reset) = quota(&headers).expect("quota headers on the local reply");
    assert_eq!((limit, left), (3, 0), "{headers:?}");
    assert!((1..=60).contains(&reset), "reset {reset}");
    // Rejected requests stay rejected.
    let s = get_from(&mut host, ADDR_A, &[]);
    assert_limited(&host, s, 429, TOO_MANY);
}

#[test]
fn local_reset_counts_down_the_window() {
    let mut host = started(&config_with(json!({ "limit-count": local_limit() })));
    let s = get_from(&mut host, ADDR_A, &[]);
    let (_, _, reset) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(reset, 60);
    host.advance(Duration::from_secs(20)).unwrap();
    let s = get_from(&mut host, ADDR_A, &[]);
    let (_, left, reset) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(
        (left, reset),
        (1, 40),
        "the window started at the first request"
    );
}

#[test]
fn local_counter_is_per_client_address() {
    let mut host = started(&config_with(json!({ "limit-count": local_limit() })));
    assert_eq!(passes_of(&mut host, 4, ADDR_A, &[]), 3);
    let s = get_from(&mut host, ADDR_B, &[]);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 2, "10.0.0.2 has its own counter");
    // The port is not part of the address.
    let s = get_from(&mut host, "10.0.0.1:7777", &[]);
    assert_limited(&host, s, 429, TOO_MANY);
}

#[test]
fn local_requests_pass_again_after_the_window() {
    let mut host = started(&config_with(json!({ "limit-count": local_limit() })));
    assert_eq!(passes_of(&mut host, 4, ADDR_A, &[]), 3);
    host.advance(Duration::from_secs(59)).unwrap();
    let s = get_from(&mut host, ADDR_A, &[]);
    let headers = assert_limited(&host, s, 429, TOO_MANY);
    assert_eq!(quota(&headers), Some((3, 0, 1)));

    host.advance(Duration::from_millis(1001)).unwrap();
    let s = get_from(&mut host, ADDR_A, &[]);
    let (_, left, reset) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!((left, reset), (2, 60), "a new window");
    assert_eq!(passes_of(&mut host, 3, ADDR_A, &[]), 2);
}

#[test]
fn without_rejected_msg_the_body_is_empty_and_the_code_503() {
    let limit = json!({"count": 1, "time_window": 60});
    let mut host = started(&config_with(json!({ "limit-count": limit })));
    let s = get_from(&mut host, ADDR_A, &[]);
    assert_passes(&mut host, s);
    let s = get_from(&mut host, ADDR_A, &[]);
    let headers = assert_limited(&host, s, 503, "");
    assert_eq!(quota(&headers), Some((1, 0, 60)));
}

#[test]
fn show_limit_quota_header_false_sends_no_quota_headers() {
    let mut limit = local_limit();
    limit["show_limit_quota_header"] = json!(false);
    let mut host = started(&config_with(json!({ "limit-count": limit })));
    for _ in 0..3 {
        let s = get_from(&mut host, ADDR_A, &[]);
        let response = assert_passes(&mut host, s);
        assert_eq!(quota(&response), None, "{response:?}");
    }
    let s = get_from(&mut host, ADDR_A, &[]);
    let headers = assert_limited(&host, s, 429, TOO_MANY);
    assert_eq!(quota(&headers), None, "{headers:?}");
}

#[test]
fn upstream_quota_headers_are_replaced_not_duplicated() {
    let mut host = started(&config_with(json!({ "limit-count": local_limit() })));
    let s = get_from(&mut host, ADDR_A, &[]);
    assert_eq!(host.outcome(s), Outcome::Continue);
    let response = host
        .response_headers(
            s,
            &[(":status", "200"), ("x-ratelimit-remaining", "999")],
            false,
        )
        .unwrap();
    assert_eq!(quota(&response), Some((3, 2, 60)));
}

#[test]
fn two_workers_share_one_counter() {
    let mut w1 = started(&config_with(json!({ "limit-count": local_limit() })));
    let mut w2 = Filter(w1.new_worker());
    assert!(w2.start().unwrap());
    let mut passed = 0;
    let mut remaining = Vec::new();
    for i in 0..8 {
        let host: &mut Host = if i % 2 == 0 { &mut w1 } else { &mut w2 };
        let s = get_from(host, ADDR_A, &[]);
        match host.outcome(s) {
            Outcome::Continue => {
                passed += 1;
                remaining.push(quota(&upstream_answers(host, s)).unwrap().1);
            }
            _ => {
                assert_limited(host, s, 429, TOO_MANY);
            }
        }
    }
    assert_eq!(passed, 3, "exactly count pass across both workers");
    assert_eq!(remaining, [2, 1, 0]);
    // Another address is still free on either worker.
    let s = get_from(&mut w2, ADDR_B, &[]);
    assert_passes(&mut w2, s);
}

// ---- keys ----------------------------------------------------------------------------------

fn limit_on(key_type: &str, key: &str, count: u64) -> Value {
    json!({
        "count": count, "time_window": 60, "key_type": key_type, "key": key,
        "rejected_code": 429, "rejected_msg": "Too many requests"
    })
}

#[test]
fn consumer_name_counts_each_consumer_after_key_auth() {
    let plugins = json!({
        "key-auth": {},
        "limit-count": limit_on("var", "consumer_name", 2)
    });
    let mut host = started(&config_with(plugins));
    // Same address for everyone: only the consumer tells the counters apart.
    assert_eq!(
        passes_of(&mut host, 3, ADDR_A, &[("apikey", "alice-key")]),
        2
    );
    let s = get_from(&mut host, ADDR_A, &[("apikey", "bob-key")]);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 1, "bob has his own counter");
    assert_eq!(
        host.request_header(s, "x-consumer-username").as_deref(),
        Some("bob")
    );
    // alice stays limited from another address too.
    let s = get_from(&mut host, ADDR_B, &[("apikey", "alice-key")]);
    assert_limited(&host, s, 429, TOO_MANY);
}

#[test]
fn header_key_counts_per_header_value() {
    let limit = limit_on("var", "http_x_tenant", 2);
    let mut host = started(&config_with(json!({ "limit-count": limit })));
    assert_eq!(passes_of(&mut host, 3, ADDR_A, &[("x-tenant", "acme")]), 2);
    // Another address with the same tenant shares acme's counter.
    let s = get_from(&mut host, ADDR_B, &[("x-tenant", "acme")]);
    assert_limited(&host, s, 429, TOO_MANY);
    let s = get_from(&mut host, ADDR_A, &[("x-tenant", "globex")]);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 1, "globex has its own counter");
}

#[test]
fn key_resolving_empty_falls_back_to_remote_addr() {
    let limit = limit_on("var", "http_x_tenant", 2);
    let mut host = started(&config_with(json!({ "limit-count": limit })));
    // No header (or an empty one): counted per client address, not on one shared empty key.
    assert_eq!(passes_of(&mut host, 2, ADDR_A, &[]), 2);
    let s = get_from(&mut host, ADDR_A, &[("x-tenant", "")]);
    assert_limited(&host, s, 429, TOO_MANY);
    let s = get_from(&mut host, ADDR_B, &[]);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 1, "10.0.0.2 has its own counter");
    // A tenant's counter is not the address's.
    let s = get_from(&mut host, ADDR_A, &[("x-tenant", "acme")]);
    assert_passes(&mut host, s);
}

#[test]
fn consumer_name_without_a_consumer_falls_back_to_remote_addr() {
    // No auth plugin: there is never a consumer.
    let limit = limit_on("var", "consumer_name", 2);
    let mut host = started(&config_with(json!({ "limit-count": limit })));
    assert_eq!(passes_of(&mut host, 3, ADDR_A, &[]), 2);
    let s = get_from(&mut host, ADDR_B, &[]);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 1);
}

#[test]
fn var_combination_counts_per_combination() {
    let limit = limit_on("var_combination", "$remote_addr $http_x_tenant", 2);
    let mut host = started(&config_with(json!({ "limit-count": limit })));
    assert_eq!(passes_of(&mut host, 3, ADDR_A, &[("x-tenant", "acme")]), 2);
    let s = get_from(&mut host, ADDR_A, &[("x-tenant", "globex")]);
    assert_passes(&mut host, s);
    let s = get_from(&mut host, ADDR_B, &[("x-tenant", "acme")]);
    assert_passes(&mut host, s);
    let s = get_from(&mut host, "10.0.0.1:1", &[("x-tenant", "acme")]);
    assert_limited(&host, s, 429, TOO_MANY);
}

#[test]
fn constant_key_is_one_counter_for_everyone() {
    let limit = limit_on("constant", "everyone", 2);
    let mut host = started(&config_with(json!({ "limit-count": limit })));
    let s = get_from(&mut host, ADDR_A, &[("x-tenant", "acme")]);
    assert_passes(&mut host, s);
    let s = get_from(&mut host, ADDR_B, &[]);
    assert_passes(&mut host, s);
    let s = get_from(&mut host, "192.168.1.1:80", &[("apikey", "alice-key")]);
    assert_limited(&host, s, 429, TOO_MANY);
}

fn get_on_route(host: &mut Host, route: &str, addr: &str) -> Stream {
    host.set_property(&["xds", "route_name"], route.as_bytes());
    get_from(host, addr, &[])
}

#[test]
fn group_shares_a_counter_across_routes_and_routes_count_apart_without_one() {
    let grouped = json!({"count": 2, "time_window": 60, "group": "shared"});
    let alone = json!({"count": 2, "time_window": 60});
    let config = json!({
        "sidecar": sidecar(),
        "consumers": consumers(),
        "plugins": {},
        "routes": {
            "r1": {"limit-count": grouped},
            "r2": {"limit-count": grouped},
            "r3": {"limit-count": alone},
            "r4": {"limit-count": alone}
        }
    });
    let mut host = started(&config);
    let s = get_on_route(&mut host, "r1", ADDR_A);
    assert_passes(&mut host, s);
    let s = get_on_route(&mut host, "r2", ADDR_A);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 0, "r2 counts on r1's counter");
    for route in ["r1", "r2"] {
        let s = get_on_route(&mut host, route, ADDR_A);
        assert_limited(&host, s, 503, "");
    }

    let s = get_on_route(&mut host, "r3", ADDR_A);
    assert_passes(&mut host, s);
    let s = get_on_route(&mut host, "r3", ADDR_A);
    assert_passes(&mut host, s);
    let s = get_on_route(&mut host, "r3", ADDR_A);
    assert_limited(&host, s, 503, "");
    let s = get_on_route(&mut host, "r4", ADDR_A);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 1, "r4 has its own counter");
    // A route without limit-count is not limited.
    let s = get_on_route(&mut host, "unlisted", ADDR_A);
    let response = assert_passes(&mut host, s);
    assert_eq!(quota(&response), None);
}

// ---- authentication first ------------------------------------------------------------------

#[test]
fn requests_refused_by_key_auth_do_not_consume_the_limit() {
    let plugins = json!({
        "key-auth": {},
        "limit-count": {"count": 1, "time_window": 60, "rejected_code": 429}
    });
    let mut host = started(&config_with(plugins));
    for extra in [vec![], vec![("apikey", "wrong")], vec![("apikey", "")]] {
        let s = get_from(&mut host, ADDR_A, &extra);
        let reply = host.local_reply(s).expect("refused");
        assert_eq!(reply.status, 401, "{extra:?}");
        assert_eq!(
            quota(&reply.headers),
            None,
            "not counted: {:?}",
            reply.headers
        );
    }
    let s = get_from(&mut host, ADDR_A, &[("apikey", "alice-key")]);
    let (_, left, _) = quota(&assert_passes(&mut host, s)).unwrap();
    assert_eq!(left, 0);
    let s = get_from(&mut host, ADDR_A, &[("apikey", "bob-key")]);
    assert_limited(&host, s, 429, "");
    // Still 401 (not 429) without a key: authentication comes first.
    let s = get_from(&mut host, ADDR_A, &[]);
    assert_eq!(host.local_reply(s).map(|r| r.status), Some(401));
}

// ---- redis policy through the sidecar ------------------------------------------------------

/// Asserts `call` is a `/v1/limit` call to the sidecar; returns its ops.
fn limit_ops(call: &HttpCall) -> Vec<Value> {
    assert_eq!(call.upstream, "secret_sidecar");
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":path"), Some("/v1/limit"));
    assert_eq!(call.header(":authority"), Some("secret-sidecar"));
    assert_eq!(
        call.header("authorization"),
        Some("Bearer test-sidecar-token")
    );
    assert_eq!(call.header("content-type"), Some("application/json"));
    body_of(call)["ops"].as_array().expect("ops array").clone()
}

/// The one op of a per-request call: `(key, limit, window_s, cost)`.
fn single_op(call: &HttpCall) -> (String, u64, u64, u64) {
    let ops = limit_ops(call);
    assert_eq!(ops.len(), 1, "{ops:?}");
    let op = &ops[0];
    assert_eq!(op.as_object().unwrap().len(), 4, "{op}");
    (
        op["key"].as_str().expect("key").to_owned(),
        op["limit"].as_u64().expect("limit"),
        op["window_s"].as_u64().expect("window_s"),
        op["cost"].as_u64().expect("cost"),
    )
}

fn redis_limit() -> Value {
    json!({
        "count": 3, "time_window": 60, "key": "remote_addr",
        "rejected_code": 429, "rejected_msg": "Too many requests",
        "policy": "redis", "redis_host": "127.0.0.1", "redis_port": 6379,
        "redis_password": REDIS_PASSWORD_REF
    })
}

/// alice's key is a `$secret://` reference, so there is a `/v1/resolve` callout.
fn config_with_secret_key(limit: Value) -> Value {
    let mut consumers = consumers();
    consumers[0]["credentials"][0]["key"] = json!(ALICE_REF);
    json!({
        "sidecar": sidecar(),
        "consumers": consumers,
        "plugins": {"key-auth": {}, "limit-count": limit}
    })
}

/// alice's key, as `/v1/resolve` answers it.
const ALICE_VALUES: &[(&str, &str)] = &[(ALICE_REF, "alice-key")];

/// Started with `limit`, the first `/v1/resolve` answered.
fn resolved(limit: Value) -> Filter {
    first_answered(started(&config_with_secret_key(limit)), ALICE_VALUES)
}

const ALICE: &[(&str, &str)] = &[("apikey", "alice-key")];

#[test]
fn redis_request_waits_for_the_sidecar_counter() {
    let mut host = started(&config_with_secret_key(redis_limit()));
    let resolve = one_callout(&mut host, FIRST_FETCH);
    assert_eq!(
        body_of(&resolve)["refs"],
        json!([ALICE_REF]),
        "the Redis password is the sidecar's to resolve"
    );
    answer(&mut host, &resolve, ALICE_VALUES, &[]);

    let s = get_from(&mut host, ADDR_A, ALICE);
    assert_eq!(host.outcome(s), Outcome::Paused);
    let call = the_callout(&mut host);
    // Sent at the end of the turn by the root (batched with the turn's other ops): no request's
    // end can cancel a call others wait for.
    assert_ne!(call.context_id, s.0, "made by the root, not the request");
    let (key, limit, window_s, cost) = single_op(&call);
    assert!(key.contains("10.0.0.1"), "{key}");
    assert!(!key.contains("5555"), "{key}");
    assert_eq!((limit, window_s, cost), (3, 60, 1));
    let backend = &body_of(&call)["backend"];
    assert_eq!(backend["policy"], "redis");
    assert_eq!(backend["host"], "127.0.0.1");
    assert_eq!(backend["port"], 6379);
    assert_eq!(backend["password"], REDIS_PASSWORD_REF, "passed unresolved");
    assert_eq!(backend["database"], 0);
    assert_eq!(backend["timeout_ms"], 1000);
    assert_eq!(backend["ssl"], false);
    assert!(
        !call.body_str().contains("alice-key"),
        "no secret value goes to /v1/limit"
    );

    answer_counter(&mut host, &call, 2, 60);
    let response = assert_passes(&mut host, s);
    assert_eq!(quota(&response), Some((3, 2, 60)));
    assert_eq!(
        host.request_header(s, "x-consumer-username").as_deref(),
        Some("alice")
    );
}

#[test]
fn redis_keys_are_per_client_address() {
    let mut host = resolved(redis_limit());
    let mut keys = Vec::new();
    for addr in [ADDR_A, "10.0.0.1:1234", ADDR_B] {
        let s = get_from(&mut host, addr, ALICE);
        let call = the_callout(&mut host);
        keys.push(single_op(&call).0);
        answer_counter(&mut host, &call, 2, 60);
        assert_passes(&mut host, s);
    }
    assert_eq!(keys[0], keys[1], "same address, same counter");
    assert_ne!(keys[0], keys[2], "another address, another counter");
}

#[test]
fn redis_remaining_below_zero_is_rejected_and_zero_passes() {
    let mut host = resolved(redis_limit());
    let s = get_from(&mut host, ADDR_A, ALICE);
    let call = the_callout(&mut host);
    answer_counter(&mut host, &call, 0, 30);
    let response = assert_passes(&mut host, s);
    assert_eq!(quota(&response), Some((3, 0, 30)));

    let s = get_from(&mut host, ADDR_A, ALICE);
    let call = the_callout(&mut host);
    answer_counter(&mut host, &call, -1, 29);
    let headers = assert_limited(&host, s, 429, TOO_MANY);
    assert_eq!(quota(&headers), Some((3, 0, 29)));
}

const UNAVAILABLE: &str = "{\"message\":\"rate limiting is unavailable\"}";

/// Asserts the stream got `500 {"message":"rate limiting is unavailable"}`.
fn assert_unavailable(host: &Host, s: Stream) {
    let reply = host
        .local_reply(s)
        .unwrap_or_else(|| panic!("expected a 500, got {:?}", host.outcome(s)));
    assert_eq!(reply.status, 500);
    let body: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| panic!("500 body is not JSON: {:?}", reply.body_str()));
    assert_eq!(body, serde_json::from_str::<Value>(UNAVAILABLE).unwrap());
}

/// The ways the sidecar's counter can fail.
#[derive(Clone, Copy, Debug)]
enum Failure {
    BadGateway,
    CallFailed,
    TimedOut,
    Garbage,
}

fn fail(host: &mut Host, call: &HttpCall, how: Failure) {
    match how {
        Failure::BadGateway => {
            let body = json!({"error": {"code": "redis_unavailable",
                                        "message": "connection refused (127.0.0.1:6379)"}});
            host.respond(
                call.token,
                &[(":status", "502")],
                body.to_string().as_bytes(),
            )
            .unwrap();
        }
        Failure::CallFailed => host.fail_call(call.token).unwrap(),
        Failure::TimedOut => {
            host.advance(Duration::from_millis(2001)).unwrap();
            assert!(!host.is_call_pending(call.token));
        }
        Failure::Garbage => host
            .respond(call.token, &[(":status", "200")], b"<html>oops</html>")
            .unwrap(),
    }
}

const FAILURES: [Failure; 4] = [
    Failure::BadGateway,
    Failure::CallFailed,
    Failure::TimedOut,
    Failure::Garbage,
];

#[test]
fn redis_failure_is_500_without_allow_degradation_and_logged_once() {
    for how in FAILURES {
        let mut host = resolved(redis_limit());
        for _ in 0..3 {
            let s = get_from(&mut host, ADDR_A, ALICE);
            let call = the_callout(&mut host);
            fail(&mut host, &call, how);
            assert_unavailable(&host, s);
        }
        let warnings = limit_warnings(&host);
        assert_eq!(warnings.len(), 1, "{how:?}: {warnings:?}");
        if let Failure::BadGateway = how {
            assert!(warnings[0].contains("connection refused"), "{warnings:?}");
        }
    }
}

#[test]
fn redis_failure_passes_with_allow_degradation_and_is_logged_once() {
    let mut limit = redis_limit();
    limit["allow_degradation"] = json!(true);
    for how in FAILURES {
        let mut host = resolved(limit.clone());
        for _ in 0..3 {
            let s = get_from(&mut host, ADDR_A, ALICE);
            let call = the_callout(&mut host);
            fail(&mut host, &call, how);
            assert_passes(&mut host, s);
            assert_eq!(
                host.request_header(s, "x-consumer-username").as_deref(),
                Some("alice")
            );
        }
        let warnings = limit_warnings(&host);
        assert_eq!(warnings.len(), 1, "{how:?}: {warnings:?}");
    }
}

#[test]
fn redis_outage_after_recovery_is_logged_again() {
    let mut host = resolved(redis_limit());
    for (round, outage) in [(1, true), (1, false), (2, true)] {
        let s = get_from(&mut host, ADDR_A, ALICE);
        let call = the_callout(&mut host);
        if outage {
            fail(&mut host, &call, Failure::BadGateway);
            assert_unavailable(&host, s);
        } else {
            answer_counter(&mut host, &call, 2, 60);
            assert_passes(&mut host, s);
        }
        let outages = limit_warnings(&host)
            .iter()
            .filter(|l| l.contains("connection refused"))
            .count();
        assert_eq!(outages, round, "one line per outage: {:?}", host.logs());
    }
}

#[test]
fn sidecar_call_refused_by_the_proxy_is_a_failure_too() {
    for degrade in [false, true] {
        let mut limit = redis_limit();
        limit["allow_degradation"] = json!(degrade);
        let mut host = resolved(limit);
        host.set_http_call_error(Some(proxy_wasm_harness::Status::InternalFailure));
        for _ in 0..2 {
            let s = get_from(&mut host, ADDR_A, ALICE);
            if degrade {
                assert_passes(&mut host, s);
            } else {
                assert_unavailable(&host, s);
            }
        }
        assert_eq!(limit_warnings(&host).len(), 1, "{:?}", host.logs());
    }
}

// ---- sync_interval -------------------------------------------------------------------------

/// Redis with `sync_interval` 0.5 s; no `$secret://` key, so no startup wait.
fn synced() -> Filter {
    let mut limit = redis_limit();
    limit["sync_interval"] = json!(0.5);
    started(&config_with(json!({ "limit-count": limit })))
}

const SYNC: Duration = Duration::from_millis(500);

#[test]
fn sync_interval_decides_locally_then_pushes_the_hits() {
    let mut host = synced();
    let mut remaining = Vec::new();
    let mut passed = 0;
    for _ in 0..5 {
        let s = get_from(&mut host, ADDR_A, &[]);
        match host.outcome(s) {
            Outcome::Continue => {
                passed += 1;
                remaining.push(quota(&upstream_answers(&mut host, s)).unwrap().1);
            }
            _ => {
                let headers = assert_limited(&host, s, 429, TOO_MANY);
                assert_eq!(quota(&headers).map(|q| (q.0, q.1)), Some((3, 0)));
            }
        }
    }
    assert_eq!(passed, 3, "exactly count pass before any sync");
    assert_eq!(remaining, [2, 1, 0]);
    assert!(
        host.take_http_calls().is_empty(),
        "no callout per request under sync_interval"
    );

    let call = one_callout(&mut host, SYNC + Duration::from_millis(100));
    let (key, limit, window_s, cost) = single_op(&call);
    assert!(key.contains("10.0.0.1"), "{key}");
    assert_eq!(
        (limit, window_s, cost),
        (3, 60, 3),
        "the admitted hits are pushed"
    );
    let backend = &body_of(&call)["backend"];
    assert_eq!(backend["password"], REDIS_PASSWORD_REF);
    assert_eq!(backend["host"], "127.0.0.1");
    answer_counter(&mut host, &call, -2, 60);

    // Nothing new: nothing pushed.
    assert!(callouts_within(&mut host, 3 * SYNC).is_empty());
}

#[test]
fn sync_interval_pushes_each_key_once_per_interval() {
    let mut host = synced();
    for addr in [ADDR_A, ADDR_A, ADDR_B] {
        let s = get_from(&mut host, addr, &[]);
        assert_passes(&mut host, s);
    }
    let call = one_callout(&mut host, SYNC + Duration::from_millis(100));
    let ops = limit_ops(&call);
    let mut costs: Vec<(bool, u64)> = ops
        .iter()
        .map(|op| {
            let key = op["key"].as_str().unwrap();
            (key.contains("10.0.0.1"), op["cost"].as_u64().unwrap())
        })
        .collect();
    costs.sort();
    assert_eq!(costs, [(false, 1), (true, 2)], "{ops:?}");
    let results = json!({"results": [{"remaining": 1, "reset_s": 60},
                                     {"remaining": 1, "reset_s": 60}]});
    host.respond(
        call.token,
        &[(":status", "200")],
        results.to_string().as_bytes(),
    )
    .unwrap();
}

#[test]
fn sync_interval_applies_what_redis_answers() {
    let mut host = synced();
    for _ in 0..2 {
        let s = get_from(&mut host, ADDR_A, &[]);
        assert_passes(&mut host, s);
    }
    let call = one_callout(&mut host, SYNC + Duration::from_millis(100));
    assert_eq!(single_op(&call).3, 2);
    // Other Envoys used the rest and more.
    answer_counter(&mut host, &call, -5, 59);
    let s = get_from(&mut host, ADDR_A, &[]);
    let headers = assert_limited(&host, s, 429, TOO_MANY);
    assert_eq!(quota(&headers).map(|q| (q.0, q.1)), Some((3, 0)));
    // Another key is not affected.
    let s = get_from(&mut host, ADDR_B, &[]);
    assert_passes(&mut host, s);

    // Only admitted hits are pushed: the next push carries B's hit, not A's refused one.
    let call = one_callout(&mut host, SYNC + Duration::from_millis(100));
    let ops = limit_ops(&call);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(
        ops[0]["key"].as_str().unwrap().contains("10.0.0.2"),
        "{ops:?}"
    );
    assert_eq!(ops[0]["cost"], 1);
    answer_counter(&mut host, &call, 2, 60);
    // Redis said A's window ends 59 s after its answer: still refused just before...
    host.advance(Duration::from_secs(57)).unwrap();
    let s = get_from(&mut host, ADDR_A, &[]);
    assert_limited(&host, s, 429, TOO_MANY);
    // ...and a new window after.
    host.advance(Duration::from_millis(2500)).unwrap();
    let s = get_from(&mut host, ADDR_A, &[]);
    let response = assert_passes(&mut host, s);
    assert_eq!(quota(&response), Some((3, 2, 60)), "a new window");
}

#[test]
fn sync_interval_retries_a_failed_push_with_its_hits() {
    for how in FAILURES {
        let mut host = synced();
        for _ in 0..2 {
            let s = get_from(&mut host, ADDR_A, &[]);
            assert_passes(&mut host, s);
        }
        let call = one_callout(&mut host, SYNC + Duration::from_millis(100));
        assert_eq!(single_op(&call).3, 2, "{how:?}");
        // Hits while the push is in flight.
        let s = get_from(&mut host, ADDR_A, &[]);
        assert_passes(&mut host, s);
        let s = get_from(&mut host, ADDR_A, &[]);
        assert_limited(&host, s, 429, TOO_MANY);
        fail(&mut host, &call, how);

        // Retried (the timeout case retries within `fail`, as the clock runs on).
        let call = match how {
            Failure::TimedOut => the_callout(&mut host),
            _ => one_callout(&mut host, SYNC + Duration::from_millis(100)),
        };
        assert_eq!(
            single_op(&call).3,
            3,
            "{how:?}: the failed hits and the new admitted one"
        );
        answer_counter(&mut host, &call, -1, 58);
        assert!(callouts_within(&mut host, 3 * SYNC).is_empty(), "{how:?}");
        let warnings = limit_warnings(&host);
        assert_eq!(warnings.len(), 1, "{how:?}: {warnings:?}");
    }
}

// ---- requests that waited for the first answer ---------------------------------------------

#[test]
fn request_released_by_the_first_answer_is_counted_locally() {
    let limit = json!({"count": 1, "time_window": 60, "rejected_code": 429,
                       "rejected_msg": "Too many requests"});
    let mut host = started(&config_with_secret_key(limit));
    let first = get_from(&mut host, ADDR_A, ALICE);
    let second = get_from(&mut host, ADDR_A, ALICE);
    assert_eq!(host.outcome(first), Outcome::Paused);
    assert_eq!(host.outcome(second), Outcome::Paused);
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, ALICE_VALUES, &[]);

    let outcomes = [host.outcome(first), host.outcome(second)];
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Continue).count(),
        1,
        "{outcomes:?}"
    );
    let (passed, limited) = if outcomes[0] == Outcome::Continue {
        (first, second)
    } else {
        (second, first)
    };
    assert_limited(&host, limited, 429, TOO_MANY);
    let response = upstream_answers(&mut host, passed);
    assert_eq!(quota(&response), Some((1, 0, 60)));
    let s = get_from(&mut host, ADDR_A, ALICE);
    assert_limited(&host, s, 429, TOO_MANY);
}

#[test]
fn request_released_by_the_first_answer_is_counted_in_redis() {
    let mut host = started(&config_with_secret_key(redis_limit()));
    let passing = get_from(&mut host, ADDR_A, ALICE);
    let limited = get_from(&mut host, ADDR_B, ALICE);
    let resolve = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &resolve, ALICE_VALUES, &[]);

    // Released in one turn: their ops go in one call, in the order they were judged.
    let calls = host.take_http_calls();
    assert_eq!(
        calls.len(),
        1,
        "one /v1/limit call for the released requests"
    );
    let ops = limit_ops(&calls[0]);
    assert_eq!(ops.len(), 2, "{ops:?}");
    let results: Vec<Value> = ops
        .iter()
        .map(|op| {
            let key = op["key"].as_str().unwrap();
            let remaining = if key.contains("10.0.0.1") { 2 } else { -1 };
            json!({"remaining": remaining, "reset_s": 60})
        })
        .collect();
    respond_json(&mut host, &calls[0], &json!({ "results": results }));
    assert_eq!(
        host.outcome(passing),
        Outcome::Continue,
        "released request answered 200 remaining 2"
    );
    assert_eq!(
        quota(&upstream_answers(&mut host, passing)),
        Some((3, 2, 60))
    );
    assert_limited(&host, limited, 429, TOO_MANY);
}

#[test]
fn a_request_that_ends_leaves_the_others_their_own_counters() {
    let mut host = started(&config_with_secret_key(redis_limit()));
    let addrs = ["10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"];
    let streams: Vec<Stream> = addrs
        .iter()
        .map(|a| get_from(&mut host, a, ALICE))
        .collect();
    let resolve = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &resolve, ALICE_VALUES, &[]);
    let calls = host.take_http_calls();
    assert_eq!(calls.len(), 1);
    let keys: Vec<String> = limit_ops(&calls[0])
        .iter()
        .map(|op| op["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    // The middle request's client goes away while the call is in flight.
    host.finish(streams[1]).unwrap();
    assert!(
        host.is_call_pending(calls[0].token),
        "the call is not cancelled"
    );
    // Each remaining request gets the result of its own op: 10.0.0.1 one left, 10.0.0.3 over.
    let results: Vec<Value> = keys
        .iter()
        .map(|k| {
            let remaining = if k.contains("10.0.0.1") {
                1
            } else if k.contains("10.0.0.2") {
                2
            } else {
                -1
            };
            json!({"remaining": remaining, "reset_s": 30})
        })
        .collect();
    respond_json(&mut host, &calls[0], &json!({ "results": results }));
    assert_eq!(host.outcome(streams[0]), Outcome::Continue);
    assert_eq!(
        quota(&upstream_answers(&mut host, streams[0])),
        Some((3, 1, 30))
    );
    assert_limited(&host, streams[2], 429, TOO_MANY);
    assert!(!host.is_dead(), "{:?}", host.dead_reason());
}

#[test]
fn a_batch_answer_short_of_results_fails_every_request_in_it() {
    let mut limit = redis_limit();
    limit["allow_degradation"] = json!(false);
    let mut host = started(&config_with_secret_key(limit));
    let a = get_from(&mut host, ADDR_A, ALICE);
    let b = get_from(&mut host, ADDR_B, ALICE);
    let resolve = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &resolve, ALICE_VALUES, &[]);
    let calls = host.take_http_calls();
    assert_eq!(limit_ops(&calls[0]).len(), 2);
    // One result for two ops: nobody may take another's counter.
    answer_counter(&mut host, &calls[0], 2, 60);
    for s in [a, b] {
        assert_eq!(
            host.local_reply(s).map(|r| r.status),
            Some(500),
            "{:?}",
            host.logs()
        );
    }
    assert_eq!(
        host.logs_containing("the sidecar answered 1 results for 2 ops")
            .len(),
        1,
        "{:?}",
        host.logs()
    );
}

// ---- steady traffic against a model of the sidecar's Redis ---------------------------------

/// DESIGN.md §4's fixed window per op: a key without TTL is `SET (limit - cost) EX window_s`,
/// else `DECRBY cost`; answers `(remaining, reset_s)`.
#[derive(Default)]
struct RedisModel {
    /// key -> (value, expiry in ms of the harness clock)
    keys: std::collections::HashMap<String, (i64, u128)>,
}

impl RedisModel {
    fn answer(&mut self, host: &mut Host, call: &HttpCall) {
        let now = host
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let results: Vec<Value> = limit_ops(call)
            .iter()
            .map(|op| {
                let key = op["key"].as_str().unwrap().to_owned();
                let limit = op["limit"].as_i64().unwrap();
                let window_ms = u128::from(op["window_s"].as_u64().unwrap()) * 1000;
                let cost = op["cost"].as_i64().unwrap();
                let entry = self
                    .keys
                    .entry(key)
                    .and_modify(|(value, expiry)| {
                        if *expiry <= now {
                            *value = limit - cost;
                            *expiry = now + window_ms;
                        } else {
                            *value -= cost;
                        }
                    })
                    .or_insert((limit - cost, now + window_ms));
                json!({"remaining": entry.0, "reset_s": (entry.1 - now).div_ceil(1000)})
            })
            .collect();
        let body = json!({ "results": results }).to_string();
        host.respond(call.token, &[(":status", "200")], body.as_bytes())
            .unwrap();
    }
}

/// One request from `ADDR_A` every 100 ms for `duration`, the sidecar answering at once from
/// the model; returns the times (ms from the start) of the requests that passed.
fn steady_traffic(host: &mut Host, duration: Duration) -> Vec<u128> {
    let mut redis = RedisModel::default();
    let start = host.now();
    let mut passed = Vec::new();
    while host.now().duration_since(start).unwrap() < duration {
        host.advance(Duration::from_millis(100)).unwrap();
        for call in host.take_http_calls() {
            redis.answer(host, &call);
        }
        let s = get_from(host, ADDR_A, &[]);
        for call in host.take_http_calls() {
            redis.answer(host, &call);
        }
        match host.outcome(s) {
            Outcome::Continue => passed.push(host.now().duration_since(start).unwrap().as_millis()),
            Outcome::LocalReply(r) => assert_eq!(r.status, 429),
            other => panic!("{other:?}"),
        }
    }
    passed
}

/// APISIX's fixed window: a client over the limit all the time still gets `count` requests in
/// every window (here 150 s: windows starting near 0 s, 60 s and 120 s).
#[test]
fn steady_traffic_gets_count_per_window_with_redis_per_request() {
    let mut host = started(&config_with(json!({ "limit-count": redis_limit() })));
    let passed = steady_traffic(&mut host, Duration::from_secs(150));
    assert_eq!(
        passed,
        [100, 200, 300, 60_100, 60_200, 60_300, 120_100, 120_200, 120_300]
    );
}

#[test]
fn steady_traffic_gets_count_per_window_with_sync_interval() {
    let mut host = synced();
    let passed = steady_traffic(&mut host, Duration::from_secs(150));
    for window in 0..3 {
        let from = window * 60_000;
        let in_window = passed
            .iter()
            .filter(|t| (from..from + 60_000).contains(*t))
            .count();
        assert!(
            in_window >= 3,
            "window {window}: {in_window} passed; all passes at (ms): {passed:?}"
        );
    }
}

// ---- malformed input -------------------------------------------------------------------------

const ODD_ADDRESSES: &[&[u8]] = &[
    b"",
    b"\xff\xfe\xfd:80",
    b"[::1",
    b"[]:",
    b":",
    b"::::",
    b"[::1]:99999999999999999999",
    b"10.0.0.1:abc",
    b"\0\0\0",
    b"unix:/var/run/envoy.sock",
    b"[2001:db8::1]:443",
];

const ODD_PATHS: &[&str] = &[
    "",
    "*",
    "/?user=%zz&user",
    "/?&&==&user=&user=%E2%82",
    "/?user=%00%ff",
    "/ip?user=a+b&user=c",
];

/// Every request is decided (passed or answered) and well-formed callouts are answered.
fn decide_odd_requests(host: &mut Host) {
    let long_value = "x".repeat(16 * 1024);
    let long_address = vec![b'7'; 4096];
    let mut addresses: Vec<&[u8]> = ODD_ADDRESSES.to_vec();
    addresses.push(&long_address);
    let headers: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("x-tenant", "")],
        vec![("x-tenant", &long_value)],
        vec![("x-tenant", "ü€\t\"{}\\"), ("x-tenant", "second")],
        vec![("apikey", "alice-key"), ("x-tenant", "\u{0}")],
        vec![("apikey", "\u{7f}\u{1}")],
    ];
    let routes: [&[u8]; 3] = [b"open", b"\xff\xfe", b""];
    let mut n = 0;
    for (i, address) in addresses.iter().enumerate() {
        host.set_property(&["source", "address"], address);
        host.set_property(&["xds", "route_name"], routes[i % routes.len()]);
        for path in ODD_PATHS {
            for extra in &headers {
                n += 1;
                let mut h = vec![(":method", "GET"), (":path", *path), (":authority", "x")];
                h.extend_from_slice(extra);
                let s = host.request(&h, true).unwrap_or_else(|e| {
                    panic!("request {n} ({address:?}, {path:?}) killed the VM: {e:#}")
                });
                for call in host.take_http_calls() {
                    let ops = limit_ops(&call);
                    assert!(ops.iter().all(|op| op["key"].is_string()), "{ops:?}");
                    answer_counter(host, &call, 2, 60);
                }
                match host.outcome(s) {
                    Outcome::Continue => {
                        host.response_headers(s, &[(":status", "200")], true)
                            .unwrap();
                    }
                    Outcome::LocalReply(_) => {}
                    other => panic!("request {n} ({address:?}, {path:?}): {other:?}"),
                }
                host.finish(s).unwrap();
            }
        }
    }
    // And the sync pushes of all that.
    host.advance(Duration::from_secs(1)).unwrap();
    for call in host.take_http_calls() {
        let ops = limit_ops(&call);
        let results: Vec<Value> = ops
            .iter()
            .map(|_| json!({"remaining": 1, "reset_s": 60}))
            .collect();
        let body = json!({ "results": results }).to_string();
        host.respond(call.token, &[(":status", "200")], body.as_bytes())
            .unwrap();
    }
    assert!(!host.is_dead());
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

#[test]
fn malformed_properties_and_headers_never_kill_the_vm() {
    let combination = "$remote_addr|$http_x_tenant|$arg_user|$route_name|$consumer_name";
    let mut redis = redis_limit();
    redis["key_type"] = json!("var_combination");
    redis["key"] = json!(combination);
    let mut synced = redis.clone();
    synced["sync_interval"] = json!(0.5);
    for limit in [
        limit_on("var_combination", combination, 2),
        limit_on("var", "remote_addr", 2),
        limit_on("var", "arg_user", 2),
        redis,
        synced,
    ] {
        let config = json!({
            "sidecar": sidecar(),
            "consumers": consumers(),
            "plugins": {"key-auth": {}, "limit-count": limit},
            "routes": {"open": {"limit-count": limit}}
        });
        let mut host = started(&config);
        // Before any source.address is known.
        let s = host
            .request(
                &[(":method", "GET"), (":path", "/"), (":authority", "x")],
                true,
            )
            .unwrap();
        for call in host.take_http_calls() {
            answer_counter(&mut host, &call, 2, 60);
        }
        assert!(matches!(
            host.outcome(s),
            Outcome::Continue | Outcome::LocalReply(_)
        ));
        host.finish(s).unwrap();
        decide_odd_requests(&mut host);
        // Still deciding, and (local policy) still counting, afterwards.
        host.set_property(&["xds", "route_name"], b"open");
        let fresh = [("x-tenant", "fresh")];
        let local = !config.to_string().contains("redis");
        for i in 0..3 {
            let s = get_path_from(&mut host, "10.8.8.8:1", "/?user=fresh", &fresh);
            for call in host.take_http_calls() {
                answer_counter(&mut host, &call, 2, 60);
            }
            if local && i == 2 {
                assert_limited(&host, s, 429, TOO_MANY);
            } else {
                assert_passes(&mut host, s);
            }
        }
    }
}

#[test]
fn missing_source_address_is_still_limited() {
    let mut host = started(&config_with(json!({ "limit-count": local_limit() })));
    let passed = (0..4)
        .filter(|_| {
            let s = host
                .request(
                    &[(":method", "GET"), (":path", "/"), (":authority", "x")],
                    true,
                )
                .unwrap();
            host.outcome(s) == Outcome::Continue
        })
        .count();
    assert_eq!(passed, 3, "{:?}", host.logs());
}

/// Issue #7, item 6: a request that ends (client reset) while it waits for its Redis counter
/// leaves nothing behind, and the counter's late answer (Envoy still delivers it, to the root
/// context) is ignored. Linear memory only grows, so a leak shows as growth over 100,000 such
/// requests after a warm-up.
#[test]
fn requests_that_end_while_waiting_for_their_counter_leave_nothing_behind() {
    let mut host = resolved(redis_limit());
    let aborted = |host: &mut Host, n: usize| {
        for _ in 0..n {
            let s = get_from(host, ADDR_A, ALICE);
            assert_eq!(host.outcome(s), Outcome::Paused);
            let call = the_callout(host);
            host.finish(s).unwrap();
            host.forget(s);
            answer_counter(host, &call, 2, 60);
        }
    };
    aborted(&mut host, 2_000);
    let before = host.memory_bytes();
    aborted(&mut host, 100_000);
    let after = host.memory_bytes();
    assert!(
        after <= before + 64 * 1024,
        "memory grew from {before} to {after} bytes over 100,000 aborted requests"
    );
    // and requests still get their counter
    let s = get_from(&mut host, ADDR_A, ALICE);
    let call = the_callout(&mut host);
    answer_counter(&mut host, &call, 2, 60);
    assert_passes(&mut host, s);
}

/// Issue #7, item 11: a request waits for its Redis counter as long as `redis_timeout` allows
/// (plus 100 ms for the sidecar), not the sidecar's resolve timeout (`timeout_ms`, 2 s here).
#[test]
fn a_per_request_counter_call_waits_redis_timeout_not_the_sidecar_timeout() {
    let mut limit = redis_limit();
    limit["redis_timeout"] = json!(250);
    let mut host = resolved(limit);
    let s = get_from(&mut host, ADDR_A, ALICE);
    let call = the_callout(&mut host);
    assert_eq!(call.timeout_ms, 350);
    // when the sidecar does not answer in time, the request is judged as on a store failure
    host.fail_call(call.token).unwrap();
    let reply = host
        .local_reply(s)
        .expect("refused without allow_degradation");
    assert_eq!(reply.status, 500);
}
