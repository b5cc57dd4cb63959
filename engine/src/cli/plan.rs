//! `patchday plan RUNBOOK [--cycle YYYY-MM[-DD]] [--start RFC3339]`: the resolved DAG with each
//! step's wave and planned start; `--format json|dot|mermaid|svg`. A warning on stderr for each
//! patching step planned after the patch SLA's deadline, or a cycle a blackout skips
//! ([`crate::sla`]).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{Format, Globals, UsageError, checked_runbook, parse_instant, print_json};
use crate::calendar::Cycle;
use crate::plan::{PlanFor, fire_of, plan};

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
    let config =
        crate::config::load(globals.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let mut checked = checked;
    checked.schedule.add_blackouts(config.blackouts);
    let cycle = cycle.or_else(|| next_cycle(&checked, globals));
    let target = PlanFor {
        cycle,
        start: args.start,
    };
    let planned = plan(&checked, target);
    let fire = cycle
        .filter(|_| args.start.is_none())
        .and_then(|c| fire_of(&checked, c));
    let misses = match &fire {
        Some(fire) => crate::sla::check_fire(&checked, fire),
        None => crate::sla::check_plan(&checked, target),
    };
    for miss in &misses {
        errln!(
            "warning: {}: {}",
            args.runbook.display(),
            miss.message(checked.tz)
        );
    }
    match globals.format {
        Format::Text => out!("{}", planned.to_text()),
        Format::Json => print_json(&planned)?,
        Format::Dot => out!("{}", planned.to_dot()),
        Format::Mermaid => out!("{}", planned.to_mermaid()),
        Format::Svg => out!(
            "{}",
            crate::dashboard::graph::plan_svg(&checked).into_string()
        ),
        other @ (Format::Ics | Format::Html) => {
            let refused = format!("`plan` prints text, json, dot, mermaid or svg, not {other:?}");
            return Err(UsageError(refused.to_lowercase()).into());
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
