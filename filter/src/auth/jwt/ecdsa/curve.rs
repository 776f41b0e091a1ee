//! A short Weierstrass curve `y^2 = x^3 - 3x + b` over a prime field (P-256 and P-384), its points
//! in Jacobian coordinates (`x = X / Z^2`, `y = Y / Z^3`, `Z = 0` the point at infinity), and
//! ECDSA verification. Variable time: every input is public.

use super::super::limbs;
use super::field::{self, Limbs, Modulus};

/// A point other than the point at infinity, coordinates in Montgomery form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine<const N: usize> {
    x: Limbs<N>,
    y: Limbs<N>,
}

/// A public key ready for verification: its odd multiples `Q, 3Q, ..., 15Q` (the signed
/// windows' table), made once when the key is read rather than per signature; boxed, so that
/// a credential of another kind does not pay for its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTable<const N: usize>(Box<[Affine<N>; Q_ODD]>);

impl<const N: usize> KeyTable<N> {
    /// The key itself.
    #[cfg(test)]
    pub fn point(&self) -> Affine<N> {
        self.0[0]
    }
}

#[derive(Clone, Copy)]
struct Jacobian<const N: usize> {
    x: Limbs<N>,
    y: Limbs<N>,
    z: Limbs<N>,
}

/// The width of the signed windows (wNAF) of `u1` (for `G`, whose multiples are made once per
/// VM) and of `u2` (for the key, whose multiples are made when it is read, and kept with it):
/// on average one addition per `w + 1` bits.
const G_WINDOW: u32 = 7;
const Q_WINDOW: u32 = 5;
/// `P, 3P, 5P, ...`: the odd multiples a window of that width can name.
const G_ODD: usize = 1 << (G_WINDOW - 2);
const Q_ODD: usize = 1 << (Q_WINDOW - 2);
/// wNAF digits of a number below `2^384` (P-384's order): at most one more than its bits.
const MAX_DIGITS: usize = 32 * 12 + 1;

/// A curve's constants (SEC 2), as big-endian hex.
pub struct Params {
    pub p: &'static str,
    pub n: &'static str,
    pub b: &'static str,
    pub gx: &'static str,
    pub gy: &'static str,
}

pub struct Curve<const N: usize> {
    /// The field.
    p: Modulus<N>,
    /// The group order.
    n: Modulus<N>,
    /// `b` in Montgomery form.
    b: Limbs<N>,
    /// The generator's odd multiples.
    g: [Affine<N>; G_ODD],
}

/// A number from big-endian hex of exactly `8 N` digits (the constants above).
fn from_hex<const N: usize>(hex: &str) -> Option<Limbs<N>> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    field::from_be(&bytes?)
}

impl<const N: usize> Curve<N> {
    /// `None` if a constant is malformed or the generator is not on the curve (a bug the tests
    /// catch: the constants are fixed).
    pub fn new(params: &Params) -> Option<Self> {
        let p = Modulus::new(from_hex(params.p)?);
        let n = Modulus::new(from_hex(params.n)?);
        let b = p.montgomery(&from_hex(params.b)?);
        let mut curve = Curve {
            p,
            n,
            b,
            g: [Affine {
                x: [0; N],
                y: [0; N],
            }; G_ODD],
        };
        let g = curve.point(&from_hex(params.gx)?, &from_hex(params.gy)?)?;
        curve.g = curve.odd_multiples(&g)?;
        Some(curve)
    }

    #[cfg(test)]
    pub fn generator(&self) -> Affine<N> {
        self.g[0]
    }

    pub fn field(&self) -> &Modulus<N> {
        &self.p
    }

    #[cfg(test)]
    pub fn order(&self) -> &Modulus<N> {
        &self.n
    }

    /// The point `(x, y)` (plain numbers below `p`) if it is on the curve.
    pub fn point(&self, x: &Limbs<N>, y: &Limbs<N>) -> Option<Affine<N>> {
        let point = Affine {
            x: self.p.montgomery(x),
            y: self.p.montgomery(y),
        };
        (self.p.square(&point.y) == self.rhs(&point.x)).then_some(point)
    }

    /// The point with `x` (a plain number below `p`) whose `y` is odd or even (SEC 1 section
    /// 2.3.4), if there is one.
    pub fn decompress(&self, x: &Limbs<N>, odd: bool) -> Option<Affine<N>> {
        let x = self.p.montgomery(x);
        let rhs = self.rhs(&x);
        // p = 3 mod 4 for both curves: a square root of a square c is c^((p + 1) / 4).
        // (p + 1) / 4: p is odd and below 2^(32 N) - 1, so p + 1 does not carry out
        let mut e = *self.p.modulus();
        limbs::add_assign(&mut e, &field::small::<N>(1));
        field::halve(&mut e, false);
        field::halve(&mut e, false);
        let mut y = self.p.pow(&rhs, &e);
        if self.p.square(&y) != rhs {
            return None;
        }
        if (self.p.plain(&y)[0] & 1 == 1) != odd {
            y = self.p.sub(&[0; N], &y);
        }
        Some(Affine { x, y })
    }

