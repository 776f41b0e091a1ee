//! The order of the steps and the degradation rules, table-tested on the host.

use super::*;
use crate::auth::tests::FakeRequest;
use crate::config::{compile, Sidecar};
use crate::http::callout::DispatchError;
use crate::limit::local::HashKey;
use crate::worker::{Host, Level};
use std::collections::HashMap;

struct NoHost;

impl Host for NoHost {
    fn now_ms(&self) -> u64 {
        0
    }
    fn log(&self, _: Level, _: &str) {}
    fn dispatch(&mut self, _: &Sidecar, _: &str, _: Vec<u8>) -> Result<u32, DispatchError> {
        Err(DispatchError::UnknownCluster)
    }
}

/// Envoy's shared data, enough for counters: versions checked on replace.
#[derive(Default)]
struct Store(HashMap<String, (Vec<u8>, u32)>);

impl SharedStore for Store {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.0.get(key).cloned()
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let version = match (self.0.get(key), cas) {
            (Some((_, current)), Some(c)) if c != 0 && c != *current => {
                return Err(StoreError::CasMismatch)
            }
            (Some((_, current)), _) => current + 1,
            (None, _) => 1,
        };
        self.0.insert(key.to_string(), (value.to_vec(), version));
        Ok(())
    }
}

/// A worker with alice (key-auth, custom id) and the given plugin sets.
fn worker(plugins: serde_json::Value, routes: serde_json::Value) -> Worker {
    let json = serde_json::json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://TOKEN"},
        "consumers": [
            {"username": "alice", "labels": {"custom_id": "a-1"}, "credentials": [
                {"id": "alice-key", "type": "key-auth", "key": "alice-key"}]},
            {"username": "guest"}
        ],
        "plugins": plugins,
        "routes": routes
    });
    let compiled = compile(json.to_string().as_bytes(), &|_| Some("t".into())).unwrap();
    let mut w = Worker::new(compiled, &mut NoHost);
    w.set_limit_hash_key(HashKey::fixed([1; 32]));
    w
}

fn run(w: &Worker, store: &mut Store, headers: &[(&str, &str)]) -> Plan {
    decide(w, &mut FakeRequest::new(headers), store, &mut || 1_000)
}

fn status(plan: &Plan) -> Option<u16> {
    match &plan.next {
        Next::Reply(r) => Some(r.status),
        _ => None,
    }
}

fn identity(alice: bool) -> Vec<Edit> {
    if alice {
        vec![
            Edit::Set(CONSUMER_USERNAME.into(), b"alice".to_vec()),
            Edit::Set(CREDENTIAL_IDENTIFIER.into(), b"alice-key".to_vec()),
            Edit::Set(CONSUMER_CUSTOM_ID.into(), b"a-1".to_vec()),
        ]
    } else {
        [CONSUMER_USERNAME, CREDENTIAL_IDENTIFIER, CONSUMER_CUSTOM_ID]
            .into_iter()
            .map(|h| Edit::Remove(h.into()))
            .collect()
    }
}

#[test]
fn authentication_then_identity_headers() {
    let w = worker(
        serde_json::json!({"key-auth": {"hide_credentials": true}}),
        serde_json::json!({"open": {}, "guest": {"key-auth": {"anonymous_consumer": "guest"}}}),
    );
    let mut store = Store::default();
    // accepted: identity headers, then the key hidden
    let plan = run(&w, &mut store, &[("apikey", "alice-key")]);
    let mut want = identity(true);
    want.push(Edit::Remove("apikey".into()));
    assert_eq!((plan.edits, plan.next), (want, Next::Continue));
    // refused: the plugin's answer, nothing edited
    let plan = run(&w, &mut store, &[("apikey", "nope")]);
    assert_eq!((plan.edits.len(), status(&plan)), (0, Some(401)));
    // a route without auth plugins: client copies of the identity headers removed
    let mut req = FakeRequest::new(&[]);
    let plan = decide(&w, &mut RouteView(&mut req, "open"), &mut store, &mut || 0);
    assert_eq!((plan.edits, plan.next), (identity(false), Next::Continue));
    // the anonymous consumer: its name, no credential
    let mut req = FakeRequest::new(&[]);
    let plan = decide(&w, &mut RouteView(&mut req, "guest"), &mut store, &mut || 0);
    assert_eq!(
        plan.edits,
        vec![
            Edit::Set(CONSUMER_USERNAME.into(), b"guest".to_vec()),
            Edit::Remove(CREDENTIAL_IDENTIFIER.into()),
            Edit::Remove(CONSUMER_CUSTOM_ID.into()),
        ]
    );
}

