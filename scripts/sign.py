#!/usr/bin/env python3
"""What a client of the filter sends: JWTs (PyJWT) and hmac-auth signatures (APISIX 3.11+ scheme).
The one signer of the project: the demo, the e2e and harness tests and the benchmark use it.

    sign.py jwt --key alice-key --secret alice-secret [--algorithm HS256] [--exp-in 3600]
    sign.py jwt --key rsa-user-key --private-key-file key.pem --algorithm RS256
        prints the token (claims: `key`, and `exp` unless --exp-in 0)
    sign.py hmac --key-id alice-keyid --secret-key alice-secret-key [--algorithm hmac-sha256]
                 [--headers "@request-target date"] [--body TEXT] METHOD PATH
        prints the headers of a request signed now, one `Name: value` a line (Date, Digest with
        --body, Authorization): `sign.py hmac ... | curl URL -H @-`

Importable (`sys.path` holding this folder): `jwt_token`, `hs256_by_hand`, `hmac_headers`,
`signing_string`, `hmac_signature`, `body_digest`, `http_date`, `new_key`, `private_pem`,
`public_pem`.

hmac-auth signing string: the key id, then for each signed header `name: value` (for
`@request-target`: `METHOD path`), every line ending in a newline; the signature is the base64 HMAC
of it with the secret key; `Authorization: Signature keyId="...",algorithm="...",headers="...",
signature="..."`.
"""
import argparse
import base64
import email.utils
import hashlib
import hmac
import json
import sys
import time
import warnings

DIGESTS = {"hmac-sha1": hashlib.sha1, "hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- JWT -------------------------------------------------------------------------------------------


def jwt_token(claims, key, algorithm="HS256", exp_in=None, nbf_in=None, iat_in=None, now=None):
    """A JWT made by PyJWT. `key`: the HMAC secret (HS*) or a private key (object or PEM).
    `*_in`: the `exp` / `nbf` / `iat` claim, in seconds from `now` (default: the current time)."""
    import jwt  # PyJWT; imported here so that hmac-only users need not have it

    now = int(time.time()) if now is None else now
    claims = dict(claims)
    for name, offset in (("exp", exp_in), ("nbf", nbf_in), ("iat", iat_in)):
        if offset is not None:
            claims[name] = now + offset
    with warnings.catch_warnings():
        # The tutorial's HS256 secret ("alice-secret") is shorter than PyJWT recommends.
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm=algorithm)


def hs256_by_hand(claims, key, header_alg="HS256"):
    """An HMAC-SHA256 JWT made without PyJWT, whose header says `header_alg`: for keys PyJWT
    refuses as HMAC secrets (a PEM, an empty string) and for algorithm-confusion tokens."""
    signing = b64url(json.dumps({"alg": header_alg, "typ": "JWT"}).encode()) + "." + \
        b64url(json.dumps(claims).encode())
    mac = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(mac)


def new_key(kind):
    """A new private key: `rsa` (2048 bits), `ec` (P-256), `ec384` (P-384) or `ed25519`."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r} (rsa, ec, ec384 or ed25519)")


def private_pem(key):
    from cryptography.hazmat.primitives import serialization as s

    return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode()


def public_pem(key):
    from cryptography.hazmat.primitives import serialization as s

    return key.public_key().public_bytes(
        s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode()


# --- hmac-auth -------------------------------------------------------------------------------------


def http_date(timestamp):
    """An HTTP date (`Date` header) for a Unix time."""
    return email.utils.formatdate(timestamp, usegmt=True)


def body_digest(body):
    """The `Digest` header value of a body (text or bytes): `SHA-256=<base64>`."""
    data = body.encode() if isinstance(body, str) else body
    return "SHA-256=" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def signing_string(key_id, method, path, signed, headers):
    """The string hmac-auth signs; `headers` maps lower-case names to values."""
    lines = [key_id]
    for name in signed:
        if name == "@request-target":
            lines.append(f"{method} {path}")
        else:
            lines.append(f"{name}: {headers[name]}")
    return "\n".join(lines) + "\n"


def hmac_signature(secret_key, algorithm, text):
    """base64 of the HMAC (`hmac-sha1` / `hmac-sha256` / `hmac-sha512`) of `text`."""
    mac = hmac.new(secret_key.encode(), text.encode(), DIGESTS[algorithm]).digest()
    return base64.b64encode(mac).decode()


def hmac_headers(key_id, secret_key, method, path, signed=("@request-target", "date"),
                 algorithm="hmac-sha256", body=None, now=None, date_offset_s=0, omit=(),
                 x_date=False):
    """The headers (lower-case names, in order: date, digest when `body` is given,
    authorization, x-date with `x_date`) of a request signed at `now` + `date_offset_s`.
    `omit`: signed header names left out of both the signing string and the request, though
    still listed in `headers="..."` (a replay attempt)."""
    now = time.time() if now is None else now
    headers = {"date": http_date(now + date_offset_s)}
    if body is not None:
        headers["digest"] = body_digest(body)
    text = signing_string(key_id, method, path, [n for n in signed if n not in omit], headers)
    headers["authorization"] = (
        f'Signature keyId="{key_id}",algorithm="{algorithm}",headers="{" ".join(signed)}",'
        f'signature="{hmac_signature(secret_key, algorithm, text)}"'
    )
    for name in omit:
        headers.pop(name, None)
    if x_date:
        headers["x-date"] = http_date(now)
    return headers


# --- command line ----------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("jwt", help="print a JWT")
    j.add_argument("--key", required=True, help="the `key` claim (the credential's key)")
    j.add_argument("--secret", help="the HMAC secret (HS256/384/512)")
    j.add_argument("--private-key-file", help="a PEM private key (RS*, PS*, ES*, EdDSA)")
    j.add_argument("--algorithm", default="HS256")
    j.add_argument("--exp-in", type=int, default=3600, help="seconds until exp; 0: no exp")
    h = sub.add_parser("hmac", help="print the headers of a signed request")
    h.add_argument("--key-id", required=True)
    h.add_argument("--secret-key", required=True)
    h.add_argument("--algorithm", default="hmac-sha256", choices=sorted(DIGESTS))
    h.add_argument("--headers", default="@request-target date", help="the signed headers")
    h.add_argument("--body", help="the request body: adds a Digest header (sign it with "
                   "--headers \"@request-target date digest\")")
    h.add_argument("method")
    h.add_argument("path", help="path and query, exactly as sent")
    args = parser.parse_args()

    if args.cmd == "jwt":
        if (args.secret is None) == (args.private_key_file is None):
            parser.error("give exactly one of --secret and --private-key-file")
        key = args.secret
        if args.private_key_file:
            with open(args.private_key_file, encoding="utf-8") as f:
                key = f.read()
        print(jwt_token({"key": args.key}, key, args.algorithm, exp_in=args.exp_in or None))
    else:
        headers = hmac_headers(args.key_id, args.secret_key, args.method, args.path,
                               signed=args.headers.split(), algorithm=args.algorithm,
                               body=args.body)
        for name, value in headers.items():
            print(f"{name.title()}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
