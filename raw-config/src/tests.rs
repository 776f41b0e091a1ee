//! The hand-written reader against serde's derives (`parse_with_serde`, see `oracle`) on every
//! document below.

use super::*;
use crate::oracle::disagreement;
use serde_json::{json, Value};

/// Every field of every type set once.
fn full() -> Value {
    let limit = json!({"count": 3, "time_window": 60, "key_type": "var", "key": "remote_addr",
        "rejected_code": 429, "rejected_msg": "slow down", "policy": "redis", "show_limit_quota_header": false,
        "group": "g", "allow_degradation": true, "redis_host": "127.0.0.1", "redis_port": 6380,
        "redis_username": "u", "redis_password": "$secret://aws/sm/redis/password", "redis_database": 2,
        "redis_timeout": 500, "redis_ssl": true, "redis_cluster_nodes": ["a:1", "b:2"],
        "redis_cluster_name": "c", "sync_interval": 0.25});
    let plugins = json!({
        "key-auth": {"header": "x-api-key", "query": "k", "hide_credentials": true, "anonymous_consumer": "anon"},
        "basic-auth": {"hide_credentials": true, "anonymous_consumer": null},
        "jwt-auth": {"header": "authorization", "query": "jwt", "cookie": "jwt", "hide_credentials": false,
                     "key_claim_name": "iss", "claims_to_verify": ["exp", "nbf"], "anonymous_consumer": "anon"},
        "hmac-auth": {"allowed_algorithms": ["hmac-sha256"], "clock_skew": 10, "signed_headers": ["date"],
                      "validate_request_body": true, "max_req_body_size": 4096, "hide_credentials": true,
                      "anonymous_consumer": "anon"},
        "limit-count": limit,
    });
    json!({
        "sidecar": {"cluster": "sc", "authority": "a", "timeout_ms": 100, "token": "$env://T", "path": "/v1/resolve"},
        "refresh_interval_s": 10, "startup_wait_ms": 1, "max_stale_s": 100, "strip_identity_headers": false,
        "rotation_grace_s": 60, "miss_refresh_min_interval_s": 2,
        "consumers": [
            {"username": "alice", "labels": {"custom_id": "a-1", "team": "x"}, "credentials": [
                {"type": "key-auth", "id": "k", "key": "$secret://aws/sm/alice/key", "expires_at": "2026-12-31T00:00:00Z", "rotation_grace_s": 5},
                {"type": "key-auth", "id": "k2", "key_sha256": "ab", "key": null},
                {"type": "basic-auth", "id": "b", "username": "alice", "password": "p"},
                {"type": "jwt-auth", "id": "j", "key": "alice", "secret": "s", "public_key": null, "algorithm": "HS512",
                 "base64_secret": true, "exp": 86400, "lifetime_grace_period": 3},
                {"type": "hmac-auth", "id": "h", "key_id": "alice", "secret_key": "hk"}
            ]},
            {"username": "bob"}
        ],
        "plugins": plugins,
        "routes": {"open": {}, "r2": {"limit-count": {"count": 1, "time_window": 1}}},
    })
}

fn all_agree(docs: impl IntoIterator<Item = Vec<u8>>) {
    let wrong: Vec<String> = docs.into_iter().filter_map(|d| disagreement(&d)).collect();
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(if std::env::var("SHAPES").is_ok() {
            100_000
        } else {
            8
        })]
            .join("\n")
    );
}

#[test]
fn reads_the_full_configuration_as_serde_did() {
    let doc = serde_json::to_vec(&full()).unwrap();
    assert!(parse(&doc).is_ok(), "{:?}", parse(&doc));
    all_agree([doc, b"{}".to_vec(), b" {\n} ".to_vec()]);
}

