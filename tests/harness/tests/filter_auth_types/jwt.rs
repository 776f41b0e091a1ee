//! jwt-auth: HS256 secrets and RS256 / ES256 public keys behind references, where the token is
//! looked for, expiry and grace, rotation.

use super::*;

fn jwt() -> Value {
    config(json!({"jwt-auth": {}}))
}

pub(super) fn assert_jwt_failed(host: &Host, s: Stream, message: &str) {
    assert_reply(host, s, 401, message, Some(JWT_REALM));
}

const FAILED: &str = "failed to verify jwt";

#[test]
fn jwt_hs256_in_header_query_and_cookie() {
    let mut host = configured(&jwt());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);

    let bearer = format!("Bearer {token}");
    let s = get(
        &mut host,
        "/ip",
        &with_spoofed(&[("authorization", &bearer)]),
    );
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), Some(bearer));

    let path = format!("/ip?jwt={token}&page=2");
    let s = get(&mut host, &path, &[]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, ":path"), Some(path));

    let cookie = format!("theme=dark; jwt={token}");
    let s = get(&mut host, "/ip", &[("cookie", &cookie)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "cookie"), Some(cookie));
}

#[test]
fn jwt_header_wins_over_query_and_cookie() {
    let mut host = configured(&jwt());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let path = format!("/ip?jwt={token}");
    let cookie = format!("jwt={token}");
    let s = get(
        &mut host,
        &path,
        &[("authorization", "Bearer garbage"), ("cookie", &cookie)],
    );
    assert_jwt_failed(&host, s, "JWT token invalid");
}

#[test]
fn jwt_hide_credentials_removes_the_token_where_it_was() {
    let config = config(json!({"jwt-auth": {"hide_credentials": true}}));
    let mut host = configured(&config);
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);

    let bearer = format!("Bearer {token}");
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "authorization"), None);

    let s = get(&mut host, &format!("/ip?page=2&jwt={token}"), &[]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(
        host.request_header(s, ":path").as_deref(),
        Some("/ip?page=2")
    );

    let cookie = format!("theme=dark; jwt={token}");
    let s = get(&mut host, "/ip", &[("cookie", &cookie)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(
        host.request_header(s, "cookie").as_deref(),
        Some("theme=dark")
    );

    let cookie = format!("jwt={token}");
    let s = get(&mut host, "/ip", &[("cookie", &cookie)]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    assert_eq!(host.request_header(s, "cookie"), None);
}

#[test]
fn jwt_rs256_and_es256_with_referenced_public_keys() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        json!({"alg": "RS256", "key": k.rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
        json!({"alg": "ES256", "key": k.ec_private, "claims": {"key": "carol-ec"}, "exp_in": 3600}),
    ]);
    for _ in 0..2 {
        // Twice: the second time the verification cache answers.
        let bearer = format!("Bearer {}", tokens[0]);
        let s = get(
            &mut host,
            "/ip",
            &with_spoofed(&[("authorization", &bearer)]),
        );
        assert_authenticated(&host, s, "bob", "bob-jwt", None);
        let bearer = format!("Bearer {}", tokens[1]);
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_authenticated(&host, s, "carol", "carol-ec", None);
    }
}

#[test]
fn jwt_signed_with_another_key_fails() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        hs256("not-alice-secret", "alice-jwt-key", 3600),
        // For bob's RS256 credential but signed with the EC key (ES256).
        json!({"alg": "ES256", "key": k.ec_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
    ]);
    for token in &tokens {
        let bearer = format!("Bearer {token}");
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_jwt_failed(&host, s, FAILED);
    }
    // A valid token with its payload swapped for another one's.
    let good = jwts(&[
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", 60),
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", 7200),
    ]);
    let a: Vec<&str> = good[0].split('.').collect();
    let b: Vec<&str> = good[1].split('.').collect();
    let spliced = format!("Bearer {}.{}.{}", a[0], b[1], a[2]);
    let s = get(&mut host, "/ip", &[("authorization", &spliced)]);
    assert_jwt_failed(&host, s, FAILED);
}

#[test]
fn jwt_expired_is_failed_to_verify() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", -600),
        json!({"alg": "RS256", "key": k.rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": -600}),
        // Not valid yet.
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"key": "alice-jwt-key"},
               "exp_in": 3600, "nbf_in": 600}),
    ]);
    for token in &tokens {
        let bearer = format!("Bearer {token}");
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_jwt_failed(&host, s, FAILED);
    }
}

