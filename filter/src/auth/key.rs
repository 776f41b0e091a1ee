//! key-auth: the key index (digest -> credential, then a constant-time compare) and the check.

use super::{Allow, Decision, Hide};
use crate::http::{query, Reject, RequestView};
use secret_ref::SecretValue;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use subtle::ConstantTimeEq;

/// key-auth options (APISIX names), validated by `config`.
#[derive(Debug, Clone)]
pub struct KeyAuthOptions {
    /// Lowercase header name.
    pub header: String,
    pub query: String,
    pub hide_credentials: bool,
    /// Consumer index used when authentication fails.
    pub anonymous: Option<usize>,
}

const REALM: &str = "apikey realm=\"key\"";

pub fn missing() -> Reject {
    Reject::message(
        401,
        "Missing API key in request",
        Some(REALM),
        "key_auth_missing",
    )
}

pub fn invalid() -> Reject {
    Reject::message(
        401,
        "Invalid API key in request",
        Some(REALM),
        "key_auth_invalid",
    )
}

/// SHA-256 of a key. Keys are looked up by digest, so the map's hashing and probing reveal
/// nothing about stored keys; the final comparison is constant time.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyDigest([u8; 32]);

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// The digest is already uniformly distributed: use it as the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

fn digest(key: &[u8]) -> KeyDigest {
    KeyDigest(Sha256::digest(key).into())
}

/// `key_sha256`: 64 hex digits (either case) into the digest.
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        let (hi, lo) = (digit(*pair.first()?)?, digit(*pair.get(1)?)?);
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// One key-auth value to index (borrowed: the index keeps only its digest).
#[derive(Debug, Clone, Copy)]
pub struct KeyEntry<'a> {
    pub credential: usize,
    /// The key, or with `sha256` its SHA-256 in hex (`key_sha256`).
    pub secret: &'a SecretValue,
    pub sha256: bool,
    /// A previous value, still in its rotation grace.
    pub previous: bool,
}

/// Why an entry was not indexed (logged by the caller; never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// Credentials whose current keys are the same: all of them are disabled.
    Shared(Vec<usize>),
    /// A `key_sha256` value that is not 64 hex digits.
    NotSha256Hex(usize),
}

/// Enabled key-auth credentials by the SHA-256 of their key. Only the digest is kept, not the
/// key (a second copy of every key would cost each VM as much again as the keys themselves,
/// issue #9): the map compares whole 32-byte digests, and a presented key with the same SHA-256
/// as a stored one is that key (finding another would be a SHA-256 collision).
#[derive(Default)]
pub struct KeyIndex {
    /// Digest -> (credential, whether the digest is of its previous value).
    map: HashMap<KeyDigest, (usize, bool), BuildHasherDefault<DigestHasher>>,
    /// Some key-auth credential's key is unknown: any key could be that one.
    unknown: bool,
}

impl KeyIndex {
    /// Builds the index from `(credential index, key)` pairs: see [`KeyIndex::build_entries`].
    pub fn build<'a>(
        keys: impl IntoIterator<Item = (usize, &'a SecretValue)>,
    ) -> (Self, Vec<Vec<usize>>) {
        let entries = keys.into_iter().map(|(credential, secret)| KeyEntry {
            credential,
            secret,
            sha256: false,
            previous: false,
        });
        let (index, problems) = Self::build_entries(entries);
        let groups = problems
            .into_iter()
            .filter_map(|p| match p {
                KeyProblem::Shared(group) => Some(group),
                KeyProblem::NotSha256Hex(_) => None,
            })
            .collect();
        (index, groups)
    }

