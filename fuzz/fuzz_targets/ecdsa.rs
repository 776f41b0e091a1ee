//! jwt-auth's ES256 / ES384 verification (`auth::jwt::ecdsa`, the filter's own curve arithmetic)
//! on any message and signature: it agrees with the `p256` / `p384` crates'
//! `VerifyingKey::verify` (the filter's verification before, and the tests' oracle) on every
//! input, valid signatures and near-misses included.
//!
//! Input: byte 0 picks the curve, the key and whether the signature is the fuzzer's bytes as
//! they are or a valid signature of the message XORed with them (so that mutations explore the
//! signatures next to valid ones); byte 1 is the message's length; then the message, then the
//! signature bytes.
#![no_main]

use envoy_secret_auth_filter::auth::jwt::ecdsa::{
    verify_es256, verify_es384, P256Public, P384Public,
};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::{Signer, Verifier};

fn mix(valid: &[u8], fuzz: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    for (o, f) in out.iter_mut().zip(fuzz) {
        *o ^= f;
    }
    // a longer input makes a longer signature (refused by both)
    out.extend(fuzz.iter().skip(valid.len()));
    out
}

fuzz_target!(|data: &[u8]| {
    let [mode, len, rest @ ..] = data else {
        return;
    };
    let split = usize::from(*len).min(rest.len());
    let (msg, fuzz) = rest.split_at(split);
    let secret = [u8::from(mode & 2 != 0) + 1; 48];
    let derived = mode & 1 != 0;
    if mode & 4 == 0 {
        let signing = p256::ecdsa::SigningKey::from_slice(&secret[..32]).unwrap();
        let key = signing.verifying_key();
        let signature = if derived {
            let valid: p256::ecdsa::Signature = signing.sign(msg);
            mix(&valid.to_bytes(), fuzz)
        } else {
            fuzz.to_vec()
        };
        let theirs = p256::ecdsa::Signature::from_slice(&signature)
            .is_ok_and(|s| key.verify(msg, &s).is_ok());
        let ours = P256Public::from_sec1(key.to_encoded_point(false).as_bytes()).unwrap();
        assert_eq!(verify_es256(&ours, msg, &signature), theirs);
    } else {
        let signing = p384::ecdsa::SigningKey::from_slice(&secret).unwrap();
        let key = signing.verifying_key();
        let signature = if derived {
            let valid: p384::ecdsa::Signature = signing.sign(msg);
            mix(&valid.to_bytes(), fuzz)
        } else {
            fuzz.to_vec()
        };
        let theirs = p384::ecdsa::Signature::from_slice(&signature)
            .is_ok_and(|s| key.verify(msg, &s).is_ok());
        let ours = P384Public::from_sec1(key.to_encoded_point(false).as_bytes()).unwrap();
        assert_eq!(verify_es384(&ours, msg, &signature), theirs);
    }
});
