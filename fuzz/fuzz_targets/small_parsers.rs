//! The small parsers added for issues #9 and #10, on any bytes: no panic, no overflow (debug
//! assertions are on in fuzz builds), and what each accepts means what it says:
//! * `http::pairs::parse` (a header map as the host serializes it; its names and values are the
//!   client's): accepted pairs serialize back to the bytes they came from;
//! * `sidecar_api::time::parse_rfc3339_ms` (`expires_at`, Vault's times): a time it accepts is
//!   within years 1970-9999 (plus a day of offset), and the same with `Z`/`z`, `T`/`t` swapped;
//! * `auth::key::parse_sha256_hex` (`key_sha256`): a digest it accepts prints back as the input.
#![no_main]

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

fuzz_target!(|data: &[u8]| {
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
