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

    #[inline(always)]
    pub fn square(&self, a: &Limbs<N>) -> Limbs<N> {
        self.mul(a, a)
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

    /// `a^-1` of a non-zero `a` in Montgomery form (Fermat: `a^(m-2)`), in Montgomery form.
    pub fn invert(&self, a: &Limbs<N>) -> Limbs<N> {
        let mut e = self.m;
        limbs::sub_assign(&mut e, &small::<N>(2));
        self.pow(a, &e)
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
