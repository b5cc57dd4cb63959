//! The email links (DESIGN §7): `GET`/`HEAD /links/{token}` render the confirmation page and
//! never change anything (mail scanners fetch links); `POST /links/{token}` (the page's form:
//! CSRF value, choice, comment) decides through [`Engine::decide`] as `link:<recipient>`.
//!
//! A link is checked in this order: the token (format, signature, expiry, with the daemon's
//! clock), for a `POST` the origin (`Sec-Fetch-Site` / `Origin`, when sent, must be this site)
//! and the CSRF value (constant time), then its target: the run, the step (a person-step of the
//! link's purpose), the recipient (still one of the step's people), the nonce (not used yet) and
//! the row (still awaiting input). Every refusal renders [`pages::rejected_link_page`] with a
//! fitting status and is recorded as a `link.rejected` audit event (actor `link:<recipient>`
//! when the token's signature holds, else `link:unknown`; details: reason code, source IP),
//! and changes nothing else. A used link opened again (`GET`) is not refused: it shows its
//! owner what they chose and when, with the run's link ([`pages::decided_page`]), unaudited;
//! so does the link of someone who did not decide, once others' decisions settled the step.
//! Only a form posted again, or to a settled step, is refused.
//!
//! Refusals are rate limited per source ([`limit`]): past [`limit::PER_SOURCE`] refusals a minute
//! from one address (or [`limit::OVERALL`] from all together), a refused request is answered
//! `429 Too Many Requests` with a `Retry-After`, and the window records one `link.rate_limited`
//! event instead of one `link.rejected` per request. Good links are never limited.
//!
//! Cost of a `GET`: one store read, the audit chain's head (shared with the requests waiting at
//! the same time), when nothing changed since the last fetch of a link of the same step; else the
//! step rows and decisions too ([`cache`]).
//!
//! [`Engine::decide`]: crate::run::Engine::decide

pub mod cache;
pub mod limit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::json;

use self::cache::{HeadReads, RunCache, StepCache, StepView};
use self::limit::{RefusalLimit, Report, Scope, Verdict};
use super::{Shared, error, html, unavailable};
use crate::links::{LinkClaims, LinkError, Purpose};
use crate::pages;
use crate::run::{RunError, consequences};
use crate::store::{Change, NewDecision, NewEvent, StepState, Store, StoreError};
use patchday_connectors::inputs::SignIn;

/// The longest comment kept, in characters.
const MAX_COMMENT: usize = 2000;

/// What the links routes keep between requests: the rate limit of refusals, and the store reads.
#[derive(Debug, Default)]
pub struct LinkRoutes {
    pub refusals: RefusalLimit,
    pub runs: RunCache,
    pub steps: StepCache,
    pub heads: Arc<HeadReads>,
}

/// Why a link was refused.
#[derive(Debug)]
enum Refusal {
    Link(LinkError),
    /// The step no longer awaits a decision (settled by others, expired, cancelled).
    Settled,
    /// A `POST` from another site (`Sec-Fetch-Site` / `Origin`).
    CrossSite,
    /// The posted choice is not one the step offers.
    NotAChoice,
    /// The step has `sign_in: required` and nobody is signed in as the link's recipient.
    SignInRequired(String),
}

impl Refusal {
    fn code(&self) -> &'static str {
        match self {
            Refusal::Link(e) => e.code(),
            Refusal::Settled => "not_awaiting_input",
            Refusal::CrossSite => "cross_site",
            Refusal::NotAChoice => "not_a_choice",
            Refusal::SignInRequired(_) => "sign_in_required",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Link(LinkError::Expired { .. }) => StatusCode::GONE,
            Refusal::Link(LinkError::AlreadyUsed) | Refusal::Settled => StatusCode::CONFLICT,
            Refusal::Link(LinkError::OtherStep) => StatusCode::NOT_FOUND,
            Refusal::Link(
                LinkError::BadSignature | LinkError::OtherRecipient | LinkError::BadCsrf,
            )
            | Refusal::CrossSite
            | Refusal::SignInRequired(_) => StatusCode::FORBIDDEN,
            Refusal::Link(_) | Refusal::NotAChoice => StatusCode::BAD_REQUEST,
        }
    }

    fn page(&self) -> String {
        match self {
            Refusal::Link(e) => pages::rejected_link_page(e),
            Refusal::Settled => pages::rejected_link_page(&LinkError::AlreadyUsed),
            Refusal::CrossSite => pages::rejected_link_page(&LinkError::BadCsrf),
            Refusal::NotAChoice => pages::rejected_link_page(&LinkError::Malformed("choice")),
            Refusal::SignInRequired(recipient) => pages::signin::sign_in_first_page(recipient),
        }
    }
}

