//! `Host`: one proxy-wasm VM with one root context, driven the way Envoy drives a plugin.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Result};
use wasmtime::{Instance, InstancePre, Store, WasmParams, WasmResults};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;

use crate::engine;
use crate::shared::SharedStore;
use crate::state::{CallResponse, Proxy, StreamState, VmState};
use crate::types::{
    header, lossy, ByteHeaders, HttpCall, LocalReply, LogLevel, Outcome, Status, Stream,
};
use crate::Headers;

const OUTPUT_CAPACITY: usize = 64 << 20;

/// How the VM is set up, like the `vm_config` and `configuration` of Envoy's wasm filter.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The WASI environment (Envoy's `vm_config.environment_variables`).
    pub env: Vec<(String, String)>,
    /// The plugin configuration, readable during `proxy_on_configure`.
    pub plugin_config: Vec<u8>,
    /// The VM configuration, readable during `proxy_on_vm_start`.
    pub vm_config: Vec<u8>,
    /// The starting time of the fake clock.
    pub now: SystemTime,
    /// What `proxy_get_log_level` answers; lower levels are not captured (as Envoy drops them).
    pub log_level: LogLevel,
    /// Clusters `proxy_http_call` may reach; empty means any.
    pub clusters: Vec<String>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            plugin_config: Vec::new(),
            vm_config: Vec::new(),
            // 2025-01-01T00:00:00Z: fixed, so runs are reproducible.
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600),
            log_level: LogLevel::Info,
            clusters: Vec::new(),
        }
    }
}

/// One VM running a proxy-wasm module, with a fake clock and recorded callouts.
///
/// Every method that calls into the module returns an error if the module traps (a Rust
/// panic in the filter); the VM is then dead, like Envoy would kill it, and every later call
/// fails too.
pub struct Host {
    store: Store<VmState>,
    pre: InstancePre<VmState>,
    instance: Option<Instance>,
    options: HostOptions,
    stderr: MemoryOutputPipe,
    stdout: MemoryOutputPipe,
    dead: Option<String>,
}

impl Host {
    /// A VM for the `.wasm` file at `path` (compiled once per test process). Call `start`.
    pub fn new(path: impl AsRef<Path>, options: HostOptions) -> Result<Self> {
        let pre = engine::load_file(path.as_ref())?;
        Ok(Self::with(pre, options, Arc::default()))
    }

    /// A VM for a module given as bytes (binary wasm).
    pub fn from_bytes(wasm: &[u8], options: HostOptions) -> Result<Self> {
        let pre = engine::load_bytes(wasm)?;
        Ok(Self::with(pre, options, Arc::default()))
    }

    /// Another VM of the same plugin sharing this one's shared data, queues and metrics, like
    /// another Envoy worker thread. Its clock starts at this one's current time. Call `start`.
    pub fn new_worker(&self) -> Self {
        let options = HostOptions {
            now: self.proxy().now,
            log_level: self.proxy().log_level,
            ..self.options.clone()
        };
        Self::with(self.pre.clone(), options, self.proxy().shared.clone())
    }

