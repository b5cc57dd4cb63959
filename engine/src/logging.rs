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
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::clock::Clock;

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

/// Installs the process-wide subscriber writing to stderr, its lines stamped with `clock`'s
/// time (the engine's: under `--now` or `--virtual-clock` the logs agree with the audit log and
/// the emails). A second call does nothing (the first subscriber stays), so tests may call it
/// freely.
pub fn init(format: LogFormat, clock: Arc<dyn Clock>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_timer(ClockTime(clock))
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

/// The engine clock's time, RFC 3339 in UTC with milliseconds.
struct ClockTime(Arc<dyn Clock>);

impl FormatTime for ClockTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = self.0.now();
        write!(
            w,
            "{}",
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }
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
    fn lines_carry_the_engine_clocks_time() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-08T09:59:00Z").unwrap();
        let clock = Arc::new(crate::clock::ManualClock::new(at.to_utc()));
        let mut text = String::new();
        ClockTime(clock)
            .format_time(&mut Writer::new(&mut text))
            .unwrap();
        assert_eq!(text, "2026-12-08T09:59:00.000Z");
    }

    #[test]
    fn the_writer_reports_success_whatever_stderr_does() {
        let mut writer = LossyStderr;
        assert_eq!(writer.write(b"a log line\n").unwrap(), 11);
        writer.flush().unwrap();
    }
}
