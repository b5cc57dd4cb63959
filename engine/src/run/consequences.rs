//! What a person deciding on an approval or a task needs to see besides the question (issue 15):
//! what each choice leads to, and the patch window (when the steps after it are planned).
//! Pure: from the checked runbook, the run's row and the ask; no I/O, no clock.

use chrono::{DateTime, Utc};

use super::approvals::PersonAsk;
use crate::links::Purpose;
use crate::plan::{PlanFor, plan};
use crate::runbook::OnFailure;
use crate::store::RunRow;
use crate::validate::CheckedRunbook;

/// One step of the patch window: a step that follows the decided one, and when it is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub step: String,
    pub description: Option<String>,
    pub at: DateTime<Utc>,
}

/// The steps that depend on `step` (directly or not) and have a time of their own (`at`),
/// with their planned start, earliest first: the run's timeline from its start and anchor
/// month (as `patchday plan` shows it).
pub fn patch_window(checked: &CheckedRunbook, run: &RunRow, step: &str) -> Vec<Planned> {
    let Some(from) = index_of(checked, step) else {
        return Vec::new();
    };
    let planned = plan(
        checked,
        PlanFor {
            cycle: Some(super::anchor_cycle(run, checked.tz)),
            start: Some(super::run_start(run)),
        },
    );
    let mut out: Vec<Planned> = planned
        .steps
        .iter()
        .enumerate()
        .filter(|(i, s)| *i != from && s.at.is_some() && checked.dag.reaches(from, *i))
        .filter_map(|(_, s)| {
            let at = DateTime::parse_from_rfc3339(s.planned_start.as_deref()?).ok()?;
            Some(Planned {
                step: s.id.clone(),
                description: checked
                    .runbook
                    .steps
                    .get(s.id.as_str())
                    .and_then(|d| d.description.clone()),
                at: at.to_utc(),
            })
        })
        .collect();
    out.sort_by_key(|p| p.at);
    out
}

/// What each of the ask's choices leads to, in words, in the order of `ask.choices`.
pub fn leads_to(checked: &CheckedRunbook, step: &str, ask: &PersonAsk) -> Vec<String> {
    ask.choices
        .iter()
        .enumerate()
        .map(|(i, _)| match i {
            0 => on_success(checked, step, ask),
            _ => on_failure(checked, step, ask),
        })
        .collect()
}

/// The first choice: the step succeeds (once the quorum agrees) and its dependents start.
fn on_success(checked: &CheckedRunbook, step: &str, ask: &PersonAsk) -> String {
    let when = match (ask.purpose, ask.quorum) {
        (Purpose::Approval, q) if q > 1 => format!("once {q} choose it, the step succeeds"),
        _ => "the step succeeds".to_string(),
    };
    let next = dependents(checked, step, &["success", "always"]);
    match next.as_slice() {
        [] => format!("{when} and the run goes on"),
        next => format!("{when}; next: {}", next.join(", ")),
    }
}

/// Any other choice: the step fails; the run stops (and rolls back) unless the step may fail.
fn on_failure(checked: &CheckedRunbook, step: &str, ask: &PersonAsk) -> String {
    let when = match (ask.purpose, ask.quorum) {
        (Purpose::Approval, q) if q > 1 => format!("once {q} choose it, the step fails"),
        _ => "the step fails".to_string(),
    };
    let definition = checked.runbook.steps.get(step);
    if definition.is_some_and(|s| s.continue_on_failure) {
        let next = dependents(checked, step, &["success", "always", "failure"]);
        return match next.as_slice() {
            [] => format!("{when}, and the run goes on without it"),
            next => format!("{when}, and the run goes on; next: {}", next.join(", ")),
        };
    }
    let mut text = format!("{when}: no new step starts");
    let still = dependents(checked, step, &["always", "failure"]);
    if !still.is_empty() {
        text.push_str(&format!(" but {}", still.join(", ")));
    }
    text.push_str(", and the run fails");
    if checked.runbook.on_failure == OnFailure::Rollback {
        text.push_str("; what was done is rolled back (undo)");
    }
    text
}