#[test]
fn jwt_cached_asymmetric_token_still_expires() {
    // Tokens first: the harness clock starts after Python's, so `exp_in` bounds hold on it.
    let token = jwts(&[
        json!({"alg": "RS256", "key": keys().rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 20}),
    ])
    .remove(0);
    let mut host = configured(&jwt());
    let bearer = format!("Bearer {token}");
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_authenticated(&host, s, "bob", "bob-jwt", None);
    host.advance(Duration::from_secs(25)).unwrap();
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_jwt_failed(&host, s, FAILED);
}

#[test]
fn jwt_wrong_algorithm_and_alg_none_fail() {
    let mut host = configured(&jwt());
    let k = keys();
    let tokens = jwts(&[
        // HS512 with the right secret, the credential is HS256.
        json!({"alg": "HS512", "key": ALICE_JWT_SECRET, "claims": {"key": "alice-jwt-key"}, "exp_in": 3600}),
        // Algorithm confusion: HS256 keyed with bob's RSA public key PEM.
        json!({"alg": "HS256", "key": k.rsa_public, "claims": {"key": "bob-rsa"}, "exp_in": 3600,
               "raw_hmac": true}),
        // Unsigned.
        json!({"alg": "none", "key": null, "claims": {"key": "alice-jwt-key"}, "exp_in": 3600}),
    ]);
    assert!(
        tokens[2].ends_with('.'),
        "not an unsigned token: {}",
        tokens[2]
    );
    for token in &tokens {
        let bearer = format!("Bearer {token}");
        let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
        assert_jwt_failed(&host, s, FAILED);
    }
}

#[test]
fn jwt_missing_token_is_401_missing() {
    let mut host = configured(&jwt());
    for extra in [
        vec![],
        vec![("cookie", "theme=dark; jwtx=abc")],
        vec![("x-jwt", "abc")],
    ] {
        let s = get(&mut host, "/ip?jwtx=1", &extra);
        assert_jwt_failed(&host, s, "Missing JWT token in request");
    }
}

#[test]
fn jwt_garbage_is_401_token_invalid() {
    let mut host = configured(&jwt());
    let token = jwts(&[hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600)]).remove(0);
    let two_parts = token.rsplit_once('.').unwrap().0.to_owned();
    let four_parts = format!("{token}.xyz");
    for auth in [
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Bearer ..",
        "Bearer",
        two_parts.as_str(),
        four_parts.as_str(),
    ] {
        let s = get(&mut host, "/ip", &[("authorization", auth)]);
        assert_jwt_failed(&host, s, "JWT token invalid");
    }
}

#[test]
fn jwt_without_key_claim_or_with_unknown_key() {
    let mut host = configured(&jwt());
    let tokens = jwts(&[
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"sub": "alice"}, "exp_in": 3600}),
        hs256(ALICE_JWT_SECRET, "nobody-key", 3600),
    ]);
    let bearer = format!("Bearer {}", tokens[0]);
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_jwt_failed(&host, s, "missing user key in JWT token");
    let bearer = format!("Bearer {}", tokens[1]);
    let s = get(&mut host, "/ip", &[("authorization", &bearer)]);
    assert_jwt_failed(&host, s, "Invalid user key in JWT token");
}

#[test]
fn jwt_lifetime_grace_period_is_honoured() {
    // Tokens first: the harness clock starts after Python's, so `exp_in` bounds hold on it.
    let tokens = jwts(&[
        hs256(CAROL_GRACE_SECRET, "carol-grace", -30),
        hs256(CAROL_GRACE_SECRET, "carol-grace", -120),
        // The same age for a credential without grace.
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", -30),
        hs256(CAROL_GRACE_SECRET, "carol-grace", 10),
    ]);
    let mut host = configured(&jwt());
    let bearer = |i: usize| format!("Bearer {}", tokens[i]);
    let s = get(&mut host, "/ip", &[("authorization", &bearer(0))]);
    assert_authenticated(&host, s, "carol", "carol-grace", None);
    let s = get(&mut host, "/ip", &[("authorization", &bearer(1))]);
    assert_jwt_failed(&host, s, FAILED);
    let s = get(&mut host, "/ip", &[("authorization", &bearer(2))]);
    assert_jwt_failed(&host, s, FAILED);

    // On the harness clock: expired 40 s ago is within the grace, 70 s ago is not.
    host.advance(Duration::from_secs(50)).unwrap();
    let s = get(&mut host, "/ip", &[("authorization", &bearer(3))]);
    assert_authenticated(&host, s, "carol", "carol-grace", None);
    host.advance(Duration::from_secs(30)).unwrap();
    let s = get(&mut host, "/ip", &[("authorization", &bearer(3))]);
    assert_jwt_failed(&host, s, FAILED);
}

