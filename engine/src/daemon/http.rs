//! The daemon's HTTP server (DESIGN §7), on axum: `GET /healthz`, `GET /metrics`
//! (Prometheus text), `GET /` (runbooks, next cycles, recent runs) and `GET /runs/{id}` (a
//! run's steps and audit trail), and the email links (`GET`/`HEAD`/`POST /links/{token}`,
//! in [`links`](mod@links)), and the JSON API under `/api/v1` ([`api`]). Pages are built by [`crate::pages`]; handlers only read the
//! store and the loaded runbooks and turn them into the pages' view structs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

pub mod api;
pub mod links;
pub mod waiting;

use super::Shared;
use crate::pages;
use crate::store::{EventFilter, Store};

/// How many next cycles the index shows per runbook.
const NEXT_CYCLES: usize = 3;
/// How many recent runs the index shows.
const RECENT_RUNS: u32 = 50;

/// The routes, over the daemon's shared state.
pub fn router<S: Store>(shared: Arc<Shared<S>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/", get(index::<S>))
        .route("/runs/{id}", get(run_page::<S>))
        .route(
            "/links/{token}",
            get(links::show::<S>)
                .post(links::decide::<S>)
                .layer(Extension(Arc::new(links::LinkRoutes::default()))),
        )
        .nest("/api/v1", api::routes::<S>().0)
        .fallback(not_found)
        .with_state(shared)
}

pub(super) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                pages::content_security_policy(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

pub(super) fn error(status: StatusCode, text: &str) -> Response {
    html(status, pages::error_page(status.as_u16(), text))
}

/// A store error as a 503 page (the details go to the log, not to the visitor).
pub(super) fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!("http: {e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The database does not answer right now.",
    )
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "There is no such page.")
}

async fn healthz<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match shared.engine.store.chain_head().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!("healthz: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn metrics<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match super::metrics::text(&shared).await {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn index<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    let now = shared.clock.now();
    let runbooks = shared
        .runbooks()
        .by_name
        .values()
        .map(|loaded| {
            let checked = &loaded.checked;
            let next_cycles = checked
                .schedule
                .fires_from(now)
                .take(NEXT_CYCLES)
                .map(|f| pages::NextCycle {
                    cycle: f.cycle.to_string(),
                    at: f.fires_at.to_utc(),
                    blackout: f.blackout,
                })
                .collect();
            pages::RunbookRow {
                name: checked.runbook.name.value.clone(),
                description: checked.runbook.description.clone(),
                next_cycles,
            }
        })
        .collect();
    let runs = match shared.engine.store.runs(RECENT_RUNS).await {
        Ok(runs) => runs,
        Err(e) => return unavailable(e),
    };
    let runs = runs
        .into_iter()
        .map(|r| pages::RunRow {
            cycle: crate::run::cycle_shown(&r),
            id: r.id,
            runbook: r.runbook,
            state: r.state.as_str().into(),
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
        .collect();
    html(
        StatusCode::OK,
        pages::index_page(&pages::IndexView { runbooks, runs }),
    )
}

async fn run_page<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Path(id): Path<String>,
) -> Response {
    let store = &shared.engine.store;
    let run = match store.run(&id).await {
        Ok(Some(run)) => run,
        Ok(None) => return error(StatusCode::NOT_FOUND, "There is no such run."),
        Err(e) => return unavailable(e),
    };
    let (steps, events) = match (
        store.steps(&id).await,
        store
            .events(EventFilter {
                run_id: Some(id.clone()),
                since: None,
            })
            .await,
    ) {
        (Ok(steps), Ok(events)) => (steps, events),
        (Err(e), _) | (_, Err(e)) => return unavailable(e),
    };
    let waiting = match waiting::waiting(&shared, &run, &steps).await {
        Ok(waiting) => waiting,
        Err(e) => return unavailable(e),
    };
    let cycle = crate::run::cycle_shown(&run);
    let view = pages::RunView {
        id: run.id,
        runbook: run.runbook,
        cycle,
        state: run.state.as_str().into(),
        runbook_hash: run.content_hash,
        runbook_commit: run.commit,
        started_at: run.started_at,
        finished_at: run.finished_at,
        steps: steps
            .into_iter()
            .map(|s| pages::StepRow {
                step: s.step,
                host: s.host,
                state: crate::run::state_word(s.state).into(),
                started_at: s.started_at,
                finished_at: s.finished_at,
                reason: s.reason,
            })
            .collect(),
        waiting,
        audit: events
            .into_iter()
            .map(|e| pages::AuditRow {
                seq: u64::try_from(e.seq).unwrap_or_default(),
                at: e.at,
                actor: e.actor,
                action: e.action,
                step: e.step_id,
                details: e.details.to_string(),
            })
            .collect(),
    };
    html(StatusCode::OK, pages::run_page(&view))
}
