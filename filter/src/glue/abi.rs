//! Host calls made straight through the proxy-wasm ABI, so that every status the host returns is
//! handled here. The SDK's `hostcalls` wrappers panic on any status they do not expect and
//! `get_map_value` panics on a header value that is not UTF-8; a panic kills the VM for every
//! request on that worker. Values are read as bytes; what they mean is decided by the caller.
//!
//! Only `proxy_http_call` still goes through the SDK (`hostcalls::dispatch_http_call`): the SDK's
//! dispatcher must register each callout to route its answer, and Envoy answers that call only
//! with `Ok`, `BadArgument` or `InternalFailure`, which the SDK returns as errors.

use std::ptr::{null, null_mut};

/// A non-`Ok` status from the host (the ABI's raw number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStatus(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const CAS_MISMATCH: u32 = 8;

impl HostStatus {
    pub fn is_cas_mismatch(self) -> bool {
        self.0 == CAS_MISMATCH
    }
}

impl std::fmt::Display for HostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            NOT_FOUND => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            6 => "InvalidMemoryAccess",
            7 => "Empty",
            CAS_MISMATCH => "CasMismatch",
            10 => "InternalFailure",
            12 => "Unimplemented",
            _ => "unknown",
        };
        write!(f, "{name} ({})", self.0)
    }
}

/// Header maps and buffers this filter touches (the ABI's numbers).
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Headers {
    Request = 0,
    Response = 2,
    CallResponse = 6,
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    RequestBody = 0,
    CallResponseBody = 4,
    PluginConfiguration = 7,
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Level {
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

// The SDK declares the same imports with its own enum types; the wasm signatures are identical.
#[allow(clashing_extern_declarations)]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_register_shared_queue(
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

fn status(code: u32) -> Result<(), HostStatus> {
    if code == OK {
        Ok(())
    } else {
        Err(HostStatus(code))
    }
}

/// Takes ownership of bytes the host wrote into memory it allocated through the SDK's
/// `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes).
///
/// # Safety
/// `data` must be null or a pointer returned by `proxy_on_memory_allocate(size)`.
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: allocated by the module's allocator with capacity `size`, filled by the host.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// Calls a host function that returns bytes: `Ok(None)` for `NotFound` (and `Empty`).
fn read(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let code = call(&mut data, &mut size);
    match code {
        // SAFETY: on Ok the host hands over a buffer it allocated with our allocator (or null).
        OK => Ok(Some(unsafe { take(data, size) })),
        NOT_FOUND | 7 => Ok(None),
        other => Err(HostStatus(other)),
    }
}

pub fn log(level: Level, message: &str) -> Result<(), HostStatus> {
    // SAFETY: a valid slice for the duration of the call.
    status(unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) })
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> Result<u64, HostStatus> {
    let mut t: u64 = 0;
    // SAFETY: a valid out pointer.
    status(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

pub fn set_tick_period_ms(period: u32) -> Result<(), HostStatus> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_tick_period_milliseconds(period) })
}

pub fn buffer(kind: Buffer, start: usize, max: usize) -> Result<Option<Vec<u8>>, HostStatus> {
    // SAFETY: valid out pointers, owned by `read`.
    read(|d, s| unsafe { proxy_get_buffer_bytes(kind as u32, start, max, d, s) })
}

/// The raw bytes of one header (`None` if absent).
pub fn header(map: Headers, name: &str) -> Result<Option<Vec<u8>>, HostStatus> {
    // SAFETY: a valid key slice and out pointers, owned by `read`.
    read(|d, s| unsafe { proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), d, s) })
}

/// Every header of a map in one call, serialized as the ABI gives it (parse with
/// `http::pairs::parse`).
pub fn header_pairs(map: Headers) -> Result<Option<Vec<u8>>, HostStatus> {
    // SAFETY: valid out pointers, owned by `read`.
    read(|d, s| unsafe { proxy_get_header_map_pairs(map as u32, d, s) })
}

