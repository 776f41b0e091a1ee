//! The proxy-wasm serialization of a header map, as `proxy_get_header_map_pairs` returns it:
//! a little-endian `u32` count, then a `u32` name size and a `u32` value size per pair, then each
//! name and value followed by a NUL byte. The bytes come from the host, but the names and values
//! in them are the client's: read with checked offsets, never trusted to be well formed.

/// Header pairs in the map's order; `None` if `bytes` is not a well-formed serialization.
pub fn parse(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let count = word(0)?;
    // Each pair takes at least 8 bytes of sizes and 2 NULs: refuse counts the data cannot hold
    // before allocating for them.
    if count > bytes.len() / 10 {
        return if count == 0 { Some(Vec::new()) } else { None };
    }
    let mut pairs = Vec::with_capacity(count);
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    for i in 0..count {
        let sizes_at = i.checked_mul(8)?.checked_add(4)?;
        let (name_len, value_len) = (word(sizes_at)?, word(sizes_at.checked_add(4)?)?);
        let mut field = |len: usize| -> Option<Vec<u8>> {
            let end = data.checked_add(len)?;
            let value = bytes.get(data..end)?.to_vec();
            if bytes.get(end) != Some(&0) {
                return None;
            }
            data = end.checked_add(1)?;
            Some(value)
        };
        let name = field(name_len)?;
        let value = field(value_len)?;
        pairs.push((name, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn round_trip_with_any_bytes() {
        let pairs: &[(&[u8], &[u8])] = &[
            (b":path", b"/ip?x=1"),
            (b"date", b""),
            (b"x-bin", b"\xff\x00\xfe"),
            (b"date", b"second"),
        ];
        let got = parse(&serialize(pairs)).unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(parse(&0u32.to_le_bytes()), Some(vec![]));
    }

    #[test]
    fn malformed_serializations_are_refused() {
        let good = serialize(&[(b"a", b"bc")]);
        for cut in 0..good.len() {
            assert_eq!(parse(&good[..cut]), None, "cut at {cut}");
        }
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(parse(&no_nul), None);
        // a count the data cannot hold
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 64]);
        assert_eq!(parse(&huge), None);
        // sizes that overflow
        let mut big = 1u32.to_le_bytes().to_vec();
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        big.extend_from_slice(&[0; 8]);
        assert_eq!(parse(&big), None);
    }
}
