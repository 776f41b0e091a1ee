use super::*;
use crate::auth::tests::FakeRequest;
use crate::auth::Decision;
use crate::config::compile;
use crate::request::authenticate;
use std::cell::RefCell;

#[derive(Default)]
struct FakeHost {
    now: u64,
    logs: RefCell<Vec<(Level, String)>>,
    calls: Vec<(u32, String, Vec<u8>)>,
    fail_dispatch: bool,
}

impl Host for FakeHost {
    fn now_ms(&self) -> u64 {
        self.now
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn dispatch(
        &mut self,
        sidecar: &Sidecar,
        _path: &str,
        body: Vec<u8>,
    ) -> Result<u32, DispatchError> {
        if self.fail_dispatch {
            return Err(DispatchError::UnknownCluster);
        }
        let token = self.calls.len() as u32 + 1;
        self.calls.push((token, sidecar.cluster.clone(), body));
        Ok(token)
    }
}

impl FakeHost {
    fn logged(&self, level: Level, needle: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(l, m)| *l == level && m.contains(needle))
    }
}

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";

fn runtime(host: &mut FakeHost) -> Worker {
    let json = serde_json::json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://SIDECAR_TOKEN"},
        "refresh_interval_s": 30,
        "startup_wait_ms": 1000,
        "consumers": [
            {"username": "alice", "credentials": [{"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF}]},
            {"username": "bob", "credentials": [{"id": "bob-key-auth", "type": "key-auth", "key": "bob-key"}]}
        ],
        "plugins": {"key-auth": {}},
        "routes": {"open": {}}
    });
    Worker::new(
        compile(json.to_string().as_bytes(), &|_| Some("t".into())).unwrap(),
        host,
    )
}

fn who(rt: &Worker, key: &str) -> Option<String> {
    let mut req = FakeRequest::new(&[(":path", "/ip"), ("apikey", key)]);
    match authenticate(rt.plugins_for(None), rt.credentials(), &mut req) {
        Some(Decision::Allow(a)) => a
            .credential
            .and_then(|c| rt.identity(c))
            .map(|(u, _)| u.to_string()),
        _ => None,
    }
}

fn answer(rt: &mut Worker, host: &mut FakeHost, value_json: &str) {
    let token = host.calls.last().unwrap().0;
    let body = format!(r#"{{"results":[{{"ref":"{ALICE_REF}",{value_json}}}]}}"#);
    rt.on_answer(host, token, Some("200"), body.as_bytes());
}

/// Moves the clock by `after_ms`, ticks (which starts a refresh when one is due) and answers
/// the last callout with `value_json` for alice's reference.
fn refresh(rt: &mut Worker, host: &mut FakeHost, after_ms: u64, value_json: &str) {
    host.now += after_ms;
    rt.on_tick(host);
    answer(rt, host, value_json);
}

#[test]
fn resolves_on_first_tick_then_serves() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    assert!(!rt.gate_open());
    assert_eq!(rt.tick_period(), FAST_TICK);
    // plain keys work even before the answer
    assert_eq!(who(&rt, "bob-key").as_deref(), Some("bob"));
    assert_eq!(
        who(&rt, ALICE_REF),
        None,
        "the literal reference never authenticates"
    );

    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&host.calls[0].2).unwrap();
    assert_eq!(body, serde_json::json!({"refs": [ALICE_REF]}));
    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 1, "one callout at a time");

    answer(&mut rt, &mut host, r#""value":"alice-key""#);
    assert!(rt.gate_open());
    assert_eq!(rt.tick_period(), SLOW_TICK);
    assert_eq!(who(&rt, "alice-key").as_deref(), Some("alice"));
    assert_eq!(rt.identity(0), Some(("alice", "alice-key-auth")));
}

#[test]
fn refresh_picks_up_rotation() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    refresh(&mut rt, &mut host, 0, r#""value":"alice-key""#);

    host.now += 29_999;
    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 1);
    host.now += 1;
    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 2);
    answer(&mut rt, &mut host, r#""value":"alice-key-2""#);
    assert_eq!(who(&rt, "alice-key-2").as_deref(), Some("alice"));
    assert_eq!(who(&rt, "alice-key"), None);
    assert!(host.logged(Level::Info, "rotated"));
}

