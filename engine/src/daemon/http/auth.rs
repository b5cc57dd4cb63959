//! Sign-in, sessions and roles on the HTTP server (DESIGN §7).
//!
//! Every page but `/healthz`, the email links and these sign-in routes needs a signed-in person:
//! handlers take a [`SignedIn`], whose extraction reads the session cookie, the session row
//! ([`crate::auth::session::check`]: not signed out, not expired, not idle) and the person's
//! role ([`crate::auth::Roles`]). Without a live session a page answers `303 See Other` to
//! `/signin` and shows nothing; a person who holds no role (any more) gets a 403 that names
//! nobody but them.
//!
//! Routes:
//! - `GET /signin`: the address form. `POST /signin` (`email`): if the address holds a role, one
//!   email with a sign-in link ([`EMAILED_LINK_TTL`]) is queued with its `auth.link_sent` event;
//!   the answer is the same either way (nobody learns who may sign in). Every `POST` counts
//!   toward the per-source limit ([`RefusalLimit`]), so the form cannot be used to flood a
//!   mailbox.
//! - `GET`/`HEAD /signin/{token}`: "Sign in as …?" (mail scanners fetch links: nothing happens).
//!   `POST /signin/{token}` (same origin, CSRF value): opens a session (a new cookie value,
//!   `auth.signed_in`) in one commit that also spends the link's nonce: a link signs in once.
//! - `POST /signout` (CSRF value derived from the cookie): revokes the session
//!   (`auth.signed_out`) and clears the cookie.
//!
//! Refused sign-ins (bad, expired or used links, cross-site posts, bad CSRF, addresses without a
//! role) are `auth.refused` events with the reason and source IP, up to the rate limit; past it
//! the answer is a 429 and the window's first records `auth.rate_limited`.
//!
//! Session times use real time ([`AuthState::clock`]), not the engine clock, which `--now` and
//! `--virtual-clock` move; audit events carry the engine clock's time like every other event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::links::is_cross_site;
use super::links::limit::{RefusalLimit, Scope, Verdict};
use super::{Shared, error, html, unavailable};
use crate::auth::oidc::{Oidc, OidcError};
use crate::auth::session::{self, Ended};
use crate::auth::{
    EMAILED_LINK_TTL, LOCAL_LINK_TTL, LOCAL_OPERATOR, Person, Role, Roles, SignInLinks,
    normalize_email,
};
use crate::clock::Clock;
use crate::links::{LinkClaims, LinkError};
use crate::pages::FIELD_CSRF;
use crate::pages::signin::{self as pages, FIELD_EMAIL};
use crate::store::{Change, NewEmail, NewEvent, NewSession, SessionWrite, Store, StoreError};
use patchday_connectors::inputs::SignIn;

/// What the sign-in routes and the session check need.
pub struct AuthState {
    pub links: SignInLinks,
    pub roles: Roles,
    /// `Secure` cookies (the public URL is `https://`).
    pub secure: bool,
    /// Real time, for sessions and sign-in links.
    pub clock: Arc<dyn Clock>,
    /// Refused sign-ins and sign-in requests, per source.
    pub refusals: RefusalLimit,
    /// Fills a buffer with OS randomness (cookie values, nonces).
    pub random: fn(&mut [u8]),
    /// Single sign-on, when `[auth.oidc]` is configured.
    pub oidc: Option<Arc<Oidc>>,
    /// `[auth] sign_in`: for approval steps that do not say.
    pub approvals_sign_in: SignIn,
    /// SHA-256 of the bearer token `/metrics` requires (`[server] metrics_token_file`).
    pub metrics_token: Option<[u8; 32]>,
}

impl AuthState {
    /// Whether a request may read `/metrics`: no token configured, or its bearer token's hash
    /// is the configured one (compared in constant time).
    pub fn may_read_metrics(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.metrics_token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let digest: [u8; 32] =
            <sha2::Sha256 as sha2::Digest>::digest(given.trim().as_bytes()).into();
        digest
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("roles", &self.roles)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl AuthState {
    /// A one-time sign-in path (`/signin/TOKEN`) for the local operator, good for
    /// [`LOCAL_LINK_TTL`].
    pub fn local_sign_in_path(&self) -> Result<String, LinkError> {
        let nonce = crate::links::new_nonce(&mut |b| (self.random)(b));
        let token = self
            .links
            .mint(LOCAL_OPERATOR, self.clock.now(), LOCAL_LINK_TTL, nonce)?;
        Ok(format!("/signin/{token}"))
    }
}

/// OS randomness; the daemon's [`AuthState::random`].
pub fn os_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("OS randomness");
}

/// A request from a signed-in person who holds a role.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub person: Person,
    /// The cookie's value (the sign-out form's CSRF value is derived from it).
    pub cookie: String,
}

