//! `POST /v1/resolve` (docs/DESIGN.md §2).

use crate::code::ErrorCode;
use secret_ref::SecretValue;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `{"refs": ["$secret://...", ...], "previous": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub refs: Vec<String>,
    /// Also return the previous version of each secret (for rotation grace). Absent: `false`
    /// (and not written when `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub previous: bool,
    /// References (among `refs`) whose secrets the sidecar should fetch from the provider
    /// again rather than answer from its cache: the filter saw a credential that matched
    /// nobody and the secret may just have rotated. The sidecar refetches a secret at most
    /// once per `[cache] refetch_min_interval_ms`, however often it is asked. Absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refetch: Vec<String>,
}

/// The value a reference had before the secret's current version replaced it:
/// `{"value": "...", "replaced_at": 1764777600}`. `Debug` never shows the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousValue {
    #[serde(
        serialize_with = "crate::secret::serialize",
        deserialize_with = "crate::secret::deserialize"
    )]
    pub value: SecretValue,
    /// When the current version replaced it (unix seconds).
    pub replaced_at: u64,
}

/// `{"results": [...]}`: one result per reference, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveResponse {
    pub results: Vec<ResolveResult>,
}

/// One reference's result: `{"ref", "value", "stale", "previous"?}` or `{"ref", "error"}`. Read
/// strictly: exactly one of `value` and `error` (a missing `stale` is `false`, a missing
/// `previous` is none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, try_from = "RawResult")]
pub enum ResolveResult {
    Value {
        #[serde(rename = "ref")]
        reference: String,
        #[serde(serialize_with = "crate::secret::serialize")]
        value: SecretValue,
        /// The provider failed transiently and this is the last good value.
        stale: bool,
        /// The secret's previous version (only when the request asked for it and there is one).
        #[serde(skip_serializing_if = "Option::is_none")]
        previous: Option<PreviousValue>,
    },
    Error {
        #[serde(rename = "ref")]
        reference: String,
        error: ResolveErrorBody,
    },
}

impl ResolveResult {
    pub fn reference(&self) -> &str {
        match self {
            ResolveResult::Value { reference, .. } | ResolveResult::Error { reference, .. } => {
                reference
            }
        }
    }
}

/// `{"code", "message", "did_you_mean"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Close secret names (`secret_not_found`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did_you_mean: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawResult {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default, deserialize_with = "crate::secret::opt::deserialize")]
    value: Option<SecretValue>,
    #[serde(default)]
    stale: bool,
    #[serde(default)]
    previous: Option<PreviousValue>,
    error: Option<ResolveErrorBody>,
}

/// A result with both or neither of `value` and `error`. Names the reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOneOfValueAndError(String);

impl fmt::Display for NotOneOfValueAndError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "result for {} does not have exactly one of value and error",
            self.0
        )
    }
}

impl TryFrom<RawResult> for ResolveResult {
    type Error = NotOneOfValueAndError;

    fn try_from(raw: RawResult) -> Result<Self, NotOneOfValueAndError> {
        match (raw.value, raw.error) {
            (Some(value), None) => Ok(ResolveResult::Value {
                reference: raw.reference,
                value,
                stale: raw.stale,
                previous: raw.previous,
            }),
            (None, Some(error)) => Ok(ResolveResult::Error {
                reference: raw.reference,
                error,
            }),
            _ => Err(NotOneOfValueAndError(raw.reference)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_example_round_trips() {
        let wire = json!({"results": [
            {"ref": "$secret://aws/sm/alice-credentials/alice-key-auth",
             "value": "alice-key", "stale": false},
            {"ref": "$secret://aws/sm/alice-credentias/alice-key-auth",
             "error": {"code": "secret_not_found", "message": "not found",
                       "did_you_mean": ["alice-credentials"]}},
            {"ref": "$env://X", "error": {"code": "invalid_reference", "message": "m"}},
        ]});
        let typed: ResolveResponse = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(
            typed.results[0],
            ResolveResult::Value {
                reference: "$secret://aws/sm/alice-credentials/alice-key-auth".into(),
                value: SecretValue::new("alice-key"),
                stale: false,
                previous: None,
            }
        );
        match &typed.results[1] {
            ResolveResult::Error { error, .. } => {
                assert_eq!(error.code, ErrorCode::SecretNotFound);
                assert_eq!(
                    error.did_you_mean.as_deref(),
                    Some(&["alice-credentials".to_string()][..])
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(serde_json::to_value(&typed).unwrap(), wire);
        assert!(!format!("{typed:?}").contains("alice-key\""));

        let req: ResolveRequest = serde_json::from_value(json!({"refs": ["a"]})).unwrap();
        assert!(!req.previous);
        assert_eq!(serde_json::to_value(&req).unwrap(), json!({"refs": ["a"]}));
        assert!(serde_json::from_value::<ResolveRequest>(json!({"refs": [], "x": 1})).is_err());
    }

    #[test]
    fn results_are_read_strictly() {
        let read = |v: serde_json::Value| serde_json::from_value::<ResolveResult>(v);
        // stale defaults to false; unknown codes are kept
        assert_eq!(
            read(json!({"ref": "r", "value": "v"})).unwrap(),
            ResolveResult::Value {
                reference: "r".into(),
                value: SecretValue::new("v"),
                stale: false,
                previous: None,
            }
        );
        match read(json!({"ref": "r", "error": {"code": "new_code", "message": "m"}})).unwrap() {
            ResolveResult::Error { error, .. } => {
                assert_eq!(error.code, ErrorCode::Unknown("new_code".into()))
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            json!({"ref": "r"}),
            json!({"ref": "r", "value": "s3cr3t", "error": {"code": "c", "message": "m"}}),
            json!({"value": "v"}),
        ] {
            let e = read(bad.clone()).unwrap_err().to_string();
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn previous_values_on_the_wire() {
        let req: ResolveRequest =
            serde_json::from_value(json!({"refs": ["a"], "previous": true})).unwrap();
        assert!(req.previous);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"refs": ["a"], "previous": true})
        );

        let wire = json!({"ref": "r", "value": "new-key", "stale": false,
                          "previous": {"value": "old-key", "replaced_at": 1764777600u64}});
        let typed: ResolveResult = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(
            typed,
            ResolveResult::Value {
                reference: "r".into(),
                value: SecretValue::new("new-key"),
                stale: false,
                previous: Some(PreviousValue {
                    value: SecretValue::new("old-key"),
                    replaced_at: 1_764_777_600,
                }),
            }
        );
        assert_eq!(serde_json::to_value(&typed).unwrap(), wire);
        assert!(!format!("{typed:?}").contains("old-key"));
        // absent: not serialized, read as none
        let without = json!({"ref": "r", "value": "v", "stale": true});
        let typed: ResolveResult = serde_json::from_value(without.clone()).unwrap();
        assert!(matches!(typed, ResolveResult::Value { previous: None, .. }));
        assert_eq!(serde_json::to_value(&typed).unwrap(), without);
        // a malformed previous value is refused, without repeating the value
        let bad = json!({"ref": "r", "value": "v", "previous": {"value": "s3cr3t"}});
        let e = serde_json::from_value::<ResolveResult>(bad)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
