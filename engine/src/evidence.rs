//! Evidence packs (issue 14): one tar archive per run that an auditor checks offline with the
//! verifier key alone (`patchday evidence RUN`, `patchday evidence verify PACK --key FILE.pub`).
//!
//! | file | what |
//! |---|---|
//! | `report.md` | the run for people: runbook, cycle, state, hosts, approvals, findings |
//! | `cycle-report.json`, `.md`, `.html` | the cycle report (what the `report` connector renders): per host and step, decisions, overdue steps |
//! | `plan.json` | the plan of the runbook version for the run's cycle and start |
//! | `run.json` | the run: id, runbook, cycle, state, times, version hash, commit |
//! | `runbook/<file>` | the runbook version the run executed, and every file it read |
//! | `steps.json` | every step row: host, state, attempts, start and end, outputs (redacted, each text cut at 4 KiB), reason |
//! | `approvals.json` | every `approval.decided` / `task.decided`: who, when, from where, and whether it came before the first step that depended on it started |
//! | `exceptions.json` | the inventory's exceptions: host, until, reason, approver, applied in this run or not |
//! | `snapshots.json` | the snapshots the run's `snapshot` steps made (vm, name, action, when) |
//! | `tickets.json` | the change ticket ids the steps returned ([`record::TICKET_FIELDS`]) |
//! | `findings.json` | what an auditor should look at: decisions given after the work they gated |
//! | `audit.jsonl` | the run's audit events, as `patchday audit export` writes them |
//! | `proofs.jsonl` | one inclusion proof per event against `checkpoint` ([`crate::proof`]) |
//! | `checkpoint` | the signed checkpoint the proofs lead to |
//! | `MANIFEST` | a C2SP signed note: `patchday-evidence/1 <run id>`, then `<sha256 hex>  <path>` per file |
//!
//! The archive is POSIX ustar with regular files only ([`tar`]), written and read here.

pub mod record;
pub mod tar;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit;
use crate::checkpoint::{Checkpoint, SigningKey, VerifierKey};
use crate::store::{EventRow, RunRow, StepRow, Store, StoreError};

/// The files every pack holds (besides `runbook/` and the cycle report, which need a runbook
/// version that still checks).
pub const REQUIRED: [&str; 11] = [
    "report.md",
    "run.json",
    "steps.json",
    "approvals.json",
    "exceptions.json",
    "snapshots.json",
    "tickets.json",
    "findings.json",
    "audit.jsonl",
    "proofs.jsonl",
    "checkpoint",
];

/// The first line of a manifest.
const MANIFEST_HEADER: &str = "patchday-evidence/1";

/// Why a pack cannot be made, or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Proof(#[from] crate::proof::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(text: impl Into<String>) -> EvidenceError {
    EvidenceError::Invalid(text.into())
}

/// The files of a pack for `run`, proofs against the checkpoint `note`, the manifest signed.
pub async fn pack<S: Store>(
    store: &S,
    run: &RunRow,
    note: &str,
    key: &SigningKey,
) -> Result<Vec<(String, Vec<u8>)>, EvidenceError> {
    let events = run_events(store, &run.id).await?;
    let steps = store.steps(&run.id).await?;
    let version = crate::run::version_of(run).map_err(|e| invalid(e.to_string()))?;
    let proofs = crate::proof::prove_inclusions(store, &events, note).await?;
    let approvals = approvals(&version, &events);
    let checked = version.check().ok();
    let findings = record::findings(&approvals);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "report.md".into(),
            report(run, &steps, &approvals, &findings).into_bytes(),
        ),
        ("run.json".into(), pretty(&run_json(run))),
        (
            "steps.json".into(),
            pretty(&steps.iter().map(record::bounded_row).collect()),
        ),
        ("approvals.json".into(), pretty(&json!(approvals))),
        (
            "exceptions.json".into(),
            pretty(&record::exceptions(checked.as_ref(), &steps)),
        ),
        (
            "snapshots.json".into(),
            pretty(&record::snapshots(checked.as_ref(), &steps)),
        ),
        ("tickets.json".into(), pretty(&record::tickets(&steps))),
        ("findings.json".into(), pretty(&findings)),
        (
            "audit.jsonl".into(),
            audit::export_jsonl(&events).into_bytes(),
        ),
        ("proofs.jsonl".into(), jsonl(&proofs)),
        ("checkpoint".into(), note.as_bytes().to_vec()),
    ];
    if let Some(checked) = &checked {
        let decisions = crate::run::report::run_decisions(store, checked, &run.id, &steps).await?;
        let at = events.last().map_or(run.started_at, |e| e.at);
        files.extend(record::report_files(checked, run, &steps, &decisions, at)?);
    }
    files.push((
        format!("runbook/{}", base_name(&version.file)),
        version.text.into_bytes(),
    ));
    for (name, text) in version.files {
        files.push((format!("runbook/{name}"), text.into_bytes()));
    }
    let manifest = manifest(&run.id, &files);
    files.push(("MANIFEST".into(), key.sign(&manifest).into_bytes()));
    Ok(files)
}

