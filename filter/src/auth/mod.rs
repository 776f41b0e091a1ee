//! Authentication decisions. One module per credential type; the shared outcome types and the
//! reject path live here. Decisions are pure: the glue reads headers through [`RequestView`] and
//! applies the [`Decision`].

mod b64;
pub mod basic;
pub mod hmac;
pub mod http_date;
pub mod jwt;
pub mod key;
mod named;
pub mod query;

use crate::config::PluginSet;
use std::borrow::Cow;

/// Headers the upstream gets for an authenticated consumer. Client-sent copies are replaced or
/// removed on every request.
pub const CONSUMER_USERNAME: &str = "x-consumer-username";
pub const CREDENTIAL_IDENTIFIER: &str = "x-credential-identifier";
pub const CONSUMER_CUSTOM_ID: &str = "x-consumer-custom-id";

/// Lazy access to the request: each call is a host call in Envoy, so checks ask only for what
/// they need. Names are lowercase; pseudo-headers (`:path`, `:method`) included. Values are the
/// bytes the client sent: nothing guarantees they are UTF-8, so each check decides what a value
/// that is not valid where it is read means (always a refusal, never a panic).
pub trait RequestView {
    fn header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// Seconds since the Unix epoch (read only by checks that need it).
    fn now_s(&mut self) -> u64;
}

/// A denial: status, exact body, `WWW-Authenticate`, and a detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub body: Cow<'static, str>,
    pub www_authenticate: Option<&'static str>,
    pub detail: Cow<'static, str>,
    /// The body hides the reason (hmac-auth): log `detail` so operators can see it.
    pub log_detail: bool,
}

impl Reject {
    /// `{"message":"<message>"}` plus a newline, as APISIX answers.
    pub fn message(
        status: u16,
        message: &'static str,
        www_authenticate: Option<&'static str>,
        detail: &'static str,
    ) -> Self {
        Self::message_with_detail(status, message.into(), www_authenticate, detail.into())
    }

    pub fn message_with_detail(
        status: u16,
        message: Cow<'static, str>,
        www_authenticate: Option<&'static str>,
        detail: Cow<'static, str>,
    ) -> Self {
        let body = format!("{}\n", serde_json::json!({ "message": message }));
        Reject {
            status,
            body: body.into(),
            www_authenticate,
            detail,
            log_detail: false,
        }
    }

    /// A generic answer whose real reason is only logged.
    pub fn generic(
        status: u16,
        message: &'static str,
        www_authenticate: Option<&'static str>,
        reason: Cow<'static, str>,
    ) -> Self {
        Reject {
            log_detail: true,
            ..Self::message_with_detail(status, message.into(), www_authenticate, reason)
        }
    }
}

/// How to hide the credential from the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hide {
    /// Remove this header.
    Header(String),
    /// Replace `:path` (a query argument removed).
    Path(Vec<u8>),
    /// Replace a header's value (removed when empty), e.g. a cookie taken out of `Cookie`.
    SetHeader(String, Vec<u8>),
}

/// The body must be read and match this `Digest` header before the request may continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyCheck {
    pub digest: String,
    pub max_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// The credential that matched (index into `Config::credentials`), none for anonymous.
    pub credential: Option<usize>,
    /// The consumer, when known without a credential (anonymous).
    pub consumer: Option<usize>,
    pub hide: Option<Hide>,
    pub body_check: Option<BodyCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Allow),
    Reject(Reject),
}

/// What the filter knows to authenticate with: indexes built from the last good secret values.
#[derive(Default)]
pub struct Credentials {
    pub keys: key::KeyIndex,
    pub basic: basic::BasicIndex,
    pub jwt: jwt::JwtIndex,
    pub hmac: hmac::HmacIndex,
}

/// When several auth plugins all refuse a request (APISIX multi-auth's answer).
pub fn all_failed() -> Reject {
    Reject::message(401, "Authorization Failed", None, "multi_auth_failed")
}