impl From<LinkError> for Refusal {
    fn from(e: LinkError) -> Self {
        Refusal::Link(e)
    }
}

/// What a good link points at: its claims and the row's current view.
struct Target {
    claims: LinkClaims,
    view: Arc<StepView>,
}

/// Why a handler stopped: a refused link, the store failing (a 503, not audited), or a link
/// its owner already used: the page of what they chose (not a refusal, not audited).
enum Stop {
    Refused(Option<Box<LinkClaims>>, Refusal),
    Store(String),
    AlreadyDecided(Box<pages::DecidedView>),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e.to_string())
    }
}

/// `GET` and `HEAD`: the confirmation page. Reads only (a refusal is audited).
pub async fn show<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Extension(routes): Extension<Arc<LinkRoutes>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let now = shared.clock.now();
    let result = async {
        let claims = match verify(&shared, &token, now) {
            Err(Stop::Refused(_, Refusal::Link(LinkError::Expired { at }))) => {
                return Err(receipt(&shared, &token, at).await);
            }
            other => other?,
        };
        let target = target(&shared, &routes, claims, true).await?;
        Ok(confirmation(&shared, &token, target))
    }
    .await;
    match result {
        Ok(page) => html(StatusCode::OK, page),
        Err(stop) => refuse(&shared, &routes, stop, peer, "GET", now).await,
    }
}

/// `POST`: the decision.
pub async fn decide<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Extension(routes): Extension<Arc<LinkRoutes>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let now = shared.clock.now();
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let result = async {
        let claims = verify(&shared, &token, now)?;
        let refused = |r: Refusal| Stop::Refused(Some(Box::new(claims.clone())), r);
        if cross_site(&headers, &shared) {
            return Err(refused(Refusal::CrossSite));
        }
        let csrf = form.get(pages::FIELD_CSRF).map_or("", String::as_str);
        let signer = &shared.engine.links.as_ref().expect("checked").signer;
        signer
            .check_csrf(&token, csrf)
            .map_err(|e| refused(e.into()))?;
        let target = target(&shared, &routes, claims.clone(), false).await?;
        let choice = form
            .get(pages::FIELD_CHOICE)
            .map_or("", String::as_str)
            .to_string();
        if !target.view.ask.choices.contains(&choice) {
            return Err(refused(Refusal::NotAChoice));
        }
        let required = target
            .view
            .ask
            .sign_in
            .unwrap_or(shared.auth.approvals_sign_in);
        if required == SignIn::Required && target.view.ask.purpose == Purpose::Approval {
            let person = super::auth::signed_in(&shared, &headers).await.ok();
            let recipient = person.filter(|p| claims.check_recipient(&p.person.email).is_ok());
            if recipient.is_none() {
                return Err(refused(Refusal::SignInRequired(claims.recipient.clone())));
            }
        }
        let comment = form
            .get(pages::FIELD_COMMENT)
            .map(|c| c.trim().chars().take(MAX_COMMENT).collect::<String>())
            .filter(|c| !c.is_empty());
        let decision = NewDecision {
            run_id: claims.run_id.clone(),
            step: claims.step.clone(),
            host: claims.host.clone(),
            recipient: claims.recipient.clone(),
            choice: choice.clone(),
            comment: comment.clone(),
            at: now,
            actor: format!("link:{}", claims.recipient),
            source_ip: Some(peer.ip().to_string()),
            nonce: Some(claims.nonce.clone()),
        };
        let decided = match shared
            .engine
            .decide(&target.view.checked, decision.clone())
            .await
        {
            Ok(decided) => decided,
            Err(e) => return Err(decide_error(e, &claims)),
        };
        if decided.settled.is_some() {
            shared.spawn_run(target.view.checked.clone(), claims.run_id.clone());
        }
        shared.mail.notify_one();
        let view = decided_view(&target.view.run, &claims, &decision, pages::Seen::Now);
        Ok(pages::decided_page(&view))
    }
    .await;
    match result {
        Ok(page) => html(StatusCode::OK, page),
        Err(stop) => refuse(&shared, &routes, stop, peer, "POST", now).await,
    }
}

