//! JWS signature verification for the algorithms jwt-auth supports.

use super::ecdsa;
use super::rsa_public::{self, RsaKeyError, RsaPublic};
use ed25519_dalek::pkcs8::DecodePublicKey;
use hmac::Hmac;
use sha2::{Sha256, Sha384, Sha512};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

const NAMES: &[(&str, JwtAlgorithm)] = &[
    ("HS256", JwtAlgorithm::HS256),
    ("HS384", JwtAlgorithm::HS384),
    ("HS512", JwtAlgorithm::HS512),
    ("RS256", JwtAlgorithm::RS256),
    ("RS384", JwtAlgorithm::RS384),
    ("RS512", JwtAlgorithm::RS512),
    ("PS256", JwtAlgorithm::PS256),
    ("PS384", JwtAlgorithm::PS384),
    ("PS512", JwtAlgorithm::PS512),
    ("ES256", JwtAlgorithm::ES256),
    ("ES384", JwtAlgorithm::ES384),
    ("EdDSA", JwtAlgorithm::EdDSA),
];

impl JwtAlgorithm {
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }
}

impl JwtAlgorithm {
    /// Every algorithm's name, for messages.
    pub fn names() -> Vec<&'static str> {
        NAMES.iter().map(|(n, _)| *n).collect()
    }
}

/// A name that is not one of the supported algorithms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown algorithm \"{}\" (expected one of {})",
            self.0,
            JwtAlgorithm::names().join(", ")
        )
    }
}

impl FromStr for JwtAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, UnknownAlgorithm> {
        NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, a)| *a)
            .ok_or_else(|| UnknownAlgorithm(s.to_string()))
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a configured key cannot be used. Never includes key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Base64Secret,
    Pem { algorithm: JwtAlgorithm },
    Rsa(RsaKeyError),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Base64Secret => write!(f, "base64_secret is set but the secret is not base64"),
            KeyError::Pem { algorithm } => write!(
                f,
                "not a PEM public key usable with {algorithm} (expected \"-----BEGIN PUBLIC KEY-----\")"
            ),
            KeyError::Rsa(RsaKeyError::Modulus) => write!(
                f,
                "the RSA key's modulus must be {} to {} bits",
                rsa_public::MIN_MODULUS_BITS,
                rsa_public::MAX_MODULUS_BITS
            ),
            KeyError::Rsa(RsaKeyError::Pem) => write!(f, "not a PEM RSA public key"),
            KeyError::Rsa(RsaKeyError::Exponent) => {
                write!(f, "the RSA key's public exponent must be odd, at least 3 and below 2^64")
            }
        }
    }
}

/// A credential's verification key, parsed once when its value is known.
pub enum VerifyKey {
    Hmac(Vec<u8>),
    Rsa(RsaPublic),
    P256(ecdsa::P256Public),
    P384(ecdsa::P384Public),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            VerifyKey::Hmac(_) => "Hmac([redacted])",
            VerifyKey::Rsa(_) => "Rsa",
            VerifyKey::P256(_) => "P256",
            VerifyKey::P384(_) => "P384",
            VerifyKey::Ed25519(_) => "Ed25519",
        };
        f.write_str(kind)
    }
}

impl VerifyKey {
    pub fn new(
        algorithm: JwtAlgorithm,
        material: &str,
        base64_secret: bool,
    ) -> Result<Self, KeyError> {
        use JwtAlgorithm::*;
        let pem_err = KeyError::Pem { algorithm };
        let pem = material.trim();
        match algorithm {
            HS256 | HS384 | HS512 if base64_secret => crate::http::b64::standard(material)
                .map(VerifyKey::Hmac)
                .ok_or(KeyError::Base64Secret),
            HS256 | HS384 | HS512 => Ok(VerifyKey::Hmac(material.as_bytes().to_vec())),
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => match RsaPublic::from_pem(pem) {
                Ok(key) => Ok(VerifyKey::Rsa(key)),
                Err(RsaKeyError::Pem) => Err(pem_err),
                Err(e) => Err(KeyError::Rsa(e)),
            },
            ES256 => ecdsa::P256Public::from_pem(pem)
                .map(VerifyKey::P256)
                .ok_or(pem_err),
            ES384 => ecdsa::P384Public::from_pem(pem)
                .map(VerifyKey::P384)
                .ok_or(pem_err),
            EdDSA => ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                .map(VerifyKey::Ed25519)
                .map_err(|_| pem_err),
        }
    }

    /// Whether `signature` is `algorithm`'s signature of `input` under this key. A key of the wrong
    /// kind for the algorithm never verifies.
    pub fn verify(&self, algorithm: JwtAlgorithm, input: &[u8], signature: &[u8]) -> bool {
        use JwtAlgorithm::*;
        match (self, algorithm) {
            (VerifyKey::Hmac(k), HS256) => {
                crate::auth::hmac_matches::<Hmac<Sha256>>(k, input, signature)
            }
            (VerifyKey::Hmac(k), HS384) => {
                crate::auth::hmac_matches::<Hmac<Sha384>>(k, input, signature)
            }
            (VerifyKey::Hmac(k), HS512) => {
                crate::auth::hmac_matches::<Hmac<Sha512>>(k, input, signature)
            }
            (VerifyKey::Rsa(k), RS256) => {
                rsa_public::verify_pkcs1::<Sha256>(k, rsa_public::SHA256_PREFIX, input, signature)
            }
            (VerifyKey::Rsa(k), RS384) => {
                rsa_public::verify_pkcs1::<Sha384>(k, rsa_public::SHA384_PREFIX, input, signature)
            }
            (VerifyKey::Rsa(k), RS512) => {
                rsa_public::verify_pkcs1::<Sha512>(k, rsa_public::SHA512_PREFIX, input, signature)
            }
            (VerifyKey::Rsa(k), PS256) => rsa_public::verify_pss::<Sha256>(k, input, signature),
            (VerifyKey::Rsa(k), PS384) => rsa_public::verify_pss::<Sha384>(k, input, signature),
            (VerifyKey::Rsa(k), PS512) => rsa_public::verify_pss::<Sha512>(k, input, signature),
            (VerifyKey::P256(k), ES256) => ecdsa::verify_es256(k, input, signature),
            (VerifyKey::P384(k), ES384) => ecdsa::verify_es384(k, input, signature),
            (VerifyKey::Ed25519(k), EdDSA) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(input, &s).is_ok()),
            _ => false,
        }
    }
}
