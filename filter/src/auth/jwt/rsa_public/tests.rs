//! The public-key operation against `num-bigint-dig`'s `modpow`, and the two paddings against the
//! `rsa` crate's verification (the implementation the filter used before), on keys and
//! signatures made by Python's `cryptography` (tests/data/gen_rsa_vectors.py) and on encoded
//! messages built here, malformed ones included, signed with the test keys' private exponents.

use super::*;
use rsa::signature::Verifier;
use rsa::BigUint;
use sha2::{Sha256, Sha384, Sha512};

const VECTORS: &str = include_str!("../../../../tests/data/rsa_vectors.json");

/// xorshift64*: deterministic bytes for the tests, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `x` as exactly `len` big-endian bytes.
fn be(x: &BigUint, len: usize) -> Vec<u8> {
    let b = x.to_bytes_be();
    let mut out = vec![0u8; len - b.len()];
    out.extend_from_slice(&b);
    out
}

/// A random odd modulus of exactly `bits` bits.
fn modulus(rng: &mut Rng, bits: usize) -> BigUint {
    let mut b = rng.bytes(bits.div_ceil(8));
    let top = (bits - 1) % 8;
    b[0] &= 0xffu8 >> (7 - top);
    b[0] |= 1 << top;
    let last = b.len() - 1;
    b[last] |= 1;
    BigUint::from_bytes_be(&b)
}

#[test]
fn public_op_matches_modpow() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sizes = [1024, 1025, 1055, 1056, 2047, 2048, 2049, 3072, 4095, 4096];
    for (case, bits) in sizes.iter().cycle().take(30).enumerate() {
        let n = modulus(&mut rng, *bits);
        let e: u64 = match case % 3 {
            0 => 65537,
            1 => 3,
            _ => rng.next() | 1 | (1 << 63),
        };
        let key = RsaPublic::new(&n.to_bytes_be(), &e.to_be_bytes()).unwrap();
        let size = bits.div_ceil(8);
        assert_eq!(key.size(), size);
        let mut bases = vec![
            BigUint::from(0u32),
            BigUint::from(1u32),
            BigUint::from(2u32),
            &n - 1u32,
        ];
        for _ in 0..3 {
            bases.push(BigUint::from_bytes_be(&rng.bytes(size)) % &n);
        }
        for s in bases {
            let want = be(&s.modpow(&BigUint::from(e), &n), size);
            assert_eq!(
                key.public_op(&be(&s, size)),
                Some(want),
                "{bits} bits, e {e}"
            );
        }
        // Not below the modulus, or not exactly the modulus's length: refused.
        assert_eq!(key.public_op(&be(&n, size)), None);
        if bits % 8 != 0 {
            assert_eq!(key.public_op(&be(&(&n + 1u32), size)), None);
        }
        assert_eq!(key.public_op(&vec![0xff; size]), None);
        assert_eq!(key.public_op(&vec![1; size - 1]), None);
        assert_eq!(key.public_op(&vec![0; size + 1]), None);
        assert_eq!(key.public_op(&[]), None);
    }
}

/// The largest limbs the arithmetic can meet: moduli of all ones (every limb of n at its
/// maximum) from the smallest to the largest size, and bases near n. Tests run with overflow
/// checks: a sum in the multiplication that did not fit in a u64 would panic here.
#[test]
fn widest_limbs_do_not_overflow() {
    for bits in [1024, 2048, 3357, 3358, 3359, 4095, 4096] {
        let n = (BigUint::from(1u32) << bits) - 1u32;
        let size = bits.div_ceil(8);
        for e in [3u64, 65537, u64::MAX] {
            let key = RsaPublic::new(&n.to_bytes_be(), &e.to_be_bytes()).unwrap();
            for s in [&n - 1u32, &n - 2u32, &n >> 1] {
                let want = be(&s.modpow(&BigUint::from(e), &n), size);
                assert_eq!(
                    key.public_op(&be(&s, size)),
                    Some(want),
                    "{bits} bits, e {e}"
                );
            }
        }
    }
}

