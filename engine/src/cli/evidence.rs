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
    /// Exit 0 when it is genuine (its compliance findings printed), 1 when not.
    Verify {
        pack: PathBuf,
        #[arg(long, value_name = "FILE.pub")]
        key: PathBuf,
        /// Exit 1 also when the genuine pack holds compliance findings (a decision given
        /// after work that depended on it began).
        #[arg(long)]
        strict: bool,
    },
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if let Some(EvidenceCommand::Verify { pack, key, strict }) = &args.command {
        let json = super::text_or_json(globals.format, "evidence verify")?;
        return verify(pack, key, *strict, json);
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

fn verify(pack: &Path, key: &Path, strict: bool, json: bool) -> anyhow::Result<ExitCode> {
    let key = checkpoints::read_verifier_key(key).map_err(UsageError)?;
    let archive =
        std::fs::read(pack).map_err(|e| UsageError(format!("{}: {e}", pack.display())))?;
    let result = crate::evidence::tar::read(&archive)
        .map_err(crate::evidence::EvidenceError::Invalid)
        .and_then(|files| crate::evidence::verify(&files, &key));
    let passed = result
        .as_ref()
        .is_ok_and(|v| !strict || v.findings.is_empty());
    if json {
        super::print_json(&verify_json(&result, strict, passed, &key))?;
    } else {
        print_verified(pack, &result, strict, &key);
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

type Checked = Result<crate::evidence::Verified, crate::evidence::EvidenceError>;

/// `evidence verify --format json`: `genuine` (and `reason` when not), the pack's figures,
/// its `findings` (as its findings.json words them), and `ok`: whether it passed.
fn verify_json(
    result: &Checked,
    strict: bool,
    passed: bool,
    key: &crate::checkpoint::VerifierKey,
) -> serde_json::Value {
    match result {
        Ok(v) => serde_json::json!({
            "ok": passed,
            "genuine": true,
            "strict": strict,
            "run": v.run_id,
            "files": v.files,
            "events": v.events,
            "log_size": v.checkpoint_size,
            "decisions": v.approvals,
            "signed_by": key.name(),
            "findings": v.findings,
        }),
        Err(e) => serde_json::json!({
            "ok": false,
            "genuine": false,
            "strict": strict,
            "reason": e.to_string(),
            "findings": [],
        }),
    }
}

/// `evidence verify`'s text: whether the pack is genuine, then each finding; with `--strict`
/// a failure naming how many findings there are.
fn print_verified(
    pack: &Path,
    result: &Checked,
    strict: bool,
    key: &crate::checkpoint::VerifierKey,
) {
    let v = match result {
        Ok(v) => v,
        Err(e) => {
            outln!("evidence FAILED: {}: {e}", pack.display());
            return;
        }
    };
    let late = v.findings.len();
    let decisions = match late {
        0 => format!("{} decision(s) before the work they gated", v.approvals),
        late => format!(
            "{} decision(s), {late} after work that depended on it began",
            v.approvals
        ),
    };
    outln!(
        "evidence ok: run {}, {} files, {} audit events proven in a log of {} events, {decisions}, signed by {}",
        v.run_id,
        v.files,
        v.events,
        v.checkpoint_size,
        key.name()
    );
    for finding in &v.findings {
        outln!("finding: {}", finding["text"].as_str().unwrap_or(""));
    }
    if strict && late > 0 {
        outln!(
            "evidence FAILED (--strict): {}: {late} compliance finding(s)",
            pack.display()
        );
    }
}
