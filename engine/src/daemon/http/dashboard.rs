//! Every handler here needs a signed-in person ([`SignedIn`]).
//!
//! The audit browser (`GET /audit`, [`crate::dashboard::audit`]): one keyset page of the
//! store's filtered events ([`crate::store::Store::audit_events`]) and the chain's state.
//!
//! The month calendar (`GET /calendar`, [`crate::dashboard::month`]) and the run page (`GET /runs/{id}`) and its live fragment (`GET /runs/{id}/live`): both read
//! the run, its own step rows (not its hosts'), its rows counted by step and state (an
//! aggregate), one page of hosts per state it has hosts in, its hosts waiting for people, its
//! step-level events (not each host's) and one page of its audit trail (counted once), each
//! an indexed query, and render
//! [`crate::dashboard::run`]'s section; the page wraps it in the document shell with the
//! live script, the fragment is the section alone (what the script swaps in).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::auth::SignedIn;
use super::{error, html, unavailable};
use crate::calendar::Cycle;
use crate::daemon::Shared;
use crate::dashboard::STATES;
use crate::dashboard::audit::{self, AuditParams};
use crate::dashboard::month;
use crate::dashboard::run::{
    self, EVENTS_PER_PAGE, HOSTS_PER_PAGE, HostGroup, RunQuery, RunSection,
};
use crate::pages;
use crate::store::{StepRow, StepState, Store, StoreError};

/// At most this many hosts awaiting input (and as many interrupted) are read for the run's
/// "waiting on" list and buttons.
const OPEN_HOSTS_READ: u32 = 500;

/// The run page.
pub async fn run_page<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<RunQuery>,
) -> Response {
    let (title, head, section) = match render(&shared, &signed_in, &id, &query).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let body = html! {
        h1 { (title) }
        (section)
        (run::live_script())
    };
    html(
        StatusCode::OK,
        pages::layout_with_head(&title, &head.into_string(), &body.into_string()),
    )
}

/// The run page's live section alone.
pub async fn live<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<RunQuery>,
) -> Response {
    match render(&shared, &signed_in, &id, &query).await {
        Ok((_, _, section)) => html(StatusCode::OK, section.into_string()),
        Err(response) => response,
    }
}

/// The month calendar's query parameters.
#[derive(Debug, Default, serde::Deserialize)]
pub struct MonthQuery {
    /// `YYYY-MM`; this month when absent.
    month: Option<String>,
    /// One runbook's name; every runbook when absent or empty.
    runbook: Option<String>,
}

/// The month calendar page.
pub async fn month_page<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    _signed_in: SignedIn,
    Query(query): Query<MonthQuery>,
) -> Response {
    let today = shared.clock.now().date_naive();
    let month = match query.month.as_deref().filter(|m| !m.is_empty()) {
        None => Cycle::of(today),
        Some(text) => match text.parse::<Cycle>() {
            Ok(month) => month,
            Err(_) => return error(StatusCode::BAD_REQUEST, "The month is not YYYY-MM."),
        },
    };
    let selected = query.runbook.filter(|r| !r.is_empty());
    let runbooks = shared.runbooks();
    let shown = runbooks
        .by_name
        .values()
        .map(|loaded| &loaded.checked)
        .filter(|c| selected.as_ref().is_none_or(|s| *s == c.runbook.name.value));
    let (mut entries, mut blackouts) = (Vec::new(), Vec::new());
    for checked in shown {
        entries.extend(month::entries_of(checked, month));
        blackouts.extend(month::blackouts_of(checked, month));
    }
    entries.sort_by(|a, b| (a.date, &a.time, &a.runbook).cmp(&(b.date, &b.time, &b.runbook)));
    let recorded = shared
        .engine
        .store
        .events_by_action(&month::MISSED_ACTIONS)
        .await;
    match recorded {
        Ok(events) => month::mark_missed(&mut entries, &month::missed_of(&events)),
        Err(e) => return unavailable(e),
    }
    let view = month::MonthView {
        month,
        today,
        runbooks: runbooks.by_name.keys().cloned().collect(),
        selected,
        entries,
        blackouts,
    };
    let head = html! { style { (maud::PreEscaped(crate::dashboard::STYLE)) } };
    html(
        StatusCode::OK,
        pages::layout_with_head(
            &format!("Patch calendar {month}"),
            &head.into_string(),
            &month::month_body(&view).into_string(),
        ),
    )
}

