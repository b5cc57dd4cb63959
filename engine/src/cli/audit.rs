//! `patchday audit verify|export` (DESIGN §6): checks the hash chain of the audit log, and
//! writes it out as JSON Lines or CSV for an auditor. Both read an existing database and never
//! create one.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};

use super::{Globals, UsageError};
use crate::audit;
use crate::store::any::AnyStore;
use crate::store::{EventFilter, Store as _};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Recompute the whole hash chain; exit 1 and name the first bad event if it is broken.
    Verify,
    /// Write audit events to stdout as JSON Lines (default) or CSV.
    Export {
        /// Only the events of this run.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Only events at or after this time (RFC 3339, or a date meaning 00:00 UTC).
        #[arg(long, value_name = "RFC3339|DATE", value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Output format of the export.
        #[arg(long = "as", value_name = "FORMAT", value_enum, default_value_t = ExportFormat::Jsonl)]
        export_as: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("`{text}` is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = match &args.command {
        AuditCommand::Verify => super::text_or_json(globals.format, "audit verify")?,
        AuditCommand::Export { .. } => false,
    };
    // `--database`, else the configuration's (`--config FILE`, `patchday.toml`,
    // `PATCHDAY_DATABASE_URL`), else sqlite://patchday.db: the daemon's database.
    let url = &globals.configuration()?.database_url;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = AnyStore::open_existing(url)
            .await
            .map_err(|e| UsageError(format!("cannot open the audit log: {e}")))?;
        let code = match args.command {
            AuditCommand::Verify => verify(&store, json).await,
            AuditCommand::Export {
                run,
                since,
                export_as,
            } => export(&store, EventFilter { run_id: run, since }, export_as).await,
        };
        store.close().await;
        code
    })
}

async fn verify(store: &AnyStore, json: bool) -> anyhow::Result<ExitCode> {
    let events = store.events(EventFilter::default()).await?;
    let head = store.chain_head().await?;
    let result = audit::verify(&events, head.as_ref());
    let integrity = store.integrity_check().await?;
    if json {
        let (ok, broken_at, reason) = match &result {
            Ok(_) => (true, None, None),
            Err(b) => (false, Some(b.seq), Some(b.reason.clone())),
        };
        super::print_json(&serde_json::json!({
            "ok": ok,
            "events": events.len(),
            "broken_at": broken_at,
            "reason": reason,
            "head": head.as_ref().map(|h| serde_json::json!({"seq": h.seq, "hash": h.hash})),
            "integrity": integrity,
        }))?;
    } else {
        match (&result, &head) {
            (Ok(n), Some(head)) => outln!(
                "audit chain ok: {n} events, head seq {} hash {}",
                head.seq,
                head.hash
            ),
            (Ok(n), None) => outln!("audit chain ok: {n} events (the log is empty)"),
            (Err(broken), _) => {
                outln!(
                    "audit chain BROKEN at seq {}: {}",
                    broken.seq,
                    broken.reason
                )
            }
        }
    }
    if !json {
        match integrity.as_str() {
            "ok" => outln!("database integrity ok"),
            problems => outln!("database integrity FAILED: {problems}"),
        }
    }
    Ok(if result.is_ok() && integrity == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn export(
    store: &AnyStore,
    filter: EventFilter,
    format: ExportFormat,
) -> anyhow::Result<ExitCode> {
    let events = store.events(filter).await?;
    let text = match format {
        ExportFormat::Jsonl => audit::export_jsonl(&events),
        ExportFormat::Csv => audit::export_csv(&events),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        // `patchday audit export | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("writing the export"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_date() {
        assert_eq!(
            parse_since("2026-12-08").unwrap().to_rfc3339(),
            "2026-12-08T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-12-08T09:00:00-05:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-08T14:00:00+00:00"
        );
        assert!(parse_since("last tuesday").is_err());
    }
}
