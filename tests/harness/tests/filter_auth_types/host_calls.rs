//! Host calls per request (issue #9): every crossing between the module and Envoy costs
//! microseconds in V8, so the request path's calls are counted here, per plugin, and any change
//! in them must be deliberate. `(host calls, module calls)` for one whole request (headers, the
//! response's headers, the end of the stream), after the secrets are known and after a first
//! request of the same kind:
//!
//! * host calls: reads, writes, the clock, the local reply;
//! * module calls: Envoy's 4 callbacks into this filter (context create, request headers,
//!   response headers, delete; an SDK filter also gets `proxy_on_done`, `proxy_on_log`, and
//!   `proxy_on_response_body` for a response with a body, whose exports `scripts/build.sh`
//!   removes: `exports.rs`), plus one allocation per read that returns data.
//!
//! The shipped configs set `strip_identity_headers: false` (Envoy removes client copies before
//! routing). With `strip_identity_headers: true` the filter reads every request header in one
//! call and removes only the copies the client sent (none: no call). Replacing the whole map in
//! one call instead of several writes was measured slower in Envoy (BENCHMARKS.md).

use super::*;

/// Crossings of one GET on `path` with `headers`, answered 200 upstream, and its outcome.
fn crossings(host: &mut Filter, path: &str, headers: &[(&str, &str)]) -> ((u64, u64), Outcome) {
    let before = host.crossings();
    let s = get(host, path, headers);
    let outcome = host.outcome(s);
    if outcome == Outcome::Continue {
        host.response_headers(s, &[(":status", "200")], true)
            .unwrap();
    }
    host.finish(s).unwrap();
    let after = host.crossings();
    ((after.0 - before.0, after.1 - before.1), outcome)
}

fn shipped(plugins: Value) -> Value {
    let mut c = config(plugins);
    c["strip_identity_headers"] = json!(false);
    c
}

/// Envoy's callbacks into this filter for such a request.
const CALLBACKS: u64 = 4;

#[test]
fn host_calls_per_request_by_plugin() {
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let bearer = format!("Bearer {token}");
    let basic = format!(
        "Basic {}",
        base64_encode(format!("alice:{ALICE_PASSWORD}").as_bytes())
    );
    let spec = HmacSpec::default();
    let signed = sign(&[spec]).remove(0);
    let hmac_headers = [
        ("authorization", signed.authorization.as_str()),
        ("date", signed.date.as_str()),
    ];
    // (case, plugins, strip, path, headers, expected (host calls, module calls))
    type Row<'a> = (
        &'a str,
        Value,
        bool,
        &'a str,
        Vec<(&'a str, &'a str)>,
        (u64, u64),
    );
    let rows: Vec<Row> = vec![
        // nothing to do: not a single host call
        ("no plugin", json!({}), false, "/ip", vec![], (0, CALLBACKS)),
        // the filter reads the headers (+1 allocation) to remove client copies: none here
        (
            "no plugin, strip",
            json!({}),
            true,
            "/ip",
            vec![],
            (1, CALLBACKS + 1),
        ),
        // one forged copy: one call removes it
        (
            "no plugin, strip, a forged header",
            json!({}),
            true,
            "/ip",
            vec![("x-consumer-username", "admin")],
            (2, CALLBACKS + 1),
        ),
        // read apikey (+1 allocation), write username, credential id, custom id
        (
            "key-auth",
            json!({"key-auth": {}}),
            false,
            "/ip",
            vec![("apikey", ALICE_KEY)],
            (4, CALLBACKS + 1),
        ),
        // the same when the filter also removes client copies (the default): every header in one
        // read instead of `apikey` alone; the forged copy is replaced by the write
        (
            "key-auth, strip",
            json!({"key-auth": {}}),
            true,
            "/ip",
            vec![("apikey", ALICE_KEY), ("x-consumer-custom-id", "forged")],
            (4, CALLBACKS + 1),
        ),
        (
            "basic-auth",
            json!({"basic-auth": {}}),
            false,
            "/ip",
            vec![("authorization", basic.as_str())],
            (4, CALLBACKS + 1),
        ),
        // jwt-auth also reads the clock (exp / nbf)
        (
            "jwt-auth HS256",
            json!({"jwt-auth": {}}),
            false,
            "/ip",
            vec![("authorization", bearer.as_str())],
            (5, CALLBACKS + 1),
        ),
        // every header in one read (+1 allocation), the clock, the 3 writes
        (
            "hmac-auth",
            json!({"hmac-auth": {}}),
            false,
            spec.path,
            hmac_headers.to_vec(),
            (5, CALLBACKS + 1),
        ),
        // the client's address (+1 allocation), the clock, the counter: shared-data get (+1
        // allocation) and compare-and-swap, then 3 X-RateLimit-* response headers
        (
            "limit-count local",
            json!({"limit-count": {"count": 1000, "time_window": 60, "key": "remote_addr"}}),
            false,
            "/ip",
            vec![],
            (7, CALLBACKS + 2),
        ),
    ];
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for (case, plugins, strip, path, headers, want) in rows {
        let mut config = shipped(plugins);
        config["strip_identity_headers"] = json!(strip);
        let mut host = configured(&config);
        host.set_property(&["source", "address"], b"10.0.0.1:5555");
        // The steady state: a first request warms up (a new counter probes for its slot).
        crossings(&mut host, path, &headers);
        let (got, outcome) = crossings(&mut host, path, &headers);
        assert_eq!(outcome, Outcome::Continue, "{case}: {:?}", host.logs());
        report.push(format!(
            "{case}: {} host calls, {} module calls",
            got.0, got.1
        ));
        if got != want {
            wrong.push(format!("{case}: got {got:?}, expected {want:?}"));
        }
    }
    println!("{}", report.join("\n"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
