//! Which of a plan's header edits need a host call (issue #9). Each call crosses into V8 and
//! costs about as much as a whole native filter. Once the request's headers were read in one
//! call (hmac-auth, `strip_identity_headers`), removals of headers the request does not carry are
//! dropped: there is nothing to remove. Every other edit is one call.
//!
//! Replacing the whole map in one call (`proxy_set_header_map_pairs`) instead of two or three
//! single writes was measured and is slower in Envoy 1.40: it removes and re-adds every header
//! (BENCHMARKS.md, `wasm-noop-map`).

use super::Edit;

/// Header pairs as the host serializes them: raw names (lowercase) and values.
pub type Pairs = [(Vec<u8>, Vec<u8>)];

/// The edits that change something, in order, given the request's headers if they were read.
pub fn needed<'a>(all: Option<&Pairs>, edits: &'a [Edit]) -> Vec<&'a Edit> {
    edits
        .iter()
        .filter(|e| match (e, all) {
            (Edit::Remove(name), Some(all)) => all.iter().any(|(n, _)| n == name.as_bytes()),
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn set(n: &str, v: &str) -> Edit {
        Edit::Set(n.into(), v.as_bytes().to_vec())
    }

    fn remove(n: &str) -> Edit {
        Edit::Remove(n.into())
    }

    #[test]
    fn without_the_map_each_edit_is_a_call() {
        let edits = [set("x-consumer-username", "alice"), remove("x-a")];
        assert!(needed(None, &[]).is_empty());
        assert_eq!(needed(None, &edits), vec![&edits[0], &edits[1]]);
    }

    #[test]
    fn removals_of_absent_headers_cost_nothing() {
        let edits = [
            set("x-consumer-username", "alice"),
            remove("x-credential-identifier"),
            remove("x-consumer-custom-id"),
        ];
        let all = map(&[(":path", "/"), ("apikey", "k")]);
        assert_eq!(needed(Some(&all), &edits), vec![&edits[0]]);
        // A client-sent copy is removed; values are compared as bytes.
        let all = vec![
            (b"x-consumer-custom-id".to_vec(), vec![0xff]),
            (b"x-bin".to_vec(), vec![0x00]),
        ];
        assert_eq!(needed(Some(&all), &edits), vec![&edits[0], &edits[2]]);
    }
}