async fn run_events<S: Store>(store: &S, run_id: &str) -> Result<Vec<EventRow>, StoreError> {
    let filter = crate::store::EventFilter {
        run_id: Some(run_id.to_string()),
        since: None,
    };
    store.events(filter).await
}

fn base_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    text.into_bytes()
}

fn jsonl(values: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for value in values {
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

fn run_json(run: &RunRow) -> Value {
    json!({
        "id": run.id,
        "runbook": run.runbook,
        "cycle": run.cycle,
        "state": run.state.as_str(),
        "started_at": audit::format_instant(run.started_at),
        "finished_at": run.finished_at.map(audit::format_instant),
        "content_hash": run.content_hash,
        "commit": run.commit,
        "rerun": run.rerun,
        "params": run.snapshot.get("params"),
    })
}

/// Each decision of the run with whether it came before the first step that depended on it.
pub fn approvals(version: &crate::version::Version, events: &[EventRow]) -> Vec<Value> {
    let checked = version.check().ok();
    let depends_on = |later: &str, decided: &str| -> bool {
        let Some(checked) = &checked else {
            return true;
        };
        let index = |id: &str| (0..checked.dag.len()).find(|&i| checked.dag.id(i) == id);
        match (index(decided), index(later)) {
            (Some(from), Some(to)) => from != to && checked.dag.reaches(from, to),
            _ => false,
        }
    };
    events
        .iter()
        .filter(|e| e.action == "approval.decided" || e.action == "task.decided")
        .map(|e| {
            let step = e.step_id.clone().unwrap_or_default();
            let first_dependent = events.iter().find(|s| {
                s.action == "step.started"
                    && s.step_id.as_deref().is_some_and(|s| depends_on(s, &step))
            });
            json!({
                "seq": e.seq,
                "step": step,
                "actor": e.actor,
                "who": e.details.get("recipient"),
                "choice": e.details.get("choice"),
                "comment": e.details.get("comment"),
                "from": e.details.get("source_ip"),
                "at": audit::format_instant(e.at),
                "first_dependent_start": first_dependent.map(|s| s.seq),
                "before_work": first_dependent.is_none_or(|s| s.seq > e.seq),
            })
        })
        .collect()
}

fn report(run: &RunRow, steps: &[StepRow], approvals: &[Value], findings: &Value) -> String {
    let mut out = format!(
        "# Evidence: run {}\n\n- runbook: {}\n- cycle: {}\n- state: {}\n- started: {}\n- finished: {}\n- runbook version: {}{}\n\n## Steps and hosts\n\n| step | host | state | attempts | started | finished | reason |\n|---|---|---|---|---|---|---|\n",
        run.id,
        run.runbook,
        run.cycle.as_deref().unwrap_or("(manual run)"),
        run.state.as_str(),
        audit::format_instant(run.started_at),
        run.finished_at.map_or("-".into(), audit::format_instant),
        run.content_hash,
        run.commit
            .as_deref()
            .map_or(String::new(), |c| format!(" (commit {c})")),
    );
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".into(), audit::format_instant);
    for row in steps {
        out.push_str(&format!(
            "| {} | {} | {:?} | {} | {} | {} | {} |\n",
            row.step,
            row.host,
            row.state,
            row.attempt,
            time(row.started_at),
            time(row.finished_at),
            row.reason
                .as_deref()
                .unwrap_or("")
                .replace(['|', '\n'], " ")
        ));
    }
    out.push_str("\n## Approvals\n\n| step | who | choice | when | from | before work began |\n|---|---|---|---|---|---|\n");
    for a in approvals {
        let text = |k: &str| a[k].as_str().unwrap_or("-").to_string();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            text("step"),
            a["who"].as_str().unwrap_or(&text("actor")),
            text("choice"),
            text("at"),
            text("from"),
            if a["before_work"] == true {
                "yes"
            } else {
                "NO"
            }
        ));
    }
    out.push_str("\n## Findings\n\n");
    match findings.as_array().filter(|f| !f.is_empty()) {
        None => out.push_str("None: every decision came before the work it gated.\n"),
        Some(list) => {
            for finding in list {
                out.push_str(&format!(
                    "- FINDING: {}\n",
                    finding["text"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out.push_str(
        "\nEvery file of this pack is listed with its SHA-256 in MANIFEST, signed with the \
         checkpoint key; every audit event has an inclusion proof against `checkpoint`. Check \
         it with `patchday evidence verify PACK --key FILE.pub`.\n",
    );
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest(run_id: &str, files: &[(String, Vec<u8>)]) -> String {
    let mut text = format!("{MANIFEST_HEADER} {run_id}\n");
    for (name, bytes) in files {
        text.push_str(&format!("{}  {name}\n", sha256_hex(bytes)));
    }
    text
}

/// What a pack that verifies holds.
#[derive(Debug)]
pub struct Verified {
    pub run_id: String,
    pub files: usize,
    pub events: usize,
    pub approvals: usize,
    pub checkpoint_size: u64,
    /// Compliance findings (as the pack's `findings.json` words them): decisions that came
    /// after work that depended on them began. A genuine pack may hold some.
    pub findings: Vec<Value>,
}

/// Checks that a pack is genuine, offline: the signed manifest lists exactly the files with
/// their hashes; the checkpoint is signed; every audit event has a proof that holds against it;
/// approvals.json lists exactly the decision events. A decision that came after work that
/// depended on it began is a compliance finding ([`Verified::findings`]), not a failure.
pub fn verify(
    files: &BTreeMap<String, Vec<u8>>,
    key: &VerifierKey,
) -> Result<Verified, EvidenceError> {
    let text = |name: &str| -> Result<&str, EvidenceError> {
        let bytes = files
            .get(name)
            .ok_or_else(|| invalid(format!("{name} is missing")))?;
        std::str::from_utf8(bytes).map_err(|_| invalid(format!("{name} is not UTF-8")))
    };
    let manifest_note = text("MANIFEST")?;
    let manifest = key
        .open(manifest_note)
        .map_err(|e| invalid(format!("MANIFEST: {e}")))?;
    let mut lines = manifest.lines();
    let run_id = lines
        .next()
        .and_then(|l| l.strip_prefix(MANIFEST_HEADER))
        .map(|l| l.trim().to_string())
        .ok_or_else(|| invalid("MANIFEST: not a patchday evidence manifest"))?;
    let mut listed = 0;
    for line in lines {
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| invalid(format!("MANIFEST: bad line `{line}`")))?;
        let bytes = files
            .get(name)
            .ok_or_else(|| invalid(format!("{name} is listed in MANIFEST but missing")))?;
        if sha256_hex(bytes) != hash {
            return Err(invalid(format!(
                "{name} was altered: its SHA-256 is not the one MANIFEST signs"
            )));
        }
        listed += 1;
    }
    if listed + 1 != files.len() {
        let extra: Vec<&String> = files
            .keys()
            .filter(|n| *n != "MANIFEST" && !manifest.contains(&format!("  {n}\n")))
            .collect();
        return Err(invalid(format!("files not in MANIFEST: {extra:?}")));
    }
    if let Some(missing) = REQUIRED.iter().find(|name| !files.contains_key(**name)) {
        return Err(invalid(format!(
            "{missing} is missing: a pack holds {}",
            REQUIRED.join(", ")
        )));
    }
    let note = text("checkpoint")?;
    let checkpoint = Checkpoint::parse(
        key.open(note)
            .map_err(|e| invalid(format!("checkpoint: {e}")))?,
    )
    .map_err(|e| invalid(format!("checkpoint: {e}")))?;
    let events: Vec<&str> = text("audit.jsonl")?.lines().collect();
    let proofs: Vec<&str> = text("proofs.jsonl")?.lines().collect();
    if events.len() != proofs.len() {
        return Err(invalid(format!(
            "{} audit events but {} proofs",
            events.len(),
            proofs.len()
        )));
    }
    let mut decided = Vec::new();
    for (event, proof) in events.iter().zip(&proofs) {
        let proof: Value =
            serde_json::from_str(proof).map_err(|e| invalid(format!("proofs.jsonl: {e}")))?;
        let event: Value =
            serde_json::from_str(event).map_err(|e| invalid(format!("audit.jsonl: {e}")))?;
        if proof["event"] != event || proof["checkpoint"].as_str() != Some(note) {
            return Err(invalid(format!(
                "the proof of event {} is not for that event against the pack's checkpoint",
                event["seq"]
            )));
        }
        crate::proof::check(&proof, key)
            .map_err(|e| invalid(format!("event {}: {e}", event["seq"])))?;
        if event["action"] == "approval.decided" || event["action"] == "task.decided" {
            decided.push(event);
        }
    }
    let approvals: Vec<Value> = serde_json::from_str(text("approvals.json")?)
        .map_err(|e| invalid(format!("approvals.json: {e}")))?;
    check_approvals(&approvals, &decided)?;
    let findings = record::findings(&approvals)
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(Verified {
        run_id,
        files: files.len(),
        events: events.len(),
        approvals: approvals.len(),
        checkpoint_size: checkpoint.size,
        findings,
    })
}

/// approvals.json against the pack's decision events (`decided`, in `seq` order): one entry
/// per event, in the same order, with its `seq` and step.
fn check_approvals(approvals: &[Value], decided: &[Value]) -> Result<(), EvidenceError> {
    if decided.len() != approvals.len() {
        return Err(invalid(format!(
            "approvals.json lists {} decisions, the audit events hold {}",
            approvals.len(),
            decided.len()
        )));
    }
    let step = |v: &Value| v.as_str().unwrap_or("").to_string();
    for (approval, event) in approvals.iter().zip(decided) {
        if approval["seq"] != event["seq"] || step(&approval["step"]) != step(&event["step_id"]) {
            return Err(invalid(format!(
                "approvals.json: its decision {} on `{}` is not the audit event {} on `{}`",
                approval["seq"],
                step(&approval["step"]),
                event["seq"],
                step(&event["step_id"])
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(seq: i64, step: &str) -> Value {
        json!({ "seq": seq, "action": "approval.decided", "step_id": step })
    }

    fn approval(seq: i64, step: &str, before_work: bool) -> Value {
        json!({ "seq": seq, "step": step, "before_work": before_work, "first_dependent_start": 3 })
    }

    #[test]
    fn approvals_must_be_the_decision_events_late_or_not() {
        let events = [decided(5, "cab"), decided(9, "change")];
        let late = [approval(5, "cab", false), approval(9, "change", true)];
        assert!(
            check_approvals(&late, &events).is_ok(),
            "late is no forgery"
        );
        let findings = record::findings(&late);
        assert_eq!(findings.as_array().unwrap().len(), 1);
        assert!(
            findings[0]["text"]
                .as_str()
                .unwrap()
                .contains("the decision on `cab` (event 5) came after work"),
            "{findings}"
        );
        let removed = [approval(5, "cab", true)];
        let e = check_approvals(&removed, &events).unwrap_err().to_string();
        assert!(
            e.contains("lists 1 decisions, the audit events hold 2"),
            "{e}"
        );
        let moved = [approval(5, "cab", true), approval(8, "change", true)];
        let e = check_approvals(&moved, &events).unwrap_err().to_string();
        assert!(
            e.contains("decision 8 on `change` is not the audit event 9"),
            "{e}"
        );
        let renamed = [approval(5, "other", true), approval(9, "change", true)];
        assert!(check_approvals(&renamed, &events).is_err());
    }
}
