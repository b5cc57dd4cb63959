//! The step state machine's decisions, as a pure function: given a checked runbook, the run's
//! rows and the time, what should happen next. The driver ([`super::drive`]) commits the
//! transitions and runs the connectors; nothing here does I/O or reads a clock.
//!
//! Outcomes of a finished step, as the steps that need it see them:
//! - ok: `succeeded`, `skipped`, or `failed` with `continue_on_failure`;
//! - bad: `failed` (without `continue_on_failure`) or `cancelled`.
//!
//! `if: success` (the default) runs when every need is ok and nothing in the run is bad;
//! `failure` when some need is bad; `always` once the needs are finished; a template when the
//! needs are ok and it renders truthy. A step that is not run is `skipped` with the reason.
//!
//! Cost: a decision looks only at what may move. [`RunRows`] keeps the active steps (not
//! finished, and started or with every need finished), the run's counts, and per fan-out the
//! sets of open, pending, waiting and failed hosts; so one call costs the active steps, the
//! current wave's starts (at most [`View::room`] of them for a connector that runs one host at a
//! time) and the steps with a deadline, never every row of the run.

use chrono::{DateTime, NaiveDate, Utc};

use super::rows::RunRows;
use crate::calendar::AnchorContext;
use crate::inventory::Member;
use crate::store::{StepRow, StepState};
use crate::validate::CheckedRunbook;

/// Step ids of compensation rows start with this.
pub const UNDO_PREFIX: &str = "undo:";

/// One thing the driver should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// pending → skipped.
    Skip {
        step: String,
        host: String,
        reason: String,
    },
    /// pending → waiting until `until` (the step's `at`).
    Wait { step: String, until: DateTime<Utc> },
    /// pending/waiting → running: dispatch an attempt (a plain step, a fan-out child, an undo row).
    Start { step: String, host: String },
    /// pending/waiting → running for a `for_each` step, inserting one row per group member;
    /// excepted hosts are inserted as skipped with the exception as reason.
    Expand {
        step: String,
        hosts: Vec<String>,
        excepted: Vec<(String, String)>,
    },
    /// A fan-out step whose children are all finished: running → succeeded/failed.
    FinishParent {
        step: String,
        state: StepState,
        reason: Option<String>,
    },
    /// The run failed and `on_failure: rollback`: insert these undo rows (in execution order).
    BeginRollback { rows: Vec<(String, String)> },
    /// A step is not finished at its `deadline`: record `step.overdue` (once) and notify.
    Overdue {
        step: String,
        deadline: DateTime<Utc>,
    },
    /// Every row is finished: the run ends in this state.
    FinishRun { failed: bool },
}

/// What `decide` looks at.
pub struct View<'a> {
    pub checked: &'a CheckedRunbook,
    /// The run's rows, checked against `checked` (every step has its own row).
    pub rows: &'a RunRows,
    pub now: DateTime<Utc>,
    pub anchor: &'a AnchorContext,
    /// The local date in the runbook's zone (for inventory exceptions).
    pub today: NaiveDate,
    /// Renders an `if` template for step `index`: true, false, or an error (counts as false).
    pub condition: &'a dyn Fn(usize, &str) -> bool,
    /// Steps already reported overdue.
    pub overdue: &'a std::collections::BTreeSet<String>,
    /// How many more attempts may start now (the run's parallel limit less those in flight):
    /// a fan-out whose connector runs one host at a time offers no more starts than this.
    pub room: usize,
}

/// Decides what to do next. Empty when nothing can happen until a running attempt ends, a
/// waiting time comes, or a person decides.
pub fn decide(view: &View) -> Vec<Action> {
    let rows = view.rows;
    let failing = rows.failing();
    let mut actions = Vec::new();
    for index in rows.active() {
        step_actions(view, rows, index, failing, &mut actions);
    }
    actions.extend(undo_starts(rows));
    actions.extend(overdue(view, rows));
    if actions.is_empty() {
        finish_or_rollback(view, rows, failing, &mut actions);
    }
    actions
}

fn step_actions(view: &View, rows: &RunRows, index: usize, failing: bool, out: &mut Vec<Action>) {
    let row = rows.step(index);
    match row.state {
        StepState::Pending => pending_actions(view, rows, index, failing, out),
        StepState::Waiting if row.not_before.is_none_or(|t| t <= view.now) => {
            start(view, index, out)
        }
        StepState::Running if is_fan_out(view, index) => child_actions(view, rows, index, out),
        _ => {}
    }
}

