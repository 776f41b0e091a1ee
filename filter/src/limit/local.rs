//! The `local` policy: fixed-window counters shared by all of one Envoy's workers through
//! proxy-wasm shared data, updated with compare-and-swap so concurrent workers never lose a hit.
//!
//! Shared data has no delete in Envoy (a key, once written, stays), so counters live in a fixed
//! set of slots: `SLOTS` keys per scope (route or group), each holding one counter (its key,
//! window start and count). A counter key hashes to a slot of its scope and may use the next
//! `PROBES - 1` slots; a slot whose window has ended is free. Memory is therefore bounded, and
//! expired counters' space is reused.
//!
//! Clients choose some keys (`http_*`, `arg_*`), so they must not be able to reset a counter:
//! - each scope has its own slots: no key of one route can take a slot of another's counter;
//! - the slot hash is keyed with a secret chosen at random when Envoy starts ([`HashKey`]), so
//!   keys that collide cannot be computed offline;
//! - a live counter is never recycled: when all of a key's slots hold live counters of other
//!   keys, the hit fails with [`StoreError::Full`] (judged like a store failure, by
//!   `allow_degradation`) instead of restarting someone else's count;
//! - keys longer than [`MAX_KEY_BYTES`] are stored as their SHA-256, so slots stay small.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;

pub const SLOTS: u64 = 1 << 16;
pub const PROBES: u64 = 4;
const RETRIES: usize = 64;
/// `cas` given when creating a slot: Envoy creates a missing key whatever the cas, but refuses
/// it on an existing one (unless it happens to equal this rare value), so two workers racing to
/// create the same slot cannot overwrite each other. `0` would mean "no check".
const CREATE_CAS: u32 = 0x9e37_79b9;

/// Keys longer than this are stored as their SHA-256.
pub const MAX_KEY_BYTES: usize = 128;
const HASH_KEY_NAME: &str = "envoy-secret-auth/lc/hash-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    CasMismatch,
    /// The host refused the operation.
    Failed,
    /// Every slot the key may use holds a live counter of another key.
    Full,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::CasMismatch => write!(f, "too much contention on a shared counter"),
            StoreError::Failed => write!(f, "the proxy's shared data refused the update"),
            StoreError::Full => write!(
                f,
                "no free counter slot for this key (more live keys in this scope than slots)"
            ),
        }
    }
}

/// The secret the slot hash is keyed with, the same in every worker of one Envoy and new at
/// each start: the first worker picks it at random and puts it in shared data (which lives as
/// long as the Envoy process), the others read it.
#[derive(Clone)]
pub struct HashKey([u8; 32]);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey([redacted])")
    }
}

impl HashKey {
    /// The Envoy's key: the one in `store`, else `fresh` (random bytes), stored for the others.
    pub fn shared(store: &mut dyn SharedStore, fresh: [u8; 32]) -> Result<HashKey, StoreError> {
        for _ in 0..RETRIES {
            let cas = match store.get(HASH_KEY_NAME) {
                Some((value, cas)) => match <[u8; 32]>::try_from(value.as_slice()) {
                    Ok(key) => return Ok(HashKey(key)),
                    // Not ours (or damaged): replace it.
                    Err(_) => cas,
                },
                None => CREATE_CAS,
            };
            match store.set(HASH_KEY_NAME, &fresh, Some(cas)) {
                Ok(()) => return Ok(HashKey(fresh)),
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::CasMismatch)
    }

    /// A fixed key, for tests.
    pub fn fixed(key: [u8; 32]) -> HashKey {
        HashKey(key)
    }

    fn slot(&self, key: &[u8]) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.0)
            .chain_update(key)
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(first)
    }
}

/// proxy-wasm shared data: values with a version (`cas`).
pub trait SharedStore {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// `cas: None` creates; `Some(c)` replaces only if the current version is `c`.
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// The state of a counter after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Hits in this window, this one included (rejected hits count too, as in APISIX).
    pub used: u64,
    pub limit: u64,
    /// Milliseconds until the window ends.
    pub reset_ms: u64,
}

impl Hit {
    pub fn allowed(&self) -> bool {
        self.used <= self.limit
    }
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
    /// Whole seconds until the window ends, rounded up.
    pub fn reset_s(&self) -> u64 {
        self.reset_ms.div_ceil(1000)
    }
}

struct Slot {
    start_ms: u64,
    count: u64,
    key: Vec<u8>,
}