impl SignedIn {
    /// The overview's "signed in as … / Sign out" bar.
    pub fn bar<S: Store>(&self, shared: &Shared<S>) -> String {
        let csrf = shared.auth.links.csrf(&self.cookie);
        pages::signed_in_bar(&self.person.email, self.person.role.as_str(), &csrf).into_string()
    }
}

impl<S: Store> FromRequestParts<Arc<Shared<S>>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared<S>>,
    ) -> Result<Self, Self::Rejection> {
        signed_in(shared, &parts.headers).await
    }
}

/// The signed-in person of a request: a live session of someone who holds a role. Else the
/// answer: a redirect to `/signin` (clearing a cookie of an ended session), a 403 for someone
/// who holds no role any more, a 503 when the store does not answer.
pub async fn signed_in<S: Store>(
    shared: &Shared<S>,
    headers: &HeaderMap,
) -> Result<SignedIn, Response> {
    let Some(cookie) = session::from_headers(headers) else {
        return Err(to_sign_in(None, shared.auth.secure));
    };
    let id_hash = session::id_hash(&cookie);
    let store = &shared.engine.store;
    let row = store.session(&id_hash).await.map_err(unavailable)?;
    let now = shared.auth.clock.now();
    if let Err(ended) = session::check(row.as_ref(), now) {
        return Err(to_sign_in(Some(ended), shared.auth.secure));
    }
    let row = row.expect("checked");
    let Some(role) = shared.role_of(&row.session.email, &row.session.groups) else {
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!(
                "{} holds no role here any more. Ask an admin of patchday.",
                row.session.email
            ),
        ));
    };
    if now - row.last_seen_at >= session::TOUCH_EVERY {
        store
            .touch_session(&id_hash, now)
            .await
            .map_err(unavailable)?;
    }
    Ok(SignedIn {
        person: Person {
            email: row.session.email,
            role,
        },
        cookie,
    })
}

impl<S: Store> Shared<S> {
    /// The role of `email` with `groups`: `[auth]`'s lists, `role:NAME` read from the runbooks
    /// in force.
    pub fn role_of(&self, email: &str, groups: &[String]) -> Option<Role> {
        let runbooks = self.runbooks();
        let in_runbook_role = |name: &str| {
            runbooks.by_name.values().any(|loaded| {
                loaded
                    .checked
                    .runbook
                    .roles
                    .iter()
                    .filter(|(role, _)| role.value == name)
                    .flat_map(|(_, members)| members)
                    .any(|m| m.value.eq_ignore_ascii_case(email))
            })
        };
        self.auth.roles.role_of(email, groups, &in_runbook_role)
    }
}

/// `303 See Other` to the sign-in form; a cookie that named an ended session is cleared.
fn to_sign_in(ended: Option<Ended>, secure: bool) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/signin")]).into_response();
    if ended.is_some() {
        set_cookie(&mut response, &session::clear_cookie(secure));
    }
    response
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// `GET /signin`.
pub async fn form<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    html(
        StatusCode::OK,
        pages::sign_in_page(shared.auth.oidc.is_some()),
    )
}

/// The cookie that binds a single sign-on to the browser that started it.
const OIDC_STATE_COOKIE: &str = "patchday_oidc_state";

/// `GET /signin/oidc`: to the identity provider, with the state in a cookie.
pub async fn oidc_start<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let now = shared.clock.now();
    let Some(oidc) = &shared.auth.oidc else {
        return error(
            StatusCode::NOT_FOUND,
            "Single sign-on is not configured here.",
        );
    };
    match oidc.start().await {
        Ok(started) => {
            let mut response = (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, started.url.as_str())],
            )
                .into_response();
            let cookie = format!(
                "{OIDC_STATE_COOKIE}={}; Path=/signin/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}",
                started.state,
                crate::auth::oidc::PENDING_TTL.as_secs(),
                if shared.auth.secure { "; Secure" } else { "" }
            );
            set_cookie(&mut response, &cookie);
            response
        }
        Err(e) => refuse_oidc(&shared, e, peer, now).await,
    }
}

