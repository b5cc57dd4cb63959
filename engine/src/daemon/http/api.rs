//! The JSON API under `/api/v1` (DESIGN §7, issue 6 item 7), with bearer tokens
//! ([`crate::daemon::tokens`]): every route but `GET /openapi.json` needs
//! `Authorization: Bearer <token>` and acts as `api:<token name>`.
//!
//! | route | does |
//! |---|---|
//! | `GET /runbooks` | loaded runbooks: name, description, timezone, params, next cycles |
//! | `GET /runs?limit=N&after=ID` | recent runs, newest first (default 50, at most 1000); `next` names the cursor of the next page |
//! | `GET /runs/{id}` | a run, its rows counted by step and state, and the first page (50) of its step rows and of its audit trail with `steps_next` / `audit_next` |
//! | `GET /runs/{id}/steps?limit=N&after=C` | one page of a run's step rows (hosts' included) in insertion order, with `next` |
//! | `GET /runs/{id}/events?limit=N&after=SEQ` | one page of a run's audit events in `seq` order, with `next` |
//! | `POST /runs` | `{"runbook", "params": {..}, "cycle"?, "rerun"?}` starts a run; 201 with the run |
//! | `POST /runs/{id}/cancel` | cancels a running run (its attempts in flight are stopped) |
//! | `POST /runs/{id}/steps/{step}/resume` | `{"host"?, "decision": "retry"\|"skip"\|"abort", "reason"?}` on an interrupted row |
//! | `POST /runs/{id}/steps/{step}/decision` | `{"host"?, "choice", "comment"?, "reason"?}` on a row awaiting input (`reason`: an override's, required) |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of these routes (no token needed) |
//!
//! Tokens have scopes ([`crate::daemon::tokens::Scope`]): reads need `read`, triggering,
//! cancelling and resuming need `operate` (else 403). A decision with an `approve` token is its
//! owner's: refused (403, an `api.refused` event) unless the owner is one of the step's people,
//! and counted once per person with their link decision. An `admin` token without an owner takes
//! the operator path ([`Engine::decide_as_operator`], an override): the caller need not be one of
//! the step's approvers, the decision's recipient is its actor `api:<name>` (so one token decides
//! a row at most once), it needs a written `"reason"` (else 400 naming the field), it is audited
//! with `"override": true` and the reason, and it counts towards the quorum like any other. Errors are `{"error": "..."}` with a fitting status: 400 bad request,
//! 401 no or unknown token, 404 unknown run/runbook/route, 409 the run or step is not in a
//! state for it, 503 the database does not answer.
//!
//! Lists come in bounded pages (keyset cursors, each page one indexed query): a page that is
//! full carries `"next"`, the `after` of the page that follows; the last page has `"next":
//! null`. A page is at most 1,000 items, so no list is built whole in memory whatever the run.
//!
//! [`Engine::decide_as_operator`]: crate::run::Engine::decide_as_operator

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use crate::calendar::Cycle;
use crate::daemon::new_run_id;
use crate::daemon::tokens::{Grant, Scope};
use crate::run::{Resolution, RunError, RunSpec};
use crate::store::{
    EventRow, NewDecision, RunRow, RunState, StepRow, StepState, Store, StoreError,
};

/// How many next cycles `GET /runbooks` gives per runbook.
const NEXT_CYCLES: usize = 3;
/// `GET /runs` without `limit`, and its largest `limit`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;
/// How many step rows and audit events `GET /runs/{id}` gives: the paged routes' default page.
const DETAIL_PAGE: u32 = DEFAULT_LIMIT;
/// How long `POST /runs/{id}/cancel` waits for the driver to commit the cancellation.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// The longest comment kept, in characters.
const MAX_COMMENT: usize = 2000;

type St<S> = Arc<Shared<S>>;

/// The API's routes (relative to `/api/v1`) and the (method, path) of each, recorded as they
/// are added, for the check that the OpenAPI document lists them all.
pub fn routes<S: Store>() -> (Router<St<S>>, Vec<(&'static str, &'static str)>) {
    let routes = Routes::<S>::default()
        .add("get", "/openapi.json", openapi_json)
        .add("get", "/runbooks", runbooks::<S>)
        .add("get", "/runs", runs::<S>)
        .add("post", "/runs", trigger::<S>)
        .add("get", "/runs/{id}", run_detail::<S>)
        .add("get", "/runs/{id}/steps", run_steps::<S>)
        .add("get", "/runs/{id}/events", run_events::<S>)
        .add("post", "/runs/{id}/cancel", cancel::<S>)
        .add("post", "/runs/{id}/steps/{step}/resume", resume::<S>)
        .add("post", "/runs/{id}/steps/{step}/decision", decision::<S>);
    let router = routes
        .router
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such API route") });
    (router, routes.listed)
}

/// A router that remembers what it routes.
struct Routes<S: Store> {
    router: Router<St<S>>,
    listed: Vec<(&'static str, &'static str)>,
}