#[test]
fn failed_refresh_keeps_values_and_retries_with_backoff() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    refresh(&mut rt, &mut host, 0, r#""value":"alice-key""#);
    host.now += 30_000;
    rt.on_tick(&mut host);
    let token = host.calls.last().unwrap().0;
    rt.on_answer(&mut host, token, None, &b""[..]);
    assert_eq!(who(&rt, "alice-key").as_deref(), Some("alice"));
    assert!(host.logged(Level::Warn, "keeping the last good values"));
    host.now += 250;
    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 3, "retried after 250 ms");
    let third = host.calls[2].0;
    rt.on_answer(&mut host, third, Some("500"), &b"oops"[..]);
    assert_eq!(who(&rt, "alice-key").as_deref(), Some("alice"));
    // a late answer to an abandoned callout is ignored
    rt.on_answer(&mut host, token, Some("200"), &br#"{"results":[]}"#[..]);
    assert_eq!(who(&rt, "alice-key").as_deref(), Some("alice"));
}

#[test]
fn unresolved_reference_disables_the_credential_and_says_why() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    rt.on_tick(&mut host);
    answer(
        &mut rt,
        &mut host,
        r#""error":{"code":"secret_not_found","message":"secret \"alice-credentias\" not found; did you mean \"alice-credentials\"?"}"#,
    );
    assert!(rt.gate_open());
    assert_eq!(who(&rt, ALICE_REF), None);
    assert_eq!(who(&rt, "bob-key").as_deref(), Some("bob"));
    assert!(host.logged(Level::Error, ALICE_REF));
    assert!(host.logged(Level::Error, "did you mean \"alice-credentials\"?"));
    assert!(host.logged(Level::Error, "alice-key-auth disabled"));
}

#[test]
fn startup_gate_opens_after_the_wait_without_an_answer() {
    let mut host = FakeHost {
        fail_dispatch: true,
        ..Default::default()
    };
    let mut rt = runtime(&mut host);
    rt.on_tick(&mut host);
    assert!(host.logged(
        Level::Warn,
        "could not call the sidecar (cluster \"secret_sidecar\"): Envoy has no such cluster"
    ));
    host.now = 999;
    rt.on_tick(&mut host);
    assert!(!rt.gate_open());
    host.now = 1000;
    rt.on_tick(&mut host);
    assert!(rt.gate_open());
    assert!(host.logged(Level::Warn, "startup_wait_ms"));
}

#[test]
fn a_resolved_key_equal_to_another_disables_both() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    refresh(&mut rt, &mut host, 0, r#""value":"bob-key""#);
    assert_eq!(
        who(&rt, "bob-key"),
        None,
        "an ambiguous key must not pick an identity"
    );
    for id in ["alice-key-auth", "bob-key-auth"] {
        assert!(host.logged(
            Level::Error,
            &format!(
                "credentials \"alice-key-auth\", \"bob-key-auth\" have the same key; \
                 credential \"{id}\" disabled"
            )
        ));
    }
    // fixed by the next rotation
    refresh(&mut rt, &mut host, 30_000, r#""value":"alice-key""#);
    assert_eq!(who(&rt, "bob-key").as_deref(), Some("bob"));
    assert_eq!(who(&rt, "alice-key").as_deref(), Some("alice"));
}

#[test]
fn per_route_plugin_sets() {
    let mut host = FakeHost::default();
    let rt = runtime(&mut host);
    assert!(rt.routes_configured());
    assert!(rt.plugins_for(Some("open")).key_auth.is_none());
    assert!(rt.plugins_for(Some("other")).key_auth.is_some());
    assert!(rt.plugins_for(None).key_auth.is_some());
}

#[test]
fn logs_never_contain_values() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    refresh(&mut rt, &mut host, 0, r#""value":"alice-key""#);
    host.now += 30_000;
    rt.on_tick(&mut host);
    answer(
        &mut rt,
        &mut host,
        r#""value":"alice-key-rotated","stale":true"#,
    );
    let logs = host.logs.borrow();
    assert!(logs.len() >= 3);
    assert!(logs.iter().all(|(_, m)| !m.contains("alice-key\"")
        && !m.contains("rotated\"")
        && !m.contains("bob-key\"")));
    assert!(logs.iter().all(|(_, m)| !m.contains(":\"alice-key")));
}

fn sync_runtime(host: &mut FakeHost) -> Worker {
    let json = serde_json::json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://SIDECAR_TOKEN"},
        "plugins": {"limit-count": {"count": 3, "time_window": 60, "policy": "redis",
                                     "redis_host": "127.0.0.1", "sync_interval": 0.2,
                                     "redis_password": "$secret://aws/sm/redis/password"}}
    });
    Worker::new(
        compile(json.to_string().as_bytes(), &|_| Some("t".into())).unwrap(),
        host,
    )
}

