//! Signatures below were computed with `openssl dgst -hmac`, not with our code:
//!   printf 'alice-keyid\nGET /ip?x=1\ndate: Sat, 28 Nov 2026 19:00:00 GMT\n' \
//!     | openssl dgst -sha256 -hmac alice-secret-key -binary | base64
use super::*;
use crate::auth::tests::FakeRequest;
use secret_ref::SecretValue;

const DATE: &str = "Sat, 28 Nov 2026 19:00:00 GMT";
const NOW: u64 = 1_795_892_400;
const SHA1: &str = "URu/YYksxzMIcb/svTxE0FnKnho=";
const SHA256: &str = "SPKN5cvtM4bfCnZlNf1wApYqICGQvZrd/Fs241KFpbU=";
const SHA512: &str =
    "YymMmcWTu+ptpOBwu65ZnTCaGM0NKl3FLXEnq0byllZptmkeeJfnp5mbyVXEIkZvKTFrhkc8a3j910jje/T42w==";
/// POST /post with body {"a":1}, signed headers "@request-target date digest".
const POST_SIG: &str = "ydxiCMGk29mCNW5zK2kqw3VeoenZ4IA9eUX3ngBgn74=";
const BODY_DIGEST: &str = "SHA-256=AVq9f1zFei3ZS3WQ8ErYCEJzkF7jPsXOvq5iJ2qX+GI=";

fn opts() -> HmacAuthOptions {
    HmacAuthOptions {
        allowed_algorithms: HmacAlgorithm::ALL.to_vec(),
        clock_skew_s: 300,
        signed_headers: vec!["date".into()],
        validate_request_body: false,
        max_req_body_size: 1024,
        hide_credentials: false,
        anonymous: None,
    }
}

fn index() -> HmacIndex {
    HmacIndex::build([(
        3,
        "alice-keyid".to_string(),
        SecretValue::new("alice-secret-key"),
    )])
}

fn auth(alg: &str, sig: &str) -> String {
    format!(
        r#"Signature keyId="alice-keyid",algorithm="{alg}",headers="@request-target date",signature="{sig}""#
    )
}

fn run(o: &HmacAuthOptions, headers: &[(&str, &str)], now: u64) -> Decision {
    let mut base = vec![(":method", "GET"), (":path", "/ip?x=1")];
    base.extend_from_slice(headers);
    check(o, &index(), &mut FakeRequest::new(&base).at(now))
}

/// (allowed?, body, logged reason)
fn summary(d: &Decision) -> (bool, String, String) {
    match d {
        Decision::Allow(_) => (true, String::new(), String::new()),
        Decision::Reject(r) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.www_authenticate, Some(REALM));
            // the reason is logged exactly when the body hides it
            assert_eq!(r.log_detail, r.body == GENERIC, "{r:?}");
            (false, r.body.to_string(), r.detail.to_string())
        }
    }
}

const GENERIC: &str = "{\"message\":\"client request can't be validated\"}\n";

#[test]
fn known_answers_for_each_algorithm() {
    for (alg, sig) in [
        ("hmac-sha1", SHA1),
        ("hmac-sha256", SHA256),
        ("hmac-sha512", SHA512),
    ] {
        let a = auth(alg, sig);
        let d = run(&opts(), &[("authorization", &a), ("date", DATE)], NOW);
        match d {
            Decision::Allow(a) => assert_eq!(a.credential, Some(3), "{alg}"),
            other => panic!("{alg}: {other:?}"),
        }
    }
}

