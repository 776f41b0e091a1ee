use super::*;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::EncodePublicKey;
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

fn ours256(key: &p256::ecdsa::VerifyingKey) -> P256Public {
    P256Public::from_sec1(key.to_encoded_point(false).as_bytes()).unwrap()
}

fn ours384(key: &p384::ecdsa::VerifyingKey) -> P384Public {
    P384Public::from_sec1(key.to_encoded_point(false).as_bytes()).unwrap()
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
            assert_eq!(
                verify_es256(&ours256(&key), &msg, &candidate),
                theirs,
                "case {case}"
            );
            verified += usize::from(theirs);
        }
        // the valid signature and its n - s form
        assert_eq!(verified, 2, "case {case}");
        assert!(!verify_es256(
            &ours256(&key),
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
            assert_eq!(
                verify_es384(&ours384(&key), &msg, &candidate),
                theirs,
                "case {case}"
            );
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
    assert!(verify_es256(
        &ours256(a.verifying_key()),
        b"payload",
        &sig.to_bytes()
    ));
    assert!(!verify_es256(
        &ours256(b.verifying_key()),
        b"payload",
        &sig.to_bytes()
    ));
    for d in [1u8, 2, 15, 16] {
        let mut secret = [0u8; 32];
        secret[31] = d;
        let signing = p256::ecdsa::SigningKey::from_slice(&secret).unwrap();
        let sig: p256::ecdsa::Signature = signing.sign(b"m");
        assert!(
            verify_es256(&ours256(signing.verifying_key()), b"m", &sig.to_bytes()),
            "{d}"
        );
        assert!(
            !verify_es256(&ours256(signing.verifying_key()), b"n", &sig.to_bytes()),
            "{d}"
        );
    }
}

/// The curves' constants are the crates' (a wrong one would make every valid signature fail,
/// but this names the cause).
#[test]
fn generators_are_the_crates() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let g256 = p256::AffinePoint::GENERATOR.to_encoded_point(false);
    assert!(P256Public::from_sec1(g256.as_bytes()).is_some());
    let g384 = p384::AffinePoint::GENERATOR.to_encoded_point(false);
    assert!(P384Public::from_sec1(g384.as_bytes()).is_some());
    let curve = p256().unwrap();
    assert_eq!(
        curve.generator(),
        P256Public::from_sec1(g256.as_bytes()).unwrap().0.point()
    );
    let curve = p384().unwrap();
    assert_eq!(
        curve.generator(),
        P384Public::from_sec1(g384.as_bytes()).unwrap().0.point()
    );
}

/// Keys are read as the crates read them: PEM SubjectPublicKeyInfo of the right curve, SEC 1
/// points uncompressed or compressed, on the curve, coordinates below p.
#[test]
fn keys_are_read_like_the_crates() {
    let mut rng = Rng(5);
    for _ in 0..8 {
        let signing = p256::ecdsa::SigningKey::from_slice(&rng.bytes(32)).unwrap();
        let key = *signing.verifying_key();
        let ours = ours256(&key);
        let pem = key.to_public_key_pem(Default::default()).unwrap();
        assert_eq!(P256Public::from_pem(&pem), Some(ours.clone()));
        let compressed = key.to_encoded_point(true);
        assert_eq!(
            P256Public::from_sec1(compressed.as_bytes()),
            Some(ours.clone())
        );
        let sig: p256::ecdsa::Signature = signing.sign(b"m");
        assert!(verify_es256(
            &P256Public::from_pem(&pem).unwrap(),
            b"m",
            &sig.to_bytes()
        ));
        // a P-256 key is no P-384 key
        assert_eq!(P384Public::from_pem(&pem), None);

        let signing = p384::ecdsa::SigningKey::from_slice(&rng.bytes(48)).unwrap();
        let key = *signing.verifying_key();
        let pem = key.to_public_key_pem(Default::default()).unwrap();
        assert_eq!(P384Public::from_pem(&pem), Some(ours384(&key)));
        let compressed = key.to_encoded_point(true);
        assert_eq!(
            P384Public::from_sec1(compressed.as_bytes()),
            Some(ours384(&key))
        );
        assert_eq!(P256Public::from_pem(&pem), None);
    }
    // every SEC 1 byte string the crate refuses, we refuse, and the other way round
    let key = ours256(
        p256::ecdsa::SigningKey::from_slice(&[7; 32])
            .unwrap()
            .verifying_key(),
    );
    let valid = p256::ecdsa::SigningKey::from_slice(&[7; 32])
        .unwrap()
        .verifying_key()
        .to_encoded_point(false);
    let p = hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
    let mut candidates: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        valid.as_bytes()[..64].to_vec(),
        [valid.as_bytes(), &[0]].concat(),
        [&[0x04u8][..], &p, &valid.as_bytes()[33..]].concat(),
        [&[0x04u8][..], &valid.as_bytes()[1..33], &p].concat(),
        [&[0x02u8][..], &p].concat(),
        [&[0x05u8][..], &valid.as_bytes()[1..]].concat(),
        [&[0x06u8][..], &valid.as_bytes()[1..33]].concat(),
    ];
    for i in [1, 20, 33, 64] {
        let mut v = valid.as_bytes().to_vec();
        v[i] ^= 1; // off the curve
        candidates.push(v);
    }
    for _ in 0..64 {
        // random x: about half have a point
        candidates.push([&[0x02u8 + (rng.bytes(1)[0] & 1)][..], &rng.bytes(32)].concat());
    }
    let mut decompressed = 0;
    for c in &candidates {
        let theirs = p256::ecdsa::VerifyingKey::from_sec1_bytes(c).ok();
        let ours = P256Public::from_sec1(c);
        assert_eq!(ours.is_some(), theirs.is_some(), "{c:02x?}");
        if let Some(theirs) = theirs {
            assert_eq!(ours, Some(ours256(&theirs)));
            decompressed += 1;
        }
    }
    assert!(decompressed > 10, "{decompressed}");
    assert_eq!(P256Public::from_sec1(valid.as_bytes()), Some(key));
    assert_eq!(P256Public::from_pem("not pem"), None);
}

