//! basic-auth: `Authorization: Basic`, the password behind a reference.

use super::*;

fn basic() -> Value {
    config(json!({"basic-auth": {}}))
}

#[test]
fn basic_auth_accepts_and_replaces_spoofed_consumer_headers() {
    let mut host = configured(&basic());
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &with_spoofed(&[("authorization", &auth)]));
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    // hide_credentials is false: the header goes upstream.
    assert_eq!(host.request_header(s, "authorization"), Some(auth));

    // bob has no custom_id label: the client's copy is removed, not passed on.
    let auth = format!("Basic {B64_BOB}");
    let s = get(&mut host, "/ip", &with_spoofed(&[("authorization", &auth)]));
    assert_authenticated(&host, s, "bob", "bob-basic", None);
}

#[test]
fn basic_auth_scheme_is_case_insensitive() {
    let mut host = configured(&basic());
    for scheme in ["basic", "BASIC"] {
        let auth = format!("{scheme} {B64_ALICE}");
        let s = get(&mut host, "/ip", &[("authorization", &auth)]);
        assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    }
}

#[test]
fn basic_auth_missing_header_is_401_missing() {
    let mut host = configured(&basic());
    let s = get(&mut host, "/ip", &[]);
    assert_reply(
        &host,
        s,
        401,
        "Missing authorization in request",
        Some(BASIC_REALM),
    );
}

#[test]
fn basic_auth_malformed_header_is_401_invalid_authorization() {
    let mut host = configured(&basic());
    let no_colon = format!("Basic {B64_NO_COLON}");
    for auth in [
        "Bearer abc",
        "Digest YWxpY2U6YWxpY2UtcGFzc3dvcmQ=",
        "Basic",
        "Basic !!!not-base64!!!",
        no_colon.as_str(),
    ] {
        let s = get(&mut host, "/ip", &[("authorization", auth)]);
        assert_reply(
            &host,
            s,
            401,
            "Invalid authorization in request",
            Some(BASIC_REALM),
        );
    }
}

#[test]
fn basic_auth_wrong_password_or_unknown_user_is_401_invalid_user() {
    let mut host = configured(&basic());
    for b64 in [B64_ALICE_WRONG, B64_ALICE_LONGER, B64_EVE] {
        let auth = format!("Basic {b64}");
        let s = get(&mut host, "/ip", &[("authorization", &auth)]);
        assert_reply(
            &host,
            s,
            401,
            "Invalid user authorization",
            Some(BASIC_REALM),
        );
    }
}

#[test]
fn basic_auth_password_reference_that_does_not_resolve_matches_nobody() {
    let mut host = started(&basic());
    let call = one_callout(&mut host, FIRST_FETCH);
    let without_password: Vec<_> = values()
        .into_iter()
        .filter(|(r, _)| *r != ALICE_PASSWORD_REF)
        .collect();
    answer(&mut host, &call, &without_password, &[]);
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &[("authorization", &auth)]);
    assert_reply(
        &host,
        s,
        401,
        "Invalid user authorization",
        Some(BASIC_REALM),
    );
    // The reference string itself is no password either.
    let s = get(
        &mut host,
        "/ip",
        &[("authorization", "Basic YWxpY2U6JHNlY3JldDovL2F3cy9teS1zZWNyZXRzLW1hbmFnZXIvYWxpY2UtY3JlZGVudGlhbHMvYWxpY2UtcGFzc3dvcmQ=")],
    );
    assert_reply(
        &host,
        s,
        401,
        "Invalid user authorization",
        Some(BASIC_REALM),
    );
}

#[test]
fn basic_auth_hide_credentials_removes_authorization() {
    let mut host = configured(&config(json!({"basic-auth": {"hide_credentials": true}})));
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &[("authorization", &auth)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), None);
}