#[test]
fn failures_have_apisix_messages() {
    let good = auth("hmac-sha256", SHA256);
    type Row<'a> = (
        Vec<(&'a str, String)>,
        u64,
        HmacAuthOptions,
        &'a str,
        &'a str,
    );
    let rows: Vec<Row> = vec![
        (vec![("date", DATE.into())], NOW, opts(),
         "{\"message\":\"client request can't be validated: missing Authorization header\"}\n",
         "missing Authorization header"),
        (vec![("authorization", "Basic abc".into()), ("date", DATE.into())], NOW, opts(),
         "{\"message\":\"client request can't be validated: Authorization header does not start with 'Signature'\"}\n",
         "does not start with 'Signature'"),
        (vec![("authorization", r#"Signature algorithm="hmac-sha256""#.into())], NOW, opts(), GENERIC,
         "keyId or signature missing"),
        (vec![("authorization", r#"Signature keyId="alice-keyid",signature="x""#.into())], NOW, opts(), GENERIC,
         "algorithm missing"),
        (vec![("authorization", good.replace("alice-keyid", "bob")), ("date", DATE.into())], NOW, opts(), GENERIC,
         "Invalid key_id"),
        (vec![("authorization", auth("hmac-md5", SHA256)), ("date", DATE.into())], NOW, opts(), GENERIC,
         "Invalid algorithm"),
        (vec![("authorization", auth("hmac-sha1", SHA1)), ("date", DATE.into())], NOW,
         HmacAuthOptions { allowed_algorithms: vec![HmacAlgorithm::Sha256], ..opts() }, GENERIC, "Invalid algorithm"),
        (vec![("authorization", good.clone())], NOW, opts(), GENERIC, "Date header missing"),
        (vec![("authorization", good.clone()), ("date", "yesterday".into())], NOW, opts(), GENERIC,
         "Invalid GMT format time"),
        (vec![("authorization", good.clone()), ("date", DATE.into())], NOW + 301, opts(), GENERIC,
         "Clock skew exceeded"),
        (vec![("authorization", good.clone()), ("date", DATE.into())], NOW - 301, opts(), GENERIC,
         "Clock skew exceeded"),
        (vec![("authorization", good.replace("@request-target date", "@request-target")), ("date", DATE.into())],
         NOW, opts(), GENERIC, "expected header \"date\" missing in signing"),
        (vec![("authorization", r#"Signature keyId="alice-keyid",algorithm="hmac-sha256",signature="x""#.into()),
              ("date", DATE.into())], NOW, opts(), GENERIC, "headers missing"),
        (vec![("authorization", auth("hmac-sha256", SHA1)), ("date", DATE.into())], NOW, opts(), GENERIC,
         "Invalid signature"),
        (vec![("authorization", auth("hmac-sha256", "%%%not base64")), ("date", DATE.into())], NOW, opts(), GENERIC,
         "Invalid signature"),
        (vec![("authorization", good.clone()), ("date", DATE.into())], NOW,
         HmacAuthOptions { validate_request_body: true, ..opts() }, GENERIC, "Invalid digest"),
    ];
    for (headers, now, o, body, reason) in rows {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (allowed, got_body, got_reason) = summary(&run(&o, &h, now));
        assert!(!allowed, "{headers:?} passed; want {reason}");
        assert_eq!(got_body, body, "{reason}");
        assert!(
            got_reason.contains(reason),
            "got {got_reason}, want {reason}"
        );
    }
}

#[test]
fn x_date_and_skew_boundary() {
    let a = auth("hmac-sha256", SHA256);
    // the signed header list says "date": an unsigned X-Date never stands in for it
    let (ok, _, reason) = summary(&run(
        &opts(),
        &[("authorization", &a), ("x-date", DATE)],
        NOW,
    ));
    assert!(!ok);
    assert!(reason.contains("Date header missing"), "{reason}");
    assert!(
        summary(&run(
            &opts(),
            &[("authorization", &a), ("date", DATE)],
            NOW + 300
        ))
        .0
    );
}

/// Signs `signing` with alice's key, as an attacker who once saw a valid signature could not,
/// but a client holding the key could: the point is which requests a signature covers.
fn sign(signing: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"alice-secret-key").unwrap();
    mac.update(signing.as_bytes());
    b64::encode_standard(&mac.finalize().into_bytes())
}

fn signature_header(headers: &str, sig: &str) -> String {
    format!(
        r#"Signature keyId="alice-keyid",algorithm="hmac-sha256",headers="{headers}",signature="{sig}""#
    )
}

/// The replay of issue #7: a signature over just "keyId\n" (headers="date", no Date header)
/// with a fresh, unsigned X-Date must not pass, for any method, path or time.
#[test]
fn a_signature_that_covers_nothing_cannot_be_replayed() {
    let o = HmacAuthOptions {
        signed_headers: vec![],
        ..opts()
    };
    let a = signature_header("date", &sign("alice-keyid\n"));
    for now in [NOW, NOW + 86_400 * 365] {
        let (ok, _, reason) = summary(&run(&o, &[("authorization", &a), ("x-date", DATE)], now));
        assert!(!ok, "replayed at {now}");
        assert!(reason.contains("Date header missing"), "{reason}");
    }
    // no headers at all: nothing carries the time
    let a = format!(
        r#"Signature keyId="alice-keyid",algorithm="hmac-sha256",signature="{}""#,
        sign("alice-keyid\n")
    );
    let (ok, _, reason) = summary(&run(&o, &[("authorization", &a), ("x-date", DATE)], NOW));
    assert!(!ok);
    assert!(reason.contains("Date header not signed"), "{reason}");
}

#[test]
fn every_listed_header_must_be_present() {
    let o = HmacAuthOptions {
        signed_headers: vec![],
        ..opts()
    };
    // signed "date x-custom" but the request has no x-custom: refused, even though a signature
    // over the lines that are present would match
    let a = signature_header(
        "date x-custom",
        &sign(&format!("alice-keyid\ndate: {DATE}\n")),
    );
    let (ok, _, reason) = summary(&run(&o, &[("authorization", &a), ("date", DATE)], NOW));
    assert!(!ok);
    assert!(reason.contains("missing from the request"), "{reason}");
    // with the header, a signature over every listed line passes
    let a = signature_header(
        "date x-custom",
        &sign(&format!("alice-keyid\ndate: {DATE}\nx-custom: v\n")),
    );
    let (ok, _, reason) = summary(&run(
        &o,
        &[("authorization", &a), ("date", DATE), ("x-custom", "v")],
        NOW,
    ));
    assert!(ok, "{reason}");
}

#[test]
fn a_signed_x_date_carries_the_time() {
    let o = HmacAuthOptions {
        signed_headers: vec![],
        ..opts()
    };
    let a = signature_header("x-date", &sign(&format!("alice-keyid\nx-date: {DATE}\n")));
    assert!(summary(&run(&o, &[("authorization", &a), ("x-date", DATE)], NOW)).0);
    let (ok, _, reason) = summary(&run(
        &o,
        &[("authorization", &a), ("x-date", DATE)],
        NOW + 301,
    ));
    assert!(!ok);
    assert!(reason.contains("Clock skew exceeded"), "{reason}");
}

#[test]
fn with_body_validation_the_digest_must_be_signed() {
    let o = HmacAuthOptions {
        validate_request_body: true,
        ..opts()
    };
    let signing = format!("alice-keyid\nGET /ip?x=1\ndate: {DATE}\n");
    let a = signature_header("@request-target date", &sign(&signing));
    let (ok, _, reason) = summary(&run(
        &o,
        &[
            ("authorization", &a),
            ("date", DATE),
            ("digest", BODY_DIGEST),
        ],
        NOW,
    ));
    assert!(!ok);
    assert!(reason.contains("digest header is not signed"), "{reason}");
}

#[test]
fn bytes_that_are_not_utf8_are_refused() {
    let a = auth("hmac-sha256", SHA256);
    let rows: [Vec<(&str, &[u8])>; 3] = [
        vec![
            ("authorization", b"Signature keyId=\"\xff\""),
            ("date", DATE.as_bytes()),
        ],
        vec![
            ("authorization", a.as_bytes()),
            ("date", b"Sat, 28 Nov 2026 \xff GMT"),
        ],
        vec![("authorization", a.as_bytes()), ("date", b"\xff\xfe")],
    ];
    for row in rows {
        let mut h: Vec<(&str, &[u8])> = vec![(":method", b"GET"), (":path", b"/ip?x=1")];
        h.extend(row);
        let d = check(&opts(), &index(), &mut FakeRequest::bytes(&h).at(NOW));
        assert!(!summary(&d).0, "{h:?}");
    }
    // a signed header whose value is not UTF-8 is signed as the bytes sent
    let o = HmacAuthOptions {
        signed_headers: vec![],
        ..opts()
    };
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"alice-secret-key").unwrap();
    hmac::Mac::update(
        &mut mac,
        format!("alice-keyid\ndate: {DATE}\nx-b: ").as_bytes(),
    );
    hmac::Mac::update(&mut mac, b"\xff\n");
    let sig = b64::encode_standard(&hmac::Mac::finalize(mac).into_bytes());
    let a = signature_header("date x-b", &sig);
    let h: Vec<(&str, &[u8])> = vec![
        (":method", b"GET"),
        (":path", b"/"),
        ("authorization", a.as_bytes()),
        ("date", DATE.as_bytes()),
        ("x-b", b"\xff"),
    ];
    assert!(summary(&check(&o, &index(), &mut FakeRequest::bytes(&h).at(NOW))).0);
}

#[test]
fn an_empty_secret_key_signs_nothing() {
    let index = HmacIndex::build([(3, "alice-keyid".to_string(), SecretValue::new(""))]);
    let a = auth("hmac-sha256", SHA256);
    let mut base = vec![(":method", "GET"), (":path", "/ip?x=1")];
    base.extend_from_slice(&[("authorization", a.as_str()), ("date", DATE)]);
    let (ok, _, reason) = summary(&check(
        &opts(),
        &index,
        &mut FakeRequest::new(&base).at(NOW),
    ));
    assert!(!ok);
    assert!(reason.contains("Invalid key_id"), "{reason}");
}

#[test]
fn body_digest() {
    let a = format!(
        r#"Signature keyId="alice-keyid",algorithm="hmac-sha256",headers="@request-target date digest",signature="{POST_SIG}""#
    );
    let o = HmacAuthOptions {
        validate_request_body: true,
        hide_credentials: true,
        ..opts()
    };
    let h = [
        (":method", "POST"),
        (":path", "/post"),
        ("authorization", a.as_str()),
        ("date", DATE),
        ("digest", BODY_DIGEST),
    ];
    let d = check(&o, &index(), &mut FakeRequest::new(&h).at(NOW));
    let Decision::Allow(allow) = d else {
        panic!("{d:?}")
    };
    assert_eq!(allow.hide, Some(Hide::Header("authorization".into())));
    let check = allow.body_check.unwrap();
    assert_eq!(check.max_size, 1024);
    assert!(body_matches(&check.digest, br#"{"a":1}"#));
    assert!(!body_matches(&check.digest, br#"{"a":2}"#));
    assert!(!body_matches("SHA-256=", b""));
    assert!(body_matches(
        "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        b""
    ));
}

#[test]
fn header_parsing() {
    assert_eq!(
        parse(
            r#"Signature keyId="k", algorithm="hmac-sha1",headers="a b",signature="s=",junk,x="y""#
        ),
        Ok(Params {
            key_id: Some("k".into()),
            algorithm: Some("hmac-sha1".into()),
            signature: Some("s=".into()),
            headers: Some(vec!["a".into(), "b".into()]),
        })
    );
    assert_eq!(parse("Signature"), Ok(Params::default()));
    assert!(parse("signature keyId=\"k\"").is_err());
}
