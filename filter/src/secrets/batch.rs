//! The sidecar's batch resolve call: request body and answer parsing (see docs/DESIGN.md §2).

use crate::http::callout::{status_code, DispatchError, MalformedJson};
use secret_ref::{SecretRef, SecretValue};
use sidecar_api::{ErrorCode, ResolveRequest, ResolveResponse, ResolveResult};
use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// One reference's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Value {
        value: SecretValue,
        stale: bool,
        /// The previous version and when (ms since the epoch) the current one replaced it,
        /// when the sidecar was asked for it (rotation grace).
        previous: Option<(SecretValue, u64)>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// The sidecar's answer has no result for this reference: nothing is known (transient,
    /// logged as `missing_result`).
    Missing,
}

/// Why a whole batch answer is unusable (the last good values are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Envoy could not reach the sidecar (no answer, reset, timeout).
    NoAnswer,
    /// The callout could not be dispatched (e.g. unknown cluster).
    Dispatch {
        cluster: String,
        error: DispatchError,
    },
    /// The sidecar answered with a status other than 200.
    Status(u16),
    /// The body is not the documented JSON.
    Malformed(MalformedJson),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::NoAnswer => write!(f, "no answer from the sidecar (unreachable or timed out)"),
            BatchError::Dispatch { cluster, error } => {
                write!(f, "could not call the sidecar (cluster \"{cluster}\"): {error}")
            }
            BatchError::Status(s @ (401 | 403)) => write!(
                f,
                "the sidecar refused the token (HTTP {s}): check sidecar.token and the sidecar's token"
            ),
            BatchError::Status(503) => write!(
                f,
                "HTTP 503 from the sidecar's cluster (is the sidecar running and the cluster's \
                 address right?)"
            ),
            BatchError::Status(s) => write!(f, "the sidecar answered HTTP {s}"),
            BatchError::Malformed(e) => write!(f, "the sidecar's answer is malformed: {e}"),
        }
    }
}

