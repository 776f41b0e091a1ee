//! Secret values: a redacting, constant-time-comparing string, and JSON key extraction.

use std::fmt;
use subtle::ConstantTimeEq;

/// A secret value. `Debug` and `Display` never show it; equality is constant time in the
/// content (the length may leak, as with any comparison).
#[derive(Clone, Default)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The value itself. Call only where the value is used (compared, hashed, sent to the filter).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with candidate bytes.
    pub fn ct_eq_bytes(&self, other: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(other).into()
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq_bytes(other.0.as_bytes())
    }
}

impl Eq for SecretValue {}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a key could not be taken from a secret's value. Messages never include the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    /// A key was asked for but the value is not a JSON object.
    NotJsonObject,
    /// The JSON object has no such field.
    KeyNotFound(String),
    /// The field exists but is not a string.
    NotAString(String),
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::NotJsonObject => write!(f, "the secret's value is not a JSON object"),
            ExtractError::KeyNotFound(k) => write!(f, "key \"{k}\" not found in the secret"),
            ExtractError::NotAString(k) => write!(f, "key \"{k}\" in the secret is not a string"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// The value a reference stands for: the whole `raw` value when `key` is `None`, else the string
/// field `key` of `raw` parsed as a JSON object. Numbers and booleans are refused, not guessed at.
pub fn extract_key(raw: &str, key: Option<&str>) -> Result<SecretValue, ExtractError> {
    let Some(key) = key else {
        return Ok(SecretValue::new(raw));
    };
    // Read with json-read (the filter carries no serde_json, issue #9): of a key given twice the
    // last value counts, as in a `serde_json::Value`; the other fields are checked as JSON but not
    // decoded.
    let found = field(raw.as_bytes(), key).map_err(|_| ExtractError::NotJsonObject)?;
    match found {
        None => Err(ExtractError::KeyNotFound(key.to_string())),
        Some(Some(s)) => Ok(SecretValue::new(s)),
        Some(None) => Err(ExtractError::NotAString(key.to_string())),
    }
}

/// The field `key` of the JSON object `json`: `Some(Some(string))`, `Some(None)` if it is not a
/// string, `None` if absent.
fn field(json: &[u8], key: &str) -> Result<Option<Option<String>>, json_read::Error> {
    let mut r = json_read::Reader::from_slice(json);
    let mut found = None;
    r.begin_object("an object")?;
    while let Some(name) = r.next_key()? {
        if name != key {
            r.skip()?;
        } else if r.peek_kind()? == json_read::Kind::String {
            found = Some(Some(r.string()?));
        } else {
            r.skip()?;
            found = Some(None);
        }
    }
    r.end()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let v = SecretValue::new("hunter2");
        assert!(!format!("{v:?}").contains("hunter2"));
        assert!(!format!("{v}").contains("hunter2"));
        assert_eq!(v.expose(), "hunter2");
    }

    #[test]
    fn equality() {
        assert_eq!(SecretValue::new("a"), SecretValue::new("a"));
        assert_ne!(SecretValue::new("a"), SecretValue::new("b"));
        assert_ne!(SecretValue::new("a"), SecretValue::new("ab"));
        assert!(SecretValue::new("abc").ct_eq_bytes(b"abc"));
        assert!(!SecretValue::new("abc").ct_eq_bytes(b"abd"));
    }

    #[test]
    fn extraction() {
        let raw = r#"{"alice-key-auth":"alice-key","n":3}"#;
        assert_eq!(
            extract_key(raw, Some("alice-key-auth")).unwrap().expose(),
            "alice-key"
        );
        assert_eq!(extract_key(raw, None).unwrap().expose(), raw);
        assert_eq!(
            extract_key(raw, Some("missing")),
            Err(ExtractError::KeyNotFound("missing".into()))
        );
        assert_eq!(
            extract_key(raw, Some("n")),
            Err(ExtractError::NotAString("n".into()))
        );
        assert_eq!(
            extract_key("plain", Some("k")),
            Err(ExtractError::NotJsonObject)
        );
        assert_eq!(
            extract_key("[1]", Some("k")),
            Err(ExtractError::NotJsonObject)
        );
        // errors never carry the value
        let e = extract_key(r#"{"k":1,"secretvalue":"s3cr3t"}"#, Some("k")).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"));
    }
}
