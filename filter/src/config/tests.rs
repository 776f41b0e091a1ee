use super::*;
use serde_json::json;

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("t0ken".into()),
        "CREDS" => Some(r#"{"bob":"bob-key"}"#.into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn compile_json(v: serde_json::Value) -> Result<Compiled, ConfigError> {
    compile(v.to_string().as_bytes(), &env)
}

fn base() -> serde_json::Value {
    json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://TOKEN"},
        "consumers": [
            {"username": "alice", "labels": {"custom_id": "a-1"}, "credentials": [
                {"id": "alice-key-auth", "type": "key-auth",
                 "key": "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth"}
            ]},
            {"username": "bob", "credentials": [
                {"id": "bob-key", "type": "key-auth", "key": "$env://CREDS/bob"}
            ]},
            {"username": "carol", "credentials": [
                {"id": "carol-key", "type": "key-auth", "key": "carol-key"},
                {"id": "carol-again", "type": "key-auth",
                 "key": "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth"}
            ]}
        ],
        "plugins": {"key-auth": {}},
        "routes": {"open": {}, "custom": {"key-auth": {"header": "X-Api-Key", "query": "k",
                                                          "hide_credentials": true}}}
    })
}

#[test]
fn compiles_a_full_config() {
    let Compiled { config, warnings } = compile_json(base()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let sidecar = config.sidecar.as_ref().unwrap();
    assert_eq!(sidecar.cluster, "secret_sidecar");
    assert_eq!(sidecar.authority, "secret-sidecar");
    assert_eq!(sidecar.path, "/v1/resolve");
    assert_eq!(sidecar.timeout, Duration::from_millis(10000));
    assert_eq!(sidecar.token.expose(), "t0ken");
    assert_eq!(config.refresh_interval, Duration::from_secs(30));
    assert_eq!(config.startup_wait, Duration::from_millis(5000));
    assert_eq!(config.consumers.len(), 3);
    assert_eq!(config.credentials.len(), 4);
    // the same reference twice is resolved once
    assert_eq!(config.refs.len(), 1);
    assert!(matches!(
        config.credentials[0].kind,
        CredentialKind::KeyAuth {
            key: Source::Ref(0),
            sha256: false
        }
    ));
    assert!(matches!(
        config.credentials[3].kind,
        CredentialKind::KeyAuth {
            key: Source::Ref(0),
            sha256: false
        }
    ));
    match &config.credentials[1].kind {
        CredentialKind::KeyAuth {
            key: Source::Value(v),
            sha256: false,
        } => assert_eq!(v.expose(), "bob-key"),
        other => panic!("{other:?}"),
    }
    assert_eq!(config.credentials[1].consumer, 1);
    assert_eq!(config.credentials[2].path(), "consumers[2].credentials[0]");
    let default = config.default_plugins.key_auth.as_ref().unwrap();
    assert_eq!(
        (default.header.as_str(), default.query.as_str()),
        ("apikey", "apikey")
    );
    assert!(!default.hide_credentials);
    assert!(!config.routes["open"].has_auth());
    let custom = config.routes["custom"].key_auth.as_ref().unwrap();
    assert_eq!(custom.header, "x-api-key");
    assert_eq!(custom.query, "k");
    assert!(custom.hide_credentials);
}

#[test]
fn no_sidecar_needed_without_secret_references() {
    let cfg = json!({"consumers": [{"username": "a", "credentials": [
        {"id": "a", "type": "key-auth", "key": "plain"}]}], "plugins": {"key-auth": {}}});
    let c = compile_json(cfg).unwrap();
    assert!(c.config.sidecar.is_none());
    assert!(c.config.refs.is_empty());
}

#[test]
fn unresolvable_env_in_a_credential_disables_it_with_a_warning() {
    let mut cfg = base();
    cfg["consumers"][1]["credentials"][0]["key"] = json!("$env://CREDS/nobody");
    let c = compile_json(cfg).unwrap();
    assert!(matches!(
        c.config.credentials[1].kind,
        CredentialKind::KeyAuth {
            key: Source::Unavailable(_),
            sha256: false
        }
    ));
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].starts_with("consumers[1].credentials[0].key: "),
        "{}",
        c.warnings[0]
    );
    assert!(
        c.warnings[0].contains("key \"nobody\" not found"),
        "{}",
        c.warnings[0]
    );
    assert!(
        !c.warnings[0].contains("bob-key"),
        "the value must not leak"
    );
}

