//! A wasmtime host for the proxy-wasm ABI 0.2.1 that loads a real filter `.wasm` and drives it
//! like Envoy does, for tests: a fake clock with ticks, recorded HTTP callouts answered by the
//! test, HTTP streams whose outcome (continue / paused / local reply) and forwarded headers the
//! test reads back, properties, shared data and queues shared between worker VMs, and captured
//! logs.
//!
//! ```no_run
//! # use proxy_wasm_harness::*;
//! # use std::time::Duration;
//! # fn main() -> anyhow::Result<()> {
//! let mut host = Host::new(filter_wasm()?, HostOptions {
//!     plugin_config: br#"{"consumers": []}"#.to_vec(),
//!     ..HostOptions::default()
//! })?;
//! assert!(host.start()?);
//! host.advance(Duration::from_millis(100))?;
//! for call in host.take_http_calls() {
//!     host.respond(call.token, &[(":status", "200")], br#"{"results": []}"#)?;
//! }
//! let stream = host.request(&[(":method", "GET"), (":path", "/"), ("apikey", "k")], true)?;
//! println!("{:?}", host.outcome(stream));
//! # Ok(())
//! # }
//! ```

mod engine;
mod host;
mod imports;
mod shared;
mod state;
mod types;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub use host::{Host, HostOptions};
pub use types::{
    header, header_all, header_bytes, ByteHeaders, Headers, HttpCall, LocalReply, LogLevel,
    Outcome, Status, Stream,
};

/// The workspace root (two levels above this crate).
pub fn workspace_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_dir().join(dir),
        None => workspace_dir().join("target"),
    }
}

/// Where the filter `.wasm` is expected: `FILTER_WASM` if set, else the `wasm-release` build.
pub fn filter_wasm_path() -> PathBuf {
    match std::env::var_os("FILTER_WASM") {
        Some(path) => PathBuf::from(path),
        None => target_dir().join("wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm"),
    }
}

/// The filter `.wasm`, or an error that says how to build it.
pub fn filter_wasm() -> Result<PathBuf> {
    let path = filter_wasm_path();
    if !path.is_file() {
        bail!(
            "filter wasm not found at {}: build it with\n    \
             scripts/build.sh\n\
             or point FILTER_WASM at a built .wasm",
            path.display()
        );
    }
    Ok(path)
}
