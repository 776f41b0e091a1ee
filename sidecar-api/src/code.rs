//! The error codes of both endpoints.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An error code as it appears on the wire (`"code": "secret_not_found"`): every code the sidecar
/// emits for a reference (`/v1/resolve`, docs/DESIGN.md §2) or a `/v1/limit` call (§4).
///
/// A code this version does not know (a newer sidecar) reads as [`ErrorCode::Unknown`], which is
/// definitive: the reference fails closed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    // /v1/resolve, definitive
    /// The reference does not parse, or is a near miss (`$env://`, wrong scheme...).
    InvalidReference,
    /// No candidate secret name exists (with `did_you_mean`).
    SecretNotFound,
    UnknownProvider,
    UnsupportedManager,
    KeyNotFound,
    NotJsonObject,
    NotAString,
    /// The resolved value is `""`.
    EmptyValue,
    /// A different secret name now answers the reference.
    AmbiguousSecretName,
    SecretDeleted,
    DecryptionFailed,
    ProviderRejected,
    /// The provider keeps failing and the last good value is too old to serve.
    StaleExpired,
    // /v1/resolve, transient
    /// Connection refused, DNS, timeout.
    ProviderUnreachable,
    /// Throttling, 5xx, unknown provider errors.
    ProviderError,
    /// The sidecar's own provider credentials or permissions are refused.
    AccessDenied,
    // /v1/limit
    /// The backend is not listed in the sidecar's `[limit]` config (`403`).
    BackendNotAllowed,
    RedisUnavailable,
    RedisAuthFailed,
    RedisError,
    /// A `$secret://` Redis credential did not resolve.
    SecretUnresolved,
    /// A code this version does not know; definitive.
    Unknown(String),
}

impl ErrorCode {
    /// Every code this version knows, each once.
    pub const KNOWN: [ErrorCode; 21] = [
        ErrorCode::InvalidReference,
        ErrorCode::SecretNotFound,
        ErrorCode::UnknownProvider,
        ErrorCode::UnsupportedManager,
        ErrorCode::KeyNotFound,
        ErrorCode::NotJsonObject,
        ErrorCode::NotAString,
        ErrorCode::EmptyValue,
        ErrorCode::AmbiguousSecretName,
        ErrorCode::SecretDeleted,
        ErrorCode::DecryptionFailed,
        ErrorCode::ProviderRejected,
        ErrorCode::StaleExpired,
        ErrorCode::ProviderUnreachable,
        ErrorCode::ProviderError,
        ErrorCode::AccessDenied,
        ErrorCode::BackendNotAllowed,
        ErrorCode::RedisUnavailable,
        ErrorCode::RedisAuthFailed,
        ErrorCode::RedisError,
        ErrorCode::SecretUnresolved,
    ];

    /// The code on the wire, snake_case.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidReference => "invalid_reference",
            ErrorCode::SecretNotFound => "secret_not_found",
            ErrorCode::UnknownProvider => "unknown_provider",
            ErrorCode::UnsupportedManager => "unsupported_manager",
            ErrorCode::KeyNotFound => "key_not_found",
            ErrorCode::NotJsonObject => "not_json_object",
            ErrorCode::NotAString => "not_a_string",
            ErrorCode::EmptyValue => "empty_value",
            ErrorCode::AmbiguousSecretName => "ambiguous_secret_name",
            ErrorCode::SecretDeleted => "secret_deleted",
            ErrorCode::DecryptionFailed => "decryption_failed",
            ErrorCode::ProviderRejected => "provider_rejected",
            ErrorCode::StaleExpired => "stale_expired",
            ErrorCode::ProviderUnreachable => "provider_unreachable",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::BackendNotAllowed => "backend_not_allowed",
            ErrorCode::RedisUnavailable => "redis_unavailable",
            ErrorCode::RedisAuthFailed => "redis_auth_failed",
            ErrorCode::RedisError => "redis_error",
            ErrorCode::SecretUnresolved => "secret_unresolved",
            ErrorCode::Unknown(code) => code,
        }
    }

    /// The code for a wire string; [`ErrorCode::Unknown`] for one this version does not know.
    pub fn parse(code: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|known| known.as_str() == code)
            .unwrap_or_else(|| ErrorCode::Unknown(code.to_string()))
    }

    /// Whether the provider could not answer and nothing about the secret is known
    /// (`provider_unreachable`, `provider_error`, `access_denied`): a caller may keep a last good
    /// value of its own. Every other code, unknown ones included, is definitive.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ErrorCode::ProviderUnreachable | ErrorCode::ProviderError | ErrorCode::AccessDenied
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorCode::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings the sidecar emitted before this crate existed (docs/DESIGN.md §2, §4).
    const WIRE: [&str; 21] = [
        "invalid_reference",
        "secret_not_found",
        "unknown_provider",
        "unsupported_manager",
        "key_not_found",
        "not_json_object",
        "not_a_string",
        "empty_value",
        "ambiguous_secret_name",
        "secret_deleted",
        "decryption_failed",
        "provider_rejected",
        "stale_expired",
        "provider_unreachable",
        "provider_error",
        "access_denied",
        "backend_not_allowed",
        "redis_unavailable",
        "redis_auth_failed",
        "redis_error",
        "secret_unresolved",
    ];

    #[test]
    fn every_code_round_trips_to_its_wire_string() {
        for (code, wire) in ErrorCode::KNOWN.iter().zip(WIRE) {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{wire}\""));
            assert_eq!(code.to_string(), wire);
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, code);
            assert_eq!(ErrorCode::parse(wire), *code);
        }
        let mut distinct = WIRE.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), WIRE.len());
    }

    #[test]
    fn only_provider_trouble_is_transient() {
        let transient: Vec<&str> = ErrorCode::KNOWN
            .iter()
            .filter(|c| c.is_transient())
            .map(ErrorCode::as_str)
            .collect();
        assert_eq!(
            transient,
            ["provider_unreachable", "provider_error", "access_denied"]
        );
    }

    #[test]
    fn unknown_codes_parse_and_are_definitive() {
        let code: ErrorCode = serde_json::from_str("\"quantum_flux\"").unwrap();
        assert_eq!(code, ErrorCode::Unknown("quantum_flux".into()));
        assert!(!code.is_transient());
        assert_eq!(code.to_string(), "quantum_flux");
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"quantum_flux\"");
        // escapes are read like any JSON string
        let code: ErrorCode = serde_json::from_str(r#""provider\u005ferror""#).unwrap();
        assert_eq!(code, ErrorCode::ProviderError);
        assert!(serde_json::from_str::<ErrorCode>("1").is_err());
    }
}
