//! Which counter a request counts against: APISIX's `key_type` `var`, `var_combination` and
//! `constant`, resolved lazily (each variable is a host call in Envoy).

use crate::http::{query, RequestView};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    RemoteAddr,
    ConsumerName,
    RouteName,
    /// `http_x_tenant` -> header `x-tenant`.
    Header(String),
    /// `arg_user` -> query argument `user`.
    Arg(String),
}

impl Var {
    pub fn parse(name: &str) -> Result<Var, KeyError> {
        match name {
            "remote_addr" => Ok(Var::RemoteAddr),
            "consumer_name" => Ok(Var::ConsumerName),
            "route_name" => Ok(Var::RouteName),
            _ => {
                if let Some(h) = name.strip_prefix("http_").filter(|h| !h.is_empty()) {
                    Ok(Var::Header(h.replace('_', "-").to_ascii_lowercase()))
                } else if let Some(a) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                    Ok(Var::Arg(a.to_string()))
                } else {
                    Err(KeyError::UnknownVar(name.to_string()))
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    Constant(String),
    /// A single variable (`key_type: var`) or a template (`var_combination`).
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    UnknownVar(String),
    UnknownKeyType(String),
    NoVariables,
    Empty,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::UnknownVar(v) => write!(
                f,
                "unknown variable \"{v}\" (expected remote_addr, consumer_name, route_name, \
                 http_<header> or arg_<name>)"
            ),
            KeyError::UnknownKeyType(t) => write!(
                f,
                "unknown key_type \"{t}\" (expected var, var_combination or constant)"
            ),
            KeyError::NoVariables => write!(f, "var_combination needs at least one $variable"),
            KeyError::Empty => write!(f, "must not be empty"),
        }
    }
}

impl KeySpec {
    pub fn parse(key_type: &str, key: &str) -> Result<KeySpec, KeyError> {
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        match key_type {
            "constant" => Ok(KeySpec::Constant(key.to_string())),
            "var" => Ok(KeySpec::Parts(vec![Part::Var(Var::parse(
                key.strip_prefix('$').unwrap_or(key),
            )?)])),
            "var_combination" => {
                let mut parts = Vec::new();
                let mut rest = key;
                while let Some(i) = rest.find('$') {
                    if i > 0 {
                        parts.push(Part::Literal(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    if end == 0 {
                        parts.push(Part::Literal("$".into()));
                    } else {
                        parts.push(Part::Var(Var::parse(&after[..end])?));
                    }
                    rest = &after[end..];
                }
                if !rest.is_empty() {
                    parts.push(Part::Literal(rest.to_string()));
                }
                if !parts.iter().any(|p| matches!(p, Part::Var(_))) {
                    return Err(KeyError::NoVariables);
                }
                Ok(KeySpec::Parts(parts))
            }
            other => Err(KeyError::UnknownKeyType(other.to_string())),
        }
    }
}

/// A header or argument value as part of a counter key: bytes that are not UTF-8 are replaced
/// (a key only has to tell clients apart; it is never compared with a secret).
fn text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The counter key. Variables that resolve to nothing count as empty; if no variable resolves,
/// the key falls back to `remote_addr`, as in APISIX.
pub fn resolve(spec: &KeySpec, consumer: Option<&str>, src: &mut dyn RequestView) -> String {
    let parts = match spec {
        KeySpec::Constant(c) => return c.clone(),
        KeySpec::Parts(p) => p,
    };
    let mut key = String::new();
    let mut resolved = 0;
    for part in parts {
        match part {
            Part::Literal(l) => key.push_str(l),
            Part::Var(v) => {
                let value = match v {
                    Var::RemoteAddr => src.remote_addr(),
                    Var::ConsumerName => consumer.map(str::to_string),
                    Var::RouteName => src.route_name(),
                    Var::Header(h) => src.header(h).map(text),
                    Var::Arg(a) => src
                        .header(":path")
                        .and_then(|p| query::find_arg(&p, a))
                        .map(text),
                };
                if let Some(value) = value.filter(|v| !v.is_empty()) {
                    key.push_str(&value);
                    resolved += 1;
                }
            }
        }
    }
    if resolved == 0 {
        src.remote_addr().unwrap_or_default()
    } else {
        key
    }
}

/// `127.0.0.1:5555` -> `127.0.0.1`, `[::1]:5555` -> `::1`.
pub fn strip_port(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Src(Vec<(&'static str, &'static str)>);

    impl RequestView for Src {
        fn remote_addr(&mut self) -> Option<String> {
            Some("10.0.0.1".into())
        }
        fn route_name(&mut self) -> Option<String> {
            Some("ip".into())
        }
        fn now_s(&mut self) -> u64 {
            0
        }
        fn header(&mut self, name: &str) -> Option<Vec<u8>> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes().to_vec())
        }
    }

    fn key(
        key_type: &str,
        key: &str,
        consumer: Option<&str>,
        headers: Vec<(&'static str, &'static str)>,
    ) -> String {
        resolve(
            &KeySpec::parse(key_type, key).unwrap(),
            consumer,
            &mut Src(headers),
        )
    }

    #[test]
    fn resolution() {
        let h = || vec![("x-tenant", "acme"), (":path", "/ip?user=bob")];
        assert_eq!(key("var", "remote_addr", None, h()), "10.0.0.1");
        assert_eq!(key("var", "consumer_name", Some("alice"), h()), "alice");
        assert_eq!(
            key("var", "consumer_name", None, h()),
            "10.0.0.1",
            "empty falls back"
        );
        assert_eq!(key("var", "http_x_tenant", None, h()), "acme");
        assert_eq!(key("var", "$http_x_tenant", None, h()), "acme");
        assert_eq!(key("var", "http_x_missing", None, h()), "10.0.0.1");
        assert_eq!(key("var", "arg_user", None, h()), "bob");
        assert_eq!(key("var", "route_name", None, h()), "ip");
        assert_eq!(
            key("var_combination", "$remote_addr $http_x_tenant", None, h()),
            "10.0.0.1 acme"
        );
        assert_eq!(
            key("var_combination", "t-$http_x_missing", None, h()),
            "10.0.0.1"
        );
        assert_eq!(
            key(
                "var_combination",
                "$consumer_name:$arg_user$",
                Some("al"),
                h()
            ),
            "al:bob$"
        );
        assert_eq!(key("constant", "everyone", None, h()), "everyone");
    }

    #[test]
    fn errors() {
        assert_eq!(
            KeySpec::parse("var", "remote_adr"),
            Err(KeyError::UnknownVar("remote_adr".into()))
        );
        assert_eq!(
            KeySpec::parse("var", "http_"),
            Err(KeyError::UnknownVar("http_".into()))
        );
        assert_eq!(
            KeySpec::parse("vars", "remote_addr"),
            Err(KeyError::UnknownKeyType("vars".into()))
        );
        assert_eq!(
            KeySpec::parse("var_combination", "plain"),
            Err(KeyError::NoVariables)
        );
        assert_eq!(
            KeySpec::parse("var_combination", "$x_y"),
            Err(KeyError::UnknownVar("x_y".into()))
        );
        assert_eq!(KeySpec::parse("constant", ""), Err(KeyError::Empty));
        assert!(KeyError::UnknownVar("q".into())
            .to_string()
            .contains("http_<header>"));
    }

    #[test]
    fn ports() {
        assert_eq!(strip_port("127.0.0.1:5555"), "127.0.0.1");
        assert_eq!(strip_port("[::1]:5555"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("10.0.0.1"), "10.0.0.1");
    }
}
