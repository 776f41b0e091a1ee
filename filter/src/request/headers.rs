//! How a plan's header edits reach Envoy in the fewest host calls (issue #9). Each call crosses
//! into V8 and costs about as much as a whole native filter; replacing the whole map costs one
//! call whatever the number of edits. So, once the request's headers were read in one call:
//!
//! * removals of headers the request does not carry are dropped (nothing to remove);
//! * one edit left: one call for it (cheaper in Envoy than rebuilding the map);
//! * two or more: one call that sets the whole map, edited here.
//!
//! Without the map (nothing read it), each edit is one call.

use super::Edit;

/// Header pairs as the host serializes them: raw names (lowercase) and values.
pub type Pairs = [(Vec<u8>, Vec<u8>)];

/// What the glue does with the request's headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Writes<'a> {
    /// Nothing changes.
    Nothing,
    /// One host call per edit, in order.
    Each(Vec<&'a Edit>),
    /// One host call that replaces the whole map with these pairs.
    Whole(Vec<(Vec<u8>, Vec<u8>)>),
}

/// The host calls for `edits`, given the request's headers if they were read (`all`).
pub fn writes<'a>(all: Option<&Pairs>, edits: &'a [Edit]) -> Writes<'a> {
    let Some(all) = all else {
        return if edits.is_empty() {
            Writes::Nothing
        } else {
            Writes::Each(edits.iter().collect())
        };
    };
    let present = |name: &str| all.iter().any(|(n, _)| n == name.as_bytes());
    let needed: Vec<&Edit> = edits
        .iter()
        .filter(|e| match e {
            Edit::Remove(name) => present(name),
            Edit::Set(..) => true,
        })
        .collect();
    match needed.len() {
        0 => Writes::Nothing,
        1 => Writes::Each(needed),
        _ => Writes::Whole(edited(all, &needed)),
    }
}

/// `all` with `edits` applied in order, as Envoy's single-header calls would leave it: a set
/// replaces the first value in place and drops the others (or appends the header), a removal
/// drops every value.
fn edited(all: &Pairs, edits: &[&Edit]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = all.to_vec();
    for edit in edits {
        match edit {
            Edit::Set(name, value) => {
                let name = name.as_bytes();
                match out.iter().position(|(n, _)| n == name) {
                    Some(first) => {
                        out[first].1.clone_from(value);
                        let mut i = 0;
                        out.retain(|(n, _)| {
                            let keep = i <= first || n != name;
                            i += 1;
                            keep
                        });
                    }
                    None => out.push((name.to_vec(), value.clone())),
                }
            }
            Edit::Remove(name) => out.retain(|(n, _)| n != name.as_bytes()),
        }
    }
    out
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
        assert_eq!(writes(None, &[]), Writes::Nothing);
        assert_eq!(
            writes(None, &edits),
            Writes::Each(vec![&edits[0], &edits[1]])
        );
    }

    #[test]
    fn removals_of_absent_headers_cost_nothing() {
        let all = map(&[(":path", "/"), ("apikey", "k")]);
        let edits = [
            remove("x-consumer-username"),
            remove("x-credential-identifier"),
            remove("x-consumer-custom-id"),
        ];
        assert_eq!(writes(Some(&all), &edits), Writes::Nothing);
        // A client-sent copy: one call removes it.
        let all = map(&[(":path", "/"), ("x-consumer-custom-id", "forged")]);
        assert_eq!(writes(Some(&all), &edits), Writes::Each(vec![&edits[2]]));
    }

    #[test]
    fn several_edits_replace_the_map_once_as_single_calls_would() {
        let all = map(&[
            (":method", "GET"),
            (":path", "/ip?apikey=k"),
            ("x-consumer-username", "forged"),
            ("accept", "*/*"),
            ("x-consumer-username", "forged-again"),
            ("apikey", "k"),
        ]);
        let edits = [
            set("x-consumer-username", "alice"),
            set("x-credential-identifier", "alice-key"),
            remove("x-consumer-custom-id"),
            remove("apikey"),
            set(":path", "/ip"),
        ];
        let Writes::Whole(got) = writes(Some(&all), &edits) else {
            panic!("expected one call for the whole map");
        };
        assert_eq!(
            got,
            map(&[
                (":method", "GET"),
                (":path", "/ip"),
                ("x-consumer-username", "alice"),
                ("accept", "*/*"),
                ("x-credential-identifier", "alice-key"),
            ])
        );
    }

    #[test]
    fn values_are_bytes_never_text() {
        let all = vec![(b"x-bin".to_vec(), vec![0xff, 0x00, 0xfe])];
        let edits = [set("x-consumer-username", "alice"), set("x-other", "1")];
        let Writes::Whole(got) = writes(Some(&all), &edits) else {
            panic!("expected one call for the whole map");
        };
        assert_eq!(got[0], (b"x-bin".to_vec(), vec![0xff, 0x00, 0xfe]));
        assert_eq!(got.len(), 3);
    }
}
