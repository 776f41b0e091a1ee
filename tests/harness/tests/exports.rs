//! The filter's `.wasm` exports the proxy-wasm callbacks it implements and none of those it does
//! not (issue #9): `scripts/build.sh` removes the exports listed in `scripts/wasm_exports.py`, so
//! that Envoy skips those callbacks (`proxy_on_done` and `proxy_on_log` on every request,
//! `proxy_on_response_body` on every response with a body) instead of crossing into V8 for the
//! SDK's default (for `proxy_on_done`, "done", which Envoy assumes without the export). A callback
//! the glue starts to implement must leave that list: the second test says so.

use anyhow::Result;
use std::path::Path;

/// The removed exports, each with the SDK trait methods that Envoy would reach through it.
const REMOVED: &[(&str, &[&str])] = &[
    ("proxy_on_done", &["fn on_done("]),
    ("proxy_on_log", &["fn on_log("]),
    ("proxy_on_response_body", &["fn on_http_response_body("]),
    (
        "proxy_on_response_trailers",
        &["fn on_http_response_trailers("],
    ),
    (
        "proxy_on_grpc_receive_initial_metadata",
        &["fn on_grpc_stream_initial_metadata("],
    ),
    (
        "proxy_on_grpc_receive",
        &["fn on_grpc_call_response(", "fn on_grpc_stream_message("],
    ),
    (
        "proxy_on_grpc_receive_trailing_metadata",
        &["fn on_grpc_stream_trailing_metadata("],
    ),
    ("proxy_on_grpc_close", &["fn on_grpc_stream_close("]),
];

/// The callbacks the filter needs (and the allocator Envoy hands data through).
const KEPT: &[&str] = &[
    "proxy_on_memory_allocate",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_tick",
    "proxy_on_queue_ready",
    "proxy_on_http_call_response",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_delete",
];

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn unused_callbacks_are_not_exported_and_used_ones_are() -> Result<()> {
    let wasm = proxy_wasm_harness::filter_wasm()?;
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::from_file(&engine, &wasm)?;
    let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
    for (name, _) in REMOVED {
        assert!(
            !exports.contains(name),
            "{} exports {name}: build it with scripts/build.sh, which removes the exports of \
             callbacks the filter does not implement",
            wasm.display()
        );
    }
    for name in KEPT {
        assert!(exports.contains(name), "{name} is not exported");
    }
    Ok(())
}

#[test]
fn the_glue_implements_none_of_the_removed_callbacks() -> Result<()> {
    let mut glue = String::new();
    for entry in std::fs::read_dir(repo().join("filter/src/glue"))? {
        glue += &std::fs::read_to_string(entry?.path())?;
    }
    let script = std::fs::read_to_string(repo().join("scripts/wasm_exports.py"))?;
    for (name, methods) in REMOVED {
        assert!(
            script.contains(&format!("\"{name}\",")),
            "scripts/wasm_exports.py does not remove {name}"
        );
        for method in *methods {
            assert!(
                !glue.contains(method),
                "the glue implements `{method}`, which Envoy reaches through {name}: take \
                 {name} out of UNUSED in scripts/wasm_exports.py (and out of this list)"
            );
        }
    }
    // Nothing else is removed: every quoted name in the script's list is one of these.
    let listed = script
        .lines()
        .filter(|l| l.trim_start().starts_with("\"proxy_on_"))
        .count();
    assert_eq!(listed, REMOVED.len());
    Ok(())
}