    /// Builds the index. Credentials whose current keys are the same are ambiguous: all of them
    /// are left out (fail closed) and reported. A previous value (rotation grace) is indexed
    /// only where no current key is the same: a current key always wins.
    pub fn build_entries<'a>(
        entries: impl IntoIterator<Item = KeyEntry<'a>>,
    ) -> (Self, Vec<KeyProblem>) {
        let entries = entries.into_iter();
        let mut index = KeyIndex {
            map: HashMap::with_capacity_and_hasher(entries.size_hint().0, Default::default()),
            unknown: false,
        };
        let mut problems = Vec::new();
        let mut shared: HashMap<KeyDigest, Vec<usize>, BuildHasherDefault<DigestHasher>> =
            HashMap::default();
        let mut previous = Vec::new();
        for entry in entries {
            // An empty key would let an empty header in: never indexed (fail closed).
            if entry.secret.expose().is_empty() {
                continue;
            }
            let d = if entry.sha256 {
                match parse_sha256_hex(entry.secret.expose()) {
                    Some(d) => KeyDigest(d),
                    None => {
                        problems.push(KeyProblem::NotSha256Hex(entry.credential));
                        continue;
                    }
                }
            } else {
                digest(entry.secret.expose().as_bytes())
            };
            if entry.previous {
                previous.push((d, entry.credential));
            } else if let Some(group) = shared.get_mut(&d) {
                group.push(entry.credential);
            } else if let Some((first, _)) = index.map.get(&d) {
                shared.insert(d, vec![*first, entry.credential]);
            } else {
                index.map.insert(d, (entry.credential, false));
            }
        }
        for d in shared.keys() {
            index.map.remove(d);
        }
        for (d, credential) in previous {
            if !shared.contains_key(&d) && !index.map.contains_key(&d) {
                index.map.insert(d, (credential, true));
            }
        }
        let mut groups: Vec<Vec<usize>> = shared.into_values().collect();
        groups.sort();
        problems.extend(groups.into_iter().map(KeyProblem::Shared));
        (index, problems)
    }

    /// Marks the index as missing keys that are unknown (never resolved, or expired while the
    /// store fails): a key that matches none of the known ones cannot be judged yet.
    pub fn with_unknown(mut self, unknown: bool) -> Self {
        self.unknown = unknown;
        self
    }

    /// The credential whose key is `presented` (the raw bytes the client sent), if any, and
    /// whether it is that credential's previous value.
    pub fn lookup_version(&self, presented: &[u8]) -> Option<(usize, bool)> {
        let d = digest(presented);
        let (stored, (credential, previous)) = self.map.get_key_value(&d)?;
        // The map compared whole digests; once more in constant time all the same.
        bool::from(stored.0[..].ct_eq(&d.0[..])).then_some((*credential, *previous))
    }

    /// The credential whose key is `presented`, if any.
    pub fn lookup(&self, presented: &[u8]) -> Option<usize> {
        self.lookup_version(presented).map(|(c, _)| c)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyIndex({} keys)", self.map.len())
    }
}

