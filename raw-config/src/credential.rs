//! `consumers[].credentials[]` read in one pass: a credential is a map whose `type` says which
//! other fields it may have. serde's internally tagged enums buffer every field of every
//! credential before they look at `type` (a copy of each credential while the configuration is
//! read, and about 35 KB of `.wasm` for the buffered path, issue #9); this reads each field once
//! into its slot, and checks the fields against the type at the end of the map.
//!
//! Errors read like serde's: an unknown name is `unknown field` at its own path, a name that
//! another type has is `unknown field ..., expected one of` the type's fields, at the
//! credential's path.

use super::{RawCredential, RawSecret};
use crate::read::one_of;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CredentialType {
    #[serde(rename = "key-auth")]
    Key,
    #[serde(rename = "basic-auth")]
    Basic,
    #[serde(rename = "jwt-auth")]
    Jwt,
    #[serde(rename = "hmac-auth")]
    Hmac,
}

/// Every field of every type, in the order of [`NAMES`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Field {
    Type,
    Id,
    ExpiresAt,
    RotationGraceS,
    Key,
    KeySha256,
    Username,
    Password,
    Secret,
    PublicKey,
    Algorithm,
    Base64Secret,
    Exp,
    LifetimeGracePeriod,
    KeyId,
    SecretKey,
}

pub(crate) const FIELDS: [Field; 16] = [
    Field::Type,
    Field::Id,
    Field::ExpiresAt,
    Field::RotationGraceS,
    Field::Key,
    Field::KeySha256,
    Field::Username,
    Field::Password,
    Field::Secret,
    Field::PublicKey,
    Field::Algorithm,
    Field::Base64Secret,
    Field::Exp,
    Field::LifetimeGracePeriod,
    Field::KeyId,
    Field::SecretKey,
];

pub(crate) const NAMES: [&str; 16] = [
    "type",
    "id",
    "expires_at",
    "rotation_grace_s",
    "key",
    "key_sha256",
    "username",
    "password",
    "secret",
    "public_key",
    "algorithm",
    "base64_secret",
    "exp",
    "lifetime_grace_period",
    "key_id",
    "secret_key",
];

impl CredentialType {
    pub(crate) const NAMES: [&'static str; 4] = ["key-auth", "basic-auth", "jwt-auth", "hmac-auth"];

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "key-auth" => Some(CredentialType::Key),
            "basic-auth" => Some(CredentialType::Basic),
            "jwt-auth" => Some(CredentialType::Jwt),
            "hmac-auth" => Some(CredentialType::Hmac),
            _ => None,
        }
    }

    /// The fields a credential of this type may have, `type` first.
    fn fields(self) -> &'static [&'static str] {
        match self {
            CredentialType::Key => &[
                "type",
                "id",
                "key",
                "key_sha256",
                "expires_at",
                "rotation_grace_s",
            ],
            CredentialType::Basic => &[
                "type",
                "id",
                "username",
                "password",
                "expires_at",
                "rotation_grace_s",
            ],
            CredentialType::Jwt => &[
                "type",
                "id",
                "key",
                "secret",
                "public_key",
                "algorithm",
                "base64_secret",
                "exp",
                "lifetime_grace_period",
                "expires_at",
                "rotation_grace_s",
            ],
            CredentialType::Hmac => &[
                "type",
                "id",
                "key_id",
                "secret_key",
                "expires_at",
                "rotation_grace_s",
            ],
        }
    }
}

/// What a credential map held, each field read at most once.
#[derive(Default)]
pub(crate) struct Fields {
    /// Bit `Field as u32`: the field was present (also when `null`).
    pub(crate) seen: u32,
    /// The first name that no credential type has (reported once `type` is known).
    pub(crate) unknown: Option<String>,
    pub(crate) ty: Option<CredentialType>,
    pub(crate) id: Option<String>,
    pub(crate) expires_at: Option<String>,
    pub(crate) rotation_grace_s: Option<u64>,
    pub(crate) key: Option<String>,
    pub(crate) key_sha256: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) public_key: Option<String>,
    pub(crate) algorithm: Option<String>,
    pub(crate) base64_secret: Option<bool>,
    pub(crate) exp: Option<u64>,
    pub(crate) lifetime_grace_period: Option<u64>,
    pub(crate) key_id: Option<String>,
    pub(crate) secret_key: Option<String>,
}

impl<'de> Deserialize<'de> for RawCredential {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CredentialVisitor)
    }
}

struct CredentialVisitor;

