//! Checks shared by the fields of several sections.

use super::*;

pub(super) fn non_empty_field(path: &str, value: String) -> Result<String, ConfigError> {
    if value.is_empty() {
        Err(ConfigError::new(path, ConfigErrorKind::Empty))
    } else {
        Ok(value)
    }
}

/// A valid header name, lowercased.
pub(super) fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    if is_header_name(&lower) {
        Ok(lower)
    } else {
        Err(ConfigError::new(
            path,
            ConfigErrorKind::InvalidHeaderName(name.to_string()),
        ))
    }
}

/// RFC 9110 token characters, not starting with ':' (pseudo-headers are not credentials).
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