/// The page of `decision`, as the link's person sees it (`seen`).
fn decided_view(
    run: &crate::store::RunRow,
    claims: &LinkClaims,
    decision: &NewDecision,
    seen: pages::Seen,
) -> pages::DecidedView {
    pages::DecidedView {
        runbook: run.runbook.clone(),
        cycle: crate::run::cycle_shown(run),
        step: claims.step.clone(),
        outcome: outcome(claims.purpose, &decision.choice),
        actor: decision.recipient.clone(),
        at: decision.at,
        comment: decision.comment.clone(),
        run_id: claims.run_id.clone(),
        seen,
    }
}

/// An expired link opened again: the page of its owner's decision if they took one through
/// it (a receipt outlives the link), else the expiry refusal.
async fn receipt<S: Store>(shared: &Shared<S>, token: &str, expired_at: DateTime<Utc>) -> Stop {
    let expired = || Stop::Refused(None, LinkError::Expired { at: expired_at }.into());
    let Ok(claims) = verify(shared, token, expired_at - chrono::Duration::seconds(1)) else {
        return expired();
    };
    let store = &shared.engine.store;
    let (run, decisions) = match (
        store.run(&claims.run_id).await,
        store
            .decisions(&claims.run_id, &claims.step, &claims.host)
            .await,
    ) {
        (Ok(Some(run)), Ok(decisions)) => (run, decisions),
        (Err(e), _) | (_, Err(e)) => return e.into(),
        _ => return expired(),
    };
    match decisions
        .iter()
        .find(|d| d.decision.nonce.as_deref() == Some(claims.nonce.as_str()))
    {
        Some(mine) => {
            let seen = pages::Seen::Earlier;
            Stop::AlreadyDecided(Box::new(decided_view(&run, &claims, &mine.decision, seen)))
        }
        None => expired(),
    }
}

/// The token's claims, if it is well formed, signed with our key and not expired.
fn verify<S: Store>(
    shared: &Shared<S>,
    token: &str,
    now: DateTime<Utc>,
) -> Result<LinkClaims, Stop> {
    let Some(minter) = &shared.engine.links else {
        return Err(Stop::Refused(None, LinkError::BadSignature.into()));
    };
    minter
        .signer
        .verify(token, now)
        .map_err(|e| Stop::Refused(None, e.into()))
}

