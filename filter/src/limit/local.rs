//! The `local` policy: fixed-window counters shared by all of one Envoy's workers through
//! proxy-wasm shared data, updated with compare-and-swap so concurrent workers never lose a hit.
//!
//! Shared data has no delete in Envoy (a key, once written, stays), so counters live in a fixed
//! set of slots: `SLOTS` keys, each holding one counter (its key, window start and count). A
//! counter key hashes to a slot and may use the next `PROBES - 1` slots; a slot whose window has
//! ended is free. Memory is therefore bounded, and expired counters' space is reused. If all of a
//! key's slots hold live counters of other keys, the one whose window ends first is recycled
//! (that key's count restarts: documented as under-counting, only with more live keys than slots).

use std::fmt;

pub const SLOTS: u64 = 1 << 16;
pub const PROBES: u64 = 4;
const RETRIES: usize = 64;
/// `cas` given when creating a slot: Envoy creates a missing key whatever the cas, but refuses
/// it on an existing one (unless it happens to equal this rare value), so two workers racing to
/// create the same slot cannot overwrite each other. `0` would mean "no check".
const CREATE_CAS: u32 = 0x9e37_79b9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    CasMismatch,
    /// The host refused the operation.
    Failed,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::CasMismatch => write!(f, "too much contention on a shared counter"),
            StoreError::Failed => write!(f, "the proxy's shared data refused the update"),
        }
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

/// FNV-1a: stable across workers and restarts (the slot must be the same in every worker).
fn hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn slot_name(i: u64) -> String {
    format!("envoy-secret-auth/lc/{i:05}")
}

/// Counts one hit of `key` (`limit` per `window_ms`, window starting at the key's first hit).
pub fn hit(
    store: &mut dyn SharedStore,
    key: &str,
    limit: u64,
    window_ms: u64,
    now_ms: u64,
) -> Result<Hit, StoreError> {
    let key_bytes = key.as_bytes();
    let home = hash(key_bytes);
    for _ in 0..RETRIES {
        // Find our live counter, else the best slot to take.
        let mut take: Option<(String, Option<u32>, u64)> = None; // (slot, cas, window end)
        let mut ours = None;
        for p in 0..PROBES {
            let name = slot_name((home.wrapping_add(p)) % SLOTS);
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
            None => match take {
                Some((name, cas, _)) => (name, cas, now_ms, 1),
                None => return Err(StoreError::Failed),
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
            .map(|i| hit(&mut s, "k", 3, 60_000, 1_000 + i).unwrap())
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
        assert!(!hit(&mut s, "k", 3, 60_000, 60_999).unwrap().allowed());
        let next = hit(&mut s, "k", 3, 60_000, 61_000).unwrap();
        assert!(next.allowed());
        assert_eq!((next.used, next.reset_ms), (1, 60_000));
        // other keys are independent
        assert_eq!(hit(&mut s, "other", 3, 60_000, 61_000).unwrap().used, 1);
    }

    #[test]
    fn contention_retries_and_loses_nothing() {
        let mut s = FakeStore::default();
        hit(&mut s, "k", 10, 60_000, 0).unwrap();
        s.conflicts = 5;
        assert_eq!(hit(&mut s, "k", 10, 60_000, 1).unwrap().used, 2);
        s.conflicts = RETRIES + 1;
        assert_eq!(
            hit(&mut s, "k", 10, 60_000, 2),
            Err(StoreError::CasMismatch)
        );
    }

    #[test]
    fn interleaved_workers_count_exactly() {
        // Two "workers" read the same version; the second write must fail and retry.
        let mut s = FakeStore::default();
        hit(&mut s, "k", 100, 60_000, 0).unwrap();
        let name = slot_name(hash(b"k") % SLOTS);
        let (_, cas) = s.get(&name).unwrap();
        s.set(&name, &encode(0, 2, b"k"), Some(cas)).unwrap();
        assert_eq!(
            s.set(&name, &encode(0, 2, b"k"), Some(cas)),
            Err(StoreError::CasMismatch)
        );
        assert_eq!(hit(&mut s, "k", 100, 60_000, 1).unwrap().used, 3);
    }

    /// Keys of `PROBES + 1` distinct counters that share one home slot.
    fn colliding_keys() -> Vec<String> {
        let home = hash(b"a") % SLOTS;
        let mut same = vec!["a".to_string()];
        let mut i = 0u64;
        while same.len() < (PROBES + 1) as usize {
            let k = format!("k{i}");
            if hash(k.as_bytes()) % SLOTS == home {
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
            hit(&mut s, &format!("client-{i}"), 5, 1_000, 0).unwrap();
        }
        assert!(s.map.len() <= 3000);
        assert!(s.map.keys().all(|k| k.starts_with("envoy-secret-auth/lc/")));
        // a key whose slot holds an expired counter of another key takes that slot over
        let same = colliding_keys();
        let mut s = FakeStore::default();
        hit(&mut s, &same[0], 5, 1_000, 0).unwrap();
        assert_eq!(s.map.len(), 1);
        assert_eq!(hit(&mut s, &same[1], 5, 1_000, 2_000).unwrap().used, 1);
        assert_eq!(s.map.len(), 1, "the expired slot was reused");
    }

    #[test]
    fn colliding_keys_share_probe_slots() {
        // Force every key into one probe group by using a tiny window on a fresh store and keys
        // that hash to the same home slot.
        let mut s = FakeStore::default();
        let same = colliding_keys();
        for k in &same[..PROBES as usize] {
            assert_eq!(hit(&mut s, k, 5, 60_000, 0).unwrap().used, 1);
            assert_eq!(hit(&mut s, k, 5, 60_000, 1).unwrap().used, 2);
        }
        // a fifth live key recycles the slot whose window ends first; the others keep counting
        assert_eq!(
            hit(&mut s, &same[PROBES as usize], 5, 60_000, 2)
                .unwrap()
                .used,
            1
        );
        let survivors = same[1..PROBES as usize]
            .iter()
            .filter(|k| hit(&mut s, k, 5, 60_000, 3).unwrap().used == 3)
            .count();
        assert!(survivors >= (PROBES - 2) as usize);
    }

    #[test]
    fn garbage_in_a_slot_is_overwritten() {
        let mut s = FakeStore::default();
        let name = slot_name(hash(b"k") % SLOTS);
        s.set(&name, b"xx", None).unwrap();
        assert_eq!(hit(&mut s, "k", 5, 1000, 0).unwrap().used, 1);
    }
}
