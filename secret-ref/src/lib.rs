//! The reference grammar shared by the filter and the sidecar, so the two cannot drift.
//!
//! * `$secret://<manager>/<provider-id>/<secret-name>[/<key>]`: a secret in an external manager.
//!   The secret name may itself contain `/`; [`SecretRef::candidates`] lists the
//!   `(secret name, key)` splits to try, longest secret name first (as APISIX 3.18 does).
//! * `$env://NAME[/key]`: an environment variable, optionally a JSON field of its value.
//!
//! Any other string is a plain value and is used as is, except a *near miss*: a string that looks
//! like an attempt at a reference but is not one exactly is an error, never a literal (it would
//! otherwise become a credential nobody meant). Let `t` be the string with leading and trailing
//! whitespace removed, compared ASCII case-insensitively. It is a near miss, unless it is exactly
//! a `$secret://` or `$env://` reference with no surrounding whitespace, when `t`
//!
//! 1. starts with `$secret:`, `$secrets:` or `$env:` (`$Secret://`, `$secret:/`, `$env:X`), or
//! 2. starts with `$`, a scheme name (an ASCII letter, then letters, digits, `+`, `-`, `.`) and
//!    `:/` (`$vault://`, `$aws:/x`), or
//! 3. starts with `secret:/`, `secrets:/` or `env:/` (the `$` forgotten: `secret://aws/...`).
//!
//! So `a$secret://x`, `pass://word`, `https://x`, `$SECRET`, `$envy` and `$Passw0rd:x` stay
//! plain values: `://` in the middle of a value, or a `$word` with no `:/`, is not a reference.

mod value;

pub use value::{extract_key, ExtractError, SecretValue};

use std::fmt;

/// Prefix of a reference into a secret manager.
pub const SECRET_PREFIX: &str = "$secret://";
/// Prefix of a reference to an environment variable.
pub const ENV_PREFIX: &str = "$env://";

/// The secret managers a `$secret://` reference may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Manager {
    Aws,
    Vault,
}

impl Manager {
    pub fn as_str(self) -> &'static str {
        match self {
            Manager::Aws => "aws",
            Manager::Vault => "vault",
        }
    }
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `$secret://` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub manager: Manager,
    pub provider: String,
    /// The segments after the provider id: at least one (the secret name).
    pub path: Vec<String>,
}

impl SecretRef {
    /// The `(secret name, key)` splits to try, in order: the whole path as the secret name with no
    /// key (the whole SecretString is the value), then one trailing segment moved into the key, and
    /// so on, down to the first segment as the name and the rest as the key.
    pub fn candidates(&self) -> Vec<(String, Option<String>)> {
        (1..=self.path.len())
            .rev()
            .map(|n| {
                let name = self.path[..n].join("/");
                let key = (n < self.path.len()).then(|| self.path[n..].join("/"));
                (name, key)
            })
            .collect()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SECRET_PREFIX}{}/{}/{}",
            self.manager,
            self.provider,
            self.path.join("/")
        )
    }
}

/// A parsed `$env://` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvRef {
    pub name: String,
    /// A JSON field of the variable's value (which must then be a JSON object).
    pub key: Option<String>,
}

impl fmt::Display for EnvRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{ENV_PREFIX}{}/{k}", self.name),
            None => write!(f, "{ENV_PREFIX}{}", self.name),
        }
    }
}

/// A reference of either kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Secret(SecretRef),
    Env(EnvRef),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Secret(s) => s.fmt(f),
            Reference::Env(e) => e.fmt(f),
        }
    }
}