/// A worker like [`worker`] whose Envoy removes client identity headers before routing.
fn worker_envoy_strips(plugins: serde_json::Value, routes: serde_json::Value) -> Worker {
    let json = serde_json::json!({
        "sidecar": {"cluster": "secret_sidecar", "token": "$env://TOKEN"},
        "strip_identity_headers": false,
        "consumers": [
            {"username": "alice", "credentials": [
                {"id": "alice-key", "type": "key-auth", "key": "alice-key"}]},
            {"username": "guest"}
        ],
        "plugins": plugins,
        "routes": routes
    });
    let compiled = compile(json.to_string().as_bytes(), &|_| Some("t".into())).unwrap();
    Worker::new(compiled, &mut NoHost)
}

/// Counts what a decision asks of the request (each is a host call in Envoy).
struct Counting<'a>(&'a mut dyn RequestView, usize);

impl RequestView for Counting<'_> {
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.1 += 1;
        self.0.header(name)
    }
    fn now_s(&mut self) -> u64 {
        self.0.now_s()
    }
    fn route_name(&mut self) -> Option<String> {
        self.1 += 1;
        self.0.route_name()
    }
}

#[test]
fn when_envoy_strips_identity_headers_only_what_is_known_is_written() {
    let w = worker_envoy_strips(
        serde_json::json!({"key-auth": {}}),
        serde_json::json!({"open": {}, "guest": {"key-auth": {"anonymous_consumer": "guest"}}}),
    );
    let mut store = Store::default();
    // alice has no custom id: two writes, no removal
    let plan = run(&w, &mut store, &[("apikey", "alice-key")]);
    assert_eq!(
        plan.edits,
        vec![
            Edit::Set(CONSUMER_USERNAME.into(), b"alice".to_vec()),
            Edit::Set(CREDENTIAL_IDENTIFIER.into(), b"alice-key".to_vec()),
        ]
    );
    // a route without plugins: nothing read but the route's name, nothing written
    let mut req = FakeRequest::new(&[("x-consumer-username", "mallory")]);
    let mut route = RouteView(&mut req, "open");
    let mut view = Counting(&mut route, 0);
    let plan = decide(&w, &mut view, &mut store, &mut || 0);
    assert_eq!((plan.edits, plan.next, view.1), (vec![], Next::Continue, 1));
    // the anonymous consumer: its name only
    let mut req = FakeRequest::new(&[]);
    let plan = decide(&w, &mut RouteView(&mut req, "guest"), &mut store, &mut || 0);
    assert_eq!(
        plan.edits,
        vec![Edit::Set(CONSUMER_USERNAME.into(), b"guest".to_vec())]
    );
}

#[test]
fn without_plugins_a_request_costs_no_host_call() {
    let w = worker_envoy_strips(serde_json::json!({}), serde_json::json!({}));
    let mut req = FakeRequest::new(&[("apikey", "alice-key")]);
    let mut view = Counting(&mut req, 0);
    let plan = decide(&w, &mut view, &mut Store::default(), &mut || 0);
    assert_eq!((plan.edits, plan.next, view.1), (vec![], Next::Continue, 0));
}

/// A request on a named route.
struct RouteView<'a>(&'a mut FakeRequest, &'static str);

impl RequestView for RouteView<'_> {
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.0.header(name)
    }
    fn now_s(&mut self) -> u64 {
        self.0.now_s()
    }
    fn route_name(&mut self) -> Option<String> {
        Some(self.1.into())
    }
}

#[test]
fn limit_count_runs_after_authentication_and_only_for_accepted_requests() {
    let w = worker(
        serde_json::json!({"key-auth": {}, "limit-count": {
            "count": 2, "time_window": 60, "key": "consumer_name", "rejected_code": 429}}),
        serde_json::json!({}),
    );
    let mut store = Store::default();
    // refused by key-auth: 401, the counter untouched
    for _ in 0..5 {
        assert_eq!(
            status(&run(&w, &mut store, &[("apikey", "nope")])),
            Some(401)
        );
    }
    let answers: Vec<(Option<u16>, Option<String>)> = (0..3)
        .map(|_| {
            let plan = run(&w, &mut store, &[("apikey", "alice-key")]);
            (status(&plan), plan.quota.map(|q| q[1].1.clone()))
        })
        .collect();
    assert_eq!(
        answers,
        [
            (None, Some("1".into())),
            (None, Some("0".into())),
            (Some(429), Some("0".into()))
        ]
    );
}

