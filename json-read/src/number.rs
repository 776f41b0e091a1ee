//! Numbers: the JSON grammar, serde_json's integer/float split, and the value as `f64`.

use crate::{Error, Reader};

/// A JSON number. An integer literal (no fraction, no exponent) that fits `u64`, or `i64` when
/// negative, is an integer, as serde_json reads it; anything else is a float (`-0` too).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number {
    negative: bool,
    /// The magnitude of an integer literal that fits `u64`.
    magnitude: Option<u64>,
    float: f64,
}

impl Number {
    /// An integer as serde_json reads it (`u64`, or a negative `i64`).
    pub fn is_integer(&self) -> bool {
        match (self.negative, self.magnitude) {
            (false, Some(_)) => true,
            (true, Some(m)) => (1..=1 << 63).contains(&m),
            (_, None) => false,
        }
    }

    /// The value if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match (self.negative, self.magnitude) {
            (false, Some(m)) => Some(m),
            _ => None,
        }
    }

    /// The value if it is an integer that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        let m = self.magnitude?;
        if self.negative {
            if !self.is_integer() {
                return None;
            }
            // 1..=2^63: -m fits.
            Some(0i64.wrapping_sub_unsigned(m))
        } else {
            i64::try_from(m).ok()
        }
    }

    pub fn as_f64(&self) -> f64 {
        self.float
    }

    /// An integer's decimal text, as serde_json writes it; `None` for a float.
    pub fn integer_text(&self) -> Option<String> {
        if !self.is_integer() {
            return None;
        }
        let m = self.magnitude?;
        Some(if self.negative {
            format!("-{m}")
        } else {
            m.to_string()
        })
    }
}

/// Exact powers of ten as `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads a number (the next byte is `-` or a digit).
pub(crate) fn read(r: &mut Reader<'_>) -> Result<Number, Error> {
    // Most numbers are short integers: read in place when one ends within the window.
    let buf: &[u8] = &r.buf;
    let negative = buf.get(r.pos) == Some(&b'-');
    let first = r.pos + usize::from(negative);
    let mut end = first;
    let mut value: u64 = 0;
    // 19 digits cannot overflow a u64.
    while let Some(d @ b'0'..=b'9') = buf.get(end) {
        if end - first == 19 {
            break;
        }
        value = value * 10 + u64::from(d - b'0');
        end += 1;
    }
    let digits = end - first;
    let leading_zero = digits > 1 && buf.get(first) == Some(&b'0');
    if digits > 0
        && !leading_zero
        && !matches!(buf.get(end), None | Some(b'.' | b'e' | b'E' | b'0'..=b'9'))
    {
        r.pos = end;
        let float = value as f64;
        return Ok(Number {
            negative,
            magnitude: Some(value),
            float: if negative { -float } else { float },
        });
    }
    read_any(r)
}

/// Any number, byte by byte (a stream's window may end inside it).
fn read_any(r: &mut Reader<'_>) -> Result<Number, Error> {
    let negative = r.byte()? == Some(b'-');
    if negative {
        r.pos += 1;
    }
    // Up to 19 significant digits are kept exactly; the exponent counts the others.
    let mut digits: u64 = 0;
    let mut kept = 0u32;
    let mut exponent: i64 = 0;
    // The integer literal's magnitude while it fits u64.
    let mut magnitude: Option<u64> = Some(0);
    let mut keep = |d: u8, in_fraction: bool, exponent: &mut i64| {
        if kept < 19 {
            digits = digits * 10 + u64::from(d);
            if digits != 0 {
                kept += 1;
            }
            if in_fraction {
                *exponent -= 1;
            }
        } else if !in_fraction {
            *exponent += 1;
        }
    };
    match r.byte()? {
        Some(b'0') => {
            r.pos += 1;
            if let Some(b'0'..=b'9') = r.byte()? {
                return Err(r.syntax("invalid number"));
            }
        }
        Some(d @ b'1'..=b'9') => {
            r.pos += 1;
            keep(d - b'0', false, &mut exponent);
            magnitude = Some(u64::from(d - b'0'));
            while let Some(d @ b'0'..=b'9') = r.byte()? {
                r.pos += 1;
                keep(d - b'0', false, &mut exponent);
                magnitude = magnitude
                    .and_then(|m| m.checked_mul(10))
                    .and_then(|m| m.checked_add(u64::from(d - b'0')));
            }
        }
        None => return Err(r.eof("EOF while parsing a value")),
        Some(_) => return Err(r.syntax("invalid number")),
    }
    let mut integer = true;
    if r.byte()? == Some(b'.') {
        r.pos += 1;
        integer = false;
        let mut any = false;
        while let Some(d @ b'0'..=b'9') = r.byte()? {
            r.pos += 1;
            any = true;
            keep(d - b'0', true, &mut exponent);
        }
        if !any {
            return Err(match r.byte()? {
                None => r.eof("EOF while parsing a value"),
                Some(_) => r.syntax("invalid number"),
            });
        }
    }
    if let Some(b'e' | b'E') = r.byte()? {
        r.pos += 1;
        integer = false;
        let minus = match r.byte()? {
            Some(b'-') => {
                r.pos += 1;
                true
            }
            Some(b'+') => {
                r.pos += 1;
                false
            }
            _ => false,
        };
        let mut e: i64 = 0;
        let mut any = false;
        while let Some(d @ b'0'..=b'9') = r.byte()? {
            r.pos += 1;
            any = true;
            // Far beyond any f64: saturates.
            e = (e * 10 + i64::from(d - b'0')).min(1 << 40);
        }
        if !any {
            return Err(match r.byte()? {
                None => r.eof("EOF while parsing a value"),
                Some(_) => r.syntax("invalid number"),
            });
        }
        exponent = if minus {
            exponent.saturating_sub(e)
        } else {
            exponent.saturating_add(e)
        };
    }
    let magnitude = if integer { magnitude } else { None };
    let float = scale(digits, exponent);
    if float.is_infinite() {
        return Err(r.syntax("number out of range"));
    }
    Ok(Number {
        negative,
        magnitude,
        float: if negative { -float } else { float },
    })
}

