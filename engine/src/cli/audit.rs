//! `patchday audit verify|export|keygen|checkpoint|prove|check-proof` (DESIGN §6): checks the
//! hash chain of the audit log (and the signed checkpoints kept outside the database), writes it
//! out as JSON Lines or CSV for an auditor, makes checkpoint keys, signs a checkpoint now, and
//! makes and checks inclusion and consistency proofs. Commands that read the log read an
//! existing database and never create one.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};

use super::{Globals, UsageError};
use crate::audit;
use crate::checkpoints::{self, Checkpointer, StoredCheckpoint};
use crate::store::any::AnyStore;
use crate::store::{EventFilter, Store as _};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Recompute the whole hash chain (and, with --checkpoints, the Merkle root at every signed
    /// checkpoint); exit 1 and name the first problem.
    Verify {
        /// The folder of signed checkpoints to check the log against.
        #[arg(long, value_name = "DIR")]
        checkpoints: Option<PathBuf>,
        /// The verifier key (FILE.pub); default: `[audit] checkpoint_key_file` + `.pub`.
        #[arg(long, value_name = "FILE.pub")]
        key: Option<PathBuf>,
        /// Check the database file with SQLite's `PRAGMA integrity_check` (every index against
        /// its table: slower, O(n log n)) instead of `PRAGMA quick_check` (pages, records and
        /// constraints).
        #[arg(long)]
        full: bool,
    },
    /// Make an Ed25519 checkpoint key: FILE (mode 0600) and the verifier key FILE.pub.
    Keygen {
        /// The key's name, e.g. patchday.example.com/prod (no spaces or `+`).
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a checkpoint of the log now into `[audit] checkpoint_dir`.
    Checkpoint {
        /// The signing key; default `[audit] checkpoint_key_file`.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The folder; default `[audit] checkpoint_dir`.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print an inclusion proof of event --seq against a checkpoint, or a consistency proof
    /// between two checkpoints (--from, --to), as JSON.
    Prove {
        /// The event to prove.
        #[arg(long, conflicts_with = "from")]
        seq: Option<i64>,
        /// The checkpoint to prove against; default: the last one in --checkpoints.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The folder of checkpoints; default `[audit] checkpoint_dir`.
        #[arg(long, value_name = "DIR")]
        checkpoints: Option<PathBuf>,
        /// The older checkpoint of a consistency proof.
        #[arg(long, value_name = "FILE", requires = "to")]
        from: Option<PathBuf>,
        /// The newer checkpoint of a consistency proof.
        #[arg(long, value_name = "FILE", requires = "from")]
        to: Option<PathBuf>,
    },
    /// Check a proof offline with the verifier key; exit 1 if it does not hold.
    CheckProof {
        /// The proof (JSON, as `audit prove` prints it).
        proof: PathBuf,
        #[arg(long, value_name = "FILE.pub")]
        key: PathBuf,
    },
    /// Write audit events to stdout as JSON Lines (default) or CSV.
    Export {
        /// Only the events of this run.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Only events at or after this time (RFC 3339, or a date meaning 00:00 UTC).
        #[arg(long, value_name = "RFC3339|DATE", value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Output format of the export.
        #[arg(long = "as", value_name = "FORMAT", value_enum, default_value_t = ExportFormat::Jsonl)]
        export_as: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

pub(crate) fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("`{text}` is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = match &args.command {
        AuditCommand::Verify { .. } => super::text_or_json(globals.format, "audit verify")?,
        AuditCommand::Keygen { name, out } => return keygen(name, out),
        AuditCommand::CheckProof { proof, key } => return check_proof(proof, key),
        _ => false,
    };
    // `--database`, else the configuration's (`--config FILE`, `patchday.toml`,
    // `PATCHDAY_DATABASE_URL`), else sqlite://patchday.db: the daemon's database.
    let config = globals.configuration()?;
    let url = &config.database_url;
    super::on_existing_store(url, async |store| {
        match args.command {
            AuditCommand::Verify {
                checkpoints,
                key,
                full,
            } => {
                // The configured folder is checked by default once a key is configured.
                let dir = checkpoints.or_else(|| {
                    let dir = &config.audit.checkpoint_dir;
                    (config.audit.checkpoint_key_file.is_some() && dir.is_dir())
                        .then(|| dir.clone())
                });
                let verifier = match &dir {
                    Some(dir) => Some(read_checkpoints(dir, key.as_deref(), &config.audit)?),
                    None => None,
                };
                verify(store, json, verifier, full).await
            }
            AuditCommand::Checkpoint { key, dir } => {
                checkpoint(store, globals, &config.audit, key, dir).await
            }
            AuditCommand::Prove {
                seq,
                checkpoint,
                checkpoints,
                from,
                to,
            } => {
                let dir = checkpoints.unwrap_or_else(|| config.audit.checkpoint_dir.clone());
                prove(store, seq, checkpoint, &dir, from.zip(to)).await
            }
            AuditCommand::Keygen { .. } | AuditCommand::CheckProof { .. } => {
                unreachable!("handled above")
            }
            AuditCommand::Export {
                run,
                since,
                export_as,
            } => export(store, EventFilter { run_id: run, since }, export_as).await,
        }
    })
}

/// The checkpoints of `dir`, read and checked with the verifier key.
fn read_checkpoints(
    dir: &Path,
    key: Option<&Path>,
    audit: &crate::config::AuditConfig,
) -> anyhow::Result<Result<Vec<StoredCheckpoint>, checkpoints::Problem>> {
    let key = match (key, &audit.checkpoint_key_file) {
        (Some(key), _) => key.to_path_buf(),
        (None, Some(signing)) => checkpoints::pub_file(signing),
        (None, None) => {
            return Err(UsageError(
                "--checkpoints needs --key FILE.pub (or [audit] checkpoint_key_file)".into(),
            )
            .into());
        }
    };
    let key = checkpoints::read_verifier_key(&key).map_err(UsageError)?;
    if !dir.is_dir() {
        return Err(UsageError(format!("{}: no such folder of checkpoints", dir.display())).into());
    }
    Ok(checkpoints::read_dir(dir, &key))
}

async fn verify(
    store: &AnyStore,
    json: bool,
    checkpoints: Option<Result<Vec<StoredCheckpoint>, checkpoints::Problem>>,
    full: bool,
) -> anyhow::Result<ExitCode> {
    let checked = checkpoints.is_some();
    // The database's own check runs on another connection while the log is walked.
    let walk = async {
        match checkpoints.unwrap_or(Ok(Vec::new())) {
            Ok(list) => checkpoints::verify_log(store, &list).await,
            Err(problem) => Err(problem),
        }
    };
    let (result, integrity) = tokio::join!(walk, store.integrity_check(full));
    if let Err(checkpoints::Problem::Store(e)) = &result {
        return Err(anyhow::anyhow!("reading the audit log: {e}"));
    }
    let integrity = integrity?;
    if json {
        let (events, head, problem, broken_at) = match &result {
            Ok(v) => (Some(v.events), v.head.clone(), None, None),
            Err(p) => {
                let at = match p {
                    checkpoints::Problem::Chain(b) => Some(b.seq),
                    _ => None,
                };
                (None, None, Some(p.to_string()), at)
            }
        };
        super::print_json(&serde_json::json!({
            "ok": result.is_ok(),
            "events": events,
            "broken_at": broken_at,
            "reason": problem,
            "head": head.as_ref().map(|h| serde_json::json!({"seq": h.seq, "hash": h.hash})),
            "checkpoints": result.as_ref().ok().filter(|_| checked).map(|v| v.checkpoints),
            "root": result.as_ref().ok().map(|v| crate::checkpoint::encode_hash(&v.root)),
            "integrity": integrity,
        }))?;
    } else {
        match &result {
            Ok(v) => {
                match &v.head {
                    Some(head) => outln!(
                        "audit chain ok: {} events, head seq {} hash {}",
                        v.events,
                        head.seq,
                        head.hash
                    ),
                    None => outln!("audit chain ok: {} events (the log is empty)", v.events),
                }
                if checked {
                    outln!(
                        "checkpoints ok: {} signed checkpoint(s) match the log (Merkle root {})",
                        v.checkpoints,
                        crate::checkpoint::encode_hash(&v.root)
                    );
                }
            }
            Err(checkpoints::Problem::Chain(broken)) => outln!(
                "audit chain BROKEN at seq {}: {}",
                broken.seq,
                broken.reason
            ),
            Err(problem) => outln!("audit log does NOT match its checkpoints: {problem}"),
        }
        match integrity.as_str() {
            "ok" => outln!("database integrity ok"),
            problems => outln!("database integrity FAILED: {problems}"),
        }
    }
    Ok(if result.is_ok() && integrity == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn keygen(name: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let verifier = checkpoints::write_key_pair(name, out).map_err(UsageError)?;
    outln!(
        "signing key: {} (mode 0600: keep it away from the database)",
        out.display()
    );
    outln!(
        "verifier key: {} (give it to auditors)",
        checkpoints::pub_file(out).display()
    );
    outln!("{}", verifier.to_text());
    Ok(ExitCode::SUCCESS)
}

async fn checkpoint(
    store: &AnyStore,
    globals: &Globals,
    audit: &crate::config::AuditConfig,
    key: Option<PathBuf>,
    dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let key = key
        .or_else(|| audit.checkpoint_key_file.clone())
        .ok_or_else(|| {
            UsageError("no signing key: --key FILE or [audit] checkpoint_key_file".into())
        })?;
    let key = checkpoints::read_signing_key(&key).map_err(UsageError)?;
    let dir = dir.unwrap_or_else(|| audit.checkpoint_dir.clone());
    let mut checkpointer = match Checkpointer::open(store, &dir, key, &audit.origin).await {
        Ok(c) => c,
        Err(e) => {
            outln!("no checkpoint written: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let file = checkpointer
        .checkpoint(store, globals.clock.now(), true)
        .await?
        .expect("always writes");
    outln!(
        "checkpoint {}: {} events",
        file.display(),
        checkpointer.size()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_note(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).map_err(|e| UsageError(format!("{}: {e}", file.display())).into())
}

/// The last checkpoint file of `dir` (by its number).
fn last_checkpoint(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| UsageError(format!("{}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "checkpoint"))
        .collect();
    files.sort();
    files
        .pop()
        .ok_or_else(|| UsageError(format!("{}: no checkpoints", dir.display())).into())
}

async fn prove(
    store: &AnyStore,
    seq: Option<i64>,
    checkpoint: Option<PathBuf>,
    dir: &Path,
    consistency: Option<(PathBuf, PathBuf)>,
) -> anyhow::Result<ExitCode> {
    let proof = match (seq, consistency) {
        (Some(seq), None) => {
            let file = match checkpoint {
                Some(file) => file,
                None => last_checkpoint(dir)?,
            };
            crate::proof::prove_inclusion(store, seq, &read_note(&file)?).await
        }
        (None, Some((from, to))) => {
            crate::proof::prove_consistency(store, &read_note(&from)?, &read_note(&to)?).await
        }
        _ => return Err(UsageError("give --seq N, or --from FILE --to FILE".into()).into()),
    };
    match proof {
        Ok(proof) => {
            super::print_json(&proof)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            errln!("no proof: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn check_proof(proof: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let key = checkpoints::read_verifier_key(key).map_err(UsageError)?;
    let text = read_note(proof)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("{}: not JSON: {e}", proof.display())))?;
    match crate::proof::check(&value, &key) {
        Ok(what) => {
            outln!("proof ok: {what}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            outln!("proof FAILED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn export(
    store: &AnyStore,
    filter: EventFilter,
    format: ExportFormat,
) -> anyhow::Result<ExitCode> {
    let events = store.events(filter).await?;
    let text = match format {
        ExportFormat::Jsonl => audit::export_jsonl(&events),
        ExportFormat::Csv => audit::export_csv(&events),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        // `patchday audit export | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("writing the export"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_date() {
        assert_eq!(
            parse_since("2026-12-08").unwrap().to_rfc3339(),
            "2026-12-08T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-12-08T09:00:00-05:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-08T14:00:00+00:00"
        );
        assert!(parse_since("last tuesday").is_err());
    }
}