/// `GET /signin/oidc/callback?code&state`: opens a session for the person the ID token names.
pub async fn oidc_callback<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let now = shared.clock.now();
    let Some(oidc) = &shared.auth.oidc else {
        return error(
            StatusCode::NOT_FOUND,
            "Single sign-on is not configured here.",
        );
    };
    let state = query.get("state").map_or("", String::as_str);
    let ours = cookie_named(&headers, OIDC_STATE_COOKIE);
    if state.is_empty() || ours.as_deref() != Some(state) {
        return refuse_oidc(&shared, OidcError::UnknownState, peer, now).await;
    }
    if let Some(e) = query.get("error") {
        let e = OidcError::Provider(e.chars().take(100).collect());
        return refuse_oidc(&shared, e, peer, now).await;
    }
    let code = query.get("code").map_or("", String::as_str);
    let identity = match oidc.finish(state, code).await {
        Ok(identity) => identity,
        Err(e) => return refuse_oidc(&shared, e, peer, now).await,
    };
    if shared.role_of(&identity.email, &identity.groups).is_none() {
        return refuse(&shared, Some(&identity.email), "no_role", peer, now).await;
    }
    let real_now = shared.auth.clock.now();
    let opened = open_session(
        &shared,
        &identity.email,
        "oidc",
        identity.groups,
        None,
        peer,
        now,
        real_now,
    )
    .await;
    match opened {
        Ok(mut response) => {
            let gone = format!(
                "{OIDC_STATE_COOKIE}=; Path=/signin/oidc; HttpOnly; SameSite=Lax; Max-Age=0"
            );
            set_cookie(&mut response, &gone);
            response
        }
        Err(e) => unavailable(e),
    }
}

/// The value of cookie `name` in a request, if any.
fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_string())
}

/// A single sign-on that did not sign in: its page after `auth.refused` (details to the log).
async fn refuse_oidc<S: Store>(
    shared: &Shared<S>,
    e: OidcError,
    peer: SocketAddr,
    now: DateTime<Utc>,
) -> Response {
    tracing::warn!("single sign-on refused: {e}");
    if let Some(limited) = limited(shared, peer, now).await {
        return limited;
    }
    let details = json!({"reason": e.code()});
    if let Err(e) = audit(shared, None, "auth.refused", details, peer, now).await {
        return unavailable(e);
    }
    let status = match e {
        OidcError::Discovery(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::FORBIDDEN,
    };
    html(
        status,
        pages::refused_page(
            "Single sign-on did not sign you in",
            "The identity provider's answer could not be used.",
            e.code(),
        ),
    )
}

/// `POST /signin`: an emailed sign-in link for an address that holds a role.
pub async fn request_link<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let now = shared.clock.now();
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let typed = form.get(FIELD_EMAIL).map_or("", String::as_str);
    let Some(email) = normalize_email(typed) else {
        return error(
            StatusCode::BAD_REQUEST,
            "That is not an email address. Go back and enter yours.",
        );
    };
    let sent = pages::link_sent_page(&email);
    if let Verdict::Limited { until, report } = shared
        .auth
        .refusals
        .refusal(peer.ip(), shared.auth.clock.now())
    {
        return too_many(&shared, report.map(|r| r.scope), peer, now, until).await;
    }
    if is_cross_site(&headers, shared.engine.base_url()) {
        return refuse(&shared, Some(&email), "cross_site", peer, now).await;
    }
    if shared.role_of(&email, &[]).is_none() {
        return match audit(
            &shared,
            Some(&email),
            "auth.refused",
            json!({"reason": "no_role"}),
            peer,
            now,
        )
        .await
        {
            Ok(()) => html(StatusCode::OK, sent),
            Err(e) => unavailable(e),
        };
    }
    let nonce = crate::links::new_nonce(&mut |b| (shared.auth.random)(b));
    let token =
        match shared
            .auth
            .links
            .mint(&email, shared.auth.clock.now(), EMAILED_LINK_TTL, nonce)
        {
            Ok(token) => token,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        };
    let link = format!("{}/signin/{token}", shared.engine.base_url());
    let email_row = NewEmail {
        run_id: None,
        to: vec![email.clone()],
        subject: "[patchday] Your sign-in link".into(),
        body: format!(
            "Someone (we hope you) asked to sign in to patchday as {email}.\n\n\
             Sign in: {link}\n\n\
             The link works once, for 15 minutes. If you did not ask for it, ignore this email.\n"
        ),
        html: None,
        created_at: now,
        attachments: Vec::new(),
        key: None,
    };
    let change = Change {
        events: vec![event(Some(&email), "auth.link_sent", json!({}), peer, now)],
        emails: vec![email_row],
        ..Change::default()
    };
    if let Err(e) = shared.engine.store.commit(vec![change]).await {
        return unavailable(e);
    }
    shared.mail.notify_one();
    html(StatusCode::OK, sent)
}