/// One row per documented validation: (mutation, expected "path: message" prefix).
#[test]
fn invalid_configs_name_the_field_and_the_problem() {
    type Mutate = fn(&mut serde_json::Value);
    let cases: Vec<(Mutate, &str)> = vec![
        (
            |c| c["consumers"][0]["credentials"][0]["key"] = json!("$secret://awss/p/s/k"),
            "consumers[0].credentials[0].key: invalid reference: unknown manager \"awss\"",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["key"] = json!("$secret://aws"),
            "consumers[0].credentials[0].key: invalid reference: no provider id",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["key"] = json!("$secret://aws/p"),
            "consumers[0].credentials[0].key: invalid reference: no secret name",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["key"] = json!("$secret://"),
            "consumers[0].credentials[0].key: invalid reference: no manager",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["key"] = json!(""),
            "consumers[0].credentials[0].key: must not be empty",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["id"] = json!(""),
            "consumers[0].credentials[0].id: must not be empty",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["kee"] = json!("x"),
            "consumers[0].credentials[0]: unknown field `kee`",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["type"] = json!("key-authh"),
            "consumers[0].credentials[0].type: unknown variant `key-authh`",
        ),
        (
            |c| c["consumers"][1]["username"] = json!("alice"),
            "consumers[1].username: duplicate consumer username \"alice\"",
        ),
        (
            |c| c["consumers"][1]["username"] = json!(""),
            "consumers[1].username: must not be empty",
        ),
        (
            |c| c["consumers"][2]["credentials"][1]["id"] = json!("carol-key"),
            "consumers[2].credentials[1].id: duplicate credential id \"carol-key\"",
        ),
        (
            |c| c["consumers"][2]["credentials"][1]["key"] = json!("carol-key"),
            "consumers[2].credentials[1].key: same key as credential \"carol-key\"",
        ),
        (
            |c| c["consumers"][0]["username"] = json!(7),
            "consumers[0].username: invalid type",
        ),
        (
            |c| c["sidecar"]["token"] = json!("$secret://aws/p/s/k"),
            "sidecar.token: must be an $env:// reference",
        ),
        (
            |c| c["sidecar"]["token"] = json!("t0ken"),
            "sidecar.token: must be an $env:// reference: a plain token would be shown by Envoy's /config_dump",
        ),
        (
            |c| c["max_stale_s"] = json!(30),
            "max_stale_s: must be at least 31",
        ),
        (
            |c| c["sidecar"]["token"] = json!("$env://NOPE"),
            "sidecar.token: environment variable NOPE is not set",
        ),
        (
            |c| c["sidecar"]["token"] = json!("$env://EMPTY"),
            "sidecar.token: must not be empty",
        ),
        (
            |c| c["sidecar"]["cluster"] = json!(""),
            "sidecar.cluster: must not be empty",
        ),
        (
            |c| c["sidecar"]["timeout_ms"] = json!(0),
            "sidecar.timeout_ms: must be at least 1",
        ),
        (
            |c| c["sidecar"]["path"] = json!("v1"),
            "sidecar.path: \"v1\" must start with '/'",
        ),
        (
            |c| c["sidecar"]["bogus"] = json!(1),
            "sidecar.bogus: unknown field `bogus`",
        ),
        (
            |c| {
                c.as_object_mut().unwrap().remove("sidecar");
            },
            "sidecar: $secret:// references or Redis rate limits are used, so a \"sidecar\" section is required",
        ),
        (
            |c| c["refresh_interval_s"] = json!(0),
            "refresh_interval_s: must be at least 1",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["expires_at"] = json!("2026-12-31"),
            "consumers[0].credentials[0].expires_at: \"2026-12-31\" is not an RFC 3339 time (write e.g. \"2026-12-31T23:59:59Z\"",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["key_sha256"] = json!("ab"),
            "consumers[0].credentials[0]: give exactly one of key and key_sha256",
        ),
        (
            |c| {
                let cred = &mut c["consumers"][0]["credentials"][0];
                cred.as_object_mut().unwrap().remove("key");
            },
            "consumers[0].credentials[0]: give exactly one of key and key_sha256",
        ),
        (
            |c| {
                let cred = &mut c["consumers"][0]["credentials"][0];
                cred.as_object_mut().unwrap().remove("key");
                cred["key_sha256"] = json!("s3cr3t-not-hex");
            },
            "consumers[0].credentials[0].key_sha256: must be a SHA-256 digest: 64 hex digits",
        ),
        (
            |c| c["rotation_grace_s"] = json!(604_801),
            "rotation_grace_s: 604801s is out of range (0-604800)",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["rotation_grace_s"] = json!(700_000),
            "consumers[0].credentials[0].rotation_grace_s: 700000s is out of range (0-604800)",
        ),
        (
            |c| c["refresh_interval_s"] = json!(-1),
            "refresh_interval_s: invalid value",
        ),
        (
            |c| c["plugins"]["key-auth"]["header"] = json!("bad header"),
            "plugins.key-auth.header: \"bad header\" is not a valid HTTP header name",
        ),
        (
            |c| c["plugins"]["key-auth"]["query"] = json!(""),
            "plugins.key-auth.query: must not be empty",
        ),
        (
            |c| c["plugins"]["limit-req"] = json!({}),
            "plugins.limit-req: unknown field `limit-req`",
        ),
        (
            |c| c["routes"]["custom"]["key-auth"]["hide"] = json!(true),
            "routes.custom.key-auth.hide: unknown field `hide`",
        ),
        (
            |c| c["consumer"] = json!([]),
            "consumer: unknown field `consumer`",
        ),
    ];
    for (mutate, want) in cases {
        let mut cfg = base();
        mutate(&mut cfg);
        let err = compile_json(cfg)
            .err()
            .unwrap_or_else(|| panic!("accepted; want {want}"));
        let msg = err.to_string();
        assert!(msg.starts_with(want), "got: {msg}\nwant prefix: {want}");
    }
}

