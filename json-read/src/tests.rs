use super::*;
use crate::oracle::{same, to_serde_value};
use serde_json::Value;
use std::io;

/// A stream that gives `step` bytes per read: values split across every possible boundary.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(out.len()).min(self.bytes.len());
        let (now, later) = self.bytes.split_at(n);
        out[..n].copy_from_slice(now);
        self.bytes = later;
        Ok(n)
    }
}

/// Ours, from a slice and from streams of 1, 2, 3 and 7 bytes per read: all the same answer.
fn ours(bytes: &[u8]) -> Result<Value, Error> {
    let slice = to_serde_value(&mut Reader::from_slice(bytes));
    for step in [1, 2, 3, 7] {
        let mut t = Trickle { bytes, step };
        let streamed = to_serde_value(&mut Reader::from_read(&mut t));
        match (&slice, &streamed) {
            (Ok(a), Ok(b)) => assert!(same(a, b), "{bytes:?} step {step}: {a} vs {b}"),
            (Err(a), Err(b)) => assert_eq!(
                (a.category(), a.message()),
                (b.category(), b.message()),
                "{:?} step {step}",
                String::from_utf8_lossy(bytes)
            ),
            _ => panic!("{bytes:?} step {step}: {slice:?} vs {streamed:?}"),
        }
    }
    slice
}