/// Why a string that looks like a reference is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// `$secret://` with nothing after it.
    MissingManager,
    /// `$secret://aws` with no provider id.
    MissingProviderId,
    /// `$secret://aws/provider` with no secret name.
    MissingSecretName,
    /// The manager is not one we support.
    UnknownManager(String),
    /// Two slashes in a row, or a trailing slash.
    EmptySegment,
    /// `$env://` with no variable name.
    MissingEnvName,
    /// Starts like a reference (`$secret:` or `$env:`) but not with `://`.
    MalformedPrefix,
    /// A reference with whitespace before or after it.
    SurroundingWhitespace,
    /// `$SECRET://`, `$Env://`: the prefix is lower case.
    PrefixCase { expected: &'static str },
    /// `secret://...`, `env://...`: the `$` is missing.
    MissingDollar { expected: &'static str },
    /// `$secrets://`, `$vault://`, `$aws:/`: a `$scheme:/` that is not `$secret://` or `$env://`.
    UnknownScheme,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MissingManager => write!(
                f,
                "no manager: expected $secret://<manager>/<provider-id>/<secret-name>/<key>"
            ),
            ParseError::MissingProviderId => write!(
                f,
                "no provider id: expected $secret://<manager>/<provider-id>/<secret-name>/<key>"
            ),
            ParseError::MissingSecretName => write!(
                f,
                "no secret name: expected $secret://<manager>/<provider-id>/<secret-name>/<key>"
            ),
            ParseError::UnknownManager(m) => {
                write!(f, "unknown manager \"{m}\" (expected \"aws\" or \"vault\")")
            }
            ParseError::EmptySegment => write!(f, "empty path segment (double or trailing '/')"),
            ParseError::MissingEnvName => {
                write!(
                    f,
                    "no variable name: expected $env://NAME or $env://NAME/key"
                )
            }
            ParseError::MalformedPrefix => write!(
                f,
                "looks like a reference but does not start with \"$secret://\" or \"$env://\""
            ),
            ParseError::SurroundingWhitespace => write!(
                f,
                "looks like a reference but has whitespace before or after it; remove the whitespace"
            ),
            ParseError::PrefixCase { expected } => write!(
                f,
                "looks like a reference but the prefix is not lower case; write \"{expected}\""
            ),
            ParseError::MissingDollar { expected } => write!(
                f,
                "looks like a reference without its '$'; write \"{expected}\""
            ),
            ParseError::UnknownScheme => write!(
                f,
                "looks like a reference but only \"$secret://\" and \"$env://\" are references (a literal value cannot start with \"$<name>:/\")"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses `s`: `Ok(None)` for a plain value, `Ok(Some(_))` for a reference, `Err` for a string that
/// is meant as a reference but is malformed, or a near miss (see the crate documentation).
pub fn parse(s: &str) -> Result<Option<Reference>, ParseError> {
    if let Some(rest) = s.strip_prefix(SECRET_PREFIX) {
        if s.trim_end() != s {
            return Err(ParseError::SurroundingWhitespace);
        }
        return parse_secret(rest).map(|r| Some(Reference::Secret(r)));
    }
    if let Some(rest) = s.strip_prefix(ENV_PREFIX) {
        if s.trim_end() != s {
            return Err(ParseError::SurroundingWhitespace);
        }
        return parse_env(rest).map(|r| Some(Reference::Env(r)));
    }
    match near_miss(s) {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// True when `s` is (or is meant to be) a reference rather than a plain value: a reference, a
/// malformed one, or a near miss.
pub fn is_reference(s: &str) -> bool {
    s.starts_with(SECRET_PREFIX) || s.starts_with(ENV_PREFIX) || near_miss(s).is_some()
}

/// Why `s`, which does not start with an exact prefix, looks like a reference attempt; `None`
/// for a plain value.
fn near_miss(s: &str) -> Option<ParseError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    // the prefix the writer most likely meant
    let meant = |l: &str| {
        if l.starts_with("$env") || l.starts_with("env") {
            ENV_PREFIX
        } else {
            SECRET_PREFIX
        }
    };
    if t.starts_with(SECRET_PREFIX) || t.starts_with(ENV_PREFIX) {
        // a reference with whitespace around it
        return Some(ParseError::SurroundingWhitespace);
    }
    if lower.starts_with(SECRET_PREFIX) || lower.starts_with(ENV_PREFIX) {
        return Some(ParseError::PrefixCase {
            expected: meant(&lower),
        });
    }
    if lower.starts_with("$secret:") || lower.starts_with("$env:") {
        return Some(ParseError::MalformedPrefix);
    }
    if lower.starts_with("$secrets:") {
        return Some(ParseError::UnknownScheme);
    }
    if ["secret:/", "secrets:/", "env:/"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Some(ParseError::MissingDollar {
            expected: meant(&lower),
        });
    }
    if let Some(rest) = lower.strip_prefix('$') {
        let scheme_len = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic()
                    || (i > 0 && (c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))))
            })
            .map_or(rest.len(), |(i, _)| i);
        if scheme_len > 0 && rest[scheme_len..].starts_with(":/") {
            return Some(ParseError::UnknownScheme);
        }
    }
    None
}