#[test]
fn not_json_at_all() {
    let err = compile(b"{not json", &env).unwrap_err();
    assert!(err.to_string().contains("key must be a string"), "{err}");
    let err = compile(b"", &env).unwrap_err();
    assert!(err.to_string().contains("EOF"), "{err}");
    // Anything after the configuration (two documents pasted together, a stray brace) is
    // refused: the serde reader before session 10 silently read only the first document.
    let err = compile(b"{}\n{\"consumers\": []}", &env).unwrap_err();
    assert_eq!(err.to_string(), ".: trailing characters at line 2 column 0");
    // A section written as a list of its values, which serde's derives accepted, is refused.
    let err = compile(
        br#"{"sidecar": ["c", "a", 100, "$env://TOKEN", "/v1/resolve"]}"#,
        &env,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("sidecar: invalid type: sequence, expected an object"),
        "{err}"
    );
}

/// A credential is read in one pass (`raw-config`'s `credential`): `type` anywhere in the map, each
/// field once, only the fields of its type.
#[test]
fn credentials_are_checked_against_their_type() {
    let one = |credential: &str| {
        let cfg = format!(
            r#"{{"consumers": [{{"username": "alice", "credentials": [{credential}]}}],
                "plugins": {{"key-auth": {{}}, "basic-auth": {{}}, "jwt-auth": {{}}, "hmac-auth": {{}}}}}}"#
        );
        compile(cfg.as_bytes(), &env)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let rejected = |credential: &str, want: &str| {
        let msg = one(credential).expect_err(credential);
        assert!(
            msg.starts_with(want),
            "{credential}\ngot: {msg}\nwant prefix: {want}"
        );
    };
    // type first, last, or in between; optional fields may be null
    assert_eq!(
        one(r#"{"type": "key-auth", "id": "a", "key": "k"}"#),
        Ok(())
    );
    assert_eq!(
        one(r#"{"id": "a", "key": "k", "type": "key-auth", "expires_at": null}"#),
        Ok(())
    );
    assert_eq!(
        one(r#"{"key": "alice-jwt", "type": "jwt-auth", "secret": "s", "id": "j", "exp": null}"#),
        Ok(())
    );
    // a field of another type is named with the fields of this one
    rejected(
        r#"{"type": "key-auth", "id": "a", "key": "k", "secret": "s"}"#,
        "consumers[0].credentials[0]: unknown field `secret`, expected one of `type`, `id`, `key`, `key_sha256`",
    );
    rejected(
        r#"{"secret_key": "s", "type": "basic-auth", "id": "b", "username": "u", "password": "p"}"#,
        "consumers[0].credentials[0]: unknown field `secret_key`, expected one of `type`, `id`, `username`",
    );
    // a name no type has, even before `type`
    rejected(
        r#"{"kee": "k", "type": "key-auth", "id": "a"}"#,
        "consumers[0].credentials[0]: unknown field `kee`, expected one of `type`, `id`, `key`",
    );
    rejected(
        r#"{"type": "key-auth", "id": "a", "key": "k", "key": "k2"}"#,
        "consumers[0].credentials[0]: duplicate field `key`",
    );
    rejected(
        r#"{"type": "key-auth", "type": "key-auth", "id": "a", "key": "k"}"#,
        "consumers[0].credentials[0]: duplicate field `type`",
    );
    rejected(
        r#"{"id": "a", "key": "k"}"#,
        "consumers[0].credentials[0]: missing field `type`",
    );
    rejected(
        r#"{"type": "key-auth", "key": "k"}"#,
        "consumers[0].credentials[0]: missing field `id`",
    );
    rejected(
        r#"{"type": "basic-auth", "id": "b", "username": "u"}"#,
        "consumers[0].credentials[0]: missing field `password`",
    );
    rejected(
        r#"{"type": "jwt-auth", "id": "j", "secret": "s"}"#,
        "consumers[0].credentials[0]: missing field `key`",
    );
    rejected(
        r#"{"type": "hmac-auth", "id": "h", "key_id": "k"}"#,
        "consumers[0].credentials[0]: missing field `secret_key`",
    );
    rejected(
        r#"{"type": "basic-auth", "id": "b", "username": "u", "password": null}"#,
        "consumers[0].credentials[0].password: invalid type: null, expected a string",
    );
    rejected(
        r#"{"type": "jwt-auth", "id": "j", "key": "k", "secret": "s", "base64_secret": "yes"}"#,
        "consumers[0].credentials[0].base64_secret: invalid type: string",
    );
    rejected(
        r#"["key-auth", "a"]"#,
        "consumers[0].credentials[0]: invalid type: sequence, expected a credential",
    );
}

#[test]
fn errors_never_contain_plain_key_values() {
    let mut cfg = base();
    cfg["consumers"][2]["credentials"][1]["key"] = json!("carol-key");
    let msg = compile_json(cfg).unwrap_err().to_string();
    assert!(
        !msg.contains("\"carol-key\"\n") && !msg.contains("key: carol-key"),
        "{msg}"
    );
}

fn all_types() -> serde_json::Value {
    json!({
        "consumers": [
            {"username": "alice", "labels": {"custom_id": "a-1"}, "credentials": [
                {"id": "alice-basic", "type": "basic-auth", "username": "alice", "password": "pw"},
                {"id": "alice-jwt", "type": "jwt-auth", "key": "alice-key", "secret": "s",
                 "lifetime_grace_period": 5, "exp": 86400},
                {"id": "alice-hmac", "type": "hmac-auth", "key_id": "alice-keyid", "secret_key": "k"}
            ]},
            {"username": "anon"}
        ],
        "plugins": {"basic-auth": {}, "jwt-auth": {"claims_to_verify": ["nbf"]},
                    "hmac-auth": {"signed_headers": ["Date", "@request-target"], "anonymous_consumer": "anon"}}
    })
}

#[test]
fn compiles_every_credential_type() {
    let c = compile_json(all_types()).unwrap().config;
    assert!(matches!(
        &c.credentials[0].kind,
        CredentialKind::BasicAuth { username, password: Source::Value(_) } if username == "alice"
    ));
    match &c.credentials[1].kind {
        CredentialKind::JwtAuth {
            key,
            algorithm,
            grace_period_s,
            ..
        } => {
            assert_eq!(
                (key.as_str(), algorithm.name(), *grace_period_s),
                ("alice-key", "HS256", 5)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&c.credentials[2].kind, CredentialKind::HmacAuth { key_id, .. } if key_id == "alice-keyid")
    );
    let jwt = c.default_plugins.jwt_auth.as_ref().unwrap();
    assert!(!jwt.verify_exp && jwt.verify_nbf);
    assert_eq!(jwt.header, "authorization");
    let hmac = c.default_plugins.hmac_auth.as_ref().unwrap();
    assert_eq!(hmac.signed_headers, vec!["date", "@request-target"]);
    assert_eq!(hmac.clock_skew_s, 300);
    assert_eq!(hmac.allowed_algorithms.len(), 3);
    assert_eq!(hmac.anonymous, Some(1));
    assert_eq!(c.default_plugins.anonymous(), Some(1));
    assert_eq!(c.default_plugins.auth_count(), 3);
}

#[test]
fn invalid_auth_configs() {
    type Mutate = fn(&mut serde_json::Value);
    let cases: Vec<(Mutate, &str)> = vec![
        (
            |c| {
                c["consumers"][0]["credentials"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("secret");
            },
            "consumers[0].credentials[1].secret: required for HS256",
        ),
        (
            |c| c["consumers"][0]["credentials"][1]["algorithm"] = json!("RS256"),
            "consumers[0].credentials[1].public_key: required for RS256",
        ),
        (
            |c| {
                c["consumers"][0]["credentials"][1]["algorithm"] = json!("RS256");
                c["consumers"][0]["credentials"][1]["public_key"] = json!("not a pem");
            },
            "consumers[0].credentials[1].public_key: not a PEM public key usable with RS256",
        ),
        (
            |c| c["consumers"][0]["credentials"][1]["algorithm"] = json!("none"),
            "consumers[0].credentials[1].algorithm: unknown algorithm \"none\"",
        ),
        (
            |c| {
                c["consumers"][0]["credentials"][1]["base64_secret"] = json!(true);
                c["consumers"][0]["credentials"][1]["secret"] = json!("***");
            },
            "consumers[0].credentials[1].secret: base64_secret is set but the secret is not base64",
        ),
        (
            |c| c["consumers"][0]["credentials"][0]["username"] = json!(""),
            "consumers[0].credentials[0].username: must not be empty",
        ),
        (
            |c| c["consumers"][0]["credentials"][2]["key_id"] = json!(""),
            "consumers[0].credentials[2].key_id: must not be empty",
        ),
        (
            |c| {
                c["consumers"][1]["credentials"] =
                    json!([{"id": "x", "type": "basic-auth", "username": "alice", "password": "p"}])
            },
            "consumers[1].credentials[0].username: already used by credential \"alice-basic\"",
        ),
        (
            |c| {
                c["consumers"][1]["credentials"] =
                    json!([{"id": "x", "type": "jwt-auth", "key": "alice-key", "secret": "p"}])
            },
            "consumers[1].credentials[0].key: already used by credential \"alice-jwt\"",
        ),
        (
            |c| c["plugins"]["hmac-auth"]["anonymous_consumer"] = json!("nobody"),
            "plugins.hmac-auth.anonymous_consumer: no consumer has username \"nobody\"",
        ),
        (
            |c| c["plugins"]["hmac-auth"]["allowed_algorithms"] = json!(["hmac-md5"]),
            "plugins.hmac-auth.allowed_algorithms[0]: unknown algorithm \"hmac-md5\"",
        ),
        (
            |c| c["plugins"]["hmac-auth"]["allowed_algorithms"] = json!([]),
            "plugins.hmac-auth.allowed_algorithms: must not be empty",
        ),
        (
            |c| c["plugins"]["hmac-auth"]["clock_skew"] = json!(0),
            "plugins.hmac-auth.clock_skew: must be at least 1",
        ),
        (
            |c| c["plugins"]["hmac-auth"]["signed_headers"] = json!(["bad header"]),
            "plugins.hmac-auth.signed_headers[0]: \"bad header\" is not a valid HTTP header name",
        ),
        (
            |c| c["plugins"]["jwt-auth"]["claims_to_verify"] = json!(["iat"]),
            "plugins.jwt-auth.claims_to_verify[0]: unknown claim \"iat\"",
        ),
        (
            |c| c["plugins"]["basic-auth"]["realm"] = json!("x"),
            "plugins.basic-auth.realm: unknown field `realm`",
        ),
    ];
    for (mutate, want) in cases {
        let mut cfg = all_types();
        mutate(&mut cfg);
        let err = compile_json(cfg)
            .err()
            .unwrap_or_else(|| panic!("accepted; want {want}"));
        let msg = err.to_string();
        assert!(msg.starts_with(want), "got: {msg}\nwant prefix: {want}");
    }
}

fn with_limit(limit: serde_json::Value) -> serde_json::Value {
    json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://TOKEN"},
        "consumers": [{"username": "a", "credentials": [{"id": "a", "type": "key-auth", "key": "k"}]}],
        "plugins": {"key-auth": {}, "limit-count": limit},
        "routes": {"r2": {"limit-count": {"count": 3, "time_window": 60, "group": "g"}}}
    })
}

#[test]
fn limit_count_options() {
    let c = compile_json(with_limit(json!({
        "count": 3, "time_window": 60, "rejected_code": 429, "rejected_msg": "Too many requests",
        "policy": "redis", "redis_host": "127.0.0.1", "redis_port": 6380,
        "redis_password": "$secret://aws/sm/redis/password", "key_type": "var_combination",
        "key": "$remote_addr $http_x_tenant", "sync_interval": 0.5
    })))
    .unwrap()
    .config;
    let l = c.default_plugins.limit_count.as_ref().unwrap();
    assert_eq!((l.count, l.window_s, l.rejected_code), (3, 60, 429));
    assert_eq!(l.scope, "default");
    match &l.policy {
        Policy::Redis {
            backend,
            sync_interval,
            timeout,
        } => {
            // redis_timeout's default, also what a request waits for its counter
            assert_eq!(*timeout, Duration::from_millis(1000));
            assert_eq!(backend.timeout_ms, Some(1000));
            assert_eq!(
                backend.password.as_ref().map(SecretValue::expose),
                Some("$secret://aws/sm/redis/password")
            );
            assert_eq!(backend.port, Some(6380));
            assert_eq!(backend.policy, crate::limit::LimitPolicy::Redis);
            assert_eq!(*sync_interval, Some(Duration::from_millis(500)));
        }
        other => panic!("{other:?}"),
    }
    // the Redis password reference is not resolved by the filter
    assert!(c.refs.is_empty());
    assert_eq!(
        c.routes["r2"].limit_count.as_ref().unwrap().scope,
        "group:g"
    );
    let local = compile_json(with_limit(json!({"count": 1, "time_window": 1})))
        .unwrap()
        .config;
    let l = local.default_plugins.limit_count.unwrap();
    assert_eq!(
        (l.rejected_code, l.policy, l.show_limit_quota_header),
        (503, Policy::Local, true)
    );
}

#[test]
fn invalid_limit_count() {
    let rows = [
        (json!({"count": 0, "time_window": 1}), "plugins.limit-count.count: must be at least 1"),
        (json!({"count": 1, "time_window": 0}), "plugins.limit-count.time_window: must be at least 1"),
        (json!({"count": 1}), "plugins.limit-count: missing field `time_window`"),
        (json!({"count": 1, "time_window": 1, "rejected_code": 99}), "plugins.limit-count.rejected_code: 99 is not an HTTP status"),
        (json!({"count": 1, "time_window": 1, "key": "remote_adr"}), "plugins.limit-count.key: unknown variable \"remote_adr\""),
        (json!({"count": 1, "time_window": 1, "key_type": "vars"}), "plugins.limit-count.key_type: unknown key_type \"vars\""),
        (json!({"count": 1, "time_window": 1, "policy": "redis"}), "plugins.limit-count.redis_host: required with policy \"redis\""),
        (json!({"count": 1, "time_window": 1, "policy": "redis-cluster"}), "plugins.limit-count.redis_cluster_nodes: required"),
        (json!({"count": 1, "time_window": 1, "policy": "memcached"}), "plugins.limit-count.policy: unknown policy \"memcached\""),
        (json!({"count": 1, "time_window": 1, "sync_interval": 1}), "plugins.limit-count.sync_interval: only applies to the redis policies"),
        (json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "h", "sync_interval": -1}), "plugins.limit-count.sync_interval: -1 must be a positive"),
        (json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "h", "sync_interval": -0.25}), "plugins.limit-count.sync_interval: -0.25 must be a positive"),
        (json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "h", "sync_interval": 0.0}), "plugins.limit-count.sync_interval: 0 must be a positive"),
        (json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "h", "sync_interval": -1.5}), "plugins.limit-count.sync_interval: -1.5 must be a positive"),
        (json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "h", "redis_password": "$secret://awss/x/y"}), "plugins.limit-count.redis_password: invalid reference: unknown manager"),
        (json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "h", "redis_password": "$env://P"}), "plugins.limit-count.redis_password: $env:// is not supported here"),
        (json!({"count": 4, "time_window": 60, "group": "g"}), "routes.r2.limit-count.group: group \"g\" is configured differently at plugins.limit-count"),
        (json!({"count": 1, "time_window": 1, "redis_timeout": 0}), "plugins.limit-count.redis_timeout: 0 ms is out of range"),
        (json!({"count": 3, "time_window": 60, "redis_hots": "x"}), "plugins.limit-count.redis_hots: unknown field `redis_hots`"),
    ];
    for (limit, want) in rows {
        let msg = compile_json(with_limit(limit))
            .err()
            .unwrap_or_else(|| panic!("accepted; want {want}"))
            .to_string();
        assert!(msg.starts_with(want), "got: {msg}\nwant prefix: {want}");
    }
    // the same options in one group are fine
    assert!(compile_json(with_limit(
        json!({"count": 3, "time_window": 60, "group": "g"})
    ))
    .is_ok());
}

