//! The binary: arguments, logging, signals. Everything else is in the library.
//!
//! Signals while serving: SIGTERM / Ctrl-C stop accepting, let open requests finish (at most
//! 10 s) and exit 0; SIGHUP reloads the config file (token, providers, cache TTLs, Redis
//! backends; the cache is kept; a bad file is logged and the running config kept).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use secret_sidecar::cli::{self, Command, UsageError, USAGE};
use secret_sidecar::clock::SystemClock;
use secret_sidecar::config::{process_env, Config, Listen, LogFormat};
use secret_sidecar::{
    build_resolver, check, envoy_check, logging, reload, run, AppState, Listener,
};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How often providers that have not answered yet are asked again (the cache lets a listing
/// through at most once per TTL).
const PROBE_EVERY: Duration = Duration::from_secs(5);

const SERVE_LOG: &str = "info,aws_config=warn,aws_smithy_runtime=warn";

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
    match command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("secret-sidecar {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Serve {
            config: path,
            listen,
            log_format,
        } => {
            // the config first: it says how to log
            let config = match Config::load(&path, &process_env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("secret-sidecar: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            };
            logging::init(log_format.unwrap_or(config.log_format), SERVE_LOG);
            with_runtime(serve(path, config, listen))
        }
        Command::Check {
            config,
            envoy,
            refs,
        } => {
            logging::init(LogFormat::Text, "warn");
            with_runtime(run_check(config, envoy, refs))
        }
    }
}

fn with_runtime(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("secret-sidecar: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_path: PathBuf, config: Config, listen: Option<Listen>) -> ExitCode {
    let token = match config.token.load(&process_env) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("secret-sidecar: {}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    // before listening: a SIGHUP once the port is open must not kill the process
    let (hangup, terminate) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(h), Ok(t)) => (h, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("secret-sidecar: cannot listen for signals: {e}");
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
    let probe = spawn_probe(&state);
    let server = config.server;
    tokio::spawn(reload_on_hangup(
        hangup,
        config_path,
        state.clone(),
        config,
        probe,
    ));
    match run(listener, state, server, shutdown_signal(terminate)).await {
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

/// Asks the providers not reached yet for their names until each has answered (readiness).
fn spawn_probe(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move { state.probe_until_ready(PROBE_EVERY).await })
}

/// Reloads the config file on each SIGHUP. `listen`, `[server]` and `[log]` changes are
/// reported as needing a restart. New providers are probed for readiness (`probe`: the probe
/// running, if any; one at a time).
async fn reload_on_hangup(
    mut hangup: Signal,
    path: PathBuf,
    state: AppState,
    running: Config,
    mut probe: tokio::task::JoinHandle<()>,
) {
    while hangup.recv().await.is_some() {
        match reload(&state, &path).await {
            Ok(new) => {
                if probe.is_finished() {
                    probe = spawn_probe(&state);
                }
                let restart: Vec<&str> = [
                    ("listen", new.listen != running.listen),
                    ("server", new.server != running.server),
                    ("log", new.log_format != running.log_format),
                ]
                .iter()
                .filter(|(_, changed)| *changed)
                .map(|(name, _)| *name)
                .collect();
                tracing::info!(
                    providers = ?state.provider_ids(),
                    needs_restart = ?restart,
                    "config reloaded (cache kept)"
                );
            }
            Err(e) => tracing::error!(
                config = %path.display(),
                error = %e,
                "config reload failed: the running config stays in force"
            ),
        }
    }
}

async fn run_check(config_path: PathBuf, envoy: Option<PathBuf>, refs: Vec<String>) -> ExitCode {
    let config_path: &Path = &config_path;
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
    let mut all_ok = true;
    if let Some(envoy) = envoy {
        let instances = match envoy_check::load(&envoy) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let mut stderr = std::io::stderr();
        match envoy_check::check(&resolver, &instances, &mut stdout, &mut stderr).await {
            Ok(ok) => all_ok &= ok,
            Err(e) => {
                eprintln!("secret-sidecar: cannot write the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if !refs.is_empty() {
        match check::check(&resolver, &refs, &mut stdout).await {
            Ok(ok) => all_ok &= ok,
            Err(e) => {
                eprintln!("secret-sidecar: cannot write the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal(mut terminate: Signal) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: no new connections, open requests finish");
}
