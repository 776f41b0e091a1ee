//! The `env.proxy_*` host functions of proxy-wasm ABI 0.2.1, with Envoy's semantics and status
//! codes. Imports not defined here trap when called (`define_unknown_imports_as_traps`).
//!
//! Pointers and sizes are wasm32 `i32`s. Data returned to the module is written into memory
//! obtained from its `proxy_on_memory_allocate` (or `malloc`) export.

use std::time::Duration;

use wasmtime::error::Context as _;
use wasmtime::{bail, format_err as anyhow, Caller, Linker, Memory, Result};

use crate::shared::MetricKind;
use crate::state::{Pending, VmState};
use crate::types::{
    buffer_type, header_bytes, lossy, map_type, stream_type, ByteHeaders, HttpCall, LocalReply,
    LogLevel, Outcome, Status,
};

type C<'a> = Caller<'a, VmState>;

const OK: i32 = Status::Ok as i32;

pub(crate) fn add_to_linker(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap("env", "proxy_log", proxy_log)?;
    linker.func_wrap("env", "proxy_get_log_level", proxy_get_log_level)?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        proxy_get_current_time_nanoseconds,
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        proxy_set_tick_period_milliseconds,
    )?;
    linker.func_wrap("env", "proxy_get_buffer_bytes", proxy_get_buffer_bytes)?;
    linker.func_wrap("env", "proxy_set_buffer_bytes", proxy_set_buffer_bytes)?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        proxy_get_header_map_pairs,
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        proxy_set_header_map_pairs,
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        proxy_get_header_map_value,
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        proxy_replace_header_map_value,
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        proxy_remove_header_map_value,
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        proxy_add_header_map_value,
    )?;
    linker.func_wrap("env", "proxy_get_property", proxy_get_property)?;
    linker.func_wrap("env", "proxy_set_property", proxy_set_property)?;
    linker.func_wrap("env", "proxy_get_shared_data", proxy_get_shared_data)?;
    linker.func_wrap("env", "proxy_set_shared_data", proxy_set_shared_data)?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        proxy_register_shared_queue,
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        proxy_resolve_shared_queue,
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        proxy_dequeue_shared_queue,
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        proxy_enqueue_shared_queue,
    )?;
    linker.func_wrap("env", "proxy_continue_stream", proxy_continue_stream)?;
    linker.func_wrap("env", "proxy_close_stream", proxy_close_stream)?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        proxy_send_local_response,
    )?;
    linker.func_wrap("env", "proxy_http_call", proxy_http_call)?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        proxy_set_effective_context,
    )?;
    linker.func_wrap("env", "proxy_done", |_: C<'_>| -> i32 { OK })?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
            Status::NotFound.code()
        },
    )?;
    linker.func_wrap("env", "proxy_define_metric", proxy_define_metric)?;
    linker.func_wrap("env", "proxy_increment_metric", proxy_increment_metric)?;
    linker.func_wrap("env", "proxy_record_metric", proxy_record_metric)?;
    linker.func_wrap("env", "proxy_get_metric", proxy_get_metric)?;
    Ok(())
}

// ---- memory --------------------------------------------------------------------------------

fn memory(c: &C<'_>) -> Result<Memory> {
    c.data()
        .proxy
        .memory
        .ok_or_else(|| anyhow!("the module exports no memory"))
}

fn span(ptr: i32, len: i32) -> Result<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or_else(|| anyhow!("invalid memory access: {ptr:#x}+{len}"))?;
    Ok(start..end)
}

fn read(c: &mut C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let mem = memory(c)?;
    let range = span(ptr, len)?;
    mem.data(&*c)
        .get(range)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| anyhow!("invalid memory access: read {len} bytes at {ptr:#x}"))
}

fn read_string(c: &mut C<'_>, ptr: i32, len: i32) -> Result<String> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<()> {
    let mem = memory(c)?;
    let range = span(ptr, i32::try_from(bytes.len())?)?;
    mem.data_mut(&mut *c)
        .get_mut(range)
        .ok_or_else(|| {
            anyhow!(
                "invalid memory access: write {} bytes at {ptr:#x}",
                bytes.len()
            )
        })?
        .copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: &mut C<'_>, ptr: i32, value: u32) -> Result<()> {
    write(c, ptr, &value.to_le_bytes())
}