impl<S: Store> Default for Routes<S> {
    fn default() -> Self {
        Routes {
            router: Router::new(),
            listed: Vec::new(),
        }
    }
}

impl<S: Store> Routes<S> {
    /// Routes `method` (`get` or `post`) of `path` to `handler`.
    fn add<H, T>(mut self, method: &'static str, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, St<S>>,
        T: 'static,
    {
        let filter = match method {
            "get" => MethodFilter::GET,
            "post" => MethodFilter::POST,
            other => unreachable!("method {other}"),
        };
        self.router = self.router.route(path, on(filter, handler));
        self.listed.push((method, path));
        self
    }
}

/// `{"error": text}` with `status`.
fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": text.into() })),
    )
        .into_response()
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// A store failure: 503 (the details go to the log).
fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!("api: {e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database does not answer right now",
    )
}

/// The authenticated caller: `api:<token name>`, and what its token may do.
pub struct Caller {
    pub actor: String,
    pub grant: Grant,
}

impl Caller {
    /// A 403 answer unless the token holds `scope`.
    fn refusal(&self, scope: Scope) -> Option<Response> {
        if self.grant.allows(scope) {
            return None;
        }
        let name = format!("{scope:?}").to_lowercase();
        Some(error(
            StatusCode::FORBIDDEN,
            format!("this token does not hold the `{name}` scope"),
        ))
    }
}

impl<S: Store> FromRequestParts<St<S>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St<S>) -> Result<Self, Response> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let refuse = |text: &str| {
            let mut response = error(StatusCode::UNAUTHORIZED, text);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"patchday\""),
            );
            response
        };
        let Some(token) = given else {
            return Err(refuse(
                "an `Authorization: Bearer <token>` header is required",
            ));
        };
        match state.api_tokens().check(token) {
            Some(grant) => Ok(Caller {
                actor: format!("api:{}", grant.name),
                grant: grant.clone(),
            }),
            None => Err(refuse("unknown token")),
        }
    }
}

/// A run as the API shows it (the snapshot's runbook text left out).
pub fn run_json(run: &RunRow) -> Value {
    json!({
        "id": run.id,
        "runbook": run.runbook,
        "cycle": run.cycle,
        "state": run.state.as_str(),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "content_hash": run.content_hash,
        "commit": run.commit,
        "params": run.snapshot.get("params").cloned().unwrap_or_else(|| json!({})),
        "rerun": run.rerun,
    })
}

async fn runbooks<S: Store>(State(shared): State<St<S>>, caller: Caller) -> Response {
    if let Some(refused) = caller.refusal(Scope::Read) {
        return refused;
    }
    let now = shared.clock.now();
    let runbooks = shared.runbooks();
    let list: Vec<Value> = runbooks
        .by_name
        .values()
        .map(|loaded| {
            let checked = &loaded.checked;
            let cycles: Vec<Value> = checked
                .schedule
                .fires_from(now)
                .take(NEXT_CYCLES)
                .map(|f| {
                    json!({
                        "cycle": f.cycle.to_string(),
                        "patch_tuesday": f.patch_tuesday.to_string(),
                        "fires_at": f.fires_at.to_rfc3339(),
                        "blackout": f.blackout,
                    })
                })
                .collect();
            let params: Vec<Value> = checked
                .runbook
                .params
                .iter()
                .map(|(name, p)| {
                    json!({
                        "name": name.value,
                        "default": if p.secret { None } else { p.default.clone() },
                        "choices": p.choices,
                        "secret": p.secret,
                    })
                })
                .collect();
            json!({
                "name": checked.runbook.name.value,
                "description": checked.runbook.description,
                "timezone": checked.tz.name(),
                "params": params,
                "next_cycles": cycles,
            })
        })
        .collect();
    ok(StatusCode::OK, json!({ "runbooks": list }))
}

/// A list's page: how many, and the cursor (`next` of the page before) it comes after.
#[derive(Deserialize)]
struct Page<C> {
    limit: Option<u32>,
    after: Option<C>,
}

impl<C> Page<C> {
    /// The page size asked for, within the bounds.
    fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

type PageQuery<C> = Result<Query<Page<C>>, axum::extract::rejection::QueryRejection>;

fn bad_page() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "`limit` must be a positive integer and `after` the `next` of a page",
    )
}

/// `"next"`: the cursor of the last item when the page is full, else null.
fn next_of<T>(page: &[T], limit: u32, cursor: impl Fn(&T) -> Value) -> Value {
    match page.last() {
        Some(last) if page.len() >= limit as usize => cursor(last),
        _ => Value::Null,
    }
}

async fn runs<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    query: PageQuery<String>,
) -> Response {
    if let Some(refused) = caller.refusal(Scope::Read) {
        return refused;
    }
    let Ok(Query(page)) = query else {
        return bad_page();
    };
    let limit = page.limit();
    let store = &shared.engine.store;
    let runs = match &page.after {
        None => store.runs(limit).await,
        Some(after) => match store.run(after).await {
            Ok(Some(_)) => store.runs_after(after, limit).await,
            Ok(None) => return bad_page(),
            Err(e) => Err(e),
        },
    };
    match runs {
        Ok(runs) => ok(
            StatusCode::OK,
            json!({
                "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
                "next": next_of(&runs, limit, |r| json!(r.id)),
            }),
        ),
        Err(e) => unavailable(e),
    }
}