    /// `x^3 - 3x + b` of `x` in Montgomery form.
    fn rhs(&self, x: &Limbs<N>) -> Limbs<N> {
        let f = &self.p;
        let x3 = f.mul(&f.square(x), x);
        let three_x = f.add(&f.add(x, x), x);
        f.add(&f.sub(&x3, &three_x), &self.b)
    }

    /// `2 P` (dbl-2001-b, a = -3: 3M + 5S); the point at infinity stays at infinity (Z stays 0).
    fn double(&self, q: &Jacobian<N>) -> Jacobian<N> {
        let f = &self.p;
        let delta = f.square(&q.z);
        let gamma = f.square(&q.y);
        let beta = f.mul(&q.x, &gamma);
        let t = f.mul(&f.sub(&q.x, &delta), &f.add(&q.x, &delta));
        let alpha = f.add(&f.add(&t, &t), &t);
        let beta2 = f.add(&beta, &beta);
        let beta4 = f.add(&beta2, &beta2);
        let x = f.sub(&f.square(&alpha), &f.add(&beta4, &beta4));
        let z = f.sub(&f.sub(&f.square(&f.add(&q.y, &q.z)), &gamma), &delta);
        let gamma2 = f.square(&gamma);
        let gamma2_2 = f.add(&gamma2, &gamma2);
        let gamma2_4 = f.add(&gamma2_2, &gamma2_2);
        let y = f.sub(
            &f.mul(&alpha, &f.sub(&beta4, &x)),
            &f.add(&gamma2_4, &gamma2_4),
        );
        Jacobian { x, y, z }
    }

    /// `P + Q` with `Q` affine (madd-2007-bl: 7M + 4S), every case: `P` at infinity, `P = Q`
    /// (a doubling) and `P = -Q` (the point at infinity).
    fn add_affine(&self, q: &Jacobian<N>, a: &Affine<N>) -> Jacobian<N> {
        let f = &self.p;
        if field::is_zero(&q.z) {
            return Jacobian {
                x: a.x,
                y: a.y,
                z: f.one(),
            };
        }
        let z1z1 = f.square(&q.z);
        let u2 = f.mul(&a.x, &z1z1);
        let s2 = f.mul(&a.y, &f.mul(&q.z, &z1z1));
        let h = f.sub(&u2, &q.x);
        let s = f.sub(&s2, &q.y);
        if field::is_zero(&h) {
            return if field::is_zero(&s) {
                self.double(q)
            } else {
                Jacobian {
                    x: f.one(),
                    y: f.one(),
                    z: [0; N],
                }
            };
        }
        let hh = f.square(&h);
        let hh2 = f.add(&hh, &hh);
        let i = f.add(&hh2, &hh2);
        let j = f.mul(&h, &i);
        let r = f.add(&s, &s);
        let v = f.mul(&q.x, &i);
        let x = f.sub(&f.sub(&f.square(&r), &j), &f.add(&v, &v));
        let y1j = f.mul(&q.y, &j);
        let y = f.sub(&f.mul(&r, &f.sub(&v, &x)), &f.add(&y1j, &y1j));
        let z1h = f.mul(&q.z, &h);
        let z = f.add(&z1h, &z1h);
        Jacobian { x, y, z }
    }

    /// A point's table for verification (`None` only if a multiple were the point at infinity,
    /// which no point of these prime-order curves gives).
    pub fn key_table(&self, point: &Affine<N>) -> Option<KeyTable<N>> {
        self.odd_multiples(point).map(|t| KeyTable(Box::new(t)))
    }

    /// `P, 3P, 5P, ..., (2K - 1)P` in affine form (two inversions for all: `2P`, then the rest
    /// at once with Montgomery's trick); `None` if one is the point at infinity, which no point of
    /// these prime-order curves gives.
    fn odd_multiples<const K: usize>(&self, a: &Affine<N>) -> Option<[Affine<N>; K]> {
        let f = &self.p;
        let first = Jacobian {
            x: a.x,
            y: a.y,
            z: f.one(),
        };
        let [twice] = self.to_affine(&[self.double(&first)])?;
        let mut jacobian = [first; K];
        for k in 1..K {
            jacobian[k] = self.add_affine(&jacobian[k - 1], &twice);
        }
        self.to_affine(&jacobian)
    }

    /// Points in affine form with one inversion (Montgomery's trick); `None` if one is the point
    /// at infinity.
    fn to_affine<const K: usize>(&self, points: &[Jacobian<N>; K]) -> Option<[Affine<N>; K]> {
        let f = &self.p;
        // prefix[k] = Z_0 ... Z_k
        let mut prefix = [f.one(); K];
        let mut acc = f.one();
        for (k, point) in points.iter().enumerate() {
            if field::is_zero(&point.z) {
                return None;
            }
            acc = f.mul(&acc, &point.z);
            prefix[k] = acc;
        }
        let mut inverse = f.invert(&acc);
        let mut out = [Affine {
            x: [0; N],
            y: [0; N],
        }; K];
        for k in (0..K).rev() {
            // inverse = (Z_0 ... Z_k)^-1 here
            let z_inv = match k.checked_sub(1) {
                Some(before) => f.mul(&inverse, &prefix[before]),
                None => inverse,
            };
            inverse = f.mul(&inverse, &points[k].z);
            let z_inv2 = f.square(&z_inv);
            out[k] = Affine {
                x: f.mul(&points[k].x, &z_inv2),
                y: f.mul(&points[k].y, &f.mul(&z_inv2, &z_inv)),
            };
        }
        Some(out)
    }

