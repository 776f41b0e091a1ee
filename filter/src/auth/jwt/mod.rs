//! jwt-auth: token extraction (header, query, cookie), claim checks, signature verification with a
//! bounded cache for the expensive algorithms. Messages match APISIX's jwt-auth.

pub mod claims;
pub mod ecdsa;
mod limbs;
pub mod rsa_public;
mod verify;

pub use verify::{JwtAlgorithm, KeyError, VerifyKey};

use super::{Allow, Decision, Hide};
use crate::http::{b64, query, Reject, RequestView};
use claims::{Claims, Time};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};

/// jwt-auth options.
#[derive(Debug, Clone)]
pub struct JwtAuthOptions {
    /// Lowercase header name.
    pub header: String,
    pub query: String,
    pub cookie: String,
    pub hide_credentials: bool,
    pub key_claim_name: String,
    pub verify_exp: bool,
    pub verify_nbf: bool,
    pub anonymous: Option<usize>,
}

const REALM: &str = "Bearer realm=\"jwt\"";
/// Verified asymmetric tokens remembered per worker.
pub const CACHE_CAPACITY: usize = 4096;

fn reject(message: &'static str, detail: &'static str) -> Reject {
    Reject::message(401, message, Some(REALM), detail)
}

pub const MISSING: &str = "Missing JWT token in request";
pub const INVALID: &str = "JWT token invalid";
pub const MISSING_KEY: &str = "missing user key in JWT token";
pub const UNKNOWN_KEY: &str = "Invalid user key in JWT token";
pub const FAILED: &str = "failed to verify jwt";

/// A jwt-auth credential ready to verify.
#[derive(Debug)]
pub struct JwtCredential {
    pub credential: usize,
    pub algorithm: JwtAlgorithm,
    pub key: VerifyKey,
    pub grace_period_s: u64,
}

/// Enabled jwt-auth credentials by their `key` claim, and the verification cache.
#[derive(Default)]
pub struct JwtIndex {
    map: HashMap<String, JwtCredential>,
    cache: RefCell<VerifiedCache>,
    /// `key` claims whose secret or public key is unknown.
    unknown: HashSet<String>,
    /// Previous secrets or public keys still in their rotation grace, by `key` claim.
    previous: HashMap<String, JwtCredential>,
}

impl JwtIndex {
    pub fn build(entries: impl IntoIterator<Item = (String, JwtCredential)>) -> Self {
        JwtIndex {
            map: entries.into_iter().collect(),
            cache: RefCell::new(VerifiedCache::default()),
            unknown: HashSet::new(),
            previous: HashMap::new(),
        }
    }

    /// Adds previous keys (rotation grace) of `key` claims that have a current one.
    pub fn with_previous(
        mut self,
        entries: impl IntoIterator<Item = (String, JwtCredential)>,
    ) -> Self {
        self.previous = entries
            .into_iter()
            .filter(|(key, _)| self.map.contains_key(key))
            .collect();
        self
    }

