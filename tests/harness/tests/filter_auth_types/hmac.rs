//! hmac-auth (APISIX 3.11+ scheme): signatures, clock skew, reasons, and the body digest.

use super::*;

fn hmac() -> Value {
    config(json!({"hmac-auth": {}}))
}

pub(super) fn hmac_request(host: &mut Host, spec: &HmacSpec, signed: &Signed) -> Stream {
    get(
        host,
        spec.path,
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
        ],
    )
}

/// The generic 401, with the reason in the log. Such lines are throttled (one per 10 s per
/// worker: a client controls how many there are), so the clock moves on past the period.
pub(super) fn assert_hmac_generic(host: &mut Host, s: Stream, reason: &str) {
    assert_reply(host, s, 401, HMAC_GENERIC, Some(HMAC_REALM));
    assert_warn_logged(host, reason);
    host.advance(HMAC_LOG_PERIOD).unwrap();
}

pub(super) const HMAC_LOG_PERIOD: Duration = Duration::from_secs(10);

#[test]
fn hmac_sha256_with_request_target_and_date() {
    let mut host = configured(&hmac());
    let specs = [
        HmacSpec::default(),
        HmacSpec {
            key_id: "bob-keyid",
            secret: BOB_HMAC_SECRET,
            algorithm: "hmac-sha512",
            path: "/anything/x?a=1&b=%20",
            ..HmacSpec::default()
        },
        HmacSpec {
            key_id: "bob-keyid",
            secret: BOB_HMAC_SECRET,
            algorithm: "hmac-sha1",
            headers: "date @request-target",
            ..HmacSpec::default()
        },
    ];
    let signed = sign(&specs);
    let s = hmac_request(&mut host, &specs[0], &signed[0]);
    let s2 = {
        let mut headers = with_spoofed(&[]);
        headers.push(("authorization", &signed[0].authorization));
        headers.push(("date", &signed[0].date));
        get(&mut host, specs[0].path, &headers)
    };
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
    assert_authenticated(&host, s2, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(
        host.request_header(s, "authorization").as_deref(),
        Some(signed[0].authorization.as_str())
    );
    for i in [1, 2] {
        let s = hmac_request(&mut host, &specs[i], &signed[i]);
        assert_authenticated(&host, s, "bob", "bob-hmac", None);
    }
}

#[test]
fn hmac_hide_credentials_removes_authorization() {
    let mut host = configured(&config(json!({"hmac-auth": {"hide_credentials": true}})));
    let spec = HmacSpec::default();
    let signed = sign(&[spec]).remove(0);
    let s = hmac_request(&mut host, &spec, &signed);
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), None);
}

