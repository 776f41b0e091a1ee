//! basic-auth's request check on any request (see the request format in `src/lib.rs`): the
//! plugin alone through `auth::basic::check`, then every auth plugin of the route through
//! `request::authenticate`. No panic, the same decision twice, and a rejection is a 4xx.
#![no_main]

use envoy_secret_auth_filter::auth::{self, Decision};
use envoy_secret_auth_fuzz::{parse_request, plugins, with_runtime, FakeRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request = parse_request(data);
    with_runtime(|rt| {
        let set = plugins(rt, &request);
        let creds = rt.credentials();
        if let Some(opts) = &set.basic_auth {
            let first =
                auth::basic::check(opts, &creds.basic, &mut FakeRequest::new(&request.headers));
            let again =
                auth::basic::check(opts, &creds.basic, &mut FakeRequest::new(&request.headers));
            assert_eq!(first, again);
            if let Decision::Reject(r) = &first {
                assert!((400..500).contains(&r.status), "{r:?}");
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
