//! RSA signature verification (RS256/384/512 and PS256/384/512) with the public-key operation
//! done here instead of in the `rsa` crate (issue #9: an uncached RS256 token cost about 800 µs in
//! the `.wasm`, so a client sending forged signatures could keep a worker busy).
//!
//! Wasm has no 64 x 64 -> 128-bit multiply, so numbers are 32-bit limbs and products `u64`;
//! `s^e mod n` uses Montgomery multiplication with `R = 2^(32 * limbs)` and `R^2 mod n`
//! computed once per key. Every input here is public (the key, the signature, the signed data),
//! so nothing needs to run in constant time. The `rsa` crate, which the filter used before, is
//! the oracle of the tests below and of the fuzz target.

use super::limbs::{self, less_than, neg_inverse};
use sha2::digest::{Digest, FixedOutputReset};

/// The smallest modulus accepted (RFC 7518 section 3.3 asks for 2048 bits; the `rsa` crate,
/// which parsed keys before, took 1024).
pub const MIN_MODULUS_BITS: usize = 1024;
/// The largest modulus accepted: the `rsa` crate's limit, so every key that parsed still does.
pub const MAX_MODULUS_BITS: usize = 4096;

/// Why a public key cannot be used (it never holds key material).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeyError {
    /// Not a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an RSA key, nor an `RSA PUBLIC KEY`.
    Pem,
    /// The modulus is even, or smaller or larger than the limits above.
    Modulus,
    /// The exponent is even, below 3 or wider than 64 bits.
    Exponent,
}

/// A public key ready for verification: the modulus in little-endian 32-bit limbs and the
/// constants Montgomery multiplication needs.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublic {
    n: Vec<u32>,
    /// `-n^-1 mod 2^32`.
    n0_inv: u32,
    /// `R^2 mod n`, to bring a number into Montgomery form with one multiplication.
    r2: Vec<u32>,
    e: u64,
    bits: usize,
}

/// rsaEncryption (RFC 8017 appendix A.1), the algorithm of an RSA SubjectPublicKeyInfo.
const RSA_ENCRYPTION: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

impl RsaPublic {
    /// A key from PEM: `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo, RFC 5280) or
    /// `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1, RFC 8017 appendix A.1.1).
    pub fn from_pem(pem: &str) -> Result<Self, RsaKeyError> {
        use der::Decode;
        let (label, doc) = der::Document::from_pem(pem).map_err(|_| RsaKeyError::Pem)?;
        let pkcs1 = match label {
            "PUBLIC KEY" => {
                let info = spki::SubjectPublicKeyInfoRef::from_der(doc.as_bytes())
                    .map_err(|_| RsaKeyError::Pem)?;
                if info.algorithm.oid != RSA_ENCRYPTION {
                    return Err(RsaKeyError::Pem);
                }
                let bits = info.subject_public_key.as_bytes().ok_or(RsaKeyError::Pem)?;
                pkcs1::RsaPublicKey::from_der(bits)
            }
            "RSA PUBLIC KEY" => pkcs1::RsaPublicKey::from_der(doc.as_bytes()),
            _ => return Err(RsaKeyError::Pem),
        }
        .map_err(|_| RsaKeyError::Pem)?;
        RsaPublic::new(pkcs1.modulus.as_bytes(), pkcs1.public_exponent.as_bytes())
    }

    /// A key from its modulus and exponent, both big-endian bytes (leading zeros allowed).
    pub fn new(n_be: &[u8], e_be: &[u8]) -> Result<Self, RsaKeyError> {
        let n = limbs_from_be(n_be);
        let bits = bit_len(&n);
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) || n[0] & 1 == 0 {
            return Err(RsaKeyError::Modulus);
        }
        let n: Vec<u32> = n[..bits.div_ceil(32)].to_vec();
        let e_be = strip_zeros(e_be);
        if e_be.is_empty() || e_be.len() > 8 {
            return Err(RsaKeyError::Exponent);
        }
        let e = e_be.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if e < 3 || e & 1 == 0 {
            return Err(RsaKeyError::Exponent);
        }
        let n0_inv = neg_inverse(n[0]);
        let mut r2 = vec![0u32; n.len()];
        limbs::r_squared(&n, &mut r2);
        Ok(RsaPublic {
            n,
            n0_inv,
            r2,
            e,
            bits,
        })
    }

    /// The modulus in bytes: the length of every signature.
    pub fn size(&self) -> usize {
        self.bits.div_ceil(8)
    }

    /// `signature^e mod n` as `size()` big-endian bytes; `None` when the signature is not exactly
    /// `size()` bytes or not below the modulus (RFC 8017 RSAVP1).
    pub fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.size() {
            return None;
        }
        let len = self.n.len();
        let mut s = limbs_from_be(signature);
        if s.len() > len {
            return None; // cannot happen for size() bytes
        }
        s.resize(len, 0);
        if !less_than(&s, &self.n) {
            return None;
        }
        let mut t = vec![0u32; len];
        // s in Montgomery form (s R mod n), then left-to-right square-and-multiply.
        self.mont_mul(&s, &self.r2, &mut t);
        let base = t[..len].to_vec();
        let mut acc = base.clone();
        let top = 63 - self.e.leading_zeros();
        for bit in (1..top).rev() {
            self.mont_mul(&acc, &acc, &mut t);
            acc.copy_from_slice(&t[..len]);
            if (self.e >> bit) & 1 == 1 {
                self.mont_mul(&acc, &base, &mut t);
                acc.copy_from_slice(&t[..len]);
            }
        }
        // The last bit of the exponent (odd and at least 3, see new()): square, then multiply by
        // s itself rather than by s R: (x R) s / R = x s leaves Montgomery form in the same step.
        self.mont_mul(&acc, &acc, &mut t);
        acc.copy_from_slice(&t[..len]);
        self.mont_mul(&acc, &s, &mut t);
        let m = &t[..len];
        Some(limbs_to_be(m, self.size()))
    }

    /// `a * b / R mod n` into `t[..len]`, `a` and `b` below `n`.
    fn mont_mul(&self, a: &[u32], b: &[u32], t: &mut [u32]) {
        limbs::mont_mul(&self.n, self.n0_inv, a, b, t);
    }
}

