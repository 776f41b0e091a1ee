//! Little-endian 32-bit limbs and Montgomery arithmetic, shared by the RSA public-key
//! operation (`rsa_public`, a length known at run time) and the ECDSA curve arithmetic (`ecdsa`,
//! fixed-size arrays, where LLVM unrolls the loops once this is inlined). Wasm has no
//! 64 x 64 -> 128-bit multiply, so limbs are 32 bits and products `u64`. Nothing here runs in
//! constant time: every number it sees in this filter is public (keys, signatures, signed data).

/// `a < b`, both the same length.
pub fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo `2^(32 len)`; whether it borrowed.
pub fn sub_assign(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (d1, b1) = x.overflowing_sub(*y);
        let (d2, b2) = d1.overflowing_sub(u32::from(borrow));
        *x = d2;
        borrow = b1 || b2;
    }
    borrow
}

/// `a += b` modulo `2^(32 len)`; whether it carried.
pub fn add_assign(a: &mut [u32], b: &[u32]) -> bool {
    let mut carry = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (s1, c1) = x.overflowing_add(*y);
        let (s2, c2) = s1.overflowing_add(u32::from(carry));
        *x = s2;
        carry = c1 || c2;
    }
    carry
}

/// `-n0^-1 mod 2^32` for odd `n0` (Newton's iteration doubles the correct bits each step).
pub fn neg_inverse(n0: u32) -> u32 {
    let mut inv: u32 = 1;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// `x = 2^(64 len) mod n` (`R^2` for `R = 2^(32 len)`), `x` as long as `n`, by doubling 1 that
/// many times and subtracting `n` whenever it is reached.
pub fn r_squared(n: &[u32], x: &mut [u32]) {
    x.fill(0);
    if let Some(first) = x.first_mut() {
        *first = 1;
    }
    for _ in 0..64 * n.len() {
        let mut carry = 0u32;
        for l in x.iter_mut() {
            let next = *l >> 31;
            *l = (*l << 1) | carry;
            carry = next;
        }
        if carry != 0 || !less_than(x, n) {
            sub_assign(x, n);
        }
    }
}

/// `a * b / R mod n` into `t` (as long as `n`), `a` and `b` below `n`, `n0_inv = -n^-1 mod
/// 2^32`: CIOS Montgomery multiplication with the product and the reduction in one pass.
#[inline(always)]
pub fn mont_mul(n: &[u32], n0_inv: u32, a: &[u32], b: &[u32], t: &mut [u32]) {
    let len = n.len();
    let (a, b, t) = (&a[..len], &b[..len], &mut t[..len]);
    t.fill(0);
    // t's limb above `len`: t stays below 2n, so it is 0 or 1.
    let mut top = 0u64;
    for &bi in b {
        let bi = u64::from(bi);
        // Every sum below is at most (2^32-1)^2 + 2 (2^32-1) = 2^64 - 1: none overflows.
        let x = u64::from(t[0]) + u64::from(a[0]) * bi;
        let mut c1 = x >> 32;
        let m = u64::from((x as u32).wrapping_mul(n0_inv));
        // The low 32 bits of y are zero by the choice of m: the shift drops them.
        let mut c2 = (u64::from(x as u32) + m * u64::from(n[0])) >> 32;
        for j in 1..len {
            let x = u64::from(t[j]) + u64::from(a[j]) * bi + c1;
            c1 = x >> 32;
            let y = u64::from(x as u32) + m * u64::from(n[j]) + c2;
            c2 = y >> 32;
            t[j - 1] = y as u32;
        }
        let x = top + c1 + c2;
        t[len - 1] = x as u32;
        top = x >> 32;
    }
    if top != 0 || !less_than(t, n) {
        sub_assign(t, n);
    }
}

/// `a * a / R mod n` into `t` (as long as `n`), `a` below `n`, with `w` a scratch of at least
/// twice `n`'s length: [`mont_mul`] of `a` by itself with about a quarter fewer multiplications.
/// The square is made first, each cross product `a[i] a[j]` (i < j) once and then doubled, and
/// then reduced (Montgomery's REDC, limb by limb). Inlined as [`mont_mul`] is, for P-256's
/// field, where it is faster than `mont_mul` in V8 (issue #9). Not used for RSA: on 64 and more
/// limbs the scratch's loads and stores cost more than the multiplications saved (a 2048-bit
/// verification 88 -> 97-102 µs of Envoy CPU).
#[inline(always)]
pub fn mont_sqr(n: &[u32], n0_inv: u32, a: &[u32], t: &mut [u32], w: &mut [u32]) {
    let len = n.len();
    let (a, t, w) = (&a[..len], &mut t[..len], &mut w[..2 * len]);
    w.fill(0);
    // The cross products: sum over i < j of a[i] a[j] 2^(32 (i + j)), below 2^(64 len - 1).
    for (i, &ai) in a.iter().enumerate() {
        let ai = u64::from(ai);
        let mut c = 0u64;
        // Limbs i + j for j in i+1..len.
        for (wk, &aj) in w[2 * i + 1..i + len].iter_mut().zip(&a[i + 1..]) {
            // At most (2^32-1) + (2^32-1)^2 + (2^32-1) = 2^64 - 1.
            let x = u64::from(*wk) + ai * u64::from(aj) + c;
            *wk = x as u32;
            c = x >> 32;
        }
        // Earlier rows reached limb i + len - 1 at most: limb i + len is still 0 here.
        w[i + len] = c as u32;
    }
    // Doubled (a shift by one bit, which cannot overflow: the sum is below 2^(64 len - 1)),
    // and the squares a[i]^2 added at limb 2i, in one pass from the bottom.
    let mut shifted_out = 0u32;
    let mut c = 0u64;
    for (i, &ai) in a.iter().enumerate() {
        let sq = u64::from(ai) * u64::from(ai);
        let (lo, hi) = (w[2 * i], w[2 * i + 1]);
        let lo2 = (lo << 1) | shifted_out;
        let hi2 = (hi << 1) | (lo >> 31);
        shifted_out = hi >> 31;
        let x = u64::from(lo2) + (sq & 0xffff_ffff) + c;
        w[2 * i] = x as u32;
        let y = u64::from(hi2) + (sq >> 32) + (x >> 32);
        w[2 * i + 1] = y as u32;
        c = y >> 32;
    }
    // a^2 < 2^(64 len): neither the shift nor the last sum leaves anything above w.
    debug_assert!(shifted_out == 0 && c == 0);
    // REDC: add m n 2^(32 i) to clear limb i, for each i; a carry out of limb i + len is held
    // in `top` and added one limb higher with the next row. w < n^2 < n R, so the result,
    // w[len..] plus top above it, is below 2n.
    let mut top = 0u64;
    for i in 0..len {
        let m = u64::from(w[i].wrapping_mul(n0_inv));
        let mut c = 0u64;
        for (wk, &nj) in w[i..i + len].iter_mut().zip(n) {
            let x = u64::from(*wk) + m * u64::from(nj) + c;
            *wk = x as u32;
            c = x >> 32;
        }
        let x = u64::from(w[i + len]) + c + top;
        w[i + len] = x as u32;
        top = x >> 32;
    }
    t.copy_from_slice(&w[len..]);
    if top != 0 || !less_than(t, n) {
        sub_assign(t, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 32) as u32
        }
    }

    /// Squaring is multiplication by itself, for every length a modulus can have here, on
    /// random moduli, on moduli of all ones (the widest limbs: overflow checks are on in tests),
    /// and on the edge values 0, 1, n - 1 and random values below n.
    #[test]
    fn squaring_is_multiplying_by_itself() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for len in (1..=20).chain([32, 64, 96, 128]) {
            for case in 0..6 {
                let mut n: Vec<u32> = (0..len).map(|_| rng.next()).collect();
                if case == 0 {
                    n.fill(u32::MAX);
                }
                n[0] |= 1;
                n[len - 1] |= 1 << 31;
                let n0_inv = neg_inverse(n[0]);
                let below_n = |rng: &mut Rng| {
                    let mut a: Vec<u32> = (0..len).map(|_| rng.next()).collect();
                    while !less_than(&a, &n) {
                        a[len - 1] >>= 1;
                    }
                    a
                };
                let mut one = vec![0u32; len];
                one[0] = 1;
                let mut n_minus_1 = n.clone();
                sub_assign(&mut n_minus_1, &one);
                let mut values = vec![vec![0u32; len], one, n_minus_1];
                for _ in 0..8 {
                    values.push(below_n(&mut rng));
                }
                for a in &values {
                    let (mut want, mut got, mut w) =
                        (vec![0u32; len], vec![0u32; len], vec![0u32; 2 * len]);
                    mont_mul(&n, n0_inv, a, a, &mut want);
                    mont_sqr(&n, n0_inv, a, &mut got, &mut w);
                    assert_eq!(got, want, "{len} limbs, case {case}, a {a:x?}");
                }
            }
        }
    }
}
