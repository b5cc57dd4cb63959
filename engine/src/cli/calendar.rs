//! `patchday calendar RUNBOOK [--from DATE] [--count N]`: the next cycles, when each fires
//! (local time and UTC), and which a blackout skips; `--format json|ics` for scripts and
//! calendar programs (`--milestones`: with `ics`, one event per step with an `at` too). A
//! warning on stderr for each listed cycle whose patching misses the patch SLA ([`crate::sla`]).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Format, Globals, UsageError, checked_runbook, print_json};
use crate::calendar::{Fire, ics, local_to_instant};
use crate::plan::milestones;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runbook file.
    runbook: PathBuf,
    /// First moment to list fires from: a date (midnight in the runbook's zone) or RFC 3339 (default: now).
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// How many cycles to list.
    #[arg(long, default_value_t = 12)]
    count: usize,
    /// With `--format ics`: one event per milestone step (a step with an `at`) of each cycle too.
    #[arg(long)]
    milestones: bool,
}

/// `calendar --format json` (DESIGN §8).
#[derive(Debug, Serialize)]
struct CalendarJson {
    runbook: String,
    timezone: String,
    cycles: Vec<CycleJson>,
}

#[derive(Debug, Serialize)]
struct CycleJson {
    cycle: String,
    patch_tuesday: NaiveDate,
    fires_at: String,
    blackout: Option<String>,
    /// With `--milestones`: each step with an `at` and its planned start.
    #[serde(skip_serializing_if = "Option::is_none")]
    milestones: Option<Vec<MilestoneJson>>,
}

#[derive(Debug, Serialize)]
struct MilestoneJson {
    step: String,
    at: String,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let format = globals.format;
    if !matches!(format, Format::Text | Format::Json | Format::Ics) {
        let message = format!("`calendar` prints text, json or ics, not {format:?}");
        return Err(UsageError(message.to_lowercase()).into());
    }
    if args.milestones && format == Format::Text {
        let message = "--milestones goes with --format json or ics";
        return Err(UsageError(message.into()).into());
    }
    let config =
        crate::config::load(globals.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let Some(mut checked) = checked_runbook(&args.runbook, globals)? else {
        return Ok(ExitCode::from(1));
    };
    checked.schedule.add_blackouts(config.blackouts);
    let from = match &args.from {
        Some(text) => parse_from(text, checked.tz)?,
        None => globals.clock.now(),
    };
    let fires: Vec<Fire> = checked.schedule.fires_from(from).take(args.count).collect();
    for miss in fires
        .iter()
        .flat_map(|f| crate::sla::check_fire(&checked, f))
    {
        errln!(
            "warning: {}: {}",
            args.runbook.display(),
            miss.message(checked.tz)
        );
    }
    let steps: Vec<Vec<ics::Milestone>> = fires
        .iter()
        .map(|fire| {
            if args.milestones {
                milestones(&checked, fire)
            } else {
                Vec::new()
            }
        })
        .collect();
    let out = CalendarJson {
        runbook: checked.runbook.name.value.clone(),
        timezone: checked.tz.name().to_string(),
        cycles: fires
            .iter()
            .zip(&steps)
            .map(|(fire, steps)| cycle_json(fire, steps, args.milestones))
            .collect(),
    };
    if format == Format::Json {
        print_json(&out)?;
    } else if format == Format::Ics {
        let events: Vec<ics::Event> = fires
            .iter()
            .zip(&steps)
            .flat_map(|(fire, steps)| ics::cycle_events(&out.runbook, fire, steps))
            .collect();
        let title = format!("patchday {}", out.runbook);
        out!("{}", ics::vcalendar(&title, &events, globals.clock.now()));
    } else {
        out!(
            "{}",
            table(&out, &fires, checked.runbook.schedule.is_empty())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cycle_json(fire: &Fire, steps: &[ics::Milestone], with_steps: bool) -> CycleJson {
    let milestone = |m: &ics::Milestone| MilestoneJson {
        step: m.step.clone(),
        at: m.at.to_rfc3339(),
    };
    CycleJson {
        cycle: fire.cycle.to_string(),
        patch_tuesday: fire.patch_tuesday,
        fires_at: fire.fires_at.to_rfc3339(),
        blackout: fire.blackout.clone(),
        milestones: with_steps.then(|| steps.iter().map(milestone).collect()),
    }
}

fn parse_from(text: &str, tz: chrono_tz::Tz) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        UsageError(format!(
            "--from: `{text}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time"
        ))
    })?;
    Ok(local_to_instant(tz, date.and_time(chrono::NaiveTime::MIN)).with_timezone(&Utc))
}

fn table(out: &CalendarJson, fires: &[Fire], manual_only: bool) -> String {
    use std::fmt::Write as _;
    let mut text = format!("{}  [{}]\n", out.runbook, out.timezone);
    if manual_only {
        text.push_str("no schedule: this runbook runs only when triggered\n");
        return text;
    }
    // "YYYY-MM" or "YYYY-MM-DD" (cron schedules: one cycle a day).
    let width = fires
        .iter()
        .map(|f| f.cycle.to_string().len())
        .max()
        .unwrap_or(7)
        .max(8);
    let _ = writeln!(
        text,
        "\n{:<width$}  {:<13}  {:<27}  {:<17}  note",
        "cycle", "patch tuesday", "fires (local)", "fires (UTC)"
    );
    for fire in fires {
        let local = fire.fires_at.format("%a %Y-%m-%d %H:%M %Z");
        let utc = fire.fires_at.with_timezone(&Utc).format("%Y-%m-%d %H:%MZ");
        let note = fire
            .blackout
            .as_ref()
            .map(|r| format!("skipped: {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "{:<width$}  {:<13}  {:<27}  {:<17}  {note}",
            fire.cycle.to_string(),
            fire.patch_tuesday.to_string(),
            local.to_string(),
            utc.to_string()
        );
    }
    text
}