/// `GET`/`HEAD /signin/{token}`: "Sign in as …?"; changes nothing.
pub async fn confirm<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let now = shared.clock.now();
    match shared.auth.links.verify(&token, shared.auth.clock.now()) {
        Ok(claims) => {
            let csrf = shared.auth.links.csrf(&token);
            let action = format!("/signin/{token}");
            html(
                StatusCode::OK,
                pages::confirm_page(&shown(&claims.recipient), &action, &csrf),
            )
        }
        Err(e) => refuse_link(&shared, None, e, peer, now).await,
    }
}

/// `POST /signin/{token}`: opens a session, once per link.
pub async fn sign_in<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let now = shared.clock.now();
    let real_now = shared.auth.clock.now();
    let claims = match shared.auth.links.verify(&token, real_now) {
        Ok(claims) => claims,
        Err(e) => return refuse_link(&shared, None, e, peer, now).await,
    };
    if is_cross_site(&headers, shared.engine.base_url()) {
        return refuse(&shared, Some(&claims.recipient), "cross_site", peer, now).await;
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let csrf = form.get(FIELD_CSRF).map_or("", String::as_str);
    if let Err(e) = shared.auth.links.check_csrf(&token, csrf) {
        return refuse_link(&shared, Some(&claims), e, peer, now).await;
    }
    if shared.role_of(&claims.recipient, &[]).is_none() {
        return refuse(&shared, Some(&claims.recipient), "no_role", peer, now).await;
    }
    let via = if claims.recipient == LOCAL_OPERATOR {
        "local"
    } else {
        "link"
    };
    let opened = open_session(
        &shared,
        &claims.recipient,
        via,
        vec![],
        Some(claims.nonce.clone()),
        peer,
        now,
        real_now,
    )
    .await;
    match opened {
        Ok(response) => response,
        Err(StoreError::LinkUsed { .. }) => {
            refuse_link(&shared, Some(&claims), LinkError::AlreadyUsed, peer, now).await
        }
        Err(e) => unavailable(e),
    }
}

/// Opens a session for `email` (a new cookie value) with its `auth.signed_in` event; answers
/// with the cookie and a redirect to the overview.
#[allow(clippy::too_many_arguments)]
pub async fn open_session<S: Store>(
    shared: &Shared<S>,
    email: &str,
    via: &str,
    groups: Vec<String>,
    link_nonce: Option<String>,
    peer: SocketAddr,
    now: DateTime<Utc>,
    real_now: DateTime<Utc>,
) -> Result<Response, StoreError> {
    let cookie = session::new_value(&mut |b| (shared.auth.random)(b));
    let opened = NewSession {
        id_hash: session::id_hash(&cookie),
        email: email.to_string(),
        via: via.to_string(),
        groups,
        created_at: real_now,
        expires_at: real_now + session::LIFETIME,
        link_nonce,
        source_ip: Some(peer.ip().to_string()),
    };
    let change = Change {
        events: vec![event(
            Some(email),
            "auth.signed_in",
            json!({"via": via}),
            peer,
            now,
        )],
        sessions: vec![SessionWrite::Open(opened)],
        ..Change::default()
    };
    shared.engine.store.commit(vec![change]).await?;
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    set_cookie(
        &mut response,
        &session::set_cookie(&cookie, shared.auth.secure),
    );
    Ok(response)
}