/// The run, runbook, step and row the claims name, checked: a person-step of the link's purpose,
/// the recipient still one of its people, the nonce unused, the row awaiting input. Reads the
/// chain head, and the rest only when it moved since the row's view was kept ([`cache`]).
/// A used link that is only `reading` (a `GET`) stops with the page of its decision.
async fn target<S: Store>(
    shared: &Shared<S>,
    routes: &LinkRoutes,
    claims: LinkClaims,
    reading: bool,
) -> Result<Target, Stop> {
    let refused = |r: Refusal| Stop::Refused(Some(Box::new(claims.clone())), r);
    let other_step = || refused(LinkError::OtherStep.into());
    let store = &*shared.engine.store;
    let head = routes
        .heads
        .read(&shared.engine.store)
        .await
        .map_err(Stop::Store)?;
    let run = routes
        .runs
        .get(store, &claims.run_id)
        .await?
        .ok_or_else(other_step)?;
    let checked = shared.checked_for_run(&run).ok_or_else(other_step)?;
    let key = (run.id.as_str(), claims.step.as_str(), claims.host.as_str());
    let view = match routes.steps.get(key, &head, &checked) {
        Some(view) => view,
        None => {
            let rows = store.steps(&run.id).await?;
            let row = rows
                .iter()
                .find(|r| r.step == claims.step && r.host == claims.host)
                .ok_or_else(other_step)?;
            let ask = shared
                .engine
                .person_ask(&checked, &run, &rows, &claims.step, &claims.host)
                .map_err(|_| other_step())?;
            let decisions = store.decisions(&run.id, &claims.step, &claims.host).await?;
            let state = row.state;
            let view = Arc::new(StepView::new(
                head,
                run.clone(),
                checked,
                state,
                ask,
                decisions,
            ));
            routes.steps.put(key, view.clone());
            view
        }
    };
    if view.ask.purpose != claims.purpose {
        return Err(other_step());
    }
    if !view
        .ask
        .recipients
        .iter()
        .any(|r| claims.check_recipient(r).is_ok())
    {
        return Err(refused(LinkError::OtherRecipient.into()));
    }
    let mine = view.decisions.iter().find(|d| {
        d.decision.nonce.as_deref() == Some(claims.nonce.as_str())
            || claims.check_recipient(&d.decision.recipient).is_ok()
    });
    match mine {
        // Its owner opening it again: what they chose and when (nothing refused).
        Some(mine) if reading => {
            let decided = decided_view(&view.run, &claims, &mine.decision, pages::Seen::Earlier);
            return Err(Stop::AlreadyDecided(Box::new(decided)));
        }
        // A form posted again (a replay, or a double click): refused and audited.
        Some(_) => return Err(refused(LinkError::AlreadyUsed.into())),
        None => {}
    }
    if view.state != StepState::AwaitingInput {
        // Settled by others' decisions: a person opening their link sees what was decided.
        if let (true, Some(last)) = (reading, view.decisions.last()) {
            let decided = decided_view(&view.run, &claims, &last.decision, pages::Seen::Others);
            return Err(Stop::AlreadyDecided(Box::new(decided)));
        }
        return Err(refused(Refusal::Settled));
    }
    Ok(Target { claims, view })
}

