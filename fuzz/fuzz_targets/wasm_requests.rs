//! The real release `.wasm` (`scripts/build.sh` builds it; `FILTER_WASM` overrides the path) in
//! the wasmtime harness, configured with every plugin (`config_json`), fed any request in the
//! format of `src/lib.rs`: the route line picks the route, header names and values are any bytes
//! (but '\n'), the body any bytes. `:method` and `:path` are added when absent, as Envoy always
//! has them.
//!
//! Checked on every input: the VM never dies (a trap is a Rust panic in the filter: with
//! `panic = "abort"` one request would take an Envoy worker down), every request ends continued
//! or answered with a 4xx/5xx (never left paused after its end, never reset), the filter makes no
//! callout (there is no sidecar) and no host call Envoy would refuse, and its memory stays
//! bounded. One VM serves every input, as an Envoy worker does; a failure is replayed on a fresh
//! VM to say whether it needs the earlier inputs.
#![no_main]

use std::cell::RefCell;

use envoy_secret_auth_fuzz::parse_request;
use envoy_secret_auth_fuzz::wasm_check::{new_host, run};
use libfuzzer_sys::fuzz_target;
use proxy_wasm_harness::Host;

thread_local! {
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let req = parse_request(data);
    HOST.with(|cell| {
        let mut slot = cell.borrow_mut();
        let host = slot.get_or_insert_with(new_host);
        if let Err(error) = run(host, &req) {
            let dead = host.dead_reason().map(str::to_owned);
            let output = host.panic_output();
            *slot = None;
            let mut fresh = new_host();
            let alone = match run(&mut fresh, &req) {
                Ok(()) => "passes on a fresh VM: it needs the inputs before it".to_owned(),
                Err(e) => format!("fails on a fresh VM too: {e}"),
            };
            panic!(
                "{error}\nVM dead: {dead:?}\nmodule output:\n{output}\n{alone}\nrequest: {req:?}"
            );
        }
    });
});
