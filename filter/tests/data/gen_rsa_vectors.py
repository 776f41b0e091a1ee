#!/usr/bin/env python3
"""Test-only RSA keys and signatures for the filter's own RSA verification
(filter/src/auth/jwt/rsa_public.rs), made by an independent library (cryptography). Regenerate with:
    .venv/bin/python filter/tests/data/gen_rsa_vectors.py > filter/tests/data/rsa_vectors.json
The private exponent `d` is there so that the tests can sign any encoded message they build
(malformed paddings included); these keys protect nothing."""
import json
import math
import secrets
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
MESSAGE = b"eyJhbGciOiJSUzI1NiJ9.eyJrZXkiOiJ1c2VyLWtleSJ9"



def probable_prime(bits):
    while True:
        c = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if all(pow(a, c - 1, c) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
            return c


def odd_key(bits, e):
    """A key whose modulus has exactly `bits` bits (OpenSSL rounds odd sizes)."""
    while True:
        p, q = probable_prime(bits - bits // 2), probable_prime(bits // 2)
        n = p * q
        if n.bit_length() != bits or p == q or math.gcd(e, (p - 1) * (q - 1)) != 1:
            continue
        d = pow(e, -1, (p - 1) * (q - 1))
        return rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(e, n)).private_key(unsafe_skip_rsa_key_validation=True)


keys = []
# 2049 and 4097 - 8: moduli whose bit length minus one is a multiple of 8 (PSS's shorter EM);
# 3 as an exponent, and sizes that are not a multiple of 32 bits.
for bits, e in [(1024, 65537), (2048, 65537), (2049, 65537), (2056, 3), (3072, 65537), (4096, 65537)]:
    key = rsa.generate_private_key(public_exponent=e, key_size=bits) if bits % 8 == 0 else odd_key(bits, e)
    nums = key.private_numbers()
    sigs = []
    for h, algo in HASHES.items():
        sigs.append({"alg": "RS" + h, "signature": key.sign(MESSAGE, padding.PKCS1v15(), algo).hex()})
        pss = padding.PSS(mgf=padding.MGF1(algo), salt_length=algo.digest_size)
        try:
            sigs.append({"alg": "PS" + h, "signature": key.sign(MESSAGE, pss, algo).hex()})
        except ValueError:
            pass  # PS512 does not fit a 1024-bit key
    keys.append({
        "bits": bits,
        "n": format(nums.public_numbers.n, "x"),
        "e": format(nums.public_numbers.e, "x"),
        "d": format(nums.d, "x"),
        "public_pem": key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "message": MESSAGE.decode(),
        "signatures": sigs,
    })
print(json.dumps(keys, indent=1))
