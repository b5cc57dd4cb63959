//! `GET /calendar.ics?token=T[&runbook=NAME]`: the calendar feed (issue 13 item 7) that
//! Outlook and Google Calendar subscribe to. Calendar programs cannot send headers, so the
//! token is in the URL: an API token with the `feed` scope ([`Scope::Feed`]), which grants
//! nothing else. The token is hashed and compared in constant time
//! ([`crate::daemon::tokens::ApiTokens::check`]); removing its line from the tokens file
//! (re-read every second) stops the feed. Nothing here logs the URL or the token.
//!
//! Invariant: without a token, or with one that is unknown or lacks `feed`, the answer is 401
//! and says nothing about runbooks; an unknown `runbook=` with a good token is 404.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Shared;
use crate::calendar::{Fire, ics};
use crate::daemon::tokens::Scope;
use crate::store::Store;

/// How many cycles of each runbook the feed lists (as `patchday calendar` by default).
pub const FEED_CYCLES: usize = 12;

/// The query: the feed token and, optionally, one runbook.
#[derive(Deserialize)]
pub struct FeedQuery {
    token: Option<String>,
    runbook: Option<String>,
}

/// The feed of every runbook, or of `runbook=`, from now on.
pub async fn calendar_ics<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Query(query): Query<FeedQuery>,
) -> Response {
    let tokens = shared.api_tokens();
    let allowed = query
        .token
        .as_deref()
        .and_then(|t| tokens.check(t))
        .is_some_and(|grant| grant.allows(Scope::Feed));
    if !allowed {
        return plain(StatusCode::UNAUTHORIZED, "a valid feed token is required\n");
    }
    let now = shared.clock.now();
    let runbooks = shared.runbooks();
    let chosen: Vec<_> = match &query.runbook {
        Some(name) => match runbooks.by_name.get(name) {
            Some(one) => vec![one],
            None => return plain(StatusCode::NOT_FOUND, "no such runbook\n"),
        },
        None => runbooks.by_name.values().collect(),
    };
    let fires: Vec<(&str, Vec<Fire>)> = chosen
        .iter()
        .map(|loaded| {
            let fires = loaded
                .checked
                .schedule
                .fires_from(now)
                .take(FEED_CYCLES)
                .collect();
            (loaded.checked.runbook.name.value.as_str(), fires)
        })
        .collect();
    let listed: Vec<(&str, &[Fire])> = fires.iter().map(|(n, f)| (*n, f.as_slice())).collect();
    let title = match &query.runbook {
        Some(name) => format!("patchday {name}"),
        None => "patchday".to_string(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        ics::vcalendar_of(&title, &listed, now),
    )
        .into_response()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}
