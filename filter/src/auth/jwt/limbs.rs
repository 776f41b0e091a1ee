//! Little-endian 32-bit limbs and Montgomery multiplication, shared by the RSA public-key
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
