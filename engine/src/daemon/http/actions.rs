//! The dashboard's actions (issue #13 item 6, issue #11 item 2): what a signed-in person does
//! from the browser, through the same engine calls as the API and the email links, audited
//! as `web:<email>` ([`crate::auth::Person::actor`]). Views are [`crate::dashboard::actions`].
//!
//! | route | who | does |
//! |---|---|---|
//! | `GET /runbooks/{name}/trigger` | operators, admins | the form generated from the runbook's `params` |
//! | `POST /runbooks/{name}/trigger` | operators, admins | `do=review`: checks the values as [`Engine::start`] does ([`Engine::check_start`]) and shows what will run (or the form again, with the errors); `do=edit`: the form again; `do=start`: starts the run ([`api::start_run`], like `POST /api/v1/runs`) and goes to its page |
//! | `GET /runs/{id}/decide?step&host&choice` | the step's approver / assignee | the decision's confirm page |
//! | `POST /runs/{id}/decide` | the same | [`Engine::decide`] with the person as recipient, like their link: once per person whatever the route |
//! | `GET /runs/{id}/resume?step&host&decision` | operators, admins | retry / skip / abort's confirm page |
//! | `POST /runs/{id}/resume` | operators, admins | [`Engine::resolve_as`] with the required `reason` |
//! | `GET /runs/{id}/cancel` | operators, admins | the cancel's confirm page |
//! | `POST /runs/{id}/cancel` | operators, admins | [`api::cancel_and_wait`], as `POST /api/v1/runs/{id}/cancel` |
//!
//! A `GET` changes nothing. Every `POST` is checked on the server before anything else: the
//! origin ([`is_cross_site`]), the form's CSRF value (derived from the session cookie, as the
//! sign-out form's) and the person's role (or, for a decision, that they are one of the step's
//! people); a refused `POST` is a 403 and changes nothing (it is logged, not audited: the
//! refused person is signed in and did nothing). The run page shows only the buttons its
//! viewer may use ([`run_actions`]): a viewer who is not one of a waiting step's people sees none.
//!
//! [`Engine::start`]: crate::run::Engine::start
//! [`Engine::check_start`]: crate::run::Engine::check_start
//! [`Engine::decide`]: crate::run::Engine::decide
//! [`Engine::resolve_as`]: crate::run::Engine::resolve_as

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::Markup;
use serde::Deserialize;

use super::api::{self, comment_text, run_error_status};
use super::auth::SignedIn;
use super::links::{self as link_routes, is_cross_site};
use super::{Shared, error, html, unavailable};
use crate::auth::Role;
use crate::calendar::Cycle;
use crate::dashboard::actions::{
    self as views, DO_EDIT, DO_START, FIELD_CYCLE, FIELD_DECISION, FIELD_DO, FIELD_HOST,
    FIELD_REASON, FIELD_RERUN, FIELD_STEP, PARAM_PREFIX, RowRef, RunFacts,
};
use crate::links::Purpose;
use crate::pages::{self, FIELD_CHOICE, FIELD_COMMENT, FIELD_CSRF};
use crate::run::approvals::PersonAsk;
use crate::run::{Resolution, RunError, secret_env_name};
use crate::store::{NewDecision, RunRow, RunState, StepRow, StepState, Store, StoreError};
use crate::validate::CheckedRunbook;

type St<S> = Arc<Shared<S>>;
/// A posted form, as (name, value) pairs in order; a body that is not a form reads as empty.
pub(super) type Posted = Result<Form<Vec<(String, String)>>, FormRejection>;

/// The value of field `name` in a posted form (`""` when absent).
fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The 403 of a refused action (nothing changed).
pub(super) fn refused(person: &SignedIn, why: &str) -> Response {
    tracing::warn!("dashboard action by {} refused: {why}", person.person.email);
    error(StatusCode::FORBIDDEN, why)
}

/// Whether `person` operates (operators and admins).
pub fn operates(person: &SignedIn) -> bool {
    person.person.role >= Role::Operator
}

/// The 403 for a person who does not operate.
fn not_an_operator(person: &SignedIn) -> Response {
    refused(
        person,
        "Only operators and admins may do this. Nothing was changed.",
    )
}

