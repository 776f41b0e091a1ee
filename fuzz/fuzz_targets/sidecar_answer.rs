//! The sidecar's `/v1/resolve` answer as the filter reads it (`secrets::parse_answer`), on any
//! bytes. The body comes from the sidecar's cluster, so a wrong address or a hostile process on
//! the port can send anything; the filter must never panic on it, and:
//! * it accepts exactly the objects `sidecar_api::ResolveResponse` accepts read whole, and then
//!   gives, per reference, the first result naming it (or `Missing`): the matcher that reads result
//!   by result, in order or not, means the same as the whole list;
//! * the answer does not depend on how the body arrives: read in pieces (the glue reads Envoy's
//!   buffer 64 KiB at a time) it is the same as read at once.
//!
//! Input: byte 0 picks how many of four references were asked for (and a non-200 status for
//! 0xff), byte 1 the size of the pieces; the rest is the body.
#![no_main]

use envoy_secret_auth_filter::config::RefName;
use envoy_secret_auth_filter::secrets::{answer_of, parse_answer, Answer, BatchError};
use envoy_secret_auth_fuzz::Pieces;
use libfuzzer_sys::fuzz_target;
use secret_ref::Reference;
use sidecar_api::{ResolveResponse, ResolveResult};

const REFS: [&str; 4] = [
    "$secret://aws/sm/a/k",
    "$secret://aws/sm/b/k",
    "$secret://vault/kv/c/d/e",
    "$secret://aws/sm/a/j",
];

fn expected(results: Vec<ResolveResult>, refs: &[RefName]) -> Vec<Answer> {
    let mut answers: Vec<Option<Answer>> = vec![None; refs.len()];
    for result in results {
        let (reference, answer) = answer_of(result);
        if let Some(i) = refs.iter().position(|r| r.as_str() == reference) {
            answers[i].get_or_insert(answer);
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or(Answer::Missing))
        .collect()
}

/// Is an answer, a result, its `previous` or its `error` a JSON list (where serde's derives
/// would read a struct from it)?
fn struct_as_list(answer: &serde_json::Value) -> bool {
    use serde_json::Value;
    let results = match answer {
        Value::Array(_) => return true,
        Value::Object(m) => match m.get("results") {
            Some(Value::Array(r)) => r,
            _ => return false,
        },
        _ => return false,
    };
    results.iter().any(|r| match r {
        Value::Array(_) => true,
        Value::Object(m) => {
            matches!(m.get("previous"), Some(Value::Array(_)))
                || matches!(m.get("error"), Some(Value::Array(_)))
        }
        _ => false,
    })
}

fuzz_target!(|data: &[u8]| {
    let [count, piece, body @ ..] = data else {
        return;
    };
    let refs: Vec<RefName> = REFS[..usize::from(count % 5)]
        .iter()
        .map(|s| match secret_ref::parse(s) {
            Ok(Some(Reference::Secret(r))) => RefName::new(&r),
            other => panic!("{s}: {other:?}"),
        })
        .collect();
    if *count == 0xff {
        assert_eq!(
            parse_answer(Some("502"), body, &refs),
            Err(BatchError::Status(502))
        );
        return;
    }
    let whole = parse_answer(Some("200"), body, &refs);
    let pieces = Pieces {
        data: body,
        piece: usize::from(*piece).max(1),
    };
    assert_eq!(parse_answer(Some("200"), pieces, &refs), whole);
    // serde's derived structs also read a list of their fields in order (`[results]` for the
    // answer, `["ref", "value", ...]` for a result); the filter reads only the objects the
    // sidecar sends.
    let listed =
        serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| struct_as_list(&v));
    match (serde_json::from_slice::<ResolveResponse>(body), whole) {
        (Ok(response), Ok(answers)) if !listed => {
            assert_eq!(answers, expected(response.results, &refs))
        }
        (Ok(_), Err(BatchError::Malformed(_))) if listed => {}
        (Err(_), Err(BatchError::Malformed(_))) => {}
        (strict, ours) => panic!("ResolveResponse: {strict:?}, parse_answer: {ours:?}"),
    }
});
