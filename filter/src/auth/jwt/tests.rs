use super::*;
use crate::auth::tests::FakeRequest;

/// Tokens and keys made by PyJWT + cryptography (filter/tests/data/gen_jwt_vectors.py).
const VECTORS: &str = include_str!("../../../tests/data/jwt_vectors.json");

fn opts() -> JwtAuthOptions {
    JwtAuthOptions {
        header: "authorization".into(),
        query: "jwt".into(),
        cookie: "jwt".into(),
        hide_credentials: false,
        key_claim_name: "key".into(),
        verify_exp: true,
        verify_nbf: true,
        anonymous: None,
    }
}

const NOW: u64 = 1_800_000_000;

fn index_for(alg: JwtAlgorithm, key: &str) -> JwtIndex {
    let key = VerifyKey::new(alg, key, false).unwrap();
    JwtIndex::build([(
        "user-key".to_string(),
        JwtCredential {
            credential: 7,
            algorithm: alg,
            key,
            grace_period_s: 0,
        },
    )])
}

fn outcome(d: &Decision) -> &'static str {
    match d {
        Decision::Allow(_) => "allow",
        Decision::Reject(r) if r.body.contains(FAILED) => "failed",
        Decision::Reject(r) if r.body.contains(MISSING_KEY) => "missing_key",
        Decision::Reject(r) if r.body.contains(UNKNOWN_KEY) => "unknown_key",
        Decision::Reject(r) if r.body.contains(INVALID) => "invalid",
        Decision::Reject(r) if r.body.contains(MISSING) => "missing",
        Decision::Reject(_) => "other",
    }
}

#[test]
fn known_answers_from_pyjwt() {
    let vectors: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
    assert!(vectors.len() >= 19);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let alg: JwtAlgorithm = v["alg"].as_str().unwrap().parse().unwrap();
        let idx = index_for(alg, v["key"].as_str().unwrap());
        let bearer = format!("Bearer {}", v["token"].as_str().unwrap());
        let mut req = FakeRequest::new(&[("authorization", &bearer)]).at(NOW);
        let d = check(&opts(), &idx, &mut req);
        assert_eq!(outcome(&d), v["expect"].as_str().unwrap(), "{name}");
        if let Decision::Allow(a) = d {
            assert_eq!(a.credential, Some(7), "{name}");
        }
    }
}

fn hs256_token(claims: serde_json::Value, secret: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        e.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        e.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", e.encode(mac.finalize().into_bytes()))
}

#[test]
fn token_sources_and_messages() {
    let idx = index_for(JwtAlgorithm::HS256, "alice-secret");
    let good = hs256_token(serde_json::json!({"key": "user-key"}), "alice-secret");
    let rows: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("authorization", good.clone())], "allow"),
        (vec![("authorization", format!("bearer {good}"))], "allow"),
        (vec![(":path", format!("/jwt?jwt={good}"))], "allow"),
        (vec![("cookie", format!("a=b; jwt={good}; c=d"))], "allow"),
        (vec![(":path", "/jwt".into())], "missing"),
        (vec![("cookie", "a=b".into())], "missing"),
        (vec![("authorization", "Bearer abc".into())], "invalid"),
        (vec![("authorization", "Bearer a.b.c".into())], "invalid"),
        (vec![("authorization", format!("{good}.extra"))], "invalid"),
        (vec![("authorization", "Bearer ....".into())], "invalid"),
        (
            vec![("authorization", "Bearer \u{1F600}.\u{1F600}.x".into())],
            "invalid",
        ),
    ];
    for (headers, want) in rows {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let d = check(&opts(), &idx, &mut FakeRequest::new(&h).at(NOW));
        assert_eq!(outcome(&d), want, "{headers:?}");
        if let Decision::Reject(r) = d {
            assert_eq!(r.status, 401);
            assert_eq!(r.www_authenticate, Some("Bearer realm=\"jwt\""));
        }
    }
}

#[test]
fn claims_with_grace_and_claims_to_verify() {
    let mk = |grace| {
        let key = VerifyKey::new(JwtAlgorithm::HS256, "s", false).unwrap();
        JwtIndex::build([(
            "k".to_string(),
            JwtCredential {
                credential: 0,
                algorithm: JwtAlgorithm::HS256,
                key,
                grace_period_s: grace,
            },
        )])
    };
    let run = |claims: serde_json::Value, grace: u64, o: &JwtAuthOptions| {
        let t = hs256_token(claims, "s");
        outcome(&check(
            o,
            &mk(grace),
            &mut FakeRequest::new(&[("authorization", &t)]).at(NOW),
        ))
    };
    let o = opts();
    let n = NOW as i64;
    assert_eq!(
        run(serde_json::json!({"key": "k", "exp": n + 1}), 0, &o),
        "allow"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "exp": n}), 0, &o),
        "failed"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "exp": n}), 10, &o),
        "allow"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "exp": n - 10}), 10, &o),
        "failed"
    );
    assert_eq!(
        run(
            serde_json::json!({"key": "k", "exp": (n as f64) + 0.5}),
            0,
            &o
        ),
        "allow"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "exp": "soon"}), 0, &o),
        "failed"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "nbf": n}), 0, &o),
        "allow"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "nbf": n + 5}), 0, &o),
        "failed"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "nbf": n + 5}), 5, &o),
        "allow"
    );
    let only_nbf = JwtAuthOptions {
        verify_exp: false,
        ..opts()
    };
    assert_eq!(
        run(serde_json::json!({"key": "k", "exp": 1}), 0, &only_nbf),
        "allow"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k", "nbf": n + 5}), 0, &only_nbf),
        "failed"
    );
    let custom_claim = JwtAuthOptions {
        key_claim_name: "iss".into(),
        ..opts()
    };
    assert_eq!(
        run(serde_json::json!({"iss": "k"}), 0, &custom_claim),
        "allow"
    );
    assert_eq!(
        run(serde_json::json!({"key": "k"}), 0, &custom_claim),
        "missing_key"
    );
}

