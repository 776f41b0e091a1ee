//! Authentication decisions. One module per credential type; the shared outcome types and the
//! reject path live here. Decisions are pure: the glue reads headers through [`RequestView`] and
//! applies the [`Decision`].

pub mod key;
pub mod query;

use crate::config::PluginSet;

/// Headers the upstream gets for an authenticated consumer. Client-sent copies are replaced or
/// removed on every request.
pub const CONSUMER_USERNAME: &str = "x-consumer-username";
pub const CREDENTIAL_IDENTIFIER: &str = "x-credential-identifier";

/// Lazy access to the request: each call is a host call in Envoy, so checks ask only for what
/// they need. Names are lowercase; pseudo-headers (`:path`) included.
pub trait RequestView {
    fn header(&mut self, name: &str) -> Option<String>;
}

/// A denial: status, exact body and `WWW-Authenticate`, plus a detail code for logs and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub body: &'static str,
    pub www_authenticate: &'static str,
    pub detail: &'static str,
}

/// How to hide the credential from the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hide {
    /// Remove this header.
    Header(String),
    /// Replace `:path` (a query argument removed).
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated as credential `credential` (index into `Config::credentials`).
    Allow {
        credential: usize,
        hide: Option<Hide>,
    },
    Reject(Reject),
}

/// What the filter knows to authenticate with: indexes built from the last good secret values.
pub struct Credentials<'a> {
    pub keys: &'a key::KeyIndex,
}

/// Runs the route's auth plugins. `None` when the route has no auth plugin.
pub fn authenticate(
    plugins: &PluginSet,
    creds: &Credentials<'_>,
    req: &mut dyn RequestView,
) -> Option<Decision> {
    let opts = plugins.key_auth.as_ref()?;
    Some(key::check(opts, creds.keys, req))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::RequestView;

    /// A request whose header reads are recorded, to check that decisions read only what they need.
    pub struct FakeRequest {
        headers: Vec<(String, String)>,
        pub reads: Vec<String>,
    }

    impl FakeRequest {
        pub fn new(headers: &[(&str, &str)]) -> Self {
            FakeRequest {
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                reads: Vec::new(),
            }
        }
    }

    impl RequestView for FakeRequest {
        fn header(&mut self, name: &str) -> Option<String> {
            self.reads.push(name.to_string());
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }
}
