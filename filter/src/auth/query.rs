//! Query-string helpers for credentials passed as arguments (`/ip?apikey=...`).

/// The decoded value of the first argument `name` in the query of `path`.
pub fn find_arg(path: &str, name: &str) -> Option<String> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

/// `path` without any argument `name` (and without a trailing `?` if none remain).
pub fn remove_arg(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    if kept.iter().all(|p| p.is_empty()) {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// `application/x-www-form-urlencoded` decoding as nginx does it for arguments: `%XX` and `+`.
/// Invalid escapes are kept as they are; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).and_then(|c| hex(*c)),
                bytes.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find() {
        let rows: &[(&str, &str, Option<&str>)] = &[
            ("/ip?apikey=alice-key", "apikey", Some("alice-key")),
            (
                "/ip?a=1&apikey=x%2By+z&apikey=second",
                "apikey",
                Some("x+y z"),
            ),
            ("/ip?apikey", "apikey", Some("")),
            ("/ip?apikeyx=1", "apikey", None),
            ("/ip", "apikey", None),
            ("/ip?", "apikey", None),
            ("/ip?k=%zz%4", "k", Some("%zz%4")),
            ("/ip?k=%ff", "k", Some("\u{fffd}")),
        ];
        for (path, name, want) in rows {
            assert_eq!(find_arg(path, name).as_deref(), *want, "{path}");
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
            assert_eq!(remove_arg(path, "apikey"), want, "{path}");
        }
    }
}