    fn with(
        pre: InstancePre<VmState>,
        options: HostOptions,
        shared: Arc<Mutex<SharedStore>>,
    ) -> Self {
        static HOST_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .envs(&options.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build_p1();
        let proxy = Proxy {
            host_id: HOST_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            root_id: 0,
            active: 0,
            next_context_id: 1,
            now: options.now,
            tick_period: Duration::ZERO,
            next_tick: None,
            log_level: options.log_level,
            logs: Vec::new(),
            vm_config: options.vm_config.clone(),
            plugin_config: options.plugin_config.clone(),
            configuring: false,
            vm_id: Vec::new(),
            properties: Default::default(),
            streams: Default::default(),
            new_calls: Vec::new(),
            pending_calls: Default::default(),
            next_token: 1,
            http_call_error: None,
            clusters: options.clusters.clone(),
            call_response: None,
            shared,
            violations: Vec::new(),
            memory: None,
            alloc: None,
            host_calls: 0,
            module_calls: 0,
        };
        let mut store = Store::new(pre.module().engine(), VmState { wasi, proxy });
        if crate::engine::fuel_metered() {
            // Cannot fail: fuel is on in this engine.
            let _ = store.set_fuel(u64::MAX);
        }
        // Each crossing costs microseconds in Envoy's V8: counted for the tests that keep the
        // request path's calls down.
        store.call_hook(|mut ctx, hook| {
            let proxy = &mut ctx.data_mut().proxy;
            match hook {
                wasmtime::CallHook::CallingHost => proxy.host_calls += 1,
                wasmtime::CallHook::CallingWasm => proxy.module_calls += 1,
                _ => {}
            }
            Ok(())
        });
        Self {
            store,
            pre,
            instance: None,
            options,
            stderr,
            stdout,
            dead: None,
        }
    }

    fn proxy(&self) -> &Proxy {
        &self.store.data().proxy
    }

    fn proxy_mut(&mut self) -> &mut Proxy {
        &mut self.store.data_mut().proxy
    }

    // ---- lifecycle -------------------------------------------------------------------------

    /// Instantiates the module (WASI preview1), runs `_initialize`/`_start`, creates the root
    /// context, then `proxy_on_vm_start` and `proxy_on_configure`. Returns whether the
    /// configuration was accepted (`false` also when `proxy_on_vm_start` refused).
    pub fn start(&mut self) -> Result<bool> {
        if self.instance.is_some() {
            bail!("Host::start called twice");
        }
        let instance = match self.pre.instantiate(&mut self.store) {
            Ok(instance) => instance,
            Err(e) => return Err(self.kill(e, "instantiation")),
        };
        let exports: Vec<String> = self
            .pre
            .module()
            .exports()
            .map(|e| e.name().to_owned())
            .collect();
        if !exports
            .iter()
            .any(|e| e == "proxy_abi_version_0_2_1" || e == "proxy_abi_version_0_2_0")
        {
            bail!("the module exports no proxy_abi_version_0_2_1: not a proxy-wasm 0.2 module");
        }
        let memory = instance.get_memory(&mut self.store, "memory");
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut self.store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut self.store, "malloc"))
            .ok();
        let proxy = self.proxy_mut();
        proxy.memory = memory;
        proxy.alloc = alloc;
        self.instance = Some(instance);