fn write_u64(c: &mut C<'_>, ptr: i32, value: u64) -> Result<()> {
    write(c, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into memory the module allocates, returning the guest pointer.
fn alloc_copy(c: &mut C<'_>, bytes: &[u8]) -> Result<i32> {
    let alloc =
        c.data().proxy.alloc.clone().ok_or_else(|| {
            anyhow!("the module exports neither proxy_on_memory_allocate nor malloc")
        })?;
    let size = i32::try_from(bytes.len())?;
    let ptr = alloc
        .call(&mut *c, size)
        .context("proxy_on_memory_allocate")?;
    if ptr == 0 {
        bail!("proxy_on_memory_allocate({size}) returned null");
    }
    write(c, ptr, bytes)?;
    Ok(ptr)
}

/// Returns data like Envoy's `copyToPointerSize`: nothing is allocated for empty data.
fn return_bytes(c: &mut C<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> Result<()> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        alloc_copy(c, bytes)?
    };
    write_u32(c, ptr_ptr, ptr as u32)?;
    write_u32(c, size_ptr, u32::try_from(bytes.len())?)
}

// ---- header maps -----------------------------------------------------------------------------

/// The proxy-wasm map encoding: count, (key len, value len) pairs, then NUL-terminated data.
pub(crate) fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

pub(crate) fn decode_pairs(bytes: &[u8]) -> Result<ByteHeaders> {
    fn u32_at(bytes: &[u8], at: usize) -> Result<usize> {
        let raw = bytes
            .get(at..at + 4)
            .ok_or_else(|| anyhow!("truncated header map"))?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    }
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let count = u32_at(bytes, 0)?;
    let mut data = 4 + count * 8;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = u32_at(bytes, 4 + i * 8)?;
        let value_len = u32_at(bytes, 8 + i * 8)?;
        let key = bytes
            .get(data..data + key_len)
            .ok_or_else(|| anyhow!("truncated header map"))?;
        data += key_len + 1;
        let value = bytes
            .get(data..data + value_len)
            .ok_or_else(|| anyhow!("truncated header map"))?;
        data += value_len + 1;
        pairs.push((key.to_vec(), value.to_vec()));
    }
    Ok(pairs)
}

