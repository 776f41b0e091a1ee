//! The query-string helpers on any path bytes and argument name: no panic; after `remove_arg`,
//! `find_arg` finds nothing; the path before `?` is kept.
#![no_main]

use envoy_secret_auth_filter::http::query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First line: the argument name; the rest: the path.
    let (name, path) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"apikey"[..], data),
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let found = query::find_arg(path, name);
    let removed = query::remove_arg(path, name);
    assert_eq!(query::find_arg(&removed, name), None, "{path:?} {name:?}");
    let base = |p: &[u8]| p.split(|b| *b == b'?').next().unwrap_or_default().to_vec();
    assert_eq!(base(&removed), base(path));
    if found.is_none() && !path.contains(&b'?') {
        assert_eq!(removed, path);
    }
    let _ = query::percent_decode(path);
});
