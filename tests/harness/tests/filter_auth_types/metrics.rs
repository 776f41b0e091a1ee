//! Envoy stats from the filter (issue #11): counted in memory per request, handed to Envoy on
//! the tick; names carry consumer names and reason codes, never a key, a secret or a reference.

use super::*;

const P: &str = "envoy_secret_auth.";

#[test]
fn requests_and_refreshes_are_counted_without_secrets_in_the_names() {
    let config = config(json!({"key-auth": {}}));
    let mut host = configured(&config);
    for _ in 0..3 {
        let s = get(&mut host, "/ip", &[("apikey", ALICE_KEY)]);
        assert_eq!(host.outcome(s), Outcome::Continue);
    }
    get(&mut host, "/ip", &[("apikey", "wrong-key")]);
    get(&mut host, "/ip", &[]);
    // Nothing reaches Envoy before the tick: no host call per request.
    assert_eq!(host.metric(&format!("{P}requests.allowed")), None);
    host.advance(Duration::from_secs(1)).unwrap();
    let m = |name: &str| host.metric(&format!("{P}{name}"));
    assert_eq!(m("requests.allowed"), Some(3));
    assert_eq!(m("consumer.alice.allowed"), Some(3));
    assert_eq!(m("requests.denied.key_auth_invalid"), Some(1));
    assert_eq!(m("requests.denied.key_auth_missing"), Some(1));
    assert_eq!(m("refresh.success"), Some(1));
    assert_eq!(m("vm.configured"), Some(1));
    assert_eq!(m("credentials.disabled.unknown"), Some(0));
    assert!(m("refresh.seconds_since_success").is_some());
    // Deltas: a second tick adds only what happened since.
    get(&mut host, "/ip", &[("apikey", ALICE_KEY)]);
    host.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(host.metric(&format!("{P}requests.allowed")), Some(4));
    for (name, _) in host.metrics() {
        for secret in values().iter().flat_map(|(r, v)| [*r, *v]) {
            assert!(!name.contains(secret), "{name} contains {secret}");
        }
        assert!(
            !name.contains("wrong-key") && !name.contains("secret://"),
            "{name}"
        );
    }
}