#[test]
fn sync_interval_pushes_deltas_on_ticks() {
    let mut host = FakeHost::default();
    let mut rt = sync_runtime(&mut host);
    assert_eq!(rt.tick_period(), Duration::from_millis(200));
    assert!(rt.gate_open(), "no secrets to wait for");
    let opts = rt.plugins_for(None).limit_count.clone().unwrap();
    let allowed: Vec<bool> = (0..4)
        .map(|_| rt.sync_hit(&opts, "k", host.now).unwrap().allowed())
        .collect();
    assert_eq!(allowed, [true, true, true, false]);
    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&host.calls[0].2).unwrap();
    assert_eq!(
        body["ops"],
        serde_json::json!([{"key": "k", "limit": 3, "window_s": 60, "cost": 3}])
    );
    assert_eq!(
        body["backend"]["password"],
        "$secret://aws/sm/redis/password"
    );
    // nothing new to push, and the answer is not a secrets answer
    host.now += 200;
    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 1);
    let token = host.calls[0].0;
    assert!(rt.on_sync_answer(
        &mut host,
        token,
        Some("200"),
        br#"{"results":[{"remaining":-1,"reset_s":59}]}"#
    ));
    assert!(
        !rt.on_sync_answer(&mut host, 999, Some("200"), b"{}"),
        "unknown tokens are not sync answers"
    );
    assert!(!rt.sync_hit(&opts, "k", host.now).unwrap().allowed());
}

#[test]
fn failed_sync_push_is_logged_once_and_retried() {
    let mut host = FakeHost::default();
    let mut rt = sync_runtime(&mut host);
    let opts = rt.plugins_for(None).limit_count.clone().unwrap();
    rt.sync_hit(&opts, "k", 0);
    rt.on_tick(&mut host);
    let t1 = host.calls[0].0;
    rt.on_sync_answer(
        &mut host,
        t1,
        Some("502"),
        br#"{"error":{"code":"redis_unavailable","message":"refused"}}"#,
    );
    assert!(host.logged(Level::Warn, "refused (redis_unavailable, HTTP 502)"));
    host.now += 200;
    rt.on_tick(&mut host);
    let t2 = host.calls[1].0;
    let body: serde_json::Value = serde_json::from_slice(&host.calls[1].2).unwrap();
    assert_eq!(body["ops"][0]["cost"], 1, "the hit is pushed again");
    rt.on_sync_answer(
        &mut host,
        t2,
        Some("502"),
        br#"{"error":{"code":"redis_unavailable","message":"refused"}}"#,
    );
    let warns = host
        .logs
        .borrow()
        .iter()
        .filter(|(l, m)| *l == Level::Warn && m.contains("refused"))
        .count();
    assert_eq!(warns, 1, "the same failure is logged once");
}