    /// Marks `keys` as `key` claims whose secret or public key is unknown: a token naming one
    /// (and no known credential) cannot be judged yet.
    pub fn with_unknown(mut self, keys: impl IntoIterator<Item = String>) -> Self {
        self.unknown = keys
            .into_iter()
            .filter(|k| !self.map.contains_key(k))
            .collect();
        self
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Signature checks of asymmetric tokens by SHA-256 of the token: the credential checked and
/// whether the signature verified. Failures are remembered too, so a garbage token replayed with
/// a known `key` costs one signature check, not one per request. Bounded, oldest evicted first.
#[derive(Default)]
struct VerifiedCache {
    /// Token digest -> (credential, its previous key?, verified).
    entries: HashMap<[u8; 32], (usize, bool, bool)>,
    order: VecDeque<[u8; 32]>,
}

impl VerifiedCache {
    /// The remembered outcome for `token` checked against `credential`'s current key (or with
    /// `previous`, its previous key).
    fn get(&self, token: &[u8; 32], credential: usize, previous: bool) -> Option<bool> {
        match self.entries.get(token) {
            Some((c, p, ok)) if *c == credential && *p == previous => Some(*ok),
            _ => None,
        }
    }

    #[cfg(test)]
    fn contains(&self, token: &[u8; 32], credential: usize) -> bool {
        self.get(token, credential, false) == Some(true)
    }

    fn insert(&mut self, token: [u8; 32], credential: usize, previous: bool, verified: bool) {
        if self
            .entries
            .insert(token, (credential, previous, verified))
            .is_none()
        {
            self.order.push_back(token);
        }
        while self.order.len() > CACHE_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }
}

/// Where the token came from, to hide it.
enum Origin {
    Header,
    Query,
    Cookie,
}

fn find_token(opts: &JwtAuthOptions, req: &mut dyn RequestView) -> Option<(Vec<u8>, Origin)> {
    if let Some(h) = req.header(&opts.header) {
        let token = h
            .strip_prefix(b"Bearer ")
            .or_else(|| h.strip_prefix(b"bearer "))
            .unwrap_or(&h)
            .trim_ascii()
            .to_vec();
        return Some((token, Origin::Header));
    }
    if let Some(t) = req
        .header(":path")
        .and_then(|p| query::find_arg(&p, &opts.query))
    {
        return Some((t, Origin::Query));
    }
    let cookies = req.header("cookie")?;
    cookies
        .split(|b| *b == b';')
        .filter_map(|c| {
            let c = c.trim_ascii();
            let i = c.iter().position(|b| *b == b'=')?;
            Some((c.get(..i)?, c.get(i + 1..)?))
        })
        .find(|(name, _)| *name == opts.cookie.as_bytes())
        .map(|(_, v)| (v.to_vec(), Origin::Cookie))
}

/// A token split and decoded; the signature is checked separately.
struct Parsed {
    alg: String,
    claims: Claims,
    signing_input_len: usize,
    signature: Vec<u8>,
}

fn parse(token: &str, key_claim: &str) -> Option<Parsed> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(Parsed {
        alg: claims::header_alg(&b64::url_safe(h)?)?,
        claims: claims::claims(&b64::url_safe(p)?, key_claim)?,
        signing_input_len: h.len() + 1 + p.len(),
        signature: b64::url_safe(s)?,
    })
}

/// `exp` / `nbf` when present: numbers (integer or not), with `grace` seconds of leeway.
fn claims_ok(opts: &JwtAuthOptions, claims: &Claims, now: u64, grace: u64) -> bool {
    let now = now as f64;
    let grace = grace as f64;
    let check = |t: Time, ok: &dyn Fn(f64) -> bool| match t {
        Time::Absent => true,
        Time::Number(n) => ok(n),
        Time::NotANumber => false,
    };
    (!opts.verify_exp || check(claims.exp, &|exp| now - grace < exp))
        && (!opts.verify_nbf || check(claims.nbf, &|nbf| nbf <= now + grace))
}

pub fn check(opts: &JwtAuthOptions, index: &JwtIndex, req: &mut dyn RequestView) -> Decision {
    let Some((token, origin)) = find_token(opts, req) else {
        return Decision::Reject(reject(MISSING, "jwt_missing"));
    };
    // A JWT is base64url and dots: bytes that are not UTF-8 are a malformed token.
    let Ok(token) = String::from_utf8(token) else {
        return Decision::Reject(reject(INVALID, "jwt_malformed"));
    };
    let Some(parsed) = parse(&token, &opts.key_claim_name) else {
        return Decision::Reject(reject(INVALID, "jwt_malformed"));
    };
    let Some(user_key) = parsed.claims.key.as_deref() else {
        return Decision::Reject(reject(MISSING_KEY, "jwt_missing_key"));
    };
    let Some(cred) = index.map.get(user_key) else {
        if index.unknown.contains(user_key) {
            return Decision::Reject(Reject::credential_store_unavailable(
                super::UNKNOWN_RETRY_AFTER_S,
            ));
        }
        return Decision::Reject(
            reject(UNKNOWN_KEY, "jwt_unknown_key").missed("jwt-auth", token.as_bytes()),
        );
    };
    // alg "none" or any other algorithm than the credential's never passes.
    if parsed.alg != cred.algorithm.name() {
        return Decision::Reject(reject(FAILED, "jwt_algorithm"));
    }
    if !claims_ok(opts, &parsed.claims, req.now_s(), cred.grace_period_s) {
        return Decision::Reject(reject(FAILED, "jwt_claims"));
    }
    let input = token
        .as_bytes()
        .get(..parsed.signing_input_len)
        .unwrap_or_default();
    let verify = |cred: &JwtCredential, previous: bool| {
        if cred.algorithm.is_hmac() {
            return cred.key.verify(cred.algorithm, input, &parsed.signature);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut cache = index.cache.borrow_mut();
        match cache.get(&digest, cred.credential, previous) {
            Some(verified) => verified,
            None => {
                let verified = cred.key.verify(cred.algorithm, input, &parsed.signature);
                cache.insert(digest, cred.credential, previous, verified);
                verified
            }
        }
    };
    let previous = if verify(cred, false) {
        false
    } else if index
        .previous
        .get(user_key)
        .is_some_and(|p| p.algorithm == cred.algorithm && verify(p, true))
    {
        true
    } else {
        return Decision::Reject(
            reject(FAILED, "jwt_signature").missed("jwt-auth", token.as_bytes()),
        );
    };
    let hide = opts.hide_credentials.then(|| match origin {
        Origin::Header => Some(Hide::Header(opts.header.clone())),
        Origin::Query => req
            .header(":path")
            .map(|p| Hide::Path(query::remove_arg(&p, &opts.query))),
        Origin::Cookie => req.header("cookie").map(|c| {
            let kept: Vec<&[u8]> = c
                .split(|b| *b == b';')
                .map(<[u8]>::trim_ascii)
                .filter(|kv| kv.split(|b| *b == b'=').next() != Some(opts.cookie.as_bytes()))
                .collect();
            Hide::SetHeader("cookie".into(), kept.join(&b"; "[..]))
        }),
    });
    Decision::Allow(Allow {
        credential: Some(cred.credential),
        consumer: None,
        hide: hide.flatten(),
        body_check: None,
        previous,
    })
}

#[cfg(test)]
mod tests;
