//! basic-auth: `Authorization: Basic base64(user:password)`, APISIX-compatible answers.

use super::{Allow, Decision, Hide};
use crate::http::{b64, Reject, RequestView};

/// basic-auth options.
#[derive(Debug, Clone)]
pub struct BasicAuthOptions {
    pub hide_credentials: bool,
    pub anonymous: Option<usize>,
}

const REALM: &str = "Basic realm=\"basic\"";

fn reject(message: &'static str, detail: &'static str) -> Reject {
    Reject::message(401, message, Some(REALM), detail)
}

/// Enabled basic-auth credentials by username.
pub type BasicIndex = super::named::NamedIndex;

/// Splits `Basic <base64(user:password)>` (scheme case-insensitive) into user and password.
/// A header or a decoded pair that is not UTF-8 is malformed.
fn parse(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = b64::standard(rest.trim())?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

pub fn check(opts: &BasicAuthOptions, index: &BasicIndex, req: &mut dyn RequestView) -> Decision {
    let Some(header) = req.header("authorization") else {
        return Decision::Reject(reject(
            "Missing authorization in request",
            "basic_auth_missing",
        ));
    };
    let Some((user, password)) = parse(&header) else {
        return Decision::Reject(reject(
            "Invalid authorization in request",
            "basic_auth_malformed",
        ));
    };
    let matches = |secret: &secret_ref::SecretValue| secret.ct_eq_bytes(password.as_bytes());
    let found = index.get(&user).and_then(|(credential, expected)| {
        if matches(expected) {
            Some((*credential, false))
        } else {
            index
                .previous(&user)
                .is_some_and(matches)
                .then_some((*credential, true))
        }
    });
    match found {
        Some((credential, previous)) => Decision::Allow(Allow {
            credential: Some(credential),
            consumer: None,
            hide: opts
                .hide_credentials
                .then(|| Hide::Header("authorization".into())),
            body_check: None,
            previous,
        }),
        None if index.is_unknown(&user) => Decision::Reject(Reject::credential_store_unavailable(
            super::UNKNOWN_RETRY_AFTER_S,
        )),
        _ => Decision::Reject(
            reject("Invalid user authorization", "basic_auth_invalid")
                .missed("basic-auth", &header),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::FakeRequest;
    use secret_ref::SecretValue;

    fn index() -> BasicIndex {
        BasicIndex::build([
            (0, "alice".to_string(), SecretValue::new("alice-password")),
            (1, "bob".to_string(), SecretValue::new("pa:ss")),
        ])
    }

    #[test]
    fn bytes_that_are_not_utf8_are_malformed() {
        let opts = BasicAuthOptions {
            hide_credentials: false,
            anonymous: None,
        };
        for value in [
            &b"Basic \xff\xfe"[..],
            b"\xffasic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=",
        ] {
            let d = check(
                &opts,
                &index(),
                &mut FakeRequest::bytes(&[("authorization", value)]),
            );
            assert_eq!(
                message(&d),
                "{\"message\":\"Invalid authorization in request\"}\n"
            );
        }
    }

    #[test]
    fn an_empty_password_never_matches() {
        let index = BasicIndex::build([(0, "alice".to_string(), SecretValue::new(""))]);
        let opts = BasicAuthOptions {
            hide_credentials: false,
            anonymous: None,
        };
        // base64("alice:") = YWxpY2U6
        let d = check(
            &opts,
            &index,
            &mut FakeRequest::new(&[("authorization", "Basic YWxpY2U6")]),
        );
        assert_eq!(
            message(&d),
            "{\"message\":\"Invalid user authorization\"}\n"
        );
    }

    fn run(auth: Option<&str>, hide: bool) -> Decision {
        let opts = BasicAuthOptions {
            hide_credentials: hide,
            anonymous: None,
        };
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        check(&opts, &index(), &mut FakeRequest::new(&headers))
    }

    fn message(d: &Decision) -> String {
        match d {
            Decision::Reject(r) => r.body.to_string(),
            Decision::Allow(_) => "allow".into(),
        }
    }

    #[test]
    fn decisions() {
        // base64("alice:alice-password") = YWxpY2U6YWxpY2UtcGFzc3dvcmQ=
        let rows: &[(Option<&str>, &str)] = &[
            (Some("Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ="), "allow"),
            (Some("basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ="), "allow"),
            (Some("BASIC  YWxpY2U6YWxpY2UtcGFzc3dvcmQ="), "allow"),
            (Some("Basic Ym9iOnBhOnNz"), "allow"), // bob:pa:ss, password with a colon
            (None, "{\"message\":\"Missing authorization in request\"}\n"),
            (
                Some("Bearer abc"),
                "{\"message\":\"Invalid authorization in request\"}\n",
            ),
            (
                Some("Basic"),
                "{\"message\":\"Invalid authorization in request\"}\n",
            ),
            (
                Some("Basic !!!notbase64"),
                "{\"message\":\"Invalid authorization in request\"}\n",
            ),
            (
                Some("Basic YWxpY2U="),
                "{\"message\":\"Invalid authorization in request\"}\n",
            ), // "alice", no colon
            (
                Some("Basic YWxpY2U6d3Jvbmc="),
                "{\"message\":\"Invalid user authorization\"}\n",
            ), // alice:wrong
            (
                Some("Basic ZXZlOng="),
                "{\"message\":\"Invalid user authorization\"}\n",
            ), // eve:x
            (
                Some("Basic /w=="),
                "{\"message\":\"Invalid authorization in request\"}\n",
            ), // not UTF-8
        ];
        for (auth, want) in rows {
            let d = run(*auth, false);
            assert_eq!(message(&d), *want, "{auth:?}");
            if let Decision::Reject(r) = d {
                assert_eq!(r.status, 401);
                assert_eq!(r.www_authenticate, Some("Basic realm=\"basic\""));
            }
        }
    }

    #[test]
    fn identifies_the_credential_and_hides_it_on_request() {
        match run(Some("Basic Ym9iOnBhOnNz"), true) {
            Decision::Allow(a) => {
                assert_eq!(a.credential, Some(1));
                assert_eq!(a.hide, Some(Hide::Header("authorization".into())));
            }
            other => panic!("{other:?}"),
        }
    }
}
