//! The filter configuration on any bytes: parse and compile (what `on_configure` does with
//! Envoy's `configuration`), with `$env://` lookups answering from the input too; and the
//! hand-written reader (`raw_config::parse`) against serde's derives, which it replaced: the same
//! configuration or the same error (`raw_config::oracle`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(d) = raw_config::oracle::disagreement(data) {
        panic!("{d}");
    }
    // An environment that has every variable, with a JSON object value, so `$env://NAME/key`
    // paths are compiled as well.
    let env = |name: &str| (name.len() % 2 == 0).then(|| format!(r#"{{"{name}":"v"}}"#));
    match envoy_secret_auth_filter::config::compile(data, &env) {
        Ok(compiled) => {
            let _ = format!("{compiled:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = envoy_secret_auth_filter::config::compile(data, &|_| None);
});
