use super::*;
use p256::ecdsa::signature::{Signer, Verifier};
use rsa::BigUint;

/// The group orders (SEC 2): a signature's scalars are below them.
const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_ORDER: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

/// A deterministic stream of test bytes (xorshift).
struct Rng(u64);

impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 as u8
            })
            .collect()
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Signatures to try for one key and message: the valid one, then every kind of wrong one.
fn variants(valid: &[u8], order: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let half = valid.len() / 2;
    let mut out = vec![valid.to_vec()];
    for i in [0, half - 1, half, valid.len() - 1] {
        let mut v = valid.to_vec();
        v[i] ^= 1;
        out.push(v);
    }
    // r and s swapped
    out.push([&valid[half..], &valid[..half]].concat());
    // s replaced by n - s (the same signature's other form: valid for ECDSA)
    let s = BigUint::from_bytes_be(&valid[half..]);
    let n = BigUint::from_bytes_be(order);
    let neg = (&n - s).to_bytes_be();
    let mut other = valid[..half].to_vec();
    other.extend(std::iter::repeat_n(0, half - neg.len()));
    other.extend(neg);
    out.push(other);
    // zeros, n itself, all ones, random, short, long
    out.push(vec![0; valid.len()]);
    out.push([order, order].concat());
    out.push(vec![0xff; valid.len()]);
    out.push(rng.bytes(valid.len()));
    out.push(valid[..valid.len() - 1].to_vec());
    out.push([valid, &[0]].concat());
    out
}

#[test]
fn es256_agrees_with_the_p256_crate() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let order = hex(P256_ORDER);
    for case in 0..24 {
        let signing = p256::ecdsa::SigningKey::from_slice(&rng.bytes(32)).unwrap();
        let key = *signing.verifying_key();
        let msg = rng.bytes(case * 7);
        let sig: p256::ecdsa::Signature = signing.sign(&msg);
        let mut verified = 0;
        for candidate in variants(&sig.to_bytes(), &order, &mut rng) {
            let theirs = p256::ecdsa::Signature::from_slice(&candidate)
                .is_ok_and(|s| key.verify(&msg, &s).is_ok());
            assert_eq!(verify_es256(&key, &msg, &candidate), theirs, "case {case}");
            verified += usize::from(theirs);
        }
        // the valid signature and its n - s form
        assert_eq!(verified, 2, "case {case}");
        assert!(!verify_es256(
            &key,
            &[msg.as_slice(), b"x"].concat(),
            &sig.to_bytes()
        ));
    }
}

#[test]
fn es384_agrees_with_the_p384_crate() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let order = hex(P384_ORDER);
    for case in 0..12 {
        let signing = p384::ecdsa::SigningKey::from_slice(&rng.bytes(48)).unwrap();
        let key = *signing.verifying_key();
        let msg = rng.bytes(case * 11);
        let sig: p384::ecdsa::Signature = signing.sign(&msg);
        let mut verified = 0;
        for candidate in variants(&sig.to_bytes(), &order, &mut rng) {
            let theirs = p384::ecdsa::Signature::from_slice(&candidate)
                .is_ok_and(|s| key.verify(&msg, &s).is_ok());
            assert_eq!(verify_es384(&key, &msg, &candidate), theirs, "case {case}");
            verified += usize::from(theirs);
        }
        assert_eq!(verified, 2, "case {case}");
    }
}

/// A signature made with another key never verifies; keys that are small multiples of G (the
/// two tables share points) still verify and refuse like the crate.
#[test]
fn other_keys_and_small_multiples() {
    let mut rng = Rng(77);
    let a = p256::ecdsa::SigningKey::from_slice(&rng.bytes(32)).unwrap();
    let b = p256::ecdsa::SigningKey::from_slice(&rng.bytes(32)).unwrap();
    let sig: p256::ecdsa::Signature = a.sign(b"payload");
    assert!(verify_es256(a.verifying_key(), b"payload", &sig.to_bytes()));
    assert!(!verify_es256(
        b.verifying_key(),
        b"payload",
        &sig.to_bytes()
    ));
    for d in [1u8, 2, 15, 16] {
        let mut secret = [0u8; 32];
        secret[31] = d;
        let signing = p256::ecdsa::SigningKey::from_slice(&secret).unwrap();
        let sig: p256::ecdsa::Signature = signing.sign(b"m");
        assert!(
            verify_es256(signing.verifying_key(), b"m", &sig.to_bytes()),
            "{d}"
        );
        assert!(
            !verify_es256(signing.verifying_key(), b"n", &sig.to_bytes()),
            "{d}"
        );
    }
}
