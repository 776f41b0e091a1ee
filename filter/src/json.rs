//! JSON written by hand: the sidecar's request bodies (`/v1/resolve`, `/v1/limit`) and the local
//! replies' bodies. These are a few small shapes: without serde_json's serializer and `json!`'s
//! `Value` (and with `secret_ref::extract_key` reading from bytes) the `.wasm` went from 818 to
//! 798 KiB (issue #9), and a 401 no longer builds a map for its one-field body. Strings are
//! escaped exactly as serde_json escapes them (the tests compare byte for byte), so every body is
//! what serde_json wrote before.

use std::fmt::Write as _;

/// Appends `s` as a JSON string.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// Appends a JSON array of `items`, each written by `item`.
pub fn array<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut item: impl FnMut(&mut String, T),
) {
    out.push('[');
    for (i, t) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, t);
    }
    out.push(']');
}

/// `"` and `\` escaped, control characters as serde_json writes them (`\n`-style where JSON has
/// one, else `\u00XX` in lower case); everything else, UTF-8 included, as is.
fn escape_into(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Only ASCII bytes end a run: `i` and `i + 1` are character boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
}

/// A JSON object being written: fields in the order they are added, then [`Object::end`].
pub struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Object { out, empty: true }
    }

    /// Starts field `name` and returns the output for its value, which the caller writes.
    pub fn field(&mut self, name: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        string(self.out, name);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, name: &str, v: &str) -> &mut Self {
        string(self.field(name), v);
        self
    }

    pub fn int(&mut self, name: &str, v: i64) -> &mut Self {
        let _ = write!(self.field(name), "{v}");
        self
    }

    pub fn bool(&mut self, name: &str, v: bool) -> &mut Self {
        self.field(name).push_str(if v { "true" } else { "false" });
        self
    }

    /// Closes the object (once).
    pub fn end(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = String::new();
        string(&mut out, s);
        out
    }

    /// Every character class serde_json treats on its own, and random strings over them: the
    /// bytes are serde_json's.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = (0u32..0x80)
            .chain([
                0xa0, 0x7ff, 0x800, 0x2028, 0xfeff, 0xffff, 0x1_0000, 0x10_ffff,
            ])
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b"))
            .collect();
        cases.extend(
            [
                "",
                "\"",
                "\\",
                "\"\\\"",
                "é\u{1}ü\n",
                "$secret://aws/sm/a/k",
            ]
            .map(String::from),
        );
        let alphabet: Vec<char> = "a\"\\\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}é€😀 /"
            .chars()
            .collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 12) {
                s.push(alphabet[((seed >> (4 * k)) as usize) % alphabet.len()]);
            }
            cases.push(s);
        }
        for s in &cases {
            let want = serde_json::to_string(s).unwrap();
            assert_eq!(quoted(s), want, "{s:?}");
        }
    }

    #[test]
    fn objects_and_arrays_are_serde_json_s() {
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.str("message", "Invalid \"key\"")
            .int("n", -42)
            .bool("yes", true);
        array(o.field("list"), ["a", "b\n"], string);
        array(o.field("none"), Vec::<&str>::new(), string);
        Object::new(o.field("inner")).end();
        o.end();
        let want = serde_json::json!({
            "message": "Invalid \"key\"", "n": -42, "yes": true, "list": ["a", "b\n"],
            "none": [], "inner": {}
        });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            want
        );
        assert_eq!(
            out,
            r#"{"message":"Invalid \"key\"","n":-42,"yes":true,"list":["a","b\n"],"none":[],"inner":{}}"#
        );
        assert_eq!(
            {
                let mut e = String::new();
                Object::new(&mut e).end();
                e
            },
            "{}"
        );
    }
}
