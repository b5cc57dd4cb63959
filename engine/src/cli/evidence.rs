//! `patchday evidence RUN` (or `--runbook R --cycle YYYY-MM`): the auditor's pack of one run,
//! a tar archive ([`crate::evidence`]) whose manifest is signed with the checkpoint key and
//! whose audit events carry inclusion proofs against a checkpoint signed first; and
//! `patchday evidence verify PACK --key FILE.pub`, which checks one offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{Globals, UsageError};
use crate::checkpoints::{self, Checkpointer};
use crate::store::any::AnyStore;
use crate::store::{RunRow, Store as _};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<EvidenceCommand>,
    /// The run to pack.
    #[arg(value_name = "RUN_ID", required_unless_present_any = ["runbook"])]
    run: Option<String>,
    /// The run of this runbook ...
    #[arg(long, requires = "cycle")]
    runbook: Option<String>,
    /// ... for this cycle (its latest run).
    #[arg(long, value_name = "YYYY-MM")]
    cycle: Option<String>,
    /// Where to write the pack; default `evidence-<run id>.tar`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The checkpoint signing key; default `[audit] checkpoint_key_file`.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum EvidenceCommand {
    /// Check a pack offline: signed manifest, file hashes, checkpoint, proofs, approvals.
    Verify {
        pack: PathBuf,
        #[arg(long, value_name = "FILE.pub")]
        key: PathBuf,
    },
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if let Some(EvidenceCommand::Verify { pack, key }) = &args.command {
        return verify(pack, key);
    }
    let config = globals.configuration()?;
    let key = args
        .key
        .clone()
        .or_else(|| config.audit.checkpoint_key_file.clone())
        .ok_or_else(|| {
            UsageError("no signing key: --key FILE or [audit] checkpoint_key_file".into())
        })?;
    let key = checkpoints::read_signing_key(&key).map_err(UsageError)?;
    super::on_existing_store(&config.database_url, async |store| {
        pack(store, &args, key, &config.audit, globals).await
    })
}

async fn find_run(store: &AnyStore, args: &Args) -> anyhow::Result<RunRow> {
    if let Some(id) = &args.run {
        return store
            .run(id)
            .await?
            .ok_or_else(|| UsageError(format!("no run {id}")).into());
    }
    let (runbook, cycle) = (args.runbook.as_deref(), args.cycle.as_deref());
    store
        .runs(u32::MAX)
        .await?
        .into_iter()
        .find(|r| Some(r.runbook.as_str()) == runbook && r.cycle.as_deref() == cycle)
        .ok_or_else(|| {
            UsageError(format!(
                "no run of runbook {} for cycle {}",
                runbook.unwrap_or("?"),
                cycle.unwrap_or("?")
            ))
            .into()
        })
}

async fn pack(
    store: &AnyStore,
    args: &Args,
    key: crate::checkpoint::SigningKey,
    audit: &crate::config::AuditConfig,
    globals: &Globals,
) -> anyhow::Result<ExitCode> {
    let run = find_run(store, args).await?;
    // A checkpoint covering the run's events: signed now if the log grew since the last one.
    let mut checkpointer =
        match Checkpointer::open(store, &audit.checkpoint_dir, key.clone(), &audit.origin).await {
            Ok(c) => c,
            Err(e) => {
                outln!("no evidence pack: {e}");
                return Ok(ExitCode::from(1));
            }
        };
    checkpointer
        .checkpoint(store, globals.clock.now(), false)
        .await?;
    let note = checkpointer.last().expect("one was signed").note.clone();
    let files = crate::evidence::pack(store, &run, &note, &key).await?;
    let mtime = run.finished_at.unwrap_or(run.started_at).timestamp();
    let archive = crate::evidence::tar::write(&files, mtime).map_err(UsageError)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("evidence-{}.tar", run.id)));
    write_new(&out, &archive)?;
    outln!(
        "evidence pack {}: run {}, {} files; check it with `patchday evidence verify {} --key FILE.pub`",
        out.display(),
        run.id,
        files.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a new file (through a temporary one: nothing half written).
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path.exists() {
        return Err(UsageError(format!("{} exists: not replacing it", path.display())).into());
    }
    let partial = path.with_extension("tar.partial");
    std::fs::write(&partial, bytes)
        .map_err(|e| UsageError(format!("{}: {e}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    Ok(())
}

fn verify(pack: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let key = checkpoints::read_verifier_key(key).map_err(UsageError)?;
    let archive =
        std::fs::read(pack).map_err(|e| UsageError(format!("{}: {e}", pack.display())))?;
    let result = crate::evidence::tar::read(&archive)
        .map_err(crate::evidence::EvidenceError::Invalid)
        .and_then(|files| crate::evidence::verify(&files, &key));
    match result {
        Ok(v) => {
            outln!(
                "evidence ok: run {}, {} files, {} audit events proven in a log of {} events, {} decision(s) before the work they gated, signed by {}",
                v.run_id,
                v.files,
                v.events,
                v.checkpoint_size,
                v.approvals,
                key.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            outln!("evidence FAILED: {}: {e}", pack.display());
            Ok(ExitCode::from(1))
        }
    }
}
