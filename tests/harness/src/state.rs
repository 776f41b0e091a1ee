//! The host-side state of one VM: what Envoy keeps per plugin, per stream and per callout.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use wasmtime::{Memory, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::shared::SharedStore;
use crate::types::{map_type, ByteHeaders, HttpCall, LogLevel, Outcome, Status};

/// The shared store's lock was poisoned by a panic on another test thread.
#[derive(Debug)]
pub(crate) struct Poisoned;

impl std::fmt::Display for Poisoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shared store poisoned by a panic in another test thread")
    }
}

impl std::error::Error for Poisoned {}

pub(crate) struct VmState {
    pub wasi: WasiP1Ctx,
    pub proxy: Proxy,
}

/// An answer being delivered by `proxy_on_http_call_response`; `None` while delivering a failure.
pub(crate) struct CallResponse {
    pub headers: ByteHeaders,
    pub body: Vec<u8>,
    pub trailers: ByteHeaders,
}

pub(crate) struct Pending {
    pub context_id: u32,
    pub deadline: Option<SystemTime>,
}

pub(crate) struct StreamState {
    pub request_headers: ByteHeaders,
    pub request_trailers: Option<ByteHeaders>,
    pub request_body: Vec<u8>,
    pub buffering_request_body: bool,
    pub response_headers: Option<ByteHeaders>,
    pub response_trailers: Option<ByteHeaders>,
    pub response_body: Vec<u8>,
    pub outcome: Outcome,
    /// The request headers at the moment the stream went on upstream.
    pub forwarded: Option<ByteHeaders>,
    pub local_reply_sent: bool,
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    pub deleted: bool,
}

impl StreamState {
    pub fn new(request_headers: ByteHeaders, properties: HashMap<Vec<u8>, Vec<u8>>) -> Self {
        Self {
            request_headers,
            request_trailers: None,
            request_body: Vec::new(),
            buffering_request_body: false,
            response_headers: None,
            response_trailers: None,
            response_body: Vec::new(),
            outcome: Outcome::Paused,
            forwarded: None,
            local_reply_sent: false,
            properties,
            deleted: false,
        }
    }

    pub fn map(&self, map: i32) -> Option<&ByteHeaders> {
        match map {
            map_type::REQUEST_HEADERS => Some(&self.request_headers),
            map_type::REQUEST_TRAILERS => self.request_trailers.as_ref(),
            map_type::RESPONSE_HEADERS => self.response_headers.as_ref(),
            map_type::RESPONSE_TRAILERS => self.response_trailers.as_ref(),
            _ => None,
        }
    }

    pub fn map_mut(&mut self, map: i32) -> Option<&mut ByteHeaders> {
        match map {
            map_type::REQUEST_HEADERS => Some(&mut self.request_headers),
            map_type::REQUEST_TRAILERS => self.request_trailers.as_mut(),
            map_type::RESPONSE_HEADERS => self.response_headers.as_mut(),
            map_type::RESPONSE_TRAILERS => self.response_trailers.as_mut(),
            _ => None,
        }
    }
}

pub(crate) struct Proxy {
    pub host_id: u64,
    pub root_id: u32,
    /// The context host calls act on: the callback's context, or the effective context set by
    /// `proxy_set_effective_context` during the callback. 0 outside callbacks.
    pub active: u32,
    pub next_context_id: u32,
    pub now: SystemTime,
    pub tick_period: Duration,
    pub next_tick: Option<SystemTime>,
    pub log_level: LogLevel,
    pub logs: Vec<(LogLevel, String)>,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub configuring: bool,
    pub vm_id: Vec<u8>,
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    pub streams: BTreeMap<u32, StreamState>,
    pub new_calls: Vec<HttpCall>,
    pub pending_calls: BTreeMap<u32, Pending>,
    pub next_token: u32,
    pub http_call_error: Option<Status>,
    pub clusters: Vec<String>,
    pub call_response: Option<CallResponse>,
    pub shared: Arc<Mutex<SharedStore>>,
    pub violations: Vec<String>,
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
    /// Calls from the module into the host (`env.proxy_*`, WASI) so far.
    pub host_calls: u64,
    /// Calls from the host into the module (callbacks and `proxy_on_memory_allocate`) so far.
    pub module_calls: u64,
}

impl Proxy {
    pub fn shared(&self) -> Result<MutexGuard<'_, SharedStore>, Poisoned> {
        self.shared.lock().map_err(|_| Poisoned)
    }

    /// The live stream host calls currently act on, if the active context is one.
    pub fn active_stream(&mut self) -> Option<&mut StreamState> {
        self.streams
            .get_mut(&self.active)
            .filter(|stream| !stream.deleted)
    }

    pub fn violation(&mut self, message: String) {
        self.violations.push(message);
    }
}
