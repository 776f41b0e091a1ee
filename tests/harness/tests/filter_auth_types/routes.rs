//! The anonymous consumer, per-route plugin sets and multi-auth.

use super::jwt::assert_jwt_failed;
use super::*;

#[test]
fn anonymous_consumer_when_no_credential_is_given() {
    let mut host = configured(&config(
        json!({"basic-auth": {"anonymous_consumer": "anon"}}),
    ));
    let s = get(&mut host, "/ip", SPOOFED);
    assert_eq!(host.outcome(s), Outcome::Continue, "{:?}", host.logs());
    let forwarded = host.request_headers(s);
    assert_eq!(header_all(&forwarded, "x-consumer-username"), ["anon"]);
    assert!(header_all(&forwarded, "x-credential-identifier").is_empty());
    assert!(header_all(&forwarded, "x-consumer-custom-id").is_empty());

    // A good credential still identifies its consumer.
    let auth = format!("Basic {B64_ALICE}");
    let s = get(&mut host, "/ip", &[("authorization", &auth)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
}

#[test]
fn anonymous_consumer_must_exist() {
    let config = config(json!({"basic-auth": {"anonymous_consumer": "ghost"}}));
    assert_refused(&config, &["basic-auth.anonymous_consumer", "ghost"]);
}

pub(super) fn routed() -> Value {
    let mut config = config(json!({"basic-auth": {}}));
    config["routes"] = json!({
        "ip": {"key-auth": {}},
        "jwt": {"jwt-auth": {}},
        "open": {},
        "multi": {"key-auth": {}, "basic-auth": {}},
        "authorization": {"basic-auth": {}, "jwt-auth": {}, "hmac-auth": {}}
    });
    config
}

pub(super) fn on_route(host: &mut Host, route: &str, path: &str, extra: &[(&str, &str)]) -> Stream {
    host.set_property(&["xds", "route_name"], route.as_bytes());
    get(host, path, extra)
}

#[test]
fn routes_have_their_own_plugins() {
    let mut host = configured(&routed());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let bearer = format!("Bearer {token}");
    let basic = format!("Basic {B64_ALICE}");

    let s = on_route(&mut host, "ip", "/ip", &[("apikey", ALICE_KEY)]);
    assert_authenticated(&host, s, "alice", "alice-key-auth", Some("alice-001"));
    let s = on_route(&mut host, "ip", "/ip", &[("authorization", &basic)]);
    assert_reply(
        &host,
        s,
        401,
        "Missing API key in request",
        Some(r#"apikey realm="key""#),
    );

    let s = on_route(&mut host, "jwt", "/ip", &[("authorization", &bearer)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    let s = on_route(&mut host, "jwt", "/ip", &[("apikey", ALICE_KEY)]);
    assert_jwt_failed(&host, s, "Missing JWT token in request");

    // Unlisted route: the default set (basic-auth).
    let s = on_route(&mut host, "elsewhere", "/ip", &[("authorization", &basic)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
    let s = on_route(&mut host, "elsewhere", "/ip", &[("apikey", ALICE_KEY)]);
    assert_reply(
        &host,
        s,
        401,
        "Missing authorization in request",
        Some(BASIC_REALM),
    );
}

#[test]
fn route_without_plugins_continues_without_consumer_headers() {
    let mut host = configured(&routed());
    let s = on_route(&mut host, "open", "/", SPOOFED);
    assert_eq!(host.outcome(s), Outcome::Continue);
    let forwarded = host.request_headers(s);
    for name in [
        "x-consumer-username",
        "x-credential-identifier",
        "x-consumer-custom-id",
    ] {
        assert!(
            header_all(&forwarded, name).is_empty(),
            "{name}: {forwarded:?}"
        );
    }
}

#[test]
fn route_with_several_plugins_accepts_either_and_fails_as_a_whole() {
    let mut host = configured(&routed());
    let basic = format!("Basic {B64_BOB}");
    let s = on_route(&mut host, "multi", "/", &[("apikey", ALICE_KEY)]);
    assert_authenticated(&host, s, "alice", "alice-key-auth", Some("alice-001"));
    let s = on_route(
        &mut host,
        "multi",
        "/",
        &with_spoofed(&[("authorization", &basic)]),
    );
    assert_authenticated(&host, s, "bob", "bob-basic", None);

    let wrong = format!("Basic {B64_ALICE_WRONG}");
    for extra in [
        vec![],
        vec![("apikey", "nope")],
        vec![("authorization", wrong.as_str())],
        vec![("apikey", "nope"), ("authorization", wrong.as_str())],
    ] {
        let s = on_route(&mut host, "multi", "/", &extra);
        assert_reply(&host, s, 401, "Authorization Failed", None);
    }
}
