//! The checked-in corpus of the `wasm_requests` fuzz target (fuzz/corpus/wasm_requests: seeds
//! and inputs that once failed), replayed with that target's own checks on the real `.wasm` on
//! every `cargo test`: the VM never dies, every request ends continued or answered 4xx/5xx, the
//! identity headers reaching the upstream are the filter's, no callout, memory bounded.
//! (`scripts/fuzz.sh` mutates these inputs; this only replays them, without cargo-fuzz.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "../../../fuzz/src/format.rs"]
#[allow(dead_code)]
mod format;
#[path = "../../../fuzz/src/wasm_check.rs"]
mod wasm_check;

use std::path::Path;

#[test]
fn the_wasm_requests_corpus_passes_on_one_vm() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wasm_requests");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "only {} inputs in {}",
        inputs.len(),
        dir.display()
    );
    // One VM for all, as a worker serves every request (and as the fuzz target runs them).
    let mut host = wasm_check::new_host();
    for input in &inputs {
        let request = format::parse_request(&std::fs::read(input).unwrap());
        if let Err(e) = wasm_check::run(&mut host, &request) {
            panic!(
                "{}: {e}\nVM dead: {:?}",
                input.display(),
                host.dead_reason()
            );
        }
    }
}
