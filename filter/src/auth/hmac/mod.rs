//! hmac-auth, the APISIX 3.11+ scheme:
//! `Authorization: Signature keyId="...",algorithm="hmac-sha256",headers="@request-target date",signature="..."`.
//! The signing string is the keyId, then one `name: value` line per listed header (`@request-target`
//! is `METHOD /path?query`), each line ending in `\n`. Every listed header must be in the request,
//! the request's time must come from a signed `date` (or `x-date`) header, and with
//! `validate_request_body` the `digest` header must be signed.

use super::{Allow, BodyCheck, Decision, Hide};
use crate::http::{b64, date as http_date, Reject, RequestView};
use hmac::Hmac;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// hmac-auth options.
#[derive(Debug, Clone)]
pub struct HmacAuthOptions {
    pub allowed_algorithms: Vec<HmacAlgorithm>,
    pub clock_skew_s: u64,
    /// Lowercase header names that must be among the signed ones.
    pub signed_headers: Vec<String>,
    pub validate_request_body: bool,
    pub max_req_body_size: usize,
    pub hide_credentials: bool,
    pub anonymous: Option<usize>,
}

pub const REALM: &str = "hmac realm=\"hmac\"";
const PREFIX: &str = "client request can't be validated";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl HmacAlgorithm {
    pub const ALL: [HmacAlgorithm; 3] = [Self::Sha1, Self::Sha256, Self::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "hmac-sha1",
            Self::Sha256 => "hmac-sha256",
            Self::Sha512 => "hmac-sha512",
        }
    }

    /// Constant-time check of `signature` over `input`.
    pub fn verify(self, key: &[u8], input: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Sha1 => super::hmac_matches::<Hmac<sha1::Sha1>>(key, input, signature),
            Self::Sha256 => super::hmac_matches::<Hmac<sha2::Sha256>>(key, input, signature),
            Self::Sha512 => super::hmac_matches::<Hmac<sha2::Sha512>>(key, input, signature),
        }
    }
}

/// A name that is not one of [`HmacAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown algorithm \"{}\" (expected hmac-sha1, hmac-sha256 or hmac-sha512)",
            self.0
        )
    }
}

impl FromStr for HmacAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, UnknownAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_string()))
    }
}

impl fmt::Display for HmacAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Enabled hmac-auth credentials by key id.
pub type HmacIndex = super::named::NamedIndex;

/// The fields of the `Signature` Authorization header.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    key_id: Option<String>,
    algorithm: Option<String>,
    signature: Option<String>,
    headers: Option<Vec<String>>,
}

fn parse(auth: &str) -> Result<Params, &'static str> {
    let Some(rest) = auth.strip_prefix("Signature") else {
        return Err("Authorization header does not start with 'Signature'");
    };
    let mut p = Params::default();
    for field in rest.split(',') {
        let Some((key, value)) = field.trim().split_once('=') else {
            continue;
        };
        let Some(value) = value.strip_prefix('"').and_then(|v| v.split('"').next()) else {
            continue;
        };
        if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        match key {
            "keyId" => p.key_id = Some(value.to_string()),
            "algorithm" => p.algorithm = Some(value.to_string()),
            "signature" => p.signature = Some(value.to_string()),
            "headers" => p.headers = Some(value.split(' ').map(str::to_string).collect()),
            _ => {}
        }
    }
    Ok(p)
}

/// Failures after parsing: the client sees only the generic message; the reason goes to the log.
fn invalid(reason: impl Into<Cow<'static, str>>) -> Decision {
    Decision::Reject(Reject::generic(401, PREFIX, Some(REALM), reason.into()))
}

/// Signed header names that can carry the request's time, in the order they are looked for.
const DATE_HEADERS: [&str; 2] = ["date", "x-date"];