fn parse_secret(rest: &str) -> Result<SecretRef, ParseError> {
    let mut parts = rest.split('/');
    let manager = match parts.next() {
        None | Some("") => return Err(ParseError::MissingManager),
        Some("aws") => Manager::Aws,
        Some("vault") => Manager::Vault,
        Some(other) => return Err(ParseError::UnknownManager(other.to_string())),
    };
    let provider = match parts.next() {
        None | Some("") => return Err(ParseError::MissingProviderId),
        Some(p) => p.to_string(),
    };
    let path: Vec<String> = parts.map(str::to_string).collect();
    match path.first() {
        None => return Err(ParseError::MissingSecretName),
        Some(first) if first.is_empty() && path.len() == 1 => {
            return Err(ParseError::MissingSecretName)
        }
        _ => {}
    }
    if path.iter().any(String::is_empty) {
        return Err(ParseError::EmptySegment);
    }
    Ok(SecretRef {
        manager,
        provider,
        path,
    })
}

fn parse_env(rest: &str) -> Result<EnvRef, ParseError> {
    let (name, key) = match rest.split_once('/') {
        Some((n, k)) => (n, Some(k)),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(ParseError::MissingEnvName);
    }
    if key == Some("") {
        return Err(ParseError::EmptySegment);
    }
    Ok(EnvRef {
        name: name.to_string(),
        key: key.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretRef {
        match parse(s) {
            Ok(Some(Reference::Secret(r))) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn plain_strings_are_not_references() {
        for s in [
            "alice-key",
            "",
            "   ",
            "$SECRET",
            "$envy",
            "$secret",
            "a$secret://aws/p/s",
            // `://` in the middle of a value, a URL, a `$word` without `:/`
            "pass://word",
            "hunter2://x",
            "https://example.com/x",
            "x $secret://aws/p/s/k",
            "$Passw0rd:x",
            "$abc:def",
            "$:/x",
            "$1a:/x",
            "secretly",
            "environment:/x",
            "secret:x",
        ] {
            assert_eq!(parse(s), Ok(None), "{s}");
            assert!(!is_reference(s), "{s}");
        }
    }

    #[test]
    fn tutorial_reference() {
        let r = secret("$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth");
        assert_eq!(r.manager, Manager::Aws);
        assert_eq!(r.provider, "my-secrets-manager");
        assert_eq!(r.path, vec!["alice-credentials", "alice-key-auth"]);
        assert_eq!(
            r.to_string(),
            "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth"
        );
    }

    #[test]
    fn candidates_try_the_longest_secret_name_first() {
        let r = secret("$secret://aws/sm/team/app/db/password");
        let c = r.candidates();
        let s = |n: &str, k: Option<&str>| (n.to_string(), k.map(str::to_string));
        assert_eq!(
            c,
            vec![
                s("team/app/db/password", None),
                s("team/app/db", Some("password")),
                s("team/app", Some("db/password")),
                s("team", Some("app/db/password")),
            ]
        );
        assert_eq!(
            secret("$secret://vault/v1/only").candidates(),
            vec![s("only", None)]
        );
    }

    #[test]
    fn specific_parse_errors() {
        let cases = [
            ("$secret://", ParseError::MissingManager),
            ("$secret:///p/s", ParseError::MissingManager),
            ("$secret://aws", ParseError::MissingProviderId),
            ("$secret://aws/", ParseError::MissingProviderId),
            ("$secret://aws//s/k", ParseError::MissingProviderId),
            ("$secret://aws/p", ParseError::MissingSecretName),
            ("$secret://aws/p/", ParseError::MissingSecretName),
            ("$secret://aws/p/s/", ParseError::EmptySegment),
            ("$secret://aws/p/s//k", ParseError::EmptySegment),
            (
                "$secret://awss/p/s/k",
                ParseError::UnknownManager("awss".into()),
            ),
            (
                "$secret://gcp/p/s/k",
                ParseError::UnknownManager("gcp".into()),
            ),
            ("$secret:/aws/p/s", ParseError::MalformedPrefix),
            ("$env:/X", ParseError::MalformedPrefix),
            ("$env://", ParseError::MissingEnvName),
            ("$env:///k", ParseError::MissingEnvName),
            ("$env://X/", ParseError::EmptySegment),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Err(want.clone()), "{input}");
            assert!(is_reference(input));
            // messages are actionable and never empty
            assert!(!want.to_string().is_empty());
        }
        assert!(ParseError::UnknownManager("awss".into())
            .to_string()
            .contains("\"awss\""));
    }

    #[test]
    fn near_misses_are_errors_not_literals() {
        let secret = SECRET_PREFIX;
        let env = ENV_PREFIX;
        let cases = [
            // surrounding whitespace (any Unicode whitespace)
            (" $secret://aws/p/s/k", ParseError::SurroundingWhitespace),
            ("$secret://aws/p/s/k ", ParseError::SurroundingWhitespace),
            ("\t$env://X\n", ParseError::SurroundingWhitespace),
            ("$env://X ", ParseError::SurroundingWhitespace),
            (
                "\u{a0}$secret://aws/p/s/k",
                ParseError::SurroundingWhitespace,
            ),
            // case
            (
                "$Secret://aws/p/s/k",
                ParseError::PrefixCase { expected: secret },
            ),
            (
                "$SECRET://aws/p/s/k",
                ParseError::PrefixCase { expected: secret },
            ),
            (
                " $SECRET://aws/p/s/k",
                ParseError::PrefixCase { expected: secret },
            ),
            ("$ENV://X", ParseError::PrefixCase { expected: env }),
            ("$Env://X/k", ParseError::PrefixCase { expected: env }),
            // slashes
            ("$secret:/aws/p/s", ParseError::MalformedPrefix),
            ("$secret:aws/p/s", ParseError::MalformedPrefix),
            ("$Secret:/aws/p/s", ParseError::MalformedPrefix),
            ("$env:/X", ParseError::MalformedPrefix),
            ("$env:X", ParseError::MalformedPrefix),
            ("$secret:", ParseError::MalformedPrefix),
            // no '$'
            (
                "secret://aws/p/s/k",
                ParseError::MissingDollar { expected: secret },
            ),
            (
                "Secret://aws/p/s/k",
                ParseError::MissingDollar { expected: secret },
            ),
            (
                "secrets://aws/p/s/k",
                ParseError::MissingDollar { expected: secret },
            ),
            (
                "secret:/aws/p/s/k",
                ParseError::MissingDollar { expected: secret },
            ),
            (
                " secret://aws/p/s/k",
                ParseError::MissingDollar { expected: secret },
            ),
            ("env://X", ParseError::MissingDollar { expected: env }),
            ("ENV:/X", ParseError::MissingDollar { expected: env }),
            // other `$scheme:/`
            ("$secrets://aws/p/s/k", ParseError::UnknownScheme),
            ("$secrets:aws", ParseError::UnknownScheme),
            ("$vault://v/s", ParseError::UnknownScheme),
            ("$aws:/p/s", ParseError::UnknownScheme),
            ("$s3cret://aws/p/s/k", ParseError::UnknownScheme),
            ("$my-secret.v2://x", ParseError::UnknownScheme),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Err(want.clone()), "{input:?}");
            assert!(is_reference(input), "{input:?}");
        }
        // messages say what to write and never repeat the input (it may be a password)
        assert_eq!(
            ParseError::PrefixCase { expected: secret }.to_string(),
            "looks like a reference but the prefix is not lower case; write \"$secret://\""
        );
        assert_eq!(
            ParseError::MissingDollar { expected: env }.to_string(),
            "looks like a reference without its '$'; write \"$env://\""
        );
        assert_eq!(
            ParseError::SurroundingWhitespace.to_string(),
            "looks like a reference but has whitespace before or after it; remove the whitespace"
        );
        assert!(ParseError::UnknownScheme
            .to_string()
            .contains("only \"$secret://\" and \"$env://\" are references"));
    }

    #[test]
    fn env_references() {
        assert_eq!(
            parse("$env://TOKEN"),
            Ok(Some(Reference::Env(EnvRef {
                name: "TOKEN".into(),
                key: None
            })))
        );
        assert_eq!(
            parse("$env://CREDS/alice/key"),
            Ok(Some(Reference::Env(EnvRef {
                name: "CREDS".into(),
                key: Some("alice/key".into())
            })))
        );
        assert_eq!(
            parse("$env://CREDS/k").unwrap().unwrap().to_string(),
            "$env://CREDS/k"
        );
    }
}