/// RSASSA-PKCS1-v1_5 verification (RFC 8017 section 8.2.2) of `input` hashed with `D`, whose
/// DigestInfo prefix is `prefix`.
pub fn verify_pkcs1<D: Digest>(
    key: &RsaPublic,
    prefix: &[u8],
    input: &[u8],
    signature: &[u8],
) -> bool {
    let Some(em) = key.public_op(signature) else {
        return false;
    };
    let hash = D::digest(input);
    let t_len = prefix.len() + hash.len();
    // 0x00 0x01, at least eight 0xff, 0x00, DigestInfo.
    let Some(ps_len) = em.len().checked_sub(t_len + 3) else {
        return false;
    };
    if ps_len < 8 {
        return false;
    }
    let (head, rest) = em.split_at(2);
    let (ps, rest) = rest.split_at(ps_len);
    let (sep, rest) = rest.split_at(1);
    let (got_prefix, got_hash) = rest.split_at(prefix.len());
    head == [0x00, 0x01]
        && ps.iter().all(|b| *b == 0xff)
        && sep == [0x00]
        && got_prefix == prefix
        && got_hash == &hash[..]
}

/// DigestInfo prefixes (RFC 8017 section 9.2, note 1) for SHA-256, SHA-384 and SHA-512.
pub const SHA256_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
pub const SHA384_PREFIX: &[u8] = &[
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
pub const SHA512_PREFIX: &[u8] = &[
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

/// RSASSA-PSS verification (RFC 8017 section 8.1.2, EMSA-PSS-VERIFY in 9.1.2) with MGF1 over the
/// same hash and a salt as long as the hash, as RFC 7518 section 3.5 requires for PS256/384/512.
pub fn verify_pss<D: Digest + FixedOutputReset>(
    key: &RsaPublic,
    input: &[u8],
    signature: &[u8],
) -> bool {
    let Some(m) = key.public_op(signature) else {
        return false;
    };
    let h_len = <D as Digest>::output_size();
    let s_len = h_len;
    let em_bits = key.bits - 1;
    let em_len = em_bits.div_ceil(8);
    // m has size() bytes; EM is its last em_len bytes, and any byte before them must be zero.
    let Some(skip) = m.len().checked_sub(em_len) else {
        return false;
    };
    if m[..skip].iter().any(|b| *b != 0) {
        return false;
    }
    let em = &m[skip..];
    if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
        return false;
    }
    let db_len = em_len - h_len - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let h = &rest[..h_len];
    let unused_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8 >> unused_bits;
    if masked_db.first().is_some_and(|b| b & !top_mask != 0) {
        return false;
    }
    let mut db = masked_db.to_vec();
    mgf1_xor::<D>(&mut db, h);
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // DB = zeros || 0x01 || salt.
    let zeros = db_len - s_len - 1;
    if db[..zeros].iter().any(|b| *b != 0) || db[zeros] != 0x01 {
        return false;
    }
    let salt = &db[zeros + 1..];
    let mut hasher = D::new();
    Digest::update(&mut hasher, [0u8; 8]);
    Digest::update(&mut hasher, D::digest(input));
    Digest::update(&mut hasher, salt);
    hasher.finalize()[..] == *h
}

/// `data ^= MGF1(seed)` (RFC 8017 appendix B.2.1).
fn mgf1_xor<D: Digest + FixedOutputReset>(data: &mut [u8], seed: &[u8]) {
    let mut hasher = D::new();
    for (counter, chunk) in (0u32..).zip(data.chunks_mut(<D as Digest>::output_size())) {
        Digest::update(&mut hasher, seed);
        Digest::update(&mut hasher, counter.to_be_bytes());
        let mask = hasher.finalize_reset();
        for (d, m) in chunk.iter_mut().zip(mask.iter()) {
            *d ^= m;
        }
    }
}

fn strip_zeros(be: &[u8]) -> &[u8] {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    &be[start..]
}

/// Little-endian limbs of a big-endian number (at least one limb).
fn limbs_from_be(be: &[u8]) -> Vec<u32> {
    let be = strip_zeros(be);
    let mut limbs: Vec<u32> = be
        .rchunks(4)
        .map(|c| c.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
        .collect();
    if limbs.is_empty() {
        limbs.push(0);
    }
    limbs
}

/// `len` big-endian bytes of a number known to fit.
fn limbs_to_be(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    let extra = out.len().saturating_sub(len);
    out.drain(..extra);
    out
}

fn bit_len(limbs: &[u32]) -> usize {
    match limbs.iter().rposition(|l| *l != 0) {
        Some(i) => i * 32 + (32 - limbs[i].leading_zeros() as usize),
        None => 0,
    }
}

#[cfg(test)]
mod tests;