#[test]
fn type_errors_never_echo_the_value() {
    let mut cfg = base();
    cfg["consumers"][2]["credentials"][0]["key"] = json!(987654321);
    let msg = compile_json(cfg).unwrap_err().to_string();
    assert!(
        msg.starts_with(
            "consumers[2].credentials[0].key: invalid type: integer, expected a string"
        ),
        "{msg}"
    );
    assert!(!msg.contains("987654321"), "{msg}");
    let mut cfg = base();
    cfg["refresh_interval_s"] = json!("s3cr3t");
    let msg = compile_json(cfg).unwrap_err().to_string();
    assert!(
        msg.starts_with("refresh_interval_s: invalid type: string, expected u64"),
        "{msg}"
    );
    assert!(!msg.contains("s3cr3t"), "{msg}");
    // names of fields and variants are not values: they stay
    assert_eq!(
        redact_value("unknown field `kee`".into()),
        "unknown field `kee`"
    );
}

/// Issue #7, item 17: neither the raw (as written) nor the compiled configuration prints a
/// plain secret in `Debug` (references may show: they are addresses, not secrets).
#[test]
fn debug_never_shows_plain_secrets() {
    let plain = [
        "k3y-PLAIN",
        "pa55-PLAIN",
        "jwt-s3cret-PLAIN",
        "hmac-s3cret-PLAIN",
        "redis-pa55-PLAIN",
        "redis-us3r-PLAIN",
        "t0ken-PLAIN",
    ];
    let cfg = json!({
        "sidecar": {"cluster": "c", "token": "$env://TOKEN"},
        "consumers": [{"username": "alice", "credentials": [
            {"id": "k", "type": "key-auth", "key": "k3y-PLAIN"},
            {"id": "b", "type": "basic-auth", "username": "alice", "password": "pa55-PLAIN"},
            {"id": "j", "type": "jwt-auth", "key": "alice-jwt", "secret": "jwt-s3cret-PLAIN"},
            {"id": "h", "type": "hmac-auth", "key_id": "alice-keyid", "secret_key": "hmac-s3cret-PLAIN"}
        ]}],
        "plugins": {"key-auth": {}, "limit-count": {
            "count": 1, "time_window": 1, "policy": "redis", "redis_host": "127.0.0.1",
            "redis_username": "redis-us3r-PLAIN", "redis_password": "redis-pa55-PLAIN"}}
    });
    let raw: raw::RawConfig = serde_json::from_value(cfg.clone()).unwrap();
    let mut with_token = cfg.clone();
    with_token["sidecar"]["token"] = json!("t0ken-PLAIN");
    let raw_token: raw::RawConfig = serde_json::from_value(with_token).unwrap();
    let compiled = compile_json(cfg).unwrap().config;
    for shown in [
        format!("{raw:?}"),
        format!("{raw_token:?}"),
        format!("{compiled:?}"),
    ] {
        for secret in plain {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("redacted"), "{shown}");
    }
    // a value that only starts like a reference is not shown either
    let near = raw::RawSecret("$secret://not-a-reference".into());
    assert!(!format!("{near:?}").contains("not-a-reference"));
}

