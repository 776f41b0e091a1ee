//! The `$secret://` / `$env://` grammar on any string: parse, the candidate splits, and that a
//! parsed reference prints back to a string that parses to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_ref::{parse, Reference};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let looks = secret_ref::is_reference(s);
    match parse(s) {
        Ok(None) => assert!(
            !looks,
            "{s:?} looks like a reference but parsed as a literal"
        ),
        Err(e) => {
            assert!(looks, "{s:?} is not a reference but failed to parse");
            let _ = e.to_string();
        }
        Ok(Some(r)) => {
            assert!(looks);
            let printed = r.to_string();
            assert_eq!(parse(&printed), Ok(Some(r.clone())), "{s:?} -> {printed:?}");
            if let Reference::Secret(secret) = &r {
                let candidates = secret.candidates();
                assert_eq!(candidates.len(), secret.path.len());
                for (name, key) in &candidates {
                    assert!(!name.is_empty());
                    let joined = match key {
                        Some(k) => format!("{name}/{k}"),
                        None => name.clone(),
                    };
                    assert_eq!(joined, secret.path.join("/"));
                }
            }
        }
    }
});
