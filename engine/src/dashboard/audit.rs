//! The audit browser (`GET /audit`, issue #13 item 5): every audit event, those of no run too
//! (runbook reloads, refused links, sign-ins), newest first; a plain `GET` form filters by time
//! range, runbook, run, actor and action (the values echoed back, escaped by maud); pages go by
//! a keyset cursor on `seq` ("older" / "newer" links carrying `before` / `after`), so a page
//! costs the same deep in years of history. At the top, the chain's verification state as the
//! daemon last found it ([`crate::daemon::chain`]): a page view verifies nothing itself.
//!
//! Details are shown as escaped JSON text cut at [`DETAILS_SHOWN`] characters (secrets never
//! reach audit details: they are redacted before anything is stored).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use maud::{Markup, html};

use super::run::query_value;
use crate::daemon::chain::{ChainState, ChainStatus};
use crate::store::{AuditCursor, AuditPage, AuditQuery, EventRow};

/// Events per page.
pub const EVENTS_PER_PAGE: u32 = 50;

/// The characters of an event's details shown; longer details end in "…".
pub const DETAILS_SHOWN: usize = 300;

/// The page's query parameters, as typed (empty fields are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct AuditParams {
    /// UTC, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (what a `datetime-local` field sends).
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub runbook: String,
    #[serde(default)]
    pub run: String,
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    /// The cursor of an "older" page: events before this seq.
    #[serde(default)]
    pub before: String,
    /// The cursor of a "newer" page: events after this seq.
    #[serde(default)]
    pub after: String,
}

/// A parameter that does not parse: the field and what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The field `{field}` {expected}.")]
pub struct BadParam {
    pub field: &'static str,
    pub expected: &'static str,
}

impl AuditParams {
    /// The store's query for these parameters.
    pub fn query(&self) -> Result<AuditQuery, BadParam> {
        let text = |value: &str| Some(value.trim().to_string()).filter(|v| !v.is_empty());
        let cursor = match (text(&self.before), text(&self.after)) {
            (Some(before), _) => AuditCursor::Before(seq("before", &before)?),
            (None, Some(after)) => AuditCursor::After(seq("after", &after)?),
            (None, None) => AuditCursor::Newest,
        };
        Ok(AuditQuery {
            since: instant("since", &self.since)?,
            until: instant("until", &self.until)?,
            runbook: text(&self.runbook),
            run_id: text(&self.run),
            actor: text(&self.actor),
            action: text(&self.action),
            cursor,
            limit: EVENTS_PER_PAGE,
        })
    }