/// `10^k` for `k` in `0..=19`, the powers of ten a `u64` holds.
const POW10_U64: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut k = 1;
    while k < 20 {
        t[k] = t[k - 1] * 10;
        k += 1;
    }
    t
};

/// `digits * 10^exponent`: exact when both fit the powers of ten an `f64` holds exactly;
/// otherwise computed with a 128-bit significand, up to 19 powers of ten per step (truncated at
/// each step, so at most one unit in the last place from the exact rounding, like serde_json's
/// own reading). At most 22 steps whatever the exponent: a client's token can ask for
/// `1e-999999`, many times over, and costs no more than for `1e-400`.
fn scale(digits: u64, exponent: i64) -> f64 {
    if digits == 0 {
        return 0.0;
    }
    if digits < 1 << 53 {
        if let Some(p) = usize::try_from(exponent.unsigned_abs())
            .ok()
            .and_then(|e| POW10.get(e))
        {
            let d = digits as f64;
            return if exponent < 0 { d / p } else { d * p };
        }
    }
    // 1 <= digits < 10^19: from 10^309 every value is infinite, below 10^-343 - 19 every value
    // rounds to 0.
    if exponent > 309 {
        return f64::INFINITY;
    }
    if exponent < -400 {
        return 0.0;
    }
    // value = m * 2^b, m normalized to its top bit.
    let mut m = u128::from(digits);
    let mut b: i32 = 0;
    let normalize = |m: &mut u128, b: &mut i32| {
        let z = m.leading_zeros();
        *m <<= z;
        *b -= z as i32;
    };
    normalize(&mut m, &mut b);
    let mut e = exponent;
    while e != 0 {
        let k = e.unsigned_abs().min(19);
        let p = POW10_U64.get(k as usize).copied().unwrap_or(1);
        if e > 0 {
            // The top 64 bits times 10^k (< 2^64): fits 128 bits.
            m = (m >> 64) * u128::from(p);
            b += 64;
            e -= k as i64;
        } else {
            m /= u128::from(p);
            e += k as i64;
        }
        normalize(&mut m, &mut b);
    }
    // The top 64 bits, with a sticky bit for the rest, rounded once to 53 bits.
    let top = (m >> 64) as u64 | u64::from(m as u64 != 0);
    times_power_of_two(top as f64, b + 64)
}

/// `f * 2^k`, in steps that stay within the exponents an `f64` has.
fn times_power_of_two(mut f: f64, mut k: i32) -> f64 {
    let two_to = |n: i32| f64::from_bits(((1023 + n) as u64) << 52);
    while k > 1023 {
        f *= two_to(1023);
        k -= 1023;
    }
    while k < -1022 {
        f *= two_to(-1022);
        k += 1022;
    }
    f * two_to(k)
}

/// Checks and skips a number's syntax (the next byte is `-` or a digit), without its value.
pub(crate) fn skip(r: &mut Reader<'_>) -> Result<(), Error> {
    if r.byte()? == Some(b'-') {
        r.pos += 1;
    }
    match r.byte()? {
        Some(b'0') => {
            r.pos += 1;
            if let Some(b'0'..=b'9') = r.byte()? {
                return Err(r.syntax("invalid number"));
            }
        }
        Some(b'1'..=b'9') => {
            r.pos += 1;
            digits(r)?;
        }
        None => return Err(r.eof("EOF while parsing a value")),
        Some(_) => return Err(r.syntax("invalid number")),
    }
    if r.byte()? == Some(b'.') {
        r.pos += 1;
        if !digits(r)? {
            return Err(r.syntax("invalid number"));
        }
    }
    if let Some(b'e' | b'E') = r.byte()? {
        r.pos += 1;
        if let Some(b'-' | b'+') = r.byte()? {
            r.pos += 1;
        }
        if !digits(r)? {
            return Err(r.syntax("invalid number"));
        }
    }
    Ok(())
}

/// Skips digits; `true` if there was one.
fn digits(r: &mut Reader<'_>) -> Result<bool, Error> {
    let mut any = false;
    while let Some(b'0'..=b'9') = r.byte()? {
        r.pos += 1;
        any = true;
    }
    Ok(any)
}
