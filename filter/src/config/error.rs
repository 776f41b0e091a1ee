//! Configuration errors: each names the path of the offending field and what is wrong with it.

use crate::auth::jwt::KeyError as JwtKeyError;
use crate::limit::key::KeyError as LimitKeyError;
use secret_ref::{ExtractError, ParseError};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where in the JSON, e.g. `consumers[2].credentials[0].key`; `.` for the whole document.
    pub path: String,
    pub kind: ConfigErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// Not valid JSON, an unknown field, a wrong type: serde's message (values redacted).
    Json(String),
    /// A name that is not one of those accepted (`what` it is, what was `expected`).
    Unknown {
        what: &'static str,
        given: String,
        expected: String,
    },
    /// A field required in this case (`when`: "for RS256", "with policy \"redis\"").
    Required { when: String },
    /// A jwt-auth key that cannot verify tokens (never shows key material).
    JwtKey(JwtKeyError),
    /// A limit-count `key` / `key_type` that does not parse.
    LimitKey(LimitKeyError),
    /// A path that must start with `/`.
    NotAbsolutePath(String),
    /// Not an HTTP status code (200-599).
    NotAnHttpStatus(u16),
    /// A number outside `min..=max` (`unit` for the message).
    OutOfRange {
        value: u64,
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// A positive number of seconds was expected.
    NotPositiveSeconds(String),
    /// `$env://` where the sidecar, not the filter, resolves the value (Redis credentials).
    EnvNotAllowed,
    /// `sync_interval` with the local policy.
    OnlyForRedis,
    /// A `group` configured differently where it was first defined.
    GroupDiffers { group: String, first: String },
    /// A string meant as a reference that does not parse.
    Reference(ParseError),
    /// A required string is empty.
    Empty,
    /// A number that must be at least `min`.
    TooSmall { min: u64 },
    /// `$env://NAME` where NAME is not in the VM's environment.
    EnvNotSet(String),
    /// `$env://NAME/key` where the key cannot be taken from the variable.
    EnvKey { name: String, error: ExtractError },
    /// A `$secret://` reference where only a plain value or `$env://` is allowed.
    SecretNotAllowed,
    /// `sidecar.token` is not an `$env://` reference.
    TokenNotFromEnv,
    /// Another consumer already has this username.
    DuplicateUsername(String),
    /// Another credential already has this id.
    DuplicateCredentialId(String),
    /// Two credentials of one type share a plain value.
    DuplicateKey { other: String },
    /// Two credentials of one type share a name that must be unique (username, key, key_id).
    DuplicateName { other: String },
    /// `anonymous_consumer` names no consumer.
    UnknownConsumer(String),
    /// `$secret://` references are used but there is no `sidecar` section.
    SidecarRequired,
    /// Not a valid lowercase HTTP header name.
    InvalidHeaderName(String),
    /// Not an RFC 3339 date-time (`expires_at`).
    NotRfc3339(String),
    /// Exactly one of two fields is needed (`key` / `key_sha256`).
    ExactlyOneOf(&'static str, &'static str),
    /// A SHA-256 digest must be 64 hex digits (the value is not shown: it may be a key).
    NotSha256Hex,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, kind: ConfigErrorKind) -> Self {
        ConfigError {
            path: path.into(),
            kind,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)
    }
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind::*;
        match self {
            Json(m) => write!(f, "{m}"),
            Unknown {
                what,
                given,
                expected,
            } => write!(f, "unknown {what} \"{given}\" (expected {expected})"),
            Required { when } => write!(f, "required {when}"),
            JwtKey(e) => write!(f, "{e}"),
            LimitKey(e) => write!(f, "{e}"),
            NotAbsolutePath(p) => write!(f, "\"{p}\" must start with '/'"),
            NotAnHttpStatus(c) => write!(f, "{c} is not an HTTP status (200-599)"),
            OutOfRange {
                value,
                min,
                max,
                unit,
            } => write!(f, "{value}{unit} is out of range ({min}-{max})"),
            NotPositiveSeconds(v) => write!(f, "{v} must be a positive number of seconds"),
            EnvNotAllowed => write!(
                f,
                "$env:// is not supported here: the sidecar resolves Redis credentials, use \
                 $secret:// or a plain value"
            ),
            OnlyForRedis => write!(f, "only applies to the redis policies"),
            GroupDiffers { group, first } => {
                write!(f, "group \"{group}\" is configured differently at {first}")
            }
            Reference(e) => write!(f, "invalid reference: {e}"),
            Empty => write!(f, "must not be empty"),
            TooSmall { min } => write!(f, "must be at least {min}"),
            NotRfc3339(v) => write!(
                f,
                "{v:?} is not an RFC 3339 time (write e.g. \"2026-12-31T23:59:59Z\" or \
                 \"2026-12-31T23:59:59+01:00\")"
            ),
            ExactlyOneOf(a, b) => write!(f, "give exactly one of {a} and {b}"),
            NotSha256Hex => write!(f, "must be a SHA-256 digest: 64 hex digits"),
            EnvNotSet(n) => write!(
                f,
                "environment variable {n} is not set in the wasm VM (add it to \
                 vm_config.environment_variables)"
            ),
            EnvKey { name, error } => write!(f, "environment variable {name}: {error}"),
            SecretNotAllowed => write!(
                f,
                "must be a plain value or an $env:// reference ($secret:// cannot be used here: \
                 it is needed before secrets can be resolved)"
            ),
            TokenNotFromEnv => write!(
                f,
                "must be an $env:// reference: a plain token would be shown by Envoy's \
                 /config_dump; give Envoy the token in its environment and pass it to the VM with \
                 vm_config.environment_variables.host_env_keys"
            ),
            DuplicateUsername(u) => write!(f, "duplicate consumer username \"{u}\""),
            DuplicateCredentialId(i) => write!(f, "duplicate credential id \"{i}\""),
            DuplicateKey { other } => write!(f, "same key as credential \"{other}\""),
            DuplicateName { other } => write!(f, "already used by credential \"{other}\""),
            UnknownConsumer(n) => write!(f, "no consumer has username \"{n}\""),
            SidecarRequired => write!(
                f,
                "$secret:// references or Redis rate limits are used, so a \"sidecar\" section is \
                 required"
            ),
            InvalidHeaderName(h) => write!(f, "\"{h}\" is not a valid HTTP header name"),
        }
    }
}

impl std::error::Error for ConfigError {}
