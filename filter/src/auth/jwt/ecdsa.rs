//! ES256 / ES384 verification (RFC 7518 section 3.4) on P-256 and P-384 with the filter's own
//! curve arithmetic (issue #9): the `p256` / `p384` crates' verification computed `u1 G + u2 Q`
//! as two constant-time scalar multiplications with complete addition formulas, and their
//! field code (fiat-crypto's straight-line 32-bit arithmetic) was a sixth of the `.wasm`. Every
//! input of a verification is public (the key, the signature, the signed data), so this is
//! variable time: Montgomery multiplication shared with RSA (`limbs`), Jacobian coordinates
//! with `a = -3` formulas, one Straus pass over signed windows of both scalars (shared
//! doublings; wNAF digits, 7 bits wide for `G`, whose odd multiples are made once per VM, 5 for
//! the key, whose odd multiples are made when it is read), binary extended Euclidean inversion,
//! and no inversion for the final comparison.
//! The crates remain the tests' and the fuzz target's oracle.

mod curve;
mod field;

use curve::{Curve, KeyTable, Params};
use sha2::{Digest, Sha256, Sha384};
use std::sync::OnceLock;

const P256: Params = Params {
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    gx: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    gy: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
};

const P384: Params = Params {
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    gx: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
    gy: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
};

/// id-ecPublicKey (RFC 5480 section 2.1.1) and the named curves' OIDs.
const ID_EC_PUBLIC_KEY: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The curve's constants and its generator's multiples, made once per VM.
fn p256() -> Option<&'static Curve<8>> {
    static CURVE: OnceLock<Option<Curve<8>>> = OnceLock::new();
    CURVE.get_or_init(|| Curve::new(&P256)).as_ref()
}

fn p384() -> Option<&'static Curve<12>> {
    static CURVE: OnceLock<Option<Curve<12>>> = OnceLock::new();
    CURVE.get_or_init(|| Curve::new(&P384)).as_ref()
}

/// A P-256 (`N = 8`) or P-384 (`N = 12`) public key: a point on the curve, with the multiples
/// verification adds (made when the key is read: 0.5 KB for P-256, 0.75 KB for P-384).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcPublic<const N: usize>(KeyTable<N>);

pub type P256Public = EcPublic<8>;
pub type P384Public = EcPublic<12>;

/// A SEC 1 encoded point (section 2.3.3): `04 || x || y`, or `02 || x` / `03 || x` for an even
/// / odd `y`; coordinates below `p` and on the curve. The point at infinity (`00`) is no key.
fn decode_point<const N: usize>(curve: &Curve<N>, sec1: &[u8]) -> Option<EcPublic<N>> {
    let (&tag, rest) = sec1.split_first()?;
    let coordinate = |bytes: &[u8]| curve.field().canonical(bytes);
    match (tag, rest.len()) {
        (0x04, len) if len == 8 * N => {
            let (x, y) = rest.split_at(4 * N);
            curve.point(&coordinate(x)?, &coordinate(y)?)
        }
        (0x02 | 0x03, len) if len == 4 * N => curve.decompress(&coordinate(rest)?, tag == 0x03),
        _ => None,
    }
    .and_then(|point| curve.key_table(&point))
    .map(EcPublic)
}

/// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo, RFC 5480) of an EC key on the named curve `oid`.
fn from_pem<const N: usize>(
    curve: &Curve<N>,
    oid: der::asn1::ObjectIdentifier,
    pem: &str,
) -> Option<EcPublic<N>> {
    use der::Decode;
    let (label, doc) = der::Document::from_pem(pem).ok()?;
    if label != "PUBLIC KEY" {
        return None;
    }
    let info = spki::SubjectPublicKeyInfoRef::from_der(doc.as_bytes()).ok()?;
    if info.algorithm.oid != ID_EC_PUBLIC_KEY || info.algorithm.parameters_oid().ok()? != oid {
        return None;
    }
    decode_point(curve, info.subject_public_key.as_bytes()?)
}

impl P256Public {
    pub fn from_pem(pem: &str) -> Option<Self> {
        from_pem(p256()?, SECP256R1, pem)
    }

    pub fn from_sec1(sec1: &[u8]) -> Option<Self> {
        decode_point(p256()?, sec1)
    }
}

impl P384Public {
    pub fn from_pem(pem: &str) -> Option<Self> {
        from_pem(p384()?, SECP384R1, pem)
    }

    pub fn from_sec1(sec1: &[u8]) -> Option<Self> {
        decode_point(p384()?, sec1)
    }
}

/// Whether `signature` (`r || s`, 64 bytes) is an ES256 signature of `input` under `key`.
pub fn verify_es256(key: &P256Public, input: &[u8], signature: &[u8]) -> bool {
    p256().is_some_and(|curve| curve.verify(&key.0, &Sha256::digest(input), signature))
}

/// Whether `signature` (`r || s`, 96 bytes) is an ES384 signature of `input` under `key`.
pub fn verify_es384(key: &P384Public, input: &[u8], signature: &[u8]) -> bool {
    p384().is_some_and(|curve| curve.verify(&key.0, &Sha384::digest(input), signature))
}

#[cfg(test)]
mod tests;