#[test]
fn hmac_clock_skew_exceeded() {
    let mut host = configured(&hmac());
    let specs = [
        HmacSpec {
            date_offset_s: -400,
            ..HmacSpec::default()
        },
        HmacSpec {
            date_offset_s: 400,
            ..HmacSpec::default()
        },
    ];
    for (spec, signed) in specs.iter().zip(sign(&specs)) {
        host.clear_logs();
        let s = hmac_request(&mut host, spec, &signed);
        assert_hmac_generic(&mut host, s, "Clock skew exceeded");
    }
    // Within the default 300 s.
    let spec = HmacSpec {
        date_offset_s: -200,
        ..HmacSpec::default()
    };
    let signed = sign(&[spec]).remove(0);
    let s = hmac_request(&mut host, &spec, &signed);
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn hmac_wrong_signature() {
    let mut host = configured(&hmac());
    let specs = [
        HmacSpec {
            secret: "not-alice-secret",
            ..HmacSpec::default()
        },
        // Signed for another path than the one requested.
        HmacSpec {
            path: "/other",
            ..HmacSpec::default()
        },
    ];
    let signed = sign(&specs);
    host.clear_logs();
    let s = hmac_request(&mut host, &specs[0], &signed[0]);
    assert_hmac_generic(&mut host, s, "Invalid signature");
    host.clear_logs();
    let s = get(
        &mut host,
        "/ip?x=1",
        &[
            ("authorization", &signed[1].authorization),
            ("date", &signed[1].date),
        ],
    );
    assert_hmac_generic(&mut host, s, "Invalid signature");
}

#[test]
fn hmac_missing_or_non_signature_authorization_exposes_the_reason() {
    let mut host = configured(&hmac());
    let s = get(&mut host, "/ip", &[]);
    assert_reply(
        &host,
        s,
        401,
        "client request can't be validated: missing Authorization header",
        Some(HMAC_REALM),
    );
    let s = get(&mut host, "/ip", &[("authorization", "Bearer abc")]);
    assert_reply(
        &host,
        s,
        401,
        "client request can't be validated: Authorization header does not start with 'Signature'",
        Some(HMAC_REALM),
    );
}

#[test]
fn hmac_other_failures_are_generic_with_the_reason_logged() {
    let config =
        config(json!({"hmac-auth": {"allowed_algorithms": ["hmac-sha256", "hmac-sha512"]}}));
    let mut host = configured(&config);
    let specs = [
        HmacSpec {
            key_id: "nobody-keyid",
            ..HmacSpec::default()
        },
        HmacSpec {
            algorithm: "hmac-sha1",
            ..HmacSpec::default()
        },
        // date not signed
        HmacSpec {
            headers: "@request-target",
            ..HmacSpec::default()
        },
    ];
    let signed = sign(&specs);
    // alice's key id: the checks before the signature's pass.
    let alice_auth = signed[0]
        .authorization
        .replace("nobody-keyid", "alice-keyid");
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "Invalid key_id",
            vec![
                ("authorization", &signed[0].authorization),
                ("date", &signed[0].date),
            ],
        ),
        (
            "Invalid algorithm",
            vec![
                ("authorization", &signed[1].authorization),
                ("date", &signed[1].date),
            ],
        ),
        (
            r#"expected header "date" missing in signing"#,
            vec![
                ("authorization", &signed[2].authorization),
                ("date", &signed[2].date),
            ],
        ),
        ("Date header missing", vec![("authorization", &alice_auth)]),
        (
            "keyId or signature missing",
            vec![(
                "authorization",
                r#"Signature algorithm="hmac-sha256",headers="date""#,
            )],
        ),
        (
            "Invalid GMT format time",
            vec![("authorization", &alice_auth), ("date", "yesterday")],
        ),
    ];
    for (reason, headers) in &cases {
        host.clear_logs();
        let s = get(&mut host, "/ip?x=1", headers);
        assert_hmac_generic(&mut host, s, reason);
    }
}

pub(super) fn hmac_body() -> Value {
    config(json!({"hmac-auth": {"validate_request_body": true, "max_req_body_size": 64}}))
}

/// A POST signed over `@request-target date digest`, `body` given to Python for the digest.
pub(super) fn signed_post(body: &str) -> (HmacSpec<'_>, Signed) {
    let spec = HmacSpec {
        method: "POST",
        path: "/post",
        headers: "@request-target date digest",
        body,
        ..HmacSpec::default()
    };
    (spec, sign(&[spec]).remove(0))
}

pub(super) fn post(host: &mut Host, spec: &HmacSpec, signed: &Signed, eos: bool) -> Stream {
    request(
        host,
        spec.method,
        spec.path,
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
            ("digest", &signed.digest),
        ],
        eos,
    )
}

#[test]
fn hmac_body_is_checked_before_the_request_continues() {
    let mut host = configured(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);
    let s = post(&mut host, &spec, &signed, false);
    assert_eq!(host.outcome(s), Outcome::Paused);
    assert_eq!(
        host.send_body(s, &body.as_bytes()[..5], false).unwrap(),
        Outcome::Paused
    );
    assert_eq!(
        host.send_body(s, &body.as_bytes()[5..], true).unwrap(),
        Outcome::Continue
    );
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(host.request_body(s), body.as_bytes());
}