/// Runs the route's auth plugins; the first that accepts wins. `None` when the route has none.
/// When all refuse: the anonymous consumer if one is configured, else the single plugin's answer,
/// or APISIX multi-auth's "Authorization Failed" when there were several.
pub fn authenticate(
    plugins: &PluginSet,
    creds: &Credentials,
    req: &mut dyn RequestView,
) -> Option<Decision> {
    let mut rejects = Vec::new();
    let mut outcome = |d: Decision| match d {
        Decision::Allow(a) => Some(a),
        Decision::Reject(r) => {
            rejects.push(r);
            None
        }
    };
    let allowed = plugins
        .key_auth
        .as_ref()
        .and_then(|o| outcome(key::check(o, &creds.keys, req)))
        .or_else(|| {
            plugins
                .basic_auth
                .as_ref()
                .and_then(|o| outcome(basic::check(o, &creds.basic, req)))
        })
        .or_else(|| {
            plugins
                .jwt_auth
                .as_ref()
                .and_then(|o| outcome(jwt::check(o, &creds.jwt, req)))
        })
        .or_else(|| {
            plugins
                .hmac_auth
                .as_ref()
                .and_then(|o| outcome(hmac::check(o, &creds.hmac, req)))
        });
    if let Some(a) = allowed {
        return Some(Decision::Allow(a));
    }
    if rejects.is_empty() {
        return None;
    }
    if let Some(consumer) = plugins.anonymous() {
        return Some(Decision::Allow(Allow {
            credential: None,
            consumer: Some(consumer),
            hide: None,
            body_check: None,
        }));
    }
    let single = rejects.len() == 1;
    let first = rejects.into_iter().next();
    match first {
        Some(r) if single => Some(Decision::Reject(r)),
        _ => Some(Decision::Reject(all_failed())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{BasicAuthOptions, KeyAuthOptions};
    use secret_ref::SecretValue;

    /// A request whose header reads are recorded, to check that decisions read only what they need.
    pub struct FakeRequest {
        headers: Vec<(String, Vec<u8>)>,
        now: u64,
        pub reads: Vec<String>,
    }

    impl FakeRequest {
        pub fn new(headers: &[(&str, &str)]) -> Self {
            FakeRequest {
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                now: 0,
                reads: Vec::new(),
            }
        }

        /// A request with raw byte values (not necessarily UTF-8).
        pub fn bytes(headers: &[(&str, &[u8])]) -> Self {
            FakeRequest {
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect(),
                now: 0,
                reads: Vec::new(),
            }
        }

        pub fn at(mut self, now: u64) -> Self {
            self.now = now;
            self
        }
    }

    impl RequestView for FakeRequest {
        fn header(&mut self, name: &str) -> Option<Vec<u8>> {
            self.reads.push(name.to_string());
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
        fn now_s(&mut self) -> u64 {
            self.now
        }
    }

    fn creds() -> Credentials {
        Credentials {
            keys: key::KeyIndex::build([(0, SecretValue::new("alice-key"))]).0,
            basic: basic::BasicIndex::build([(1, "alice".into(), SecretValue::new("pw"))]),
            ..Default::default()
        }
    }

    fn plugins(key: bool, basic: bool, anonymous: Option<usize>) -> PluginSet {
        PluginSet {
            key_auth: key.then(|| KeyAuthOptions {
                header: "apikey".into(),
                query: "apikey".into(),
                hide_credentials: false,
                anonymous,
            }),
            basic_auth: basic.then_some(BasicAuthOptions {
                hide_credentials: false,
                anonymous: None,
            }),
            ..Default::default()
        }
    }

    fn run(p: &PluginSet, headers: &[(&str, &str)]) -> Option<Decision> {
        authenticate(p, &creds(), &mut FakeRequest::new(headers))
    }

    #[test]
    fn no_auth_plugin_no_decision() {
        assert_eq!(run(&PluginSet::default(), &[]), None);
    }

    #[test]
    fn any_plugin_may_accept() {
        let p = plugins(true, true, None);
        let cred = |d: Option<Decision>| match d {
            Some(Decision::Allow(a)) => a.credential,
            other => panic!("{other:?}"),
        };
        assert_eq!(cred(run(&p, &[("apikey", "alice-key")])), Some(0));
        // base64("alice:pw")
        assert_eq!(
            cred(run(&p, &[("authorization", "Basic YWxpY2U6cHc=")])),
            Some(1)
        );
        assert_eq!(
            run(&p, &[("apikey", "nope")]),
            Some(Decision::Reject(all_failed()))
        );
        assert_eq!(
            all_failed().body,
            "{\"message\":\"Authorization Failed\"}\n"
        );
    }

    #[test]
    fn a_single_plugin_answers_with_its_own_message() {
        let p = plugins(false, true, None);
        match run(&p, &[]) {
            Some(Decision::Reject(r)) => {
                assert_eq!(
                    r.body,
                    "{\"message\":\"Missing authorization in request\"}\n"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anonymous_consumer_when_every_plugin_refuses() {
        let p = plugins(true, false, Some(5));
        for headers in [vec![], vec![("apikey", "wrong")]] {
            match run(&p, &headers) {
                Some(Decision::Allow(a)) => {
                    assert_eq!(a.credential, None);
                    assert_eq!(a.consumer, Some(5));
                }
                other => panic!("{other:?}"),
            }
        }
        match run(&p, &[("apikey", "alice-key")]) {
            Some(Decision::Allow(a)) => assert_eq!(a.credential, Some(0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reject_bodies_are_json_escaped() {
        let r = Reject::message_with_detail(401, "a \"quoted\" \\ thing".into(), None, "".into());
        let v: serde_json::Value = serde_json::from_str(r.body.trim_end()).unwrap();
        assert_eq!(v["message"], "a \"quoted\" \\ thing");
        assert!(r.body.ends_with('\n'));
    }
}
