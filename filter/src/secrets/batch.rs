//! The sidecar's batch resolve call: request body and answer parsing (see docs/DESIGN.md §2).

use crate::config::RefName;
use crate::http::callout::{status_code, DispatchError, MalformedJson};
use crate::json;
use json_read::Reader;
use secret_ref::SecretValue;
use sidecar_api::{ErrorCode, PreviousValue, ResolveErrorBody, ResolveResult};
use std::collections::HashMap;
use std::fmt;

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

/// `{"refs":[...]}` for the given references (the sidecar's [`sidecar_api::ResolveRequest`]).
/// With `previous`, the previous versions too; `refetch`: indexes into `refs` the sidecar should
/// fetch from the provider again. Written straight from the parsed references, without a list of
/// their strings first (10,000 references: a VM keeps its peak memory).
pub fn request_body(refs: &[RefName], previous: bool, refetch: &[usize]) -> Vec<u8> {
    // About 50 bytes per reference.
    let mut body = String::with_capacity(refs.len().saturating_mul(50).saturating_add(64));
    let mut o = json::Object::new(&mut body);
    json::array(o.field("refs"), refs, |out, r| {
        json::string(out, r.as_str())
    });
    if previous {
        o.bool("previous", true);
    }
    if refetch.iter().any(|i| *i < refs.len()) {
        let listed = refetch.iter().filter_map(|i| refs.get(*i));
        json::array(o.field("refetch"), listed, |out, r| {
            json::string(out, r.as_str())
        });
    }
    o.end();
    body.into_bytes()
}

/// Parses the sidecar's answer into one [`Answer`] per reference, in `refs` order. The body is
/// read as it is parsed: the VM reads it from Envoy in pieces rather than whole (with 10,000
/// references it is over a megabyte, which a VM would keep: its memory never shrinks).
pub fn parse_answer(
    status: Option<&str>,
    body: impl std::io::Read,
    refs: &[RefName],
) -> Result<Vec<Answer>, BatchError> {
    match status_code(status) {
        None => return Err(BatchError::NoAnswer),
        Some(200) => {}
        Some(s) => return Err(BatchError::Status(s)),
    }
    let mut matcher = Matcher {
        refs,
        answers: Vec::with_capacity(refs.len()),
        early: HashMap::new(),
    };
    let mut body = body;
    let mut r = Reader::from_read(&mut body);
    read_response(&mut r, &mut matcher)
        .and_then(|()| r.end())
        .map_err(|e| BatchError::Malformed(e.into()))?;
    Ok(matcher.finish())
}

/// A result as the filter keeps it: the reference it names and its [`Answer`] (the previous
/// version's time in milliseconds).
pub fn answer_of(result: ResolveResult) -> (String, Answer) {
    match result {
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
    }
}

/// Matches results to references as they are read, one at a time: the sidecar answers in the
/// request's order, so neither the list of results nor an index of them is ever built (10,000
/// references make a large one); results out of order wait in `early`.
struct Matcher<'r> {
    refs: &'r [RefName],
    /// The answers of `refs[..answers.len()]`, in order (`None`: not seen in order).
    answers: Vec<Option<Answer>>,
    early: HashMap<String, Answer>,
}

impl Matcher<'_> {
    fn add(&mut self, result: ResolveResult) {
        let (reference, answer) = answer_of(result);
        if let Some(expected) = self.refs.get(self.answers.len()) {
            if expected.as_str() == reference {
                self.answers.push(Some(answer));
                return;
            }
        }
        // Out of order: its place is found at the end. A reference answered twice keeps its
        // first answer.
        self.early.entry(reference).or_insert(answer);
    }

    fn finish(mut self) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(self.refs.len());
        let mut in_order = std::mem::take(&mut self.answers).into_iter();
        for r in self.refs {
            let answer = match in_order.next().flatten() {
                Some(a) => Some(a),
                None if self.early.is_empty() => None,
                None => self.early.remove(r.as_str()),
            };
            answers.push(answer.unwrap_or(Answer::Missing));
        }
        answers
    }
}

