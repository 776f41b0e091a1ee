//! What jwt-auth reads from a token's JSON, taken in one pass without building a tree (issue #9:
//! a `serde_json::Value` per token allocated a map and a string per field, on every request):
//! the header's `alg`, and the payload's key claim, `exp` and `nbf`, read with `json-read`. The
//! answers are those of reading a `serde_json::Value`: the header and the payload must be JSON
//! objects; of a name given twice the last value counts; a key claim is a string, or an integer
//! as its decimal text (a key claim that is a fraction, `1.5`, is no key: a consumer's key is a
//! string, and there is no one way to write a float). One difference: a field jwt-auth does not
//! read is skipped without decoding its `\u` escapes, so a lone surrogate there does not make the
//! token malformed (its signature is checked all the same).

use json_read::{Kind, Number, Reader};

/// A time claim (`exp`, `nbf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Time {
    Absent,
    Number(f64),
    /// Present, but not a number: never valid.
    NotANumber,
}

/// The payload's claims jwt-auth checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The key claim, if it is a string or an integer.
    pub key: Option<String>,
    pub exp: Time,
    pub nbf: Time,
}

/// The header's `alg`; `None` if the header is not a JSON object with a string `alg`.
pub fn header_alg(json: &[u8]) -> Option<String> {
    let fields = read(json, &["alg"])?;
    match fields.into_iter().next()? {
        Some(Scalar::Str(alg)) => Some(alg),
        _ => None,
    }
}

/// The payload's claims, with the key claim named `key_claim`; `None` if the payload is not a
/// JSON object.
pub fn claims(json: &[u8], key_claim: &str) -> Option<Claims> {
    let [key, exp, nbf]: [Option<Scalar>; 3] =
        read(json, &[key_claim, "exp", "nbf"])?.try_into().ok()?;
    let time = |v: Option<Scalar>| match v {
        None => Time::Absent,
        Some(Scalar::Num(n)) => Time::Number(n.as_f64()),
        Some(_) => Time::NotANumber,
    };
    Some(Claims {
        key: match key {
            Some(Scalar::Str(s)) => Some(s),
            Some(Scalar::Num(n)) => n.integer_text(),
            _ => None,
        },
        exp: time(exp),
        nbf: time(nbf),
    })
}

/// The values of the named fields of a JSON object (`None` per field absent), or `None` if
/// `json` is not one object.
fn read(json: &[u8], names: &[&str]) -> Option<Vec<Option<Scalar>>> {
    let mut r = Reader::from_slice(json);
    let mut values: Vec<Option<Scalar>> = vec![None; names.len()];
    r.begin_object("").ok()?;
    loop {
        // A name may be asked for twice (a key claim named "exp"): bit i is names[i].
        let wanted = match r.next_key().ok()? {
            None => break,
            Some(name) => names
                .iter()
                .take(32)
                .enumerate()
                .filter(|(_, n)| **n == name)
                .fold(0u32, |bits, (i, _)| bits | (1 << i)),
        };
        if wanted == 0 {
            r.skip().ok()?;
            continue;
        }
        let value = scalar(&mut r).ok()?;
        for (i, slot) in values.iter_mut().enumerate() {
            if wanted & (1 << i) != 0 {
                *slot = Some(value.clone());
            }
        }
    }
    r.end().ok()?;
    Some(values)
}

/// A field's value, as far as jwt-auth cares.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Str(String),
    Num(Number),
    /// Anything else (skipped to its end).
    Other,
}

fn scalar(r: &mut Reader<'_>) -> Result<Scalar, json_read::Error> {
    Ok(match r.peek_kind()? {
        Kind::String => Scalar::Str(r.string()?),
        Kind::Number => Scalar::Num(r.number()?),
        _ => {
            r.skip()?;
            Scalar::Other
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What the filter read before: a whole `serde_json::Value`.
    fn by_value(json: &[u8], key_claim: &str) -> Option<Claims> {
        let Value::Object(m) = serde_json::from_slice(json).ok()? else {
            return None;
        };
        let time = |name: &str| match m.get(name) {
            None => Time::Absent,
            Some(v) => v.as_f64().map_or(Time::NotANumber, Time::Number),
        };
        Some(Claims {
            key: match m.get(key_claim) {
                Some(Value::String(s)) => Some(s.clone()),
                // Integers only (see the module's documentation).
                Some(Value::Number(n)) if !n.is_f64() => Some(n.to_string()),
                _ => None,
            },
            exp: time("exp"),
            nbf: time("nbf"),
        })
    }

    #[test]
    fn same_answers_as_a_whole_value() {
        let payloads: &[&str] = &[
            r#"{"key":"alice","exp":4102444800}"#,
            r#"{"key":"al\u0069ce","exp":1.5e9,"nbf":-3}"#,
            r#"{"key":12,"exp":"soon"}"#,
            r#"{"key":1.25,"nbf":null}"#,
            r#"{"key":["a"],"exp":{"x":[1,{"y":2}]}}"#,
            r#"{"key":"first","key":"last","exp":1,"exp":2}"#,
            r#"{"exp":18446744073709551615,"nbf":-9223372036854775808}"#,
            r#"{"key":true}"#,
            r#"{}"#,
            r#"  {"key":"alice"}  "#,
            r#"{"key":"alice"} x"#,
            r#"{"key":"alice""#,
            r#"{"exp":1e400}"#,
            r#"["key","alice"]"#,
            r#""alice""#,
            r#"12"#,
            r#"{"key":"a\ud800"}"#,
            "",
        ];
        for p in payloads {
            for claim in ["key", "exp", "sub"] {
                if p.contains("\\ud800") && claim != "key" {
                    // Skipped, not decoded: see the module's documentation.
                    assert_eq!(claims(p.as_bytes(), claim).unwrap().key, None);
                    continue;
                }
                assert_eq!(
                    claims(p.as_bytes(), claim),
                    by_value(p.as_bytes(), claim),
                    "{p} with key claim {claim}"
                );
            }
        }
    }

    #[test]
    fn a_key_claim_named_like_a_time_claim_is_both() {
        let c = claims(br#"{"exp":4102444800}"#, "exp").unwrap();
        assert_eq!(c.key.as_deref(), Some("4102444800"));
        assert_eq!(c.exp, Time::Number(4102444800.0));
    }

    #[test]
    fn header_alg_is_a_string_field_of_an_object() {
        assert_eq!(
            header_alg(br#"{"typ":"JWT","alg":"RS256"}"#).as_deref(),
            Some("RS256")
        );
        assert_eq!(
            header_alg(br#"{"alg":"none","alg":"HS256"}"#).as_deref(),
            Some("HS256")
        );
        for bad in [
            &br#"{"alg":1}"#[..],
            br#"{"typ":"JWT"}"#,
            br#"["alg"]"#,
            br#"{"alg":"HS256"} {}"#,
            b"\xff",
        ] {
            assert_eq!(header_alg(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
