//! ES256 / ES384 verification (RFC 7518 section 3.4) with the curve arithmetic of the `p256` and
//! `p384` crates and the point combination done here (issue #9). The crates' verification computes
//! `u1 G + u2 Q` as two separate constant-time scalar multiplications (their `lincomb` has no
//! Shamir's trick yet): twice the doublings, and a constant-time table lookup per window. Every
//! input of a verification is public (the key, the signature, the signed data), so this uses one
//! variable-time pass (Straus): the doublings are shared, a window whose digit is zero adds
//! nothing, and the multiples of `G` are computed once per VM. In the harness an ES256 token with
//! a new signature cost about 1.7 ms before. The crates' `VerifyingKey::verify` is the oracle of
//! the tests below.

use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::{Invert, Reduce};
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::PrimeField;
use sha2::{Digest, Sha256, Sha384};
use std::sync::OnceLock;

/// `[0, P, 2P, ..., 15P]`: the 4-bit window's multiples.
fn multiples<P: Group>(p: P) -> [P; 16] {
    let mut t = [P::identity(); 16];
    t[1] = p;
    for i in 2..16 {
        t[i] = if i % 2 == 0 {
            t[i / 2].double()
        } else {
            t[i - 1] + p
        };
    }
    t
}

/// `u1 G + u2 Q` from the big-endian scalars (the same length), 4 bits at a time from the top:
/// four shared doublings per window, then the two windows' multiples (none for a zero digit).
fn combine<P: Group>(g: &[P; 16], u1: &[u8], q: &[P; 16], u2: &[u8]) -> P {
    let mut acc = P::identity();
    for (&a, &b) in u1.iter().zip(u2) {
        for shift in [4, 0] {
            acc = acc.double().double().double().double();
            let (x, y) = (
                usize::from((a >> shift) & 15),
                usize::from((b >> shift) & 15),
            );
            if x != 0 {
                acc += g[x];
            }
            if y != 0 {
                acc += q[y];
            }
        }
    }
    acc
}

/// ECDSA verification of `input` hashed with the curve's hash (SEC 1 section 4.1.4, as the
/// `ecdsa` crate's `verify_prehashed`): `r` and `s` in `[1, n)` (checked by the signature's
/// parser), `z` the hash reduced mod n, and `x(u1 G + u2 Q) mod n == r` with `u1 = z / s`,
/// `u2 = r / s`; the point at infinity never verifies.
macro_rules! ecdsa_verify {
    ($name:ident, $curve:ident, $hash:ty, $uint:ty, $g:ident) => {
        static $g: OnceLock<[$curve::ProjectivePoint; 16]> = OnceLock::new();

        pub fn $name(key: &$curve::ecdsa::VerifyingKey, input: &[u8], signature: &[u8]) -> bool {
            let Ok(signature) = $curve::ecdsa::Signature::from_slice(signature) else {
                return false;
            };
            let (r, s) = signature.split_scalars();
            let z = <$curve::Scalar as Reduce<$uint>>::reduce_bytes(&<$hash>::digest(input));
            let s_inv = *s.invert_vartime();
            let u1 = z * s_inv;
            let u2 = *r * s_inv;
            let g = $g.get_or_init(|| multiples($curve::ProjectivePoint::generator()));
            let q = multiples($curve::ProjectivePoint::from(*key.as_affine()));
            let point = combine(g, &u1.to_repr(), &q, &u2.to_repr());
            if bool::from(point.is_identity()) {
                return false;
            }
            let x = point.to_affine().x();
            <$curve::Scalar as Reduce<$uint>>::reduce_bytes(&x) == *r
        }
    };
}

ecdsa_verify!(verify_es256, p256, Sha256, p256::U256, P256_G);
ecdsa_verify!(verify_es384, p384, Sha384, p384::U384, P384_G);

#[cfg(test)]
mod tests;
