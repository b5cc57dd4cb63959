//! `patchday validate PATH...`: check files and folders; every error as `file:line:col`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Globals, UsageError, print_json, text_or_json};
use crate::calendar::{Blackout, Schedule};
use crate::diagnostic::Diagnostic;
use crate::sources::{Checked, check_files_with, expand};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook or inventory files, or folders of them (the *.yaml files directly inside are
    /// checked together; a file whose top-level keys are `hosts`, `groups` and `exceptions` is
    /// checked as an inventory).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Fail (exit 1) on warnings too: a timeline that cannot hold, a schedule that ended, a
    /// cycle whose patching misses the patch SLA.
    #[arg(long)]
    strict: bool,
}

/// Cycles from now that `validate` checks against the patch SLA (a year of monthly cycles).
const SLA_CYCLES: usize = 12;

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, "validate")?;
    for path in &args.paths {
        if !path.exists() {
            return Err(UsageError(format!("{}: no such file or folder", path.display())).into());
        }
    }
    let files = expand(&args.paths)?;
    if files.is_empty() {
        return Err(UsageError("no runbook files (*.yaml, *.yml) found".into()).into());
    }
    let config =
        crate::config::load(globals.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let mut checked = check_files_with(&files, &globals.ansible_inventories());
    warn_of_ended_schedules(&mut checked, globals.clock.now());
    warn_of_sla_misses(&mut checked, globals.clock.now(), &config.blackouts);
    if json {
        print_json(&report(&checked))?;
    } else {
        print_diagnostics(&checked, true);
    }
    let warned = checked.diagnostics.iter().any(|d| !d.is_error());
    Ok(if checked.is_valid() && !(args.strict && warned) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A warning for each schedule entry of a valid runbook that fires no more after `now` (an
/// RRULE whose UNTIL or COUNT has passed, a cron year field that ended): validation proper
/// never reads the clock, so this is the one check made here, with `--now`.
fn warn_of_ended_schedules(checked: &mut Checked, now: DateTime<Utc>) {
    let mut warnings = Vec::new();
    for checked_runbook in checked.runbooks.iter().filter_map(|(_, c)| c.as_ref()) {
        let schedule = &checked_runbook.schedule;
        let entries = &checked_runbook.runbook.schedule;
        // A runbook that validated has one rule per entry, in order.
        for (entry, rule) in entries.iter().zip(schedule.rules()) {
            let alone = Schedule::new(vec![rule.clone()], schedule.tz(), Vec::new());
            if alone.fires_from(now).next().is_some() {
                continue;
            }
            let Some(text) = entry.rrule.as_ref().or(entry.cron.as_ref()) else {
                continue;
            };
            let date = now.with_timezone(&schedule.tz()).date_naive();
            let message = format!(
                "`{}` fires no more after {date} (its UNTIL or COUNT has passed, or its years have): this entry will never fire again",
                text.value
            );
            warnings.push(Diagnostic::warning(
                &checked_runbook.file,
                text.loc,
                message,
            ));
        }
    }
    checked.diagnostics.extend(warnings);
}

/// A warning at the `sla:` entry for each of the next [`SLA_CYCLES`] cycles from `now` whose
/// patching steps are planned after the SLA deadline or that a blackout (the runbook's or the
/// configuration's) skips ([`crate::sla`]). Like the ended schedules, made here with `--now`.
fn warn_of_sla_misses(checked: &mut Checked, now: DateTime<Utc>, blackouts: &[Blackout]) {
    let mut warnings = Vec::new();
    let with_sla = checked.runbooks.iter().filter_map(|(_, c)| c.as_ref());
    for checked_runbook in with_sla.filter(|c| c.runbook.sla.is_some()) {
        let mut with_freezes = checked_runbook.clone();
        with_freezes.schedule.add_blackouts(blackouts.to_vec());
        for miss in crate::sla::check_cycles(&with_freezes, now, SLA_CYCLES) {
            let field = miss.deadline.field;
            let message = format!(
                "{} (`sla.{}`)",
                miss.message(with_freezes.tz),
                crate::sla::severity_name(miss.deadline.severity)
            );
            warnings.push(Diagnostic::warning(
                &checked_runbook.file,
                field.loc,
                message,
            ));
        }
    }
    checked.diagnostics.extend(warnings);
}

fn report(checked: &Checked) -> serde_json::Value {
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
        checked.diagnostics.iter().partition(|d| d.is_error());
    let inventories: Vec<String> = checked
        .inventories
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    json!({ "valid": checked.is_valid(), "errors": errors, "warnings": warnings, "inventories": inventories })
}

/// Prints every diagnostic with its snippet to stderr, and with `summary` a closing line.
pub(crate) fn print_diagnostics(checked: &Checked, summary: bool) {
    for d in &checked.diagnostics {
        errln!("{}\n", d.render(checked.text(&d.file)));
    }
    if !summary {
        return;
    }
    let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = checked.diagnostics.len() - errors;
    let files = checked.runbooks.len() + checked.inventories.len();
    if errors == 0 {
        let names: Vec<&str> = checked
            .runbooks
            .iter()
            .filter_map(|(l, _)| l.runbook.as_ref().map(|r| r.name.value.as_str()))
            .collect();
        let inventories: Vec<String> = checked
            .inventories
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let inventories = match inventories.len() {
            0 => String::new(),
            n => format!("; {n} inventory file(s) valid ({})", inventories.join(", ")),
        };
        outln!(
            "ok: {} runbook(s) valid ({}){inventories}{}",
            checked.runbooks.len(),
            names.join(", "),
            plural(warnings, "warning")
        );
    } else {
        errln!(
            "invalid: {} in {files} file(s){}",
            plural(errors, "error").trim_start_matches(", "),
            plural(warnings, "warning")
        );
    }
}

fn plural(n: usize, word: &str) -> String {
    match n {
        0 => String::new(),
        1 => format!(", 1 {word}"),
        _ => format!(", {n} {word}s"),
    }
}
