//! `json-read` (the filter's JSON reader) against serde_json on any bytes:
//! * read whole as a value, it accepts exactly what `serde_json::from_slice::<Value>` accepts, and
//!   reads the same value (floats within 1e-14 relative; at the very top of the `f64` range the
//!   two may round to either side of infinity);
//! * read from a stream in pieces of any size, it gives the same answer as from the slice;
//! * `skip` accepts exactly what serde_json accepts when it ignores a value.
//!
//! Input: byte 0 is the size of the stream's pieces, the rest the document.
#![no_main]

use envoy_secret_auth_fuzz::Pieces;
use json_read::oracle::{same, to_serde_value};
use json_read::Reader;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A float at the edge of the range, where a last-place difference decides overflow.
fn huge(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f.abs() > 1.79e308),
        Value::Array(a) => a.iter().any(huge),
        Value::Object(m) => m.values().any(huge),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let [piece, doc @ ..] = data else {
        return;
    };
    let ours = to_serde_value(&mut Reader::from_slice(doc));
    let mut pieces = Pieces {
        data: doc,
        piece: usize::from(*piece).max(1),
    };
    let streamed = to_serde_value(&mut Reader::from_read(&mut pieces));
    match (&ours, &streamed) {
        (Ok(a), Ok(b)) => assert!(same(a, b), "slice {a} / stream {b}"),
        (Err(a), Err(b)) => assert_eq!(a.message(), b.message()),
        _ => panic!("slice {ours:?} / stream {streamed:?}"),
    }
    match (&ours, serde_json::from_slice::<Value>(doc)) {
        (Ok(a), Ok(b)) => assert!(same(a, &b), "ours {a} / serde_json {b}"),
        (Err(_), Err(_)) => {}
        (Err(e), Ok(b)) if e.message() == "number out of range" && huge(&b) => {}
        (Ok(a), Err(e)) if huge(a) && e.to_string().starts_with("number out of range") => {}
        (a, b) => panic!("ours {a:?} / serde_json {b:?}"),
    }
    let mut r = Reader::from_slice(doc);
    let skipped = r.skip().and_then(|()| r.end()).is_ok();
    let ignored = serde_json::from_slice::<serde::de::IgnoredAny>(doc).is_ok();
    assert_eq!(skipped, ignored, "skip");
});
