//! `GET /calendar.ics?token=T[&runbook=NAME][&milestones=1]`: the calendar feed (issue 13
//! item 7) that Outlook and Google Calendar subscribe to: each runbook's next cycles and, with
//! `milestones=1`, their milestone steps ([`crate::plan::milestones`]). Each event's
//! `SEQUENCE` comes from the store ([`Store::feed_sequences`]): the last published start and
//! status per UID, so an event moved or cancelled by a runbook edit, a blackout or a
//! reschedule is bumped, and nothing else (a restart bumps nothing).
//!
//! Calendar programs cannot send headers, so the token is in the URL: an API token with the
//! `feed` scope ([`Scope::Feed`]), which grants nothing else. The token is hashed and compared in constant time
//! ([`crate::daemon::tokens::ApiTokens::check`]); removing its line from the tokens file
//! (re-read every second) stops the feed. Nothing here logs the URL or the token.
//!
//! Invariant: without a token, or with one that is unknown or lacks `feed`, the answer is 401
//! and says nothing about runbooks; an unknown `runbook=` with a good token is 404, a
//! `milestones=` other than 1/true/0/false 400.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Shared, unavailable};
use crate::calendar::ics;
use crate::daemon::tokens::Scope;
use crate::plan::milestones;
use crate::store::{FeedStamp, Store};
use crate::validate::CheckedRunbook;

/// How many cycles of each runbook the feed lists (as `patchday calendar` by default).
pub const FEED_CYCLES: usize = 12;

/// The query: the feed token and, optionally, one runbook.
#[derive(Deserialize)]
pub struct FeedQuery {
    token: Option<String>,
    runbook: Option<String>,
    /// `1` (or `true`): one event per milestone step too; `0`, `false` or absent: not.
    milestones: Option<String>,
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
    let with_steps = match query.milestones.as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return plain(StatusCode::BAD_REQUEST, "milestones= takes 1 or 0\n"),
    };
    let checked: Vec<&CheckedRunbook> = chosen.iter().map(|l| l.checked.as_ref()).collect();
    let mut events = feed_events(&checked, now, with_steps);
    let stamps = events
        .iter()
        .map(|e| FeedStamp {
            uid: e.uid.clone(),
            start: e.start,
            status: e.status().to_string(),
        })
        .collect();
    match shared.engine.store.feed_sequences(stamps).await {
        Ok(sequences) => events
            .iter_mut()
            .zip(sequences)
            .for_each(|(e, n)| e.sequence = n),
        Err(e) => return unavailable(e),
    }
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
        ics::vcalendar(&title, &events, now),
    )
        .into_response()
}

/// Each runbook's next [`FEED_CYCLES`] cycles from `now` and, `with_steps`, their milestones,
/// at SEQUENCE 0.
fn feed_events(
    runbooks: &[&CheckedRunbook],
    now: DateTime<Utc>,
    with_steps: bool,
) -> Vec<ics::Event> {
    let mut events = Vec::new();
    for checked in runbooks {
        let name = checked.runbook.name.value.as_str();
        for fire in checked.schedule.fires_from(now).take(FEED_CYCLES) {
            let steps = if with_steps {
                milestones(checked, &fire)
            } else {
                Vec::new()
            };
            events.extend(ics::cycle_events(name, &fire, &steps));
        }
    }
    events
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