#[test]
fn jwt_key_claim_name_and_claims_to_verify_are_configurable() {
    let tokens = jwts(&[
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"iss": "alice-jwt-key"},
               "exp_in": -600}),
        json!({"alg": "HS256", "key": ALICE_JWT_SECRET, "claims": {"iss": "alice-jwt-key"},
               "exp_in": 3600, "nbf_in": 600}),
        hs256(ALICE_JWT_SECRET, "alice-jwt-key", 3600),
    ]);
    let config =
        config(json!({"jwt-auth": {"key_claim_name": "iss", "claims_to_verify": ["nbf"]}}));
    let mut host = configured(&config);
    let bearer = |i: usize| format!("Bearer {}", tokens[i]);
    // exp is not checked any more, nbf still is.
    let s = get(&mut host, "/ip", &[("authorization", &bearer(0))]);
    assert_authenticated(&host, s, "alice", "alice-jwt", Some("alice-001"));
    let s = get(&mut host, "/ip", &[("authorization", &bearer(1))]);
    assert_jwt_failed(&host, s, FAILED);
    // The key is read from "iss" now.
    let s = get(&mut host, "/ip", &[("authorization", &bearer(2))]);
    assert_jwt_failed(&host, s, "missing user key in JWT token");
}

#[test]
fn jwt_rotated_public_key_refuses_tokens_of_the_old_key() {
    let k = keys();
    let tokens = jwts(&[
        json!({"alg": "RS256", "key": k.rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
        json!({"alg": "RS256", "key": k.rsa2_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
    ]);
    let old = format!("Bearer {}", tokens[0]);
    let new = format!("Bearer {}", tokens[1]);
    let mut host = configured(&jwt());
    // Verified once, so remembered by the verification cache.
    let s = get(&mut host, "/ip", &[("authorization", &old)]);
    assert_authenticated(&host, s, "bob", "bob-jwt", None);
    let s = get(&mut host, "/ip", &[("authorization", &new)]);
    assert_jwt_failed(&host, s, FAILED);

    let call = one_callout(&mut host, Duration::from_secs(31));
    let mut rotated = values();
    rotated.retain(|(r, _)| *r != BOB_RSA_REF);
    rotated.push((BOB_RSA_REF, k.rsa2_public.as_str()));
    answer(&mut host, &call, &rotated, &[]);

    let s = get(&mut host, "/ip", &[("authorization", &old)]);
    assert_jwt_failed(&host, s, FAILED);
    let s = get(&mut host, "/ip", &[("authorization", &new)]);
    assert_authenticated(&host, s, "bob", "bob-jwt", None);
}

#[test]
fn jwt_public_key_reference_that_is_not_a_pem_disables_the_credential() {
    let token = jwts(&[
        json!({"alg": "RS256", "key": keys().rsa_private, "claims": {"key": "bob-rsa"}, "exp_in": 3600}),
    ])
    .remove(0);
    let mut host = started(&jwt());
    let call = one_callout(&mut host, FIRST_FETCH);
    let mut broken = values();
    broken.retain(|(r, _)| *r != BOB_RSA_REF);
    broken.push((BOB_RSA_REF, "garbage-key-material-7f3a"));
    answer(&mut host, &call, &broken, &[]);
    let s = get(
        &mut host,
        "/ip",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_jwt_failed(&host, s, "Invalid user key in JWT token");
    assert!(
        host.logs()
            .iter()
            .any(|(level, l)| *level == LogLevel::Error && l.contains("bob-jwt")),
        "{:?}",
        host.logs()
    );
    assert!(
        host.logs_containing("garbage-key-material").is_empty(),
        "the value was logged: {:?}",
        host.logs_containing("garbage-key-material")
    );
}
