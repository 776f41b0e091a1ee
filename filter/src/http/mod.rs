//! HTTP leaf helpers shared by the plugins and the request pipeline: the view of a request,
//! the local reply, and parsers for what clients send (query strings, dates, base64). Nothing
//! here knows about plugins or configuration.

pub mod b64;
pub mod callout;
pub mod date;
pub mod pairs;
pub mod query;

use std::borrow::Cow;

/// Lazy access to the request: each call is a host call in Envoy, so checks ask only for what
/// they need. Names are lowercase; pseudo-headers (`:path`, `:method`) included. Values are the
/// bytes the client sent: nothing guarantees they are UTF-8, so each check decides what a value
/// that is not valid where it is read means (always a refusal, never a panic).
pub trait RequestView {
    fn header(&mut self, name: &str) -> Option<Vec<u8>>;
    /// A hint that the check will read several headers: a view may fetch them all in one host
    /// call instead of one call per header. Reads answer the same either way (the first value
    /// of a repeated header).
    fn read_all_headers(&mut self) {}
    /// Seconds since the Unix epoch (read only by checks that need it).
    fn now_s(&mut self) -> u64;
    /// The client's address without port (`remote_addr` in rate-limit keys).
    fn remote_addr(&mut self) -> Option<String> {
        None
    }
    /// The Envoy route's name.
    fn route_name(&mut self) -> Option<String> {
        None
    }
}

/// A denial: status, exact body, `WWW-Authenticate`, and a detail for the log. Two denials are
/// equal when the client would see the same answer and the log the same detail (`miss` is a
/// note for the worker, not part of the answer).
#[derive(Debug, Clone)]
pub struct Reject {
    pub status: u16,
    pub body: Cow<'static, str>,
    pub www_authenticate: Option<&'static str>,
    pub detail: Cow<'static, str>,
    /// The body hides the reason (hmac-auth): log `detail` so operators can see it.
    pub log_detail: bool,
    /// `Retry-After` in seconds (the 503 while credentials are unknown).
    pub retry_after_s: Option<u32>,
    /// The client presented a credential that matched nobody: which type, and the SHA-256 of
    /// what was presented (an early refresh may find that the secret just rotated).
    pub miss: Option<Miss>,
}

impl PartialEq for Reject {
    fn eq(&self, other: &Self) -> bool {
        (
            self.status,
            &self.body,
            self.www_authenticate,
            &self.detail,
            self.log_detail,
            self.retry_after_s,
        ) == (
            other.status,
            &other.body,
            other.www_authenticate,
            &other.detail,
            other.log_detail,
            other.retry_after_s,
        )
    }
}

impl Eq for Reject {}

/// A credential that matched nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss {
    /// The credential type (`key-auth`, `basic-auth`, `jwt-auth`, `hmac-auth`).
    pub kind: &'static str,
    pub digest: [u8; 32],
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
        let mut body = String::with_capacity(message.len() + 16);
        crate::json::Object::new(&mut body)
            .str("message", &message)
            .end();
        body.push('\n');
        Reject {
            status,
            body: body.into(),
            www_authenticate,
            detail,
            log_detail: false,
            retry_after_s: None,
            miss: None,
        }
    }

    /// Marks the refusal as a miss: the client presented `presented` as a `kind` credential.
    pub fn missed(mut self, kind: &'static str, presented: &[u8]) -> Self {
        use sha2::Digest;
        self.miss = Some(Miss {
            kind,
            digest: sha2::Sha256::digest(presented).into(),
        });
        self
    }

    /// The answer while the credential that could judge a request is unknown (its secret was
    /// never resolved: the sidecar or its provider has been unreachable): 503 with
    /// `Retry-After`, not a 401 that clients and people read as "wrong key".
    pub fn credential_store_unavailable(retry_after_s: u32) -> Self {
        Reject {
            retry_after_s: Some(retry_after_s),
            ..Self::message(
                503,
                "the credential store is unavailable, retry later",
                None,
                "credential_unknown",
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_bodies_are_json_escaped() {
        let r = Reject::message_with_detail(401, "a \"quoted\" \\ thing".into(), None, "".into());
        let v: serde_json::Value = serde_json::from_str(r.body.trim_end()).unwrap();
        assert_eq!(v["message"], "a \"quoted\" \\ thing");
        assert!(r.body.ends_with('\n'));
    }
}