fn decode(v: &[u8]) -> Option<Slot> {
    let start = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    let count = u64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    Some(Slot {
        start_ms: start,
        count,
        key: v.get(16..)?.to_vec(),
    })
}

fn encode(start_ms: u64, count: u64, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + key.len());
    v.extend_from_slice(&start_ms.to_le_bytes());
    v.extend_from_slice(&count.to_le_bytes());
    v.extend_from_slice(key);
    v
}

/// The slots of one scope: named by a digest of the scope (scopes come from the configuration).
fn scope_tag(scope: &str) -> u64 {
    let digest = Sha256::digest(scope.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first)
}

fn slot_name(tag: u64, i: u64) -> String {
    format!("envoy-secret-auth/lc/{tag:016x}/{i:05}")
}

/// What a slot stores to recognise its counter: the key, or the SHA-256 of a long one.
fn stored_key(key: &str) -> Cow<'_, [u8]> {
    if key.len() <= MAX_KEY_BYTES {
        Cow::Borrowed(key.as_bytes())
    } else {
        let mut v = b"sha256:".to_vec();
        v.extend_from_slice(&Sha256::digest(key.as_bytes()));
        Cow::Owned(v)
    }
}

/// Counts one hit of `key` in `scope` (`limit` per `window_ms`, window starting at the key's
/// first hit).
pub fn hit(
    store: &mut dyn SharedStore,
    hash_key: &HashKey,
    scope: &str,
    key: &str,
    limit: u64,
    window_ms: u64,
    now_ms: u64,
) -> Result<Hit, StoreError> {
    let key_bytes = stored_key(key);
    let key_bytes = key_bytes.as_ref();
    let tag = scope_tag(scope);
    let home = hash_key.slot(key_bytes);
    for _ in 0..RETRIES {
        // Find our live counter, else the best slot to take.
        let mut take: Option<(String, Option<u32>, u64)> = None; // (slot, cas, window end)
        let mut ours = None;
        for p in 0..PROBES {
            let name = slot_name(tag, home.wrapping_add(p) % SLOTS);
            match store.get(&name) {
                None => {
                    if take.as_ref().is_none_or(|(_, _, end)| *end > 0) {
                        take = Some((name, None, 0));
                    }
                }
                Some((value, cas)) => match decode(&value) {
                    Some(s) if s.key == key_bytes => {
                        ours = Some((name, cas, s));
                        break;
                    }
                    Some(s) => {
                        let end = s.start_ms.saturating_add(window_ms);
                        let end = if end <= now_ms { 0 } else { end };
                        if take.as_ref().is_none_or(|(_, _, e)| end < *e) {
                            take = Some((name, Some(cas), end));
                        }
                    }
                    None => {
                        if take.as_ref().is_none_or(|(_, _, end)| *end > 0) {
                            take = Some((name, Some(cas), 0));
                        }
                    }
                },
            }
        }
        let (name, cas, start, count) = match ours {
            Some((name, cas, s)) if now_ms < s.start_ms.saturating_add(window_ms) => {
                (name, Some(cas), s.start_ms, s.count.saturating_add(1))
            }
            Some((name, cas, _)) => (name, Some(cas), now_ms, 1),
            // Only a free slot (missing, expired, unreadable) is taken: never a live counter.
            None => match take {
                Some((name, cas, 0)) => (name, cas, now_ms, 1),
                _ => return Err(StoreError::Full),
            },
        };
        match store.set(
            &name,
            &encode(start, count, key_bytes),
            Some(cas.unwrap_or(CREATE_CAS)),
        ) {
            Ok(()) => {
                return Ok(Hit {
                    used: count,
                    limit,
                    reset_ms: start.saturating_add(window_ms).saturating_sub(now_ms),
                })
            }
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::CasMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn hk() -> HashKey {
        HashKey::fixed([7; 32])
    }

    /// A hit in scope "s" with the test key.
    fn h(
        s: &mut FakeStore,
        key: &str,
        limit: u64,
        window_ms: u64,
        now_ms: u64,
    ) -> Result<Hit, StoreError> {
        hit(s, &hk(), "s", key, limit, window_ms, now_ms)
    }

    fn home_slot(key: &str) -> String {
        slot_name(scope_tag("s"), hk().slot(key.as_bytes()) % SLOTS)
    }

    /// Envoy's shared data semantics: a missing key is created whatever the cas; an existing one
    /// is replaced only with cas 0 or its current cas.
    #[derive(Default)]
    pub struct FakeStore {
        map: HashMap<String, (Vec<u8>, u32)>,
        next: u32,
        /// Writes to make fail with CasMismatch before succeeding (simulated contention).
        pub conflicts: usize,
    }

    impl SharedStore for FakeStore {
        fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.map.get(key).cloned()
        }
        fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            if self.conflicts > 0 {
                self.conflicts -= 1;
                // another worker wrote meanwhile: bump the version
                if let Some(e) = self.map.get_mut(key) {
                    self.next += 1;
                    e.1 = self.next;
                }
                return Err(StoreError::CasMismatch);
            }
            let cas = cas.unwrap_or(0);
            if let Some((_, current)) = self.map.get(key) {
                if cas != 0 && cas != *current {
                    return Err(StoreError::CasMismatch);
                }
            }
            self.next += 1;
            self.map
                .insert(key.to_string(), (value.to_vec(), self.next));
            Ok(())
        }
    }

    #[test]
    fn fixed_window_from_the_first_hit() {
        let mut s = FakeStore::default();
        let hits: Vec<Hit> = (0..4)
            .map(|i| h(&mut s, "k", 3, 60_000, 1_000 + i).unwrap())
            .collect();
        assert_eq!(
            hits.iter().map(Hit::allowed).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(
            hits.iter().map(Hit::remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert_eq!(hits[0].reset_s(), 60);
        assert_eq!(hits[3].reset_ms, 60_000 - 3);
        // the window ends 60 s after the first hit, not on a clock boundary
        assert!(!h(&mut s, "k", 3, 60_000, 60_999).unwrap().allowed());
        let next = h(&mut s, "k", 3, 60_000, 61_000).unwrap();
        assert!(next.allowed());
        assert_eq!((next.used, next.reset_ms), (1, 60_000));
        // other keys are independent
        assert_eq!(h(&mut s, "other", 3, 60_000, 61_000).unwrap().used, 1);
    }

    #[test]
    fn contention_retries_and_loses_nothing() {
        let mut s = FakeStore::default();
        h(&mut s, "k", 10, 60_000, 0).unwrap();
        s.conflicts = 5;
        assert_eq!(h(&mut s, "k", 10, 60_000, 1).unwrap().used, 2);
        s.conflicts = RETRIES + 1;
        assert_eq!(h(&mut s, "k", 10, 60_000, 2), Err(StoreError::CasMismatch));
    }

    #[test]
    fn interleaved_workers_count_exactly() {
        // Two "workers" read the same version; the second write must fail and retry.
        let mut s = FakeStore::default();
        h(&mut s, "k", 100, 60_000, 0).unwrap();
        let name = home_slot("k");
        let (_, cas) = s.get(&name).unwrap();
        s.set(&name, &encode(0, 2, b"k"), Some(cas)).unwrap();
        assert_eq!(
            s.set(&name, &encode(0, 2, b"k"), Some(cas)),
            Err(StoreError::CasMismatch)
        );
        assert_eq!(h(&mut s, "k", 100, 60_000, 1).unwrap().used, 3);
    }

    /// Keys of `n` distinct counters that share one home slot under `key` (what an attacker
    /// could compute only by knowing the Envoy's hash key).
    fn colliding_keys(key: &HashKey, n: usize) -> Vec<String> {
        let home = key.slot(b"a") % SLOTS;
        let mut same = vec!["a".to_string()];
        let mut i = 0u64;
        while same.len() < n {
            let k = format!("k{i}");
            if key.slot(k.as_bytes()) % SLOTS == home {
                same.push(k);
            }
            i += 1;
        }
        same
    }

    #[test]
    fn slots_are_bounded_and_expired_ones_reused() {
        let mut s = FakeStore::default();
        for i in 0..3000 {
            h(&mut s, &format!("client-{i}"), 5, 1_000, 0).unwrap();
        }
        assert!(s.map.len() <= 3000);
        assert!(s.map.keys().all(|k| k.starts_with("envoy-secret-auth/lc/")));
        // a key whose slot holds an expired counter of another key takes that slot over
        let same = colliding_keys(&hk(), 2);
        let mut s = FakeStore::default();
        h(&mut s, &same[0], 5, 1_000, 0).unwrap();
        assert_eq!(s.map.len(), 1);
        assert_eq!(h(&mut s, &same[1], 5, 1_000, 2_000).unwrap().used, 1);
        assert_eq!(s.map.len(), 1, "the expired slot was reused");
    }

    #[test]
    fn a_live_counter_is_never_recycled() {
        // Even keys made to collide (with knowledge of the hash key) cannot take the slot of a
        // live counter: the extra key fails with Full, every live counter keeps its count.
        let mut s = FakeStore::default();
        let same = colliding_keys(&hk(), PROBES as usize + 1);
        for k in &same[..PROBES as usize] {
            assert_eq!(h(&mut s, k, 5, 60_000, 0).unwrap().used, 1);
            assert_eq!(h(&mut s, k, 5, 60_000, 1).unwrap().used, 2);
        }
        assert_eq!(
            h(&mut s, &same[PROBES as usize], 5, 60_000, 2),
            Err(StoreError::Full)
        );
        for k in &same[..PROBES as usize] {
            assert_eq!(h(&mut s, k, 5, 60_000, 3).unwrap().used, 3, "{k}");
        }
        // once their windows end, the slots are free again
        assert_eq!(
            h(&mut s, &same[PROBES as usize], 5, 60_000, 60_000)
                .unwrap()
                .used,
            1
        );
    }

    /// Issue #7, item 8: a client who picks the keys of one route (say, a header) cannot reset
    /// the counter of another route (a login limit), however many keys it sends, and keys that
    /// collide under another Envoy's hash key (or an unkeyed hash) collide nowhere here.
    #[test]
    fn crafted_keys_cannot_reset_another_routes_counter() {
        let mut s = FakeStore::default();
        let here = hk();
        let login = |s: &mut FakeStore, now| {
            hit(s, &here, "route:login", "10.0.0.1", 3, 60_000, now)
                .unwrap()
                .used
        };
        assert_eq!(login(&mut s, 0), 1);
        assert_eq!(login(&mut s, 1), 2);
        // 200,000 distinct attacker keys on another route
        for i in 0..200_000u64 {
            let _ = hit(
                &mut s,
                &here,
                "route:search",
                &format!("x{i}"),
                3,
                60_000,
                2,
            );
        }
        // keys made to collide with the login key under another hash key
        let other = HashKey::fixed([9; 32]);
        let home = other.slot(b"10.0.0.1") % SLOTS;
        let crafted: Vec<String> = (0u64..)
            .map(|i| format!("c{i}"))
            .filter(|k| other.slot(k.as_bytes()) % SLOTS == home)
            .take(PROBES as usize * 2)
            .collect();
        for k in &crafted {
            let _ = hit(&mut s, &here, "route:login", k, 3, 60_000, 3);
        }
        assert_eq!(login(&mut s, 4), 3, "the login counter kept its count");
        assert!(!hit(&mut s, &here, "route:login", "10.0.0.1", 3, 60_000, 5)
            .unwrap()
            .allowed());
    }

    #[test]
    fn long_keys_are_stored_as_their_digest() {
        let mut s = FakeStore::default();
        let long = "x".repeat(10_000);
        assert_eq!(h(&mut s, &long, 5, 60_000, 0).unwrap().used, 1);
        assert_eq!(h(&mut s, &long, 5, 60_000, 1).unwrap().used, 2);
        let other = format!("{long}y");
        assert_eq!(h(&mut s, &other, 5, 60_000, 1).unwrap().used, 1);
        assert!(s.map.values().all(|(v, _)| v.len() <= 16 + MAX_KEY_BYTES));
    }

    #[test]
    fn the_hash_key_is_chosen_once_per_envoy() {
        let mut s = FakeStore::default();
        let first = HashKey::shared(&mut s, [1; 32]).unwrap();
        let second = HashKey::shared(&mut s, [2; 32]).unwrap();
        assert_eq!(first.0, [1; 32]);
        assert_eq!(
            second.0, [1; 32],
            "later workers read the first worker's key"
        );
        assert_eq!(format!("{first:?}"), "HashKey([redacted])");
        // a damaged value is replaced
        let mut s = FakeStore::default();
        s.set(HASH_KEY_NAME, b"short", None).unwrap();
        assert_eq!(HashKey::shared(&mut s, [3; 32]).unwrap().0, [3; 32]);
    }

    #[test]
    fn garbage_in_a_slot_is_overwritten() {
        let mut s = FakeStore::default();
        let name = home_slot("k");
        s.set(&name, b"xx", None).unwrap();
        assert_eq!(h(&mut s, "k", 5, 1000, 0).unwrap().used, 1);
    }
}
