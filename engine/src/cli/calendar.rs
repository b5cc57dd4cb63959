//! `patchday calendar RUNBOOK [--from DATE] [--count N]`: the next cycles, when each fires
//! (local time and UTC), and which a blackout skips; `--format json|ics` for scripts and
//! calendar programs.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Format, Globals, UsageError, checked_runbook, print_json};
use crate::calendar::{Fire, ics, local_to_instant};

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
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let format = globals.format;
    if !matches!(format, Format::Text | Format::Json | Format::Ics) {
        let message = format!("`calendar` prints text, json or ics, not {format:?}");
        return Err(UsageError(message.to_lowercase()).into());
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
    let out = CalendarJson {
        runbook: checked.runbook.name.value.clone(),
        timezone: checked.tz.name().to_string(),
        cycles: fires.iter().map(cycle_json).collect(),
    };
    if format == Format::Json {
        print_json(&out)?;
    } else if format == Format::Ics {
        out!(
            "{}",
            ics::vcalendar(&out.runbook, &fires, globals.clock.now())
        );
    } else {
        out!(
            "{}",
            table(&out, &fires, checked.runbook.schedule.is_empty())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cycle_json(fire: &Fire) -> CycleJson {
    CycleJson {
        cycle: fire.cycle.to_string(),
        patch_tuesday: fire.patch_tuesday,
        fires_at: fire.fires_at.to_rfc3339(),
        blackout: fire.blackout.clone(),
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
