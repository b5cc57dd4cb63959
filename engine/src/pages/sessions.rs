//! The sessions page (issue #11): the live sessions a signed-in person may see (an admin every
//! one, anyone else their own), each with a revoke button whose `POST` carries the CSRF value
//! of the viewer's forms. Built with `maud`: every interpolated value is escaped.

use chrono::{DateTime, Utc};
use maud::html;

use super::{FIELD_CSRF, layout, when};

/// A live session as the page shows it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The session's public id ([`crate::auth::session::public_id`]).
    pub id: String,
    pub email: String,
    /// `link`, `local` or `oidc`.
    pub via: String,
    /// The sign-in's client address, if recorded.
    pub source_ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session of this very request.
    pub current: bool,
}

/// How a session was opened, in words.
fn via_shown(via: &str) -> &str {
    match via {
        "link" => "emailed link",
        "local" => "local operator URL",
        "oidc" => "single sign-on",
        other => other,
    }
}

/// `GET /sessions`: the table, with a revoke form per row.
pub fn sessions_page(sessions: &[SessionView], everyone: bool, csrf: &str) -> String {
    let body = html! {
        h1 { "Sessions" }
        p.muted {
            @if everyone { "Every live session (you are an admin)." }
            @else { "Your live sessions." }
            " Revoking a session signs it out at its next request. "
            a href="/" { "Back to the overview" }
        }
        table {
            thead { tr {
                th { "Person" } th { "Signed in by" } th { "From" } th { "Created" }
                th { "Last seen" } th { "Expires" } th { "" }
            } }
            tbody {
                @for s in sessions {
                    tr id={ "session-" (s.id) } {
                        td { (s.email) @if s.current { " (this session)" } }
                        td { (via_shown(&s.via)) }
                        td { (s.source_ip.as_deref().unwrap_or("—")) }
                        td { (when(&s.created_at)) }
                        td { (when(&s.last_seen_at)) }
                        td { (when(&s.expires_at)) }
                        td {
                            form method="post" action={ "/sessions/" (s.id) "/revoke" } {
                                input type="hidden" name=(FIELD_CSRF) value=(csrf);
                                button.danger type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Sessions", &body.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_escaped_and_each_has_a_revoke_form() {
        let at = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .to_utc();
        let row = SessionView {
            id: "abc123".into(),
            email: "<b>@x".into(),
            via: "oidc".into(),
            source_ip: Some("192.0.2.7".into()),
            created_at: at,
            last_seen_at: at,
            expires_at: at,
            current: true,
        };
        let page = sessions_page(&[row], true, "c\"s");
        assert!(page.contains("&lt;b&gt;@x (this session)"), "{page}");
        assert!(
            page.contains("action=\"/sessions/abc123/revoke\""),
            "{page}"
        );
        assert!(page.contains("value=\"c&quot;s\""), "{page}");
        assert!(page.contains("single sign-on") && page.contains("192.0.2.7"));
    }
}
