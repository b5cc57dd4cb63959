//! `patchday plan RUNBOOK [--cycle YYYY-MM[-DD]] [--start RFC3339]`: the resolved DAG with each
//! step's wave and planned start; `--format json|dot|mermaid`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{Format, Globals, UsageError, checked_runbook, parse_instant, print_json};
use crate::calendar::Cycle;
use crate::plan::{PlanFor, plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runbook file.
    runbook: PathBuf,
    /// The cycle to plan (default: the next one the schedule fires).
    #[arg(long, value_name = "CYCLE", value_parser = super::parse_cycle)]
    cycle: Option<Cycle>,
    /// When the run starts, for `start`-anchored (emergency) runbooks.
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    start: Option<DateTime<Utc>>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let cycle = args.cycle;
    let Some(checked) = checked_runbook(&args.runbook, globals)? else {
        return Ok(ExitCode::from(1));
    };
    if let Some(why) = cycle.and_then(|c| checked.schedule.wrong_kind(c)) {
        return Err(UsageError(format!("--cycle: {why}")).into());
    }
    let cycle = cycle.or_else(|| next_cycle(&checked, globals));
    let planned = plan(
        &checked,
        PlanFor {
            cycle,
            start: args.start,
        },
    );
    match globals.format {
        Format::Text => out!("{}", planned.to_text()),
        Format::Json => print_json(&planned)?,
        Format::Dot => out!("{}", planned.to_dot()),
        Format::Mermaid => out!("{}", planned.to_mermaid()),
        Format::Ics => {
            return Err(
                UsageError("`plan` prints text, json, dot or mermaid, not ics".into()).into(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The next cycle the runbook's schedule fires from now, if it has a schedule.
fn next_cycle(checked: &crate::validate::CheckedRunbook, globals: &Globals) -> Option<Cycle> {
    checked
        .schedule
        .fires_from(globals.clock.now())
        .next()
        .map(|f| f.cycle)
}
