//! The small parsers added for issues #9 and #10, on any bytes: no panic, no overflow (debug
//! assertions are on in fuzz builds), and what each accepts means what it says:
//! * `http::pairs::parse` (a header map as the host serializes it; its names and values are the
//!   client's): accepted pairs serialize back to the bytes they came from;
//! * `sidecar_api::time::parse_rfc3339_ms` (`expires_at`, Vault's times): a time it accepts is
//!   within years 1970-9999 (plus a day of offset), and the same with `Z`/`z`, `T`/`t` swapped;
//! * `auth::key::parse_sha256_hex` (`key_sha256`): a digest it accepts prints back as the input;
//! * `auth::jwt::claims` (a token's header and payload JSON, read in one pass): where a whole
//!   `serde_json::Value` reads an object, the same `alg`, key claim (integers only), `exp` and
//!   `nbf` (within 1e-14).
#![no_main]

use envoy_secret_auth_filter::auth::jwt::claims::{self, Time};
use envoy_secret_auth_filter::auth::key::parse_sha256_hex;
use envoy_secret_auth_filter::http::pairs;
use libfuzzer_sys::fuzz_target;
use sidecar_api::time::parse_rfc3339_ms;

fn serialize(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size = |n: usize| u32::try_from(n).unwrap().to_le_bytes();
    let mut out = size(pairs.len()).to_vec();
    for (k, v) in pairs {
        out.extend_from_slice(&size(k.len()));
        out.extend_from_slice(&size(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// The claims as the filter read them before: from a whole `serde_json::Value`.
fn claims_by_value(m: &serde_json::Map<String, serde_json::Value>, key: &str) -> claims::Claims {
    let time = |name: &str| match m.get(name) {
        None => Time::Absent,
        Some(v) => v.as_f64().map_or(Time::NotANumber, Time::Number),
    };
    claims::Claims {
        key: match m.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // Integers only: a fraction is no key.
            Some(serde_json::Value::Number(n)) if !n.is_f64() => Some(n.to_string()),
            _ => None,
        },
        exp: time("exp"),
        nbf: time("nbf"),
    }
}

/// The same time claim: numbers within 1e-14 relative (neither reader rounds every float exactly).
fn close(a: Time, b: Time) -> bool {
    match (a, b) {
        (Time::Number(x), Time::Number(y)) => x == y || (x - y).abs() <= 1e-14 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let alg = claims::header_alg(data);
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(data) {
        for key in ["key", "exp", "sub"] {
            let ours = claims::claims(data, key).expect("an object");
            let theirs = claims_by_value(&m, key);
            assert_eq!(ours.key, theirs.key, "{key}");
            assert!(close(ours.exp, theirs.exp) && close(ours.nbf, theirs.nbf), "{key}: {ours:?} / {theirs:?}");
        }
        let by_value = m.get("alg").and_then(|a| a.as_str()).map(str::to_string);
        assert_eq!(alg, by_value);
    }
    if let Some(p) = pairs::parse(data) {
        let again = serialize(&p);
        assert!(data.starts_with(&again), "pairs do not serialize back");
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ms) = parse_rfc3339_ms(s) {
        assert!(ms < (253_402_300_800 + 86_400) * 1000, "{s} -> {ms}");
        let swapped: String = s
            .chars()
            .map(|c| match c {
                'Z' => 'z',
                'z' => 'Z',
                'T' => 't',
                't' => 'T',
                c => c,
            })
            .collect();
        assert_eq!(parse_rfc3339_ms(&swapped), Some(ms), "{s}");
    }
    if let Some(d) = parse_sha256_hex(s) {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert!(hex.eq_ignore_ascii_case(s), "{s}");
    }
});