/// Every field, in turn, given each kind of JSON value (or removed).
#[test]
fn every_field_with_every_kind_of_value() {
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(7),
        json!(-1),
        json!(70000),
        json!(5_000_000_000u64),
        json!(1.5),
        json!(""),
        json!("s3cr3t"),
        json!([]),
        json!(["a"]),
        json!({}),
        json!({"x": 1}),
    ];
    let mut docs = Vec::new();
    // Every object in the document: its fields set to each value, removed, and an unknown one added.
    fn objects(v: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => {
                out.push(path.clone());
                for (k, c) in m {
                    let mut p = path.clone();
                    p.push(k.clone());
                    objects(c, p, out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(i.to_string());
                    objects(c, p, out);
                }
            }
            _ => {}
        }
    }
    fn at<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
        path.iter().fold(v, |v, k| match v {
            Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            _ => &mut v[k.as_str()],
        })
    }
    let base = full();
    let mut paths = Vec::new();
    objects(&base, Vec::new(), &mut paths);
    for path in paths {
        let names: Vec<String> = at(&mut base.clone(), &path)
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for name in &names {
            for v in &values {
                let mut doc = base.clone();
                at(&mut doc, &path)[name.as_str()] = v.clone();
                docs.push(serde_json::to_vec(&doc).unwrap());
            }
            let mut doc = base.clone();
            at(&mut doc, &path).as_object_mut().unwrap().remove(name);
            docs.push(serde_json::to_vec(&doc).unwrap());
        }
        let mut doc = base.clone();
        at(&mut doc, &path)["bogus"] = json!(1);
        docs.push(serde_json::to_vec(&doc).unwrap());
        for v in &values {
            let mut doc = base.clone();
            *at(&mut doc, &path) = v.clone();
            docs.push(serde_json::to_vec(&doc).unwrap());
        }
    }
    all_agree(docs);
}

/// Every prefix of a document (truncated JSON), and every byte replaced by a few others.
#[test]
fn broken_documents() {
    let doc = serde_json::to_vec_pretty(&full()).unwrap();
    let mut docs: Vec<Vec<u8>> = (0..doc.len()).map(|n| doc[..n].to_vec()).collect();
    for i in (0..doc.len()).step_by(3) {
        for b in [b'"', b',', b'}', b'x', b'1', 0xff] {
            let mut d = doc.clone();
            d[i] = b;
            docs.push(d);
        }
    }
    all_agree(docs);
}

#[test]
fn repeated_names() {
    all_agree([
        br#"{"refresh_interval_s": 1, "refresh_interval_s": 2}"#.to_vec(),
        br#"{"": 1}"#.to_vec(),
        br#"{"sidecar": {"": 1}}"#.to_vec(),
        br#"{"sidecar": {"cluster": "a", "cluster": "b", "token": "t"}}"#.to_vec(),
        br#"{"routes": {"a": {}, "a": {"key-auth": {}}}}"#.to_vec(),
        br#"{"consumers": [{"username": "a", "labels": {"x": "1", "x": "2"}}]}"#.to_vec(),
        br#"{"consumers": [{"username": "a", "credentials": [{"type": "key-auth", "id": "a", "key": "k", "key": "k"}]}]}"#.to_vec(),
        br#"{"consumers": [{"username": "a", "credentials": [{"type": "key-auth", "id": "a", "kee": 1, "kee": 2}]}]}"#.to_vec(),
        br#"{"consumers": [{"username": "a", "credentials": [{"type": "key-authh", "id": "a"}]}]}"#.to_vec(),
        br#"{"consumers": [{"username": "a", "credentials": [{"id": "a", "key": "k", "secret": [1, {"x": "\ud800"}]}]}]}"#.to_vec(),
    ]);
}

#[test]
fn paths_and_messages() {
    let e = parse(br#"{"sidecar": {"cluster": "c", "token": "t", "bogus": 1}}"#).unwrap_err();
    assert_eq!(e.path, "sidecar.bogus");
    assert!(
        e.message.starts_with(
            "unknown field `bogus`, expected one of `cluster`, `authority`, `timeout_ms`, `token`, `path` at line 1"
        ),
        "{}",
        e.message
    );
    let e = parse(br#"{"consumers": [{}, {"username": 7}]}"#).unwrap_err();
    assert_eq!(e.path, "consumers[0]");
    assert!(
        e.message.starts_with("missing field `username`"),
        "{}",
        e.message
    );
    let e = parse(br#"{"consumers": [{"username": "a"}, {"username": 7}]}"#).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        (
            "consumers[1].username",
            "invalid type: integer, expected a string at line 1 column 48"
        )
    );
    let e = parse(b"").unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        (".", "EOF while parsing a value at line 1 column 0")
    );
}
