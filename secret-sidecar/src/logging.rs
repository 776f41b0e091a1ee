//! Logging to stderr: tracing's text format, or one JSON object per line
//! (`[log] format = "json"` / `--log-format json`):
//! `{"timestamp":"2026-12-03T17:00:00.123456Z","level":"INFO","target":"secret_sidecar::resolve","message":"resolve batch","refs":3,...}`.
//!
//! The JSON is written by a small [`Layer`] (no extra dependency): the event's fields become
//! keys (numbers and booleans as such, everything else as strings). What is logged is the same
//! in both formats, and never holds a secret value or the token.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Installs the global subscriber: `RUST_LOG` if set, else `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            // Colour codes only on a terminal, not in log files.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter)
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(JsonLayer::new(Arc::new(Mutex::new(std::io::stderr()))))
            .init(),
    }
}

/// Writes each event as one JSON line to its writer.
pub struct JsonLayer<W> {
    out: Arc<Mutex<W>>,
}

impl<W> JsonLayer<W> {
    pub fn new(out: Arc<Mutex<W>>) -> Self {
        JsonLayer { out }
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber,
    W: Write + Send + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = Map::new();
        let mut timestamp = String::new();
        if SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_ok()
        {
            line.insert("timestamp".into(), Value::String(timestamp));
        }
        let meta = event.metadata();
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        event.record(&mut JsonFields(&mut line));
        let Ok(mut text) = serde_json::to_string(&Value::Object(line)) else {
            return;
        };
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // (nowhere to report a failed log write)
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_are_json_lines_with_their_fields() {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(refs = 3, stale = false, provider = "p", "resolve batch");
            tracing::warn!(error = %"a \"quoted\"\nline", "provider call failed");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "resolve batch");
        assert_eq!(lines[0]["refs"], 3);
        assert_eq!(lines[0]["stale"], false);
        assert_eq!(lines[0]["provider"], "p");
        assert!(
            lines[0]["target"]
                .as_str()
                .unwrap()
                .starts_with("secret_sidecar"),
            "{text}"
        );
        assert!(
            lines[0]["timestamp"].as_str().unwrap().ends_with('Z'),
            "{text}"
        );
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["error"], "a \"quoted\"\nline");
    }
}