/// `{"refs":[...]}` for the given references.
/// With `previous`, the previous versions too; `refetch`: indexes into `refs` the sidecar should
/// fetch from the provider again.
pub fn request_body(refs: &[SecretRef], previous: bool, refetch: &[usize]) -> Vec<u8> {
    let request = ResolveRequest {
        refs: refs.iter().map(ToString::to_string).collect(),
        previous,
        refetch: refetch
            .iter()
            .filter_map(|i| refs.get(*i))
            .map(ToString::to_string)
            .collect(),
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

/// Parses the sidecar's answer into one [`Answer`] per reference, in the order of `refs`.
/// A reference the sidecar did not answer for gets an error answer.
pub fn parse_answer(
    status: Option<&str>,
    body: &[u8],
    refs: &[SecretRef],
) -> Result<Vec<Answer>, BatchError> {
    match status_code(status) {
        None => return Err(BatchError::NoAnswer),
        Some(200) => {}
        Some(s) => return Err(BatchError::Status(s)),
    }
    let response: ResolveResponse =
        serde_json::from_slice(body).map_err(|e| BatchError::Malformed(e.into()))?;
    // The sidecar answers in the request's order: matched as they come, without an index of
    // every answer (10,000 references make a large one); answers out of order wait in `early`.
    let mut results = response.results.into_iter().map(|result| match result {
        ResolveResult::Value {
            reference,
            value,
            stale,
            previous,
        } => (
            reference,
            Answer::Value {
                value,
                stale,
                previous: previous.map(|p| (p.value, p.replaced_at.saturating_mul(1000))),
            },
        ),
        ResolveResult::Error { reference, error } => (
            reference,
            Answer::Error {
                code: error.code,
                message: error.message,
            },
        ),
    });
    let mut early: HashMap<String, Answer> = HashMap::new();
    let mut name = String::new();
    let mut answers = Vec::with_capacity(refs.len());
    for r in refs {
        name.clear();
        let _ = write!(name, "{r}");
        let answer = match early.remove(&name) {
            Some(answer) => Some(answer),
            None => results.find_map(|(reference, answer)| {
                if reference == name {
                    Some(answer)
                } else {
                    early.insert(reference, answer);
                    None
                }
            }),
        };
        answers.push(answer.unwrap_or(Answer::Missing));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secret_ref::Reference;

    fn r(s: &str) -> SecretRef {
        match secret_ref::parse(s) {
            Ok(Some(Reference::Secret(r))) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_body_lists_every_reference() {
        let refs = [r("$secret://aws/sm/a/k"), r("$secret://aws/sm/b/c/d")];
        let v: serde_json::Value =
            serde_json::from_slice(&request_body(&refs, false, &[])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"refs": ["$secret://aws/sm/a/k", "$secret://aws/sm/b/c/d"]})
        );
        let v: serde_json::Value =
            serde_json::from_slice(&request_body(&refs, true, &[1])).unwrap();
        assert_eq!(v["previous"], serde_json::json!(true));
        assert_eq!(v["refetch"], serde_json::json!(["$secret://aws/sm/b/c/d"]));
    }

    #[test]
    fn previous_versions_are_read_with_their_time() {
        let refs = [r("$secret://aws/sm/a/k")];
        let body = br#"{"results":[{"ref":"$secret://aws/sm/a/k","value":"new","stale":false,
            "previous":{"value":"old","replaced_at":1700000000}}]}"#;
        let answers = parse_answer(Some("200"), body, &refs).unwrap();
        assert_eq!(
            answers[0],
            Answer::Value {
                value: SecretValue::new("new"),
                stale: false,
                previous: Some((SecretValue::new("old"), 1_700_000_000_000)),
            }
        );
    }

    #[test]
    fn answers_are_matched_by_reference_not_order() {
        let refs = [
            r("$secret://aws/sm/a/k"),
            r("$secret://aws/sm/b/k"),
            r("$secret://aws/sm/c/k"),
        ];
        let body = br#"{"results":[
            {"ref":"$secret://aws/sm/b/k","error":{"code":"secret_not_found","message":"nope","did_you_mean":[]}},
            {"ref":"$secret://aws/sm/a/k","value":"va","stale":true}
        ]}"#;
        let answers = parse_answer(Some("200"), body, &refs).unwrap();
        assert_eq!(
            answers[0],
            Answer::Value {
                value: SecretValue::new("va"),
                stale: true,
                previous: None,
            }
        );
        assert_eq!(
            answers[1],
            Answer::Error {
                code: ErrorCode::SecretNotFound,
                message: "nope".into()
            }
        );
        assert_eq!(answers[2], Answer::Missing);
    }

    #[test]
    fn unusable_answers() {
        let refs = [r("$secret://aws/sm/a/k")];
        assert_eq!(parse_answer(None, b"", &refs), Err(BatchError::NoAnswer));
        assert_eq!(
            parse_answer(Some("403"), b"", &refs),
            Err(BatchError::Status(403))
        );
        assert!(BatchError::Status(403)
            .to_string()
            .contains("sidecar.token"));
        for body in [
            &b"not json"[..],
            br#"{"results":{}}"#,
            br#"{"results":[{"ref":"x"}]}"#,
            br#"{"results":[{"ref":"x","value":"v","error":{"code":"c","message":"m"}}]}"#,
        ] {
            assert!(
                matches!(
                    parse_answer(Some("200"), body, &refs),
                    Err(BatchError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn malformed_error_never_echoes_values() {
        let refs = [r("$secret://aws/sm/a/k")];
        let body = br#"{"results":[{"ref":"$secret://aws/sm/a/k","value":"s3cr3t","error":{"code":"c","message":"m"}}]}"#;
        let e = parse_answer(Some("200"), body, &refs).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"));
    }
}
