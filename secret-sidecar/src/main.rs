//! The binary: arguments, logging, signals. Everything else is in the library.

use std::process::ExitCode;
use std::sync::Arc;

use secret_sidecar::cli::{self, Command, UsageError, USAGE};
use secret_sidecar::clock::SystemClock;
use secret_sidecar::config::{process_env, Config, Listen};
use secret_sidecar::{build_resolver, check, run, AppState, Listener};
use tracing_subscriber::EnvFilter;

/// How often providers that have not answered yet are asked again (the cache lets a listing
/// through at most once per TTL).
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let command = match args
        .map_err(|_| UsageError::NotUnicode)
        .and_then(cli::parse_args)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("secret-sidecar: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let default_log = match command {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("secret-sidecar {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Serve { .. } => "info,aws_config=warn,aws_smithy_runtime=warn",
        Command::Check { .. } => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("secret-sidecar: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match command {
            Command::Serve { config, listen } => serve(&config, listen).await,
            Command::Check { config, refs } => run_check(&config, &refs).await,
            Command::Help | Command::Version => ExitCode::SUCCESS,
        }
    })
}

async fn serve(config_path: &std::path::Path, listen: Option<Listen>) -> ExitCode {
    let config = match Config::load(config_path, &process_env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("secret-sidecar: {}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    let token = match config.token.load(&process_env) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("secret-sidecar: {}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    let resolver = match build_resolver(&config, Arc::new(SystemClock)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("secret-sidecar: {}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    let listen = listen.unwrap_or_else(|| config.listen.clone());
    let listener = match Listener::bind(&listen, config.server.socket_mode).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("secret-sidecar: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.describe();
    let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
    tracing::info!(listen = %local, providers = ?ids, "secret-sidecar listening");
    let state = AppState::new(token, resolver, config.limit.clone());
    // readiness without waiting for the first request: list each provider's names
    let probe = state.clone();
    tokio::spawn(async move { probe.probe_until_ready(PROBE_EVERY).await });
    match run(listener, state, config.server, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("secret-sidecar stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("secret-sidecar: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_check(config_path: &std::path::Path, refs: &[String]) -> ExitCode {
    let config = match Config::load(config_path, &process_env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
    eprintln!(
        "{}: ok (providers: {})",
        config_path.display(),
        ids.join(", ")
    );
    let resolver = match build_resolver(&config, Arc::new(SystemClock)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    match check::check(&resolver, refs, &mut stdout).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("secret-sidecar: cannot write the report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