/// A request for a page of run `id`'s rows or events: its `limit` and `after` cursor, or the
/// response to send (the caller may not read, a bad query, no such run, the store down).
async fn run_page_request<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    id: &str,
    query: PageQuery<i64>,
) -> Result<(u32, i64), Response> {
    if let Some(refused) = caller.refusal(Scope::Read) {
        return Err(refused);
    }
    let Ok(Query(page)) = query else {
        return Err(bad_page());
    };
    match shared.engine.store.run(id).await {
        Ok(Some(_)) => Ok((page.limit(), page.after.unwrap_or(0))),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, format!("no run {id}"))),
        Err(e) => Err(unavailable(e)),
    }
}

async fn run_steps<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    Path(id): Path<String>,
    query: PageQuery<i64>,
) -> Response {
    let (limit, after) = match run_page_request(&shared, &caller, &id, query).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    match shared.engine.store.run_steps_after(&id, after, limit).await {
        Ok(rows) => ok(
            StatusCode::OK,
            json!({
                "steps": rows.iter().map(|(_, row)| step_json(row)).collect::<Vec<_>>(),
                "next": next_of(&rows, limit, |(position, _)| json!(position)),
            }),
        ),
        Err(e) => unavailable(e),
    }
}

async fn run_events<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    Path(id): Path<String>,
    query: PageQuery<i64>,
) -> Response {
    let (limit, after) = match run_page_request(&shared, &caller, &id, query).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    match shared
        .engine
        .store
        .run_events_after(&id, after, limit)
        .await
    {
        Ok(events) => ok(
            StatusCode::OK,
            json!({
                "events": events.iter().map(event_json).collect::<Vec<_>>(),
                "next": next_of(&events, limit, |e| json!(e.seq)),
            }),
        ),
        Err(e) => unavailable(e),
    }
}

fn step_json(s: &StepRow) -> Value {
    json!({
        "step": s.step,
        "host": s.host,
        "state": s.state,
        "attempt": s.attempt,
        "not_before": s.not_before,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "outputs": s.outputs,
        "reason": s.reason,
    })
}

fn event_json(e: &EventRow) -> Value {
    json!({
        "seq": e.seq,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "step": e.step_id,
        "details": e.details,
        "hash": e.hash,
    })
}

/// `GET /runs/{id}`: the run, its rows counted by step and state (the `step_figures`
/// aggregate, no row read), and the first page of its step rows and of its audit events with
/// the cursors of the paged routes (`steps_next`, `audit_next`: null when the page holds them
/// all). Four indexed queries, each bounded, however many hosts the run has.
async fn run_detail<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = caller.refusal(Scope::Read) {
        return refused;
    }
    let store = &shared.engine.store;
    let run = match store.run(&id).await {
        Ok(Some(run)) => run,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no run {id}")),
        Err(e) => return unavailable(e),
    };
    match detail_of(store.as_ref(), &run).await {
        Ok(detail) => ok(StatusCode::OK, detail),
        Err(e) => unavailable(e),
    }
}

/// The body of `GET /runs/{id}` for `run`.
async fn detail_of<S: Store>(store: &S, run: &RunRow) -> Result<Value, StoreError> {
    let counts = store.run_row_counts(&run.id).await?;
    let steps = store.run_steps_after(&run.id, 0, DETAIL_PAGE + 1).await?;
    let events = store.run_events_after(&run.id, 0, DETAIL_PAGE + 1).await?;
    let (steps, steps_next) = first_page(steps, |(position, _)| json!(position));
    let (events, audit_next) = first_page(events, |e| json!(e.seq));
    Ok(json!({
        "run": run_json(run),
        "counts": counts_json(counts),
        "steps": steps.iter().map(|(_, row)| step_json(row)).collect::<Vec<_>>(),
        "steps_next": steps_next,
        "audit": events.iter().map(event_json).collect::<Vec<_>>(),
        "audit_next": audit_next,
    }))
}

/// The first [`DETAIL_PAGE`] of `items` (read one more than a page) and the cursor of the page
/// that follows: the last item's when there are more, else null.
fn first_page<T>(mut items: Vec<T>, cursor: impl Fn(&T) -> Value) -> (Vec<T>, Value) {
    if items.len() <= DETAIL_PAGE as usize {
        return (items, Value::Null);
    }
    items.truncate(DETAIL_PAGE as usize);
    let next = items.last().map_or(Value::Null, cursor);
    (items, next)
}

