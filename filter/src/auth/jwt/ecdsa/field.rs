//! Arithmetic modulo an odd prime below `2^(32 N)` (a curve's field or its group order), numbers
//! as `N` little-endian 32-bit limbs, products in Montgomery form (`a R mod m`, `R = 2^(32 N)`).
//! Variable time: every number it sees is public.

use super::super::limbs;

pub type Limbs<const N: usize> = [u32; N];

/// The P-256 and P-384 field primes (Solinas primes: most limbs 0, 1 or `2^32 - 1`, and
/// `-p^-1 mod 2^32 = 1`). Multiplication modulo them is compiled with the limbs as constants, so
/// that LLVM folds the reduction's multiplications by 0 and 1.
const P256_FIELD: [u32; 8] = [
    0xffffffff, 0xffffffff, 0xffffffff, 0x00000000, 0x00000000, 0x00000000, 0x00000001, 0xffffffff,
];
const P384_FIELD: [u32; 12] = [
    0xffffffff, 0x00000000, 0x00000000, 0xffffffff, 0xfffffffe, 0xffffffff, 0xffffffff, 0xffffffff,
    0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
];

/// Which multiplication a modulus uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    P256Field,
    P384Field,
    Other,
}

/// A prime modulus and the constants Montgomery multiplication needs.
pub struct Modulus<const N: usize> {
    m: Limbs<N>,
    /// `-m^-1 mod 2^32`.
    m0_inv: u32,
    /// `R^2 mod m`, to bring a number into Montgomery form with one multiplication.
    r2: Limbs<N>,
    /// `R mod m`: 1 in Montgomery form.
    one: Limbs<N>,
    shape: Shape,
}

impl<const N: usize> Modulus<N> {
    /// `m` odd, prime, and at least `2^(32 N - 1)`.
    pub fn new(m: Limbs<N>) -> Self {
        let mut r2 = [0; N];
        limbs::r_squared(&m, &mut r2);
        let shape = if m[..] == P256_FIELD[..] {
            Shape::P256Field
        } else if m[..] == P384_FIELD[..] {
            Shape::P384Field
        } else {
            Shape::Other
        };
        let mut modulus = Modulus {
            m,
            m0_inv: limbs::neg_inverse(m[0]),
            r2,
            one: [0; N],
            shape,
        };
        modulus.one = modulus.montgomery(&unit());
        modulus
    }

    pub fn modulus(&self) -> &Limbs<N> {
        &self.m
    }

    /// 1 in Montgomery form.
    pub fn one(&self) -> Limbs<N> {
        self.one
    }

    /// `a b / R mod m`: of two numbers in Montgomery form, their product in Montgomery form; of
    /// one in Montgomery form and one not, their product not. Not inlined: one copy of the
    /// unrolled multiplication per curve, not one per use.
    #[inline(never)]
    pub fn mul(&self, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        let mut t = [0; N];
        // `N ==` makes each instantiation keep only its own branch.
        match self.shape {
            Shape::P256Field if N == 8 => limbs::mont_mul(&P256_FIELD, 1, a, b, &mut t),
            Shape::P384Field if N == 12 => limbs::mont_mul(&P384_FIELD, 1, a, b, &mut t),
            _ => limbs::mont_mul(&self.m, self.m0_inv, a, b, &mut t),
        }
        t
    }

    /// `a a / R mod m`: [`Self::mul`] of `a` by itself. In P-256's field with a quarter fewer
    /// multiplications ([`limbs::mont_sqr`]: an ES256 verification 229 -> 205 µs of Envoy CPU,
    /// issue #9); elsewhere `mul`, which was faster for P-384 in the harness (and the group
    /// orders are never squared). Not inlined, as `mul`.
    #[inline(never)]
    pub fn square(&self, a: &Limbs<N>) -> Limbs<N> {
        match self.shape {
            Shape::P256Field if N == 8 => {
                let (mut t, mut w) = ([0; N], [0; 16]);
                limbs::mont_sqr(&P256_FIELD, 1, a, &mut t, &mut w);
                t
            }
            _ => self.mul(a, a),
        }
    }

    pub fn add(&self, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        let mut sum = *a;
        if limbs::add_assign(&mut sum, b) || !limbs::less_than(&sum, &self.m) {
            limbs::sub_assign(&mut sum, &self.m);
        }
        sum
    }

    pub fn sub(&self, a: &Limbs<N>, b: &Limbs<N>) -> Limbs<N> {
        let mut difference = *a;
        if limbs::sub_assign(&mut difference, b) {
            limbs::add_assign(&mut difference, &self.m);
        }
        difference
    }

    /// `a R mod m` of `a < m`.
    pub fn montgomery(&self, a: &Limbs<N>) -> Limbs<N> {
        self.mul(a, &self.r2)
    }

