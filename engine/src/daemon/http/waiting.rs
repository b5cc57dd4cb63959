//! What a run waits on, for its page: each row that waits for people, who they are and what
//! answers it. An interrupted row waits for an operator (told by the `interrupted` email:
//! `notify.to`, else the committee, and the `operators` role) to retry, skip or abort; an
//! approval or task waits for those of its people who have not decided yet.

use crate::daemon::Shared;
use crate::links::Purpose;
use crate::pages::WaitView;
use crate::run::notify::operators;
use crate::store::{RunRow, StepRow, StepState, Store, StoreError};
use crate::validate::CheckedRunbook;

/// The rows of `run` that wait for people, in row order.
pub async fn waiting<S: Store>(
    shared: &Shared<S>,
    run: &RunRow,
    rows: &[StepRow],
) -> Result<Vec<WaitView>, StoreError> {
    let Some(checked) = shared.checked_for_run(run) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in rows {
        match row.state {
            StepState::Interrupted => out.push(interrupted(&checked, run, row)),
            StepState::AwaitingInput => {
                if let Some(view) = awaiting(shared, &checked, run, rows, row).await? {
                    out.push(view);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// An interrupted row: an operator decides.
fn interrupted(checked: &CheckedRunbook, run: &RunRow, row: &StepRow) -> WaitView {
    let told = operators(checked);
    let who = if told.is_empty() {
        "an operator".to_string()
    } else {
        format!("an operator (told: {})", told.join(", "))
    };
    let host = if row.host.is_empty() {
        String::new()
    } else {
        format!(" --host {}", row.host)
    };
    WaitView {
        step: row.step.clone(),
        host: row.host.clone(),
        who,
        what: "a decision after an interruption: retry the step, skip it, or abort the run \
               (patchday retry | skip | abort)"
            .to_string(),
        command: Some(format!(
            "patchday retry {} --step {}{host} --reason TEXT",
            run.id, row.step
        )),
        interrupted: true,
        expires_at: None,
    }
}

/// An approval or task: the people who have not decided yet.
async fn awaiting<S: Store>(
    shared: &Shared<S>,
    checked: &CheckedRunbook,
    run: &RunRow,
    rows: &[StepRow],
    row: &StepRow,
) -> Result<Option<WaitView>, StoreError> {
    let Ok(ask) = shared
        .engine
        .person_ask(checked, run, rows, &row.step, &row.host)
    else {
        return Ok(None);
    };
    let decisions = shared
        .engine
        .store
        .decisions(&run.id, &row.step, &row.host)
        .await?;
    let decided = |who: &str| {
        decisions
            .iter()
            .any(|d| d.decision.recipient.eq_ignore_ascii_case(who))
    };
    let pending: Vec<&str> = ask
        .recipients
        .iter()
        .map(String::as_str)
        .filter(|r| !decided(r))
        .collect();
    let what = match ask.purpose {
        Purpose::Approval => format!(
            "approval: {} of {} needed so far ({})",
            decisions.len(),
            ask.quorum,
            ask.choices.join(" / ")
        ),
        Purpose::Task => "a manual task: done or failed".to_string(),
    };
    Ok(Some(WaitView {
        step: row.step.clone(),
        host: row.host.clone(),
        who: pending.join(", "),
        what,
        command: None,
        interrupted: false,
        expires_at: ask
            .expires
            .zip(row.started_at)
            .and_then(|(e, at)| at.checked_add_signed(e)),
    }))
}
