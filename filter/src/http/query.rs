//! Query-string helpers for credentials passed as arguments (`/ip?apikey=...`).

/// The decoded value of the first argument `name` in the query of `path` (raw bytes: the
/// decoded value need not be UTF-8).
pub fn find_arg(path: &[u8], name: &str) -> Option<Vec<u8>> {
    let query = split_query(path)?.1;
    query
        .split(|b| *b == b'&')
        .map(|pair| match pair.iter().position(|b| *b == b'=') {
            Some(i) => (
                pair.get(..i).unwrap_or_default(),
                pair.get(i + 1..).unwrap_or_default(),
            ),
            None => (pair, &[][..]),
        })
        .find(|(k, _)| *k == name.as_bytes())
        .map(|(_, v)| percent_decode(v))
}

/// `path` without any argument `name` (and without a trailing `?` if none remain).
pub fn remove_arg(path: &[u8], name: &str) -> Vec<u8> {
    let Some((base, query)) = split_query(path) else {
        return path.to_vec();
    };
    let kept: Vec<&[u8]> = query
        .split(|b| *b == b'&')
        .filter(|pair| pair.split(|b| *b == b'=').next() != Some(name.as_bytes()))
        .collect();
    let mut out = base.to_vec();
    if !kept.iter().all(|p| p.is_empty()) {
        out.push(b'?');
        out.extend_from_slice(&kept.join(&b'&'));
    }
    out
}

/// `(path, query)` split at the first `?`.
fn split_query(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = path.iter().position(|b| *b == b'?')?;
    Some((path.get(..i)?, path.get(i + 1..)?))
}

/// `application/x-www-form-urlencoded` decoding as nginx does it for arguments: `+` is a space,
/// then `%XX` escapes (the `percent-encoding` crate; invalid escapes are kept as they are). The
/// result is raw bytes: a decoded key need not be UTF-8.
pub fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = bytes
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find() {
        let rows: &[(&str, &str, Option<&[u8]>)] = &[
            ("/ip?apikey=alice-key", "apikey", Some(b"alice-key")),
            (
                "/ip?a=1&apikey=x%2By+z&apikey=second",
                "apikey",
                Some(b"x+y z"),
            ),
            ("/ip?apikey", "apikey", Some(b"")),
            ("/ip?apikeyx=1", "apikey", None),
            ("/ip", "apikey", None),
            ("/ip?", "apikey", None),
            ("/ip?k=%zz%4", "k", Some(b"%zz%4")),
            ("/ip?k=%ff", "k", Some(b"\xff")),
        ];
        for (path, name, want) in rows {
            assert_eq!(find_arg(path.as_bytes(), name).as_deref(), *want, "{path}");
        }
    }

    #[test]
    fn remove() {
        let rows = [
            ("/ip?apikey=k", "/ip"),
            ("/ip?a=1&apikey=k&b=2", "/ip?a=1&b=2"),
            ("/ip?apikey=k&apikey=j", "/ip"),
            ("/ip?apikey", "/ip"),
            ("/ip?apikeys=1", "/ip?apikeys=1"),
            ("/ip", "/ip"),
        ];
        for (path, want) in rows {
            assert_eq!(
                remove_arg(path.as_bytes(), "apikey"),
                want.as_bytes(),
                "{path}"
            );
        }
    }

    #[test]
    fn raw_bytes_pass_through() {
        assert_eq!(find_arg(b"/p?k=\xff\xfe&x", "k"), Some(vec![0xff, 0xfe]));
        assert_eq!(
            remove_arg(b"/\xff?k=1&j=\xfe", "k"),
            b"/\xff?j=\xfe".to_vec()
        );
        assert_eq!(find_arg(b"\xff?\xff=1", "k"), None);
    }
}