#[test]
fn sync_pushes_are_split_into_calls_the_sidecar_accepts() {
    let mut host = FakeHost::default();
    let mut rt = sync_runtime(&mut host);
    let opts = rt.plugins_for(None).limit_count.clone().unwrap();
    for i in 0..2_500 {
        assert!(rt.sync_hit(&opts, &format!("k{i}"), 0).is_some());
    }
    rt.on_tick(&mut host);
    let sizes: Vec<usize> = host
        .calls
        .iter()
        .map(|(_, _, body)| {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            v["ops"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    // each chunk is answered on its own; a failed chunk is pushed again, alone
    let calls = host.calls.clone();
    for (n, (token, _, body)) in calls.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let ops = v["ops"].as_array().unwrap().len();
        if n == 1 {
            rt.on_sync_answer(&mut host, *token, Some("502"), b"{}");
        } else {
            let results: Vec<serde_json::Value> = (0..ops)
                .map(|_| serde_json::json!({"remaining": 2, "reset_s": 59}))
                .collect();
            let answer = serde_json::json!({ "results": results }).to_string();
            assert!(rt.on_sync_answer(&mut host, *token, Some("200"), answer.as_bytes()));
        }
    }
    host.now += 200;
    rt.on_tick(&mut host);
    assert_eq!(host.calls.len(), 4);
    let v: serde_json::Value = serde_json::from_slice(&host.calls[3].2).unwrap();
    assert_eq!(v["ops"].as_array().unwrap().len(), 1000);
}

/// The status a request with `headers` gets on the default plugin set (200: accepted).
fn status_of(rt: &Worker, headers: &[(&str, &str)]) -> (u16, Option<u32>) {
    let mut req = FakeRequest::new(headers).at(1_700_000_000);
    match authenticate(rt.plugins_for(None), rt.credentials(), &mut req) {
        Some(Decision::Allow(_)) => (200, None),
        Some(Decision::Reject(r)) => (r.status, r.retry_after_s),
        None => (0, None),
    }
}

#[test]
fn a_key_nobody_can_judge_yet_gets_503_not_401() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    let unknown = (503, Some(crate::auth::UNKNOWN_RETRY_AFTER_S));
    // Before any answer: bob's plain key works, any other key might be alice's.
    assert_eq!(status_of(&rt, &[("apikey", "bob-key")]), (200, None));
    assert_eq!(status_of(&rt, &[("apikey", "guess")]), unknown);
    assert_eq!(status_of(&rt, &[]).0, 401, "no key at all is still a 401");
    // Transient failures only: still unknown.
    rt.on_tick(&mut host);
    answer(
        &mut rt,
        &mut host,
        r#""error":{"code":"provider_unreachable","message":"down"}"#,
    );
    assert_eq!(status_of(&rt, &[("apikey", "guess")]), unknown);
    // Known: the usual answers.
    refresh(&mut rt, &mut host, 30_000, r#""value":"alice-key""#);
    assert_eq!(status_of(&rt, &[("apikey", "alice-key")]), (200, None));
    assert_eq!(status_of(&rt, &[("apikey", "guess")]), (401, None));
    // Dropped after max_stale_s without a fresh answer: unknown again.
    host.now += 3_600_001;
    rt.on_tick(&mut host);
    assert_eq!(status_of(&rt, &[("apikey", "guess")]), unknown);
    assert_eq!(status_of(&rt, &[("apikey", "alice-key")]), unknown);
    // A definitive answer (deleted, typo): the usual 401.
    let token = host.calls.last().unwrap().0;
    let body = format!(
        r#"{{"results":[{{"ref":"{ALICE_REF}","error":{{"code":"secret_not_found","message":"no"}}}}]}}"#
    );
    rt.on_answer(&mut host, token, Some("200"), body.as_bytes());
    assert_eq!(status_of(&rt, &[("apikey", "guess")]), (401, None));
}

#[test]
fn named_credentials_503_only_for_their_own_names() {
    let mut host = FakeHost::default();
    let json = serde_json::json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://SIDECAR_TOKEN"},
        "consumers": [
            {"username": "alice", "credentials": [
                {"id": "a-basic", "type": "basic-auth", "username": "alice",
                 "password": "$secret://aws/sm/alice/password"},
                {"id": "a-jwt", "type": "jwt-auth", "key": "alice-jwt",
                 "secret": "$secret://aws/sm/alice/jwt"},
                {"id": "a-hmac", "type": "hmac-auth", "key_id": "alice-kid",
                 "secret_key": "$secret://aws/sm/alice/hmac"}]},
            {"username": "bob", "credentials": [
                {"id": "b-basic", "type": "basic-auth", "username": "bob", "password": "pw"}]}
        ],
        "plugins": {"basic-auth": {}, "jwt-auth": {}, "hmac-auth": {}}
    });
    let rt = Worker::new(
        compile(json.to_string().as_bytes(), &|_| Some("t".into())).unwrap(),
        &mut host,
    );
    let basic = |user: &str, pw: &str| {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Basic {b}")
    };
    let jwt = |key: &str| {
        use base64::Engine;
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "Bearer {}.{}.c2ln",
            e(r#"{"alg":"HS256","typ":"JWT"}"#),
            e(&format!(r#"{{"key":"{key}"}}"#))
        )
    };
    let hmac = |kid: &str| {
        format!(
            r#"Signature keyId="{kid}",algorithm="hmac-sha256",headers="date",signature="c2ln""#
        )
    };
    let date = "Tue, 14 Nov 2023 22:13:20 GMT";
    let unknown = (503, Some(crate::auth::UNKNOWN_RETRY_AFTER_S));
    for (case, headers, want) in [
        (
            "alice basic",
            vec![("authorization", basic("alice", "x"))],
            unknown,
        ),
        (
            "bob basic",
            vec![("authorization", basic("bob", "pw"))],
            (200, None),
        ),
        (
            "carol basic",
            vec![("authorization", basic("carol", "x"))],
            (401, None),
        ),
        (
            "alice jwt",
            vec![("authorization", jwt("alice-jwt"))],
            unknown,
        ),
        (
            "other jwt",
            vec![("authorization", jwt("nobody"))],
            (401, None),
        ),
        (
            "alice hmac",
            vec![("authorization", hmac("alice-kid")), ("date", date.into())],
            unknown,
        ),
        (
            "other hmac",
            vec![("authorization", hmac("nobody")), ("date", date.into())],
            (401, None),
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let got = status_of(&rt, &headers);
        // Several plugins: a request the others refuse gets multi-auth's 401 unless one of them
        // answered 503; compare the status and Retry-After only.
        assert_eq!(got, want, "{case}");
    }
}

/// alice's key behind a reference, with `extra` fields on her credential and at the top.
fn runtime_with(host: &mut FakeHost, top: serde_json::Value, cred: serde_json::Value) -> Worker {
    let mut credential =
        serde_json::json!({"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF});
    for (k, v) in cred.as_object().unwrap() {
        credential[k] = v.clone();
    }
    let mut json = serde_json::json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://SIDECAR_TOKEN"},
        "consumers": [{"username": "alice", "credentials": [credential]}],
        "plugins": {"key-auth": {}}
    });
    for (k, v) in top.as_object().unwrap() {
        json[k] = v.clone();
    }
    Worker::new(
        compile(json.to_string().as_bytes(), &|_| Some("t".into())).unwrap(),
        host,
    )
}

/// `(credential, previous?)` that the key authenticates as.
fn version_of(rt: &Worker, key: &str) -> Option<bool> {
    let mut req = FakeRequest::new(&[("apikey", key)]);
    match authenticate(rt.plugins_for(None), rt.credentials(), &mut req) {
        Some(Decision::Allow(a)) => Some(a.previous),
        _ => None,
    }
}

#[test]
fn rotation_grace_keeps_the_previous_key_for_a_while() {
    let mut host = FakeHost::default();
    let mut rt = runtime_with(
        &mut host,
        serde_json::json!({"rotation_grace_s": 60}),
        serde_json::json!({}),
    );
    rt.on_tick(&mut host);
    let body: serde_json::Value = serde_json::from_slice(&host.calls[0].2).unwrap();
    assert_eq!(
        body["previous"],
        serde_json::json!(true),
        "asks the sidecar for previous versions"
    );
    answer(&mut rt, &mut host, r#""value":"k1""#);
    assert_eq!(version_of(&rt, "k1"), Some(false));
    // Rotated at 30 s: both keys work, the old one marked as previous.
    refresh(&mut rt, &mut host, 30_000, r#""value":"k2""#);
    assert_eq!(version_of(&rt, "k2"), Some(false));
    assert_eq!(version_of(&rt, "k1"), Some(true));
    // Until 60 s after the rotation, a tick early at most, never late.
    host.now += 59_000;
    rt.on_tick(&mut host);
    assert_eq!(version_of(&rt, "k1"), Some(true));
    host.now += 500;
    rt.on_tick(&mut host);
    assert_eq!(version_of(&rt, "k1"), None, "the grace is over");
    assert_eq!(version_of(&rt, "k2"), Some(false));
}

#[test]
fn rotation_grace_uses_the_sidecars_previous_version_and_ends_with_a_revocation() {
    let mut host = FakeHost {
        now: 1_700_000_100_000,
        ..Default::default()
    };
    let mut rt = runtime_with(
        &mut host,
        serde_json::json!({}),
        serde_json::json!({"rotation_grace_s": 300}),
    );
    rt.on_tick(&mut host);
    // Replaced 100 s ago (the sidecar says so): 200 s of grace left.
    answer(
        &mut rt,
        &mut host,
        r#""value":"k2","previous":{"value":"k1","replaced_at":1700000000}"#,
    );
    assert_eq!(version_of(&rt, "k1"), Some(true));
    host.now += 199_000;
    rt.on_tick(&mut host);
    assert_eq!(version_of(&rt, "k1"), Some(true));
    host.now += 600;
    rt.on_tick(&mut host);
    assert_eq!(version_of(&rt, "k1"), None);
    // A definitive refusal drops the previous value with the current one.
    let mut host = FakeHost::default();
    let mut rt = runtime_with(
        &mut host,
        serde_json::json!({"rotation_grace_s": 300}),
        serde_json::json!({}),
    );
    refresh(&mut rt, &mut host, 0, r#""value":"k1""#);
    refresh(&mut rt, &mut host, 30_000, r#""value":"k2""#);
    assert_eq!(version_of(&rt, "k1"), Some(true));
    host.now += 30_000;
    rt.on_tick(&mut host);
    answer(
        &mut rt,
        &mut host,
        r#""error":{"code":"secret_deleted","message":"gone"}"#,
    );
    assert_eq!((version_of(&rt, "k1"), version_of(&rt, "k2")), (None, None));
}

#[test]
fn without_grace_a_rotated_key_stops_at_once() {
    let mut host = FakeHost::default();
    let mut rt = runtime_with(&mut host, serde_json::json!({}), serde_json::json!({}));
    rt.on_tick(&mut host);
    let body: serde_json::Value = serde_json::from_slice(&host.calls[0].2).unwrap();
    assert_eq!(body.get("previous"), None, "no previous versions asked for");
    answer(&mut rt, &mut host, r#""value":"k1""#);
    refresh(&mut rt, &mut host, 30_000, r#""value":"k2""#);
    assert_eq!(
        (version_of(&rt, "k1"), version_of(&rt, "k2")),
        (None, Some(false))
    );
}

#[test]
fn an_expired_credential_stops_matching_without_a_config_change() {
    // 10 s before 2026-12-03T16:11:20Z
    let mut host = FakeHost {
        now: 1_796_314_270_000,
        ..Default::default()
    };
    let mut rt = runtime_with(
        &mut host,
        serde_json::json!({}),
        serde_json::json!({"expires_at": "2026-12-03T16:11:20Z"}),
    );
    refresh(&mut rt, &mut host, 0, r#""value":"k1""#);
    assert_eq!(version_of(&rt, "k1"), Some(false));
    host.now += 9_000;
    rt.on_tick(&mut host);
    assert_eq!(version_of(&rt, "k1"), Some(false));
    host.now += 500;
    rt.on_tick(&mut host);
    assert_eq!(
        version_of(&rt, "k1"),
        None,
        "expired (a tick early at most)"
    );
    assert!(host.logged(
        Level::Error,
        "expired (expires_at); credential \"alice-key-auth\" disabled"
    ));
    let logged = host
        .logs
        .borrow()
        .iter()
        .filter(|(_, m)| m.contains("expires_at"))
        .count();
    refresh(&mut rt, &mut host, 30_000, r#""value":"k1""#);
    let again = host
        .logs
        .borrow()
        .iter()
        .filter(|(_, m)| m.contains("expires_at"))
        .count();
    assert_eq!(logged, again, "logged once");
}

#[test]
fn key_sha256_matches_the_key_whose_digest_the_secret_holds() {
    let mut host = FakeHost::default();
    let mut rt = runtime_with(
        &mut host,
        serde_json::json!({}),
        serde_json::json!({"key": null, "key_sha256": ALICE_REF}),
    );
    rt.on_tick(&mut host);
    // sha256("alice-key")
    let digest = "c8f1d1b2f9fdbc9e1d3d0bd6ab2e8be2c10cbb1f2b7c4aa6a0dbd3c7ee6e2b61";
    use sha2::Digest;
    let real: String = sha2::Sha256::digest(b"alice-key")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_ne!(digest, real, "a wrong digest first");
    answer(&mut rt, &mut host, &format!(r#""value":"{digest}""#));
    assert_eq!(version_of(&rt, "alice-key"), None);
    host.now += 30_000;
    rt.on_tick(&mut host);
    answer(
        &mut rt,
        &mut host,
        &format!(r#""value":"{}""#, real.to_uppercase()),
    );
    assert_eq!(version_of(&rt, "alice-key"), Some(false));
    assert_eq!(
        version_of(&rt, &real),
        None,
        "the digest itself is not the key"
    );
    // A value that is not a digest disables the credential, once logged.
    refresh(&mut rt, &mut host, 30_000, r#""value":"not-hex""#);
    assert_eq!(version_of(&rt, "alice-key"), None);
    assert!(host.logged(Level::Error, "key_sha256 is not a SHA-256 digest"));
    assert!(!host.logged(Level::Error, "not-hex"), "never the value");
}

fn miss(kind: &'static str, presented: &str) -> crate::http::Miss {
    crate::http::Reject::message(401, "x", None, "x")
        .missed(kind, presented.as_bytes())
        .miss
        .unwrap()
}

#[test]
fn a_key_that_misses_refreshes_at_once_asking_the_sidecar_to_refetch() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    refresh(&mut rt, &mut host, 0, r#""value":"alice-key""#);
    assert_eq!(host.calls.len(), 1);
    // alice's key rotated in AWS; her client already has the new one.
    host.now += 2_000;
    let mut req = FakeRequest::new(&[("apikey", "alice-key-2")]);
    let plan = crate::request::decide(&rt, &mut req, &mut NoStore, &mut || 0);
    let m = plan.miss.expect("a miss");
    rt.on_miss(&mut host, m);
    assert_eq!(host.calls.len(), 1, "not from the request's context");
    host.now += 500;
    rt.on_tick(&mut host);
    assert_eq!(
        host.calls.len(),
        2,
        "refreshed on the next tick, not after refresh_interval_s"
    );
    let body: serde_json::Value = serde_json::from_slice(&host.calls[1].2).unwrap();
    assert_eq!(body["refetch"], serde_json::json!([ALICE_REF]));
    answer(&mut rt, &mut host, r#""value":"alice-key-2""#);
    assert_eq!(who(&rt, "alice-key-2").as_deref(), Some("alice"));
}

#[test]
fn random_keys_cost_at_most_one_refresh_per_interval_and_a_repeated_wrong_key_none() {
    let mut host = FakeHost::default();
    let mut rt = runtime(&mut host);
    refresh(&mut rt, &mut host, 0, r#""value":"alice-key""#);
    let start = host.now;
    // 10 s of an attacker's random keys, 1,000 a second, the sidecar answering each refresh.
    for i in 0..10_000u64 {
        host.now = start + i;
        rt.on_miss(&mut host, miss("key-auth", &format!("guess-{i}")));
        // the worker ticks every 500 ms; the sidecar answers at once
        if i % 500 == 0 {
            rt.on_tick(&mut host);
        }
        if host.calls.len() > 1 && rt.refresh_in_flight(host.now) {
            answer(&mut rt, &mut host, r#""value":"alice-key""#);
        }
    }
    // The regular refresh (every 30 s) is not due yet: every call here came from a miss.
    let refreshes = host.calls.len() - 1;
    assert!(
        (9..=11).contains(&refreshes),
        "{refreshes} refreshes in 10 s with miss_refresh_min_interval_s = 1"
    );
    // A client repeating one wrong key every second: once it missed after a refresh, not
    // again for ten intervals (10 s), then once more.
    let calls = host.calls.len();
    for i in 0..20u64 {
        host.now += 1_000;
        rt.on_miss(&mut host, miss("key-auth", "old-key"));
        rt.on_tick(&mut host);
        if rt.refresh_in_flight(host.now) {
            answer(&mut rt, &mut host, r#""value":"alice-key""#);
        }
        if i == 0 {
            assert_eq!(host.calls.len(), calls + 1, "the first miss refreshes");
        }
    }
    assert_eq!(
        host.calls.len(),
        calls + 2,
        "the same wrong key: one refresh per ten intervals"
    );
}

/// No shared data (these tests count nothing locally).
struct NoStore;

impl crate::limit::local::SharedStore for NoStore {
    fn get(&mut self, _: &str) -> Option<(Vec<u8>, u32)> {
        None
    }
    fn set(
        &mut self,
        _: &str,
        _: &[u8],
        _: Option<u32>,
    ) -> Result<(), crate::limit::local::StoreError> {
        Err(crate::limit::local::StoreError::Failed)
    }
}

#[test]
fn each_credential_fault_disables_only_that_credential_logged_once_and_counted() {
    let r = |k: &str| format!("$secret://aws/sm/creds/{k}");
    let json = serde_json::json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://SIDECAR_TOKEN"},
        "consumers": [
            {"username": "ok", "credentials": [
                {"id": "ok-key", "type": "key-auth", "key": r("ok")}]},
            {"username": "pem", "credentials": [
                {"id": "pem-jwt", "type": "jwt-auth", "key": "pem", "algorithm": "RS256",
                 "public_key": r("pem")},
                {"id": "pem-key", "type": "key-auth", "key": r("pem-key")}]},
            {"username": "dup1", "credentials": [
                {"id": "dup1-key", "type": "key-auth", "key": r("dup1")}]},
            {"username": "dup2", "credentials": [
                {"id": "dup2-key", "type": "key-auth", "key": r("dup2")}]},
            {"username": "empty", "credentials": [
                {"id": "empty-key", "type": "key-auth", "key": r("empty")}]},
            {"username": "gone", "credentials": [
                {"id": "gone-key", "type": "key-auth", "key": r("gone")}]},
            {"username": "old", "credentials": [
                {"id": "old-key", "type": "key-auth", "key": r("old"),
                 "expires_at": "2020-01-01T00:00:00Z"}]}
        ],
        "plugins": {"key-auth": {}}
    });
    let mut host = FakeHost {
        now: 1_796_314_280_000,
        ..Default::default()
    };
    let mut rt = Worker::new(
        compile(json.to_string().as_bytes(), &|_| Some("t".into())).unwrap(),
        &mut host,
    );
    rt.on_tick(&mut host);
    let token = host.calls.last().unwrap().0;
    let value = |k: &str, v: &str| format!(r#"{{"ref":"{}","value":"{v}"}}"#, r(k));
    let results = [
        value("ok", "ok-secret"),
        value("pem", "garbage-pem-xyz"),
        value("pem-key", "pem-secret"),
        value("dup1", "same-secret"),
        value("dup2", "same-secret"),
        value("empty", ""),
        format!(
            r#"{{"ref":"{}","error":{{"code":"secret_not_found","message":"no"}}}}"#,
            r("gone")
        ),
        value("old", "old-secret"),
    ];
    let body = format!(r#"{{"results":[{}]}}"#, results.join(","));
    rt.on_answer(&mut host, token, Some("200"), body.as_bytes());
    // Only the faulty credentials are off; their consumers' other credentials work.
    assert_eq!(who(&rt, "ok-secret").as_deref(), Some("ok"));
    assert_eq!(who(&rt, "pem-secret").as_deref(), Some("pem"));
    for key in ["same-secret", "", "old-secret"] {
        assert_eq!(who(&rt, key), None, "{key:?}");
    }
    // Each logged with its reason, once, without values.
    for needle in [
        "pem-jwt\" disabled",
        "have the same key; credential \"dup1-key\" disabled",
        "(empty_value); credential(s) empty-key disabled",
        "(secret_not_found); credential(s) gone-key disabled",
        "expired (expires_at); credential \"old-key\" disabled",
    ] {
        let n = host
            .logs
            .borrow()
            .iter()
            .filter(|(l, m)| *l == Level::Error && m.contains(needle))
            .count();
        assert_eq!(n, 1, "{needle}: {:?}", host.logs.borrow());
    }
    let leaked: Vec<String> = host
        .logs
        .borrow()
        .iter()
        .filter(|(_, m)| m.contains("same-secret") || m.contains("garbage-pem-xyz"))
        .map(|(_, m)| m.clone())
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    // A second identical answer logs nothing new.
    let before = host.logs.borrow().len();
    host.now += 30_000;
    rt.on_tick(&mut host);
    let token = host.calls.last().unwrap().0;
    rt.on_answer(&mut host, token, Some("200"), body.as_bytes());
    assert_eq!(
        host.logs.borrow().len(),
        before,
        "{:?}",
        &host.logs.borrow()[before..]
    );
    // Counted, by reason.
    let metrics = rt.drain_metrics();
    let gauge = |name: &str| {
        metrics.iter().find_map(|m| match m {
            crate::metrics::Update::Gauge(n, v)
                if n == &format!("envoy_secret_auth.credentials.disabled.{name}") =>
            {
                Some(*v)
            }
            _ => None,
        })
    };
    assert_eq!(gauge("bad_key"), Some(1));
    assert_eq!(gauge("shared_key"), Some(2));
    assert_eq!(gauge("expired"), Some(1));
    assert_eq!(gauge("unresolved"), Some(2), "empty and not found");
    assert_eq!(gauge("unknown"), Some(0));
}