fn is_fan_out(view: &View, index: usize) -> bool {
    view.checked.runbook.steps[index].for_each.is_some()
}

fn pending_actions(
    view: &View,
    rows: &RunRows,
    index: usize,
    failing: bool,
    out: &mut Vec<Action>,
) {
    let id = view.checked.dag.id(index).to_string();
    let needs = view.checked.dag.needs(index);
    if !needs.iter().all(|&n| rows.step(n).state.is_terminal()) {
        return;
    }
    let any_bad = needs.iter().any(|&n| rows.is_bad(n));
    let step = &view.checked.runbook.steps[index];
    let condition = step
        .condition
        .as_ref()
        .map(|c| c.value.trim())
        .unwrap_or("success");
    let skip = |reason: &str| Action::Skip {
        step: id.clone(),
        host: String::new(),
        reason: reason.to_string(),
    };
    let verdict = match condition {
        "always" => None,
        "failure" if any_bad => None,
        "failure" => Some(skip("`if: failure` and no step it needs failed")),
        _ if any_bad => Some(skip("a step it needs failed")),
        _ if failing => Some(skip("the run is failing: no new steps start")),
        "success" => None,
        template if (view.condition)(index, template) => None,
        _ => Some(skip("its `if` is false")),
    };
    if let Some(action) = verdict {
        out.push(action);
        return;
    }
    let at = view.checked.times[index]
        .at
        .as_ref()
        .and_then(|expr| expr.resolve(view.checked.tz, view.anchor).ok());
    match at.map(|t| t.with_timezone(&Utc)) {
        Some(until) if until > view.now => out.push(Action::Wait { step: id, until }),
        _ => start(view, index, out),
    }
}

fn start(view: &View, index: usize, out: &mut Vec<Action>) {
    let id = view.checked.dag.id(index).to_string();
    let Some(fe) = &view.checked.runbook.steps[index].for_each else {
        out.push(Action::Start {
            step: id,
            host: String::new(),
        });
        return;
    };
    let (mut hosts, mut excepted) = (Vec::new(), Vec::new());
    if let Some(inventory) = &view.checked.inventory {
        for member in inventory.members(&fe.group.value, view.today) {
            match member {
                Member::Included(name, _) => hosts.push(name.to_string()),
                Member::Excepted(name, e) => excepted.push((
                    name.to_string(),
                    format!(
                        "excepted until {}: {} (approved by {})",
                        e.until.value, e.reason, e.approved_by
                    ),
                )),
            }
        }
    }
    out.push(Action::Expand {
        step: id,
        hosts,
        excepted,
    });
}

/// Rolling waves: batch k starts only when batches before it are finished and the failures so
/// far do not exceed `max_failures`; past that, children not started are skipped and the step
/// fails. Batches before the first open child are finished, so only its batch is looked at.
fn child_actions(view: &View, rows: &RunRows, index: usize, out: &mut Vec<Action>) {
    let id = view.checked.dag.id(index);
    let (Some(fe), Some(fan_out)) = (
        view.checked.runbook.steps[index].for_each.as_ref(),
        rows.fan_out(id),
    ) else {
        return;
    };
    let total = fan_out.total();
    let batch = fe
        .batch
        .as_ref()
        .map_or(total.max(1), |b| b.value.of(total).max(1));
    let allowed = fe.max_failures.as_ref().map_or(0, |m| m.value.of(total));
    let host = |ordinal: usize| rows.at(fan_out.position(ordinal)).host.clone();
    let Some(&first_open) = fan_out.open.first() else {
        return finish_parent(id, fan_out.failed.len(), total, allowed, out);
    };
    let wave = (first_open / batch) * batch..(first_open / batch + 1) * batch;
    let failures = fan_out.failed.range(..wave.start).count();
    if failures > allowed {
        for &ordinal in &fan_out.pending {
            out.push(Action::Skip {
                step: id.to_string(),
                host: host(ordinal),
                reason: format!(
                    "not started: {failures} host(s) failed, more than max_failures {allowed}"
                ),
            });
        }
        return;
    }
    let due = fan_out.waiting.range(wave.clone()).copied().filter(|&o| {
        rows.at(fan_out.position(o))
            .not_before
            .is_none_or(|t| t <= view.now)
    });
    let limit = if super::connector_of(view.checked, id).is_some_and(|c| c.batch().is_some()) {
        usize::MAX
    } else {
        view.room
    };
    for ordinal in merged(fan_out.pending.range(wave).copied(), due).take(limit) {
        out.push(Action::Start {
            step: id.to_string(),
            host: host(ordinal),
        });
    }
}

