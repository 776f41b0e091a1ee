//! What Envoy says about a callout to the sidecar, as types (used by the secret batch and by the
//! counters): why a call could not start, the answer's status, and a body that is not the
//! documented JSON. None of them carries text from the answer: a body could quote a value.

use std::fmt;

/// Why Envoy would not start a callout (the status of `proxy_http_call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchError {
    /// `BadArgument`: Envoy has no cluster of that name (or refused the request headers).
    UnknownCluster,
    /// Any other status.
    Refused,
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DispatchError::UnknownCluster => {
                f.write_str("Envoy has no such cluster (check sidecar.cluster and the clusters)")
            }
            DispatchError::Refused => f.write_str("Envoy refused to start the call"),
        }
    }
}

/// An answer's `:status`, as Envoy gives it: `None` when there was no answer (failed, reset,
/// timed out), or a status that is not a number (which Envoy never sends; judged the same).
pub fn status_code(status: Option<&str>) -> Option<u16> {
    status.and_then(|s| s.parse().ok())
}

/// A body that is not the documented JSON: the kind of error and where, never the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedJson {
    kind: &'static str,
    line: usize,
    column: usize,
}

impl From<json_read::Error> for MalformedJson {
    fn from(e: json_read::Error) -> Self {
        use json_read::Category;
        let kind = match e.category() {
            Category::Io => "read error",
            Category::Syntax => "not JSON",
            Category::Data => "JSON of the wrong shape",
            Category::Eof => "truncated JSON",
        };
        MalformedJson {
            kind,
            line: e.line(),
            column: e.column(),
        }
    }
}

impl fmt::Display for MalformedJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.kind, self.line, self.column
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_never_quotes_the_body() {
        let mut r = json_read::Reader::from_slice(br#"["s3cr3t-value"]"#);
        r.begin_array("").unwrap();
        r.next_element().unwrap();
        let e = r.unsigned(255, "u8").unwrap_err();
        let shown = MalformedJson::from(e).to_string();
        assert_eq!(shown, "JSON of the wrong shape at line 1, column 1");
        assert!(!shown.contains("s3cr3t"));
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_code(Some("200")), Some(200));
        assert_eq!(status_code(Some("503")), Some(503));
        assert_eq!(status_code(Some("ok")), None);
        assert_eq!(status_code(None), None);
    }
}