#[test]
fn a_redis_policy_needs_the_sidecar() {
    for (limit, routes, path) in [
        (
            json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "h"}),
            json!({}),
            "plugins.limit-count.policy",
        ),
        (
            json!({"count": 1, "time_window": 1}),
            json!({"r": {"limit-count": {"count": 1, "time_window": 1, "policy": "redis-cluster",
                                      "redis_cluster_nodes": ["h:1"]}}}),
            "routes.r.limit-count.policy",
        ),
    ] {
        let mut cfg = with_limit(limit);
        cfg.as_object_mut().unwrap().remove("sidecar");
        cfg["routes"] = routes;
        let msg = compile_json(cfg).unwrap_err().to_string();
        assert!(msg.starts_with(path), "{msg}");
        assert!(msg.contains("a \"sidecar\" section is required"), "{msg}");
    }
    // local counters need none
    let mut cfg = with_limit(json!({"count": 1, "time_window": 1}));
    cfg.as_object_mut().unwrap().remove("sidecar");
    assert!(compile_json(cfg).is_ok());
}

#[test]
fn references_with_one_hash_stay_distinct() {
    let parse = |s: &str| match secret_ref::parse(s) {
        Ok(Some(secret_ref::Reference::Secret(r))) => r,
        other => panic!("{other:?}"),
    };
    let (a, b) = (parse("$secret://aws/p/s/a"), parse("$secret://aws/p/s/b"));
    let mut c = super::compiler::Compiler {
        env: &|_| None,
        refs: Vec::new(),
        ref_ids: HashMap::new(),
        warnings: Vec::new(),
        rotation_grace_s: 0,
    };
    let ida = c.ref_id(&a);
    // Pretend b's hash is a's: every slot of the map points at a.
    for id in c.ref_ids.values_mut() {
        *id = ida;
    }
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash_b = BuildHasherDefault::<DefaultHasher>::default().hash_one(RefName::new(&b));
    c.ref_ids.insert(hash_b, ida);
    let idb = c.ref_id(&b);
    assert_ne!(ida, idb);
    assert_eq!(c.ref_id(&b), idb);
    assert_eq!(c.ref_id(&a), ida);
    assert_eq!(c.refs, vec![RefName::new(&a), RefName::new(&b)]);
}
