//! Authentication by credential type, one module each (its options, its credential index, its
//! check). The shared outcome types live here; which plugins run for a request, and in what
//! order, is the request pipeline's business (`crate::request::authenticate`).

pub mod basic;
pub mod hmac;
pub mod jwt;
pub mod key;
mod named;

use crate::http::Reject;

/// Constant-time check that `signature` is the HMAC (`M`, e.g. `Hmac<Sha256>`) of `input` under
/// `key`: hmac-auth's signatures and jwt-auth's HS* tokens.
pub fn hmac_matches<M: ::hmac::Mac + ::hmac::digest::KeyInit>(
    key: &[u8],
    input: &[u8],
    signature: &[u8],
) -> bool {
    match <M as ::hmac::Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            ::hmac::Mac::update(&mut mac, input);
            ::hmac::Mac::verify_slice(mac, signature).is_ok()
        }
        Err(_) => false,
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
    /// The credential's previous value matched (within its `rotation_grace_s`).
    pub previous: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Allow),
    Reject(Reject),
}

/// `Retry-After` of the 503 while a credential is unknown: about when the next refresh retry
/// may have answered.
pub const UNKNOWN_RETRY_AFTER_S: u32 = 5;

/// What the filter knows to authenticate with: indexes built from the last good secret values.
#[derive(Default)]
pub struct Credentials {
    pub keys: key::KeyIndex,
    pub basic: basic::BasicIndex,
    pub jwt: jwt::JwtIndex,
    pub hmac: hmac::HmacIndex,
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::http::RequestView;

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
}
