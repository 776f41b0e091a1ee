//! What the fuzz targets share: the request text format of the corpus, a fake request for the
//! plugins' `check` functions, and one filter configuration that enables every plugin on literal
//! credentials (so no sidecar is needed).
//!
//! Request format (every target that takes a request; bytes, not text):
//! ```text
//! <route name>\n            (empty: the default plugin set)
//! <name>: <value>\n         (any number; the name ends at the first ": "; any bytes but '\n')
//! \n
//! <body>                    (the rest, any bytes)
//! ```
//! A line without ": " is a header with that name and an empty value.

mod format;
#[cfg(feature = "wasm")]
pub mod wasm_check;

pub use format::*;

use envoy_secret_auth_filter::config::{self, PluginSet};
use envoy_secret_auth_filter::http::callout::DispatchError;
use envoy_secret_auth_filter::http::RequestView;
use envoy_secret_auth_filter::worker::{self, Level, Worker};

/// A stream that hands out at most `piece` bytes per read: a body read in pieces, as the filter
/// reads Envoy's buffer (json_read, sidecar_answer).
pub struct Pieces<'a> {
    pub data: &'a [u8],
    pub piece: usize,
}

impl std::io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.piece.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The fake clock of every target: 2025-01-01T00:00:00Z (the harness's default start).
pub const NOW_S: u64 = 1_735_689_600;

/// A request as the plugins see it: header names compared lower-case, the first value wins.
pub struct FakeRequest {
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub now_s: u64,
}

impl FakeRequest {
    pub fn new(headers: &[(Vec<u8>, Vec<u8>)]) -> Self {
        FakeRequest {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            now_s: NOW_S,
        }
    }
}

impl RequestView for FakeRequest {
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.headers
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.clone())
    }

    fn now_s(&mut self) -> u64 {
        self.now_s
    }
}

/// The runtime's host: no sidecar (every credential is literal), logs dropped.
struct NoSidecar;

impl worker::Host for NoSidecar {
    fn now_ms(&self) -> u64 {
        NOW_S * 1000
    }

    fn log(&self, _level: Level, _message: &str) {}

    fn dispatch(
        &mut self,
        _sidecar: &config::Sidecar,
        _path: &str,
        _body: Vec<u8>,
    ) -> Result<u32, DispatchError> {
        Err(DispatchError::UnknownCluster)
    }
}

/// The filter runtime for `CONFIG`: credential indexes built, plugins per route.
pub fn runtime() -> Worker {
    let compiled = config::compile(config_json().as_bytes(), &|_| None)
        .unwrap_or_else(|e| panic!("the fuzz config does not compile: {e}"));
    Worker::new(compiled, &mut NoSidecar)
}

thread_local! {
    static RUNTIME: Worker = runtime();
}

/// Runs `f` with this thread's runtime (built once: parsing the public keys is slow).
pub fn with_runtime<R>(f: impl FnOnce(&Worker) -> R) -> R {
    RUNTIME.with(f)
}

/// The plugin set of the route the request names (see `route_name`).
pub fn plugins<'a>(rt: &'a Worker, req: &Request) -> &'a PluginSet {
    rt.plugins_for(route_name(&req.route))
}