/// A run's rows counted: in all, by state, and by step and state (steps in name order).
fn counts_json(counts: Vec<(String, StepState, u64)>) -> Value {
    let mut counts: Vec<(String, String, u64)> = counts
        .into_iter()
        .map(|(step, state, n)| (step, state_word(state), n))
        .collect();
    counts.sort();
    let mut by_state = serde_json::Map::new();
    for (_, state, n) in &counts {
        let total = by_state.entry(state.clone()).or_insert_with(|| json!(0u64));
        *total = json!(total.as_u64().unwrap_or(0) + n);
    }
    let by_step: Vec<Value> = counts
        .iter()
        .map(|(step, state, n)| json!({ "step": step, "state": state, "rows": n }))
        .collect();
    json!({
        "rows": counts.iter().map(|(_, _, n)| n).sum::<u64>(),
        "by_state": by_state,
        "by_step": by_step,
    })
}

/// A step state as the API writes it (`awaiting_input`).
fn state_word(state: StepState) -> String {
    json!(state).as_str().unwrap_or_default().to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    runbook: String,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    #[serde(default)]
    cycle: Option<String>,
    /// Why this run re-runs a cycle that had one already (audited): `rerun` with `cycle`.
    #[serde(default)]
    rerun: Option<String>,
}

async fn trigger<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    body: Result<Json<TriggerBody>, JsonRejection>,
) -> Response {
    if let Some(refused) = caller.refusal(Scope::Operate) {
        return refused;
    }
    let actor = caller.actor.clone();
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let runbooks = shared.runbooks();
    let Some(loaded) = runbooks.get(&body.runbook) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no runbook `{}` is loaded", body.runbook),
        );
    };
    let cycle: Option<Cycle> = match body.cycle.as_deref().map(str::parse) {
        None => None,
        Some(Ok(cycle)) => Some(cycle),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("cycle: {e}")),
    };
    let mut params = Vec::new();
    for (name, value) in body.params {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("param `{name}` must be a string, number or boolean"),
                );
            }
        };
        params.push((name, text));
    }
    let spec = run_spec(&shared, loaded, cycle, params, &actor, body.rerun);
    match start_run(&shared, loaded, spec).await {
        Ok(run) => ok(StatusCode::CREATED, json!({ "run": run_json(&run) })),
        Err(e) => run_error(e),
    }
}

/// What starting `loaded` now as `actor` asks for (the API's and the dashboard's trigger).
pub(super) fn run_spec<S: Store>(
    shared: &Shared<S>,
    loaded: &crate::daemon::LoadedRunbook,
    cycle: Option<Cycle>,
    params: Vec<(String, String)>,
    actor: &str,
    rerun: Option<String>,
) -> RunSpec {
    let now = shared.clock.now();
    RunSpec {
        commit: loaded.commit.clone(),
        id: new_run_id(&loaded.checked.runbook.name.value, now),
        cycle,
        start: now,
        params,
        actor: actor.to_string(),
        rerun,
    }
}

/// Starts the run `spec` asks for and its driver (the API's and the dashboard's trigger).
pub(super) async fn start_run<S: Store>(
    shared: &Arc<Shared<S>>,
    loaded: &crate::daemon::LoadedRunbook,
    spec: RunSpec,
) -> Result<RunRow, RunError> {
    let checked = loaded.checked.clone();
    let actor = spec.actor.clone();
    let run = shared.engine.start(&checked, spec).await?;
    tracing::info!("run {} started by {actor}: {}", run.id, run.runbook);
    shared.spawn_run(checked, run.id.clone());
    Ok(run)
}

/// The status a run error answers with (the API's and the dashboard's); `None`: the store
/// does not answer (a 503).
pub(super) fn run_error_status(e: &RunError) -> Option<StatusCode> {
    Some(match e {
        RunError::MissingParam(_)
        | RunError::UnknownParam(_)
        | RunError::BadChoice { .. }
        | RunError::MissingSecret(..)
        | RunError::NotAChoice { .. }
        | RunError::BadInputs { .. }
        | RunError::CycleKind(_) => StatusCode::BAD_REQUEST,
        RunError::NoSuchRun(_) => StatusCode::NOT_FOUND,
        RunError::NotInterrupted(..)
        | RunError::CycleTaken { .. }
        | RunError::Rows(_)
        | RunError::Version(_)
        | RunError::NotAwaitingInput { .. }
        | RunError::AlreadySettled { .. }
        | RunError::NotARecipient { .. }
        | RunError::Store(
            StoreError::DuplicateCycle { .. }
            | StoreError::AlreadyDecided { .. }
            | StoreError::Conflict { .. },
        ) => StatusCode::CONFLICT,
        RunError::Store(_) => return None,
    })
}

/// A run error as a status and message.
fn run_error(e: RunError) -> Response {
    match run_error_status(&e) {
        Some(status) => error(status, e.to_string()),
        None => unavailable(e),
    }
}

/// The run `id` and its loaded runbook, or the error response.
async fn run_and_runbook<S: Store>(
    shared: &Shared<S>,
    id: &str,
) -> Result<(RunRow, Arc<crate::validate::CheckedRunbook>), Response> {
    let run = match shared.engine.store.run(id).await {
        Ok(Some(run)) => run,
        Ok(None) => return Err(error(StatusCode::NOT_FOUND, format!("no run {id}"))),
        Err(e) => return Err(unavailable(e)),
    };
    let Some(checked) = shared.checked_for_run(&run) else {
        return Err(error(
            StatusCode::CONFLICT,
            format!("runbook `{}` of run {id} is not loaded", run.runbook),
        ));
    };
    Ok((run, checked))
}