/// The fan-out's verdict once every child is finished.
fn finish_parent(id: &str, failures: usize, total: usize, allowed: usize, out: &mut Vec<Action>) {
    let (state, reason) = if failures > allowed {
        (
            StepState::Failed,
            format!("{failures} of {total} host(s) failed (max_failures {allowed})"),
        )
    } else {
        let note = match failures {
            0 => format!("{total} host(s) succeeded"),
            _ => format!("{failures} of {total} host(s) failed, within max_failures {allowed}"),
        };
        (StepState::Succeeded, note)
    };
    out.push(Action::FinishParent {
        step: id.to_string(),
        state,
        reason: Some(reason),
    });
}

/// Two ascending sequences merged into one ascending sequence.
fn merged(
    a: impl Iterator<Item = usize>,
    b: impl Iterator<Item = usize>,
) -> impl Iterator<Item = usize> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

fn finish_or_rollback(view: &View, rows: &RunRows, failing: bool, out: &mut Vec<Action>) {
    if !rows.all_finished() {
        return;
    }
    let rolled_back = rows.undo().next().is_some();
    let wants_rollback =
        failing && view.checked.runbook.on_failure == crate::runbook::OnFailure::Rollback;
    if wants_rollback && !rolled_back {
        let undo_rows = rollback_rows(view, rows);
        if !undo_rows.is_empty() {
            out.push(Action::BeginRollback { rows: undo_rows });
            return;
        }
    }
    out.push(Action::FinishRun {
        failed: failing || rolled_back,
    });
}

/// Undo rows for every succeeded step (or host) with `undo`, in reverse topological order.
fn rollback_rows(view: &View, rows: &RunRows) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for &index in view
        .checked
        .dag
        .topological()
        .unwrap_or_default()
        .iter()
        .rev()
    {
        let Some((id, step)) = view.checked.runbook.steps.get_index(index) else {
            continue;
        };
        if step.undo.is_none() {
            continue;
        }
        let undo_id = format!("{UNDO_PREFIX}{}", id.value);
        if step.for_each.is_some() {
            let hosts = rows
                .hosts(&id.value)
                .filter(|r| r.state == StepState::Succeeded);
            out.extend(hosts.map(|r| (undo_id.clone(), r.host.clone())));
        } else if rows.step(index).state == StepState::Succeeded {
            out.push((undo_id, String::new()));
        }
    }
    out
}

/// Steps past their `deadline` and not finished, not reported yet.
fn overdue(view: &View, rows: &RunRows) -> Vec<Action> {
    let mut out = Vec::new();
    for &index in rows.with_deadline() {
        let id = view.checked.dag.id(index);
        if rows.step(index).state.is_terminal() || view.overdue.contains(id) {
            continue;
        }
        let deadline = view.checked.times[index]
            .deadline
            .as_ref()
            .and_then(|d| d.resolve(view.checked.tz, view.anchor).ok());
        if let Some(deadline) = deadline
            .map(|d| d.with_timezone(&Utc))
            .filter(|d| *d <= view.now)
        {
            out.push(Action::Overdue {
                step: id.to_string(),
                deadline,
            });
        }
    }
    out
}

/// The next deadline still to watch: of a step not finished and not reported overdue.
pub fn next_deadline(view: &View) -> Option<DateTime<Utc>> {
    let rows = view.rows;
    rows.with_deadline()
        .iter()
        .filter(|&&i| {
            !rows.step(i).state.is_terminal() && !view.overdue.contains(view.checked.dag.id(i))
        })
        .filter_map(|&i| {
            view.checked.times[i]
                .deadline
                .as_ref()?
                .resolve(view.checked.tz, view.anchor)
                .ok()
        })
        .map(|d| d.with_timezone(&Utc))
        .min()
}

/// Undo rows run one step at a time, in the order they were inserted (reverse topological);
/// the hosts of one step together.
fn undo_starts(rows: &RunRows) -> Vec<Action> {
    let undo: Vec<&StepRow> = rows.undo().collect();
    let Some(open) = undo.iter().find(|r| !r.state.is_terminal()) else {
        return Vec::new();
    };
    undo.iter()
        .filter(|r| r.step == open.step && r.state == StepState::Pending)
        .map(|r| Action::Start {
            step: r.step.clone(),
            host: r.host.clone(),
        })
        .collect()
}
