//! `patchday run RUNBOOK` (one run in the foreground, with live progress) and
//! `patchday resume RUN` (recover a run after a crash, or settle an interrupted step).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Globals, UsageError, checked_runbook};
use crate::calendar::Cycle;
use crate::run::{Engine, Mode, Outcome, Progress, Resolution, RunSpec};
use crate::store::any::AnyStore;
use crate::store::{RunState, Store};
use crate::validate::CheckedRunbook;

/// The database when neither `--database` nor the configuration names one.
pub const DEFAULT_DATABASE: &str = "sqlite://patchday.db";

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The runbook file.
    runbook: PathBuf,
    /// A param value (repeatable): --param cve=CVE-2026-12345
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::parse_param)]
    params: Vec<(String, String)>,
    /// The cycle the run belongs to (default: the cycle of today in the runbook's zone).
    #[arg(long, value_name = "YYYY-MM", value_parser = super::parse_cycle)]
    cycle: Option<Cycle>,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run id `patchday run` printed.
    run: String,
    /// The runbook file the run was started from.
    #[arg(long)]
    runbook: PathBuf,
    /// An interrupted step to settle (with --retry, --skip or --abort).
    #[arg(long, requires = "decision")]
    step: Option<String>,
    /// The host of a fanned-out step.
    #[arg(long, default_value = "")]
    host: String,
    #[arg(long, group = "decision")]
    retry: bool,
    #[arg(long, group = "decision")]
    skip: bool,
    #[arg(long, group = "decision")]
    abort: bool,
}

pub fn run(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let cycle = args.cycle;
    let Some(checked) = checked_runbook(&args.runbook, globals)? else {
        return Ok(ExitCode::from(1));
    };
    let text = std::fs::read_to_string(&args.runbook)?;
    runtime()?.block_on(async {
        let engine = engine(globals, &checked).await?;
        let now = globals.clock.now();
        let cycle = cycle.unwrap_or_else(|| Cycle::of(now.with_timezone(&checked.tz).date_naive()));
        let spec = RunSpec {
            commit: crate::git::commit_of(&checked.dir),
            id: new_run_id(&checked, now),
            cycle: Some(cycle),
            start: now,
            params: args.params,
            runbook_text: text,
            actor: format!("cli:{}", operator()),
        };
        let run = engine.start(&checked, spec).await?;
        outln!("run {} started: {} cycle {cycle}", run.id, run.runbook);
        finish(&engine, &checked, &run.id).await
    })
}

pub fn resume(args: ResumeArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let Some(checked) = checked_runbook(&args.runbook, globals)? else {
        return Ok(ExitCode::from(1));
    };
    runtime()?.block_on(async {
        let engine = engine(globals, &checked).await?;
        if engine.store.run(&args.run).await?.is_none() {
            return Err(UsageError(format!("no run {} in the database", args.run)).into());
        }
        for row in engine.recover(&checked, &args.run).await? {
            let host = if row.host.is_empty() {
                String::new()
            } else {
                format!(" --host {}", row.host)
            };
            let word = crate::run::state_word(row.state);
            outln!(
                "{word}: {}{host} was running when the run stopped",
                row.step
            );
        }
        if let Some(step) = &args.step {
            let resolution = if args.retry {
                Resolution::Retry
            } else if args.skip {
                Resolution::Skip
            } else {
                Resolution::Abort
            };
            engine
                .resolve(&args.run, step, &args.host, resolution, &operator())
                .await?;
        }
        finish(&engine, &checked, &args.run).await
    })
}

/// Drives the run to its end (Ctrl-C cancels it cleanly) and prints the summary.
async fn finish(
    engine: &Engine<AnyStore>,
    checked: &CheckedRunbook,
    run_id: &str,
) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            errln!("cancelling the run (Ctrl-C)...");
            on_ctrl_c.cancel();
        }
    });
    let outcome = engine.drive(checked, run_id, cancel).await?;
    summary(engine, run_id).await?;
    Ok(match outcome {
        Outcome::Finished(RunState::Succeeded) => ExitCode::SUCCESS,
        Outcome::Finished(state) => {
            outln!("run {run_id} {}", format!("{state:?}").to_lowercase());
            ExitCode::from(1)
        }
        Outcome::Blocked(rows) => {
            for (step, host, state) in rows {
                let host = if host.is_empty() {
                    String::new()
                } else {
                    format!(" [{host}]")
                };
                outln!("waiting: {step}{host} is {state:?}");
            }
            outln!(
                "run {run_id} waits for a decision: settle interrupted steps with `patchday resume {run_id} --step ID --retry|--skip|--abort`"
            );
            ExitCode::from(1)
        }
    })
}

async fn summary(engine: &Engine<AnyStore>, run_id: &str) -> anyhow::Result<()> {
    let rows = engine.store.steps(run_id).await?;
    outln!("\n{:<28} {:<14} {:<12} note", "step", "host", "state");
    for row in rows {
        let state = crate::run::state_word(row.state);
        outln!(
            "{:<28} {:<14} {:<12} {}",
            row.step,
            row.host,
            state,
            row.reason.unwrap_or_default()
        );
    }
    Ok(())
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

async fn engine(globals: &Globals, checked: &CheckedRunbook) -> anyhow::Result<Engine<AnyStore>> {
    let url = globals
        .database
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    let store = AnyStore::open(&url).await?;
    let mut engine = Engine::new(store, globals.clock.clone(), Mode::Live);
    engine.settings = Arc::new(patchday_connectors::Settings {
        ansible: globals.ansible(),
        ..Default::default()
    });
    let waves = wave_of_steps(checked);
    let tz = checked.tz;
    engine.observer = Arc::new(move |p: &Progress| print_progress(p, &waves, tz));
    Ok(engine)
}

/// Each step's wave (1 = needs nothing), for the progress lines.
fn wave_of_steps(checked: &CheckedRunbook) -> std::collections::HashMap<String, usize> {
    let waves = checked.dag.waves().unwrap_or_default();
    (0..checked.dag.len())
        .map(|i| {
            (
                checked.dag.id(i).to_string(),
                waves.get(i).copied().unwrap_or(0),
            )
        })
        .collect()
}

/// One line per committed transition: local time, wave, step, host, state, what happened.
fn print_progress(
    p: &Progress,
    waves: &std::collections::HashMap<String, usize>,
    tz: chrono_tz::Tz,
) {
    let host = if p.host.is_empty() {
        String::new()
    } else {
        format!(" [{}]", p.host)
    };
    let state = crate::run::state_word(p.state);
    let wave = waves
        .get(p.step.as_str())
        .map(|w| format!("wave {w}"))
        .unwrap_or_else(|| "rollback".into());
    outln!(
        "{}  {wave:<8} {}{host}  {state}  {}",
        p.at.with_timezone(&tz).format("%H:%M:%S"),
        p.step,
        p.note
    );
}

fn new_run_id(checked: &CheckedRunbook, now: DateTime<Utc>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{:04x}",
        checked.runbook.name.value,
        now.format("%Y%m%dT%H%M%S"),
        (nanos ^ std::process::id()) & 0xffff
    )
}

/// The operator's name for the audit log: `$USER`, else `unknown`.
pub(crate) fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