#[test]
fn unusable_keys_are_refused() {
    let mut rng = Rng(7);
    let n2048 = modulus(&mut rng, 2048).to_bytes_be();
    let e = 65537u32.to_be_bytes();
    assert!(RsaPublic::new(&n2048, &e).is_ok());
    let even = (BigUint::from_bytes_be(&n2048) - 1u32).to_bytes_be();
    assert_eq!(RsaPublic::new(&even, &e).err(), Some(RsaKeyError::Modulus));
    let small = modulus(&mut rng, 1023).to_bytes_be();
    assert_eq!(RsaPublic::new(&small, &e).err(), Some(RsaKeyError::Modulus));
    let large = modulus(&mut rng, 4097).to_bytes_be();
    assert_eq!(RsaPublic::new(&large, &e).err(), Some(RsaKeyError::Modulus));
    assert_eq!(RsaPublic::new(&[], &e).err(), Some(RsaKeyError::Modulus));
    for bad_e in [&[][..], &[0], &[1], &[2], &[1, 0], &[1; 9]] {
        assert_eq!(
            RsaPublic::new(&n2048, bad_e).err(),
            Some(RsaKeyError::Exponent),
            "{bad_e:?}"
        );
    }
    // Leading zero bytes are not significant.
    let mut padded = vec![0, 0];
    padded.extend_from_slice(&n2048);
    assert!(RsaPublic::new(&padded, &[0, 0, 0, 3]).is_ok());
}

struct TestKey {
    bits: usize,
    n: BigUint,
    e: BigUint,
    d: BigUint,
    ours: RsaPublic,
    theirs: rsa::RsaPublicKey,
    message: Vec<u8>,
    signatures: Vec<(String, Vec<u8>)>,
}

impl TestKey {
    fn size(&self) -> usize {
        self.bits.div_ceil(8)
    }
    /// The signature whose public operation gives `em` (raw RSA with the private exponent).
    fn sign_raw(&self, em: &[u8]) -> Vec<u8> {
        be(
            &BigUint::from_bytes_be(em).modpow(&self.d, &self.n),
            self.size(),
        )
    }
    fn open_raw(&self, sig: &[u8]) -> Vec<u8> {
        be(
            &BigUint::from_bytes_be(sig).modpow(&self.e, &self.n),
            self.size(),
        )
    }
}

fn hex(s: &str) -> BigUint {
    BigUint::parse_bytes(s.as_bytes(), 16).unwrap()
}

