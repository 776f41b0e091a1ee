//! Where a large configuration's memory goes (issue #9: Envoy memory per consumer). In the VM,
//! linear memory never shrinks: the peak of configuring is what each VM keeps. Counted here with
//! a counting allocator, on the host, for 10,000 key-auth consumers with referenced keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn reset_peak() -> usize {
    let now = NOW.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The benchmark's `wasm-N` configuration: `n` key-auth consumers, each key its own reference.
fn bench_config(n: usize) -> Vec<u8> {
    let consumers: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"username": format!("consumer-{i}"), "credentials": [{
                "id": format!("consumer-{i}-key-auth"), "type": "key-auth",
                "key": format!("$secret://aws/bench/bench-keys/consumer-{i}")}]})
        })
        .collect();
    serde_json::json!({
        "sidecar": {"cluster": "c", "token": "$env://T"},
        "consumers": consumers, "plugins": {"key-auth": {}}})
    .to_string()
    .into_bytes()
}

/// A budget (host, 64-bit): before the work of issue #9 the parsed configuration kept 804 bytes
/// per consumer (serde's spare list capacity) and compiling peaked at 1,158; 447 and 776 in
/// session 4, 278 and 588 in session 6.
#[test]
fn a_large_config_stays_within_its_memory_budget() {
    let n = 10_000;
    let bytes = bench_config(n);
    let base = reset_peak();
    let raw: envoy_secret_auth_filter::config::raw::RawConfig =
        serde_json::from_slice(&bytes).unwrap();
    let after_parse = NOW.load(Ordering::Relaxed);
    println!(
        "json {} B/consumer; RawConfig kept {} B/consumer, parse peak {} B/consumer",
        bytes.len() / n,
        (after_parse - base) / n,
        (PEAK.load(Ordering::Relaxed) - base) / n
    );
    let raw_kept = (after_parse - base) / n;
    drop(raw);
    let base = reset_peak();
    let compiled =
        envoy_secret_auth_filter::config::compile(&bytes, &|_| Some("t".into())).unwrap();
    let after = NOW.load(Ordering::Relaxed);
    println!(
        "compile: kept {} B/consumer, peak {} B/consumer",
        (after - base) / n,
        (PEAK.load(Ordering::Relaxed) - base) / n
    );
    let compile_peak = (PEAK.load(Ordering::Relaxed) - base) / n;
    drop(compiled);
    assert!(raw_kept <= 450, "RawConfig keeps {raw_kept} B per consumer");
    assert!(
        compile_peak <= 650,
        "compiling peaks at {compile_peak} B per consumer"
    );
}

struct QuietHost {
    calls: Vec<Vec<u8>>,
}

impl envoy_secret_auth_filter::worker::Host for QuietHost {
    fn now_ms(&self) -> u64 {
        1_000
    }
    fn log(&self, _level: envoy_secret_auth_filter::worker::Level, _message: &str) {}
    fn dispatch(
        &mut self,
        _sidecar: &envoy_secret_auth_filter::config::Sidecar,
        _path: &str,
        body: Vec<u8>,
    ) -> Result<u32, envoy_secret_auth_filter::http::callout::DispatchError> {
        self.calls.push(body);
        Ok(u32::try_from(self.calls.len()).unwrap())
    }
}

/// Live bytes per consumer at each step of a VM's life (configure, first fetch, first answer):
/// what a VM's memory high-water mark is made of. `--ignored --nocapture` prints it.
#[test]
#[ignore]
fn lifecycle_memory_probe() {
    let n = 10_000;
    let bytes = bench_config(n);
    // Counted from before the JSON: it is part of a VM's peak.
    let base = reset_peak() - bytes.capacity();
    PEAK.store(NOW.load(Ordering::Relaxed), Ordering::Relaxed);
    let per = |x: usize| x.saturating_sub(base) / n;
    // Each step's own peak: the probe's own work between steps is not counted.
    let step = |name: &str| {
        println!(
            "{name:<28} live {:>5} B/consumer, peak in this step {:>5}",
            per(NOW.load(Ordering::Relaxed)),
            per(PEAK.load(Ordering::Relaxed))
        );
    };
    // As the VM does it: the JSON goes once parsed.
    let raw = envoy_secret_auth_filter::config::parse(&bytes).unwrap();
    drop(bytes);
    let compiled =
        envoy_secret_auth_filter::config::compile_raw(raw, &|_| Some("t".into())).unwrap();
    step("compiled (JSON dropped)");
    let mut host = QuietHost { calls: Vec::new() };
    reset_peak();
    let mut worker = envoy_secret_auth_filter::worker::Worker::new(compiled, &mut host);
    step("worker");
    reset_peak();
    worker.on_tick(&mut host);
    step("fetch dispatched");
    let request: serde_json::Value = serde_json::from_slice(&host.calls[0]).unwrap();
    let results: Vec<serde_json::Value> = request["refs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(
            |(i, r)| serde_json::json!({"ref": r, "value": format!("key-{i:032}"), "stale": false}),
        )
        .collect();
    let answer = serde_json::json!({ "results": results })
        .to_string()
        .into_bytes();
    drop((request, results));
    host.calls.clear();
    host.calls.shrink_to_fit();
    reset_peak();
    step("answer body in memory");
    worker.on_answer(&mut host, 1, Some("200"), &answer[..]);
    step("answered");
    drop(answer);
    step("answer body dropped");
}
