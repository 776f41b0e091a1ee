#!/usr/bin/env python3
"""Credentials for bench/run.sh's basic-auth, jwt-auth and hmac-auth scenarios.

    creds.py make --dir DIR [--rs256-tokens N] [--es256-tokens N]
        writes DIR/creds.json (everything: what the native filters get inline, the client's
        tokens), DIR/moto-creds.json (only the values the Wasm filter references, stored in moto
        as the secret `bench-creds`), DIR/client.json (request headers: good and wrong ones;
        for the garbage scenarios, the RS256 signing input and one garbage token);
        with --rs256-tokens N, also DIR/jwt-rs256-tokens.txt: N distinct valid RS256 tokens (one
        per line, distinct `jti` and `iat`) for the `*-jwt-rs256-new` scenarios; with
        --es256-tokens N, DIR/jwt-es256-tokens.txt likewise (P-256 key) for `*-jwt-es256-new`
    creds.py hmac --dir DIR [--method GET] [--path /]
        prints, as JSON, a request signed now (hmac-sha256, headers "@request-target date"):
        {"good": [header lines], "bad": [header lines with a wrong signature]}
"""
import argparse
import base64
import json
import os
import secrets
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# The project's one JWT and hmac-auth signer.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from sign import hmac_headers, jwt_token  # noqa: E402

# Far in the future: the benchmark must not see an expired token.
FAR_EXP = 4_102_444_800  # 2100-01-01


def b64url_uint(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def write(path, obj):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f)


# RSA-2048: signatures are 256 bytes.
RSA_SIGNATURE_BYTES = 256


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def garbage_signature(size):
    """A random signature of `size` bytes whose first byte is below 0x80: smaller than any RSA
    modulus of that size, so a verifier does the whole modular exponentiation before refusing it
    (as bench/jwt-tokens.lua does on every request)."""
    return b64url(bytes([secrets.randbelow(0x80)]) + secrets.token_bytes(size - 1))


def write_tokens(path, claims, key, algorithm, count):
    """`count` distinct valid tokens (jti and iat differ), one per line: each one a verification
    cache miss until the list has been cycled through."""
    now = int(time.time())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for i in range(count):
            token_claims = dict(claims, jti=f"bench-{i}-{secrets.token_hex(8)}", iat=now - i)
            f.write(jwt_token(token_claims, key, algorithm=algorithm) + "\n")


def make(directory, rs256_tokens, es256_tokens):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    numbers = rsa_key.public_key().public_numbers()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    other_ec = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    ec_numbers = ec_key.public_key().public_numbers()
    creds = {
        "basic-user": "bench-user",
        "basic-password": "pw-" + secrets.token_urlsafe(18),
        "jwt-hs256-key": "bench-jwt-hs256",
        "jwt-hs256-secret": secrets.token_urlsafe(32),
        "jwt-rs256-key": "bench-jwt-rs256",
        "jwt-rs256-public-key": public_pem,
        "jwt-rs256-jwk": {"kty": "RSA", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)},
        "jwt-es256-key": "bench-jwt-es256",
        "jwt-es256-public-key": ec_pem,
        "jwt-es256-jwk": {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(ec_numbers.x.to_bytes(32, "big")),
            "y": b64url(ec_numbers.y.to_bytes(32, "big")),
        },
        "hmac-key-id": "bench-hmac-key",
        "hmac-secret": secrets.token_urlsafe(32),
    }
    moto = {
        k: creds[k]
        for k in ("basic-password", "jwt-hs256-secret", "jwt-rs256-public-key", "jwt-es256-public-key", "hmac-secret")
    }

    def basic(user, password):
        return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def bearer(token):
        return f"Authorization: Bearer {token}"

    hs_claims = {"key": creds["jwt-hs256-key"], "exp": FAR_EXP}
    rs_claims = {"key": creds["jwt-rs256-key"], "exp": FAR_EXP}
    es_claims = {"key": creds["jwt-es256-key"], "exp": FAR_EXP}
    rs_good = jwt_token(rs_claims, rsa_key, algorithm="RS256")
    # header.payload of a token with the right key claim: what a garbage token keeps.
    rs_signing_input = rs_good.rsplit(".", 1)[0]
    client = {
        "basic": {
            "good": [basic(creds["basic-user"], creds["basic-password"])],
            "bad": [basic(creds["basic-user"], "not-the-password")],
        },
        "jwt-hs256": {
            "good": [bearer(jwt_token(hs_claims, creds["jwt-hs256-secret"], algorithm="HS256"))],
            "bad": [bearer(jwt_token(hs_claims, "not-the-secret-" + "x" * 32, algorithm="HS256"))],
        },
        "jwt-rs256": {
            "good": [bearer(rs_good)],
            "bad": [bearer(jwt_token(rs_claims, other_rsa, algorithm="RS256"))],
        },
        "jwt-es256": {
            "good": [bearer(jwt_token(es_claims, ec_key, algorithm="ES256"))],
            "bad": [bearer(jwt_token(es_claims, other_ec, algorithm="ES256"))],
        },
        "jwt-rs256-garbage": {
            "signing_input": rs_signing_input,
            "signature_bytes": RSA_SIGNATURE_BYTES,
            "sample": [bearer(f"{rs_signing_input}.{garbage_signature(RSA_SIGNATURE_BYTES)}")],
        },
    }
    write(os.path.join(directory, "creds.json"), creds)
    write(os.path.join(directory, "moto-creds.json"), moto)
    write(os.path.join(directory, "client.json"), client)
    if rs256_tokens:
        write_tokens(os.path.join(directory, "jwt-rs256-tokens.txt"), rs_claims, rsa_key, "RS256", rs256_tokens)
    if es256_tokens:
        write_tokens(os.path.join(directory, "jwt-es256-tokens.txt"), es_claims, ec_key, "ES256", es256_tokens)


def sign_hmac(directory, method, path):
    with open(os.path.join(directory, "creds.json"), encoding="utf-8") as f:
        creds = json.load(f)
    now = time.time()

    def lines(secret):
        h = hmac_headers(creds["hmac-key-id"], secret, method, path, now=now)
        return [f"Date: {h['date']}", f"Authorization: {h['authorization']}"]

    json.dump({"good": lines(creds["hmac-secret"]), "bad": lines("not-the-secret")}, sys.stdout)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--dir", required=True)
    m.add_argument("--rs256-tokens", type=int, default=0, help="also write N distinct valid RS256 tokens")
    m.add_argument("--es256-tokens", type=int, default=0, help="also write N distinct valid ES256 tokens")
    h = sub.add_parser("hmac")
    h.add_argument("--dir", required=True)
    h.add_argument("--method", default="GET")
    h.add_argument("--path", default="/")
    args = p.parse_args()
    if args.cmd == "make":
        make(args.dir, args.rs256_tokens, args.es256_tokens)
    else:
        sign_hmac(args.dir, args.method, args.path)


if __name__ == "__main__":
    main()