#[test]
fn base64_secret() {
    // base64("alice-secret") = YWxpY2Utc2VjcmV0
    let key = VerifyKey::new(JwtAlgorithm::HS256, "YWxpY2Utc2VjcmV0", true).unwrap();
    let idx = JwtIndex::build([(
        "user-key".to_string(),
        JwtCredential {
            credential: 1,
            algorithm: JwtAlgorithm::HS256,
            key,
            grace_period_s: 0,
        },
    )]);
    let t = hs256_token(serde_json::json!({"key": "user-key"}), "alice-secret");
    assert_eq!(
        outcome(&check(
            &opts(),
            &idx,
            &mut FakeRequest::new(&[("authorization", &t)]).at(NOW)
        )),
        "allow"
    );
    assert_eq!(
        VerifyKey::new(JwtAlgorithm::HS256, "***", true).unwrap_err(),
        KeyError::Base64Secret
    );
    assert!(matches!(
        VerifyKey::new(JwtAlgorithm::RS256, "not pem", false),
        Err(KeyError::Pem { .. })
    ));
}

#[test]
fn asymmetric_verifications_are_cached_and_the_cache_is_bounded() {
    let vectors: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
    let rs = vectors.iter().find(|v| v["name"] == "rs256").unwrap();
    let idx = index_for(JwtAlgorithm::RS256, rs["key"].as_str().unwrap());
    let token = rs["token"].as_str().unwrap();
    for _ in 0..3 {
        let d = check(
            &opts(),
            &idx,
            &mut FakeRequest::new(&[("authorization", token)]).at(NOW),
        );
        assert_eq!(outcome(&d), "allow");
    }
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    assert!(idx.cache.borrow().contains(&digest, 7));
    // a cached token still has its claims checked: after exp it fails
    let d = check(
        &opts(),
        &idx,
        &mut FakeRequest::new(&[("authorization", token)]).at(4_102_444_800),
    );
    assert_eq!(outcome(&d), "failed");

    let mut cache = VerifiedCache::default();
    for i in 0..(CACHE_CAPACITY + 10) {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        cache.insert(k, 0, false, true);
    }
    assert_eq!(cache.entries.len(), CACHE_CAPACITY);
    assert_eq!(cache.order.len(), CACHE_CAPACITY);
    assert!(
        !cache.contains(&[0u8; 32], 0),
        "the oldest entry was evicted"
    );
}

#[test]
fn failed_asymmetric_verifications_are_cached_too() {
    let vectors: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
    let rs = vectors.iter().find(|v| v["name"] == "rs256").unwrap();
    let idx = index_for(JwtAlgorithm::RS256, rs["key"].as_str().unwrap());
    let token = rs["token"].as_str().unwrap();
    // same header and payload, a signature that does not verify
    let (head, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAA");
    for _ in 0..3 {
        let d = check(
            &opts(),
            &idx,
            &mut FakeRequest::new(&[("authorization", &forged)]).at(NOW),
        );
        assert_eq!(outcome(&d), "failed");
    }
    let digest: [u8; 32] = Sha256::digest(forged.as_bytes()).into();
    assert_eq!(idx.cache.borrow().get(&digest, 7, false), Some(false));
    assert_eq!(
        idx.cache.borrow().get(&digest, 8, false),
        None,
        "per credential"
    );
    // the genuine token still verifies
    let d = check(
        &opts(),
        &idx,
        &mut FakeRequest::new(&[("authorization", token)]).at(NOW),
    );
    assert_eq!(outcome(&d), "allow");
}

#[test]
fn a_token_that_is_not_utf8_is_invalid() {
    let idx = index_for(JwtAlgorithm::HS256, "alice-secret");
    for value in [&b"Bearer \xff\xfe.\xff.\xff"[..], b"\xff"] {
        let d = check(
            &opts(),
            &idx,
            &mut FakeRequest::bytes(&[("authorization", value)]).at(NOW),
        );
        match d {
            Decision::Reject(r) => assert_eq!(r.body, "{\"message\":\"JWT token invalid\"}\n"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn hide_credentials_per_origin() {
    let idx = index_for(JwtAlgorithm::HS256, "alice-secret");
    let good = hs256_token(serde_json::json!({"key": "user-key"}), "alice-secret");
    let o = JwtAuthOptions {
        hide_credentials: true,
        ..opts()
    };
    let hide =
        |headers: &[(&str, &str)]| match check(&o, &idx, &mut FakeRequest::new(headers).at(NOW)) {
            Decision::Allow(a) => a.hide,
            other => panic!("{other:?}"),
        };
    assert_eq!(
        hide(&[("authorization", &good)]),
        Some(Hide::Header("authorization".into()))
    );
    let path = format!("/jwt?a=1&jwt={good}");
    assert_eq!(
        hide(&[(":path", &path)]),
        Some(Hide::Path(b"/jwt?a=1".to_vec()))
    );
    let cookie = format!("a=b; jwt={good}");
    assert_eq!(
        hide(&[("cookie", &cookie)]),
        Some(Hide::SetHeader("cookie".into(), b"a=b".to_vec()))
    );
}
