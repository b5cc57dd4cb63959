//! Sessions listed and revoked (issue #11): `GET /sessions` shows the live sessions a person may
//! see (an admin every one, anyone else their own: [`visible`]); `POST /sessions/{id}/revoke`
//! (same site, the CSRF value of the person's forms) closes one with its
//! `auth.session_revoked` event, actor `web:<email>`. An admin revokes any session, anyone else
//! only their own (else 403, nothing changed). `{id}` is the session's public id
//! ([`session::public_id`]); `patchday sessions` does the same from the command line.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::actions::{Posted, csrf, refused, refused_post, see_other};
use super::auth::SignedIn;
use super::{Shared, error, html, unavailable};
use crate::auth::Role;
use crate::auth::session;
use crate::pages::sessions::{SessionView, sessions_page};
use crate::store::{SessionRow, Store};

/// Whether `person` may see and revoke `row`: an admin any, anyone else their own.
fn visible(person: &SignedIn, row: &SessionRow) -> bool {
    person.person.role == Role::Admin || row.session.email == person.person.email
}

/// The live sessions `person` may see, or the 503.
async fn live_for<S: Store>(
    shared: &Shared<S>,
    person: &SignedIn,
) -> Result<Vec<SessionRow>, Response> {
    let live = shared
        .engine
        .store
        .live_sessions(shared.auth.clock.now())
        .await
        .map_err(unavailable)?;
    Ok(live.into_iter().filter(|r| visible(person, r)).collect())
}

/// `GET /sessions`.
pub async fn list<S: Store>(State(shared): State<Arc<Shared<S>>>, person: SignedIn) -> Response {
    let rows = match live_for(&shared, &person).await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let mine = session::id_hash(&person.cookie);
    let views: Vec<SessionView> = rows
        .into_iter()
        .map(|r| SessionView {
            id: session::public_id(&r.session.id_hash).to_string(),
            current: r.session.id_hash == mine,
            email: r.session.email,
            via: r.session.via,
            source_ip: r.session.source_ip,
            created_at: r.session.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.session.expires_at,
        })
        .collect();
    let everyone = person.person.role == Role::Admin;
    html(
        StatusCode::OK,
        sessions_page(&views, everyone, &csrf(&shared, &person)),
    )
}

/// `POST /sessions/{id}/revoke`.
pub async fn revoke<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    person: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Posted,
) -> Response {
    let form = form.map(|f| f.0).unwrap_or_default();
    if let Some(response) = refused_post(&shared, &person, &headers, &form) {
        return response;
    }
    let live = match shared
        .engine
        .store
        .live_sessions(shared.auth.clock.now())
        .await
    {
        Ok(live) => live,
        Err(e) => return unavailable(e),
    };
    let Some(row) = session::find(&live, &id) else {
        return error(StatusCode::NOT_FOUND, "There is no such live session.");
    };
    if !visible(&person, row) {
        return refused(
            &person,
            "Only an admin may revoke another person's session. Nothing was changed.",
        );
    }
    let change = session::revocation(
        row,
        person.person.actor(),
        Some(peer.ip().to_string()),
        shared.clock.now(),
        shared.auth.clock.now(),
    );
    if let Err(e) = shared.engine.store.commit(vec![change]).await {
        return unavailable(e);
    }
    see_other("/sessions")
}
