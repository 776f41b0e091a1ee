//! The secret-sidecar's HTTP API on the wire (docs/DESIGN.md §2 and §4): the bodies of
//! `POST /v1/resolve` and `POST /v1/limit` and of their answers, and the error codes.
//!
//! This crate is the single definition of the wire: the sidecar serializes these types and the
//! filter reads them (and the other way round for requests), so the two cannot drift. Secret
//! values (resolved values, plain Redis credentials) are [`SecretValue`]s: `Debug` never shows
//! them.

mod code;
mod limit;
mod resolve;
pub mod time;

pub use code::ErrorCode;
pub use limit::{
    LimitBackend, LimitCounter, LimitErrorBody, LimitFailure, LimitOp, LimitPolicy, LimitRequest,
    LimitResponse,
};
pub use resolve::{
    PreviousValue, ResolveErrorBody, ResolveRequest, ResolveResponse, ResolveResult,
};
pub use secret_ref::SecretValue;

use serde::{Deserialize, Serialize};

/// A request body the sidecar could not read or refused (`400`, `413`, ...):
/// `{"error": "<what is wrong>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRequest {
    pub error: String,
}

/// Serde for [`SecretValue`] as a plain JSON string.
mod secret {
    use secret_ref::SecretValue;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &SecretValue, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
        Ok(SecretValue::new(String::deserialize(d)?))
    }

    /// `Option<SecretValue>` as a JSON string or `null` / absent.
    pub mod opt {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Option<SecretValue>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.serialize_some(v.expose()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SecretValue>, D::Error> {
            Ok(Option::<String>::deserialize(d)?.map(SecretValue::new))
        }
    }
}