/// `POST /signout`: revokes the session and clears the cookie.
pub async fn sign_out<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    signed_in: SignedIn,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let now = shared.clock.now();
    let email = signed_in.person.email.clone();
    if is_cross_site(&headers, shared.engine.base_url()) {
        return refuse(&shared, Some(&email), "cross_site", peer, now).await;
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let csrf = form.get(FIELD_CSRF).map_or("", String::as_str);
    if shared
        .auth
        .links
        .check_csrf(&signed_in.cookie, csrf)
        .is_err()
    {
        return refuse(&shared, Some(&email), "bad_csrf", peer, now).await;
    }
    let change = Change {
        events: vec![event(Some(&email), "auth.signed_out", json!({}), peer, now)],
        sessions: vec![SessionWrite::Close {
            id_hash: session::id_hash(&signed_in.cookie),
            at: shared.auth.clock.now(),
        }],
        ..Change::default()
    };
    if let Err(e) = shared.engine.store.commit(vec![change]).await {
        return unavailable(e);
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/signin")]).into_response();
    set_cookie(&mut response, &session::clear_cookie(shared.auth.secure));
    response
}

/// How a sign-in link's recipient is shown: the local operator by that name.
fn shown(recipient: &str) -> String {
    if recipient == LOCAL_OPERATOR {
        "the local operator".into()
    } else {
        recipient.to_string()
    }
}

/// An audit event about a sign-in: actor `web:<email>` (or `web:unknown`), the source IP.
fn event(
    email: Option<&str>,
    action: &str,
    mut details: serde_json::Value,
    peer: SocketAddr,
    now: DateTime<Utc>,
) -> NewEvent {
    details["source_ip"] = json!(peer.ip().to_string());
    NewEvent {
        at: now,
        actor: format!("web:{}", email.unwrap_or("unknown")),
        action: action.into(),
        run_id: None,
        step_id: None,
        details,
    }
}

async fn audit<S: Store>(
    shared: &Shared<S>,
    email: Option<&str>,
    action: &str,
    details: serde_json::Value,
    peer: SocketAddr,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let change = Change {
        events: vec![event(email, action, details, peer, now)],
        ..Change::default()
    };
    shared.engine.store.commit(vec![change]).await
}

/// A refused sign-in link: its page, after `auth.refused` (or the 429 past the limit).
async fn refuse_link<S: Store>(
    shared: &Shared<S>,
    claims: Option<&LinkClaims>,
    reason: LinkError,
    peer: SocketAddr,
    now: DateTime<Utc>,
) -> Response {
    let email = claims.map(|c| c.recipient.as_str());
    let (status, title, text) = match &reason {
        LinkError::Expired { .. } => (
            StatusCode::GONE,
            "This sign-in link has expired",
            "Sign-in links work for 15 minutes.",
        ),
        LinkError::AlreadyUsed => (
            StatusCode::CONFLICT,
            "This sign-in link was already used",
            "Each sign-in link signs in once.",
        ),
        LinkError::BadCsrf => (
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The sign-in did not come from a current page. Open the link again.",
        ),
        _ => (
            StatusCode::FORBIDDEN,
            "This sign-in link is not valid",
            "The link is damaged, incomplete, or was made by another patchday.",
        ),
    };
    if let Some(limited) = limited(shared, peer, now).await {
        return limited;
    }
    let details = json!({"reason": reason.code()});
    if let Err(e) = audit(shared, email, "auth.refused", details, peer, now).await {
        return unavailable(e);
    }
    html(status, pages::refused_page(title, text, reason.code()))
}

/// A refused sign-in request (cross-site, bad CSRF, no role): 403 after `auth.refused`.
async fn refuse<S: Store>(
    shared: &Shared<S>,
    email: Option<&str>,
    reason: &str,
    peer: SocketAddr,
    now: DateTime<Utc>,
) -> Response {
    if let Some(limited) = limited(shared, peer, now).await {
        return limited;
    }
    if let Err(e) = audit(
        shared,
        email,
        "auth.refused",
        json!({"reason": reason}),
        peer,
        now,
    )
    .await
    {
        return unavailable(e);
    }
    html(
        StatusCode::FORBIDDEN,
        pages::refused_page("Not signed in", "This request was refused.", reason),
    )
}

/// Counts a refusal from `peer`; past the limit, the 429 answer.
async fn limited<S: Store>(
    shared: &Shared<S>,
    peer: SocketAddr,
    now: DateTime<Utc>,
) -> Option<Response> {
    match shared
        .auth
        .refusals
        .refusal(peer.ip(), shared.auth.clock.now())
    {
        Verdict::Audit => None,
        Verdict::Limited { until, report } => {
            Some(too_many(shared, report.map(|r| r.scope), peer, now, until).await)
        }
    }
}

/// The 429 answer; the window's first records `auth.rate_limited`.
async fn too_many<S: Store>(
    shared: &Shared<S>,
    scope: Option<Scope>,
    peer: SocketAddr,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Response {
    if let Some(scope) = scope {
        let source = match scope {
            Scope::Source(source) => source,
            Scope::All => "all".into(),
        };
        let details = json!({"source": source});
        if let Err(e) = audit(shared, None, "auth.rate_limited", details, peer, now).await {
            return unavailable(e);
        }
    }
    let seconds = (until - shared.auth.clock.now()).num_seconds().max(1);
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in requests came from your address in the last minute. Wait a minute.",
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
