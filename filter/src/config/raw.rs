//! The configuration as written by the operator: strict serde types, no validation beyond shape.

use serde::Deserialize;
use std::collections::BTreeMap;

fn default_refresh_interval_s() -> u64 {
    30
}
fn default_startup_wait_ms() -> u64 {
    5000
}
fn default_authority() -> String {
    "secret-sidecar".to_string()
}
fn default_timeout_ms() -> u64 {
    10000
}
fn default_resolve_path() -> String {
    "/v1/resolve".to_string()
}
fn default_apikey() -> String {
    "apikey".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub sidecar: Option<RawSidecar>,
    #[serde(default = "default_refresh_interval_s")]
    pub refresh_interval_s: u64,
    #[serde(default = "default_startup_wait_ms")]
    pub startup_wait_ms: u64,
    #[serde(default)]
    pub consumers: Vec<RawConsumer>,
    #[serde(default)]
    pub plugins: RawPluginSet,
    #[serde(default)]
    pub routes: BTreeMap<String, RawPluginSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSidecar {
    pub cluster: String,
    #[serde(default = "default_authority")]
    pub authority: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    pub token: String,
    #[serde(default = "default_resolve_path")]
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub username: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: Vec<RawCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawCredential {
    KeyAuth { id: String, key: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginSet {
    #[serde(rename = "key-auth")]
    pub key_auth: Option<RawKeyAuth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyAuth {
    #[serde(default = "default_apikey")]
    pub header: String,
    #[serde(default = "default_apikey")]
    pub query: String,
    #[serde(default)]
    pub hide_credentials: bool,
}