    /// The filters as a query string (no cursor), values percent-encoded.
    fn filters(&self) -> String {
        [
            ("since", &self.since),
            ("until", &self.until),
            ("runbook", &self.runbook),
            ("run", &self.run),
            ("actor", &self.actor),
            ("action", &self.action),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", query_value(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }

    /// The link to the page with these filters and `cursor` (`before=N` or `after=N`).
    fn link(&self, cursor: &str) -> String {
        let parts: Vec<String> = [self.filters(), cursor.to_string()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        match parts.is_empty() {
            true => "/audit".to_string(),
            false => format!("/audit?{}", parts.join("&")),
        }
    }
}

fn seq(field: &'static str, text: &str) -> Result<i64, BadParam> {
    text.parse::<i64>().map_err(|_| BadParam {
        field,
        expected: "is an event number",
    })
}

/// `YYYY-MM-DD` (midnight), `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`, read as UTC.
fn instant(field: &'static str, text: &str) -> Result<Option<DateTime<Utc>>, BadParam> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || BadParam {
        field,
        expected: "is a UTC time: YYYY-MM-DD or YYYY-MM-DDTHH:MM",
    };
    let naive = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(bad)?;
    Ok(Some(naive.and_utc()))
}

/// Everything the page shows.
pub struct AuditView<'a> {
    pub params: &'a AuditParams,
    pub cursor: AuditCursor,
    pub page: &'a AuditPage,
    pub chain: &'a ChainState,
    /// The loaded runbooks' names (suggestions for the runbook field).
    pub runbooks: &'a [String],
}

/// The page's body.
pub fn audit_body(view: &AuditView) -> Markup {
    html! {
        h1 { "Audit log" }
        (chain_state(view.chain))
        (filter_form(view))
        @if view.page.events.is_empty() {
            p.muted { "No events match." }
        } @else {
            (events_table(&view.page.events))
        }
        (pager(view))
    }
}

fn chain_state(state: &ChainState) -> Markup {
    let when = state
        .checked_at
        .map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    html! {
        section.notice #chain aria-label="Chain verification" {
            @match &state.status {
                ChainStatus::Verified { events } => p {
                    span.badge.ok { "✓ chain verified" } " "
                    (events) " events link and hash correctly up to the recorded chain head"
                    @if let Some(when) = &when { " (checked " (when) ")" } "."
                },
                ChainStatus::Broken(broken) => p {
                    span.badge.bad { "✗ chain broken" } " "
                    "at event " (broken.seq) ": " (broken.reason)
                    @if let Some(when) = &when { " (found " (when) ")" } "."
                },
                ChainStatus::Pending => p {
                    span.badge.wait { "◷ not verified yet" } " "
                    "The daemon is verifying the log since it started."
                },
                ChainStatus::Unavailable(_) => p {
                    span.badge.wait { "◷ not verified" } " "
                    "The database did not answer the last verification."
                },
            }
            p.muted {
                "The daemon checks each event once, as it is appended. Signed checkpoints and "
                code { "patchday audit verify" } " also detect a rewrite of events checked before."
            }
        }
    }
}

fn filter_form(view: &AuditView) -> Markup {
    let p = view.params;
    let field = |name: &str, label: &str, kind: &str, value: &str| {
        html! {
            label for=(format!("f-{name}")) { (label) }
            input id=(format!("f-{name}")) type=(kind) name=(name) value=(value);
        }
    };
    html! {
        form.filter.audit method="get" action="/audit" aria-label="Filter events" {
            (field("since", "From (UTC)", "datetime-local", &p.since))
            (field("until", "Until (UTC)", "datetime-local", &p.until))
            label for="f-runbook" { "Runbook" }
            input #f-runbook type="text" name="runbook" value=(p.runbook) list="runbooks";
            datalist #runbooks { @for name in view.runbooks { option value=(name) {} } }
            (field("run", "Run", "text", &p.run))
            (field("actor", "Actor", "text", &p.actor))
            (field("action", "Action", "text", &p.action))
            button type="submit" { "Filter" }
            a href="/audit" { "clear" }
        }
    }
}

fn events_table(events: &[EventRow]) -> Markup {
    html! {
        table.audit {
            thead { tr {
                th scope="col" { "#" } th scope="col" { "When (UTC)" } th scope="col" { "Action" }
                th scope="col" { "Actor" } th scope="col" { "Run" } th scope="col" { "Step / host" }
                th scope="col" { "Details" }
            } }
            tbody {
                @for event in events {
                    tr {
                        td { (event.seq) }
                        td { (event.at.format("%Y-%m-%d %H:%M:%S")) }
                        td { code { (event.action) } }
                        td { (event.actor) }
                        td { @if let Some(run) = &event.run_id {
                            a href=(crate::pages::run_path(run)) { code.wrap { (run) } }
                        } }
                        td { (step_and_host(event)) }
                        td { code.wrap { (shown_details(event)) } }
                    }
                }
            }
        }
    }
}

fn step_and_host(event: &EventRow) -> String {
    let host = event.details.get("host").and_then(|h| h.as_str());
    match (event.step_id.as_deref(), host) {
        (Some(step), Some(host)) => format!("{step} · {host}"),
        (Some(step), None) => step.to_string(),
        (None, Some(host)) => host.to_string(),
        (None, None) => String::new(),
    }
}

