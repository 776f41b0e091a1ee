//! Keys, tokens and signatures made by Python (PyJWT, `cryptography`, `hmac`), never by our code:
//! by the project's one signer, `scripts/sign.py`.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::support::python;

use super::ALICE_HMAC_SECRET;

pub(crate) struct Keys {
    pub(crate) rsa_private: String,
    pub(crate) rsa_public: String,
    /// Another RSA key pair, for rotation.
    pub(crate) rsa2_private: String,
    pub(crate) rsa2_public: String,
    pub(crate) ec_private: String,
    pub(crate) ec_public: String,
}

/// Two RSA-2048 and an EC P-256 key pair, made once per test run.
pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let script = r#"
import json
from sign import new_key, private_pem as priv, public_pem as pub
r, r2, e = new_key("rsa"), new_key("rsa"), new_key("ec")
print(json.dumps({"rsa_private": priv(r), "rsa_public": pub(r), "rsa2_private": priv(r2),
                  "rsa2_public": pub(r2), "ec_private": priv(e), "ec_public": pub(e)}))
"#;
        let v = python(script, &json!({}));
        let field = |k: &str| v[k].as_str().unwrap().to_owned();
        Keys {
            rsa_private: field("rsa_private"),
            rsa_public: field("rsa_public"),
            rsa2_private: field("rsa2_private"),
            rsa2_public: field("rsa2_public"),
            ec_private: field("ec_private"),
            ec_public: field("ec_public"),
        }
    })
}

/// Tokens made by PyJWT from specs `{"alg", "key", "claims", "exp_in"?, "nbf_in"?}` (`*_in`:
/// seconds from now). `"raw_hmac": true` signs HS256 by hand with `key` as the HMAC secret
/// whatever `alg` says (PyJWT refuses a PEM as an HMAC secret).
pub(crate) fn jwts(specs: &[Value]) -> Vec<String> {
    let script = r#"
import json, sys, time
import sign
now = int(time.time())
out = []
for t in json.load(sys.stdin):
    claims = dict(t.get("claims", {}))
    for name in ("exp", "nbf", "iat"):
        if name + "_in" in t:
            claims[name] = now + t[name + "_in"]
    if t.get("raw_hmac"):
        out.append(sign.hs256_by_hand(claims, t["key"], header_alg=t["alg"]))
    else:
        out.append(sign.jwt_token(claims, t["key"], t["alg"]))
print(json.dumps(out))
"#;
    let v = python(script, &Value::Array(specs.to_vec()));
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn hs256(secret: &str, key: &str, exp_in: i64) -> Value {
    json!({"alg": "HS256", "key": secret, "claims": {"key": key}, "exp_in": exp_in})
}

/// One hmac-auth request to sign, APISIX 3.11+ scheme.
#[derive(Clone, Copy)]
pub(crate) struct HmacSpec<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) algorithm: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// Space separated, as in the `headers` field.
    pub(crate) headers: &'a str,
    pub(crate) date_offset_s: i64,
    /// Its `Digest` is made too (and is the value of a signed `digest` header).
    pub(crate) body: &'a str,
}

impl Default for HmacSpec<'_> {
    fn default() -> Self {
        HmacSpec {
            key_id: "alice-keyid",
            secret: ALICE_HMAC_SECRET,
            algorithm: "hmac-sha256",
            method: "GET",
            path: "/ip?x=1",
            headers: "@request-target date",
            date_offset_s: 0,
            body: "",
        }
    }
}

pub(crate) struct Signed {
    pub(crate) date: String,
    pub(crate) digest: String,
    pub(crate) authorization: String,
}

/// Signs with `scripts/sign.py`: signing string = keyId, then per signed header `name: value`
/// (`@request-target`: `METHOD path`), each line ending in `\n`.
pub(crate) fn sign(specs: &[HmacSpec]) -> Vec<Signed> {
    let script = r#"
import json, sys, time
import sign
out = []
for r in json.load(sys.stdin):
    values = {"date": sign.http_date(time.time() + r["date_offset_s"]),
              "digest": sign.body_digest(r["body"])}
    text = sign.signing_string(r["key_id"], r["method"], r["path"], r["headers"].split(" "), values)
    out.append(dict(values, signature=sign.hmac_signature(r["secret"], r["algorithm"], text)))
print(json.dumps(out))
"#;
    let input: Vec<Value> = specs
        .iter()
        .map(|s| {
            json!({"key_id": s.key_id, "secret": s.secret, "algorithm": s.algorithm,
                   "method": s.method, "path": s.path, "headers": s.headers,
                   "date_offset_s": s.date_offset_s, "body": s.body})
        })
        .collect();
    let out = python(script, &Value::Array(input));
    out.as_array()
        .unwrap()
        .iter()
        .zip(specs)
        .map(|(o, s)| Signed {
            date: o["date"].as_str().unwrap().to_owned(),
            digest: o["digest"].as_str().unwrap().to_owned(),
            authorization: format!(
                r#"Signature keyId="{}",algorithm="{}",headers="{}",signature="{}""#,
                s.key_id,
                s.algorithm,
                s.headers,
                o["signature"].as_str().unwrap()
            ),
        })
        .collect()
}
