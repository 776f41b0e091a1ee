//! hmac-auth's request check on any request (see the request format in `src/lib.rs`): the
//! plugin alone through `auth::hmac::check`, then every auth plugin of the route through
//! `request::authenticate`. No panic, the same decision twice, and a rejection is a 4xx.
#![no_main]

use envoy_secret_auth_filter::auth::{self, Decision};
use envoy_secret_auth_fuzz::{parse_request, plugins, with_runtime, FakeRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request = parse_request(data);
    // The body digest comparison on its own, with whatever `digest` the request has.
    if let Some((_, digest)) = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"digest"))
    {
        if let Ok(digest) = std::str::from_utf8(digest) {
            let _ = auth::hmac::body_matches(digest, &request.body);
        }
    }
    with_runtime(|rt| {
        let set = plugins(rt, &request);
        let creds = rt.credentials();
        if let Some(opts) = &set.hmac_auth {
            let first =
                auth::hmac::check(opts, &creds.hmac, &mut FakeRequest::new(&request.headers));
            let again =
                auth::hmac::check(opts, &creds.hmac, &mut FakeRequest::new(&request.headers));
            assert_eq!(first, again);
            match &first {
                Decision::Reject(r) => assert!((400..500).contains(&r.status), "{r:?}"),
                Decision::Allow(a) => {
                    if let Some(check) = &a.body_check {
                        let _ = auth::hmac::body_matches(&check.digest, &request.body);
                    }
                }
            }
        }
        if let Some(Decision::Reject(r)) = envoy_secret_auth_filter::request::authenticate(
            set,
            creds,
            &mut FakeRequest::new(&request.headers),
        ) {
            assert!((400..500).contains(&r.status), "{r:?}");
        }
    });
});
