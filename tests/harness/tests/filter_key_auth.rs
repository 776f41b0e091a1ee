//! The real filter `.wasm` against DESIGN.md section 3: configuration, batched resolution
//! through the sidecar, key-auth decisions, the startup gate and refresh.
//!
//! Build the filter first (cargo, then the removal of unused callback exports):
//!     scripts/build.sh

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use proxy_wasm_harness::{Host, HostOptions, Outcome, Stream};
use serde_json::{json, Value};
use support::{
    answer, assert_forwarded_as, assert_refused, callouts_within, first_answered, get, one_callout,
    refs_of, sidecar, started, started_with, FIRST_FETCH,
};

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
const BOB_REF: &str = "$secret://aws/my-secrets-manager/bob-credentials/bob-key";
const REFRESH: Duration = Duration::from_secs(30);
const STARTUP_WAIT: Duration = Duration::from_millis(5000);

// ---- helpers -------------------------------------------------------------------------------

/// alice and bob with `$secret://` keys, carol with a plain key; key-auth for every route.
fn config() -> Value {
    json!({
        "sidecar": sidecar(),
        "refresh_interval_s": 30,
        "startup_wait_ms": 5000,
        "consumers": [
            {"username": "alice", "labels": {"custom_id": "alice-001"},
             "credentials": [{"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF}]},
            {"username": "bob",
             "credentials": [{"id": "bob-key-auth", "type": "key-auth", "key": BOB_REF}]},
            {"username": "carol",
             "credentials": [{"id": "carol-plain", "type": "key-auth", "key": "carol-plain-key"}]}
        ],
        "plugins": {"key-auth": {"header": "apikey", "query": "apikey", "hide_credentials": false}}
    })
}

fn add_consumer(config: &mut Value, username: &str, credential: &str, key: &str) {
    let consumer = json!({"username": username,
        "credentials": [{"id": credential, "type": "key-auth", "key": key}]});
    config["consumers"].as_array_mut().unwrap().push(consumer);
}

const VALUES: &[(&str, &str)] = &[(ALICE_REF, "alice-key"), (BOB_REF, "bob-key")];

/// Started, first callout answered with alice-key and bob-key.
fn configured_host(config: &Value) -> support::Filter {
    first_answered(started(config), VALUES)
}

/// Asserts the stream got key-auth's 401 with `message`.
fn assert_rejected(host: &Host, s: Stream, message: &str) {
    let reply = host
        .local_reply(s)
        .unwrap_or_else(|| panic!("expected a 401, got {:?}", host.outcome(s)));
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"apikey realm="key""#)
    );
    let body: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| panic!("401 body is not JSON: {:?}", reply.body_str()));
    assert_eq!(body, json!({ "message": message }));
}

const MISSING: &str = "Missing API key in request";
const INVALID: &str = "Invalid API key in request";

// ---- the sidecar callout -------------------------------------------------------------------

#[test]
fn first_tick_makes_one_batched_resolve_callout() {
    let mut host = started(&config());
    let call = one_callout(&mut host, FIRST_FETCH);
    assert_eq!(call.upstream, "secret_sidecar");
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":path"), Some("/v1/resolve"));
    assert_eq!(call.header(":authority"), Some("secret-sidecar"));
    assert_eq!(
        call.header("authorization"),
        Some("Bearer test-sidecar-token")
    );
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.timeout_ms, 2000);
    let mut refs = refs_of(&call);
    refs.sort();
    assert_eq!(refs, [ALICE_REF, BOB_REF]);
    // While it is in flight (2 s timeout), no second one.
    assert!(callouts_within(&mut host, Duration::from_millis(1900)).is_empty());
}