#[test]
fn store_failures_follow_allow_degradation() {
    let opts = |degrade: bool| LimitOptions {
        allow_degradation: degrade,
        ..worker(
            serde_json::json!({"limit-count": {"count": 1, "time_window": 1}}),
            serde_json::json!({}),
        )
        .plugins_for(None)
        .limit_count
        .clone()
        .unwrap()
    };
    let check = BodyCheck {
        digest: "SHA-256=x".into(),
        max_size: 10,
    };
    type Row = (
        bool,
        Result<Hit, CounterError>,
        Option<BodyCheck>,
        Next,
        Vec<Note>,
    );
    let over = Hit {
        used: 2,
        limit: 1,
        reset_ms: 1000,
    };
    let under = Hit {
        used: 1,
        limit: 1,
        reset_ms: 1000,
    };
    let rows: Vec<Row> = vec![
        (
            false,
            Err(CounterError::Store(StoreError::Failed)),
            None,
            Next::Reply(limit::unavailable()),
            vec![Note::LimitFailed(CounterError::Store(StoreError::Failed))],
        ),
        (
            true,
            Err(CounterError::Store(StoreError::Failed)),
            None,
            Next::Continue,
            vec![Note::LimitFailed(CounterError::Store(StoreError::Failed))],
        ),
        (
            true,
            Err(CounterError::Store(StoreError::Failed)),
            Some(check.clone()),
            Next::WaitBody(check.clone()),
            vec![Note::LimitFailed(CounterError::Store(StoreError::Failed))],
        ),
        (
            false,
            Ok(under),
            Some(check.clone()),
            Next::WaitBody(check.clone()),
            vec![Note::LimitWorks],
        ),
        (
            true,
            Ok(over),
            Some(check.clone()),
            Next::Reply(opts(true).reject()),
            vec![Note::LimitWorks],
        ),
    ];
    for (degrade, outcome, body, next, notes) in rows {
        let plan = counter_answered(&opts(degrade), outcome.clone(), body);
        assert_eq!(
            (plan.next, plan.notes),
            (next, notes),
            "{degrade} {outcome:?}"
        );
    }
}

#[test]
fn a_redis_counter_is_a_call_bounded_by_redis_timeout() {
    let w = worker(
        serde_json::json!({"key-auth": {}, "limit-count": {
            "count": 5, "time_window": 60, "key": "consumer_name", "policy": "redis",
            "redis_host": "127.0.0.1", "redis_timeout": 300}}),
        serde_json::json!({}),
    );
    let plan = run(&w, &mut Store::default(), &[("apikey", "alice-key")]);
    assert_eq!(
        plan.edits,
        identity(true),
        "headers are set before the counter call"
    );
    match plan.next {
        Next::CountInRedis(call) => {
            assert_eq!(call.timeout, Duration::from_millis(400));
            let body: serde_json::Value = serde_json::from_slice(&call.body()).unwrap();
            assert_eq!(body["ops"][0]["key"], "limit-count:default:alice");
            assert_eq!(body["ops"][0]["cost"], 1);
        }
        other => panic!("{other:?}"),
    }
    // the sidecar's answer, as the glue shares it out and judges it
    let opts = w.plugins_for(None).limit_count.clone().unwrap();
    let body = br#"{"results":[{"remaining":4,"reset_s":60}]}"#;
    let (_, counter) = crate::limit::batch::share_answer(vec![()], Some("200"), body).remove(0);
    let hit = counter.unwrap().to_hit(opts.count);
    assert_eq!(hit.used, 1);
    let plan = counter_answered(&opts, Ok(hit), None);
    assert_eq!(plan.next, Next::Continue);
    assert!(plan.quota.is_some());
}

#[test]
fn the_body_is_checked_last() {
    let check = BodyCheck {
        digest: "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        max_size: 4,
    };
    assert_eq!(body_arrived(&check, b"").0, Next::Continue);
    let (next, note) = body_arrived(&check, b"abc");
    assert!(matches!(next, Next::Reply(ref r) if r.status == 401));
    assert!(matches!(note, Some(Note::Refused(_))));
    assert_eq!(body_arrived(&check, b"12345").0, Next::Reply(too_large()));
}
