//! The filter configuration on any bytes: parse and compile (what `on_configure` does with
//! Envoy's `configuration`), with `$env://` lookups answering from the input too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
