//! Malformed and hostile input: never a dead VM, always a decision.

use super::hmac::{
    assert_hmac_generic, hmac_body, hmac_request, post, signed_post, HMAC_LOG_PERIOD,
};
use super::routes::{on_route, routed};
use super::*;

/// URL-safe base64 without padding, for hand-made broken tokens.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn everything() -> Value {
    let mut config = config(json!({
        "key-auth": {}, "basic-auth": {}, "jwt-auth": {}, "hmac-auth": {"validate_request_body": true}
    }));
    config["routes"] = json!({
        "basic": {"basic-auth": {}},
        "jwt": {"jwt-auth": {}},
        "hmac": {"hmac-auth": {}}
    });
    config
}

#[test]
fn malformed_credentials_never_kill_the_vm() {
    let mut host = configured(&everything());
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let es_header = b64url(br#"{"alg":"ES256"}"#);
    let hs_header = b64url(br#"{"alg":"HS256"}"#);
    let bob = b64url(br#"{"key":"bob-rsa"}"#);
    let carol = b64url(br#"{"key":"carol-ec"}"#);
    let huge = "A".repeat(1 << 20);
    let deep = b64url(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes());
    let mut values: Vec<String> = vec![
        huge.clone(),
        format!("Basic {huge}"),
        format!("Bearer {huge}"),
        format!("Signature {huge}"),
        format!("Basic {}", b64url(format!("alice:{huge}").as_bytes())),
        format!("Signature {}", ",".repeat(100_000)),
        format!("Signature {}", "keyId=\"".repeat(10_000)),
        "Basic é".into(),
        "Basic \u{fffd}\u{fffd}".into(),
        "Bearer ééé.ééé.ééé".into(),
        "Bearer \u{7f}.\u{1}.\u{2}".into(),
        "Signature keyId=\"é\",algorithm=\"hmac-sha256\",signature=\"ü\"".into(),
        "Signature keyId=\"alice-keyid\",algorithm=\"hmac-sha256\",headers=\"\",signature=\"\""
            .into(),
        "Bearer .".into(),
        "Bearer ...".into(),
        "Bearer ....".into(),
        "Bearer a.b".into(),
        "Bearer a.b.c.d".into(),
        "Bearer a.b.c.d.e".into(),
        format!("Bearer {deep}.{deep}.{deep}"),
        format!("Bearer {hs_header}.{deep}.x"),
        // Valid header and key claim, broken signatures for the asymmetric credentials.
        format!("Bearer {header}.{bob}."),
        format!("Bearer {header}.{bob}.{}", b64url(&[0xff; 1000])),
        format!("Bearer {header}.{bob}.{}", b64url(&[0; 256])),
        format!("Bearer {es_header}.{carol}."),
        format!("Bearer {es_header}.{carol}.{}", b64url(&[0xff; 64])),
        format!("Bearer {es_header}.{carol}.{}", b64url(&[0; 1000])),
        // Odd claims.
        format!("Bearer {hs_header}.{}.x", b64url(br#"{"key":{"a":1}}"#)),
        format!(
            "Bearer {hs_header}.{}.x",
            b64url(br#"{"key":12345678901234567890123}"#)
        ),
        format!(
            "Bearer {hs_header}.{}.x",
            b64url(br#"{"key":"alice-jwt-key","exp":"tomorrow"}"#)
        ),
        format!(
            "Bearer {hs_header}.{}.x",
            b64url(br#"{"key":"alice-jwt-key","exp":-1e308,"nbf":1e308}"#)
        ),
        format!("Bearer {}.{hs_header}.x", b64url(b"[1,2,3]")),
        format!("Bearer {}.{bob}.x", b64url(br#"{"alg":null}"#)),
    ];
    // Dates the parser may choke on, with a known key id and algorithm.
    let hmac_auth = r#"Signature keyId="alice-keyid",algorithm="hmac-sha256",headers="@request-target date",signature="AAAA""#;
    let dates = [
        "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
        "Sun, 06 Feb -9223372036854775808 08:49:37 GMT",
        "Sun, 31 Feb 2026 23:59:60 GMT",
        "Sunday, 06-Nov-9223372036854775807 08:49:37 GMT",
        "Sun Nov  6 08:49:37 -1",
        "Sun, -1 Nov 2026 -1:-1:-1 GMT",
        "\u{fffd}",
    ];
    values.push(hmac_auth.into());

    for route in ["basic", "jwt", "hmac", "default"] {
        for value in &values {
            for name in ["authorization", "apikey", "cookie"] {
                let cookie = format!("jwt={value}");
                let v = if name == "cookie" { &cookie } else { value };
                let s = on_route(&mut host, route, "/ip", &[(name, v)]);
                let reply = host
                    .local_reply(s)
                    .unwrap_or_else(|| panic!("{route} {name}: {:?}", host.outcome(s)));
                assert_eq!(reply.status, 401, "{route} {name}: {reply:?}");
                host.finish(s).unwrap();
            }
        }
        for date in dates {
            let s = on_route(
                &mut host,
                route,
                "/ip",
                &[("authorization", hmac_auth), ("date", date)],
            );
            assert_eq!(host.local_reply(s).map(|r| r.status), Some(401), "{date}");
        }
        for path in [
            "/ip?jwt=%",
            "/ip?jwt=%ff%fe%00",
            "/ip?jwt",
            "/ip?&&&=&jwt=..",
            "/ip?apikey=%zz",
        ] {
            let s = on_route(&mut host, route, path, &[]);
            assert_eq!(host.local_reply(s).map(|r| r.status), Some(401), "{path}");
        }
        // A body after a refusal changes nothing.
        let s = request(
            &mut host,
            "POST",
            "/ip",
            &[("authorization", "Basic é")],
            false,
        );
        host.send_body(s, b"payload", true).unwrap();
        assert_eq!(host.local_reply(s).map(|r| r.status), Some(401));
    }
    assert!(!host.is_dead(), "{}", host.stderr());
    assert!(host.violations().is_empty(), "{:?}", host.violations());

    // Still working.
    let auth = format!("Basic {B64_ALICE}");
    let s = on_route(&mut host, "basic", "/ip", &[("authorization", &auth)]);
    assert_authenticated(&host, s, "alice", "alice-basic", Some("alice-001"));
}

#[test]
fn plugins_sharing_the_authorization_header_each_accept_their_scheme() {
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let mut host = configured(&routed());
    let spec = HmacSpec {
        key_id: "bob-keyid",
        secret: BOB_HMAC_SECRET,
        path: "/",
        ..HmacSpec::default()
    };
    let signed = sign(&[spec]).remove(0);

    let basic = format!("Basic {B64_BOB}");
    let s = on_route(
        &mut host,
        "authorization",
        "/",
        &[("authorization", &basic)],
    );
    assert_authenticated(&host, s, "bob", "bob-basic", None);
    let bearer = format!("Bearer {token}");
    let s = on_route(
        &mut host,
        "authorization",
        "/",
        &[("authorization", &bearer)],
    );
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    let s = on_route(
        &mut host,
        "authorization",
        "/",
        &[
            ("authorization", &signed.authorization),
            ("date", &signed.date),
        ],
    );
    assert_authenticated(&host, s, "bob", "bob-hmac", None);

    let wrong = format!("Basic {B64_ALICE_WRONG}");
    for auth in [
        wrong.as_str(),
        "Bearer x.y.z",
        "Signature keyId=\"bob-keyid\"",
    ] {
        let s = on_route(&mut host, "authorization", "/", &[("authorization", auth)]);
        assert_reply(&host, s, 401, "Authorization Failed", None);
    }
}

#[test]
fn trailers_never_release_a_request_waiting_for_secrets() {
    let mut host = started(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);
    let s = post(&mut host, &spec, &signed, false);
    host.send_body(s, body.as_bytes(), false).unwrap();
    // the trailers end the request, but nothing is judged before the secrets are known
    assert_eq!(host.send_trailers(s, 1).unwrap(), Outcome::Paused);
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, &values(), &[]);
    assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
}

#[test]
fn trailers_end_the_body_for_the_digest_check() {
    let mut host = configured(&hmac_body());
    let body = r#"{"order": 42}"#;
    let (spec, signed) = signed_post(body);

    let good = post(&mut host, &spec, &signed, false);
    host.send_body(good, body.as_bytes(), false).unwrap();
    assert_eq!(host.send_trailers(good, 1).unwrap(), Outcome::Continue);
    assert_authenticated(&host, good, "alice", "alice-hmac", Some("alice-001"));

    let bad = post(&mut host, &spec, &signed, false);
    host.send_body(bad, b"{\"order\": 43}", false).unwrap();
    host.clear_logs();
    host.send_trailers(bad, 1).unwrap();
    assert_hmac_generic(&mut host, bad, "Invalid digest");
}

/// Issue #7, item 1: header values that are not UTF-8, sent to every plugin (and a limit-count
/// key), are refused with the plugin's usual 401 (or counted, for a limit key), never a panic:
/// after each, a valid request on the same worker passes, and no log line holds the bytes.
#[test]
fn bytes_that_are_not_utf8_never_kill_the_vm() {
    let mut config = routed();
    config["routes"]["hmac"] = json!({"hmac-auth": {}});
    config["routes"]["limited"] = json!({
        "key-auth": {},
        "limit-count": {"count": 1000, "time_window": 60, "key": "http_x_tenant"}
    });
    let mut host = configured(&config);
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let bearer = format!("Bearer {token}");
    let basic = format!("Basic {B64_ALICE}");
    const MARK: &[u8] = b"\xff\xfeHOSTILE-MARK\xc3";
    let with_mark = |prefix: &[u8]| [prefix, MARK].concat();

    type Case = (
        &'static str,
        Vec<(&'static str, Vec<u8>)>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "ip",
            vec![("apikey", MARK.to_vec())],
            Some("Invalid API key in request"),
        ),
        (
            "ip",
            vec![(":path", with_mark(b"/ip?apikey="))],
            Some("Invalid API key in request"),
        ),
        (
            "elsewhere",
            vec![("authorization", MARK.to_vec())],
            Some("Invalid authorization in request"),
        ),
        (
            "elsewhere",
            vec![("authorization", with_mark(b"Basic "))],
            Some("Invalid authorization in request"),
        ),
        (
            "jwt",
            vec![("authorization", with_mark(b"Bearer "))],
            Some("JWT token invalid"),
        ),
        (
            "jwt",
            vec![("cookie", with_mark(b"jwt="))],
            Some("JWT token invalid"),
        ),
        ("hmac", vec![("authorization", MARK.to_vec())], None),
        (
            "hmac",
            vec![
                ("authorization", with_mark(b"Signature keyId=\"")),
                ("date", MARK.to_vec()),
            ],
            None,
        ),
        (
            "limited",
            vec![("apikey", ALICE_KEY.into()), ("x-tenant", MARK.to_vec())],
            Some(""),
        ),
    ];
    for (route, extra, answer) in cases {
        host.set_property(&["xds", "route_name"], route.as_bytes());
        let mut headers: Vec<(&str, Vec<u8>)> = vec![
            (":method", b"GET".to_vec()),
            (":authority", b"example.com".to_vec()),
        ];
        if !extra.iter().any(|(k, _)| *k == ":path") {
            headers.push((":path", b"/ip".to_vec()));
        }
        headers.extend(extra.iter().cloned());
        let s = host.request_bytes(&headers, true).unwrap();
        assert!(!host.is_dead(), "{route}: {:?}", host.dead_reason());
        match answer {
            Some("") => assert_eq!(host.outcome(s), Outcome::Continue, "{route}"),
            Some(message) => {
                let reply = host.local_reply(s).expect("a local reply");
                assert_eq!(reply.status, 401, "{route}");
                assert!(reply.body_str().contains(message), "{route}: {reply:?}");
            }
            None => {
                let reply = host.local_reply(s).expect("a local reply");
                assert_eq!(reply.status, 401, "{route}");
                assert!(
                    reply.body_str().contains(HMAC_GENERIC),
                    "{route}: {reply:?}"
                );
            }
        }
        // The same worker still serves valid requests.
        let valid: Vec<(&str, &str)> = match route {
            "ip" | "limited" => vec![("apikey", ALICE_KEY)],
            "elsewhere" => vec![("authorization", &basic)],
            "jwt" => vec![("authorization", &bearer)],
            _ => vec![],
        };
        if route == "hmac" {
            let spec = HmacSpec::default();
            let signed = sign(&[spec]).remove(0);
            let s = hmac_request(&mut host, &spec, &signed);
            assert_authenticated(&host, s, "alice", "alice-hmac", Some("alice-001"));
        } else {
            let s = on_route(&mut host, route, "/ip", &valid);
            assert_eq!(
                host.outcome(s),
                Outcome::Continue,
                "{route}: {:?}",
                host.logs()
            );
        }
        // Failed hmac requests log at most one line per period: let the next one through.
        host.advance(HMAC_LOG_PERIOD).unwrap();
    }
    // The marker as text (a lossy decode) or as a `Debug` of the bytes (`FromUtf8Error`'s
    // `bytes: [255, 254, 72, 79, ...]`, as proxy-wasm's unwrap printed it).
    let everything = host.panic_output();
    for needle in ["HOSTILE-MARK", "72, 79, 83, 84, 73, 76, 69", "255, 254"] {
        assert!(!everything.contains(needle), "{needle:?} in {everything}");
    }
}