/// A `POST`'s checks: same site, and the CSRF value of the person's session. The 403 to
/// answer when one fails.
pub(super) fn refused_post<S: Store>(
    shared: &Shared<S>,
    person: &SignedIn,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Option<Response> {
    if is_cross_site(headers, shared.engine.base_url()) {
        return Some(refused(
            person,
            "This form was sent from another site. Nothing was changed.",
        ));
    }
    let csrf = field(form, FIELD_CSRF);
    if shared.auth.links.check_csrf(&person.cookie, csrf).is_err() {
        return Some(refused(
            person,
            "This form has expired or did not come from this site. Open the page again. \
             Nothing was changed.",
        ));
    }
    None
}

/// The CSRF value of the person's forms.
pub(super) fn csrf<S: Store>(shared: &Shared<S>, person: &SignedIn) -> String {
    shared.auth.links.csrf(&person.cookie)
}

/// `303 See Other` to `path` (after an action: the run page shows its result).
pub(super) fn see_other(path: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, path)]).into_response()
}

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    html(status, pages::layout(title, &body.into_string()))
}

/// A run error as a page with the status the API gives it.
fn run_error_page(e: RunError) -> Response {
    match run_error_status(&e) {
        Some(status) => error(status, &format!("{e}. Nothing was changed.")),
        None => unavailable(e),
    }
}

/// The run `id` and its runbook version, or the error page.
async fn run_of<S: Store>(
    shared: &Shared<S>,
    id: &str,
) -> Result<(RunRow, Arc<CheckedRunbook>), Response> {
    let run = match shared.engine.store.run(id).await {
        Ok(Some(run)) => run,
        Ok(None) => return Err(error(StatusCode::NOT_FOUND, "There is no such run.")),
        Err(e) => return Err(unavailable(e)),
    };
    match shared.checked_for_run(&run) {
        Some(checked) => Ok((run, checked)),
        None => Err(error(
            StatusCode::CONFLICT,
            "This run's runbook version cannot be rebuilt, so nothing can be done to it here.",
        )),
    }
}

fn facts(run: &RunRow) -> RunFacts {
    RunFacts {
        id: run.id.clone(),
        runbook: run.runbook.clone(),
        cycle: crate::run::cycle_shown(run),
        path: pages::run_path(&run.id),
    }
}

// ---------------------------------------------------------------------------------------------
// The run page's buttons

/// What `person` may do on `run`'s page: decide the waiting rows they are one of the people
/// of (and have not decided yet); as an operator, settle interrupted rows and cancel.
pub async fn run_actions<S: Store>(
    shared: &Shared<S>,
    person: &SignedIn,
    run: &RunRow,
    rows: &[StepRow],
    checked: Option<&CheckedRunbook>,
) -> Result<Markup, StoreError> {
    let running = run.state == RunState::Running;
    let mut view = views::RunActions {
        path: pages::run_path(&run.id),
        cancel: running && operates(person),
        ..views::RunActions::default()
    };
    let Some(checked) = checked.filter(|_| running) else {
        return Ok(views::run_actions(&view));
    };
    for row in rows {
        let at = RowRef {
            step: row.step.clone(),
            host: row.host.clone(),
        };
        match row.state {
            StepState::Interrupted if operates(person) => view.resume.push(at),
            StepState::AwaitingInput => {
                let Some(ask) = own_ask(shared, person, run, rows, checked, row).await? else {
                    continue;
                };
                view.decide.push(views::DecideOffer {
                    row: at,
                    heading: crate::run::approvals::ask_heading(checked, &row.step, &ask),
                    choices: ask
                        .choices
                        .iter()
                        .map(|c| (c.clone(), link_routes::label(ask.purpose, c)))
                        .collect(),
                });
            }
            _ => {}
        }
    }
    Ok(views::run_actions(&view))
}

