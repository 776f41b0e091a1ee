//! RFC 3339 times, as both sides read them: the filter's `expires_at` and the times Vault
//! writes (`created_time`). `2026-12-31T23:59:59Z`, with optional fractions of a second and a
//! numeric offset (`+02:00`). Strict: what the RFC's `date-time` allows, years 1970-9999; the
//! result is milliseconds since the Unix epoch.

/// Milliseconds since the Unix epoch, or `None` if `s` is not an RFC 3339 date-time.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u64> {
        let digits = b.get(from..from.checked_add(len)?)?;
        digits.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in(year, month) {
        return None;
    }
    // 60: a leap second, counted as the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if sep(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let frac = b.get(start..at)?;
        if frac.is_empty() {
            return None;
        }
        // the first three digits, as milliseconds
        millis = frac
            .iter()
            .chain(b"000".iter())
            .take(3)
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    }
    let offset_s: i64 = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |x: u8, y: u8| -> Option<i64> {
                (x.is_ascii_digit() && y.is_ascii_digit())
                    .then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
            };
            let (oh, om) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let s = oh * 3600 + om * 60;
            if *sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let local_s = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let utc_s = u64::try_from(local_s.checked_sub(offset_s)?).ok()?;
    utc_s.checked_mul(1000)?.checked_add(millis)
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm), for years 1970-9999.
fn days_from_civil(y: u64, m: u64, d: u64) -> i64 {
    let (y, m, d) = (y as i64, m as i64, d as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_times() {
        let rows = [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-12-03T16:11:20Z", 1_796_314_280_000),
            ("2026-12-03t16:11:20z", 1_796_314_280_000),
            ("2026-12-03T18:11:20+02:00", 1_796_314_280_000),
            ("2026-12-03T15:11:20-01:00", 1_796_314_280_000),
            ("2026-12-03T16:11:20.5Z", 1_796_314_280_500),
            ("2026-12-03T16:11:20.123456789Z", 1_796_314_280_123),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("2000-02-29T23:59:60Z", 951_868_800_000),
            ("9999-12-31T23:59:59Z", 253_402_300_799_000),
        ];
        for (s, want) in rows {
            assert_eq!(parse_rfc3339_ms(s), Some(want), "{s}");
        }
    }

    #[test]
    fn invalid_times() {
        for s in [
            "",
            "2026-12-03",
            "2026-12-03T16:11:20",
            "2026-12-03 16:11:20Z",
            "2026-13-03T16:11:20Z",
            "2026-02-29T16:11:20Z",
            "1900-02-29T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "2026-12-03T24:00:00Z",
            "2026-12-03T16:60:00Z",
            "2026-12-03T16:11:61Z",
            "2026-12-03T16:11:20.Z",
            "2026-12-03T16:11:20+0200",
            "2026-12-03T16:11:20+24:00",
            "2026-12-03T16:11:20Z ",
            "+2026-12-03T16:11:20Z",
            "2026-1a-03T16:11:20Z",
            "２026-12-03T16:11:20Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
    }
}
