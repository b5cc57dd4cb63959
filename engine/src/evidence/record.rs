//! What an evidence pack records of a run beyond its rows and events: the cycle report (JSON,
//! Markdown, HTML: the `report` connector's renderer), the plan, the inventory's exceptions
//! with their approver and expiry, the snapshots the run made, the change ticket ids its steps
//! returned, step outputs bounded, and the findings an auditor should look at.
//!
//! Ticket ids are read from step outputs at fixed places: [`TICKET_FIELDS`] (ServiceNow's
//! `json.result.number`, Jira's `json.key`, or an output named `ticket`).

use chrono::{DateTime, Utc};
use patchday_connectors::builtin::report::render_report;
use patchday_connectors::inputs::ReportFormat;
use serde_json::{Value, json};

use super::EvidenceError;
use crate::audit;
use crate::calendar::AnchorContext;
use crate::plan::{PlanFor, plan};
use crate::store::{DecisionRow, RunRow, StepRow, StepState};
use crate::validate::CheckedRunbook;

/// Where a step's outputs hold a change ticket id (JSON pointers into `outputs`).
pub const TICKET_FIELDS: [&str; 3] = ["/json/result/number", "/json/key", "/ticket"];
/// The longest text output kept per field in `steps.json`, in bytes.
pub const OUTPUT_LIMIT: usize = 4_096;

/// `cycle-report.json`, `cycle-report.md`, `cycle-report.html`, and `plan.json`.
pub fn report_files(
    checked: &CheckedRunbook,
    run: &RunRow,
    steps: &[StepRow],
    decisions: &[DecisionRow],
    at: DateTime<Utc>,
) -> Result<Vec<(String, Vec<u8>)>, EvidenceError> {
    let anchor = AnchorContext {
        cycle: crate::run::anchor_cycle(run, checked.tz),
        start: Some(crate::run::run_start(run)),
    };
    let report = crate::run::report::cycle_report(checked, run, &anchor, steps, decisions, at);
    let rendered = render_report(&report, ReportFormat::Both, None)
        .map_err(|e| super::invalid(format!("rendering the cycle report: {e}")))?;
    let planned = plan(
        checked,
        PlanFor {
            cycle: run.cycle.as_deref().and_then(|c| c.parse().ok()),
            start: Some(crate::run::run_start(run)),
        },
    );
    let to_json = |v: serde_json::Result<Value>| {
        v.map_err(|e| super::invalid(format!("the cycle report as JSON: {e}")))
    };
    Ok(vec![
        (
            "cycle-report.json".into(),
            super::pretty(&to_json(serde_json::to_value(&report))?),
        ),
        (
            "cycle-report.md".into(),
            rendered.markdown.unwrap_or_default().into_bytes(),
        ),
        (
            "cycle-report.html".into(),
            rendered.html.unwrap_or_default().into_bytes(),
        ),
        (
            "plan.json".into(),
            super::pretty(&to_json(serde_json::to_value(&planned))?),
        ),
    ])
}

/// The inventory's exceptions: host, until, reason, approver, and whether the run left the
/// host out because of it.
pub fn exceptions(checked: Option<&CheckedRunbook>, steps: &[StepRow]) -> Value {
    let Some(inventory) = checked.and_then(|c| c.inventory.as_ref()) else {
        return json!([]);
    };
    let applied = |host: &str| {
        steps.iter().any(|r| {
            r.host == host
                && r.state == StepState::Skipped
                && r.reason
                    .as_deref()
                    .is_some_and(|x| x.starts_with("excepted"))
        })
    };
    inventory
        .exceptions
        .iter()
        .map(|e| {
            json!({
                "host": e.host.value,
                "until": e.until.value.to_string(),
                "reason": e.reason,
                "approved_by": e.approved_by,
                "applied_in_this_run": applied(&e.host.value),
            })
        })
        .collect()
}

/// The snapshots the run's `snapshot` steps made, reverted or deleted.
pub fn snapshots(checked: Option<&CheckedRunbook>, steps: &[StepRow]) -> Value {
    let uses_snapshot = |step: &str| {
        checked.is_some_and(|c| crate::run::uses_of(c, step).as_deref() == Some("snapshot"))
    };
    steps
        .iter()
        .filter(|r| r.state == StepState::Succeeded && uses_snapshot(&r.step))
        .map(|r| {
            json!({
                "step": r.step,
                "host": r.host,
                "vm": r.outputs.get("vm"),
                "name": r.outputs.get("name"),
                "action": r.outputs.get("action"),
                "provider": r.outputs.get("provider"),
                "at": r.finished_at.map(audit::format_instant),
            })
        })
        .collect()
}

/// The change ticket ids the steps returned ([`TICKET_FIELDS`]).
pub fn tickets(steps: &[StepRow]) -> Value {
    steps
        .iter()
        .flat_map(|r| {
            TICKET_FIELDS.iter().filter_map(move |field| {
                let id = r.outputs.pointer(field)?;
                let id = id.as_str().map_or_else(|| id.to_string(), str::to_string);
                Some(json!({"step": r.step, "host": r.host, "field": field, "id": id}))
            })
        })
        .collect()
}

/// A step row as `steps.json` holds it: every text output cut at [`OUTPUT_LIMIT`] bytes.
pub fn bounded_row(row: &StepRow) -> Value {
    let mut value = json!(row);
    if let Some(outputs) = value.get_mut("outputs") {
        bound(outputs);
    }
    value
}

fn bound(value: &mut Value) {
    match value {
        Value::String(text) if text.len() > OUTPUT_LIMIT => {
            let mut cut = OUTPUT_LIMIT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let dropped = text.len() - cut;
            text.truncate(cut);
            text.push_str(&format!("… [{dropped} more bytes not kept]"));
        }
        Value::Array(items) => items.iter_mut().for_each(bound),
        Value::Object(map) => map.values_mut().for_each(bound),
        _ => {}
    }
}

/// What an auditor should look at: decisions that came after the work they gated.
pub fn findings(approvals: &[Value]) -> Value {
    approvals
        .iter()
        .filter(|a| a["before_work"] != true)
        .map(|a| {
            json!({
                "kind": "approval_after_work",
                "text": format!(
                    "the decision on `{}` (event {}) came after work that depended on it began (event {})",
                    a["step"].as_str().unwrap_or("?"),
                    a["seq"],
                    a["first_dependent_start"]
                ),
            })
        })
        .collect()
}
