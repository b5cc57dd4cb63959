//! `patchday compliance --from DATE --to DATE`: patch SLA compliance of the runs started in a
//! period ([`crate::compliance`]), as Markdown (default), JSON (`--format json`) or an HTML
//! document (`--format html`).

use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{Format, Globals, UsageError};

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
    let format = globals.format;
    if !matches!(format, Format::Text | Format::Json | Format::Html) {
        let refused = format!("`compliance` prints text, json or html, not {format:?}");
        return Err(UsageError(refused.to_lowercase()).into());
    }
    if args.to <= args.from {
        return Err(UsageError("--to must be after --from".into()).into());
    }
    let url = globals.configuration()?.database_url;
    let report = super::on_existing_store(&url, async |store| {
        Ok(crate::compliance::report(store, args.from, args.to).await?)
    })?;
    match format {
        Format::Json => super::print_json(&report)?,
        Format::Html => outln!("{}", crate::compliance::html(&report)),
        _ => outln!("{}", crate::compliance::markdown(&report)),
    }
    Ok(ExitCode::SUCCESS)
}
