//! `patchday compliance --from DATE --to DATE`: patch SLA compliance of the runs started in a
//! period ([`crate::compliance`]), as Markdown (default) or JSON (`--format json`).

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::{Globals, UsageError};
use crate::store::any::AnyStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs started at or after this time (RFC 3339, or a date meaning 00:00 UTC).
    #[arg(long, value_name = "RFC3339|DATE", value_parser = super::audit::parse_since)]
    from: DateTime<Utc>,
    /// ... and before this one.
    #[arg(long, value_name = "RFC3339|DATE", value_parser = super::audit::parse_since)]
    to: DateTime<Utc>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = super::text_or_json(globals.format, "compliance")?;
    if args.to <= args.from {
        return Err(UsageError("--to must be after --from".into()).into());
    }
    let url = globals.configuration()?.database_url;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = AnyStore::open_existing(&url)
            .await
            .map_err(|e| UsageError(format!("cannot open the database: {e}")))?;
        let report = crate::compliance::report(&store, args.from, args.to).await;
        store.close().await;
        let report = report?;
        if json {
            super::print_json(&report)?;
        } else {
            outln!("{}", crate::compliance::markdown(&report));
        }
        Ok(ExitCode::SUCCESS)
    })
}
