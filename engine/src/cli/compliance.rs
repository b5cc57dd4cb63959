//! `patchday compliance --from DATE --to DATE`: patch SLA compliance of the runs started in a
//! period ([`crate::compliance`]), as Markdown (default) or JSON (`--format json`).

use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{Globals, UsageError};

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
    let report = super::on_existing_store(&url, async |store| {
        Ok(crate::compliance::report(store, args.from, args.to).await?)
    })?;
    if json {
        super::print_json(&report)?;
    } else {
        outln!("{}", crate::compliance::markdown(&report));
    }
    Ok(ExitCode::SUCCESS)
}
