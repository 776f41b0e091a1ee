//! Command-line parsing (no flags beyond docs/DESIGN.md's, plus `--listen` for tests).

use std::path::PathBuf;

use crate::config::{Listen, LogFormat};

pub const USAGE: &str = "\
usage:
  secret-sidecar --config sidecar.toml [--listen 127.0.0.1:7070 | --listen unix:/path/sidecar.sock]
                 [--log-format text|json]
      run the service (SIGTERM: stop after open requests; SIGHUP: reload the config file)
  secret-sidecar check --config sidecar.toml [--envoy envoy.yaml] [REF...]
      validate the config and resolve each reference once (prints ok / stale / the error,
      never the value); with --envoy, every reference of every instance of the filter in that
      Envoy config (YAML or JSON, or a bare filter JSON file), after running the filter's own
      config parser on it; exits 1 if anything failed
  secret-sidecar --help | --version

The bearer token is read from the environment variable named by token_env
(default SECRET_SIDECAR_TOKEN) or from token_file. RUST_LOG sets the log level.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve {
        config: PathBuf,
        listen: Option<Listen>,
        /// Overrides the config's `[log] format`.
        log_format: Option<LogFormat>,
    },
    Check {
        config: PathBuf,
        /// An Envoy config (or bare filter config) whose references are checked.
        envoy: Option<PathBuf>,
        refs: Vec<String>,
    },
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("--config is required")]
    MissingConfig,
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    #[error("--listen: {0:?} is not an IP address and port (e.g. 127.0.0.1:7070) or unix:/absolute/path")]
    BadListen(String),
    #[error("--log-format: {0:?} is not \"text\" or \"json\"")]
    BadLogFormat(String),
    #[error("unknown argument {0:?}")]
    UnknownArgument(String),
    #[error("{0} given twice")]
    Repeated(&'static str),
    #[error("arguments must be valid UTF-8")]
    NotUnicode,
}

/// Parses the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().peekable();
    let check = args.peek().is_some_and(|a| a == "check");
    if check {
        args.next();
    }
    let mut config: Option<PathBuf> = None;
    let mut listen: Option<Listen> = None;
    let mut log_format: Option<LogFormat> = None;
    let mut envoy: Option<PathBuf> = None;
    let mut refs = Vec::new();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--config" => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or(UsageError::MissingValue("--config"))?;
                if config.replace(PathBuf::from(value)).is_some() {
                    return Err(UsageError::Repeated("--config"));
                }
            }
            "--listen" if !check => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or(UsageError::MissingValue("--listen"))?;
                let addr = Listen::parse(&value).map_err(|_| UsageError::BadListen(value))?;
                if listen.replace(addr).is_some() {
                    return Err(UsageError::Repeated("--listen"));
                }
            }
            "--envoy" if check => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or(UsageError::MissingValue("--envoy"))?;
                if envoy.replace(PathBuf::from(value)).is_some() {
                    return Err(UsageError::Repeated("--envoy"));
                }
            }
            "--log-format" if !check => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or(UsageError::MissingValue("--log-format"))?;
                let format =
                    LogFormat::parse(&value).map_err(|_| UsageError::BadLogFormat(value))?;
                if log_format.replace(format).is_some() {
                    return Err(UsageError::Repeated("--log-format"));
                }
            }
            _ if check && !arg.starts_with('-') => refs.push(arg),
            _ => return Err(UsageError::UnknownArgument(arg)),
        }
    }
    let config = config.ok_or(UsageError::MissingConfig)?;
    Ok(if check {
        Command::Check {
            config,
            envoy,
            refs,
        }
    } else {
        Command::Serve {
            config,
            listen,
            log_format,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse(&["--config", "s.toml"]),
            Ok(Command::Serve {
                config: "s.toml".into(),
                listen: None,
                log_format: None,
            })
        );
        assert_eq!(
            parse(&["--listen=127.0.0.1:0", "--config=s.toml"]),
            Ok(Command::Serve {
                config: "s.toml".into(),
                listen: Some(Listen::Tcp("127.0.0.1:0".parse().unwrap())),
                log_format: None,
            })
        );
        assert_eq!(
            parse(&["--config", "s.toml", "--log-format", "json"]),
            Ok(Command::Serve {
                config: "s.toml".into(),
                listen: None,
                log_format: Some(LogFormat::Json),
            })
        );
        assert_eq!(
            parse(&[
                "check",
                "--config",
                "s.toml",
                "$secret://aws/p/s/k",
                "$secret://aws/p/t"
            ]),
            Ok(Command::Check {
                config: "s.toml".into(),
                envoy: None,
                refs: vec!["$secret://aws/p/s/k".into(), "$secret://aws/p/t".into()]
            })
        );
        assert_eq!(
            parse(&["check", "--config", "s.toml"]),
            Ok(Command::Check {
                config: "s.toml".into(),
                envoy: None,
                refs: vec![]
            })
        );
        assert_eq!(
            parse(&["check", "--envoy", "envoy.yaml", "--config=s.toml"]),
            Ok(Command::Check {
                config: "s.toml".into(),
                envoy: Some("envoy.yaml".into()),
                refs: vec![]
            })
        );
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["--version"]), Ok(Command::Version));
    }

    #[test]
    fn usage_errors() {
        let cases: [(&[&str], UsageError); 10] = [
            (&[], UsageError::MissingConfig),
            (&["check"], UsageError::MissingConfig),
            (&["--config"], UsageError::MissingValue("--config")),
            (
                &["--config", "a", "--listen", "nope"],
                UsageError::BadListen("nope".into()),
            ),
            (
                &["--config", "a", "extra"],
                UsageError::UnknownArgument("extra".into()),
            ),
            (
                &["check", "--config", "a", "--listen", "127.0.0.1:1"],
                UsageError::UnknownArgument("--listen".into()),
            ),
            (
                &["--config", "a", "--config", "b"],
                UsageError::Repeated("--config"),
            ),
            (
                &["--config", "a", "--envoy", "e.yaml"],
                UsageError::UnknownArgument("--envoy".into()),
            ),
            (
                &["check", "--config", "a", "--envoy"],
                UsageError::MissingValue("--envoy"),
            ),
            (
                &["--config", "a", "--log-format=yaml"],
                UsageError::BadLogFormat("yaml".into()),
            ),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args), Err(want), "{args:?}");
        }
    }
}