/// What `row` asks of `person`, if they are one of its people and have not decided yet.
async fn own_ask<S: Store>(
    shared: &Shared<S>,
    person: &SignedIn,
    run: &RunRow,
    rows: &[StepRow],
    checked: &CheckedRunbook,
    row: &StepRow,
) -> Result<Option<PersonAsk>, StoreError> {
    let Ok(ask) = shared
        .engine
        .person_ask(checked, run, rows, &row.step, &row.host)
    else {
        return Ok(None);
    };
    let me = |who: &str| who.trim().eq_ignore_ascii_case(&person.person.email);
    if !ask.recipients.iter().any(|r| me(r)) {
        return Ok(None);
    }
    let decisions = shared
        .engine
        .store
        .decisions(&run.id, &row.step, &row.host)
        .await?;
    if decisions.iter().any(|d| me(&d.decision.recipient)) {
        return Ok(None);
    }
    Ok(Some(ask))
}

// ---------------------------------------------------------------------------------------------
// Deciding one's own approval or task

/// A row named in a query or form, with what is asked of it.
#[derive(Debug, Default, Deserialize)]
pub struct RowQuery {
    #[serde(default)]
    step: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    choice: String,
    #[serde(default)]
    decision: String,
}

/// `GET /runs/{id}/decide`: the confirm page of the person's decision.
pub async fn decide_page<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<RowQuery>,
) -> Response {
    let (run, checked) = match run_of(&shared, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let rows = match shared.engine.store.steps(&id).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let row = rows.iter().find(|r| {
        r.step == query.step && r.host == query.host && r.state == StepState::AwaitingInput
    });
    let Some(row) = row else {
        return error(
            StatusCode::CONFLICT,
            "This step does not wait for a decision (any more).",
        );
    };
    let ask = match own_ask(&shared, &person, &run, &rows, &checked, row).await {
        Ok(Some(ask)) => ask,
        Ok(None) => {
            return refused(
                &person,
                "You are not one of this step's people, or you have decided already.",
            );
        }
        Err(e) => return unavailable(e),
    };
    let Some(index) = ask.choices.iter().position(|c| *c == query.choice) else {
        return error(
            StatusCode::BAD_REQUEST,
            "That is not a choice of this step.",
        );
    };
    let leads_to = crate::run::consequences::leads_to(&checked, &row.step, &ask);
    let label = link_routes::label(ask.purpose, &query.choice);
    let quorum = match ask.purpose {
        Purpose::Approval => match so_far(&shared, row).await {
            Ok(n) => Some((n, ask.quorum)),
            Err(e) => return unavailable(e),
        },
        Purpose::Task => None,
    };
    let view = views::DecideConfirm {
        run: facts(&run),
        row: RowRef {
            step: row.step.clone(),
            host: row.host.clone(),
        },
        heading: crate::run::approvals::ask_heading(&checked, &row.step, &ask),
        message: ask.message.clone().filter(|m| !m.trim().is_empty()),
        email: person.person.email.clone(),
        choice: query.choice.clone(),
        label: label.clone(),
        leads_to: leads_to.get(index).cloned().unwrap_or_default(),
        quorum,
        csrf: csrf(&shared, &person),
    };
    page(StatusCode::OK, &label, views::decide_confirm(&view))
}

/// The most decisions recorded on `row` that share one choice.
async fn so_far<S: Store>(shared: &Shared<S>, row: &StepRow) -> Result<usize, StoreError> {
    let decisions = shared
        .engine
        .store
        .decisions(&row.run_id, &row.step, &row.host)
        .await?;
    Ok(decisions
        .iter()
        .map(|d| {
            decisions
                .iter()
                .filter(|o| o.decision.choice == d.decision.choice)
                .count()
        })
        .max()
        .unwrap_or(0))
}

/// `POST /runs/{id}/decide`: the person's decision, through [`crate::run::Engine::decide`] as
/// their link does (recipient: their address; actor: `web:<email>`).
pub async fn decide<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Posted,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(response) = refused_post(&shared, &person, &headers, &form) {
        return response;
    }
    let (run, checked) = match run_of(&shared, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let decision = NewDecision {
        run_id: run.id.clone(),
        step: field(&form, FIELD_STEP).to_string(),
        host: field(&form, FIELD_HOST).to_string(),
        recipient: person.person.email.clone(),
        choice: field(&form, FIELD_CHOICE).to_string(),
        comment: comment_text(field(&form, FIELD_COMMENT)),
        at: shared.clock.now(),
        actor: person.person.actor(),
        source_ip: Some(peer.ip().to_string()),
        nonce: None,
    };
    match shared.engine.decide(&checked, decision).await {
        Ok(decided) => {
            if decided.settled.is_some() {
                shared.spawn_run(checked, run.id.clone());
            }
            shared.mail.notify_one();
            see_other(&pages::run_path(&run.id))
        }
        Err(RunError::NotARecipient { .. }) => refused(
            &person,
            "You are not one of this step's people. Nothing was changed.",
        ),
        Err(RunError::Store(StoreError::AlreadyDecided { .. })) => error(
            StatusCode::CONFLICT,
            "You have decided on this step already (here or by your email's link); a person's \
             decision counts once. Nothing was changed.",
        ),
        Err(e) => run_error_page(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Interrupted steps: retry, skip, abort

fn resolution(decision: &str) -> Option<Resolution> {
    match decision {
        "retry" => Some(Resolution::Retry),
        "skip" => Some(Resolution::Skip),
        "abort" => Some(Resolution::Abort),
        _ => None,
    }
}

/// The interrupted row (step, host) of `id`, with the run, or the error page.
async fn interrupted<S: Store>(
    shared: &Shared<S>,
    id: &str,
    step: &str,
    host: &str,
) -> Result<(RunRow, Arc<CheckedRunbook>), Response> {
    let (run, checked) = run_of(shared, id).await?;
    let rows = shared.engine.store.steps(id).await.map_err(unavailable)?;
    let found = rows
        .iter()
        .any(|r| r.step == step && r.host == host && r.state == StepState::Interrupted);
    if !found {
        return Err(error(
            StatusCode::CONFLICT,
            "This step is not interrupted (any more): nothing to decide.",
        ));
    }
    Ok((run, checked))
}

fn resume_view<S: Store>(
    shared: &Shared<S>,
    person: &SignedIn,
    run: &RunRow,
    query: &RowQuery,
    reason: &str,
    errors: Vec<String>,
) -> Markup {
    views::resume_confirm(&views::ResumeConfirm {
        run: facts(run),
        row: RowRef {
            step: query.step.clone(),
            host: query.host.clone(),
        },
        decision: query.decision.clone(),
        reason: reason.to_string(),
        errors,
        csrf: csrf(shared, person),
    })
}

/// `GET /runs/{id}/resume`: the confirm page of retry / skip / abort.
pub async fn resume_page<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<RowQuery>,
) -> Response {
    if !operates(&person) {
        return not_an_operator(&person);
    }
    if resolution(&query.decision).is_none() {
        return error(StatusCode::BAD_REQUEST, "Decide retry, skip or abort.");
    }
    match interrupted(&shared, &id, &query.step, &query.host).await {
        Ok((run, _)) => page(
            StatusCode::OK,
            "Interrupted step",
            resume_view(&shared, &person, &run, &query, "", vec![]),
        ),
        Err(response) => response,
    }
}

/// `POST /runs/{id}/resume`: settles the interrupted row as the person, with their reason.
pub async fn resume<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Posted,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(response) = refused_post(&shared, &person, &headers, &form) {
        return response;
    }
    if !operates(&person) {
        return not_an_operator(&person);
    }
    let query = RowQuery {
        step: field(&form, FIELD_STEP).to_string(),
        host: field(&form, FIELD_HOST).to_string(),
        decision: field(&form, FIELD_DECISION).to_string(),
        ..RowQuery::default()
    };
    let Some(resolution) = resolution(&query.decision) else {
        return error(StatusCode::BAD_REQUEST, "Decide retry, skip or abort.");
    };
    let (run, checked) = match interrupted(&shared, &id, &query.step, &query.host).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let typed = field(&form, FIELD_REASON);
    let Some(reason) = comment_text(typed) else {
        let why = vec!["A reason is required: say why, for the audit log.".to_string()];
        let body = resume_view(&shared, &person, &run, &query, typed, why);
        return page(StatusCode::BAD_REQUEST, "Interrupted step", body);
    };
    let actor = person.person.actor();
    let resolved = shared
        .engine
        .resolve_as(
            &id,
            &query.step,
            &query.host,
            resolution,
            &actor,
            Some(&reason),
        )
        .await;
    if let Err(e) = resolved {
        return run_error_page(e);
    }
    shared.spawn_run(checked, id.clone());
    see_other(&pages::run_path(&id))
}

// ---------------------------------------------------------------------------------------------
// Cancelling a run

/// The running run `id`, or the error page.
async fn running<S: Store>(
    shared: &Shared<S>,
    id: &str,
) -> Result<(RunRow, Arc<CheckedRunbook>), Response> {
    let (run, checked) = run_of(shared, id).await?;
    if run.state != RunState::Running {
        return Err(error(
            StatusCode::CONFLICT,
            &format!(
                "This run is {}: there is nothing to cancel.",
                run.state.as_str()
            ),
        ));
    }
    Ok((run, checked))
}

/// `GET /runs/{id}/cancel`: the confirm page.
pub async fn cancel_page<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    Path(id): Path<String>,
) -> Response {
    if !operates(&person) {
        return not_an_operator(&person);
    }
    match running(&shared, &id).await {
        Ok((run, _)) => {
            let view = views::CancelConfirm {
                run: facts(&run),
                csrf: csrf(&shared, &person),
            };
            page(
                StatusCode::OK,
                "Cancel the run",
                views::cancel_confirm(&view),
            )
        }
        Err(response) => response,
    }
}

/// `POST /runs/{id}/cancel`: cancels the run as the person (as `POST /api/v1/runs/{id}/cancel`).
pub async fn cancel<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Posted,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(response) = refused_post(&shared, &person, &headers, &form) {
        return response;
    }
    if !operates(&person) {
        return not_an_operator(&person);
    }
    let (_, checked) = match running(&shared, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match api::cancel_and_wait(&shared, checked, &id, &person.person.actor()).await {
        Ok(_) => see_other(&pages::run_path(&id)),
        Err(e) => run_error_page(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Triggering a runbook

/// What the trigger form holds: the cycle, the re-run reason and the params given (a field
/// left empty is a param not given: its default applies, or it is missing).
struct Given {
    cycle: String,
    rerun: String,
    params: Vec<(String, String)>,
}

impl Given {
    fn from_form(form: &[(String, String)]) -> Given {
        Given {
            cycle: field(form, FIELD_CYCLE).trim().to_string(),
            rerun: field(form, FIELD_RERUN).trim().to_string(),
            params: form
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .filter_map(|(n, v)| Some((n.strip_prefix(PARAM_PREFIX)?.to_string(), v.clone())))
                .collect(),
        }
    }
}

/// The trigger form of `checked`, filled with `given`, showing `errors`. Secret params get no
/// input, so nothing typed for one is ever sent back.
fn trigger_form<S: Store>(
    shared: &Shared<S>,
    person: &SignedIn,
    checked: &CheckedRunbook,
    given: &Given,
    errors: Vec<String>,
) -> Markup {
    let params = checked
        .runbook
        .params
        .iter()
        .map(|(name, p)| {
            let name = name.value.clone();
            let typed = given.params.iter().rev().find(|(n, _)| *n == name);
            views::ParamField {
                value: match typed {
                    Some((_, v)) if !p.secret => v.clone(),
                    _ => p.default.clone().filter(|_| !p.secret).unwrap_or_default(),
                },
                description: p.description.clone(),
                default: p.default.clone().filter(|_| !p.secret),
                choices: p.choices.clone(),
                secret: p.secret,
                env: secret_env_name(&name),
                name,
            }
        })
        .collect();
    views::trigger_form(&views::TriggerForm {
        runbook: checked.runbook.name.value.clone(),
        description: checked.runbook.description.clone(),
        scheduled: !checked.schedule.is_manual(),
        params,
        cycle: given.cycle.clone(),
        rerun: given.rerun.clone(),
        errors,
        csrf: csrf(shared, person),
    })
}

/// `GET /runbooks/{name}/trigger`: the form.
pub async fn trigger_page<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    Path(name): Path<String>,
) -> Response {
    if !operates(&person) {
        return not_an_operator(&person);
    }
    let runbooks = shared.runbooks();
    let Some(loaded) = runbooks.get(&name) else {
        return error(StatusCode::NOT_FOUND, "No runbook of that name is loaded.");
    };
    let given = Given {
        cycle: String::new(),
        rerun: String::new(),
        params: vec![],
    };
    let body = trigger_form(&shared, &person, &loaded.checked, &given, vec![]);
    page(StatusCode::OK, &format!("Start {name}"), body)
}

/// `POST /runbooks/{name}/trigger`: review (the confirm page), edit (the form again) or start.
pub async fn trigger<S: Store>(
    State(shared): State<St<S>>,
    person: SignedIn,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Posted,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Some(response) = refused_post(&shared, &person, &headers, &form) {
        return response;
    }
    if !operates(&person) {
        return not_an_operator(&person);
    }
    let runbooks = shared.runbooks();
    let Some(loaded) = runbooks.get(&name) else {
        return error(StatusCode::NOT_FOUND, "No runbook of that name is loaded.");
    };
    let checked = &loaded.checked;
    let given = Given::from_form(&form);
    let title = format!("Start {name}");
    let again = |errors: Vec<String>| {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        page(
            status,
            &title,
            trigger_form(&shared, &person, checked, &given, errors),
        )
    };
    if field(&form, FIELD_DO) == DO_EDIT {
        return again(vec![]);
    }
    let cycle = match given.cycle.as_str() {
        "" => None,
        text => match text.parse::<Cycle>() {
            Ok(cycle) => Some(cycle),
            Err(e) => return again(vec![format!("cycle: {e}")]),
        },
    };
    let rerun = Some(given.rerun.clone()).filter(|r| !r.is_empty());
    let spec = api::run_spec(
        &shared,
        loaded,
        cycle,
        given.params.clone(),
        &person.person.actor(),
        rerun,
    );
    let params = match shared.engine.check_start(checked, &spec) {
        Ok(params) => params,
        Err(e) if run_error_status(&e).is_some() => return again(vec![e.to_string()]),
        Err(e) => return unavailable(e),
    };
    if field(&form, FIELD_DO) != DO_START {
        return page(
            StatusCode::OK,
            &title,
            trigger_review(&shared, &person, checked, &given, &params),
        );
    }
    match api::start_run(&shared, loaded, spec).await {
        Ok(run) => see_other(&pages::run_path(&run.id)),
        Err(e) if run_error_status(&e).is_some() => again(vec![e.to_string()]),
        Err(e) => unavailable(e),
    }
}

/// The confirm page of a trigger: what will run, params as the run will store them, secrets
/// masked.
fn trigger_review<S: Store>(
    shared: &Shared<S>,
    person: &SignedIn,
    checked: &CheckedRunbook,
    given: &Given,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Markup {
    let declared = &checked.runbook.params;
    let shown = declared
        .keys()
        .filter_map(|name| {
            let value = params.get(name.value.as_str())?;
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            Some((name.value.clone(), text))
        })
        .collect();
    let secrets = declared
        .iter()
        .filter(|(_, p)| p.secret)
        .map(|(name, _)| (name.value.clone(), secret_env_name(&name.value)))
        .collect();
    let secret = |name: &str| declared.iter().any(|(n, p)| n.value == name && p.secret);
    views::trigger_confirm(&views::TriggerConfirm {
        runbook: checked.runbook.name.value.clone(),
        cycle: given.cycle.clone(),
        rerun: given.rerun.clone(),
        params: shown,
        secrets,
        given: given
            .params
            .iter()
            .filter(|(name, _)| !secret(name))
            .cloned()
            .collect(),
        csrf: csrf(shared, person),
    })
}

/// The overview's "Start a run" links, for someone who operates.
pub fn trigger_links<S: Store>(shared: &Shared<S>, person: &SignedIn) -> String {
    if !operates(person) {
        return String::new();
    }
    let names: Vec<String> = shared.runbooks().by_name.keys().cloned().collect();
    views::trigger_links(&names).into_string()
}
