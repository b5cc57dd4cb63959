//! Sessions: the cookie, its value's hash, and when a session ends.
//!
//! The cookie `patchday_session` holds 32 random bytes (base64url); the store keeps their
//! SHA-256 in hex ([`id_hash`]), so a leaked database signs nobody in. The cookie is `HttpOnly`,
//! `SameSite=Lax`, `Path=/`, and `Secure` when the public URL is `https://`. A new value is made
//! at every sign-in (never reused: no session fixation). A session ends at sign-out or revocation,
//! [`IDLE_TIMEOUT`] after its last use, or [`LIFETIME`] after sign-in, whichever comes first.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::store::{Change, NewEvent, SessionRow, SessionWrite};

/// The cookie's name.
pub const COOKIE: &str = "patchday_session";
/// A session unused for this long has ended.
pub const IDLE_TIMEOUT: Duration = Duration::hours(12);
/// A session ends this long after sign-in, however much it is used.
pub const LIFETIME: Duration = Duration::days(7);
/// `last_seen_at` is written at most this often per session.
pub const TOUCH_EVERY: Duration = Duration::minutes(1);

/// Why a session cookie does not sign anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Unknown,
    SignedOut,
    Expired,
    Idle,
}

impl Ended {
    pub fn code(self) -> &'static str {
        match self {
            Ended::Unknown => "unknown_session",
            Ended::SignedOut => "signed_out",
            Ended::Expired => "expired",
            Ended::Idle => "idle",
        }
    }
}

/// A new cookie value from 32 bytes of `random`.
pub fn new_value(random: &mut impl FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; 32];
    random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored key of a cookie value: SHA-256, hex.
pub fn id_hash(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How many hex digits of a session's hash name it on `/sessions` and in `patchday sessions`.
pub const PUBLIC_ID_LEN: usize = 16;

/// A session's public id: the start of its hash (which is itself no secret: it signs nobody
/// in).
pub fn public_id(id_hash: &str) -> &str {
    id_hash.get(..PUBLIC_ID_LEN).unwrap_or(id_hash)
}

/// The session among `rows` whose public id is `id`.
pub fn find<'a>(rows: &'a [SessionRow], id: &str) -> Option<&'a SessionRow> {
    rows.iter().find(|r| public_id(&r.session.id_hash) == id)
}

/// The commit that revokes `row`: the session closed at `at` (real time) with its
/// `auth.session_revoked` event by `actor` at `event_at` (the engine clock); `source_ip` is the
/// actor's address, when they came over HTTP.
pub fn revocation(
    row: &SessionRow,
    actor: String,
    source_ip: Option<String>,
    event_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Change {
    let mut details = serde_json::json!({
        "session": public_id(&row.session.id_hash),
        "person": row.session.email,
    });
    if let Some(ip) = source_ip {
        details["source_ip"] = ip.into();
    }
    Change {
        events: vec![NewEvent {
            at: event_at,
            actor,
            action: "auth.session_revoked".into(),
            run_id: None,
            step_id: None,
            details,
        }],
        sessions: vec![SessionWrite::Close {
            id_hash: row.session.id_hash.clone(),
            at,
        }],
        ..Change::default()
    }
}

/// Whether `row` (absent: [`Ended::Unknown`]) still signs its person in at `now`.
pub fn check(row: Option<&SessionRow>, now: DateTime<Utc>) -> Result<(), Ended> {
    let row = row.ok_or(Ended::Unknown)?;
    if row.revoked_at.is_some() {
        return Err(Ended::SignedOut);
    }
    if now >= row.session.expires_at {
        return Err(Ended::Expired);
    }
    if now >= row.last_seen_at + IDLE_TIMEOUT {
        return Err(Ended::Idle);
    }
    Ok(())
}

/// The cookie's value in a request's `Cookie` headers, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// The `Set-Cookie` value that keeps `value` for the session's lifetime.
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        LIFETIME.num_seconds(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewSession;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn row() -> SessionRow {
        SessionRow {
            session: NewSession {
                id_hash: id_hash("v"),
                email: "alice@example.com".into(),
                via: "link".into(),
                groups: vec![],
                created_at: t("2026-12-08T10:00:00Z"),
                expires_at: t("2026-12-08T10:00:00Z") + LIFETIME,
                link_nonce: None,
                source_ip: Some("127.0.0.1".into()),
            },
            last_seen_at: t("2026-12-08T10:00:00Z"),
            revoked_at: None,
        }
    }

    #[test]
    fn a_session_ends_idle_expired_or_signed_out() {
        let mut r = row();
        assert_eq!(check(Some(&r), t("2026-12-08T21:59:59Z")), Ok(()));
        assert_eq!(check(Some(&r), t("2026-12-08T22:00:00Z")), Err(Ended::Idle));
        r.last_seen_at = t("2026-12-15T09:00:00Z");
        assert_eq!(
            check(Some(&r), t("2026-12-15T10:00:00Z")),
            Err(Ended::Expired)
        );
        r.revoked_at = Some(t("2026-12-08T11:00:00Z"));
        assert_eq!(
            check(Some(&r), t("2026-12-08T12:00:00Z")),
            Err(Ended::SignedOut)
        );
        assert_eq!(check(None, t("2026-12-08T12:00:00Z")), Err(Ended::Unknown));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_is_http_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; patchday_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(from_headers(&headers), Some("abc".into()));
        let set = set_cookie("abc", true);
        for part in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("abc", false).contains("Secure"));
        assert_ne!(new_value(&mut |b| b.fill(1)), new_value(&mut |b| b.fill(2)));
        assert_eq!(id_hash("abc").len(), 64);
    }
}