async fn cancel<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = caller.refusal(Scope::Operate) {
        return refused;
    }
    let actor = caller.actor.clone();
    let (run, checked) = match run_and_runbook(&shared, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if run.state != RunState::Running {
        return error(
            StatusCode::CONFLICT,
            format!("run {id} is {}, not running", run.state.as_str()),
        );
    }
    match cancel_and_wait(&shared, checked, &id, &actor).await {
        Ok(run) if run.state != RunState::Running => {
            ok(StatusCode::OK, json!({ "run": run_json(&run) }))
        }
        // Still stopping what is in flight: accepted, not done yet.
        Ok(run) => ok(StatusCode::ACCEPTED, json!({ "run": run_json(&run) })),
        Err(e) => unavailable(e),
    }
}

/// Cancels the running run `id` as `actor` and waits (at most [`CANCEL_WAIT`]) for its driver
/// to commit the cancellation: the run as it is then (still `running` if attempts in flight
/// take longer to stop). The API's and the dashboard's cancel.
pub(super) async fn cancel_and_wait<S: Store>(
    shared: &Arc<Shared<S>>,
    checked: Arc<crate::validate::CheckedRunbook>,
    id: &str,
    actor: &str,
) -> Result<RunRow, RunError> {
    shared.cancel_run(checked, id.to_string(), actor);
    tracing::info!("run {id}: cancelled by {actor}");
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    loop {
        match shared.engine.store.run(id).await? {
            Some(run) if run.state != RunState::Running => return Ok(run),
            Some(run) if tokio::time::Instant::now() >= deadline => return Ok(run),
            Some(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            None => return Err(RunError::NoSuchRun(id.to_string())),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    #[serde(default)]
    host: String,
    decision: String,
    /// Why (recorded in the audit event and shown as the row's reason).
    #[serde(default)]
    reason: Option<String>,
}

async fn resume<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    Path((id, step)): Path<(String, String)>,
    body: Result<Json<ResumeBody>, JsonRejection>,
) -> Response {
    if let Some(refused) = caller.refusal(Scope::Operate) {
        return refused;
    }
    let actor = caller.actor.clone();
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let resolution = match body.decision.as_str() {
        "retry" => Resolution::Retry,
        "skip" => Resolution::Skip,
        "abort" => Resolution::Abort,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("decision `{other}`: use retry, skip or abort"),
            );
        }
    };
    let (_, checked) = match run_and_runbook(&shared, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let reason = body.reason.as_deref().and_then(comment_text);
    if let Err(e) = shared
        .engine
        .resolve_as(
            &id,
            &step,
            &body.host,
            resolution,
            &actor,
            reason.as_deref(),
        )
        .await
    {
        return run_error(e);
    }
    shared.spawn_run(checked, id.clone());
    match shared.engine.store.run(&id).await {
        Ok(Some(run)) => ok(StatusCode::OK, json!({ "run": run_json(&run) })),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    host: String,
    choice: String,
    #[serde(default)]
    comment: Option<String>,
    /// Why an admin token decides for the step's people (an override needs one).
    #[serde(default)]
    reason: Option<String>,
}

async fn decision<S: Store>(
    State(shared): State<St<S>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, step)): Path<(String, String)>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Response {
    let actor = caller.actor.clone();
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let (_, checked) = match run_and_runbook(&shared, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let comment = body.comment.as_deref().and_then(comment_text);
    let new = NewDecision {
        run_id: id.clone(),
        step: step.clone(),
        host: body.host.clone(),
        recipient: actor.clone(),
        choice: body.choice.clone(),
        comment,
        at: shared.clock.now(),
        actor: actor.clone(),
        source_ip: Some(peer.ip().to_string()),
        nonce: None,
    };
    let decided = match (&caller.grant.owner, caller.grant.allows(Scope::Approve)) {
        // An approve token decides as its owner, only where they are one of the step's people,
        // once per person whatever route they take (the store's one decision per recipient).
        (Some(owner), true) => {
            let new = NewDecision {
                recipient: owner.clone(),
                ..new
            };
            match shared.engine.decide(&checked, new).await {
                Err(RunError::NotARecipient { .. }) => {
                    return not_an_approver(&shared, &caller, &id, &step, peer).await;
                }
                other => other,
            }
        }
        // An admin token without an owner overrides: it decides as itself (audited so).
        (None, true) if caller.grant.allows(Scope::Admin) => {
            let Some(reason) = body.reason.as_deref().and_then(comment_text) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "an override (an admin token deciding for the step's people) needs a written `reason`",
                );
            };
            shared
                .engine
                .decide_as_operator(&checked, new, &reason)
                .await
        }
        _ => {
            return error(
                StatusCode::FORBIDDEN,
                "this token does not hold the `approve` scope with an owner, nor `admin`",
            );
        }
    };
    let decided = match decided {
        Ok(decided) => decided,
        Err(e) => return run_error(e),
    };
    if decided.settled.is_some() {
        shared.spawn_run(checked, id.clone());
    }
    shared.mail.notify_one();
    ok(
        StatusCode::OK,
        json!({
            "run_id": id,
            "step": step,
            "host": body.host,
            "choice": body.choice,
            "actor": actor,
            "settled": decided.settled,
            "decisions_so_far": decided.decisions_so_far,
            "quorum": decided.quorum,
        }),
    )
}