#[test]
fn no_callout_and_no_wait_without_secret_references() {
    let config = json!({
        "consumers": [{"username": "carol",
                       "credentials": [{"id": "carol-plain", "type": "key-auth", "key": "carol-plain-key"}]}],
        "plugins": {"key-auth": {"header": "apikey", "query": "apikey", "hide_credentials": false}}
    });
    let mut host = started(&config);
    let s = get(&mut host, "/", &[("apikey", "carol-plain-key")]);
    assert_forwarded_as(&host, s, "carol", "carol-plain");
    assert!(callouts_within(&mut host, Duration::from_secs(60)).is_empty());
}

#[test]
fn vault_references_are_batched_too() {
    let vault_ref = "$secret://vault/team-vault/kv/dave/api-key";
    let mut config = config();
    add_consumer(&mut config, "dave", "dave-key", vault_ref);
    let mut host = started(&config);
    let call = one_callout(&mut host, FIRST_FETCH);
    let mut refs = refs_of(&call);
    refs.sort();
    assert_eq!(refs, [ALICE_REF, BOB_REF, vault_ref]);
    answer(&mut host, &call, &[(vault_ref, "dave-vault-key")], &[]);
    let s = get(&mut host, "/ip", &[("apikey", "dave-vault-key")]);
    assert_forwarded_as(&host, s, "dave", "dave-key");
}

// ---- key-auth --------------------------------------------------------------------------------

#[test]
fn resolved_key_authenticates_and_sets_consumer_headers() {
    let mut host = configured_host(&config());
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
    // hide_credentials is false: the key goes upstream.
    assert_eq!(
        host.request_header(s, "apikey").as_deref(),
        Some("alice-key")
    );

    let s = get(&mut host, "/ip", &[("apikey", "bob-key")]);
    assert_forwarded_as(&host, s, "bob", "bob-key-auth");
}

#[test]
fn plain_key_authenticates() {
    let mut host = configured_host(&config());
    let s = get(&mut host, "/ip", &[("apikey", "carol-plain-key")]);
    assert_forwarded_as(&host, s, "carol", "carol-plain");
}

#[test]
fn client_copies_of_consumer_headers_are_replaced() {
    let mut host = configured_host(&config());
    let s = get(
        &mut host,
        "/ip",
        &[
            ("apikey", "alice-key"),
            ("x-consumer-username", "mallory"),
            ("x-consumer-username", "eve"),
            ("x-credential-identifier", "forged"),
        ],
    );
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
}

#[test]
fn missing_key_is_401_missing() {
    let mut host = configured_host(&config());
    let s = get(&mut host, "/ip", &[]);
    assert_rejected(&host, s, MISSING);
}

#[test]
fn unknown_key_is_401_invalid() {
    let mut host = configured_host(&config());
    let s = get(&mut host, "/ip", &[("apikey", "not-a-key")]);
    assert_rejected(&host, s, INVALID);
    let s = get(&mut host, "/ip", &[("apikey", "alice-key-but-longer")]);
    assert_rejected(&host, s, INVALID);
}