/// `{"results": [...]}` (other fields ignored), each result handed to the [`Matcher`].
fn read_response(r: &mut Reader<'_>, matcher: &mut Matcher<'_>) -> Result<(), json_read::Error> {
    r.begin_object("an object with \"results\"")?;
    let mut seen = false;
    while let Some(key) = r.next_key()? {
        if key != "results" {
            r.skip()?;
            continue;
        }
        if seen {
            return Err(r.error("duplicate field `results`"));
        }
        seen = true;
        r.begin_array("a list of results")?;
        while r.next_element()? {
            matcher.add(read_result(r)?);
        }
    }
    if !seen {
        return Err(r.error("missing field `results`"));
    }
    Ok(())
}

/// Reads `object`'s fields: `each(reader, index in names)` for a known name (each at most once),
/// others skipped.
fn fields(
    r: &mut Reader<'_>,
    names: &[&str],
    mut each: impl FnMut(&mut Reader<'_>, usize) -> Result<(), json_read::Error>,
) -> Result<(), json_read::Error> {
    r.begin_object("an object")?;
    let mut seen = 0u32;
    while let Some(key) = r.next_key()? {
        let Some(i) = names.iter().position(|n| *n == key) else {
            r.skip()?;
            continue;
        };
        if seen & (1 << i) != 0 {
            return Err(r.error("duplicate field"));
        }
        seen |= 1 << i;
        each(r, i)?;
    }
    Ok(())
}

/// One result: `{"ref", "value", "stale"?, "previous"?}` or `{"ref", "error"}` (see
/// [`ResolveResult`]; other fields are ignored, a `null` value or error is absent).
fn read_result(r: &mut Reader<'_>) -> Result<ResolveResult, json_read::Error> {
    let (mut reference, mut value, mut stale, mut previous, mut error) =
        (None, None, false, None, None);
    fields(
        r,
        &["ref", "value", "stale", "previous", "error"],
        |r, i| {
            match i {
                0 => reference = Some(r.string()?),
                1 if r.null()? => value = None,
                1 => value = Some(SecretValue::new(r.string()?)),
                2 => stale = r.bool()?,
                3 if r.null()? => previous = None,
                3 => previous = Some(read_previous(r)?),
                _ if r.null()? => error = None,
                _ => error = Some(read_error(r)?),
            }
            Ok(())
        },
    )?;
    let Some(reference) = reference else {
        return Err(r.error("missing field `ref`"));
    };
    match (value, error) {
        (Some(value), None) => Ok(ResolveResult::Value {
            reference,
            value,
            stale,
            previous,
        }),
        (None, Some(error)) => Ok(ResolveResult::Error { reference, error }),
        // Names neither the reference nor a value.
        _ => Err(r.error("a result does not have exactly one of value and error")),
    }
}

/// `{"value", "replaced_at"}`, both required, nothing else.
fn read_previous(r: &mut Reader<'_>) -> Result<PreviousValue, json_read::Error> {
    let (mut value, mut replaced_at) = (None, None);
    r.begin_object("an object")?;
    while let Some(key) = r.next_key()? {
        match key {
            "value" if value.is_none() => value = Some(SecretValue::new(r.string()?)),
            "replaced_at" if replaced_at.is_none() => {
                replaced_at = Some(r.unsigned(u64::MAX, "u64")?)
            }
            _ => return Err(r.error("unknown or duplicate field in previous")),
        }
    }
    match (value, replaced_at) {
        (Some(value), Some(replaced_at)) => Ok(PreviousValue { value, replaced_at }),
        _ => Err(r.error("missing field in previous")),
    }
}

/// `{"code", "message", "did_you_mean"?}`.
fn read_error(r: &mut Reader<'_>) -> Result<ResolveErrorBody, json_read::Error> {
    let (mut code, mut message, mut did_you_mean) = (None, None, None);
    fields(r, &["code", "message", "did_you_mean"], |r, i| {
        match i {
            0 => code = Some(ErrorCode::parse(r.str()?)),
            1 => message = Some(r.string()?),
            _ if r.null()? => did_you_mean = None,
            _ => {
                let mut names = Vec::new();
                r.begin_array("a list of names")?;
                while r.next_element()? {
                    names.push(r.string()?);
                }
                did_you_mean = Some(names);
            }
        }
        Ok(())
    })?;
    match (code, message) {
        (Some(code), Some(message)) => Ok(ResolveErrorBody {
            code,
            message,
            did_you_mean,
        }),
        _ => Err(r.error("missing field in error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secret_ref::Reference;

    fn r(s: &str) -> RefName {
        match secret_ref::parse(s) {
            Ok(Some(Reference::Secret(r))) => RefName::new(&r),
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
    fn request_body_is_the_sidecars_resolve_request() {
        let refs = [r("$secret://aws/sm/a/k"), r("$secret://vault/kv/b/c/d")];
        let read = |previous, refetch: &[usize]| -> sidecar_api::ResolveRequest {
            serde_json::from_slice(&request_body(&refs, previous, refetch)).unwrap()
        };
        let all = vec![
            "$secret://aws/sm/a/k".to_string(),
            "$secret://vault/kv/b/c/d".to_string(),
        ];
        let plain = read(false, &[]);
        assert_eq!((plain.refs, plain.previous), (all.clone(), false));
        assert!(plain.refetch.is_empty());
        let both = read(true, &[0, 1]);
        assert_eq!(
            (both.refs, both.previous, both.refetch),
            (all.clone(), true, all)
        );
        // an index past the list names nothing: no `refetch` at all
        let body = request_body(&refs, false, &[7]);
        assert!(!String::from_utf8(body).unwrap().contains("refetch"));
        assert_eq!(request_body(&[], false, &[]), br#"{"refs":[]}"#);
    }

    /// The bytes serde_json wrote from [`sidecar_api::ResolveRequest`] before the body was
    /// written by hand (issue #9), for every combination of the optional fields.
    #[test]
    fn request_body_is_byte_for_byte_what_serde_json_wrote() {
        let refs = [
            r("$secret://aws/sm/a/k"),
            r("$secret://vault/kv/b/c/d"),
            r("$secret://aws/sm/\"quoted\"/\u{e9}"),
        ];
        let text: Vec<String> = refs.iter().map(|x| x.as_str().to_string()).collect();
        for previous in [false, true] {
            for refetch in [&[][..], &[2], &[0, 2, 9]] {
                let want = sidecar_api::ResolveRequest {
                    refs: text.clone(),
                    previous,
                    refetch: refetch
                        .iter()
                        .filter_map(|i| text.get(*i).cloned())
                        .collect(),
                };
                assert_eq!(
                    String::from_utf8(request_body(&refs, previous, refetch)).unwrap(),
                    serde_json::to_string(&want).unwrap()
                );
            }
        }
    }

    fn value(v: &str) -> Answer {
        Answer::Value {
            value: SecretValue::new(v),
            stale: false,
            previous: None,
        }
    }

    #[test]
    fn results_are_matched_in_order_out_of_order_and_once() {
        let refs = [
            r("$secret://aws/sm/a/k"),
            r("$secret://aws/sm/b/k"),
            r("$secret://aws/sm/c/k"),
            r("$secret://aws/sm/d/k"),
        ];
        let result = |name: &str, v: &str| {
            format!(r#"{{"ref":"$secret://aws/sm/{name}/k","value":"{v}","stale":false}}"#)
        };
        let body = |results: &[String]| format!(r#"{{"results":[{}]}}"#, results.join(","));
        let cases: Vec<(Vec<String>, Vec<Answer>)> = vec![
            (
                vec![
                    result("a", "1"),
                    result("b", "2"),
                    result("c", "3"),
                    result("d", "4"),
                ],
                vec![value("1"), value("2"), value("3"), value("4")],
            ),
            (
                vec![
                    result("d", "4"),
                    result("c", "3"),
                    result("b", "2"),
                    result("a", "1"),
                ],
                vec![value("1"), value("2"), value("3"), value("4")],
            ),
            // b is missing; an unknown reference is ignored
            (
                vec![
                    result("a", "1"),
                    result("x", "9"),
                    result("c", "3"),
                    result("d", "4"),
                ],
                vec![value("1"), Answer::Missing, value("3"), value("4")],
            ),
            // a reference answered twice keeps its first answer
            (
                vec![result("b", "2"), result("b", "7"), result("a", "1")],
                vec![value("1"), value("2"), Answer::Missing, Answer::Missing],
            ),
            (
                vec![result("a", "1"), result("a", "7"), result("b", "2")],
                vec![value("1"), value("2"), Answer::Missing, Answer::Missing],
            ),
            (vec![], vec![Answer::Missing; 4]),
        ];
        for (results, want) in cases {
            let body = body(&results);
            assert_eq!(
                parse_answer(Some("200"), body.as_bytes(), &refs[..]).unwrap(),
                want,
                "{body}"
            );
        }
        // other fields of the answer are ignored, wherever they are
        let body = format!(
            r#"{{"v":{{"x":[1]}},"results":[{}],"w":null}}"#,
            result("a", "1")
        );
        assert_eq!(
            parse_answer(Some("200"), body.as_bytes(), &refs[..1]).unwrap(),
            vec![value("1")]
        );
    }

    /// Every truncation and every one-byte change of a valid answer: either one answer per
    /// reference or `Malformed`, never a panic (the answer is read in pieces as it is parsed).
    #[test]
    fn damaged_answers_fail_cleanly() {
        let refs = [r("$secret://aws/sm/a/k"), r("$secret://aws/sm/b/k")];
        let body = br#"{"results":[{"ref":"$secret://aws/sm/b/k","value":"v\u00e9","stale":true,
            "previous":{"value":"o","replaced_at":17}},{"ref":"$secret://aws/sm/a/k",
            "error":{"code":"secret_not_found","message":"m","did_you_mean":["x"]}}]}"#;
        let judge = |bytes: &[u8]| match parse_answer(Some("200"), bytes, &refs) {
            Ok(answers) => assert_eq!(answers.len(), refs.len()),
            Err(e) => assert!(matches!(e, BatchError::Malformed(_)), "{e:?}"),
        };
        judge(body);
        for end in 0..body.len() {
            judge(&body[..end]);
        }
        for at in 0..body.len() {
            for b in [b'"', b'{', b']', b'\\', b'0', 0xff, b' '] {
                let mut damaged = body.to_vec();
                damaged[at] = b;
                judge(&damaged);
            }
        }
    }

    #[test]
    fn previous_versions_are_read_with_their_time() {
        let refs = [r("$secret://aws/sm/a/k")];
        let body = br#"{"results":[{"ref":"$secret://aws/sm/a/k","value":"new","stale":false,
            "previous":{"value":"old","replaced_at":1700000000}}]}"#;
        let answers = parse_answer(Some("200"), &body[..], &refs).unwrap();
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
        let answers = parse_answer(Some("200"), &body[..], &refs).unwrap();
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
        assert_eq!(
            parse_answer(None, &b""[..], &refs),
            Err(BatchError::NoAnswer)
        );
        assert_eq!(
            parse_answer(Some("403"), &b""[..], &refs),
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
            br#"{}"#,
            br#"{"results":[],"results":[]}"#,
            br#"{"results":[]} x"#,
            br#"{"results":[]"#,
            br#"[]"#,
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
        let e = parse_answer(Some("200"), &body[..], &refs).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"));
    }
}