fn lower(pairs: ByteHeaders) -> ByteHeaders {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// A map the module may read. `None` when Envoy would have none (e.g. request headers from the
/// root context, or the callout response headers of a failed callout).
fn readable_map(c: &mut C<'_>, map: i32) -> Option<ByteHeaders> {
    let proxy = &mut c.data_mut().proxy;
    match map {
        map_type::HTTP_CALL_RESPONSE_HEADERS => {
            proxy.call_response.as_ref().map(|r| r.headers.clone())
        }
        map_type::HTTP_CALL_RESPONSE_TRAILERS => {
            proxy.call_response.as_ref().map(|r| r.trailers.clone())
        }
        _ => proxy.active_stream().and_then(|s| s.map(map).cloned()),
    }
}

fn with_writable_map(c: &mut C<'_>, map: i32, f: impl FnOnce(&mut ByteHeaders)) -> i32 {
    match c
        .data_mut()
        .proxy
        .active_stream()
        .and_then(|s| s.map_mut(map))
    {
        Some(headers) => {
            f(headers);
            OK
        }
        None => Status::BadArgument.code(),
    }
}

fn proxy_get_header_map_pairs(mut c: C<'_>, map: i32, ptr_ptr: i32, size_ptr: i32) -> Result<i32> {
    if !(0..=7).contains(&map) {
        return Ok(Status::BadArgument.code());
    }
    // Envoy answers an absent map with an empty one here (not with BadArgument).
    let encoded = encode_pairs(&readable_map(&mut c, map).unwrap_or_default());
    let ptr = alloc_copy(&mut c, &encoded)?;
    write_u32(&mut c, ptr_ptr, ptr as u32)?;
    write_u32(&mut c, size_ptr, u32::try_from(encoded.len())?)?;
    Ok(OK)
}

fn proxy_set_header_map_pairs(mut c: C<'_>, map: i32, ptr: i32, size: i32) -> Result<i32> {
    let pairs = lower(decode_pairs(&read(&mut c, ptr, size)?)?);
    Ok(with_writable_map(&mut c, map, |headers| *headers = pairs))
}

fn proxy_get_header_map_value(
    mut c: C<'_>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> Result<i32> {
    let key = read(&mut c, key_ptr, key_len)?;
    let Some(headers) = readable_map(&mut c, map) else {
        return Ok(Status::BadArgument.code());
    };
    // Like Envoy: the first value only.
    match header_bytes(&headers, &key) {
        Some(value) => {
            return_bytes(&mut c, value, ptr_ptr, size_ptr)?;
            Ok(OK)
        }
        None => Ok(Status::NotFound.code()),
    }
}

fn proxy_replace_header_map_value(
    mut c: C<'_>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> Result<i32> {
    let key = read(&mut c, key_ptr, key_len)?.to_ascii_lowercase();
    let value = read(&mut c, value_ptr, value_len)?;
    // Envoy's setCopy: every existing value goes, the new one is appended.
    Ok(with_writable_map(&mut c, map, |headers| {
        headers.retain(|(k, _)| *k != key);
        headers.push((key, value));
    }))
}

fn proxy_remove_header_map_value(
    mut c: C<'_>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
) -> Result<i32> {
    let key = read(&mut c, key_ptr, key_len)?.to_ascii_lowercase();
    Ok(with_writable_map(&mut c, map, |headers| {
        headers.retain(|(k, _)| *k != key)
    }))
}

fn proxy_add_header_map_value(
    mut c: C<'_>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> Result<i32> {
    let key = read(&mut c, key_ptr, key_len)?.to_ascii_lowercase();
    let value = read(&mut c, value_ptr, value_len)?;
    Ok(with_writable_map(&mut c, map, |headers| {
        headers.push((key, value))
    }))
}

// ---- buffers -----------------------------------------------------------------------------------

fn proxy_get_buffer_bytes(
    mut c: C<'_>,
    buffer: i32,
    start: i32,
    max_size: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> Result<i32> {
    let proxy = &mut c.data_mut().proxy;
    let data = match buffer {
        buffer_type::HTTP_REQUEST_BODY => proxy.active_stream().map(|s| s.request_body.clone()),
        buffer_type::HTTP_RESPONSE_BODY => proxy.active_stream().map(|s| s.response_body.clone()),
        buffer_type::HTTP_CALL_RESPONSE_BODY => {
            proxy.call_response.as_ref().map(|r| r.body.clone())
        }
        buffer_type::VM_CONFIGURATION => Some(proxy.vm_config.clone()),
        // Like Envoy: the plugin configuration is only readable during proxy_on_configure.
        buffer_type::PLUGIN_CONFIGURATION => proxy.configuring.then(|| proxy.plugin_config.clone()),
        _ => None,
    };
    let Some(data) = data else {
        return Ok(Status::NotFound.code());
    };
    let start = start as u32 as usize;
    if start > data.len() {
        return Ok(Status::BadArgument.code());
    }
    let end = start
        .saturating_add(max_size as u32 as usize)
        .min(data.len());
    if end > start {
        return_bytes(&mut c, &data[start..end], ptr_ptr, size_ptr)?;
    }
    // Like Envoy, nothing is written for an empty slice: the module sees a null pointer.
    Ok(OK)
}

fn proxy_set_buffer_bytes(
    mut c: C<'_>,
    buffer: i32,
    start: i32,
    size: i32,
    data_ptr: i32,
    data_len: i32,
) -> Result<i32> {
    let data = read(&mut c, data_ptr, data_len)?;
    let Some(stream) = c.data_mut().proxy.active_stream() else {
        return Ok(Status::BadArgument.code());
    };
    let body = match buffer {
        buffer_type::HTTP_REQUEST_BODY => &mut stream.request_body,
        buffer_type::HTTP_RESPONSE_BODY => &mut stream.response_body,
        _ => return Ok(Status::BadArgument.code()),
    };
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    // Envoy's Buffer::copyFrom: at 0, drain `size` bytes and prepend; at/after the end, append.
    if start == 0 {
        body.drain(..size.min(body.len()));
        body.splice(0..0, data);
    } else if start >= body.len() {
        body.extend_from_slice(&data);
    } else {
        return Ok(Status::BadArgument.code());
    }
    Ok(OK)
}

// ---- logging, time -------------------------------------------------------------------------

fn proxy_log(mut c: C<'_>, level: i32, ptr: i32, len: i32) -> Result<i32> {
    let message = read_string(&mut c, ptr, len)?;
    let Some(level) = LogLevel::from_code(level) else {
        return Ok(Status::BadArgument.code());
    };
    let proxy = &mut c.data_mut().proxy;
    if level >= proxy.log_level {
        proxy.logs.push((level, message));
    }
    Ok(OK)
}

fn proxy_get_log_level(mut c: C<'_>, ptr: i32) -> Result<i32> {
    let level = c.data().proxy.log_level as u32;
    write_u32(&mut c, ptr, level)?;
    Ok(OK)
}

fn proxy_get_current_time_nanoseconds(mut c: C<'_>, ptr: i32) -> Result<i32> {
    let nanos = c
        .data()
        .proxy
        .now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    write_u64(&mut c, ptr, nanos)?;
    Ok(OK)
}

fn proxy_set_tick_period_milliseconds(mut c: C<'_>, period: i32) -> i32 {
    let proxy = &mut c.data_mut().proxy;
    let period = Duration::from_millis(u64::from(period as u32));
    proxy.tick_period = period;
    proxy.next_tick = (!period.is_zero()).then(|| proxy.now + period);
    OK
}

// ---- properties, shared data, queues -------------------------------------------------------

fn proxy_get_property(
    mut c: C<'_>,
    path_ptr: i32,
    path_len: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> Result<i32> {
    let path = read(&mut c, path_ptr, path_len)?;
    let proxy = &mut c.data_mut().proxy;
    let value = match proxy.active_stream() {
        Some(stream) => stream.properties.get(&path).cloned(),
        None => proxy.properties.get(&path).cloned(),
    };
    match value {
        Some(value) => {
            return_bytes(&mut c, &value, ptr_ptr, size_ptr)?;
            Ok(OK)
        }
        None => Ok(Status::NotFound.code()),
    }
}

fn proxy_set_property(
    mut c: C<'_>,
    path_ptr: i32,
    path_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> Result<i32> {
    let path = read(&mut c, path_ptr, path_len)?;
    let value = read(&mut c, value_ptr, value_len)?;
    // Envoy keeps properties in the stream's filter state: there is none outside a stream.
    match c.data_mut().proxy.active_stream() {
        Some(stream) => {
            stream.properties.insert(path, value);
            Ok(OK)
        }
        None => Ok(Status::NotFound.code()),
    }
}

fn proxy_get_shared_data(
    mut c: C<'_>,
    key_ptr: i32,
    key_len: i32,
    ptr_ptr: i32,
    size_ptr: i32,
    cas_ptr: i32,
) -> Result<i32> {
    let key = read(&mut c, key_ptr, key_len)?;
    let entry = c.data().proxy.shared()?.get(&key);
    let Some((value, cas)) = entry else {
        return Ok(Status::NotFound.code());
    };
    return_bytes(&mut c, &value, ptr_ptr, size_ptr)?;
    write_u32(&mut c, cas_ptr, cas)?;
    Ok(OK)
}

fn proxy_set_shared_data(
    mut c: C<'_>,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
    cas: i32,
) -> Result<i32> {
    let key = read(&mut c, key_ptr, key_len)?;
    let value = read(&mut c, value_ptr, value_len)?;
    let status = c.data().proxy.shared()?.set(&key, &value, cas as u32);
    Ok(status.code())
}

fn proxy_register_shared_queue(
    mut c: C<'_>,
    name_ptr: i32,
    name_len: i32,
    id_ptr: i32,
) -> Result<i32> {
    let name = read(&mut c, name_ptr, name_len)?;
    let proxy = &c.data().proxy;
    let id = proxy
        .shared()?
        .register_queue(&proxy.vm_id, &name, proxy.host_id, proxy.active);
    write_u32(&mut c, id_ptr, id)?;
    Ok(OK)
}

fn proxy_resolve_shared_queue(
    mut c: C<'_>,
    vm_ptr: i32,
    vm_len: i32,
    name_ptr: i32,
    name_len: i32,
    id_ptr: i32,
) -> Result<i32> {
    let vm_id = read(&mut c, vm_ptr, vm_len)?;
    let name = read(&mut c, name_ptr, name_len)?;
    let id = c.data().proxy.shared()?.resolve_queue(&vm_id, &name);
    match id {
        Some(id) => {
            write_u32(&mut c, id_ptr, id)?;
            Ok(OK)
        }
        None => Ok(Status::NotFound.code()),
    }
}

fn proxy_dequeue_shared_queue(mut c: C<'_>, id: i32, ptr_ptr: i32, size_ptr: i32) -> Result<i32> {
    let item = c.data().proxy.shared()?.dequeue(id as u32);
    match item {
        Ok(value) => {
            return_bytes(&mut c, &value, ptr_ptr, size_ptr)?;
            Ok(OK)
        }
        Err(status) => Ok(status.code()),
    }
}

fn proxy_enqueue_shared_queue(mut c: C<'_>, id: i32, ptr: i32, len: i32) -> Result<i32> {
    let value = read(&mut c, ptr, len)?;
    let status = c.data().proxy.shared()?.enqueue(id as u32, &value);
    Ok(status.code())
}

// ---- stream control ------------------------------------------------------------------------

fn proxy_continue_stream(mut c: C<'_>, stream: i32) -> i32 {
    let proxy = &mut c.data_mut().proxy;
    let active = proxy.active;
    match stream {
        stream_type::HTTP_REQUEST => {
            let note = match proxy.active_stream() {
                Some(s) => match s.outcome {
                    Outcome::Paused => {
                        s.outcome = Outcome::Continue;
                        None
                    }
                    Outcome::Continue => Some(format!(
                        "proxy_continue_stream(HttpRequest) on stream {active}, which is not paused"
                    )),
                    Outcome::LocalReply(_) | Outcome::Reset => Some(format!(
                        "proxy_continue_stream(HttpRequest) on stream {active} after it was answered or reset"
                    )),
                },
                None => Some(format!(
                    "proxy_continue_stream(HttpRequest) from context {active}, which is not a live stream: ignored"
                )),
            };
            if let Some(note) = note {
                proxy.violation(note);
            }
            OK
        }
        stream_type::HTTP_RESPONSE | stream_type::DOWNSTREAM | stream_type::UPSTREAM => OK,
        _ => Status::BadArgument.code(),
    }
}

fn proxy_close_stream(mut c: C<'_>, stream: i32) -> i32 {
    let proxy = &mut c.data_mut().proxy;
    match stream {
        stream_type::HTTP_REQUEST | stream_type::HTTP_RESPONSE => {
            if let Some(s) = proxy.active_stream() {
                s.outcome = Outcome::Reset;
            }
            OK
        }
        stream_type::DOWNSTREAM | stream_type::UPSTREAM => OK,
        _ => Status::BadArgument.code(),
    }
}

#[allow(clippy::too_many_arguments)]
fn proxy_send_local_response(
    mut c: C<'_>,
    status: i32,
    details_ptr: i32,
    details_len: i32,
    body_ptr: i32,
    body_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    grpc_status: i32,
) -> Result<i32> {
    let details = read_string(&mut c, details_ptr, details_len)?;
    let body = read(&mut c, body_ptr, body_len)?;
    let headers = lossy(&lower(decode_pairs(&read(
        &mut c,
        headers_ptr,
        headers_len,
    )?)?));
    let proxy = &mut c.data_mut().proxy;
    let active = proxy.active;
    let Some(stream) = proxy.active_stream() else {
        proxy.violation(format!(
            "proxy_send_local_response({status}) from context {active}, which is not a live stream: ignored"
        ));
        return Ok(OK);
    };
    if stream.local_reply_sent {
        // Envoy refuses a second local reply on a stream.
        proxy.violation(format!(
            "second proxy_send_local_response on stream {active}"
        ));
        return Ok(Status::BadArgument.code());
    }
    stream.local_reply_sent = true;
    stream.outcome = Outcome::LocalReply(LocalReply {
        status: status as u32,
        headers,
        body,
        details,
        grpc_status,
    });
    Ok(OK)
}

fn proxy_set_effective_context(mut c: C<'_>, context_id: i32) -> i32 {
    let proxy = &mut c.data_mut().proxy;
    let id = context_id as u32;
    let live = id == proxy.root_id || proxy.streams.get(&id).is_some_and(|s| !s.deleted);
    if live {
        proxy.active = id;
        OK
    } else {
        Status::BadArgument.code()
    }
}

// ---- callouts ------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn proxy_http_call(
    mut c: C<'_>,
    upstream_ptr: i32,
    upstream_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    body_ptr: i32,
    body_len: i32,
    trailers_ptr: i32,
    trailers_len: i32,
    timeout_ms: i32,
    token_ptr: i32,
) -> Result<i32> {
    let upstream = read_string(&mut c, upstream_ptr, upstream_len)?;
    let headers = lower(decode_pairs(&read(&mut c, headers_ptr, headers_len)?)?);
    let body = read(&mut c, body_ptr, body_len)?;
    let trailers = lossy(&lower(decode_pairs(&read(
        &mut c,
        trailers_ptr,
        trailers_len,
    )?)?));
    let proxy = &mut c.data_mut().proxy;
    if let Some(status) = proxy.http_call_error {
        return Ok(status.code());
    }
    if !proxy.clusters.is_empty() && !proxy.clusters.contains(&upstream) {
        proxy.violation(format!("proxy_http_call to unknown cluster {upstream:?}"));
        return Ok(Status::BadArgument.code());
    }
    let missing: Vec<&str> = [":method", ":path", ":authority"]
        .into_iter()
        .filter(|name| header_bytes(&headers, name.as_bytes()).is_none())
        .collect();
    if !missing.is_empty() {
        // Envoy refuses a callout without these.
        proxy.violation(format!(
            "proxy_http_call to {upstream:?} without {}",
            missing.join(", ")
        ));
        return Ok(Status::BadArgument.code());
    }
    let headers = lossy(&headers);
    let token = proxy.next_token;
    proxy.next_token = proxy.next_token.wrapping_add(1).max(1);
    let timeout_ms = timeout_ms as u32;
    let deadline =
        (timeout_ms > 0).then(|| proxy.now + Duration::from_millis(u64::from(timeout_ms)));
    // Envoy makes every callout on the plugin's root context (proxy-wasm-cpp-host retargets
    // proxy_http_call to the root context): the answer is delivered with the root's id, even
    // for a call made during a request, and a request that ends does not cancel it.
    let context_id = proxy.root_id;
    proxy.pending_calls.insert(
        token,
        Pending {
            context_id,
            deadline,
        },
    );
    proxy.new_calls.push(HttpCall {
        token,
        context_id,
        upstream,
        headers,
        body,
        trailers,
        timeout_ms,
    });
    write_u32(&mut c, token_ptr, token)?;
    Ok(OK)
}

// ---- metrics -------------------------------------------------------------------------------

fn proxy_define_metric(
    mut c: C<'_>,
    kind: i32,
    name_ptr: i32,
    name_len: i32,
    id_ptr: i32,
) -> Result<i32> {
    let name = read_string(&mut c, name_ptr, name_len)?;
    let kind = match kind {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return Ok(Status::BadArgument.code()),
    };
    let id = c.data().proxy.shared()?.define_metric(kind, &name);
    write_u32(&mut c, id_ptr, id)?;
    Ok(OK)
}

fn proxy_increment_metric(c: C<'_>, id: i32, offset: i64) -> Result<i32> {
    let mut shared = c.data().proxy.shared()?;
    let Some(metric) = shared.metric_mut(id as u32) else {
        return Ok(Status::NotFound.code());
    };
    let status = match metric.kind {
        MetricKind::Counter if offset > 0 => {
            metric.value = metric.value.saturating_add(offset as u64);
            Status::Ok
        }
        MetricKind::Gauge => {
            metric.value = metric.value.saturating_add_signed(offset);
            Status::Ok
        }
        MetricKind::Counter | MetricKind::Histogram => Status::BadArgument,
    };
    Ok(status.code())
}

fn proxy_record_metric(c: C<'_>, id: i32, value: i64) -> Result<i32> {
    let mut shared = c.data().proxy.shared()?;
    let Some(metric) = shared.metric_mut(id as u32) else {
        return Ok(Status::NotFound.code());
    };
    match metric.kind {
        MetricKind::Counter => metric.value = metric.value.saturating_add(value as u64),
        MetricKind::Gauge | MetricKind::Histogram => metric.value = value as u64,
    }
    Ok(OK)
}

fn proxy_get_metric(mut c: C<'_>, id: i32, ptr: i32) -> Result<i32> {
    let value = {
        let mut shared = c.data().proxy.shared()?;
        match shared.metric_mut(id as u32) {
            None => return Ok(Status::NotFound.code()),
            Some(m) if m.kind == MetricKind::Histogram => return Ok(Status::BadArgument.code()),
            Some(m) => m.value,
        }
    };
    write_u64(&mut c, ptr, value)?;
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_maps_round_trip_in_the_proxy_wasm_encoding() {
        let pairs: ByteHeaders = vec![
            (b":path".to_vec(), b"/a".to_vec()),
            (b"x".to_vec(), Vec::new()),
            (b"x".to_vec(), b"2".to_vec()),
            (b"x-\xff".to_vec(), b"\xff\xfe\x00\x80".to_vec()),
        ];
        let bytes = encode_pairs(&pairs);
        assert_eq!(&bytes[..4], &4u32.to_le_bytes());
        assert_eq!(&bytes[4..12], &[5, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(decode_pairs(&bytes).unwrap(), pairs);
        assert_eq!(decode_pairs(&[]).unwrap(), ByteHeaders::new());
        assert!(decode_pairs(&bytes[..bytes.len() - 3]).is_err());
    }
}