/// The APISIX key-auth check: the header, else the query argument. Keys are compared as the
/// bytes the client sent, so a value that is not UTF-8 is simply a key that matches nobody.
pub fn check(opts: &KeyAuthOptions, index: &KeyIndex, req: &mut dyn RequestView) -> Decision {
    let (key, from_query) = match req.header(&opts.header) {
        Some(k) => (k, false),
        None => match req
            .header(":path")
            .and_then(|p| query::find_arg(&p, &opts.query))
        {
            Some(k) => (k, true),
            None => return Decision::Reject(missing()),
        },
    };
    let Some((credential, previous)) = index.lookup_version(&key) else {
        if index.unknown {
            return Decision::Reject(Reject::credential_store_unavailable(
                super::UNKNOWN_RETRY_AFTER_S,
            ));
        }
        return Decision::Reject(invalid().missed("key-auth", &key));
    };
    let hide = match (opts.hide_credentials, from_query) {
        (false, _) => None,
        (true, false) => Some(Hide::Header(opts.header.clone())),
        (true, true) => req
            .header(":path")
            .map(|p| Hide::Path(query::remove_arg(&p, &opts.query))),
    };
    Decision::Allow(Allow {
        credential: Some(credential),
        consumer: None,
        hide,
        body_check: None,
        previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::FakeRequest;

    fn index() -> KeyIndex {
        let keys = [
            "alice-key",
            "bob-key",
            "carol-key",
            "carol-key",
            "carol-key",
        ]
        .map(SecretValue::new);
        let (idx, dups) = KeyIndex::build(keys.iter().enumerate());
        assert_eq!(dups, vec![vec![2, 3, 4]]);
        idx
    }

    fn opts(hide: bool) -> KeyAuthOptions {
        KeyAuthOptions {
            header: "apikey".into(),
            query: "apikey".into(),
            hide_credentials: hide,
            anonymous: None,
        }
    }

    #[test]
    fn lookup() {
        let idx = index();
        assert_eq!(idx.len(), 2);
        assert_eq!(
            idx.lookup(b"carol-key"),
            None,
            "a shared key authenticates nobody"
        );
        assert_eq!(idx.lookup(b"alice-key"), Some(0));
        assert_eq!(idx.lookup(b"bob-key"), Some(1));
        assert_eq!(idx.lookup(b"alice-ke"), None);
        assert_eq!(idx.lookup(b""), None);
        assert_eq!(idx.lookup(b"\xff\xfe"), None);
    }

    /// One row per documented behaviour: (headers, hide_credentials, expected decision).
    #[test]
    fn decisions() {
        let idx = index();
        let allow = |credential, hide| {
            Decision::Allow(Allow {
                credential: Some(credential),
                consumer: None,
                hide,
                body_check: None,
                previous: false,
            })
        };
        type Row<'a> = (Vec<(&'a str, &'a str)>, bool, Decision);
        let rows: Vec<Row> = vec![
            (
                vec![(":path", "/ip"), ("apikey", "alice-key")],
                false,
                allow(0, None),
            ),
            (vec![(":path", "/ip?apikey=bob-key")], false, allow(1, None)),
            // the header wins over the query argument, as in APISIX
            (
                vec![(":path", "/ip?apikey=bob-key"), ("apikey", "alice-key")],
                false,
                allow(0, None),
            ),
            (
                vec![(":path", "/ip?apikey=bob-key"), ("apikey", "nope")],
                false,
                Decision::Reject(invalid()),
            ),
            (vec![(":path", "/ip")], false, Decision::Reject(missing())),
            (
                vec![(":path", "/ip?other=1")],
                false,
                Decision::Reject(missing()),
            ),
            (
                vec![(":path", "/ip"), ("apikey", "")],
                false,
                Decision::Reject(invalid()),
            ),
            (
                vec![(":path", "/ip"), ("apikey", "wrong")],
                false,
                Decision::Reject(invalid()),
            ),
            (
                vec![(":path", "/ip"), ("apikey", "alice-key")],
                true,
                allow(0, Some(Hide::Header("apikey".into()))),
            ),
            (
                vec![(":path", "/ip?a=1&apikey=bob-key")],
                true,
                allow(1, Some(Hide::Path(b"/ip?a=1".to_vec()))),
            ),
            (
                vec![(":path", "/ip?apikey=alice%2Dkey")],
                false,
                allow(0, None),
            ),
        ];
        for (headers, hide, want) in rows {
            let mut req = FakeRequest::new(&headers);
            assert_eq!(check(&opts(hide), &idx, &mut req), want, "{headers:?}");
        }
    }

    #[test]
    fn empty_keys_are_never_indexed() {
        let empty = SecretValue::new("");
        let (idx, dups) = KeyIndex::build([(0, &empty), (1, &empty)]);
        assert!(idx.is_empty());
        assert!(dups.is_empty());
        assert_eq!(idx.lookup(b""), None);
        for headers in [
            vec![(":path", "/ip"), ("apikey", "")],
            vec![(":path", "/ip?apikey=")],
            vec![(":path", "/ip?apikey")],
        ] {
            let mut req = FakeRequest::new(&headers);
            assert!(
                matches!(check(&opts(false), &idx, &mut req), Decision::Reject(_)),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_invalid_key() {
        let idx = index();
        for value in [&b"\xff\xfe"[..], b"alice-key\xff", b"\xc3"] {
            let mut req = FakeRequest::bytes(&[(":path", b"/ip"), ("apikey", value)]);
            assert_eq!(
                check(&opts(false), &idx, &mut req),
                Decision::Reject(invalid())
            );
        }
        let mut req = FakeRequest::bytes(&[(":path", b"/ip?apikey=%ff\xfe")]);
        assert_eq!(
            check(&opts(false), &idx, &mut req),
            Decision::Reject(invalid())
        );
    }

    #[test]
    fn reads_only_the_headers_it_needs() {
        let idx = index();
        let mut req = FakeRequest::new(&[(":path", "/ip"), ("apikey", "alice-key")]);
        check(&opts(false), &idx, &mut req);
        assert_eq!(req.reads, vec!["apikey"]);
    }

    #[test]
    fn rejects_are_apisix_compatible() {
        assert_eq!(
            missing().body,
            "{\"message\":\"Missing API key in request\"}\n"
        );
        assert_eq!(
            invalid().body,
            "{\"message\":\"Invalid API key in request\"}\n"
        );
        assert_eq!(missing().www_authenticate, Some("apikey realm=\"key\""));
    }
}
