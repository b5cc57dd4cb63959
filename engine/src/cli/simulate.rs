//! `patchday simulate RUNBOOK [--cycle YYYY-MM[-DD]] [--reject STEP]...`: the whole cycle on a
//! virtual clock, connectors in dry-run mode, approvals granted unless rejected. The same
//! engine and store code as a real run (an in-memory SQLite database), so what it shows is what
//! would happen; the output is the same byte for byte on every run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::run::runtime;
use super::{Globals, UsageError, checked_runbook, parse_instant, print_json, text_or_json};
use crate::calendar::{Cycle, local_to_instant};
use crate::clock::VirtualClock;
use crate::run::{Engine, Mode, Outcome, Progress, RunSpec, state_word};
use crate::store::sqlite::SqliteStore;
use crate::store::{RunState, StepState};
use crate::validate::CheckedRunbook;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runbook file.
    runbook: PathBuf,
    /// The cycle to simulate (default: the next one the schedule fires, else this month).
    #[arg(long, value_name = "CYCLE", value_parser = super::parse_cycle)]
    cycle: Option<Cycle>,
    /// When the run starts (default: the cycle's fire time, else the start of its first day).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    start: Option<DateTime<Utc>>,
    /// Simulate a rejection of this approval step (repeatable).
    #[arg(long, value_name = "STEP")]
    reject: Vec<String>,
    /// A param value (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::parse_param)]
    params: Vec<(String, String)>,
}

/// One line of the simulated timeline.
#[derive(Debug, Clone, Serialize)]
struct Line {
    at: String,
    step: String,
    host: String,
    state: String,
    note: String,
}

#[derive(Debug, Serialize)]
struct Simulation {
    runbook: String,
    cycle: String,
    timezone: String,
    outcome: String,
    timeline: Vec<Line>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = text_or_json(globals.format, "simulate")?;
    let Some(checked) = checked_runbook(&args.runbook, globals)? else {
        return Ok(ExitCode::from(1));
    };
    for step in &args.reject {
        if !checked.runbook.steps.contains_key(step.as_str()) {
            return Err(UsageError(format!(
                "--reject: no step `{step}` in {}",
                args.runbook.display()
            ))
            .into());
        }
    }
    if let Some(why) = args.cycle.and_then(|c| checked.schedule.wrong_kind(c)) {
        return Err(UsageError(format!("--cycle: {why}")).into());
    }
    let cycle = args
        .cycle
        .unwrap_or_else(|| default_cycle(&checked, globals));
    let start = args.start.unwrap_or_else(|| start_of(&checked, cycle));
    let (outcome, lines) = runtime()?.block_on(simulate(&checked, cycle, start, args))?;
    let simulation = Simulation {
        runbook: checked.runbook.name.value.clone(),
        cycle: cycle.to_string(),
        timezone: checked.tz.name().to_string(),
        outcome: outcome_word(&outcome),
        timeline: lines,
    };
    if json {
        print_json(&simulation)?;
    } else {
        out!("{}", table(&simulation));
    }
    Ok(
        if matches!(outcome, Outcome::Finished(RunState::Succeeded)) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

async fn simulate(
    checked: &CheckedRunbook,
    cycle: Cycle,
    start: DateTime<Utc>,
    args: Args,
) -> anyhow::Result<(Outcome, Vec<Line>)> {
    let lines: Arc<Mutex<Vec<Line>>> = Arc::default();
    let tz = checked.tz;
    let sink = lines.clone();
    let mut engine = Engine::new(
        SqliteStore::open("sqlite::memory:").await?,
        Arc::new(VirtualClock::new(start)),
        Mode::DryRun,
    );
    engine.observer = Arc::new(move |p: &Progress| {
        if p.state == StepState::Running && !p.note.starts_with("fans out") {
            return; // the start of an attempt: its result line says what happened
        }
        let at = crate::calendar::wall_clock(&p.at, tz);
        let line = Line {
            at,
            step: p.step.clone(),
            host: p.host.clone(),
            state: state_word(p.state).to_string(),
            note: p.note.clone(),
        };
        sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    });
    engine.rejected = args.reject.into_iter().collect();
    engine.public_url = "https://patchday.example.com".into();
    engine.max_parallel = usize::MAX;
    let spec = RunSpec {
        commit: None,
        id: "simulation".into(),
        cycle: Some(cycle),
        start,
        params: args.params,
        actor: "cli:simulate".into(),
        rerun: None,
    };
    let run = engine.start(checked, spec).await?;
    let outcome = engine
        .drive(checked, &run.id, CancellationToken::new())
        .await?;
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((
        outcome,
        lines.into_iter().filter(|l| l.state != "started").collect(),
    ))
}

fn default_cycle(checked: &CheckedRunbook, globals: &Globals) -> Cycle {
    let now = globals.clock.now();
    checked
        .schedule
        .fires_from(now)
        .next()
        .map(|f| f.cycle)
        .unwrap_or_else(|| {
            let today = now.with_timezone(&checked.tz).date_naive();
            match checked.schedule.has_day_cycles() {
                true => Cycle::on(today),
                false => Cycle::of(today),
            }
        })
}

fn start_of(checked: &CheckedRunbook, cycle: Cycle) -> DateTime<Utc> {
    match checked.schedule.fire_for(cycle) {
        Some(fire) => fire.fires_at.with_timezone(&Utc),
        None => local_to_instant(
            checked.tz,
            cycle.start_date().and_time(chrono::NaiveTime::MIN),
        )
        .with_timezone(&Utc),
    }
}

fn outcome_word(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Finished(state) => format!("{state:?}").to_lowercase(),
        Outcome::Blocked(_) => "blocked".into(),
    }
}

fn table(sim: &Simulation) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "simulation of {} for cycle {} [{}]\n\n",
        sim.runbook, sim.cycle, sim.timezone
    );
    let step_width = sim.timeline.iter().map(|l| l.step.len()).max().unwrap_or(4);
    let host_width = sim
        .timeline
        .iter()
        .map(|l| l.host.len())
        .max()
        .unwrap_or(0)
        .max(4);
    for line in &sim.timeline {
        let _ = writeln!(
            out,
            "{:<26}  {:<step_width$}  {:<host_width$}  {:<14}  {}",
            line.at, line.step, line.host, line.state, line.note
        );
    }
    let _ = writeln!(out, "\nrun {}", sim.outcome);
    out
}