/// The steps that need `step` directly and run under one of `conditions`; a step with a
/// template condition is listed with "(if its condition holds)".
fn dependents(checked: &CheckedRunbook, step: &str, conditions: &[&str]) -> Vec<String> {
    let Some(from) = index_of(checked, step) else {
        return Vec::new();
    };
    (0..checked.dag.len())
        .filter(|&i| checked.dag.needs(i).contains(&from))
        .filter_map(|i| {
            let id = checked.dag.id(i);
            let condition = checked
                .runbook
                .steps
                .get(id)
                .and_then(|s| s.condition.as_ref())
                .map_or("success", |c| c.value.trim());
            match condition {
                c if conditions.contains(&c) => Some(id.to_string()),
                "success" | "always" | "failure" => None,
                _ if conditions.contains(&"success") => {
                    Some(format!("{id} (if its condition holds)"))
                }
                _ => None,
            }
        })
        .collect()
}

/// The file-order index of `step`.
fn index_of(checked: &CheckedRunbook, step: &str) -> Option<usize> {
    checked.runbook.steps.keys().position(|k| k.value == step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::Purpose;

    const RUNBOOK: &str = "name: t\ntimezone: America/New_York\non_failure: rollback\nroles:\n  cab: [a@example.com, b@example.com]\nsteps:\n  cab:\n    uses: approval\n    with: { approvers: cab, quorum: 2 }\n  patch:\n    needs: [cab]\n    at: patch_tuesday+4d 22:00\n    uses: noop\n  report:\n    needs: [cab]\n    if: always\n    at: patch_tuesday+5d 08:00\n    uses: noop\n  tell:\n    needs: [cab]\n    if: failure\n    uses: noop\n";

    fn ask(quorum: u32) -> PersonAsk {
        PersonAsk {
            purpose: Purpose::Approval,
            recipients: vec!["a@example.com".into(), "b@example.com".into()],
            choices: vec!["approve".into(), "reject".into()],
            quorum,
            message: None,
            expires: None,
            on_expire: Default::default(),
        }
    }

    fn checked() -> CheckedRunbook {
        let mut sources = crate::validate::Sources::default();
        sources.insert("t.yaml".into(), Ok(RUNBOOK.to_string()));
        let loaded = crate::runbook::load_runbook("t.yaml", RUNBOOK);
        let (checked, diags) = crate::validate::check(&loaded, std::path::Path::new(""), &sources);
        checked.unwrap_or_else(|| panic!("{diags:#?}"))
    }

    #[test]
    fn each_choice_says_what_it_leads_to() {
        let checked = checked();
        let texts = leads_to(&checked, "cab", &ask(2));
        assert_eq!(
            texts,
            [
                "once 2 choose it, the step succeeds; next: patch, report",
                "once 2 choose it, the step fails: no new step starts but report, tell, and the run fails; what was done is rolled back (undo)",
            ]
        );
    }

    #[test]
    fn the_patch_window_lists_the_steps_after_the_decision_with_their_planned_times() {
        let checked = checked();
        let start = DateTime::parse_from_rfc3339("2026-12-01T14:00:00Z")
            .unwrap()
            .to_utc();
        let run = RunRow {
            id: "r1".into(),
            runbook: "t".into(),
            cycle: Some("2026-12".into()),
            content_hash: String::new(),
            commit: None,
            snapshot: serde_json::json!({}),
            state: crate::store::RunState::Running,
            started_at: start,
            finished_at: None,
            rerun: None,
        };
        let window = patch_window(&checked, &run, "cab");
        let steps: Vec<(&str, String)> = window
            .iter()
            .map(|p| (p.step.as_str(), p.at.to_rfc3339()))
            .collect();
        assert_eq!(
            steps,
            [
                ("patch", "2026-12-13T03:00:00+00:00".to_string()),
                ("report", "2026-12-13T13:00:00+00:00".to_string()),
            ]
        );
    }
}
