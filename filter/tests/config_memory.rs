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

/// A budget (host, 64-bit): before the work of issue #9 the parsed configuration kept 804 bytes
/// per consumer (serde's spare list capacity) and compiling peaked at 1,158.
#[test]
fn a_large_config_stays_within_its_memory_budget() {
    let n = 10_000;
    let consumers: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"username": format!("consumer-{i}"), "credentials": [{
                "id": format!("consumer-{i}-key-auth"), "type": "key-auth",
                "key": format!("$secret://aws/bench/bench-keys/consumer-{i}")}]})
        })
        .collect();
    let bytes = serde_json::json!({
        "sidecar": {"cluster": "c", "token": "$env://T"},
        "consumers": consumers, "plugins": {"key-auth": {}}})
    .to_string()
    .into_bytes();
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
        compile_peak <= 900,
        "compiling peaks at {compile_peak} B per consumer"
    );
}