/// `x(R)` between `n` and `p` (one signature in 2^128 for P-256, so made here on purpose: the
/// key is chosen so that `u1 G + u2 Q` is such a point): `r = x - n` verifies, as in the crate.
#[test]
fn an_x_above_the_group_order_is_compared_mod_n() {
    use p256::elliptic_curve::ops::Reduce;
    use p256::elliptic_curve::point::DecompressPoint;
    use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar, U256};
    use sha2::{Digest, Sha256};
    let n = BigUint::from_bytes_be(&hex(P256_ORDER));
    let mut x = &n + 1u32;
    let point = loop {
        let candidate = AffinePoint::decompress(
            FieldBytes::from_slice(&x.to_bytes_be()),
            subtle::Choice::from(0),
        );
        if bool::from(candidate.is_some()) {
            break candidate.unwrap();
        }
        x += 1u32;
    };
    let mut r_bytes = [0u8; 32];
    let small = (&x - &n).to_bytes_be();
    r_bytes[32 - small.len()..].copy_from_slice(&small);
    let r = <Scalar as Reduce<U256>>::reduce_bytes(FieldBytes::from_slice(&r_bytes));
    let s = Scalar::from(12345u64);
    let msg = b"x above n";
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&Sha256::digest(msg));
    let s_inv = s.invert().unwrap();
    let (u1, u2) = (z * s_inv, r * s_inv);
    let q = (ProjectivePoint::from(point) - ProjectivePoint::GENERATOR * u1) * u2.invert().unwrap();
    let key = p256::ecdsa::VerifyingKey::from_affine(q.to_affine()).unwrap();
    let sig = p256::ecdsa::Signature::from_scalars(r, s).unwrap();
    assert!(key.verify(msg, &sig).is_ok());
    assert!(verify_es256(&ours256(&key), msg, &sig.to_bytes()));
    assert!(!verify_es256(&ours256(&key), b"other", &sig.to_bytes()));
}

/// The binary extended Euclidean inversion agrees with Fermat's `a^(m-2)`, for both curves'
/// field and group order, on random numbers and the edges (1, 2, m - 1, m - 2).
#[test]
fn inversion_agrees_with_fermat() {
    fn check<const N: usize>(modulus: &field::Modulus<N>, rng: &mut Rng) {
        let m = *modulus.modulus();
        let mut edges = vec![field::small::<N>(1), field::small::<N>(2)];
        for k in [1u32, 2] {
            let mut e = m;
            e[0] -= k;
            edges.push(e);
        }
        for _ in 0..200 {
            if let Some(a) = modulus.reduce(&rng.bytes(4 * N)) {
                edges.push(a);
            }
        }
        for a in edges.iter().filter(|a| !field::is_zero(a)) {
            let a = modulus.montgomery(a);
            let inverse = modulus.invert(&a);
            assert_eq!(inverse, modulus.invert_fermat(&a));
            assert_eq!(modulus.mul(&inverse, &a), modulus.one());
        }
        assert!(field::is_zero(&modulus.invert(&[0; N])));
    }
    let mut rng = Rng(0xdead_beef);
    let (c256, c384) = (p256().unwrap(), p384().unwrap());
    check(c256.field(), &mut rng);
    check(c256.order(), &mut rng);
    check(c384.field(), &mut rng);
    check(c384.order(), &mut rng);
}

/// The signed windows of a scalar add back up to it, with every digit odd and small and at most
/// one non-zero digit in any window.
#[test]
fn wnaf_digits_add_up_to_the_scalar() {
    let mut rng = Rng(99);
    let mut scalars: Vec<Vec<u8>> = (0..200).map(|_| rng.bytes(48)).collect();
    scalars.push(vec![0xff; 48]);
    scalars.push(vec![0; 48]);
    scalars.push([vec![0; 47], vec![1]].concat());
    for be in scalars {
        let k: [u32; 12] = field::from_be(&be).unwrap();
        for w in [2u32, 5, 7] {
            let digits = curve::wnaf(&k, w);
            let mut sum = BigUint::from(0u32);
            let mut negative = BigUint::from(0u32);
            for (i, d) in digits.iter().enumerate() {
                assert!(*d == 0 || (d % 2 != 0 && i32::from(d.unsigned_abs()) < 1 << (w - 1)));
                let term = BigUint::from(d.unsigned_abs()) << i;
                if *d > 0 {
                    sum += term;
                } else {
                    negative += term;
                }
                if *d != 0 {
                    let next = &digits[i + 1..(i + w as usize).min(digits.len())];
                    assert!(next.iter().all(|x| *x == 0), "{w} {i}");
                }
            }
            assert_eq!(sum - negative, BigUint::from_bytes_be(&be), "{w}");
        }
    }
}
