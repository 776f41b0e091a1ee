#!/usr/bin/env python3
"""Known-answer vectors for the filter's jwt-auth, produced by independent libraries (PyJWT and
cryptography), not by our own code. Regenerate with:
    .venv/bin/python filter/tests/data/gen_jwt_vectors.py > filter/tests/data/jwt_vectors.json
Keys are fresh each run; the tests only rely on the relations recorded here."""
import json
import warnings
import jwt  # PyJWT
warnings.simplefilter("ignore")
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

FAR = 4102444800  # 2100-01-01
PAST = 1000000000  # 2001


def pem_pub(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def pkcs1_pub(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    ).decode()


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
p256 = ec.generate_private_key(ec.SECP256R1())
p384 = ec.generate_private_key(ec.SECP384R1())
ed = ed25519.Ed25519PrivateKey.generate()

vectors = []


def add(name, alg, key, verify_key, payload, headers=None, expect="allow"):
    token = jwt.encode(payload, key, algorithm=alg, headers=headers)
    vectors.append({"name": name, "alg": alg, "key": verify_key, "token": token, "expect": expect})


claims = {"key": "user-key", "exp": FAR}
add("hs256", "HS256", "alice-secret", "alice-secret", claims)
add("hs384", "HS384", "s384", "s384", claims)
add("hs512", "HS512", "s512", "s512", claims)
add("rs256", "RS256", rsa_key, pem_pub(rsa_key), claims)
add("rs384", "RS384", rsa_key, pem_pub(rsa_key), claims)
add("rs512", "RS512", rsa_key, pem_pub(rsa_key), claims)
add("rs256-pkcs1-pem", "RS256", rsa_key, pkcs1_pub(rsa_key), claims)
add("ps256", "PS256", rsa_key, pem_pub(rsa_key), claims)
add("es256", "ES256", p256, pem_pub(p256), claims)
add("es384", "ES384", p384, pem_pub(p384), claims)
add("eddsa", "EdDSA", ed, pem_pub(ed), claims)
# failures
add("rs256-other-key", "RS256", other_rsa, pem_pub(rsa_key), claims, expect="failed")
add("hs256-wrong-secret", "HS256", "not-the-secret", "alice-secret", claims, expect="failed")
add("hs256-expired", "HS256", "alice-secret", "alice-secret", {"key": "user-key", "exp": PAST}, expect="failed")
add("hs256-not-yet", "HS256", "alice-secret", "alice-secret", {"key": "user-key", "nbf": FAR}, expect="failed")
add("hs256-no-key", "HS256", "alice-secret", "alice-secret", {"exp": FAR}, expect="missing_key")
add("hs256-unknown-key", "HS256", "alice-secret", "alice-secret", {"key": "nobody", "exp": FAR}, expect="unknown_key")
# alg confusion: an HS256 token "signed" with the RSA public key PEM as HMAC secret must not pass
# an RS256 credential.
import base64, hashlib, hmac as hmac_mod  # noqa: E401


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


signing_input = b64u(b'{"alg":"HS256","typ":"JWT"}') + "." + b64u(json.dumps(claims).encode())
forged = hmac_mod.new(pem_pub(rsa_key).encode(), signing_input.encode(), hashlib.sha256).digest()
vectors.append({"name": "alg-confusion", "alg": "RS256", "key": pem_pub(rsa_key), "expect": "failed",
                "token": signing_input + "." + b64u(forged)})
none_token = jwt.encode(claims, None, algorithm="none")
vectors.append({"name": "alg-none", "alg": "HS256", "key": "alice-secret", "token": none_token, "expect": "failed"})
json.dump(vectors, __import__("sys").stdout, indent=1)
