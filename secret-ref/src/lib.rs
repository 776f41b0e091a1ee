//! The reference grammar shared by the filter and the sidecar, so the two cannot drift.
//!
//! * `$secret://<manager>/<provider-id>/<secret-name>[/<key>]`: a secret in an external manager.
//!   The secret name may itself contain `/`; [`SecretRef::candidates`] lists the
//!   `(secret name, key)` splits to try, longest secret name first (as APISIX 3.18 does).
//! * `$env://NAME[/key]`: an environment variable, optionally a JSON field of its value.
//!
//! Any other string is a plain value and is used as is.

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
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses `s`: `Ok(None)` for a plain value, `Ok(Some(_))` for a reference, `Err` for a string that
/// is meant as a reference but is malformed.
pub fn parse(s: &str) -> Result<Option<Reference>, ParseError> {
    if let Some(rest) = s.strip_prefix(SECRET_PREFIX) {
        return parse_secret(rest).map(|r| Some(Reference::Secret(r)));
    }
    if let Some(rest) = s.strip_prefix(ENV_PREFIX) {
        return parse_env(rest).map(|r| Some(Reference::Env(r)));
    }
    if s.starts_with("$secret:") || s.starts_with("$env:") {
        return Err(ParseError::MalformedPrefix);
    }
    Ok(None)
}

/// True when `s` is (or is meant to be) a reference rather than a plain value.
pub fn is_reference(s: &str) -> bool {
    s.starts_with("$secret:") || s.starts_with("$env:")
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
            "secret://aws/x/y",
            "$SECRET",
            "$envy",
            "a$secret://aws/p/s",
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
