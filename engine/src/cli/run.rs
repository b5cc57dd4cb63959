//! `patchday run RUNBOOK` (one run in the foreground, with live progress) and
//! `patchday resume RUN` (recover a run after a crash, or settle an interrupted step).
//!
//! Both read the configuration as the daemon does (`--config` / `patchday.toml`, then
//! `PATCHDAY_*`, then `--database`): the database, and the connectors' `[smtp]`, `[ssh]` and
//! `[libvirt]` with the SMTP password ([`crate::config::Config::connectors`], the daemon's
//! function). `resume` goes on with the runbook version the run stored when it started; given
//! `--runbook FILE`, it refuses a file whose version differs and says why.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Globals, UsageError, checked_runbook};
use crate::calendar::Cycle;
use crate::config::Config;
use crate::run::{Engine, Mode, Outcome, Progress, Resolution, RunError, RunSpec, new_run_id};
use crate::store::any::AnyStore;
use crate::store::{RunRow, RunState, Store};
use crate::validate::CheckedRunbook;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The runbook file.
    runbook: PathBuf,
    /// A param value (repeatable): --param cve=CVE-2026-12345
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::parse_param)]
    params: Vec<(String, String)>,
    /// The cycle the run belongs to (one run per runbook and cycle). Without it the run is a
    /// manual run: no cycle, and any number of them.
    #[arg(long, value_name = "CYCLE", value_parser = super::parse_cycle)]
    cycle: Option<Cycle>,
    /// Run the --cycle again although it has a run already (needs --reason; audited).
    #[arg(long, requires = "cycle", requires = "reason")]
    rerun: bool,
    /// Why the cycle is run again (recorded in the audit log with who asked).
    #[arg(long, value_name = "TEXT", requires = "rerun")]
    reason: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run id `patchday run` printed.
    run: String,
    /// Only to check: the runbook file the run was started from. The run goes on with the
    /// version it stored; a file that differs from it is refused.
    #[arg(long)]
    runbook: Option<PathBuf>,
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
    let config = globals.configuration()?;
    let Some(checked) = checked_runbook(&args.runbook, globals)? else {
        return Ok(ExitCode::from(1));
    };
    runtime()?.block_on(async {
        let engine = engine(&config, globals, &checked).await?;
        let now = globals.clock.now();
        let spec = RunSpec {
            commit: crate::git::commit_of(&checked.dir),
            id: new_run_id(&checked.runbook.name.value, now),
            cycle: args.cycle,
            start: now,
            params: args.params,
            actor: format!("cli:{}", operator()),
            rerun: args.reason.filter(|_| args.rerun),
        };
        let run = match engine.start(&checked, spec).await {
            Ok(run) => run,
            Err(e @ RunError::CycleTaken { .. }) => return Err(UsageError(e.to_string()).into()),
            Err(e) => return Err(e.into()),
        };
        let cycle = super::api::cycle_words(run.cycle.as_deref().unwrap_or(""));
        outln!("run {} started: {} {cycle}", run.id, run.runbook);
        let id = run.id;
        finish(&engine, &checked, &id).await
    })
}

pub fn resume(args: ResumeArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let config = globals.configuration()?;
    let given = match &args.runbook {
        Some(path) => match checked_runbook(path, globals)? {
            Some(checked) => Some(checked),
            None => return Ok(ExitCode::from(1)),
        },
        None => None,
    };
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let Some(run) = store.run(&args.run).await? else {
            return Err(UsageError(format!("no run {} in the database", args.run)).into());
        };
        let checked = match given {
            Some(checked) => same_version(&run, checked, args.runbook.as_deref())?,
            None => crate::run::version_of(&run)?.check()?,
        };
        let engine = engine_on(store, &config, globals, &checked)?;
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

/// `checked` (read from `file`) if it is the version `run` started with; else the reason.
fn same_version(
    run: &RunRow,
    checked: CheckedRunbook,
    file: Option<&std::path::Path>,
) -> anyhow::Result<CheckedRunbook> {
    let hash = checked.version.hash();
    // A run started before versions were stored pinned the hash of its runbook's text alone.
    let legacy = run.snapshot.get("version").is_none()
        && crate::run::sha256_hex(checked.version.text.as_bytes()) == run.content_hash;
    if hash == run.content_hash || legacy {
        return Ok(checked);
    }
    let shown = file.map(|f| f.display().to_string()).unwrap_or_default();
    Err(UsageError(format!(
        "{shown} is not the version run {} started with: its content hash is {hash}, the run's is {} \
         (the runbook, or a file it reads, changed since). The run goes on with the version it \
         stored: resume it without --runbook.",
        run.id, run.content_hash
    ))
    .into())
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

async fn open_store(config: &Config) -> anyhow::Result<AnyStore> {
    Ok(AnyStore::open(&config.database_url).await?)
}

/// The engine of `run` / `resume`: the configured database and connectors, live progress.
async fn engine(
    config: &Config,
    globals: &Globals,
    checked: &CheckedRunbook,
) -> anyhow::Result<Engine<AnyStore>> {
    engine_on(open_store(config).await?, config, globals, checked)
}

fn engine_on(
    store: AnyStore,
    config: &Config,
    globals: &Globals,
    checked: &CheckedRunbook,
) -> anyhow::Result<Engine<AnyStore>> {
    let connectors = config.connectors().map_err(|e| UsageError(e.to_string()))?;
    let mut engine = Engine::new(store, globals.clock.clone(), Mode::Live);
    engine.settings = Arc::new(connectors.settings);
    engine.secrets = Arc::new(connectors.secrets);
    engine.public_url = config.public_url();
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

/// The operator's name for the audit log: `$USER`, else `unknown`.
pub(crate) fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
