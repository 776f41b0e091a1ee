//! secret-sidecar: resolves `$secret://` references for the Envoy filter and is the only
//! component holding provider credentials. See docs/DESIGN.md, section 2.

pub mod api;
pub mod cache;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod limit;
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

/// A resolver over the configured providers, with a cache timed by `clock`.
pub async fn build_resolver(config: &Config, clock: Arc<dyn Clock>) -> Resolver {
    let mut resolver = Resolver::new(Cache::new(config.cache, clock));
    for p in &config.providers {
        match &p.kind {
            ProviderKind::Aws(aws) => {
                let provider = AwsProvider::new(aws).await;
                resolver.add_provider(&p.id, p.kind.manager(), Arc::new(provider));
            }
        }
    }
    resolver
}
