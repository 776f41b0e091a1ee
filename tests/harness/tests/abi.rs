//! Self-tests of the host against a tiny proxy-wasm module written in WAT:
//! * configure: logs the plugin config; refuses one starting with `x`; sets a 100 ms tick.
//! * tick: writes the current time to shared data `now`, calls out to `cluster_a`, moves the
//!   tick period to 300 ms on the 2nd tick, and settles a paused request through
//!   `proxy_set_effective_context`: continue if it has `x-a`, else a 401 local reply.
//! * callout response: logs `:status` and the body; on a failure logs whether the response
//!   header map was absent (as Envoy has it).
//! * request headers: `x-trap` writes `boom` to stderr and traps; `x-grpc` calls an import the host does not define;
//!   `x-pause` pauses; no `x-a` -> 403 `denied` with `x-r: 1`; otherwise `x-b` := `x-a`,
//!   add `x-c: added`, remove `x-d`, copy property `xds.route_name` to `x-route`, and store
//!   `x-shared` into shared data `key`.
//! * request body: buffers until end of stream, logs it, replaces it with `ping`.
//! * response headers: adds `x-resp: 1`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm_harness::{header_all, Host, HostOptions, Outcome, Status};

const MODULE: &str = r#"
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove_header (param i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $send_local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_call" (func $grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 16384))
  (global $paused (mut i32) (i32.const 0))
  (global $ticks (mut i32) (i32.const 0))

  (data (i32.const 0) "x-a")
  (data (i32.const 16) "x-b")
  (data (i32.const 32) "x-c")
  (data (i32.const 48) "added")
  (data (i32.const 64) "x-d")
  (data (i32.const 80) "denied")
  (data (i32.const 96) "x-pause")
  (data (i32.const 112) "x-trap")
  (data (i32.const 128) "cluster_a")
  (data (i32.const 144) ":status")
  (data (i32.const 160) "tick")
  (data (i32.const 176) "ping")
  (data (i32.const 192) "x-resp")
  (data (i32.const 208) "1")
  (data (i32.const 224) "x-shared")
  (data (i32.const 240) "key")
  (data (i32.const 256) "xds\00route_name")
  (data (i32.const 288) "x-route")
  ;; {x-r: 1}
  (data (i32.const 304) "\01\00\00\00\03\00\00\00\01\00\00\00x-r\001\00")
  ;; {:method: POST, :path: /v1/x, :authority: svc}
  (data (i32.const 336) "\03\00\00\00\07\00\00\00\04\00\00\00\05\00\00\00\05\00\00\00\0a\00\00\00\03\00\00\00:method\00POST\00:path\00/v1/x\00:authority\00svc\00")
  (data (i32.const 408) "now")
  (data (i32.const 420) "http_call failed")
  (data (i32.const 440) "call failed: no map")
  (data (i32.const 480) "x-grpc")
  (data (i32.const 500) "boom")

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))

  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (block $done
      (loop $grow
        (br_if $done (i32.le_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))))
        (drop (memory.grow (i32.const 1)))
        (br $grow)))
    (local.get $p))

  ;; 1 if request header ($name, $len) is present; its value is then at [1024], [1028].
  (func $has (param $name i32) (param $len i32) (result i32)
    (i32.eqz (call $get_header (i32.const 0) (local.get $name) (local.get $len)
                               (i32.const 1024) (i32.const 1028))))

  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))

  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (i32.store (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 0))
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 1024) (i32.const 1028)))
    (if (i32.load (i32.const 1028))
      (then
        (drop (call $log (i32.const 2) (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))
        (if (i32.eq (i32.load8_u (i32.load (i32.const 1024))) (i32.const 120))
          (then (return (i32.const 0))))))
    (drop (call $set_tick (i32.const 100)))
    (i32.const 1))

  (func (export "proxy_on_tick") (param $ctx i32)
    (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
    (drop (call $log (i32.const 2) (i32.const 160) (i32.const 4)))
    (drop (call $now (i32.const 1040)))
    (drop (call $set_shared (i32.const 408) (i32.const 3) (i32.const 1040) (i32.const 8) (i32.const 0)))
    (if (call $http_call (i32.const 128) (i32.const 9) (i32.const 336) (i32.const 68)
                         (i32.const 176) (i32.const 4) (i32.const 0) (i32.const 0)
                         (i32.const 500) (i32.const 1032))
      (then (drop (call $log (i32.const 3) (i32.const 420) (i32.const 16)))))
    (if (i32.eq (global.get $ticks) (i32.const 2))
      (then (drop (call $set_tick (i32.const 300)))))
    (if (global.get $paused)
      (then
        (drop (call $set_effective (global.get $paused)))
        (if (call $has (i32.const 0) (i32.const 3))
          (then (drop (call $continue (i32.const 0))))
          (else (drop (call $send_local (i32.const 401) (i32.const 0) (i32.const 0)
                                        (i32.const 80) (i32.const 6) (i32.const 304) (i32.const 18)
                                        (i32.const -1)))))
        (global.set $paused (i32.const 0)))))

  (func (export "proxy_on_http_call_response")
        (param $ctx i32) (param $token i32) (param $headers i32) (param $body i32) (param $trailers i32)
    (if (i32.eqz (local.get $headers))
      (then
        (if (i32.eq (call $get_header (i32.const 6) (i32.const 144) (i32.const 7) (i32.const 1024) (i32.const 1028))
                    (i32.const 2))
          (then (drop (call $log (i32.const 3) (i32.const 440) (i32.const 19)))))
        (return)))
    (if (i32.eqz (call $get_header (i32.const 6) (i32.const 144) (i32.const 7) (i32.const 1024) (i32.const 1028)))
      (then (drop (call $log (i32.const 2) (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
    (i32.store (i32.const 1028) (i32.const 0))
    (drop (call $get_buffer (i32.const 4) (i32.const 0) (local.get $body) (i32.const 1024) (i32.const 1028)))
    (if (i32.load (i32.const 1028))
      (then (drop (call $log (i32.const 2) (i32.load (i32.const 1024)) (i32.load (i32.const 1028)))))))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (if (call $has (i32.const 112) (i32.const 6))
      (then
        ;; Like a Rust panic: a message on stderr (WASI fd_write), then a trap.
        (i32.store (i32.const 1100) (i32.const 500))
        (i32.store (i32.const 1104) (i32.const 4))
        (drop (call $fd_write (i32.const 2) (i32.const 1100) (i32.const 1) (i32.const 1108)))
        unreachable))
    (if (call $has (i32.const 480) (i32.const 6))
      (then (drop (call $grpc_call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                   (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                   (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1032)))))
    (if (call $has (i32.const 96) (i32.const 7))
      (then
        (global.set $paused (local.get $ctx))
        (return (i32.const 1))))
    (if (i32.eqz (call $has (i32.const 0) (i32.const 3)))
      (then
        (drop (call $send_local (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 80) (i32.const 6)
                                (i32.const 304) (i32.const 18) (i32.const -1)))
        (return (i32.const 1))))
    (drop (call $replace_header (i32.const 0) (i32.const 16) (i32.const 3)
                                (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))
    (drop (call $add_header (i32.const 0) (i32.const 32) (i32.const 3) (i32.const 48) (i32.const 5)))
    (drop (call $remove_header (i32.const 0) (i32.const 64) (i32.const 3)))
    (if (i32.eqz (call $get_property (i32.const 256) (i32.const 14) (i32.const 1024) (i32.const 1028)))
      (then (drop (call $add_header (i32.const 0) (i32.const 288) (i32.const 7)
                                    (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
    (if (call $has (i32.const 224) (i32.const 8))
      (then (drop (call $set_shared (i32.const 240) (i32.const 3)
                                    (i32.load (i32.const 1024)) (i32.load (i32.const 1028)) (i32.const 0)))))
    (i32.const 0))

  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (i32.store (i32.const 1028) (i32.const 0))
    (drop (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 1024) (i32.const 1028)))
    (if (i32.load (i32.const 1028))
      (then (drop (call $log (i32.const 2) (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
    (drop (call $set_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 176) (i32.const 4)))
    (i32.const 0))

  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $add_header (i32.const 2) (i32.const 192) (i32.const 6) (i32.const 208) (i32.const 1)))
    (i32.const 0))
)
"#;

fn host_with(plugin_config: &str) -> Host {
    let wasm = wat::parse_str(MODULE).expect("valid WAT");
    Host::from_bytes(
        &wasm,
        HostOptions {
            plugin_config: plugin_config.as_bytes().to_vec(),
            ..HostOptions::default()
        },
    )
    .expect("module loads")
}

fn started() -> Host {
    let mut host = host_with("{}");
    assert!(host.start().unwrap());
    host
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn configuration_is_readable_during_configure_and_can_be_refused() {
    let mut host = host_with("hello config");
    assert!(host.start().unwrap());
    assert_eq!(host.logs_containing("hello config").len(), 1);
    assert_eq!(host.tick_period(), ms(100));

    let mut refused = host_with("x: refuse me");
    assert!(!refused.start().unwrap());
    assert!(host.reconfigure(b"xyz").map(|ok| !ok).unwrap());
}

#[test]
fn headers_are_read_replaced_added_and_removed() {
    let mut host = started();
    let s = host
        .request(
            &[
                (":path", "/"),
                ("X-A", "from-a"),
                ("x-b", "old"),
                ("x-b", "old2"),
                ("x-d", "gone"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(host.outcome(s), Outcome::Continue);
    let forwarded = host.request_headers(s);
    assert_eq!(header_all(&forwarded, "x-b"), ["from-a"]);
    assert_eq!(host.request_header(s, "x-c").as_deref(), Some("added"));
    assert_eq!(host.request_header(s, "x-d"), None);
    assert_eq!(host.request_header(s, ":path").as_deref(), Some("/"));
}

#[test]
fn local_reply_is_recorded_with_status_body_and_headers() {
    let mut host = started();
    let s = host.request(&[(":path", "/")], true).unwrap();
    let reply = host.local_reply(s).expect("local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body_str(), "denied");
    assert_eq!(reply.header("x-r"), Some("1"));
}

#[test]
fn ticks_follow_the_fake_clock_and_period_changes() {
    let mut host = started();
    host.advance(ms(99)).unwrap();
    assert!(host.take_http_calls().is_empty());
    host.advance(ms(1)).unwrap();
    let calls = host.take_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.upstream, "cluster_a");
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":path"), Some("/v1/x"));
    assert_eq!(call.header(":authority"), Some("svc"));
    assert_eq!(call.body_str(), "ping");
    assert_eq!(call.timeout_ms, 500);
    let expected_now = host.now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert_eq!(host.shared_data("now").unwrap(), expected_now.to_le_bytes());

    // Ticks at 200 (the period becomes 300 ms), 500, 800; none at 300 or 400.
    host.advance(ms(750)).unwrap();
    assert_eq!(host.take_http_calls().len(), 3);
    assert_eq!(host.logs_containing("tick").len(), 4);
}

#[test]
fn callouts_are_answered_failed_or_time_out() {
    let mut host = started();
    host.advance(ms(100)).unwrap();
    let first = host.take_http_calls().remove(0);
    host.respond(first.token, &[(":status", "200")], b"pong")
        .unwrap();
    assert_eq!(host.logs_containing("200").len(), 1);
    assert_eq!(host.logs_containing("pong").len(), 1);
    assert!(host
        .respond(first.token, &[(":status", "200")], b"again")
        .is_err());

    host.advance(ms(100)).unwrap();
    let second = host.take_http_calls().remove(0);
    host.fail_call(second.token).unwrap();
    assert_eq!(host.logs_containing("call failed: no map").len(), 1);

    // Third call at 500 ms with a 500 ms timeout: still pending at 999, failed at 1000.
    host.advance(ms(300)).unwrap();
    let third = host.take_http_calls().remove(0);
    host.advance(ms(499)).unwrap();
    assert!(host.is_call_pending(third.token));
    host.advance(ms(1)).unwrap();
    assert!(!host.is_call_pending(third.token));
    assert_eq!(host.logs_containing("call failed: no map").len(), 2);
}

#[test]
fn http_call_errors_can_be_injected() {
    let mut host = started();
    host.set_http_call_error(Some(Status::InternalFailure));
    host.advance(ms(100)).unwrap();
    assert!(host.take_http_calls().is_empty());
    assert_eq!(host.logs_containing("http_call failed").len(), 1);
}

#[test]
fn paused_stream_is_resumed_or_answered_from_the_root_context() {
    let mut host = started();
    let s = host
        .request(&[("x-pause", "1"), ("x-a", "v")], true)
        .unwrap();
    assert_eq!(host.outcome(s), Outcome::Paused);
    host.advance(ms(100)).unwrap();
    assert_eq!(host.outcome(s), Outcome::Continue);

    let s = host.request(&[("x-pause", "1")], true).unwrap();
    assert_eq!(host.outcome(s), Outcome::Paused);
    host.advance(ms(100)).unwrap();
    assert_eq!(host.local_reply(s).map(|r| r.status), Some(401));
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

#[test]
fn request_body_is_buffered_readable_and_replaceable() {
    let mut host = started();
    let s = host.request(&[("x-a", "v")], false).unwrap();
    assert_eq!(host.send_body(s, b"hel", false).unwrap(), Outcome::Paused);
    assert_eq!(host.send_body(s, b"lo", true).unwrap(), Outcome::Continue);
    assert_eq!(host.logs_containing("hello").len(), 1);
    assert_eq!(host.request_body(s), b"ping");
}

#[test]
fn response_headers_come_back_modified() {
    let mut host = started();
    let s = host.request(&[("x-a", "v")], true).unwrap();
    let headers = host
        .response_headers(s, &[(":status", "200")], true)
        .unwrap();
    assert_eq!(proxy_wasm_harness::header(&headers, "x-resp"), Some("1"));
    host.finish(s).unwrap();
    assert!(host
        .response_headers(s, &[(":status", "200")], true)
        .is_err());
}

#[test]
fn properties_are_visible_to_streams() {
    let mut host = started();
    let without = host.request(&[("x-a", "v")], true).unwrap();
    host.set_property(&["xds", "route_name"], b"r1");
    let with = host.request(&[("x-a", "v")], true).unwrap();
    assert_eq!(host.request_header(without, "x-route"), None);
    assert_eq!(host.request_header(with, "x-route").as_deref(), Some("r1"));
}

#[test]
fn workers_share_data() {
    let mut a = started();
    let mut b = a.new_worker();
    assert!(b.start().unwrap());
    a.request(&[("x-a", "v"), ("x-shared", "from-a")], true)
        .unwrap();
    assert_eq!(b.shared_data("key").unwrap(), b"from-a");
}

#[test]
fn a_trap_is_an_error_and_kills_the_vm() {
    let mut host = started();
    let err = host.request(&[("x-trap", "1")], true).unwrap_err();
    assert!(
        format!("{err:#}").contains("proxy_on_request_headers trapped"),
        "{err:#}"
    );
    assert!(host.is_dead());
    let err = host.request(&[("x-a", "v")], true).unwrap_err();
    assert!(format!("{err:#}").contains("dead"), "{err:#}");
}

#[test]
fn undefined_imports_trap_when_called() {
    let mut host = started();
    let err = host.request(&[("x-grpc", "1")], true).unwrap_err();
    assert!(format!("{err:#}").contains("proxy_grpc_call"), "{err:#}");
}

#[test]
fn byte_headers_reach_the_module_unchanged() {
    let mut host = started();
    let value: &[u8] = b"\xff\xfe k\x80\xc3(";
    let s = host
        .request_bytes(
            &[
                (b":path".as_slice(), b"/a\xff?q=\xfe".as_slice()),
                (b"X-A", value),
                (b"X-\xe9t\xff", b"\x01\x7f"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(host.outcome(s), Outcome::Continue);
    // `x-b := x-a` went through proxy_get_header_map_value and proxy_replace_header_map_value.
    assert_eq!(host.request_header_bytes(s, b"x-b").as_deref(), Some(value));
    assert_eq!(
        host.request_header_bytes(s, b":path").as_deref(),
        Some(b"/a\xff?q=\xfe".as_slice())
    );
    // Names are lower-cased for ASCII letters only, like Envoy's codecs.
    assert_eq!(
        host.request_header_bytes(s, b"x-\xe9t\xff").as_deref(),
        Some(b"\x01\x7f".as_slice())
    );
    // The text view is lossy, never an error.
    assert_eq!(
        host.request_header(s, "x-b").as_deref(),
        Some("\u{fffd}\u{fffd} k\u{fffd}\u{fffd}(")
    );
    assert!(!host.is_dead());
}

#[test]
fn a_dead_vm_says_why_and_keeps_what_the_module_printed() {
    let mut host = started();
    assert!(host.dead_reason().is_none());
    host.request(&[("x-trap", "1")], true).unwrap_err();
    assert!(host.is_dead());
    let reason = host.dead_reason().unwrap();
    assert!(
        reason.contains("proxy_on_request_headers trapped"),
        "{reason}"
    );
    assert!(reason.contains("boom"), "{reason}");
    assert!(host.panic_output().contains("boom"));
}
