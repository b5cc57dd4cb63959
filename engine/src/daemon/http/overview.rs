//! The overview at `/` ([`crate::dashboard::overview`]) and the runbook pages
//! `/runbooks/{name}` ([`crate::dashboard::runbook`]); a signed-in person only.
//!
//! Every read is bounded by what is active, not by history: the unfinished runs
//! (`runs_unfinished` index) and their step rows, the decisions of the rows awaiting a person,
//! the last [`FAILED_RUNS`] failed runs (`runs_state_started`), the last [`RECENT_RUNS`] runs
//! (`runs_started`), and the `runbook.rejected` events (`events_action`) for when each file
//! still rejected was recorded. Which files are rejected now is the daemon's loaded folder
//! (`Runbooks::rejected`): a rejection followed by a good edit is no longer shown.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::auth::SignedIn;
use super::{html, unavailable};
use crate::daemon::Shared;
use crate::daemon::runbooks::Runbooks;
use crate::dashboard::overview::{
    self, NextFire, OverviewView, Progress, RejectedFile, RunWait, RunbookNext,
};
use crate::dashboard::runbook;
use crate::pages;
use crate::store::{EventRow, RunState, Store, StoreError};

/// How many next cycles the overview shows per runbook.
pub const NEXT_CYCLES: usize = 3;
/// How many recent runs the overview shows.
const RECENT_RUNS: u32 = 50;
/// How many recent failed runs the overview shows.
const FAILED_RUNS: u32 = 10;

/// `GET /`: the overview.
pub async fn index<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    signed_in: SignedIn,
) -> Response {
    match view(&shared, &signed_in).await {
        Ok(view) => {
            let head = html! { style { (maud::PreEscaped(crate::dashboard::STYLE)) } };
            let body = overview::overview_body(&view).into_string();
            html(
                StatusCode::OK,
                pages::layout_with_head("Overview", &head.into_string(), &body),
            )
        }
        Err(e) => unavailable(e),
    }
}

async fn view<S: Store>(
    shared: &Shared<S>,
    signed_in: &SignedIn,
) -> Result<OverviewView, StoreError> {
    let now = shared.clock.now();
    let store = &shared.engine.store;
    let mut view = OverviewView {
        now,
        operates: super::actions::operates(signed_in),
        footer: maud::PreEscaped(
            super::actions::trigger_links(shared, signed_in) + &signed_in.bar(shared),
        ),
        ..OverviewView::default()
    };
    for run in store.unfinished_runs().await? {
        let rows = super::dashboard::open_rows(store.as_ref(), &run.id).await?;
        let waiting = super::waiting::waiting(shared, &run, &rows.open).await?;
        view.waiting.extend(waiting.into_iter().map(|wait| RunWait {
            run: run.clone(),
            wait,
        }));
        if let Some(checked) = shared.checked_for_run(&run) {
            view.overdue
                .extend(overview::overdue_steps(&checked, &run, &rows.own, now));
        }
        view.running
            .push(Progress::of(run, &rows.own, &rows.host_counts));
    }
    view.failed = store.runs_in_state(RunState::Failed, FAILED_RUNS).await?;
    view.recent = store.runs(RECENT_RUNS).await?;
    let runbooks = shared.runbooks();
    view.runbooks = next_cycles(&runbooks, now);
    view.rejected = rejected_files(&runbooks, &rejection_events(shared, &runbooks).await?);
    Ok(view)
}

/// Every loaded runbook with its next [`NEXT_CYCLES`] cycles from `now`.
pub fn next_cycles(runbooks: &Runbooks, now: chrono::DateTime<chrono::Utc>) -> Vec<RunbookNext> {
    runbooks
        .by_name
        .values()
        .map(|loaded| {
            let checked = &loaded.checked;
            RunbookNext {
                name: checked.runbook.name.value.clone(),
                description: checked.runbook.description.clone(),
                next: next_fires(checked, now, NEXT_CYCLES),
            }
        })
        .collect()
}

/// The next `count` cycles of `checked` from `now`.
pub fn next_fires(
    checked: &crate::validate::CheckedRunbook,
    now: chrono::DateTime<chrono::Utc>,
    count: usize,
) -> Vec<NextFire> {
    checked
        .schedule
        .fires_from(now)
        .take(count)
        .map(|f| NextFire {
            cycle: f.cycle.to_string(),
            at: f.fires_at.to_utc(),
            blackout: f.blackout,
        })
        .collect()
}

/// The `runbook.rejected` events, read only when a file is rejected now.
pub async fn rejection_events<S: Store>(
    shared: &Shared<S>,
    runbooks: &Runbooks,
) -> Result<Vec<EventRow>, StoreError> {
    if runbooks.rejected.is_empty() {
        return Ok(Vec::new());
    }
    shared
        .engine
        .store
        .events_by_action(&["runbook.rejected"])
        .await
}

/// The files rejected now, each with when its rejection (same file, same content) was
/// recorded.
pub fn rejected_files(runbooks: &Runbooks, events: &[EventRow]) -> Vec<RejectedFile> {
    runbooks
        .rejected
        .iter()
        .map(|r| {
            let file = r.file.display().to_string();
            let at = events
                .iter()
                .rev()
                .find(|e| {
                    e.details["file"].as_str() == Some(file.as_str())
                        && e.details["content_hash"].as_str() == Some(r.text_hash.as_str())
                })
                .map(|e| e.at);
            RejectedFile {
                file,
                errors: r.errors.clone(),
                kept: r.kept.clone(),
                at,
            }
        })
        .collect()
}

/// How many runs the runbook page lists.
const RUNBOOK_RUNS: u32 = 20;
/// How many next cycles the runbook page lists.
const RUNBOOK_CYCLES: usize = 6;

/// `GET /runbooks/{name}`: a loaded runbook's page ([`crate::dashboard::runbook`]); 404 for a
/// name no loaded runbook has.
pub async fn runbook_page<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    signed_in: SignedIn,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let runbooks = shared.runbooks();
    let Some(loaded) = runbooks.by_name.get(&name) else {
        return super::error(StatusCode::NOT_FOUND, "There is no such runbook.");
    };
    let store = &shared.engine.store;
    let runs = match store.runs_of_runbook(&name, RUNBOOK_RUNS).await {
        Ok(runs) => runs,
        Err(e) => return unavailable(e),
    };
    let events = match rejection_events(&shared, &runbooks).await {
        Ok(events) => events,
        Err(e) => return unavailable(e),
    };
    let rejected = rejected_files(&runbooks, &events)
        .into_iter()
        .find(|r| r.kept.as_deref() == Some(name.as_str()));
    let now = shared.clock.now();
    let view = runbook::RunbookView {
        checked: &loaded.checked,
        file: loaded.file.display().to_string(),
        content_hash: loaded.content_hash.clone(),
        commit: loaded.commit.clone(),
        now,
        next: next_fires(&loaded.checked, now, RUNBOOK_CYCLES),
        runs,
        rejected,
        operates: super::actions::operates(&signed_in),
    };
    let head = html! { style { (maud::PreEscaped(crate::dashboard::STYLE)) } };
    let body = runbook::runbook_body(&view).into_string();
    html(
        StatusCode::OK,
        pages::layout_with_head(&format!("Runbook {name}"), &head.into_string(), &body),
    )
}