    /// `a` of `a R mod m`.
    pub fn plain(&self, a: &Limbs<N>) -> Limbs<N> {
        self.mul(a, &unit())
    }

    /// `a^e` of `a` in Montgomery form, in Montgomery form (`e` as a plain number).
    pub fn pow(&self, a: &Limbs<N>, e: &Limbs<N>) -> Limbs<N> {
        let mut acc = self.one;
        let mut started = false;
        for limb in e.iter().rev() {
            for bit in (0..32).rev() {
                if started {
                    acc = self.square(&acc);
                }
                if (limb >> bit) & 1 == 1 {
                    acc = if started { self.mul(&acc, a) } else { *a };
                    started = true;
                }
            }
        }
        acc
    }

    /// `a^-1` of a non-zero `a` in Montgomery form (Fermat: `a^(m-2)`), in Montgomery form. The
    /// tests' reference for `invert`.
    #[cfg(test)]
    pub fn invert_fermat(&self, a: &Limbs<N>) -> Limbs<N> {
        let mut e = self.m;
        limbs::sub_assign(&mut e, &small::<N>(2));
        self.pow(a, &e)
    }

    /// `a^-1` of `a` in Montgomery form, in Montgomery form; zero for zero. The binary extended
    /// Euclidean algorithm (variable time, about six times cheaper than Fermat's `a^(m-2)` here)
    /// on `a R` gives `a^-1 R^-1`, and two multiplications by `R^2` make that `a^-1 R`.
    pub fn invert(&self, a: &Limbs<N>) -> Limbs<N> {
        if is_zero(a) {
            return [0; N];
        }
        // Invariants (m odd, gcd(a, m) = 1): x1 a = u and x2 a = v (mod m), u and v positive.
        let (mut u, mut v) = (*a, self.m);
        let (mut x1, mut x2) = (unit::<N>(), [0; N]);
        let one = unit::<N>();
        while u != one && v != one {
            while u[0] & 1 == 0 {
                halve(&mut u, false);
                self.halve_mod(&mut x1);
            }
            while v[0] & 1 == 0 {
                halve(&mut v, false);
                self.halve_mod(&mut x2);
            }
            if limbs::less_than(&u, &v) {
                limbs::sub_assign(&mut v, &u);
                x2 = self.sub(&x2, &x1);
            } else {
                limbs::sub_assign(&mut u, &v);
                x1 = self.sub(&x1, &x2);
            }
            if is_zero(&u) || is_zero(&v) {
                return [0; N]; // gcd(a, m) > 1: not for a prime m
            }
        }
        let inverse = if u == one { x1 } else { x2 };
        self.mul(&self.mul(&inverse, &self.r2), &self.r2)
    }

    /// `x / 2 mod m` of `x < m`: `x / 2` if even, `(x + m) / 2` if odd.
    fn halve_mod(&self, x: &mut Limbs<N>) {
        let carry = x[0] & 1 == 1 && limbs::add_assign(x, &self.m);
        halve(x, carry);
    }

    /// `4 N` big-endian bytes as a number below `m`; `None` for another length or a number not
    /// below `m`.
    pub fn canonical(&self, be: &[u8]) -> Option<Limbs<N>> {
        let a = from_be(be)?;
        limbs::less_than(&a, &self.m).then_some(a)
    }

    /// `4 N` big-endian bytes (any number below `2^(32 N)`, so at most `2 m`) reduced mod `m`.
    pub fn reduce(&self, be: &[u8]) -> Option<Limbs<N>> {
        let mut a = from_be(be)?;
        if !limbs::less_than(&a, &self.m) {
            limbs::sub_assign(&mut a, &self.m);
        }
        Some(a)
    }
}

/// `4 N` big-endian bytes as limbs.
pub fn from_be<const N: usize>(be: &[u8]) -> Option<Limbs<N>> {
    if be.len() != 4 * N {
        return None;
    }
    let mut a = [0; N];
    for (limb, chunk) in a.iter_mut().zip(be.rchunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Some(a)
}

/// `x = (carry 2^(32 N) + x) / 2`.
pub fn halve<const N: usize>(x: &mut Limbs<N>, carry: bool) {
    let mut high = u32::from(carry);
    for limb in x.iter_mut().rev() {
        let low = *limb & 1;
        *limb = (*limb >> 1) | (high << 31);
        high = low;
    }
}

pub fn is_zero<const N: usize>(a: &Limbs<N>) -> bool {
    a.iter().all(|l| *l == 0)
}

pub fn small<const N: usize>(value: u32) -> Limbs<N> {
    let mut a = [0; N];
    a[0] = value;
    a
}

fn unit<const N: usize>() -> Limbs<N> {
    small(1)
}
