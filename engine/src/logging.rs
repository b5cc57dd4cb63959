//! Operator logs (DESIGN §9) through `tracing`: readable text on stderr by default, one JSON
//! object per line with `--log-format json` for log shippers. `RUST_LOG` filters work
//! (`RUST_LOG=patchday=debug,sqlx=warn`); without it, `info` and above are shown.
//!
//! Lines about a run are emitted inside spans that carry `runbook` and `run_id` (and, for an
//! attempt, `step_id` and `host`), so every line a run causes can be found by those fields.
//! Logs are for operators; the audit log is the record of what happened. Secrets are redacted
//! before anything reaches a log line, as for the audit log.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-08T10:00:00.123Z  INFO run{runbook=monthly run_id=...}: message`.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields.message`, `spans`.
    Json,
}

/// The filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info";

/// Installs the process-wide subscriber writing to stderr. A second call does nothing (the
/// first subscriber stays), so tests may call it freely.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}
