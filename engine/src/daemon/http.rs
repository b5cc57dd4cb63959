//! The daemon's HTTP server (DESIGN §7), on axum: `GET /healthz`, `GET /metrics`
//! (Prometheus text), `GET /` (the overview: what needs attention, running runs, next cycles,
//! recent runs: [`overview`]), `GET /runbooks/{name}` (a runbook's page) and `GET /runs/{id}` (a
//! run's graph, timeline, hosts and audit trail, with its live fragment `/runs/{id}/live`, in
//! [`dashboard`]), `GET /calendar` (the month), the email links (`GET`/`HEAD`/`POST /links/{token}`,
//! in [`links`](mod@links)), the sign-in routes ([`auth`]: every page but `/healthz`, the links
//! and sign-in needs a signed-in person), the dashboard's actions (trigger, decide, retry / skip /
//! abort, cancel: [`actions`]), the live sessions (`/sessions`, [`sessions`]), and the JSON API under `/api/v1` ([`api`]). Pages are built by [`crate::pages`]; handlers only read the
//! store and the loaded runbooks and turn them into the pages' view structs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

pub mod actions;
pub mod api;
pub mod auth;
pub mod dashboard;
pub mod feed;
pub mod links;
pub mod overview;
pub mod proxy;
pub mod serve;
pub mod sessions;
pub mod tls;
pub mod waiting;

use super::Shared;
use crate::pages;
use crate::store::Store;

/// `POST`: start a run from the trigger form.
pub const TRIGGER: &str = "/runbooks/{name}/trigger";
/// `POST`: a person's own decision.
pub const DECIDE: &str = "/runs/{id}/decide";
/// `POST`: retry, skip or abort an interrupted step.
pub const RESUME: &str = "/runs/{id}/resume";
/// `POST`: cancel a run.
pub const CANCEL: &str = "/runs/{id}/cancel";
/// `POST`: sign out.
pub const SIGN_OUT: &str = "/signout";
/// `POST`: revoke a session ([`sessions`]).
pub const REVOKE_SESSION: &str = "/sessions/{id}/revoke";
/// `POST`: sign in with an emailed or local link (its CSRF value derives from the link).
pub const SIGN_IN_LINK: &str = "/signin/{token}";

/// Every state-changing form route of a signed-in person: each refuses a cross-site `POST` and
/// one without the CSRF value of the person's session (403, nothing changed). The router
/// routes them by these names; the e2e test `csrf` posts to each.
pub const SESSION_FORM_POSTS: &[&str] =
    &[TRIGGER, DECIDE, RESUME, CANCEL, SIGN_OUT, REVOKE_SESSION];

/// The routes, over the daemon's shared state.
pub fn router<S: Store>(shared: Arc<Shared<S>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/", get(overview::index::<S>))
        .route("/runs/{id}", get(dashboard::run_page::<S>))
        .route("/runs/{id}/live", get(dashboard::live::<S>))
        .route("/calendar", get(dashboard::month_page::<S>))
        .route("/calendar.ics", get(feed::calendar_ics::<S>))
        .route("/runbooks/{name}", get(overview::runbook_page::<S>))
        .route("/audit", get(dashboard::audit_page::<S>))
        .route(
            TRIGGER,
            get(actions::trigger_page::<S>).post(actions::trigger::<S>),
        )
        .route(
            DECIDE,
            get(actions::decide_page::<S>).post(actions::decide::<S>),
        )
        .route(
            RESUME,
            get(actions::resume_page::<S>).post(actions::resume::<S>),
        )
        .route(
            CANCEL,
            get(actions::cancel_page::<S>).post(actions::cancel::<S>),
        )
        .route(
            "/signin",
            get(auth::form::<S>).post(auth::request_link::<S>),
        )
        .route("/signin/oidc", get(auth::oidc_start::<S>))
        .route("/signin/oidc/callback", get(auth::oidc_callback::<S>))
        .route(
            SIGN_IN_LINK,
            get(auth::confirm::<S>).post(auth::sign_in::<S>),
        )
        .route(SIGN_OUT, post(auth::sign_out::<S>))
        .route("/sessions", get(sessions::list::<S>))
        .route(REVOKE_SESSION, post(sessions::revoke::<S>))
        .route(
            "/links/{token}",
            get(links::show::<S>)
                .post(links::decide::<S>)
                .layer(Extension(Arc::new(links::LinkRoutes::default()))),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BODY))
        .nest(
            API,
            api::routes::<S>()
                .0
                .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY)),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn(refuse_large_bodies))
        .layer(axum::middleware::map_response_with_state(
            shared.auth.secure,
            security_headers,
        ))
        .with_state(shared)
}

/// Where the JSON API is nested.
const API: &str = "/api/v1";

/// The largest API request body read (a trigger's params, a decision): past it, 413.
pub const MAX_BODY: usize = 64 * 1024;

/// The largest form body read on the pages (sign-in, links, the dashboard's actions, whose
/// fields are a few hundred bytes; a trigger form's params a few KB): past it, 413.
pub const MAX_FORM_BODY: usize = 16 * 1024;

/// The body limit of the route at `path`: the API's, else the forms'.
fn body_limit(path: &str) -> usize {
    if path.starts_with(API) {
        MAX_BODY
    } else {
        MAX_FORM_BODY
    }
}

/// A request that announces a body larger than its route's limit ([`MAX_FORM_BODY`],
/// [`MAX_BODY`] under the API) is answered 413 before any of it is read (a body without a
/// length is cut off at the limit by the extractors).
async fn refuse_large_bodies(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = body_limit(request.uri().path()) as u64;
    if announced.is_some_and(|n| n > limit) {
        let mut response = error(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.");
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// Headers on every answer: no sniffing, no framing, no referrer; HSTS when the public URL is
/// `https://` (the pages add their Content-Security-Policy).
async fn security_headers(State(secure): State<bool>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if secure {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
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

async fn metrics<S: Store>(State(shared): State<Arc<Shared<S>>>, headers: HeaderMap) -> Response {
    if !shared.auth.may_read_metrics(&headers) {
        let mut response =
            (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return response;
    }
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