pub fn check(opts: &HmacAuthOptions, index: &HmacIndex, req: &mut dyn RequestView) -> Decision {
    let Some(auth) = req.header("authorization") else {
        return exposed("missing Authorization header");
    };
    let Ok(auth) = String::from_utf8(auth) else {
        return exposed("Authorization header is not valid UTF-8");
    };
    let params = match parse(&auth) {
        Ok(p) => p,
        Err(reason) => return exposed(reason),
    };
    let (Some(key_id), Some(signature)) = (params.key_id.as_deref(), params.signature.as_deref())
    else {
        return invalid("keyId or signature missing");
    };
    let Some(algorithm) = params.algorithm.as_deref() else {
        return invalid("algorithm missing");
    };
    let Some((credential, secret)) = index.get(key_id) else {
        if index.is_unknown(key_id) {
            return Decision::Reject(Reject::credential_store_unavailable(
                crate::auth::UNKNOWN_RETRY_AFTER_S,
            ));
        }
        return missed(invalid("Invalid key_id"), auth.as_bytes());
    };
    let Some(algorithm) = opts
        .allowed_algorithms
        .iter()
        .copied()
        .find(|a| a.name() == algorithm)
    else {
        return invalid("Invalid algorithm");
    };
    let signed = params.headers.unwrap_or_default();
    let is_signed = |name: &str| signed.iter().any(|h| h.eq_ignore_ascii_case(name));
    if !opts.signed_headers.is_empty() && signed.is_empty() {
        return invalid("headers missing");
    }
    for required in &opts.signed_headers {
        if !is_signed(required) {
            return invalid(format!("expected header \"{required}\" missing in signing"));
        }
    }
    // Freshness comes only from a header the signature covers: an unsigned date could be
    // replaced to replay an old signature forever.
    let Some(date_name) = DATE_HEADERS.into_iter().find(|n| is_signed(n)) else {
        return invalid("Date header not signed. failed to validate clock skew");
    };
    let Some(date) = req.header(date_name) else {
        return invalid("Date header missing. failed to validate clock skew");
    };
    let Some(time) = std::str::from_utf8(&date).ok().and_then(http_date::parse) else {
        return invalid("Invalid GMT format time");
    };
    if req.now_s().abs_diff(time) > opts.clock_skew_s {
        return invalid("Clock skew exceeded");
    }
    if opts.validate_request_body && !is_signed("digest") {
        return invalid("Invalid digest: the digest header is not signed");
    }
    let mut signing: Vec<u8> = Vec::with_capacity(128);
    signing.extend_from_slice(key_id.as_bytes());
    signing.push(b'\n');
    for h in &signed {
        let lower = h.to_ascii_lowercase();
        // No request header can be named "@request-target": do not ask the host for it.
        if lower == "@request-target" {
            let method = req.header(":method").unwrap_or_default();
            let path = req.header(":path").unwrap_or_else(|| b"/".to_vec());
            signing.extend_from_slice(&method);
            signing.push(b' ');
            signing.extend_from_slice(&path);
        } else {
            // Every listed header must be there: skipping an absent one would let a signature
            // made for one request pass for others.
            let Some(value) = req.header(&lower) else {
                return invalid("a header listed in headers is missing from the request");
            };
            signing.extend_from_slice(h.as_bytes());
            signing.extend_from_slice(b": ");
            signing.extend_from_slice(&value);
        }
        signing.push(b'\n');
    }
    let Some(sig) = b64::standard(signature) else {
        return invalid("Invalid signature");
    };
    let previous = if algorithm.verify(secret.expose().as_bytes(), &signing, &sig) {
        false
    } else if index
        .previous(key_id)
        .is_some_and(|p| algorithm.verify(p.expose().as_bytes(), &signing, &sig))
    {
        true
    } else {
        return missed(invalid("Invalid signature"), auth.as_bytes());
    };
    let body_check = if opts.validate_request_body {
        let Some(digest) = req.header("digest").and_then(|d| String::from_utf8(d).ok()) else {
            return invalid("Invalid digest");
        };
        Some(BodyCheck {
            digest,
            max_size: opts.max_req_body_size,
        })
    } else {
        None
    };
    Decision::Allow(Allow {
        credential: Some(*credential),
        consumer: None,
        hide: opts
            .hide_credentials
            .then(|| Hide::Header("authorization".into())),
        body_check,
        previous,
    })
}

/// A refusal of a signature or key id that may just have rotated (see `Reject::missed`).
fn missed(decision: Decision, authorization: &[u8]) -> Decision {
    match decision {
        Decision::Reject(r) => Decision::Reject(r.missed("hmac-auth", authorization)),
        other => other,
    }
}

/// Missing or unparseable Authorization: the reason is part of the answer.
fn exposed(reason: &'static str) -> Decision {
    Decision::Reject(Reject::message_with_detail(
        401,
        format!("{PREFIX}: {reason}").into(),
        Some(REALM),
        reason.into(),
    ))
}

/// The answer when the body does not match the signed `Digest` header.
pub fn digest_mismatch() -> Reject {
    Reject::generic(401, PREFIX, Some(REALM), "Invalid digest".into())
}

/// `SHA-256=<base64(sha256(body))>`, compared with the `Digest` header.
pub fn body_matches(digest_header: &str, body: &[u8]) -> bool {
    use sha2::Digest;
    let expected = format!(
        "SHA-256={}",
        b64::encode_standard(&sha2::Sha256::digest(body))
    );
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), digest_header.trim().as_bytes()).into()
}

#[cfg(test)]
mod tests;
