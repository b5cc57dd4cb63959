//! Operator logs (DESIGN §9) through `tracing`: readable text on stderr by default, one JSON
//! object per line with `--log-format json` for log shippers. `RUST_LOG` filters work
//! (`RUST_LOG=patchday=debug,sqlx=warn`); without it, `info` and above are shown.
//!
//! Lines about a run are emitted inside spans that carry `runbook` and `run_id` (and, for an
//! attempt, `step_id` and `host`), so every line a run causes can be found by those fields.
//! Logs are for operators; the audit log is the record of what happened. Secrets are redacted
//! before anything reaches a log line, as for the audit log.
//!
//! Writing a log line never fails and never panics: when stderr is gone (a closed pipe after
//! `patchday serve 2>&1 | tee log` lost its reader, a full disk) the line is dropped, and the
//! subscriber's own error reports are off. Shutdown must not depend on being able to say so.

use std::io::{self, Write};

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
        .with_writer(|| LossyStderr)
        .log_internal_errors(false)
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

/// Standard error that drops what it cannot write instead of failing.
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_reports_success_whatever_stderr_does() {
        let mut writer = LossyStderr;
        assert_eq!(writer.write(b"a log line\n").unwrap(), 11);
        writer.flush().unwrap();
    }
}
