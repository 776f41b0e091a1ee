//! Memory per consumer (issue #9): a VM with 10,000 key-auth consumers, each key behind its own
//! reference into one secret, as the benchmark's `wasm-10000` has them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use serde_json::{json, Value};
use support::*;

fn config(n: usize) -> Value {
    let consumers: Vec<Value> = (0..n)
        .map(|i| {
            json!({"username": format!("consumer-{i}"), "credentials": [{
                "id": format!("consumer-{i}-key-auth"), "type": "key-auth",
                "key": format!("$secret://aws/bench/bench-keys/consumer-{i}")}]})
        })
        .collect();
    json!({"sidecar": sidecar(), "consumers": consumers, "plugins": {"key-auth": {}}})
}

fn memory_after_first_answer(n: usize) -> (usize, usize) {
    let mut host = started(&config(n));
    let configured = host.memory_bytes();
    let call = one_callout(&mut host, FIRST_FETCH);
    let keys: Vec<(String, String)> = refs_of(&call)
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r, format!("key-{i:032}")))
        .collect();
    let values: Vec<(&str, &str)> = keys.iter().map(|(r, k)| (r.as_str(), k.as_str())).collect();
    answer(&mut host, &call, &values, &[]);
    let s = get(&mut host, "/ip", &[("apikey", &keys[n / 2].1)]);
    assert_forwarded_as(
        &host,
        s,
        &format!("consumer-{}", n / 2),
        &format!("consumer-{}-key-auth", n / 2),
    );
    (configured, host.memory_bytes())
}

fn configured_memory(config: &Value) -> usize {
    started(config).memory_bytes()
}

#[test]
#[ignore]
fn memory_probe() {
    let n = 10_000;
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"username": format!("consumer-{i}")}))
        .collect();
    let plain: Vec<Value> = (0..n)
        .map(|i| {
            json!({"username": format!("consumer-{i}"), "credentials": [{
                "id": format!("consumer-{i}-key-auth"), "type": "key-auth",
                "key": format!("key-{i:032}")}]})
        })
        .collect();
    let base = json!({"sidecar": sidecar(), "consumers": [], "plugins": {"key-auth": {}}});
    let mut u = base.clone();
    u["consumers"] = Value::Array(users);
    let mut p = base.clone();
    p["consumers"] = Value::Array(plain);
    println!("empty: {}", configured_memory(&base));
    println!(
        "users only: {} (json {} bytes)",
        configured_memory(&u),
        u.to_string().len()
    );
    println!(
        "plain keys: {} (json {} bytes)",
        configured_memory(&p),
        p.to_string().len()
    );
    println!(
        "refs: {} (json {} bytes)",
        configured_memory(&config(n)),
        config(n).to_string().len()
    );
}

/// A budget, not a measurement: a VM keeps its peak, and Envoy runs several VMs of the plugin.
/// Before the memory work of issue #9 this was 1,127 bytes per consumer once configured; 773
/// and 1,055 after the first answer in session 4, 517 and 576 in session 6 (the sidecar's
/// answer read in pieces). A change that
/// brings spare capacity or copies back fails here.
#[test]
fn memory_per_consumer_stays_within_budget() {
    let (c1, a1) = memory_after_first_answer(1);
    let (cn, an) = memory_after_first_answer(10_000);
    let configured = (cn - c1) / 10_000;
    let answered = (an - a1) / 10_000;
    println!("per consumer: {configured} bytes configured, {answered} after the first answer");
    assert!(
        configured <= 600,
        "{configured} bytes per consumer once configured"
    );
    assert!(
        answered <= 650,
        "{answered} bytes per consumer after the first answer"
    );
}
