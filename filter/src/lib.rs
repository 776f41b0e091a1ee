//! envoy-secret-auth filter: consumer authentication for Envoy with credentials referenced from
//! secret managers. Everything but `glue` is plain Rust that builds and tests on the host.

pub mod auth;
pub mod config;
pub mod http;
pub mod json;
pub mod limit;
pub mod metrics;
pub mod request;
pub mod secrets;
pub mod throttle;
pub mod worker;

#[cfg(target_arch = "wasm32")]
mod glue;