#[test]
fn key_in_query_authenticates() {
    let mut host = configured_host(&config());
    let s = get(&mut host, "/ip?apikey=alice-key", &[]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
    assert_eq!(
        host.request_header(s, ":path").as_deref(),
        Some("/ip?apikey=alice-key")
    );

    let s = get(&mut host, "/ip?apikey=wrong", &[]);
    assert_rejected(&host, s, INVALID);

    // The header is looked at first; the query only when there is no header.
    let s = get(&mut host, "/ip?apikey=alice-key", &[("apikey", "wrong")]);
    assert_rejected(&host, s, INVALID);
}

#[test]
fn header_and_query_names_are_configurable() {
    let mut config = config();
    config["plugins"]["key-auth"] = json!({"header": "x-api-key", "query": "token"});
    let mut host = configured_host(&config);
    let s = get(&mut host, "/ip", &[("x-api-key", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
    let s = get(&mut host, "/ip?token=bob-key", &[]);
    assert_forwarded_as(&host, s, "bob", "bob-key-auth");
    let s = get(
        &mut host,
        "/ip?apikey=alice-key",
        &[("apikey", "alice-key")],
    );
    assert_rejected(&host, s, MISSING);
}

fn hiding_config() -> Value {
    let mut config = config();
    config["plugins"]["key-auth"]["hide_credentials"] = json!(true);
    config
}

#[test]
fn hide_credentials_strips_the_header() {
    let mut host = configured_host(&hiding_config());
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
    assert_eq!(host.request_header(s, "apikey"), None);
}

#[test]
fn hide_credentials_strips_the_query_argument() {
    let mut host = configured_host(&hiding_config());
    for (path, forwarded) in [
        ("/ip?apikey=alice-key", "/ip"),
        ("/ip?apikey=alice-key&page=2", "/ip?page=2"),
        ("/ip?page=2&apikey=alice-key", "/ip?page=2"),
    ] {
        let s = get(&mut host, path, &[]);
        assert_forwarded_as(&host, s, "alice", "alice-key-auth");
        assert_eq!(
            host.request_header(s, ":path").as_deref(),
            Some(forwarded),
            "{path}"
        );
    }
}

#[test]
fn route_without_plugins_passes_and_drops_client_consumer_headers() {
    let mut config = config();
    config["routes"] = json!({ "public": {} });
    let mut host = configured_host(&config);
    host.set_property(&["xds", "route_name"], b"public");
    let s = get(&mut host, "/", &[("x-consumer-username", "mallory")]);
    assert_eq!(host.outcome(s), Outcome::Continue);
    assert_eq!(host.request_header(s, "x-consumer-username"), None);

    host.set_property(&["xds", "route_name"], b"private");
    let s = get(&mut host, "/", &[]);
    assert_rejected(&host, s, MISSING);
}

#[test]
fn env_references_are_read_from_the_vm_environment() {
    let mut config = config();
    add_consumer(&mut config, "erin", "erin-env", "$env://ERIN_KEY");
    add_consumer(&mut config, "frank", "frank-env", "$env://TEAM_KEYS/frank");
    let env = [
        ("ERIN_KEY", "erin-env-key"),
        ("TEAM_KEYS", r#"{"frank": "frank-env-key"}"#),
    ];
    let options = HostOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..HostOptions::default()
    };
    let mut host = started_with(&config, options);
    let call = one_callout(&mut host, FIRST_FETCH);
    assert!(refs_of(&call).iter().all(|r| r.starts_with("$secret://")));
    answer(&mut host, &call, VALUES, &[]);
    let s = get(&mut host, "/ip", &[("apikey", "erin-env-key")]);
    assert_forwarded_as(&host, s, "erin", "erin-env");
    let s = get(&mut host, "/ip", &[("apikey", "frank-env-key")]);
    assert_forwarded_as(&host, s, "frank", "frank-env");
}

#[test]
fn stale_values_are_used() {
    let mut host = started(&config());
    let call = one_callout(&mut host, FIRST_FETCH);
    let results: Vec<Value> = refs_of(&call)
        .iter()
        .map(|r| {
            let value = if r == ALICE_REF {
                "alice-stale"
            } else {
                "bob-stale"
            };
            json!({"ref": r, "value": value, "stale": true})
        })
        .collect();
    let body = json!({ "results": results }).to_string();
    host.respond(call.token, &[(":status", "200")], body.as_bytes())
        .unwrap();
    let s = get(&mut host, "/ip", &[("apikey", "alice-stale")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
}

// ---- startup gate ------------------------------------------------------------------------

#[test]
fn requests_before_the_first_answer_wait_for_it() {
    let mut host = started(&config());
    let good = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    let bad = get(&mut host, "/ip", &[("apikey", "nope")]);
    assert_eq!(host.outcome(good), Outcome::Paused);
    assert_eq!(host.outcome(bad), Outcome::Paused);

    let call = one_callout(&mut host, FIRST_FETCH);
    assert_eq!(host.outcome(good), Outcome::Paused);
    answer(&mut host, &call, VALUES, &[]);
    assert_forwarded_as(&host, good, "alice", "alice-key-auth");
    assert_rejected(&host, bad, INVALID);
}

#[test]
fn requests_before_the_first_answer_are_judged_after_startup_wait() {
    // The callout outlives startup_wait_ms, so only the wait can release the requests.
    let mut config = config();
    config["sidecar"]["timeout_ms"] = json!(60_000);
    let mut host = started(&config);
    let secret = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    let plain = get(&mut host, "/ip", &[("apikey", "carol-plain-key")]);
    let call = one_callout(&mut host, FIRST_FETCH);

    host.advance(STARTUP_WAIT - FIRST_FETCH - Duration::from_millis(100))
        .unwrap();
    assert_eq!(host.outcome(secret), Outcome::Paused);
    host.advance(Duration::from_millis(1100)).unwrap();
    // Judged with what is known: the unresolved reference matches nobody, and since the key
    // could be alice's, the answer is "try again" (503, Retry-After), not "wrong key" (401).
    let reply = host.local_reply(secret).expect("a local reply");
    assert_eq!(
        (reply.status, reply.header("retry-after")),
        (503, Some("5"))
    );
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body,
        json!({"message": "the credential store is unavailable, retry later"})
    );
    assert_forwarded_as(&host, plain, "carol", "carol-plain");

    // A late answer still counts for later requests.
    answer(&mut host, &call, VALUES, &[]);
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
}

#[test]
fn request_that_ends_while_waiting_is_forgotten() {
    let mut host = started(&config());
    let gone = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    let waiting = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    host.finish(gone).unwrap();
    let call = one_callout(&mut host, FIRST_FETCH);
    answer(&mut host, &call, VALUES, &[]);
    assert_forwarded_as(&host, waiting, "alice", "alice-key-auth");
    // The Filter guard checks no host call went to the finished stream.
}

// ---- resolution errors -------------------------------------------------------------------

#[test]
fn reference_answered_with_an_error_is_disabled_and_logged() {
    let mut host = started(&config());
    let call = one_callout(&mut host, FIRST_FETCH);
    let message = r#"secret "bob-credentials" not found in provider "my-secrets-manager""#;
    answer(
        &mut host,
        &call,
        &[(ALICE_REF, "s3cr3t-alice")],
        &[(BOB_REF, "secret_not_found", message)],
    );
    // The reference itself is no key.
    let s = get(&mut host, "/ip", &[("apikey", BOB_REF)]);
    assert_rejected(&host, s, INVALID);
    let s = get(&mut host, "/ip", &[("apikey", "s3cr3t-alice")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");

    let lines = host.logs_containing(BOB_REF);
    assert!(
        lines.iter().any(|l| l.contains(message)),
        "no log line names {BOB_REF} and the sidecar's message: {:?}",
        host.logs()
    );
    assert!(
        host.logs_containing("s3cr3t-alice").is_empty(),
        "a value was logged"
    );
}

// ---- refresh -----------------------------------------------------------------------------

#[test]
fn refresh_rotates_keys() {
    let mut host = configured_host(&config());
    assert!(callouts_within(&mut host, REFRESH - Duration::from_secs(1)).is_empty());
    let call = one_callout(&mut host, Duration::from_secs(2));
    let mut refs = refs_of(&call);
    refs.sort();
    assert_eq!(refs, [ALICE_REF, BOB_REF]);
    answer(
        &mut host,
        &call,
        &[(ALICE_REF, "alice-key-2"), (BOB_REF, "bob-key")],
        &[],
    );

    let s = get(&mut host, "/ip", &[("apikey", "alice-key-2")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_rejected(&host, s, INVALID);
    let s = get(&mut host, "/ip", &[("apikey", "bob-key")]);
    assert_forwarded_as(&host, s, "bob", "bob-key-auth");
}

#[test]
fn failed_refresh_keeps_the_last_good_values() {
    let mut host = configured_host(&config());

    let call = one_callout(&mut host, REFRESH + Duration::from_secs(1));
    host.fail_call(call.token).unwrap();
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");

    let call = one_callout(&mut host, REFRESH + Duration::from_secs(1));
    host.respond(call.token, &[(":status", "500")], b"")
        .unwrap();
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");

    let call = one_callout(&mut host, REFRESH + Duration::from_secs(1));
    host.respond(
        call.token,
        &[(":status", "200")],
        b"<html>proxy error</html>",
    )
    .unwrap();
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");

    // The sidecar is back: refreshing goes on.
    let call = one_callout(&mut host, REFRESH + Duration::from_secs(1));
    answer(
        &mut host,
        &call,
        &[(ALICE_REF, "alice-key-3"), (BOB_REF, "bob-key")],
        &[],
    );
    let s = get(&mut host, "/ip", &[("apikey", "alice-key-3")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
}

#[test]
fn refresh_that_times_out_keeps_the_last_good_values() {
    let mut host = configured_host(&config());
    let call = one_callout(&mut host, REFRESH + Duration::from_secs(1));
    // Not answered: the harness fails it at its 2 s timeout, as Envoy would.
    host.advance(Duration::from_secs(3)).unwrap();
    assert!(!host.is_call_pending(call.token));
    let s = get(&mut host, "/ip", &[("apikey", "alice-key")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
}

// ---- configuration -----------------------------------------------------------------------

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let mut config = config();
    config["refresh_every"] = json!(10);
    assert_refused(&config, &["refresh_every"]);

    let mut config = self::config();
    config["consumers"][1]["nickname"] = json!("bobby");
    assert_refused(&config, &["consumers[1]", "nickname"]);
}

#[test]
fn bad_reference_is_refused_with_its_path() {
    let mut config = config();
    config["consumers"][0]["credentials"][0]["key"] = json!("$secret://awss/x/y/z");
    assert_refused(&config, &["consumers[0].credentials[0].key", "awss"]);
}

#[test]
fn unset_environment_variable_disables_the_credential_and_is_logged() {
    // Not a configuration error (the reference parses): like an unresolved `$secret://`.
    let mut config = config();
    config["consumers"][2]["credentials"][0]["key"] = json!("$env://NOT_SET_ANYWHERE");
    let mut host = configured_host(&config);
    let s = get(&mut host, "/ip", &[("apikey", "$env://NOT_SET_ANYWHERE")]);
    assert_rejected(&host, s, INVALID);
    let s = get(&mut host, "/ip", &[("apikey", "")]);
    assert!(host.local_reply(s).is_some_and(|r| r.status == 401));
    assert!(
        host.logs()
            .iter()
            .any(|(_, line)| line.contains("consumers[2].credentials[0].key")
                && line.contains("NOT_SET_ANYWHERE")),
        "no log line names the credential and the variable: {:?}",
        host.logs()
    );
}

#[test]
fn sidecar_token_cannot_be_a_secret_reference() {
    let mut config = config();
    config["sidecar"]["token"] = json!("$secret://aws/my-secrets-manager/sidecar/token");
    assert_refused(&config, &["sidecar.token"]);
}

#[test]
fn a_key_that_matches_nobody_refreshes_on_the_next_tick_and_is_then_accepted() {
    let mut host = configured_host(&config());
    // alice's key was rotated in the secret store; her client already sends the new one.
    let s = get(&mut host, "/ip", &[("apikey", "alice-key-2")]);
    assert_rejected(&host, s, INVALID);
    host.finish(s).unwrap();
    // The refresh starts from the root on the next tick (the request is long gone).
    let call = one_callout(&mut host, Duration::from_millis(600));
    assert_eq!(
        support::body_of(&call)["refetch"],
        json!([ALICE_REF, BOB_REF])
    );
    answer(
        &mut host,
        &call,
        &[(ALICE_REF, "alice-key-2"), (BOB_REF, "bob-key")],
        &[],
    );
    let s = get(&mut host, "/ip", &[("apikey", "alice-key-2")]);
    assert_forwarded_as(&host, s, "alice", "alice-key-auth");
}