fn agree(bytes: &[u8]) {
    let theirs = serde_json::from_slice::<Value>(bytes);
    match (ours(bytes), theirs) {
        (Ok(a), Ok(b)) => assert!(
            same(&a, &b),
            "{:?}: {a} vs {b}",
            String::from_utf8_lossy(bytes)
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "{:?}: ours {a:?}, serde_json {b:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

const DOCUMENTS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "-1",
    "12345678901234567890",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1.5",
    "-1.5e3",
    "1E2",
    "1e-2",
    "0.1",
    "1e308",
    "1.7976931348623157e308",
    "1e309",
    "-1e309",
    "1e-400",
    "123456789012345678901234567890e-10",
    "0.000000000000000000000000000001234",
    "2.5e-310",
    "01",
    "-",
    "1.",
    ".5",
    "1e",
    "1e+",
    "+1",
    "0x10",
    "1.e3",
    "-01",
    "--1",
    "1ee2",
    r#""""#,
    r#""a""#,
    r#""\u00e9\n\t\"\\\/\b\f\r""#,
    r#""\ud83d\ude00""#,
    r#""\ud83d""#,
    r#""\ude00""#,
    r#""\ud83dx""#,
    r#""\ud83d\n""#,
    r#""\ud83d\u0041""#,
    r#""\u12""#,
    r#""\x""#,
    "\"a\u{1}b\"",
    "\"tab\tinside\"",
    "\"é\"",
    "\"\u{10FFFF}\"",
    r#""unterminated"#,
    "[]",
    "[1,2,3]",
    "[1,]",
    "[,1]",
    "[1 2]",
    "[",
    "]",
    "[[[]]]",
    "{}",
    r#"{"a":1}"#,
    r#"{"a":1,}"#,
    r#"{"a" 1}"#,
    r#"{1:2}"#,
    r#"{"a":1 "b":2}"#,
    r#"{"a":1,"a":2}"#,
    r#"{"a":{"b":[1,{"c":null}]},"d":"e"}"#,
    "{",
    r#"{"a""#,
    r#"{"a":"#,
    " \n\t\r 1 \n ",
    "1 2",
    "nul",
    "nulll",
    "tru",
    "truex",
    "fals",
    "",
    "   ",
    "{}x",
    "[]]",
    "\"a\"\"b\"",
    "[1,2,]",
    "[\"a\",]",
    "{\"a\":[],\"b\":{}}",
    "[1.0, -0.0, 1e0, 100e-2]",
    // Exponents far out, both ways (a client's token can send them).
    "1e-999999",
    "1e999999",
    "-1e-400",
    "9999999999999999999e-419",
    "1e-324",
    "5e-324",
    "2.2250738585072014e-308",
    "1.7976931348623157e308",
    "0.00000000000000000000001e330",
    "123456789012345678901234567890e280",
    "1e-343",
    "10000000000000000000e-362",
];

#[test]
fn reads_what_serde_json_reads() {
    for doc in DOCUMENTS {
        agree(doc.as_bytes());
    }
    for bytes in [
        &b"\"\xff\""[..],
        b"\"\xc3\"",
        b"\"\xed\xa0\x80\"",
        b"[\"\xe2\x82\xac\"]",
        b"\xef\xbb\xbf1",
    ] {
        agree(bytes);
    }
}

#[test]
fn nesting_stops_where_serde_json_stops() {
    for depth in [126, 127, 128, 129] {
        let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        agree(doc.as_bytes());
        let doc = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        agree(doc.as_bytes());
    }
}

/// Random documents over JSON's own bytes: mostly wrong, sometimes right, never a panic, always
/// serde_json's answer.
#[test]
fn random_documents_agree() {
    let alphabet: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b"u",
        b"d83d",
        b"0",
        b"1",
        b"9",
        b"-",
        b".",
        b"e",
        b"+",
        b"null",
        b"true",
        b"false",
        b" ",
        b"\n",
        b"\"k\"",
        b"\"v\"",
        b"\xc3\xa9",
        b"\xff",
        b"\x01",
        b"1e400",
        b"n",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let mut doc = Vec::new();
        for _ in 0..len {
            doc.extend_from_slice(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        agree(&doc);
    }
}

#[test]
fn errors_have_a_position_and_never_quote_the_input() {
    let e = to_serde_value(&mut Reader::from_slice(b"{\"a\":\n  [1, s3cr3t]}")).unwrap_err();
    assert_eq!(e.category(), Category::Syntax);
    assert_eq!((e.line(), e.column()), (2, 6));
    assert_eq!(e.to_string(), "expected value at line 2 column 6");
    let e = to_serde_value(&mut Reader::from_slice(b"[\"s3cr3t")).unwrap_err();
    assert_eq!(e.category(), Category::Eof);
    assert!(!e.to_string().contains("s3cr3t"));
}

#[test]
fn type_errors_name_the_kind_not_the_value() {
    let mut r = Reader::from_slice(b"\"s3cr3t\"");
    assert_eq!(
        r.unsigned(u64::MAX, "u64").unwrap_err().message(),
        "invalid type: string, expected u64"
    );
    let mut r = Reader::from_slice(b"70000");
    assert_eq!(
        r.unsigned(u64::from(u16::MAX), "u16")
            .unwrap_err()
            .message(),
        "invalid value: integer, expected u16"
    );
    let mut r = Reader::from_slice(b"-1");
    assert_eq!(
        r.unsigned(u64::MAX, "u64").unwrap_err().message(),
        "invalid value: integer, expected u64"
    );
    for doc in ["1.5", "-0", "1e2"] {
        let mut r = Reader::from_slice(doc.as_bytes());
        assert_eq!(
            r.unsigned(u64::MAX, "u64").unwrap_err().message(),
            "invalid type: floating point, expected u64"
        );
    }
    let mut r = Reader::from_slice(b"987654321");
    assert_eq!(
        r.str().unwrap_err().message(),
        "invalid type: integer, expected a string"
    );
    let mut r = Reader::from_slice(b"[1]");
    assert_eq!(
        r.begin_object("a credential").unwrap_err().message(),
        "invalid type: sequence, expected a credential"
    );
    for (doc, kind) in [
        ("null", "null"),
        ("true", "boolean"),
        ("{}", "map"),
        ("-2", "integer"),
    ] {
        let mut r = Reader::from_slice(doc.as_bytes());
        assert_eq!(
            r.str().unwrap_err().message(),
            format!("invalid type: {kind}, expected a string")
        );
    }
}

#[test]
fn skip_checks_what_serde_json_checks_when_it_ignores() {
    #[derive(serde::Deserialize)]
    struct Nothing {}
    // serde_json ignores unknown fields: the same bytes must pass and fail with skip.
    let docs: &[&[u8]] = &[
        br#"{"x": "\ud83d"}"#,
        b"{\"x\": \"\xff\"}",
        br#"{"x": 1e400}"#,
        br#"{"x": [1, {"y": [true, null, "z"]}, []], "w": {}}"#,
        br#"{"x": "\q"}"#,
        br#"{"x": [1,]}"#,
        br#"{"x": {"a" 1}}"#,
        br#"{"x": 01}"#,
        b"{\"x\": \"a\x01\"}",
        br#"{"x": [}"#,
        br#"{"x": {"a":1,}}"#,
    ];
    let deep = format!("{{\"x\": {}{}}}", "[".repeat(500), "]".repeat(500));
    for doc in docs.iter().copied().chain([deep.as_bytes()]) {
        let theirs = serde_json::from_slice::<Nothing>(doc).is_ok();
        let mut r = Reader::from_slice(doc);
        let mine = (|| {
            r.begin_object("")?;
            while r.next_key()?.is_some() {
                r.skip()?;
            }
            r.end()
        })()
        .is_ok();
        assert_eq!(mine, theirs, "{}", String::from_utf8_lossy(doc));
    }
}

#[test]
fn a_stream_error_is_an_io_error() {
    struct Broken;
    impl io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("reset"))
        }
    }
    let mut b = Broken;
    let e = Reader::from_read(&mut b).peek_kind().unwrap_err();
    assert_eq!(e.category(), Category::Io);
}

#[test]
fn numbers() {
    let n = |s: &str| Reader::from_slice(s.as_bytes()).number().unwrap();
    assert_eq!(n("1764777600").as_u64(), Some(1_764_777_600));
    assert_eq!(n("1764777600").as_f64(), 1_764_777_600.0);
    assert_eq!(n("0.1").as_f64(), 0.1);
    assert_eq!(n("-2").integer_text().as_deref(), Some("-2"));
    assert_eq!(n("2.0").integer_text(), None);
    assert_eq!(
        n("-9223372036854775808").integer_text().as_deref(),
        Some("-9223372036854775808")
    );
    assert_eq!(n("-9223372036854775809").integer_text(), None);
}
