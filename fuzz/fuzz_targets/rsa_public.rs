//! `auth::jwt::rsa_public` (jwt-auth's own RSA arithmetic and key reading) on any bytes:
//! * `RsaPublic::from_pem` on any text: no panic;
//! * `public_op` against `num-bigint-dig`'s `modpow` (the arithmetic the `rsa` crate used) for
//!   any modulus of 1024-4096 bits, exponent and signature; `None` exactly when the signature is
//!   not below the modulus or not the modulus's length;
//! * `verify_pkcs1` / `verify_pss` on any signature: no panic (overflow checks are on).
#![no_main]

use envoy_secret_auth_filter::auth::jwt::rsa_public::{self, RsaPublic};
use libfuzzer_sys::fuzz_target;
use num_bigint_dig::BigUint;
use sha2::{Sha256, Sha512};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = RsaPublic::from_pem(text);
        }
        return;
    }
    // mode: bits 1-2 pick the exponent, bits 3-7 the modulus's length (128..=512 bytes).
    let n_len = 128 + usize::from(mode >> 3) * 12;
    if rest.len() < n_len + 8 {
        return;
    }
    let (n_bytes, rest) = rest.split_at(n_len);
    let (e_bytes, sig) = rest.split_at(8);
    let mut n_bytes = n_bytes.to_vec();
    n_bytes[0] |= 0x80;
    n_bytes[n_len - 1] |= 1;
    let e: u64 = match (mode >> 1) & 3 {
        0 => 3,
        1 => 65537,
        _ => u64::from_be_bytes(e_bytes.try_into().unwrap_or_default()) | 3,
    };
    let key = RsaPublic::new(&n_bytes, &e.to_be_bytes()).unwrap();
    assert_eq!(key.size(), n_len);
    let n = BigUint::from_bytes_be(&n_bytes);
    let s = BigUint::from_bytes_be(sig);
    let want = (sig.len() == n_len && s < n).then(|| {
        let m = s.modpow(&BigUint::from(e), &n).to_bytes_be();
        let mut out = vec![0u8; n_len - m.len()];
        out.extend_from_slice(&m);
        out
    });
    assert_eq!(key.public_op(sig), want);
    let _ = rsa_public::verify_pkcs1::<Sha256>(&key, rsa_public::SHA256_PREFIX, b"x", sig);
    let _ = rsa_public::verify_pss::<Sha256>(&key, b"x", sig);
    let _ = rsa_public::verify_pss::<Sha512>(&key, b"x", sig);
});
