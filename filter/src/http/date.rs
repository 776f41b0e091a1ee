//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms, parsed
//! by the maintained `httpdate` crate (fixed-width fields, years 1970-9999: no arithmetic on
//! client-chosen numbers can overflow).

use std::time::UNIX_EPOCH;

/// Seconds since the Unix epoch, or `None` when `s` is not an HTTP date.
pub fn parse(s: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(s.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_three_forms() {
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse("Sat, 29 Feb 2020 12:00:00 GMT"), Some(1_582_977_600));
    }

    #[test]
    fn garbage() {
        for s in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1969 00:00:00 GMT",
            "Sun, 06 Nov 99999999999999999999 08:49:37 GMT",
            "Sun, -6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov -994 08:49:37 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Sun, 06 Nov 1994 -8:49:37 GMT",
            "Sunday, 06-Nov--4 08:49:37 GMT",
            "Sun Nov  6 08:49:37 -994",
            "Sun, 06 Nov 9999999999999999999999999999999999999 99:99:99 GMT",
            "Fri, 31 Dec 10000 23:59:59 GMT",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