fn test_keys() -> Vec<TestKey> {
    use rsa::pkcs8::DecodePublicKey;
    let keys: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
    keys.iter()
        .map(|k| {
            let (n, e) = (hex(k["n"].as_str().unwrap()), hex(k["e"].as_str().unwrap()));
            assert_eq!(n.bits() as u64, k["bits"].as_u64().unwrap());
            TestKey {
                bits: n.bits(),
                ours: RsaPublic::new(&n.to_bytes_be(), &e.to_bytes_be()).unwrap(),
                theirs: rsa::RsaPublicKey::from_public_key_pem(k["public_pem"].as_str().unwrap())
                    .unwrap(),
                d: hex(k["d"].as_str().unwrap()),
                n,
                e,
                message: k["message"].as_str().unwrap().as_bytes().to_vec(),
                signatures: k["signatures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        let sig = s["signature"].as_str().unwrap();
                        let bytes = (0..sig.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&sig[i..i + 2], 16).unwrap())
                            .collect();
                        (s["alg"].as_str().unwrap().to_string(), bytes)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// (our verdict, the `rsa` crate's verdict) for `alg` ("RS256" ... "PS512").
fn verdicts(key: &TestKey, alg: &str, msg: &[u8], sig: &[u8]) -> (bool, bool) {
    fn theirs_pkcs1<D: sha2::Digest + rsa::pkcs8::AssociatedOid>(
        k: &rsa::RsaPublicKey,
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| {
            rsa::pkcs1v15::VerifyingKey::<D>::new(k.clone())
                .verify(msg, &s)
                .is_ok()
        })
    }
    fn theirs_pss<D: sha2::Digest + FixedOutputReset>(
        k: &rsa::RsaPublicKey,
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        rsa::pss::Signature::try_from(sig).is_ok_and(|s| {
            rsa::pss::VerifyingKey::<D>::new(k.clone())
                .verify(msg, &s)
                .is_ok()
        })
    }
    let (o, t) = (&key.ours, &key.theirs);
    match alg {
        "RS256" => (
            verify_pkcs1::<Sha256>(o, SHA256_PREFIX, msg, sig),
            theirs_pkcs1::<Sha256>(t, msg, sig),
        ),
        "RS384" => (
            verify_pkcs1::<Sha384>(o, SHA384_PREFIX, msg, sig),
            theirs_pkcs1::<Sha384>(t, msg, sig),
        ),
        "RS512" => (
            verify_pkcs1::<Sha512>(o, SHA512_PREFIX, msg, sig),
            theirs_pkcs1::<Sha512>(t, msg, sig),
        ),
        "PS256" => (
            verify_pss::<Sha256>(o, msg, sig),
            theirs_pss::<Sha256>(t, msg, sig),
        ),
        "PS384" => (
            verify_pss::<Sha384>(o, msg, sig),
            theirs_pss::<Sha384>(t, msg, sig),
        ),
        "PS512" => (
            verify_pss::<Sha512>(o, msg, sig),
            theirs_pss::<Sha512>(t, msg, sig),
        ),
        other => panic!("unknown {other}"),
    }
}

#[test]
fn signatures_from_cryptography_verify() {
    for key in test_keys() {
        assert!(!key.signatures.is_empty());
        for (alg, sig) in &key.signatures {
            let what = format!("{} bits, {alg}", key.bits);
            assert_eq!(
                verdicts(&key, alg, &key.message, sig),
                (true, true),
                "{what}"
            );
            let mut other = key.message.clone();
            other.push(b'x');
            assert_eq!(verdicts(&key, alg, &other, sig), (false, false), "{what}");
            // The same signature under another padding or hash.
            for wrong in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
                if wrong != alg {
                    let v = verdicts(&key, wrong, &key.message, sig);
                    assert_eq!(v, (false, false), "{what} as {wrong}");
                }
            }
        }
    }
}

/// Flip one byte of an encoded message at each of several places (every field of both paddings
/// and their borders), sign it with the private exponent: both implementations must agree.
#[test]
fn malformed_encodings_agree_with_the_rsa_crate() {
    let mut rng = Rng(0x1234_5678);
    let mut refused = 0;
    // Up to 2056 bits: signing with the private exponent of the larger keys takes too long here.
    for key in test_keys().into_iter().filter(|k| k.bits <= 2056) {
        for (alg, sig) in &key.signatures {
            let em = key.open_raw(sig);
            assert_eq!(key.sign_raw(&em), *sig);
            let k = em.len();
            let mut places: Vec<usize> = vec![0, 1, 2, 3, k / 2, k - 70, k - 66, k - 65, k - 64];
            places.extend([
                k - 52,
                k - 51,
                k - 50,
                k - 49,
                k - 48,
                k - 35,
                k - 34,
                k - 33,
            ]);
            places.extend([k - 32, k - 20, k - 19, k - 18, k - 2, k - 1]);
            places.extend((0..4).map(|_| (rng.next() as usize) % k));
            for at in places {
                let flips: &[u8] = if at < 2 || at + 2 >= k {
                    &[0x01, 0x80, 0xff]
                } else {
                    &[0x01]
                };
                for &flip in flips {
                    let mut bad = em.clone();
                    bad[at] ^= flip;
                    if BigUint::from_bytes_be(&bad) >= key.n {
                        continue;
                    }
                    let forged = key.sign_raw(&bad);
                    let (ours, theirs) = verdicts(&key, alg, &key.message, &forged);
                    let what = format!("{} bits, {alg}, byte {at} ^ {flip:#x}", key.bits);
                    if alg.starts_with("PS") && key.bits % 8 == 1 && at == 0 {
                        // PSS with a modulus of 8k + 1 bits: the encoded message is one byte
                        // shorter than the modulus, so the first byte must be zero (RFC 8017
                        // section 8.1.2, step 2c: I2OSP "integer too large"). The rsa crate skips
                        // that byte unread and accepts a second signature for the same message.
                        assert_eq!((ours, theirs), (false, true), "{what}");
                        continue;
                    }
                    assert_eq!(ours, theirs, "{what}");
                    refused += usize::from(!ours);
                }
            }
        }
    }
    assert!(refused > 500, "{refused}");
}

/// PKCS#1 v1.5 encodings with the right hash but another layout: DigestInfo without the NULL
/// parameters, a padding string shorter than eight bytes, a 0x00 0x02 block.
#[test]
fn pkcs1_layout_variants_are_refused() {
    for key in test_keys().iter().filter(|k| k.bits >= 2048) {
        let hash = Sha256::digest(&key.message);
        let build = |head: &[u8], prefix: &[u8], ps_len: usize| {
            let mut em = head.to_vec();
            em.extend(std::iter::repeat_n(0xffu8, ps_len));
            em.push(0);
            em.extend_from_slice(prefix);
            em.extend_from_slice(&hash);
            em
        };
        let k = key.size();
        let t = SHA256_PREFIX.len() + hash.len();
        let good = build(&[0, 1], SHA256_PREFIX, k - t - 3);
        assert_eq!(
            verdicts(key, "RS256", &key.message, &key.sign_raw(&good)),
            (true, true)
        );
        let no_null: &[u8] = &[
            0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x04, 0x20,
        ];
        let variants = [
            build(&[0, 1], no_null, k - no_null.len() - hash.len() - 3),
            build(&[0, 2], SHA256_PREFIX, k - t - 3),
            {
                // 0x00 0x01, five 0xff, 0x00, then the DigestInfo after filler bytes.
                let mut em = vec![0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0];
                em.extend(std::iter::repeat_n(0u8, k - 8 - t));
                em.extend_from_slice(SHA256_PREFIX);
                em.extend_from_slice(&hash);
                em
            },
        ];
        for em in variants {
            assert_eq!(em.len(), k);
            let v = verdicts(key, "RS256", &key.message, &key.sign_raw(&em));
            assert_eq!(v, (false, false), "{} bits", key.bits);
        }
    }
}

/// A 512-bit modulus (random, not a real key), as SubjectPublicKeyInfo and as PKCS#1.
const SMALL_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAIBxfc/HA2jqwSF1e/v91hFOAe9dxekY
IOl6Dpaal2XimZjdff3u08LJsfex1JoQLZIJ1gWci48zhVCZ90wWjVECAwEAAQ==
-----END PUBLIC KEY-----";
const SMALL_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MEgCQQCAcX3PxwNo6sEhdXv7/dYRTgHvXcXpGCDpeg6Wmpdl4pmY3X397tPCybH3
sdSaEC2SCdYFnIuPM4VQmfdMFo1RAgMBAAE=
-----END RSA PUBLIC KEY-----";

#[test]
fn pem_keys_read_as_the_rsa_crate_reads_them() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    for key in test_keys() {
        let spki = key.theirs.to_public_key_pem(Default::default()).unwrap();
        assert!(
            RsaPublic::from_pem(&spki) == Ok(key.ours.clone()),
            "{} bits",
            key.bits
        );
        let pkcs1 = key.theirs.to_pkcs1_pem(Default::default()).unwrap();
        assert!(
            RsaPublic::from_pem(&pkcs1) == Ok(key.ours.clone()),
            "{} bits",
            key.bits
        );
    }
    assert_eq!(
        RsaPublic::from_pem(SMALL_SPKI).err(),
        Some(RsaKeyError::Modulus)
    );
    assert_eq!(
        RsaPublic::from_pem(SMALL_PKCS1).err(),
        Some(RsaKeyError::Modulus)
    );
    // What an operator sees for it: the problem named, not "not a PEM key".
    use crate::auth::jwt::{JwtAlgorithm, KeyError, VerifyKey};
    let err = VerifyKey::new(JwtAlgorithm::RS256, SMALL_SPKI, false).unwrap_err();
    assert_eq!(err, KeyError::Rsa(RsaKeyError::Modulus));
    assert_eq!(
        err.to_string(),
        "the RSA key's modulus must be 1024 to 4096 bits"
    );
    let jwt: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../../../tests/data/jwt_vectors.json")).unwrap();
    let ec = jwt.iter().find(|v| v["name"] == "es256").unwrap()["key"]
        .as_str()
        .unwrap();
    assert!(ec.contains("BEGIN PUBLIC KEY"));
    for bad in [
        ec,
        "",
        "not pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        &SMALL_SPKI.replace("PUBLIC KEY", "CERTIFICATE"),
        &SMALL_PKCS1.replace("RSA PUBLIC KEY", "PUBLIC KEY"),
    ] {
        assert_eq!(
            RsaPublic::from_pem(bad).err(),
            Some(RsaKeyError::Pem),
            "{bad}"
        );
    }
}