    /// ECDSA verification (SEC 1 section 4.1.4) of a signature `r || s` (each `4 N` big-endian
    /// bytes in `[1, n)`) over `hash` (`4 N` bytes, reduced mod n) with the public key `key`:
    /// `x(u1 G + u2 Q) mod n == r` with `u1 = z / s`, `u2 = r / s`; the point at infinity never
    /// verifies.
    pub fn verify(&self, key: &KeyTable<N>, hash: &[u8], signature: &[u8]) -> bool {
        if signature.len() != 8 * N {
            return false;
        }
        let (r_be, s_be) = signature.split_at(4 * N);
        let (Some(r), Some(s), Some(z)) = (
            self.n.canonical(r_be),
            self.n.canonical(s_be),
            self.n.reduce(hash),
        ) else {
            return false;
        };
        if field::is_zero(&r) || field::is_zero(&s) {
            return false;
        }
        // w = s^-1 in Montgomery form, so that z w / R and r w / R are the plain u1 and u2.
        let w = self.n.invert(&self.n.montgomery(&s));
        let u1 = self.n.mul(&z, &w);
        let u2 = self.n.mul(&r, &w);
        let point = self.combine(&u1, &key.0, &u2);
        if field::is_zero(&point.z) {
            return false;
        }
        // x = X / Z^2 is below p < 2n, so x mod n = r means x = r or x = r + n: compare X with
        // r Z^2 and (r + n) Z^2 instead of inverting Z.
        let zz = self.p.square(&point.z);
        if self.p.mul(&self.p.montgomery(&r), &zz) == point.x {
            return true;
        }
        let mut r_plus_n = r;
        let carried = limbs::add_assign(&mut r_plus_n, self.n.modulus());
        !carried
            && limbs::less_than(&r_plus_n, self.p.modulus())
            && self.p.mul(&self.p.montgomery(&r_plus_n), &zz) == point.x
    }

    /// `u1 G + u2 Q` (Straus with signed windows): one doubling per bit from the top, shared,
    /// and an addition of a table's point (or its negation) wherever a digit is not zero.
    fn combine(&self, u1: &Limbs<N>, q: &[Affine<N>; Q_ODD], u2: &Limbs<N>) -> Jacobian<N> {
        let (d1, d2) = (wnaf(u1, G_WINDOW), wnaf(u2, Q_WINDOW));
        let mut acc = Jacobian {
            x: self.p.one(),
            y: self.p.one(),
            z: [0; N],
        };
        for (&a, &b) in d1.iter().zip(&d2).take(32 * N + 1).rev() {
            if !field::is_zero(&acc.z) {
                acc = self.double(&acc);
            }
            if let Some(point) = self.signed(&self.g, a) {
                acc = self.add_affine(&acc, &point);
            }
            if let Some(point) = self.signed(q, b) {
                acc = self.add_affine(&acc, &point);
            }
        }
        acc
    }

    /// `d P` of a table of odd multiples of `P` and an odd digit `d` (negative: the point with
    /// `-y`); `None` for 0.
    fn signed(&self, table: &[Affine<N>], digit: i8) -> Option<Affine<N>> {
        let index = usize::from(digit.unsigned_abs()).checked_sub(1)? / 2;
        let point = *table.get(index)?;
        Some(if digit < 0 {
            Affine {
                x: point.x,
                y: self.p.sub(&[0; N], &point.y),
            }
        } else {
            point
        })
    }
}

/// The width-`w` NAF of `k` (least significant digit first): every digit zero or odd and below
/// `2^(w - 1)` in magnitude, at most one non-zero digit in any `w` consecutive ones.
pub(super) fn wnaf<const N: usize>(k: &Limbs<N>, w: u32) -> [i8; MAX_DIGITS] {
    let mut digits = [0i8; MAX_DIGITS];
    let mut k = *k;
    // k's bit above its N limbs, set when adding a negative digit's magnitude carries
    let mut top = false;
    let window = 1u32 << w;
    for digit in digits.iter_mut().take(32 * N + 1) {
        if field::is_zero(&k) && !top {
            break;
        }
        if k[0] & 1 == 1 {
            let low = k[0] & (window - 1);
            let d = if low >= window / 2 {
                // d = low - 2^w < 0: k - d = k + (2^w - low)
                let mut add = [0u32; N];
                add[0] = window - low;
                top |= limbs::add_assign(&mut k, &add);
                low as i32 - window as i32
            } else {
                k[0] -= low;
                low as i32
            };
            // |d| < 2^(w - 1) <= 64
            *digit = d as i8;
        }
        field::halve(&mut k, top);
        top = false;
    }
    digits
}