/// Sets (replaces) a header, or removes it with `None`.
pub fn set_header(map: Headers, name: &str, value: Option<&[u8]>) -> Result<(), HostStatus> {
    // SAFETY: valid slices for the duration of the call.
    status(unsafe {
        match value {
            Some(v) => proxy_replace_header_map_value(
                map as u32,
                name.as_ptr(),
                name.len(),
                v.as_ptr(),
                v.len(),
            ),
            None => proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()),
        }
    })
}

/// A property by path (`["source", "address"]`), as bytes. The path's parts are separated by
/// NUL bytes (none after the last).
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, HostStatus> {
    let serialized = path.join("\0").into_bytes();
    // SAFETY: a valid path slice and out pointers, owned by `read`.
    read(|d, s| unsafe { proxy_get_property(serialized.as_ptr(), serialized.len(), d, s) })
}

/// A shared-data value and its CAS token (`None` if absent).
pub fn shared_get(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
    let mut cas: u32 = 0;
    // SAFETY: a valid key slice and out pointers, owned by `read`.
    let value =
        read(|d, s| unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), d, s, &mut cas) })?;
    Ok(value.map(|v| (v, cas)))
}

/// Sets a shared-data value; `cas` 0 means unconditionally.
pub fn shared_set(key: &str, value: &[u8], cas: u32) -> Result<(), HostStatus> {
    // SAFETY: valid slices for the duration of the call.
    status(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Registers a shared queue of this VM's id (its `on_queue_ready` comes to the calling root
/// context, on its thread); the queue's id.
pub fn register_queue(name: &str) -> Result<u32, HostStatus> {
    let mut id: u32 = 0;
    // SAFETY: a valid name slice and out pointer.
    status(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn enqueue(queue: u32, value: &[u8]) -> Result<(), HostStatus> {
    // SAFETY: a valid slice for the duration of the call.
    status(unsafe { proxy_enqueue_shared_queue(queue, value.as_ptr(), value.len()) })
}

/// The next item of a queue (`None` when it is empty).
pub fn dequeue(queue: u32) -> Result<Option<Vec<u8>>, HostStatus> {
    // SAFETY: valid out pointers, owned by `read`.
    read(|d, s| unsafe { proxy_dequeue_shared_queue(queue, d, s) })
}

/// A counter (`gauge: false`) or gauge named `name`; its id.
pub fn define_metric(gauge: bool, name: &str) -> Result<u32, HostStatus> {
    let mut id: u32 = 0;
    // SAFETY: a valid name slice and out pointer.
    status(unsafe { proxy_define_metric(u32::from(gauge), name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, by: u64) -> Result<(), HostStatus> {
    // SAFETY: no pointers.
    status(unsafe { proxy_increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX)) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), HostStatus> {
    // SAFETY: no pointers.
    status(unsafe { proxy_record_metric(id, value) })
}

/// Resumes the paused request of the effective context.
pub fn resume_request() -> Result<(), HostStatus> {
    // SAFETY: no pointers (stream type 0: the HTTP request).
    status(unsafe { proxy_continue_stream(0) })
}

pub fn set_effective_context(id: u32) -> Result<(), HostStatus> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_effective_context(id) })
}

/// Serializes header pairs as the ABI expects: count, then the sizes, then NUL-ended names and
/// values.
fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    // Header counts and sizes are small (ours, never a client's); u32 by the ABI.
    let size = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&size(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&size(k.len()));
        out.extend_from_slice(&size(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Answers the effective request with a local reply.
pub fn send_response(code: u32, headers: &[(&str, &[u8])], body: &[u8]) -> Result<(), HostStatus> {
    let headers = serialize(headers);
    // SAFETY: valid slices for the duration of the call.
    status(unsafe {
        proxy_send_local_response(
            code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Replaces the SDK's panic hook (which logs the panic message, and with it whatever data the
/// message holds) with a fixed line: where, never what.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = log(
            Level::Critical,
            &format!(
                "envoy-secret-auth: internal error{at}; this VM stops (no request data is logged)"
            ),
        );
    }));
}