impl<'de> Visitor<'de> for CredentialVisitor {
    type Value = RawCredential;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a credential (an object with \"type\")")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawCredential, M::Error> {
        let mut f = Fields::default();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let Some(i) = NAMES.iter().position(|n| *n == name) else {
                if f.unknown.is_none() {
                    f.unknown = Some(name.into_owned());
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let field = FIELDS[i];
            let bit = 1u32 << (field as u32);
            if f.seen & bit != 0 {
                return Err(de::Error::duplicate_field(NAMES[field as usize]));
            }
            f.seen |= bit;
            // Optional fields may be `null` (absent), as they could before.
            match field {
                Field::Type => f.ty = Some(map.next_value()?),
                Field::Id => f.id = Some(map.next_value()?),
                Field::ExpiresAt => f.expires_at = map.next_value()?,
                Field::RotationGraceS => f.rotation_grace_s = map.next_value()?,
                Field::Key => f.key = map.next_value()?,
                Field::KeySha256 => f.key_sha256 = map.next_value()?,
                Field::Username => f.username = Some(map.next_value()?),
                Field::Password => f.password = Some(map.next_value()?),
                Field::Secret => f.secret = map.next_value()?,
                Field::PublicKey => f.public_key = map.next_value()?,
                Field::Algorithm => f.algorithm = Some(map.next_value()?),
                Field::Base64Secret => f.base64_secret = Some(map.next_value()?),
                Field::Exp => f.exp = map.next_value()?,
                Field::LifetimeGracePeriod => f.lifetime_grace_period = Some(map.next_value()?),
                Field::KeyId => f.key_id = Some(map.next_value()?),
                Field::SecretKey => f.secret_key = Some(map.next_value()?),
            }
        }
        f.into_credential().map_err(de::Error::custom)
    }
}

impl Fields {
    /// The credential, or serde's message for what is wrong with it.
    pub(crate) fn into_credential(self) -> Result<RawCredential, String> {
        let missing = |name: &str| format!("missing field `{name}`");
        let unknown =
            |name: &str, allowed| format!("unknown field `{name}`, expected {}", one_of(allowed));
        let ty = self.ty.ok_or_else(|| missing("type"))?;
        let allowed = ty.fields();
        if let Some(name) = self.unknown {
            return Err(unknown(&name, allowed));
        }
        if let Some(extra) = NAMES
            .iter()
            .enumerate()
            .find(|(i, name)| self.seen & (1 << i) != 0 && !allowed.contains(name))
        {
            return Err(unknown(extra.1, allowed));
        }
        let id = self.id.ok_or_else(|| missing("id"))?;
        let required = |v: Option<String>, name: &'static str| v.ok_or_else(|| missing(name));
        let secret = |v: Option<String>| v.map(RawSecret);
        let (expires_at, rotation_grace_s) = (self.expires_at, self.rotation_grace_s);
        Ok(match ty {
            CredentialType::Key => RawCredential::KeyAuth {
                id,
                key: secret(self.key),
                key_sha256: secret(self.key_sha256),
                expires_at,
                rotation_grace_s,
            },
            CredentialType::Basic => RawCredential::BasicAuth {
                id,
                username: required(self.username, "username")?,
                password: RawSecret(required(self.password, "password")?),
                expires_at,
                rotation_grace_s,
            },
            CredentialType::Jwt => RawCredential::JwtAuth {
                id,
                expires_at,
                rotation_grace_s,
                key: required(self.key, "key")?,
                secret: secret(self.secret),
                public_key: secret(self.public_key),
                algorithm: self.algorithm.unwrap_or_else(|| "HS256".to_string()),
                base64_secret: self.base64_secret.unwrap_or(false),
                exp: self.exp,
                lifetime_grace_period: self.lifetime_grace_period.unwrap_or(0),
            },
            CredentialType::Hmac => RawCredential::HmacAuth {
                id,
                key_id: required(self.key_id, "key_id")?,
                secret_key: RawSecret(required(self.secret_key, "secret_key")?),
                expires_at,
                rotation_grace_s,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_names_line_up() {
        for (i, field) in FIELDS.iter().enumerate() {
            assert_eq!(*field as usize, i, "{field:?}");
        }
        for ty in [
            CredentialType::Key,
            CredentialType::Basic,
            CredentialType::Jwt,
            CredentialType::Hmac,
        ] {
            assert!(ty.fields().iter().all(|f| NAMES.contains(f)), "{ty:?}");
        }
    }
}