        if exports.iter().any(|e| e == "_initialize") {
            self.invoke::<(), ()>("_initialize", 0, ())?;
        } else if exports.iter().any(|e| e == "_start") {
            self.invoke::<(), ()>("_start", 0, ())?;
        }
        let root = self.new_context_id();
        self.proxy_mut().root_id = root;
        self.invoke::<(i32, i32), ()>("proxy_on_context_create", root, (root as i32, 0))?;
        let vm_config_len = len_i32(self.options.vm_config.len())?;
        let vm_ok = self
            .invoke::<(i32, i32), i32>("proxy_on_vm_start", root, (root as i32, vm_config_len))?
            .is_none_or(|ok| ok != 0);
        if !vm_ok {
            return Ok(false);
        }
        let accepted = self.configure()?;
        self.after_op()?;
        Ok(accepted)
    }

    /// Calls `proxy_on_configure` again on the root context with a new plugin configuration.
    pub fn reconfigure(&mut self, plugin_config: &[u8]) -> Result<bool> {
        self.proxy_mut().plugin_config = plugin_config.to_vec();
        self.options.plugin_config = plugin_config.to_vec();
        let accepted = self.configure()?;
        self.after_op()?;
        Ok(accepted)
    }

    fn configure(&mut self) -> Result<bool> {
        let root = self.root_id()?;
        let len = len_i32(self.proxy().plugin_config.len())?;
        self.proxy_mut().configuring = true;
        let result = self.invoke::<(i32, i32), i32>("proxy_on_configure", root, (root as i32, len));
        self.proxy_mut().configuring = false;
        Ok(result?.is_none_or(|ok| ok != 0))
    }

    /// Whether an earlier call trapped (a Rust panic in the module, an `unreachable`, an
    /// undefined import called, ...). A dead VM refuses every later call, like Envoy's.
    pub fn is_dead(&self) -> bool {
        self.dead.is_some()
    }

    /// Why the VM died: the export that trapped, the trap, and what the module had written to
    /// stderr. What the module logged before dying (a proxy-wasm panic hook logs the panic
    /// message at `Critical`) stays readable in `logs()`.
    pub fn dead_reason(&self) -> Option<&str> {
        self.dead.as_deref()
    }

    /// Everything a panic in the module can have printed: the captured log lines and stderr,
    /// one string (for asserting that no request data is in it).
    pub fn panic_output(&self) -> String {
        let mut out = String::new();
        for (level, line) in self.logs() {
            out.push_str(&format!("[{level:?}] {line}\n"));
        }
        out.push_str(&self.stderr());
        out
    }

    // ---- time ------------------------------------------------------------------------------

    pub fn now(&self) -> SystemTime {
        self.proxy().now
    }

    /// The period set with `proxy_set_tick_period_milliseconds` (zero: no ticks).
    pub fn tick_period(&self) -> Duration {
        self.proxy().tick_period
    }

    /// Moves the clock forward, firing in time order every `proxy_on_tick` that falls due
    /// and failing every callout whose timeout passes (like Envoy: `proxy_on_http_call_response`
    /// with no headers and no body).
    pub fn advance(&mut self, by: Duration) -> Result<()> {
        let target = self.proxy().now + by;
        loop {
            let proxy = self.proxy();
            let tick = proxy.next_tick.filter(|at| *at <= target);
            let timeout = proxy
                .pending_calls
                .iter()
                .filter_map(|(token, p)| p.deadline.map(|at| (at, *token)))
                .filter(|(at, _)| *at <= target)
                .min();
            match (tick, timeout) {
                (_, Some((at, token))) if tick.is_none_or(|tick| at <= tick) => {
                    self.proxy_mut().now = at;
                    self.deliver(token, None)?;
                }
                (Some(at), _) => {
                    let proxy = self.proxy_mut();
                    proxy.now = at;
                    proxy.next_tick = Some(at + proxy.tick_period);
                    let root = self.root_id()?;
                    self.invoke::<i32, ()>("proxy_on_tick", root, root as i32)?;
                }
                _ => break,
            }
            self.after_op()?;
        }
        self.proxy_mut().now = target;
        self.after_op()
    }

    /// `(host calls, module calls)` so far: calls from the module into the host, and from the
    /// host into the module (callbacks, and the allocations that return data to the module).
    pub fn crossings(&self) -> (u64, u64) {
        (self.proxy().host_calls, self.proxy().module_calls)
    }

    // ---- callouts --------------------------------------------------------------------------

    /// The callouts made since the last call (answered or not).
    pub fn take_http_calls(&mut self) -> Vec<HttpCall> {
        std::mem::take(&mut self.proxy_mut().new_calls)
    }

    /// Whether callout `token` still waits for an answer.
    pub fn is_call_pending(&self, token: u32) -> bool {
        self.proxy().pending_calls.contains_key(&token)
    }

    /// Answers callout `token`; `headers` should include `:status`.
    pub fn respond(&mut self, token: u32, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let response = CallResponse {
            headers: owned_lower(headers),
            body: body.to_vec(),
            trailers: Vec::new(),
        };
        self.deliver(token, Some(response))?;
        self.after_op()
    }

    /// Fails callout `token` the way Envoy reports a reset/timeout/connection failure.
    pub fn fail_call(&mut self, token: u32) -> Result<()> {
        self.deliver(token, None)?;
        self.after_op()
    }

    /// From now on `proxy_http_call` returns `status` without making a callout (`None`: normal).
    pub fn set_http_call_error(&mut self, status: Option<Status>) {
        self.proxy_mut().http_call_error = status;
    }

    fn deliver(&mut self, token: u32, response: Option<CallResponse>) -> Result<()> {
        let pending = self.proxy_mut().pending_calls.remove(&token).ok_or_else(|| {
            anyhow!("no callout in flight with token {token} (answered, failed, timed out or cancelled)")
        })?;
        let (headers, body, trailers) = response.as_ref().map_or((0, 0, 0), |r| {
            (r.headers.len(), r.body.len(), r.trailers.len())
        });
        let args = (
            pending.context_id as i32,
            token as i32,
            len_i32(headers)?,
            len_i32(body)?,
            len_i32(trailers)?,
        );
        self.proxy_mut().call_response = response;
        let result = self.invoke::<(i32, i32, i32, i32, i32), ()>(
            "proxy_on_http_call_response",
            pending.context_id,
            args,
        );
        self.proxy_mut().call_response = None;
        result.map(drop)
    }

    // ---- streams ---------------------------------------------------------------------------

    /// A new HTTP stream: `proxy_on_context_create` then `proxy_on_request_headers`. Header
    /// names are lower-cased like Envoy's codecs do. Properties set with `set_property` so far
    /// are the stream's properties.
    pub fn request(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Result<Stream> {
        self.request_bytes(headers, end_of_stream)
    }

    /// `request` with names and values given as any bytes (`&[u8]`, `&str`, `Vec<u8>`, ...),
    /// not only UTF-8: the module reads them unchanged (names lower-cased for ASCII letters),
    /// through `proxy_get_header_map_value` as well as `proxy_get_header_map_pairs`.
    pub fn request_bytes<K, V>(&mut self, headers: &[(K, V)], end_of_stream: bool) -> Result<Stream>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let root = self.root_id()?;
        let id = self.new_context_id();
        let stream = StreamState::new(owned_lower(headers), self.proxy().properties.clone());
        self.proxy_mut().streams.insert(id, stream);
        self.invoke::<(i32, i32), ()>("proxy_on_context_create", id, (id as i32, root as i32))?;
        let action = self.invoke::<(i32, i32, i32), i32>(
            "proxy_on_request_headers",
            id,
            (id as i32, len_i32(headers.len())?, end_of_stream as i32),
        )?;
        self.apply_action(id, action.unwrap_or(0));
        self.after_op()?;
        Ok(Stream(id))
    }

    /// A request body chunk: `proxy_on_request_body`, the body readable as `HttpRequestBody`.
    /// After a Pause the chunks accumulate (Envoy buffers them). Returns the outcome.
    pub fn send_body(
        &mut self,
        stream: Stream,
        body: &[u8],
        end_of_stream: bool,
    ) -> Result<Outcome> {
        let id = stream.0;
        let state = self.stream_mut(stream)?;
        if !state.buffering_request_body {
            state.request_body.clear();
        }
        state.request_body.extend_from_slice(body);
        let len = len_i32(state.request_body.len())?;
        let action = self
            .invoke::<(i32, i32, i32), i32>(
                "proxy_on_request_body",
                id,
                (id as i32, len, end_of_stream as i32),
            )?
            .unwrap_or(0);
        self.stream_mut(stream)?.buffering_request_body = action != 0;
        self.apply_action(id, action);
        self.after_op()?;
        Ok(self.outcome(stream))
    }

    /// Request trailers: `proxy_on_request_trailers` (they end the request). The trailers'
    /// contents are not readable by the filter here: only their count is passed.
    pub fn send_trailers(&mut self, stream: Stream, count: usize) -> Result<Outcome> {
        let id = stream.0;
        self.stream_mut(stream)?;
        let action = self
            .invoke::<(i32, i32), i32>(
                "proxy_on_request_trailers",
                id,
                (id as i32, len_i32(count)?),
            )?
            .unwrap_or(0);
        self.apply_action(id, action);
        self.after_op()?;
        Ok(self.outcome(stream))
    }

    /// The upstream's response headers: `proxy_on_response_headers`. Returns them as the
    /// filter left them (as the client would get them).
    pub fn response_headers(
        &mut self,
        stream: Stream,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Headers> {
        let id = stream.0;
        self.stream_mut(stream)?.response_headers = Some(owned_lower(headers));
        self.invoke::<(i32, i32, i32), i32>(
            "proxy_on_response_headers",
            id,
            (id as i32, len_i32(headers.len())?, end_of_stream as i32),
        )?;
        self.after_op()?;
        Ok(lossy(
            &self
                .stream_mut(stream)?
                .response_headers
                .clone()
                .unwrap_or_default(),
        ))
    }

    /// Ends the stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`. Callouts it made stay
    /// in flight and are still answered (to the root context), as in Envoy.
    pub fn finish(&mut self, stream: Stream) -> Result<()> {
        let id = stream.0;
        self.stream_mut(stream)?;
        self.invoke::<i32, i32>("proxy_on_done", id, id as i32)?;
        self.invoke::<i32, ()>("proxy_on_log", id, id as i32)?;
        self.invoke::<i32, ()>("proxy_on_delete", id, id as i32)?;
        let proxy = self.proxy_mut();
        if let Some(state) = proxy.streams.get_mut(&id) {
            state.deleted = true;
        }
        self.after_op()
    }

    /// Drops what the host remembers of a finished stream (for long runs such as fuzzing: a
    /// finished stream's state is otherwise kept for `outcome` and `request_headers`). Returns
    /// whether it was finished and is now forgotten; later reads see an unknown stream.
    pub fn forget(&mut self, stream: Stream) -> bool {
        let streams = &mut self.proxy_mut().streams;
        if streams.get(&stream.0).is_some_and(|s| s.deleted) {
            streams.remove(&stream.0);
            true
        } else {
            false
        }
    }

    /// Wasm instructions run so far (wasmtime's fuel: about one per instruction), when the
    /// harness runs with `HARNESS_FUEL` set; `None` otherwise.
    pub fn fuel_used(&self) -> Option<u64> {
        self.store.get_fuel().ok().map(|left| u64::MAX - left)
    }

    /// The size of the module's linear memory, in bytes (0 before `start`).
    pub fn memory_bytes(&self) -> usize {
        self.proxy()
            .memory
            .map_or(0, |memory| memory.data_size(&self.store))
    }

    /// The stream's state. A `Stream` of another `Host` reads as `Reset`.
    pub fn outcome(&self, stream: Stream) -> Outcome {
        self.proxy()
            .streams
            .get(&stream.0)
            .map_or(Outcome::Reset, |s| s.outcome.clone())
    }

    pub fn local_reply(&self, stream: Stream) -> Option<LocalReply> {
        self.outcome(stream).local_reply().cloned()
    }

    /// The request headers as they went upstream (when the stream continued), or as they are
    /// now if it has not continued. Bytes that are not UTF-8 read as U+FFFD: see
    /// `request_headers_bytes`.
    pub fn request_headers(&self, stream: Stream) -> Headers {
        lossy(&self.request_headers_bytes(stream))
    }

    /// `request_headers` as raw bytes.
    pub fn request_headers_bytes(&self, stream: Stream) -> ByteHeaders {
        self.proxy()
            .streams
            .get(&stream.0)
            .map(|s| {
                s.forwarded
                    .clone()
                    .unwrap_or_else(|| s.request_headers.clone())
            })
            .unwrap_or_default()
    }

    /// First value of one forwarded request header.
    pub fn request_header(&self, stream: Stream, name: &str) -> Option<String> {
        header(&self.request_headers(stream), name).map(str::to_owned)
    }

    /// First value of one forwarded request header, as raw bytes.
    pub fn request_header_bytes(&self, stream: Stream, name: &[u8]) -> Option<Vec<u8>> {
        crate::types::header_bytes(&self.request_headers_bytes(stream), name).map(<[u8]>::to_vec)
    }

    /// The request body as the filter left it.
    pub fn request_body(&self, stream: Stream) -> Vec<u8> {
        self.proxy()
            .streams
            .get(&stream.0)
            .map(|s| s.request_body.clone())
            .unwrap_or_default()
    }

    fn stream_mut(&mut self, stream: Stream) -> Result<&mut StreamState> {
        self.proxy_mut()
            .streams
            .get_mut(&stream.0)
            .filter(|s| !s.deleted)
            .ok_or_else(|| anyhow!("stream {} is unknown or finished", stream.0))
    }

    fn apply_action(&mut self, id: u32, action: i32) {
        if let Some(state) = self.proxy_mut().streams.get_mut(&id) {
            if matches!(state.outcome, Outcome::Continue | Outcome::Paused) {
                state.outcome = if action == 0 {
                    Outcome::Continue
                } else {
                    Outcome::Paused
                };
            }
        }
    }

    // ---- properties, logs, shared state ----------------------------------------------------

    /// Sets a property for `proxy_get_property` (path segments, e.g. `["xds", "route_name"]`).
    /// Streams created afterwards see it; the root context always does.
    pub fn set_property(&mut self, path: &[&str], value: &[u8]) {
        let key = path.join("\0").into_bytes();
        self.proxy_mut().properties.insert(key, value.to_vec());
    }

    /// Captured `proxy_log` lines at or above the log level.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.proxy().logs
    }

    /// Captured log messages containing `needle`.
    pub fn logs_containing(&self, needle: &str) -> Vec<&str> {
        self.proxy()
            .logs
            .iter()
            .filter(|(_, m)| m.contains(needle))
            .map(|(_, m)| m.as_str())
            .collect()
    }

    pub fn clear_logs(&mut self) {
        self.proxy_mut().logs.clear();
    }

    /// What `proxy_get_log_level` answers from now on.
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.proxy_mut().log_level = level;
    }

    /// What the module wrote to stdout / stderr (a Rust panic message lands in stderr).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    /// Host calls Envoy would have ignored or refused (continue on a stream that is not
    /// paused, a second local reply, a callout without `:path`, ...).
    pub fn violations(&self) -> &[String] {
        &self.proxy().violations
    }

    /// A shared data value (shared by the workers of this host).
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        let shared = self.proxy().shared().ok()?;
        shared.get(key.as_bytes()).map(|(value, _)| value)
    }

    /// Every metric defined so far, with its value.
    pub fn metrics(&self) -> Vec<(String, u64)> {
        self.proxy()
            .shared()
            .map(|s| s.metrics())
            .unwrap_or_default()
    }

    /// A metric's value by name.
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.proxy().shared().ok()?.metric_by_name(name)
    }

    /// Delivers `proxy_on_queue_ready` for items enqueued (by any worker) to queues this VM
    /// registered. Every other driving method does this on its own.
    pub fn pump(&mut self) -> Result<()> {
        self.after_op()
    }

    // ---- calling into the module -----------------------------------------------------------

    fn root_id(&self) -> Result<u32> {
        match self.proxy().root_id {
            0 => bail!("Host::start has not been called"),
            id => Ok(id),
        }
    }

    fn new_context_id(&mut self) -> u32 {
        let proxy = self.proxy_mut();
        let id = proxy.next_context_id;
        proxy.next_context_id += 1;
        id
    }

    /// Calls export `name` on behalf of `context`; `None` if the module does not export it.
    fn invoke<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &str,
        context: u32,
        params: P,
    ) -> Result<Option<R>> {
        if let Some(reason) = &self.dead {
            bail!("the VM is dead: {reason}");
        }
        let instance = self
            .instance
            .ok_or_else(|| anyhow!("Host::start has not been called"))?;
        let Some(func) = instance.get_func(&mut self.store, name) else {
            return Ok(None);
        };
        let func = func
            .typed::<P, R>(&self.store)
            .map_err(|e| anyhow!("export {name} has an unexpected signature: {e:#}"))?;
        self.proxy_mut().active = context;
        let result = func.call(&mut self.store, params);
        self.proxy_mut().active = 0;
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) => Err(self.kill(e, name)),
        }
    }

    fn kill(&mut self, error: wasmtime::Error, what: &str) -> anyhow::Error {
        let stderr = self.stderr();
        let mut reason = format!("{what} trapped: {error:?}");
        if !stderr.is_empty() {
            reason.push_str("\n--- module stderr ---\n");
            reason.push_str(stderr.trim_end());
        }
        self.dead = Some(reason.clone());
        anyhow!(reason)
    }

    /// After each driving step: deliver queue notifications, and record the request headers of
    /// streams that just went upstream (Envoy continues them after the VM call returns).
    fn after_op(&mut self) -> Result<()> {
        loop {
            let host_id = self.proxy().host_id;
            let ready = self.proxy().shared()?.take_notifications(host_id);
            if ready.is_empty() {
                break;
            }
            for (context, queue) in ready {
                self.invoke::<(i32, i32), ()>(
                    "proxy_on_queue_ready",
                    context,
                    (context as i32, queue as i32),
                )?;
            }
        }
        for state in self.proxy_mut().streams.values_mut() {
            if state.outcome == Outcome::Continue && state.forwarded.is_none() {
                state.forwarded = Some(state.request_headers.clone());
            }
        }
        Ok(())
    }
}

fn owned_lower<K: AsRef<[u8]>, V: AsRef<[u8]>>(headers: &[(K, V)]) -> ByteHeaders {
    headers
        .iter()
        .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.as_ref().to_vec()))
        .collect()
}

fn len_i32(len: usize) -> Result<i32> {
    i32::try_from(len).map_err(|_| anyhow!("size {len} does not fit the wasm32 ABI"))
}