/// The page's title, extra head markup and live section, or the error page to send.
async fn render<S: Store>(
    shared: &Shared<S>,
    signed_in: &SignedIn,
    id: &str,
    query: &RunQuery,
) -> Result<(String, maud::Markup, maud::Markup), Response> {
    let store = &shared.engine.store;
    let run = match store.run(id).await {
        Ok(Some(run)) => run,
        Ok(None) => return Err(error(StatusCode::NOT_FOUND, "There is no such run.")),
        Err(e) => return Err(unavailable(e)),
    };
    let OpenRows {
        own,
        host_counts,
        open: steps,
    } = open_rows(store.as_ref(), id).await.map_err(unavailable)?;
    let host_groups = host_groups(store.as_ref(), id, query, &host_counts)
        .await
        .map_err(unavailable)?;
    let events = store.run_step_events(id).await.map_err(unavailable)?;
    let audit = store
        .run_events_page(id, query.audit_page, EVENTS_PER_PAGE)
        .await
        .map_err(unavailable)?;
    let checked = shared.checked_for_run(&run);
    let waiting = super::waiting::waiting(shared, &run, &steps)
        .await
        .map_err(unavailable)?;
    let actions = super::actions::run_actions(shared, signed_in, &run, &steps, checked.as_deref())
        .await
        .map_err(unavailable)?;
    let path = pages::run_path(&run.id);
    let section = run::run_section(&RunSection {
        run: &run,
        checked: checked.as_deref(),
        steps: &own,
        host_counts: &host_counts,
        host_groups: &host_groups,
        events: &events,
        audit: &audit,
        query,
        path: &path,
        now: shared.clock.now(),
        waiting: &waiting,
        actions,
    });
    let title = match run.cycle.as_deref() {
        None => format!("Manual run of {}", run.runbook),
        Some(cycle) => format!("Run {cycle} of {}", run.runbook),
    };
    Ok((title, run::run_head(&run), section))
}

/// What a view of a run reads of its rows, in a bounded number of indexed queries however many
/// hosts it has: its own step rows, its hosts counted by (step, state), and the rows that may
/// wait for people (the own rows and up to [`OPEN_HOSTS_READ`] hosts of each of the states
/// awaiting input and interrupted).
pub struct OpenRows {
    pub own: Vec<StepRow>,
    pub host_counts: Vec<(String, StepState, u64)>,
    pub open: Vec<StepRow>,
}

/// Reads the [`OpenRows`] of run `id` (the run page and the overview).
pub async fn open_rows<S: Store>(store: &S, id: &str) -> Result<OpenRows, StoreError> {
    let own = store.run_step_rows(id).await?;
    let host_counts = run::host_counts(&own, &store.run_row_counts(id).await?);
    let mut open = own.clone();
    for state in [StepState::AwaitingInput, StepState::Interrupted] {
        if host_counts.iter().any(|(_, s, _)| *s == state) {
            open.extend(store.run_host_rows(id, state, 0, OPEN_HOSTS_READ).await?);
        }
    }
    Ok(OpenRows {
        own,
        host_counts,
        open,
    })
}

/// The audit browser (`GET /audit`): one keyset page of the filtered events and the chain's
/// state as the daemon last verified it ([`crate::daemon::chain`]).
pub async fn audit_page<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    _signed_in: SignedIn,
    Query(params): Query<AuditParams>,
) -> Response {
    let query = match params.query() {
        Ok(query) => query,
        Err(bad) => return error(StatusCode::BAD_REQUEST, &bad.to_string()),
    };
    let cursor = query.cursor;
    let page = match shared.engine.store.audit_events(query).await {
        Ok(page) => page,
        Err(e) => return unavailable(e),
    };
    let runbooks: Vec<String> = shared.runbooks().by_name.keys().cloned().collect();
    let body = audit::audit_body(&audit::AuditView {
        params: &params,
        cursor,
        page: &page,
        chain: &shared.chain.state(),
        runbooks: &runbooks,
    });
    let head = html! { style { (maud::PreEscaped(crate::dashboard::STYLE)) } };
    html(
        StatusCode::OK,
        pages::layout_with_head("Audit log", &head.into_string(), &body.into_string()),
    )
}

/// One page of hosts for each state the run has hosts in (the page the query asks for): at
/// most one indexed query per state.
async fn host_groups<S: Store>(
    store: &S,
    id: &str,
    query: &RunQuery,
    host_counts: &[(String, StepState, u64)],
) -> Result<Vec<HostGroup>, StoreError> {
    let mut groups = Vec::new();
    for state in STATES {
        let count: u64 = host_counts
            .iter()
            .filter(|(_, s, _)| *s == state)
            .map(|(_, _, n)| n)
            .sum();
        if count == 0 {
            continue;
        }
        let page = query.hosts_page_of(state, count);
        let offset = (page - 1) * u64::from(HOSTS_PER_PAGE);
        let rows = store
            .run_host_rows(id, state, offset, HOSTS_PER_PAGE)
            .await?;
        groups.push(HostGroup {
            state,
            count,
            page,
            rows,
        });
    }
    Ok(groups)
}
