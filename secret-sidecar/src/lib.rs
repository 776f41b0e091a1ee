//! secret-sidecar: resolves `$secret://` references for the Envoy filter and is the only
//! component holding provider credentials. See docs/DESIGN.md, section 2.

pub mod api;
pub mod cache;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod envoy_check;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod providers;
pub mod resolve;
pub mod server;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use axum::Router;

pub use api::AppState;
pub use server::Listener;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::{process_env, Config, ConfigError, ProviderKind, ServerConfig};
use crate::providers::aws::AwsProvider;
use crate::providers::vault::{VaultProvider, VaultSetupError};
use crate::resolve::Resolver;
use secret_ref::Manager;

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Serves `state` on `listener` with the connection limits of `server` until `shutdown`
/// completes, then drains open requests.
pub async fn run(
    listener: impl Into<Listener>,
    state: AppState,
    server: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener.into(), app(state), server, shutdown).await
}

/// Why a configured provider could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("provider {id:?}: {error}")]
pub struct ProviderSetupError {
    pub id: String,
    #[source]
    pub error: VaultSetupError,
}

/// The configured providers, set up (not yet registered with a resolver). Vault providers
/// start their token renewal task on the current Tokio runtime (it ends when the provider is
/// dropped).
pub async fn build_providers(
    config: &Config,
) -> Result<Vec<(String, Manager, Arc<dyn providers::Provider>)>, ProviderSetupError> {
    let mut out = Vec::with_capacity(config.providers.len());
    for p in &config.providers {
        let provider: Arc<dyn providers::Provider> = match &p.kind {
            ProviderKind::Aws(aws) => Arc::new(AwsProvider::new(aws).await),
            ProviderKind::Vault(vault) => Arc::new(VaultProvider::new(&p.id, vault).map_err(
                |error| ProviderSetupError {
                    id: p.id.clone(),
                    error,
                },
            )?),
        };
        out.push((p.id.clone(), p.kind.manager(), provider));
    }
    Ok(out)
}

/// A resolver over the configured providers, with a cache timed by `clock`.
pub async fn build_resolver(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Resolver, ProviderSetupError> {
    let mut resolver = Resolver::new(Cache::new(config.cache, clock));
    for (id, manager, provider) in build_providers(config).await? {
        resolver.add_provider(&id, manager, provider);
    }
    Ok(resolver)
}

/// Why a configuration reload was refused (the running configuration stays in force).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Provider(#[from] ProviderSetupError),
}

/// Reads the config file at `path` again (SIGHUP) and applies it to `state`: token, providers,
/// cache TTLs and Redis backends, keeping the cache. `listen`, `[server]` and `[log]` are
/// read but need a restart; the caller compares them. A bad file changes nothing. Counted in
/// the metrics either way.
pub async fn reload(state: &AppState, path: &Path) -> Result<Config, ReloadError> {
    let result = async {
        let (config, token) = {
            let config = Config::load(path, &process_env)?;
            let token = config.token.load(&process_env)?;
            (config, token)
        };
        let providers = build_providers(&config).await?;
        state.reconfigure(token, providers, config.cache, config.limit.clone());
        Ok(config)
    }
    .await;
    state
        .metrics()
        .reload(if result.is_ok() { "ok" } else { "error" });
    result
}