/// Refuses an `approve` token whose owner is not one of the step's people, after an
/// `api.refused` event.
async fn not_an_approver<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    run_id: &str,
    step: &str,
    peer: SocketAddr,
) -> Response {
    let event = crate::store::NewEvent {
        at: shared.clock.now(),
        actor: caller.actor.clone(),
        action: "api.refused".into(),
        run_id: Some(run_id.to_string()),
        step_id: Some(step.to_string()),
        details: json!({
            "reason": "not_an_approver",
            "owner": caller.grant.owner,
            "source_ip": peer.ip().to_string(),
        }),
    };
    let change = crate::store::Change {
        events: vec![event],
        ..Default::default()
    };
    if let Err(e) = shared.engine.store.commit(vec![change]).await {
        return unavailable(e);
    }
    error(
        StatusCode::FORBIDDEN,
        "the token's owner is not one of this step's people",
    )
}

/// A comment or reason as kept: trimmed, at most [`MAX_COMMENT`] characters, none if empty.
pub(super) fn comment_text(text: &str) -> Option<String> {
    Some(text.trim().chars().take(MAX_COMMENT).collect::<String>()).filter(|c| !c.is_empty())
}

async fn openapi_json() -> Response {
    ok(StatusCode::OK, openapi())
}

/// The OpenAPI 3.1 document of the API (hand-written; a test checks it lists every route).
pub fn openapi() -> Value {
    let error_ref = json!({ "$ref": "#/components/responses/Error" });
    let errors = |codes: &[&str]| -> Value {
        let mut map = serde_json::Map::new();
        for code in codes {
            map.insert((*code).to_string(), error_ref.clone());
        }
        Value::Object(map)
    };
    let with = |mut base: Value, more: Value| -> Value {
        if let (Some(b), Some(m)) = (base.as_object_mut(), more.as_object()) {
            for (k, v) in m {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    };
    let body_of = |schema: &str| json!({ "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    let id_param =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    let step_param =
        json!({ "name": "step", "in": "path", "required": true, "schema": { "type": "string" } });
    let limit_param = json!({ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT } });
    let after_param = json!({ "name": "after", "in": "query", "required": false, "schema": { "type": "integer" } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "patchday API",
            "version": "1",
            "description": "Runbooks, runs and decisions of a patchday daemon. Every operation but this document needs `Authorization: Bearer <token>`; actions are audited as `api:<token name>`."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": {
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": { "200": { "description": "The OpenAPI document", "content": { "application/json": {} } } }
                }
            },
            "/runbooks": {
                "get": {
                    "summary": "Loaded runbooks with their next cycles",
                    "responses": with(json!({ "200": with(json!({ "description": "The runbooks" }), body_of("RunbookList")) }), errors(&["401"]))
                }
            },
            "/runs": {
                "get": {
                    "summary": "Recent runs, newest first",
                    "parameters": [limit_param.clone(), with(after_param.clone(), json!({ "schema": { "type": "string" }, "description": "The `next` of the page before: the id of its last run" }))],
                    "responses": with(json!({ "200": with(json!({ "description": "The runs" }), body_of("RunList")) }), errors(&["400", "401", "503"]))
                },
                "post": {
                    "summary": "Start a run",
                    "requestBody": with(json!({ "required": true }), body_of("Trigger")),
                    "responses": with(json!({ "201": with(json!({ "description": "The run, started" }), body_of("RunEnvelope")) }), errors(&["400", "401", "404", "409", "503"]))
                }
            },
            "/runs/{id}": {
                "get": {
                    "summary": "A run, its rows counted, and the first page of its step rows and of its audit trail",
                    "description": "Bounded whatever the run's size: `counts` from an aggregate, at most 50 step rows (`steps`) and 50 audit events (`audit`), each in the order of the paged routes. `steps_next` and `audit_next` are the `after` of `/runs/{id}/steps` and `/runs/{id}/events` that continue them; null when the page holds them all (a small run's whole lists).",
                    "parameters": [id_param.clone()],
                    "responses": with(json!({ "200": with(json!({ "description": "The run" }), body_of("RunDetail")) }), errors(&["401", "404", "503"]))
                }
            },
            "/runs/{id}/steps": {
                "get": {
                    "summary": "One page of a run's step rows (hosts' included), in insertion order",
                    "parameters": [id_param.clone(), limit_param.clone(), with(after_param.clone(), json!({ "description": "The `next` of the page before" }))],
                    "responses": with(json!({ "200": with(json!({ "description": "The page" }), body_of("StepPage")) }), errors(&["400", "401", "404", "503"]))
                }
            },
            "/runs/{id}/events": {
                "get": {
                    "summary": "One page of a run's audit events, in seq order",
                    "parameters": [id_param.clone(), limit_param.clone(), with(after_param.clone(), json!({ "description": "The `next` of the page before: the seq of its last event" }))],
                    "responses": with(json!({ "200": with(json!({ "description": "The page" }), body_of("EventPage")) }), errors(&["400", "401", "404", "503"]))
                }
            },
            "/runs/{id}/cancel": {
                "post": {
                    "summary": "Cancel a running run",
                    "parameters": [id_param.clone()],
                    "responses": with(json!({
                        "200": with(json!({ "description": "The run, cancelled" }), body_of("RunEnvelope")),
                        "202": with(json!({ "description": "The cancellation is still stopping attempts in flight" }), body_of("RunEnvelope"))
                    }), errors(&["401", "404", "409", "503"]))
                }
            },
            "/runs/{id}/steps/{step}/resume": {
                "post": {
                    "summary": "Settle an interrupted step: retry, skip or abort the run",
                    "parameters": [id_param.clone(), step_param.clone()],
                    "requestBody": with(json!({ "required": true }), body_of("Resume")),
                    "responses": with(json!({ "200": with(json!({ "description": "The run" }), body_of("RunEnvelope")) }), errors(&["400", "401", "404", "409", "503"]))
                }
            },
            "/runs/{id}/steps/{step}/decision": {
                "post": {
                    "summary": "Decide on an approval or manual step as the operator api:<token name>",
                    "description": "The recipient of the decision is the actor `api:<token name>`: a token decides a row at most once, and its decision counts towards the quorum.",
                    "parameters": [id_param, step_param],
                    "requestBody": with(json!({ "required": true }), body_of("Decision")),
                    "responses": with(json!({ "200": with(json!({ "description": "The decision, recorded" }), body_of("Decided")) }), errors(&["400", "401", "404", "409", "503"]))
                }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
                }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "Cycle": {
                    "type": "object",
                    "properties": {
                        "cycle": { "type": "string", "examples": ["2026-12"] },
                        "patch_tuesday": { "type": "string", "format": "date" },
                        "fires_at": { "type": "string", "format": "date-time" },
                        "blackout": { "type": ["string", "null"] }
                    }
                },
                "Runbook": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "description": { "type": ["string", "null"] },
                        "timezone": { "type": "string" },
                        "params": { "type": "array", "items": { "type": "object" } },
                        "next_cycles": { "type": "array", "items": { "$ref": "#/components/schemas/Cycle" } }
                    }
                },
                "RunbookList": { "type": "object", "properties": { "runbooks": { "type": "array", "items": { "$ref": "#/components/schemas/Runbook" } } } },
                "Run": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string" },
                        "runbook": { "type": "string" },
                        "cycle": { "type": ["string", "null"] },
                        "state": { "enum": ["running", "succeeded", "failed", "cancelled"] },
                        "started_at": { "type": "string", "format": "date-time" },
                        "finished_at": { "type": ["string", "null"], "format": "date-time" },
                        "content_hash": { "type": "string" },
                        "commit": { "type": ["string", "null"] },
                        "params": { "type": "object", "additionalProperties": { "type": "string" } },
                        "rerun": { "type": ["string", "null"] }
                    }
                },
                "RunEnvelope": { "type": "object", "properties": { "run": { "$ref": "#/components/schemas/Run" } } },
                "RunList": { "type": "object", "properties": { "runs": { "type": "array", "items": { "$ref": "#/components/schemas/Run" } }, "next": { "type": ["string", "null"], "description": "`after` of the next page; null on the last" } } },
                "StepPage": { "type": "object", "properties": { "steps": { "type": "array", "items": { "$ref": "#/components/schemas/Step" } }, "next": { "type": ["integer", "null"], "description": "`after` of the next page; null on the last" } } },
                "EventPage": { "type": "object", "properties": { "events": { "type": "array", "items": { "$ref": "#/components/schemas/AuditEvent" } }, "next": { "type": ["integer", "null"], "description": "`after` of the next page; null on the last" } } },
                "Step": {
                    "type": "object",
                    "properties": {
                        "step": { "type": "string" },
                        "host": { "type": "string" },
                        "state": { "type": "string" },
                        "attempt": { "type": "integer" },
                        "not_before": { "type": ["string", "null"], "format": "date-time" },
                        "started_at": { "type": ["string", "null"], "format": "date-time" },
                        "finished_at": { "type": ["string", "null"], "format": "date-time" },
                        "outputs": { "type": "object" },
                        "reason": { "type": ["string", "null"] }
                    }
                },
                "AuditEvent": {
                    "type": "object",
                    "properties": {
                        "seq": { "type": "integer" },
                        "at": { "type": "string", "format": "date-time" },
                        "actor": { "type": "string" },
                        "action": { "type": "string" },
                        "step": { "type": ["string", "null"] },
                        "details": { "type": "object" },
                        "hash": { "type": "string" }
                    }
                },
                "RunCounts": {
                    "type": "object",
                    "properties": {
                        "rows": { "type": "integer", "description": "The run's step rows, its steps' own and its hosts'" },
                        "by_state": { "type": "object", "additionalProperties": { "type": "integer" }, "examples": [{ "succeeded": 19990, "failed": 13 }] },
                        "by_step": { "type": "array", "items": { "type": "object", "properties": { "step": { "type": "string" }, "state": { "type": "string" }, "rows": { "type": "integer" } } }, "description": "By step (in name order) and state; only counts that are not zero" }
                    }
                },
                "RunDetail": {
                    "type": "object",
                    "properties": {
                        "run": { "$ref": "#/components/schemas/Run" },
                        "counts": { "$ref": "#/components/schemas/RunCounts" },
                        "steps": { "type": "array", "items": { "$ref": "#/components/schemas/Step" }, "description": "The first page of step rows, in insertion order" },
                        "steps_next": { "type": ["integer", "null"], "description": "`after` of `/runs/{id}/steps` for the rows that follow; null when `steps` holds them all" },
                        "audit": { "type": "array", "items": { "$ref": "#/components/schemas/AuditEvent" }, "description": "The first page of audit events, in seq order" },
                        "audit_next": { "type": ["integer", "null"], "description": "`after` of `/runs/{id}/events` for the events that follow; null when `audit` holds them all" }
                    }
                },
                "Trigger": {
                    "type": "object",
                    "required": ["runbook"],
                    "additionalProperties": false,
                    "properties": {
                        "runbook": { "type": "string", "examples": ["emergency-zero-day"] },
                        "params": { "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } },
                        "cycle": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$" },
                        "rerun": { "type": "string", "description": "why this run re-runs a cycle that has a run already (audited)" }
                    }
                },
                "Resume": {
                    "type": "object",
                    "required": ["decision"],
                    "additionalProperties": false,
                    "properties": {
                        "host": { "type": "string", "default": "" },
                        "decision": { "enum": ["retry", "skip", "abort"] },
                        "reason": { "type": "string", "description": "Why; recorded in the audit event" }
                    }
                },
                "Decision": {
                    "type": "object",
                    "required": ["choice"],
                    "additionalProperties": false,
                    "properties": {
                        "host": { "type": "string", "default": "" },
                        "choice": { "type": "string", "examples": ["approve"] },
                        "comment": { "type": ["string", "null"] },
                        "reason": { "type": ["string", "null"], "description": "Why an admin token decides for the step's people; an override needs one (400 without); recorded in the audit event" }
                    }
                },
                "Decided": {
                    "type": "object",
                    "properties": {
                        "run_id": { "type": "string" },
                        "step": { "type": "string" },
                        "host": { "type": "string" },
                        "choice": { "type": "string" },
                        "actor": { "type": "string" },
                        "settled": { "type": ["string", "null"] },
                        "decisions_so_far": { "type": "integer" },
                        "quorum": { "type": "integer" }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let (_, listed) = routes::<crate::store::sqlite::SqliteStore>();
        let doc = openapi();
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in &listed {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is routed but not in the OpenAPI document"
            );
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, listed.len(), "the document lists more routes");
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn the_first_page_has_a_cursor_only_when_more_follow() {
        let page = DETAIL_PAGE as i64;
        let (items, next) = first_page((1..=page + 1).collect(), |n| json!(n));
        assert_eq!(items, (1..=page).collect::<Vec<_>>());
        assert_eq!(next, json!(page), "the last item of the page");
        let (items, next) = first_page((1..=page).collect(), |n| json!(n));
        assert_eq!(items.len(), DETAIL_PAGE as usize);
        assert_eq!(
            next,
            Value::Null,
            "a full page with nothing after it is complete"
        );
        let (items, next) = first_page(Vec::<i64>::new(), |n| json!(n));
        assert!(items.is_empty());
        assert_eq!(next, Value::Null);
    }

    #[test]
    fn counts_are_summed_by_state_and_listed_by_step_in_name_order() {
        let counts = counts_json(vec![
            ("patch".into(), StepState::Succeeded, 9_998),
            ("patch".into(), StepState::Failed, 3),
            ("before".into(), StepState::Succeeded, 1),
            ("patch".into(), StepState::AwaitingInput, 1),
        ]);
        assert_eq!(counts["rows"], 10_003);
        assert_eq!(
            counts["by_state"],
            json!({ "succeeded": 9_999, "failed": 3, "awaiting_input": 1 })
        );
        let steps: Vec<(&str, &str)> = counts["by_step"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["step"].as_str().unwrap(), c["state"].as_str().unwrap()))
            .collect();
        assert_eq!(
            steps,
            [
                ("before", "succeeded"),
                ("patch", "awaiting_input"),
                ("patch", "failed"),
                ("patch", "succeeded")
            ]
        );
    }
}
