//! The cycle report's data (what the `report` connector renders), built from the run's rows:
//! per host and step patched / failed / excepted / skipped, the decisions on its approvals and
//! tasks (who, what, when, from where), and the steps that missed their deadline.

use chrono::{DateTime, FixedOffset, Utc};
use patchday_connectors::CycleReport;
use patchday_connectors::builtin::report::{
    ApprovalRecord, HostRow, HostStatus, OverdueStep, SlaHost, SlaReport,
};

use crate::calendar::AnchorContext;
use crate::store::{DecisionRow, RunRow, StepRow, StepState, Store, StoreError};
use crate::validate::CheckedRunbook;

use super::UNDO_PREFIX;

/// The decisions on every approval and task row of a run, in the order they were made.
pub async fn run_decisions<S: Store>(
    store: &S,
    checked: &CheckedRunbook,
    run_id: &str,
    rows: &[StepRow],
) -> Result<Vec<DecisionRow>, StoreError> {
    let mut decisions = Vec::new();
    for row in rows {
        if matches!(
            super::uses_of(checked, &row.step).as_deref(),
            Some("approval" | "manual")
        ) {
            decisions.extend(store.decisions(run_id, &row.step, &row.host).await?);
        }
    }
    decisions.sort_by_key(|d| d.seq);
    Ok(decisions)
}

/// Builds the report of a run as it stands at `now`.
pub fn cycle_report(
    checked: &CheckedRunbook,
    run: &RunRow,
    anchor: &AnchorContext,
    rows: &[StepRow],
    decisions: &[DecisionRow],
    now: DateTime<Utc>,
) -> CycleReport {
    let local =
        |t: DateTime<Utc>| -> DateTime<FixedOffset> { t.with_timezone(&checked.tz).fixed_offset() };
    let host_rows = rows
        .iter()
        .filter(|r| !r.host.is_empty() && !r.step.starts_with(UNDO_PREFIX))
        .map(|r| host_row(checked, r, &local))
        .collect();
    CycleReport {
        runbook: checked.runbook.name.value.clone(),
        cycle: super::cycle_shown(run),
        patch_tuesday: crate::calendar::patch_tuesday(anchor.cycle),
        generated_at: local(now),
        run_id: Some(run.id.clone()),
        rows: host_rows,
        approvals: decisions
            .iter()
            .map(|d| {
                let d = &d.decision;
                let step = if d.host.is_empty() {
                    d.step.clone()
                } else {
                    format!("{} [{}]", d.step, d.host)
                };
                ApprovalRecord {
                    step,
                    who: d.recipient.clone(),
                    decision: d.choice.clone(),
                    when: local(d.at),
                    from_ip: d.source_ip.clone(),
                }
            })
            .collect(),
        overdue: overdue(checked, anchor, rows, now, &local),
        sla: sla(checked, run, rows, &local),
    }
}

/// Each host's time to patch against the run's SLA window (as `patchday compliance` measures
/// it), when the runbook declares one for the run's severity.
fn sla(
    checked: &CheckedRunbook,
    run: &RunRow,
    rows: &[StepRow],
    local: &impl Fn(DateTime<Utc>) -> DateTime<FixedOffset>,
) -> Option<SlaReport> {
    let window = crate::compliance::window(checked, run).ok()?;
    let rows: Vec<StepRow> = rows
        .iter()
        .filter(|r| !r.step.starts_with(UNDO_PREFIX) && measured(checked, r))
        .cloned()
        .collect();
    let hosts = crate::compliance::host_slas(&rows, &window)
        .into_iter()
        .map(|h| SlaHost {
            host: h.host,
            patched_at: h.patched_at.map(local),
            late_reason: h.late_reason,
        })
        .collect();
    Some(SlaReport {
        severity: crate::sla::severity_name(window.severity).to_string(),
        released: local(window.released),
        deadline: local(window.deadline),
        hosts,
    })
}

/// Whether a row counts for the SLA in the report: not the report step itself, which is
/// running while it is made.
fn measured(checked: &CheckedRunbook, row: &StepRow) -> bool {
    super::uses_of(checked, &row.step).as_deref() != Some("report")
}

fn host_row(
    checked: &CheckedRunbook,
    row: &StepRow,
    local: &impl Fn(DateTime<Utc>) -> DateTime<FixedOffset>,
) -> HostRow {
    let exception = checked
        .inventory
        .as_ref()
        .and_then(|inv| inv.exceptions.iter().find(|e| e.host.value == row.host));
    let excepted = row.state == StepState::Skipped
        && row
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("excepted"));
    let patches = super::uses_of(checked, &row.step).as_deref() == Some("command");
    let status = match row.state {
        StepState::Succeeded if patches => HostStatus::Patched,
        StepState::Succeeded => HostStatus::Succeeded,
        StepState::Failed | StepState::Cancelled | StepState::Interrupted => HostStatus::Failed,
        StepState::Skipped if excepted => HostStatus::Excepted,
        _ => HostStatus::Skipped,
    };
    let reason = match row.state {
        s if s.is_terminal() => row.reason.clone(),
        _ => Some("not finished when the report was made".to_string()),
    };
    HostRow {
        host: row.host.clone(),
        step: row.step.clone(),
        status,
        reason,
        approver: if excepted {
            exception.map(|e| e.approved_by.clone())
        } else {
            None
        },
        started: row.started_at.map(local),
        finished: row.finished_at.map(local),
    }
}

/// Steps (rows of steps with a `deadline`) that finished after it, or are unfinished past it.
fn overdue(
    checked: &CheckedRunbook,
    anchor: &AnchorContext,
    rows: &[StepRow],
    now: DateTime<Utc>,
    local: &impl Fn(DateTime<Utc>) -> DateTime<FixedOffset>,
) -> Vec<OverdueStep> {
    let mut out = Vec::new();
    for (index, times) in checked.times.iter().enumerate() {
        let Some(deadline) = times
            .deadline
            .as_ref()
            .and_then(|d| d.resolve(checked.tz, anchor).ok())
        else {
            continue;
        };
        let deadline = deadline.with_timezone(&Utc);
        let id = checked.dag.id(index);
        for row in rows.iter().filter(|r| r.step == id) {
            let late = match row.finished_at {
                Some(done) => done > deadline,
                None => now > deadline && !row.state.is_terminal(),
            };
            if late {
                let host = (!row.host.is_empty()).then(|| row.host.clone());
                out.push(OverdueStep {
                    step: id.to_string(),
                    host,
                    deadline: local(deadline),
                    finished: row.finished_at.map(local),
                });
            }
        }
    }
    out
}
