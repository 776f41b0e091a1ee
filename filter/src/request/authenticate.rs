//! Step 1 of a request: run the route's auth plugins in a fixed order (key-auth, basic-auth,
//! jwt-auth, hmac-auth); the first that accepts wins.

use crate::auth::{basic, hmac, jwt, key, Allow, Credentials, Decision};
use crate::config::PluginSet;
use crate::http::{Reject, RequestView};

/// When several auth plugins all refuse a request (APISIX multi-auth's answer).
pub fn all_failed() -> Reject {
    Reject::message(401, "Authorization Failed", None, "multi_auth_failed")
}

/// Runs the route's auth plugins; the first that accepts wins. `None` when the route has none.
/// When all refuse: the anonymous consumer if one is configured, else the single plugin's answer,
/// or APISIX multi-auth's "Authorization Failed" when there were several.
pub fn authenticate(
    plugins: &PluginSet,
    creds: &Credentials,
    req: &mut dyn RequestView,
) -> Option<Decision> {
    let mut rejects = Vec::new();
    let mut outcome = |d: Decision| match d {
        Decision::Allow(a) => Some(a),
        Decision::Reject(r) => {
            rejects.push(r);
            None
        }
    };
    let allowed = plugins
        .key_auth
        .as_ref()
        .and_then(|o| outcome(key::check(o, &creds.keys, req)))
        .or_else(|| {
            plugins
                .basic_auth
                .as_ref()
                .and_then(|o| outcome(basic::check(o, &creds.basic, req)))
        })
        .or_else(|| {
            plugins
                .jwt_auth
                .as_ref()
                .and_then(|o| outcome(jwt::check(o, &creds.jwt, req)))
        })
        .or_else(|| {
            plugins
                .hmac_auth
                .as_ref()
                .and_then(|o| outcome(hmac::check(o, &creds.hmac, req)))
        });
    if let Some(a) = allowed {
        return Some(Decision::Allow(a));
    }
    if rejects.is_empty() {
        return None;
    }
    // A plugin that could not judge the request (its credential is unknown) wins over the
    // others' refusals: the request may well be valid.
    if let Some(i) = rejects.iter().position(|r| r.retry_after_s.is_some()) {
        return Some(Decision::Reject(rejects.swap_remove(i)));
    }
    if let Some(consumer) = plugins.anonymous() {
        return Some(Decision::Allow(Allow {
            credential: None,
            consumer: Some(consumer),
            hide: None,
            body_check: None,
            previous: false,
        }));
    }
    let single = rejects.len() == 1;
    let miss = rejects.iter().find_map(|r| r.miss);
    let first = rejects.into_iter().next();
    match first {
        Some(r) if single => Some(Decision::Reject(r)),
        _ => Some(Decision::Reject(Reject {
            miss,
            ..all_failed()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::basic::BasicAuthOptions;
    use crate::auth::key::KeyAuthOptions;
    use crate::auth::tests::FakeRequest;
    use secret_ref::SecretValue;

    fn creds() -> Credentials {
        Credentials {
            keys: key::KeyIndex::build([(0, &SecretValue::new("alice-key"))]).0,
            basic: basic::BasicIndex::build([(1, "alice".into(), SecretValue::new("pw"))]),
            ..Default::default()
        }
    }

    fn plugins(key: bool, basic: bool, anonymous: Option<usize>) -> PluginSet {
        PluginSet {
            key_auth: key.then(|| KeyAuthOptions {
                header: "apikey".into(),
                query: "apikey".into(),
                hide_credentials: false,
                anonymous,
            }),
            basic_auth: basic.then_some(BasicAuthOptions {
                hide_credentials: false,
                anonymous: None,
            }),
            ..Default::default()
        }
    }

    fn run(p: &PluginSet, headers: &[(&str, &str)]) -> Option<Decision> {
        authenticate(p, &creds(), &mut FakeRequest::new(headers))
    }

    #[test]
    fn no_auth_plugin_no_decision() {
        assert_eq!(run(&PluginSet::default(), &[]), None);
    }

    #[test]
    fn any_plugin_may_accept() {
        let p = plugins(true, true, None);
        let cred = |d: Option<Decision>| match d {
            Some(Decision::Allow(a)) => a.credential,
            other => panic!("{other:?}"),
        };
        assert_eq!(cred(run(&p, &[("apikey", "alice-key")])), Some(0));
        // base64("alice:pw")
        assert_eq!(
            cred(run(&p, &[("authorization", "Basic YWxpY2U6cHc=")])),
            Some(1)
        );
        assert_eq!(
            run(&p, &[("apikey", "nope")]),
            Some(Decision::Reject(all_failed()))
        );
        assert_eq!(
            all_failed().body,
            "{\"message\":\"Authorization Failed\"}\n"
        );
    }

    #[test]
    fn a_single_plugin_answers_with_its_own_message() {
        let p = plugins(false, true, None);
        match run(&p, &[]) {
            Some(Decision::Reject(r)) => {
                assert_eq!(
                    r.body,
                    "{\"message\":\"Missing authorization in request\"}\n"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anonymous_consumer_when_every_plugin_refuses() {
        let p = plugins(true, false, Some(5));
        for headers in [vec![], vec![("apikey", "wrong")]] {
            match run(&p, &headers) {
                Some(Decision::Allow(a)) => {
                    assert_eq!(a.credential, None);
                    assert_eq!(a.consumer, Some(5));
                }
                other => panic!("{other:?}"),
            }
        }
        match run(&p, &[("apikey", "alice-key")]) {
            Some(Decision::Allow(a)) => assert_eq!(a.credential, Some(0)),
            other => panic!("{other:?}"),
        }
    }
}