/// The details as JSON text, cut at [`DETAILS_SHOWN`] characters.
pub fn shown_details(event: &EventRow) -> String {
    let text = event.details.to_string();
    match text.char_indices().nth(DETAILS_SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// "‹ newer" and "older ›": keyset links from the first and last seq shown.
fn pager(view: &AuditView) -> Markup {
    let (first, last) = match (view.page.events.first(), view.page.events.last()) {
        (Some(first), Some(last)) => (first.seq, last.seq),
        _ => {
            return html! {
                @if view.cursor != AuditCursor::Newest {
                    nav.pager aria-label="Pages of events" { a href=(view.params.link("")) { "newest" } }
                }
            };
        }
    };
    let (newer, older) = match view.cursor {
        AuditCursor::Newest => (false, view.page.more),
        AuditCursor::Before(_) => (true, view.page.more),
        AuditCursor::After(_) => (view.page.more, true),
    };
    html! {
        nav.pager aria-label="Pages of events" {
            @if newer {
                a href=(view.params.link("")) { "« newest" }
                a href=(view.params.link(&format!("after={first}"))) rel="prev" { "‹ newer" }
            }
            span { "events " (last) "–" (first) }
            @if older {
                a href=(view.params.link(&format!("before={last}"))) rel="next" { "older ›" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    const EVIL: &str = "<script>alert('x')</script>&\"";

    fn row(seq: i64, details: serde_json::Value) -> EventRow {
        EventRow {
            seq,
            at: Utc.with_ymd_and_hms(2026, 12, 8, 14, 0, 0).unwrap(),
            actor: EVIL.into(),
            action: "link.rejected".into(),
            run_id: Some("r/1".into()),
            step_id: Some("patch".into()),
            details,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn render(params: &AuditParams, page: &AuditPage) -> String {
        let chain = ChainState {
            status: ChainStatus::Verified { events: 7 },
            checked_at: None,
        };
        audit_body(&AuditView {
            params,
            cursor: params.query().unwrap().cursor,
            page,
            chain: &chain,
            runbooks: &["monthly".to_string()],
        })
        .into_string()
    }

    #[test]
    fn values_are_escaped_and_details_bounded() {
        let params = AuditParams {
            actor: EVIL.into(),
            ..AuditParams::default()
        };
        let long = "x".repeat(5_000);
        let page = AuditPage {
            events: vec![row(
                2,
                json!({ "host": "web-1", "long": long, "evil": EVIL }),
            )],
            more: false,
        };
        let html = render(&params, &page);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("patch · web-1"));
        assert!(html.contains(r#"href="/runs/r%2F1""#));
        assert!(!html.contains(&"x".repeat(DETAILS_SHOWN + 1)));
        assert!(html.contains('…'));
    }

    #[test]
    fn pages_link_by_seq_and_keep_the_filters() {
        let params = AuditParams {
            runbook: "monthly night".into(),
            before: "90".into(),
            ..AuditParams::default()
        };
        let page = AuditPage {
            events: vec![row(89, json!({})), row(60, json!({}))],
            more: true,
        };
        let html = render(&params, &page);
        assert!(
            html.contains(r#"href="/audit?runbook=monthly%20night&amp;before=60""#),
            "{html}"
        );
        assert!(html.contains(r#"href="/audit?runbook=monthly%20night&amp;after=89""#));
    }

    #[test]
    fn bad_parameters_name_their_field() {
        let bad = AuditParams {
            since: "yesterday".into(),
            ..AuditParams::default()
        };
        assert_eq!(bad.query().unwrap_err().field, "since");
        let bad = AuditParams {
            before: "1e3".into(),
            ..AuditParams::default()
        };
        assert_eq!(bad.query().unwrap_err().field, "before");
        let good = AuditParams {
            since: "2026-12-08T14:30".into(),
            until: "2026-12-09".into(),
            ..AuditParams::default()
        };
        let query = good.query().unwrap();
        assert_eq!(
            query.since,
            Some(Utc.with_ymd_and_hms(2026, 12, 8, 14, 30, 0).unwrap())
        );
        assert_eq!(
            query.until,
            Some(Utc.with_ymd_and_hms(2026, 12, 9, 0, 0, 0).unwrap())
        );
    }
}
