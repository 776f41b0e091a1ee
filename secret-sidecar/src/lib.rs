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

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use api::AppState;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::{Config, ProviderKind};
use crate::providers::aws::AwsProvider;
use crate::resolve::Resolver;

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then drains open requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
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
