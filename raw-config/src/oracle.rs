//! For tests and fuzz targets: [`parse`] against serde's derives ([`parse_with_serde`]). They
//! agree when both read the same configuration, or both refuse the document with the same path
//! and message (without the value serde quotes and the position), or both refuse JSON that is
//! not JSON (each names the first thing it checks), or [`parse`] refuses on purpose what serde
//! accepted (see `differs_on_purpose`).

use crate::{parse, parse_with_serde, ParseError, RawConfig};

/// What must agree in an error: the path, and the message without serde's quoted value and the
/// position (where in the bytes each reader notices may differ by a token).
fn shape(e: &ParseError) -> (String, String) {
    let mut m = e.message.clone();
    if let Some(at) = m.rfind(" at line ") {
        m.truncate(at);
    }
    let cut = if m.starts_with("invalid type:") || m.starts_with("invalid value:") {
        // "invalid type: string \"x\", expected u64" -> "invalid type: string"
        let end = m.find(", expected").unwrap_or(m.len());
        let kind_end = m[..end].find(['`', '"']).unwrap_or(end);
        m[..kind_end].trim_end().to_string()
    } else {
        m
    };
    // serde_path_to_error ends the path with `?` when the error is in a key; this reader
    // names the object.
    let path = match e.path.strip_suffix('?') {
        Some("") => ".".to_string(),
        Some(p) => p.trim_end_matches('.').to_string(),
        None => e.path.clone(),
    };
    (path, cut)
}

/// A message about JSON itself, not the configuration's shape.
fn syntax(e: &ParseError) -> bool {
    ![
        "invalid type",
        "invalid value",
        "unknown field",
        "unknown variant",
        "missing field",
        "duplicate field",
        "invalid length",
    ]
    .iter()
    .any(|p| e.message.starts_with(p))
}

/// Where the two differ on purpose: serde's derives also read a struct from a JSON array of its
/// fields in order (`"sidecar": ["c", "a", 100, "$env://T", "/p"]`), which nobody writes and
/// this reader refuses; serde read a configuration with anything after it; and serde reads a credential's `type` as an enum, so a `type` that is
/// not a string is a syntax error there ("expected value") and a type error here.
fn differs_on_purpose(ours: &ParseError, theirs: &Result<RawConfig, ParseError>) -> bool {
    let array_as_struct = ours
        .message
        .starts_with("invalid type: sequence, expected an object")
        || ours
            .message
            .starts_with("invalid type: sequence, expected a credential");
    let type_not_a_string = ours.path.ends_with("].type")
        && ours.message.starts_with("invalid type:")
        && matches!(theirs, Err(t) if t.path.starts_with(&ours.path));
    // The serde path never checked the end of the document: `{...} anything` was read as
    // `{...}`.
    let trailing = ours.message.starts_with("trailing characters");
    array_as_struct || type_not_a_string || trailing
}

/// `None` if [`parse`] and [`parse_with_serde`] agree on `doc`, else both answers.
pub fn disagreement(doc: &[u8]) -> Option<String> {
    let ours = parse(doc);
    let theirs = parse_with_serde(doc);
    let shown = String::from_utf8_lossy(doc);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) if a == b => None,
        (Err(a), Err(b)) if shape(a) == shape(b) => None,
        // Not JSON: both refuse it, each at the first thing it checks.
        (Err(a), Err(b)) if syntax(a) || syntax(b) => None,
        (Err(a), _) if differs_on_purpose(a, &theirs) => None,
        _ if std::env::var("SHAPES").is_ok() => Some(format!(
            "{:?} {:?}",
            ours.as_ref().err().map(shape),
            theirs.as_ref().err().map(shape)
        )),
        _ => Some(format!("{shown}\n  ours:  {ours:?}\n  serde: {theirs:?}")),
    }
}