#[test]
fn hmac_body_that_does_not_match_the_digest_is_401() {
    let mut host = configured(&hmac_body());
    let (spec, signed) = signed_post(r#"{"order": 42}"#);
    let s = post(&mut host, &spec, &signed, false);
    assert_eq!(host.outcome(s), Outcome::Paused);
    host.clear_logs();
    host.send_body(s, br#"{"order": 43}"#, true).unwrap();
    assert_hmac_generic(&mut host, s, "Invalid digest");
}

#[test]
fn hmac_body_without_digest_header_is_401() {
    let mut host = configured(&hmac_body());
    let spec = HmacSpec {
        method: "POST",
        path: "/post",
        ..HmacSpec::default()
    };
    let signed = sign(&[spec]).remove(0);
    host.clear_logs();
    let s = request(
        &mut host,
        spec.method,
        spec.path,
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
        ],
        true,
    );
    assert_hmac_generic(&mut host, s, "Invalid digest");
}

#[test]
fn hmac_body_larger_than_max_req_body_size_is_413() {
    let mut host = configured(&hmac_body());
    let body = "x".repeat(100);
    let (spec, signed) = signed_post(&body);
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, &body.as_bytes()[..40], false).unwrap();
    assert_eq!(host.outcome(s), Outcome::Paused);
    host.send_body(s, &body.as_bytes()[40..], false).unwrap();
    assert_reply(&host, s, 413, "Request Entity Too Large", None);
    // The rest of the body changes nothing.
    host.send_body(s, b"", true).unwrap();
    assert_reply(&host, s, 413, "Request Entity Too Large", None);

    // The whole body at once.
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, body.as_bytes(), true).unwrap();
    assert_reply(&host, s, 413, "Request Entity Too Large", None);
}

#[test]
fn hmac_headers_only_request_with_digest_of_empty_body_continues() {
    let mut host = configured(&hmac_body());
    let (spec, signed) = signed_post("");
    let s = post(&mut host, &spec, &signed, true);
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));

    // The digest of a non-empty body, no body: refused.
    let (spec, signed) = signed_post("not empty");
    let s = post(&mut host, &spec, &signed, true);
    assert_reply(&host, s, 401, HMAC_GENERIC, Some(HMAC_REALM));
}

#[test]
fn request_waiting_for_secrets_with_its_whole_body_is_judged_by_the_answer() {
    let mut host = started(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);

    let good = post(&mut host, &spec, &signed, false);
    assert_eq!(host.outcome(good), Outcome::Paused);
    assert_eq!(
        host.send_body(good, body.as_bytes(), true).unwrap(),
        Outcome::Paused
    );

    let bad = post(&mut host, &spec, &signed, false);
    assert_eq!(
        host.send_body(bad, b"{\"order\": 43}", true).unwrap(),
        Outcome::Paused
    );

    // Half of the body before the answer, the rest after.
    let split = post(&mut host, &spec, &signed, false);
    host.send_body(split, &body.as_bytes()[..4], false).unwrap();

    let call = one_callout(&mut host, FIRST_FETCH);
    assert_eq!(host.outcome(good), Outcome::Paused);
    answer(&mut host, &call, &values(), &[]);

    assert_authenticated(&host, good, "alice", "alice-hmac", Some("alice-001"));
    assert_eq!(host.request_body(good), body.as_bytes());
    assert_reply(&host, bad, 401, HMAC_GENERIC, Some(HMAC_REALM));
    assert_eq!(host.outcome(split), Outcome::Paused);
    host.send_body(split, &body.as_bytes()[4..], true).unwrap();
    assert_authenticated(&host, split, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn hmac_body_of_exactly_max_req_body_size_is_accepted() {
    let mut host = configured(&hmac_body());
    let body = "y".repeat(64);
    let (spec, signed) = signed_post(&body);
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, &body.as_bytes()[..32], false).unwrap();
    host.send_body(s, &body.as_bytes()[32..], true).unwrap();
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn request_waiting_for_secrets_with_a_too_large_body_is_413_after_the_answer() {
    let mut host = started(&hmac_body());
    let body = "z".repeat(100);
    let (spec, signed) = signed_post(&body);
    let s = post(&mut host, &spec, &signed, false);
    assert_eq!(
        host.send_body(s, body.as_bytes(), true).unwrap(),
        Outcome::Paused
    );
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, &values(), &[]);
    assert_reply(&host, s, 413, "Request Entity Too Large", None);
}