/// The confirmation page of a good link.
fn confirmation<S: Store>(shared: &Shared<S>, token: &str, target: Target) -> String {
    let Target { claims, view } = target;
    let StepView {
        run,
        checked,
        ask,
        decisions,
        ..
    } = &*view;
    let signer = &shared.engine.links.as_ref().expect("verified").signer;
    let leads_to = consequences::leads_to(checked, &claims.step, ask);
    let choices = ask
        .choices
        .iter()
        .zip(leads_to)
        .map(|(c, leads_to)| pages::ChoiceView {
            value: c.clone(),
            label: label(ask.purpose, c),
            leads_to,
        })
        .collect();
    let window = consequences::patch_window(checked, run, &claims.step)
        .into_iter()
        .map(|p| pages::WindowView {
            local: crate::calendar::wall_clock(&p.at, checked.tz),
            step: p.step,
            description: p.description,
            at: p.at,
        })
        .collect();
    let heading = crate::run::approvals::ask_heading(checked, &claims.step, ask);
    let params = run
        .snapshot
        .get("params")
        .and_then(serde_json::Value::as_object)
        .map(|params| {
            params
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let page = pages::ConfirmationView {
        purpose: claims.purpose,
        runbook: run.runbook.clone(),
        cycle: crate::run::cycle_shown(run),
        step: claims.step.clone(),
        step_description: checked
            .runbook
            .steps
            .get(claims.step.as_str())
            .and_then(|s| s.description.clone()),
        hosts: crate::run::approvals::hosts_of(checked, &claims.host, shared.clock.now()),
        runbook_commit: run.commit.clone(),
        runbook_hash: run.content_hash.clone(),
        message: ask.message.clone().filter(|m| !m.trim().is_empty()),
        heading: (heading != claims.step).then_some(heading),
        window,
        params,
        recipient: claims.recipient.clone(),
        expires_at: claims.expires_at,
        quorum: (ask.purpose == Purpose::Approval).then_some(ask.quorum),
        decisions: decisions
            .iter()
            .map(|d| pages::DecisionView {
                name: d.decision.recipient.clone(),
                choice: d.decision.choice.clone(),
                at: d.decision.at,
                comment: d.decision.comment.clone(),
            })
            .collect(),
        choices,
        action: format!("/links/{token}"),
        csrf: signer.csrf_token(token),
    };
    pages::confirmation_page(&page)
}

/// Whether a `POST` says it comes from another site: `Sec-Fetch-Site` other than
/// `same-origin` / `none`, or an `Origin` that is neither the public URL's nor this `Host`.
fn cross_site<S: Store>(headers: &HeaderMap, shared: &Shared<S>) -> bool {
    is_cross_site(headers, shared.engine.base_url())
}

/// [`cross_site`] against the public URL `public`.
///
/// Our pages say `no-referrer`, so a browser posts their forms with `Origin: null` (the Fetch
/// standard serialises the origin as `null` under that policy); `null` names no site, and is
/// taken as this site only when the browser also says `Sec-Fetch-Site: same-origin`.
pub(super) fn is_cross_site(headers: &HeaderMap, public: &str) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let site = text("sec-fetch-site");
    if let Some(site) = site
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return false;
    };
    if origin == "null" && site == Some("same-origin") {
        return false;
    }
    let origin = origin.trim_end_matches('/');
    let public_origin = origin_of(public);
    let host_origins = text(header::HOST.as_str())
        .map(|h| [format!("http://{h}"), format!("https://{h}")])
        .unwrap_or_default();
    !(origin.eq_ignore_ascii_case(public_origin) || host_origins.iter().any(|o| o == origin))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// A failed [`crate::run::Engine::decide`] as a refusal (or a store failure).
fn decide_error(e: RunError, claims: &LinkClaims) -> Stop {
    let refusal = match e {
        RunError::Store(StoreError::AlreadyDecided { .. } | StoreError::LinkUsed { .. }) => {
            Refusal::Link(LinkError::AlreadyUsed)
        }
        RunError::AlreadySettled { .. } | RunError::NotAwaitingInput { .. } => Refusal::Settled,
        RunError::NotARecipient { .. } => Refusal::Link(LinkError::OtherRecipient),
        RunError::NotAChoice { .. } => Refusal::NotAChoice,
        RunError::NoSuchRun(_) | RunError::BadInputs { .. } => Refusal::Link(LinkError::OtherStep),
        other => return Stop::Store(other.to_string()),
    };
    Stop::Refused(Some(Box::new(claims.clone())), refusal)
}

/// The refusal page, after its `link.rejected` event is committed (a store failure: a 503);
/// past the rate limit, the 429 page instead.
async fn refuse<S: Store>(
    shared: &Shared<S>,
    routes: &LinkRoutes,
    stop: Stop,
    peer: SocketAddr,
    method: &str,
    now: DateTime<Utc>,
) -> Response {
    let (claims, refusal) = match stop {
        Stop::Refused(claims, refusal) => (claims, refusal),
        Stop::Store(e) => return unavailable(e),
        Stop::AlreadyDecided(view) => return html(StatusCode::OK, pages::decided_page(&view)),
    };
    shared.counters.link_rejected(refusal.code());
    if let Verdict::Limited { until, report } = routes.refusals.refusal(peer.ip(), now) {
        return too_many(shared, report, peer, method, now, until).await;
    }
    let store = &shared.engine.store;
    let mut details = json!({
        "reason": refusal.code(),
        "source_ip": peer.ip().to_string(),
        "method": method,
    });
    let (mut run_id, mut step_id) = (None, None);
    if let Some(claims) = &claims {
        details["run_id"] = json!(claims.run_id);
        details["step"] = json!(claims.step);
        if !claims.host.is_empty() {
            details["host"] = json!(claims.host);
        }
        // Filed under the run only when it exists (a signed link for a deleted run is possible).
        if let Ok(Some(_)) = routes.runs.get(&**store, &claims.run_id).await {
            run_id = Some(claims.run_id.clone());
            step_id = Some(claims.step.clone());
        }
    }
    let actor = match &claims {
        Some(c) => format!("link:{}", c.recipient),
        None => "link:unknown".to_string(),
    };
    let event = NewEvent {
        at: now,
        actor,
        action: "link.rejected".into(),
        run_id,
        step_id,
        details,
    };
    let change = Change {
        events: vec![event],
        ..Change::default()
    };
    if let Err(e) = store.commit(vec![change]).await {
        return unavailable(e);
    }
    html(refusal.status(), refusal.page())
}

/// The 429 page, after the window's `link.rate_limited` event (if this is its first 429) is
/// committed.
async fn too_many<S: Store>(
    shared: &Shared<S>,
    report: Option<Report>,
    peer: SocketAddr,
    method: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Response {
    if let Some(report) = report {
        let source = match &report.scope {
            Scope::Source(source) => source.as_str(),
            Scope::All => "all",
        };
        let event = NewEvent {
            at: now,
            actor: "link:unknown".into(),
            action: "link.rate_limited".into(),
            run_id: None,
            step_id: None,
            details: json!({
                "source": source,
                "source_ip": peer.ip().to_string(),
                "method": method,
                "limit": report.limit,
                "window_seconds": limit::WINDOW.num_seconds(),
                "window_start": crate::audit::format_instant(report.window_start),
                "until": crate::audit::format_instant(until),
            }),
        };
        let change = Change {
            events: vec![event],
            ..Change::default()
        };
        if let Err(e) = shared.engine.store.commit(vec![change]).await {
            return unavailable(e);
        }
    }
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many refused link requests arrived in the last minute, so this one was not looked \
         at. Nothing was changed. Wait a minute, then open the link from your \
         email again.",
    );
    let wait = (until - now).num_seconds().max(1);
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A button's label (the link page's and the dashboard's).
pub(super) fn label(purpose: Purpose, choice: &str) -> String {
    match (purpose, choice) {
        (Purpose::Task, "done") => "Done".into(),
        (Purpose::Task, "failed") => "Failed".into(),
        _ => capitalised(choice),
    }
}

/// The decided page's outcome: "Approved", "Rejected", "Marked done", "Chose “defer”".
fn outcome(purpose: Purpose, choice: &str) -> String {
    match (purpose, choice) {
        (Purpose::Task, c) => format!("Marked {c}"),
        (_, "approve") => "Approved".into(),
        (_, "reject") => "Rejected".into(),
        (_, c) => format!("Chose “{c}”"),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_labels() {
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            origin_of("https://patch.example.com/base/"),
            "https://patch.example.com"
        );
        assert_eq!(outcome(Purpose::Approval, "approve"), "Approved");
        assert_eq!(outcome(Purpose::Task, "failed"), "Marked failed");
        assert_eq!(label(Purpose::Approval, "reject"), "Reject");
        assert_eq!(Refusal::Settled.status(), StatusCode::CONFLICT);
        let expired = Refusal::Link(LinkError::Expired { at: Utc::now() });
        assert_eq!(expired.status(), StatusCode::GONE);
        assert_eq!(
            Refusal::Link(LinkError::Malformed("x")).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_browsers_post_from_our_page_is_same_site_and_others_are_not() {
        let public = "http://127.0.0.1:8080";
        let check = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            is_cross_site(&headers, public)
        };
        // What Chromium sends for our page's form (its `no-referrer` policy nulls the Origin).
        assert!(!check(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!check(&[
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!check(&[
            ("origin", "http://patch.local:9"),
            ("host", "patch.local:9")
        ]));
        assert!(!check(&[]));
        // `null` alone names no site; from another site, or with another origin: refused.
        assert!(check(&[("origin", "null")]));
        assert!(check(&[
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(check(&[("origin", "null"), ("sec-fetch-site", "none")]));
        assert!(check(&[("sec-fetch-site", "same-site")]));
        assert!(check(&[("origin", "http://evil.example")]));
        assert!(check(&[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "same-origin")
        ]));
    }
}
