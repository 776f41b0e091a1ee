//! secret-sidecar: resolves `$secret://` references for the Envoy filter and is the only
//! component holding provider credentials. See docs/DESIGN.md, section 2.

pub mod api;
pub mod cache;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod limit;
pub mod metrics;
pub mod providers;
pub mod resolve;
pub mod server;

use std::future::Future;
use std::sync::Arc;

use axum::Router;

pub use api::AppState;
pub use server::Listener;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::{Config, ProviderKind, ServerConfig};
use crate::providers::aws::AwsProvider;
use crate::providers::vault::{VaultProvider, VaultSetupError};
use crate::resolve::Resolver;

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

/// A resolver over the configured providers, with a cache timed by `clock`. Vault providers
/// start their token renewal task on the current Tokio runtime.
pub async fn build_resolver(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Resolver, ProviderSetupError> {
    let mut resolver = Resolver::new(Cache::new(config.cache, clock));
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
        resolver.add_provider(&p.id, p.kind.manager(), provider);
    }
    Ok(resolver)
}
