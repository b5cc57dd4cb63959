//! The server-rendered HTML pages people see (DESIGN §7): the document shell every page shares
//! ([`layout`]), the confirmation page behind an email link, the page after a decision, the
//! page for a refused link, error pages and the run page's "Waiting for" section (the
//! overview, the run page and the others are [`crate::dashboard`]'s).
//!
//! Pure functions from plain view structs to markup, built with maud: every interpolated value
//! is escaped by the template, checked at compile time; no JavaScript. Links to runs are built
//! here from ids ([`run_path`]), never taken from data.
//!
//! Only a `POST` of a confirmation-page form decides: the page has one `<form method="post">`
//! per choice, each with the CSRF field, and no link that decides. The HTTP layer should send
//! [`content_security_policy`] with every page.

pub mod sessions;
pub mod signin;

use std::fmt::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use crate::links::{LinkError, Purpose};

/// Form field carrying the CSRF value.
pub const FIELD_CSRF: &str = "csrf";
/// Form field carrying the chosen choice's value.
pub const FIELD_CHOICE: &str = "choice";
/// Form field carrying the optional comment (manual tasks).
pub const FIELD_COMMENT: &str = "comment";

const STYLE: &str = "\
body{font:16px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;\
color:#1f2328;background:#f6f8fa}\
main{max-width:62rem;margin:0 auto;padding:1.5rem 1.25rem 3rem}\
header{background:#24292f;color:#fff;padding:.6rem 1.25rem}\
header a{color:#fff;text-decoration:none;font-weight:600}header a.nav{margin-left:1.5rem;font-weight:400}\
h1{font-size:1.55rem;margin:.4rem 0 1rem}h2{font-size:1.15rem;margin:1.75rem 0 .5rem}\
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}\
th,td{text-align:left;vertical-align:top;padding:.4rem .6rem;border-bottom:1px solid #d0d7de}\
thead th{background:#eaeef2;font-size:.85rem;text-transform:uppercase;letter-spacing:.03em}\
table.facts th{width:11rem;background:#f6f8fa}\
code{font:.85rem ui-monospace,SFMono-Regular,Menlo,monospace}code.hash{word-break:break-all}\
time,td code,.nowrap{white-space:nowrap}td{font-size:.95rem}\
td code.hash,td code.wrap{white-space:normal;overflow-wrap:anywhere}\
.muted{color:#57606a}\
.lead{font-size:1.1rem;background:#fff;border-left:4px solid #0969da;padding:.6rem .9rem}\
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.85rem;\
background:#eaeef2}\
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}\
.busy{background:#ddf4ff;color:#0550ae}.wait{background:#fff8c5;color:#7d4e00}\
.choices{display:flex;flex-wrap:wrap;gap:1rem;margin-top:1rem}\
.choices form{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1rem;\
flex:1 1 16rem}\
textarea{width:100%;box-sizing:border-box;min-height:4.5rem;font:inherit;margin-bottom:.6rem}\
button{font:inherit;font-weight:600;padding:.55rem 1.4rem;border-radius:6px;border:1px solid #1f883d;\
background:#1f883d;color:#fff;cursor:pointer}\
button.danger{background:#fff;color:#cf222e;border-color:#cf222e}\
.notice{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1rem 1.25rem}\
.notice p:first-child{margin-top:0}.notice p:last-child{margin-bottom:0}\
.notice.error{border-left:4px solid #cf222e}.notice.done{border-left:4px solid #1f883d}\
ul.plain{margin:0;padding-left:1.1rem}\
";

/// The path of a run's page, the id percent-encoded as one path segment.
pub fn run_path(run_id: &str) -> String {
    let mut path = String::from("/runs/");
    for byte in run_id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            let _ = write!(path, "%{byte:02X}");
        }
    }
    path
}

/// The `Content-Security-Policy` for these pages: nothing but the inline stylesheets and the
/// run page's live script (each by its hash, see [`crate::dashboard::run`]), fetches of this
/// origin, forms posting to this origin, and no framing (no clickjacking of the buttons).
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let hash =
            |text: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text));
        let (style, dashboard) = (hash(STYLE), hash(crate::dashboard::STYLE));
        let script = hash(crate::dashboard::run::LIVE_SCRIPT);
        format!(
            "default-src 'none'; style-src 'sha256-{style}' 'sha256-{dashboard}'; \
             script-src 'sha256-{script}'; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

/// The document shell around `body` (markup from a template): title, no referrer, no
/// indexing, the inline CSS and a header linking to the overview.
pub fn layout(title: &str, body: &str) -> String {
    layout_with_head(title, "", body)
}

/// [`layout`] with `head` (markup from a template) added to the document's head.
pub fn layout_with_head(title: &str, head: &str, body: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex, nofollow";
                (PreEscaped(head))
                title { (title) " · patchday" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "patchday" }
                    " "
                    a.nav href="/calendar" { "Month" }
                    " "
                    a.nav href="/audit" { "Audit log" }
                }
                main { (PreEscaped(body)) }
            }
        }
    }
    .into_string()
}

/// [`layout`] over a template's markup.
fn page(title: &str, body: Markup) -> String {
    layout(title, &body.into_string())
}

/// An instant as people read it: `2026-12-08 14:03 UTC`.
pub(crate) fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An instant as markup: a `<time>` element (kept on one line by the CSS).
fn time_html(at: &DateTime<Utc>) -> Markup {
    let machine = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    html! { time datetime=(machine) { (when(at)) } }
}

/// A hash or commit id, allowed to break anywhere.
fn hash_html(text: &str) -> Markup {
    html! { code.hash { (text) } }
}

/// A two-column table of label / markup rows.
fn facts_table(rows: &[(&str, Markup)]) -> Markup {
    html! {
        table.facts { @for (label, value) in rows { tr { th { (label) } td { (value) } } } }
    }
}

/// A table with a header row; every cell is a template's markup.
fn data_table(headers: &[&str], rows: &[Vec<Markup>]) -> Markup {
    html! {
        table {
            thead { tr { @for header in headers { th { (header) } } } }
            tbody { @for row in rows { tr { @for cell in row { td { (cell) } } } } }
        }
    }
}

fn code_opt(text: &Option<String>) -> Markup {
    match text {
        Some(text) => hash_html(text),
        None => html! { span.muted { "not a git work tree" } },
    }
}

// ---------------------------------------------------------------------------------------------
// The confirmation page

/// What a link's `GET` shows: what is being decided and the choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationView {
    pub purpose: Purpose,
    pub runbook: String,
    pub cycle: String,
    pub step: String,
    pub step_description: Option<String>,
    /// The hosts the step (or the steps it gates) acts on.
    pub hosts: Vec<String>,
    /// The runbook's git commit, when it comes from a git work tree.
    pub runbook_commit: Option<String>,
    pub runbook_hash: String,
    /// The approval's or task's message from the runbook, rendered.
    pub message: Option<String>,
    /// What is asked in the step's own words (its message's first line, else its
    /// description); `None`: the page is headed "Approve patch cycle … of …?".
    pub heading: Option<String>,
    /// The patch window: the steps after this one with a time of their own, and when.
    pub window: Vec<WindowView>,
    /// The run's params (never secrets: those are not stored with the run).
    pub params: Vec<(String, String)>,
    /// Who the link was sent to (who decides).
    pub recipient: String,
    pub expires_at: DateTime<Utc>,
    /// Decisions needed for an approval (`quorum`), when more than one.
    pub quorum: Option<u32>,
    /// Who already decided.
    pub decisions: Vec<DecisionView>,
    pub choices: Vec<ChoiceView>,
    /// Where the forms post (the link's own path).
    pub action: String,
    /// The CSRF value every form carries.
    pub csrf: String,
}

/// One decision already taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionView {
    pub name: String,
    pub choice: String,
    pub at: DateTime<Utc>,
    pub comment: Option<String>,
}

/// One button: `value` is posted as the `choice` field, `label` is shown, `leads_to` says
/// what happens when it is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceView {
    pub value: String,
    pub label: String,
    pub leads_to: String,
}

/// A step of the patch window: when it is planned, in the runbook's zone (`local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowView {
    pub step: String,
    pub description: Option<String>,
    pub at: DateTime<Utc>,
    /// `Sat 2026-12-12 22:00 EST`.
    pub local: String,
}

/// The confirmation page. Opening it changes nothing; only a button (a `POST`) decides.
pub fn confirmation_page(view: &ConfirmationView) -> String {
    let heading = confirmation_heading(view);
    let lead = view.message.as_ref().filter(|m| m.trim() != heading);
    let body = html! {
        h1 { (heading) }
        @if let Some(message) = lead { p.lead { (message) } }
        (confirmation_facts(view))
        (window_section(&view.window))
        (params_section(&view.params))
        (decisions_section(view))
        (choice_forms(view))
        p.muted {
            "Opening this page changed nothing: only a button decides. The link works once, for "
            (view.recipient) ", until " (time_html(&view.expires_at)) "."
        }
    };
    page(&heading, body)
}

/// "patch cycle 2026-12 of monthly", or "a manual run of emergency" for a run without a
/// cycle (a manual run is not a cycle: pages, emails and the CLI show none).
fn run_phrase(cycle: &str, runbook: &str) -> String {
    match cycle {
        "" => format!("a manual run of {runbook}"),
        cycle => format!("patch cycle {cycle} of {runbook}"),
    }
}

/// What a page says for the cycle of a run without one (a manual run).
pub const NO_CYCLE: &str = "none (manual run)";

/// A run's cycle in a table: the cycle, or a muted [`NO_CYCLE`].
fn cycle_html(cycle: &str) -> Markup {
    html! {
        @match cycle {
            "" => span.muted { (NO_CYCLE) },
            cycle => (cycle),
        }
    }
}

fn confirmation_heading(view: &ConfirmationView) -> String {
    if let Some(heading) = &view.heading {
        return heading.clone();
    }
    match view.purpose {
        Purpose::Approval => format!("Approve {}?", run_phrase(&view.cycle, &view.runbook)),
        Purpose::Task => format!(
            "Manual task “{}” in {}",
            view.step,
            run_phrase(&view.cycle, &view.runbook)
        ),
    }
}

fn confirmation_facts(view: &ConfirmationView) -> Markup {
    let step = html! {
        code { (view.step) }
        @if let Some(text) = &view.step_description { " — " (text) }
    };
    let hosts = html! {
        @if view.hosts.is_empty() {
            span.muted { "none" }
        } @else {
            ul.plain { @for host in &view.hosts { li { (host) } } }
        }
    };
    let version = html! {
        "commit " (code_opt(&view.runbook_commit)) br; "content " (hash_html(&view.runbook_hash))
    };
    facts_table(&[
        ("Runbook", html! { (view.runbook) }),
        ("Cycle", cycle_html(&view.cycle)),
        ("Step", step),
        ("Hosts", hosts),
        ("Runbook version", version),
        ("Deciding as", html! { (view.recipient) }),
        ("Link expires", time_html(&view.expires_at)),
    ])
}

/// "The patch window": when the steps after this one are planned.
fn window_section(window: &[WindowView]) -> Markup {
    let rows: Vec<Vec<Markup>> = window
        .iter()
        .map(|w| {
            let machine = w.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            vec![
                html! { time datetime=(machine) { (w.local) } },
                html! { code { (w.step) } },
                html! { (w.description.as_deref().unwrap_or("")) },
            ]
        })
        .collect();
    html! {
        @if !window.is_empty() {
            h2 { "The patch window" }
            p { "What follows this decision, as planned:" }
            (data_table(&["When", "Step", "What"], &rows))
        }
    }
}

/// The run's params (a KB list, a CVE, …).
fn params_section(params: &[(String, String)]) -> Markup {
    let rows: Vec<(&str, Markup)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), html! { code.wrap { (value) } }))
        .collect();
    html! {
        @if !params.is_empty() {
            h2 { "Params" }
            (facts_table(&rows))
        }
    }
}

/// The most decisions that share one choice: how far the quorum is.
fn quorum_so_far(decisions: &[DecisionView]) -> usize {
    decisions
        .iter()
        .map(|d| decisions.iter().filter(|o| o.choice == d.choice).count())
        .max()
        .unwrap_or(0)
}

fn decisions_section(view: &ConfirmationView) -> Markup {
    let rows: Vec<Vec<Markup>> = view
        .decisions
        .iter()
        .map(|d| {
            vec![
                html! { (d.name) },
                html! { (d.choice) },
                time_html(&d.at),
                html! { (d.comment.as_deref().unwrap_or("")) },
            ]
        })
        .collect();
    html! {
        h2 { "Decisions so far" }
        @if let Some(quorum) = view.quorum {
            p.quorum { (quorum_so_far(&view.decisions)) " of " (quorum) " needed." }
        }
        @if view.decisions.is_empty() {
            p.muted { "Nobody has decided yet." }
        } @else {
            (data_table(&["Who", "Choice", "When", "Comment"], &rows))
        }
    }
}

/// One `POST` form per choice, each with the CSRF field, a comment box, and what it leads to.
fn choice_forms(view: &ConfirmationView) -> Markup {
    html! {
        h2 { "Your decision" }
        div.choices { @for choice in &view.choices { (choice_form(view, choice)) } }
    }
}

fn choice_form(view: &ConfirmationView, choice: &ChoiceView) -> Markup {
    let danger = is_negative(&choice.value).then_some("danger");
    html! {
        form method="post" action=(view.action) {
            input type="hidden" name=(FIELD_CSRF) value=(view.csrf);
            input type="hidden" name=(FIELD_CHOICE) value=(choice.value);
            label {
                "Comment (optional, recorded with your decision)"
                textarea name=(FIELD_COMMENT) maxlength="2000" {}
            }
            button type="submit" class=[danger] { (choice.label) }
            @if !choice.leads_to.is_empty() { p.leads-to { (choice.leads_to) } }
        }
    }
}

fn is_negative(choice: &str) -> bool {
    let choice = choice.to_ascii_lowercase();
    ["reject", "deny", "fail", "no", "cancel", "postpone"]
        .iter()
        .any(|word| choice.starts_with(word))
}

// ---------------------------------------------------------------------------------------------
// After the POST, and refused links

/// The outcome of a decision, shown after the `POST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedView {
    pub runbook: String,
    pub cycle: String,
    pub step: String,
    /// Past tense, capitalised: "Approved", "Rejected", "Marked done".
    pub outcome: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub comment: Option<String>,
    pub run_id: String,
    /// Whose decision this is, as the person reading sees it.
    pub seen: Seen,
}

/// How the person reading a decided page stands to the decision on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// They just took it.
    Now,
    /// They took it before, through this link, and opened it again.
    Earlier,
    /// Others settled the step (`actor`); their own decision is no longer needed.
    Others,
}

/// The page after a decision: "Approved by you at …"; the same, saying so, when its owner
/// opens a used link again.
pub fn decided_page(view: &DecidedView) -> String {
    let title = match view.seen {
        Seen::Earlier => format!("You already decided: {}", view.outcome.to_lowercase()),
        Seen::Now => format!("{} by you", view.outcome),
        Seen::Others => "Your decision is no longer needed".to_string(),
    };
    let (whose, closing) = match view.seen {
        Seen::Others => (
            "Their comment: ",
            "Nothing more is asked of you for this step.",
        ),
        _ => ("Your comment: ", "This link is now used up."),
    };
    let body = html! {
        h1 { (title) }
        div.notice.done {
            p {
                strong {
                    (view.outcome) " by "
                    @match view.seen {
                        Seen::Others => (view.actor),
                        _ => { "you (" (view.actor) ")" }
                    }
                    " at " (time_html(&view.at))
                }
                ": step " code { (view.step) } " of " (run_phrase(&view.cycle, &view.runbook)) "."
            }
            @if let Some(comment) = &view.comment { p { (whose) (comment) } }
        }
        p { (closing) " " a href=(run_path(&view.run_id)) { "See the run" } "." }
    };
    page(&title, body)
}

/// The page for a link that cannot decide: what happened and what to do.
pub fn rejected_link_page(reason: &LinkError) -> String {
    let (title, explanation) = rejection_text(reason);
    let explanation = match reason {
        LinkError::Expired { at } => format!("{explanation} It expired at {}.", when(at)),
        _ => explanation.to_owned(),
    };
    let body = html! {
        h1 { (title) }
        div.notice.error {
            p { (explanation) }
            p {
                strong { "Nothing was changed." }
                " Ask the person or team who runs patchday for a new link, or decide from the \
                 dashboard."
            }
        }
        p.muted { "Reason code: " code { (reason.code()) } }
    };
    page(title, body)
}

fn rejection_text(reason: &LinkError) -> (&'static str, &'static str) {
    match reason {
        LinkError::Expired { .. } => (
            "This link has expired",
            "Links work for a limited time, and this one's time is over.",
        ),
        LinkError::AlreadyUsed => (
            "This link was already used",
            "Each link decides once. The decision it carried stands.",
        ),
        LinkError::OtherRecipient => (
            "This link is for someone else",
            "The link was sent to another person and works only for them.",
        ),
        LinkError::OtherStep => (
            "This link does not match this step",
            "The link belongs to another run, step or host.",
        ),
        LinkError::BadCsrf => (
            "This form has expired",
            "The decision did not come from a current confirmation page. Open the link again.",
        ),
        _ => (
            "This link is not valid",
            "The link is damaged or incomplete: it may have been cut off or altered, for \
             example by line wrapping in the email.",
        ),
    }
}

/// A plain error page for `status` (e.g. 404) with an explanation.
pub fn error_page(status: u16, text: &str) -> String {
    let title = format!("{status} {}", status_phrase(status));
    let body = html! {
        h1 { (title) }
        div.notice.error { p { (text) } }
        p { a href="/" { "Back to the overview" } }
    };
    page(&title, body)
}

fn status_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

// ---------------------------------------------------------------------------------------------
// The run page's waiting section

/// One row that waits for people: an operator's decision, an approval or a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitView {
    pub step: String,
    pub host: String,
    /// Who: "an operator (told: ops@example.com)", "cab-chair@example.com, it-director@…".
    pub who: String,
    /// For what: "retry, skip or abort", "approval (1 of 2 needed)", with how to answer.
    pub what: String,
    /// The command that answers it, when there is one (`patchday retry RUN --step …`).
    pub command: Option<String>,
    /// An interrupted row (an operator retries, skips or aborts), not a person-step.
    pub interrupted: bool,
    /// When an approval or task expires (its `expires` from the row's start), if it does.
    pub expires_at: Option<DateTime<Utc>>,
}

/// "Waiting for": who the run waits on and for what (nothing when nobody is waited on).
pub fn waiting_section(waiting: &[WaitView]) -> Markup {
    let rows: Vec<Vec<Markup>> = waiting
        .iter()
        .map(|w| {
            vec![
                html! { code { (w.step) } },
                html! { span.nowrap { (w.host) } },
                html! { (w.who) },
                html! {
                    (w.what)
                    @if let Some(command) = &w.command { br; code.wrap { (command) } }
                },
            ]
        })
        .collect();
    html! {
        @if !waiting.is_empty() {
            h2 { "Waiting for" }
            (data_table(&["Step", "Host", "Who", "For what"], &rows))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const EVIL: &str = "<script>alert(\"x&y\")</script>'";

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, minute, 0)
            .unwrap()
    }

    fn approval_view() -> ConfirmationView {
        ConfirmationView {
            purpose: Purpose::Approval,
            runbook: "monthly-windows".into(),
            cycle: "2026-12".into(),
            step: "cab-approval".into(),
            step_description: Some("Change Advisory Board approves the December patches".into()),
            hosts: vec!["web-01.example.com".into(), "web-02.example.com".into()],
            runbook_commit: Some("4f2a9c1e7b0d3a5f8e6c2b1a9d7f5e3c1b0a8d6f".into()),
            runbook_hash: "9b1e0c7d5a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d".into(),
            message: Some("12 updates, 2 critical (CVE-2026-1234). Snapshots first.".into()),
            heading: None,
            window: vec![WindowView {
                step: "patch-node1".into(),
                description: Some("Patch node 1".into()),
                at: at(13, 3, 0),
                local: "Sat 2026-12-12 22:00 EST".into(),
            }],
            params: vec![("kb_list".into(), "KB5048667 KB5048685".into())],
            recipient: "alice.cab@example.com".into(),
            expires_at: at(10, 17, 0),
            quorum: Some(2),
            decisions: vec![DecisionView {
                name: "bob@example.com".into(),
                choice: "approve".into(),
                at: at(8, 14, 12),
                comment: Some("Looks fine.".into()),
            }],
            choices: vec![
                ChoiceView {
                    value: "approve".into(),
                    label: "Approve".into(),
                    leads_to: "the step succeeds; next: patch".into(),
                },
                ChoiceView {
                    value: "reject".into(),
                    label: "Reject".into(),
                    leads_to: "the step fails: no new step starts, and the run fails".into(),
                },
            ],
            action: "/l/AQEAAAAAaVn3cBpMDFKRlE".into(),
            csrf: "Zm9vYmFyLWNzcmYtdmFsdWU".into(),
        }
    }

    fn evil_confirmation() -> ConfirmationView {
        ConfirmationView {
            purpose: Purpose::Task,
            runbook: EVIL.into(),
            cycle: EVIL.into(),
            step: EVIL.into(),
            step_description: Some(EVIL.into()),
            hosts: vec![EVIL.into()],
            runbook_commit: Some(EVIL.into()),
            runbook_hash: EVIL.into(),
            message: Some(EVIL.into()),
            heading: Some(EVIL.into()),
            window: vec![WindowView {
                step: EVIL.into(),
                description: Some(EVIL.into()),
                at: at(13, 3, 0),
                local: EVIL.into(),
            }],
            params: vec![(EVIL.into(), EVIL.into())],
            recipient: EVIL.into(),
            expires_at: at(10, 17, 0),
            quorum: None,
            decisions: vec![DecisionView {
                name: EVIL.into(),
                choice: EVIL.into(),
                at: at(8, 14, 12),
                comment: Some(EVIL.into()),
            }],
            choices: vec![ChoiceView {
                value: EVIL.into(),
                label: EVIL.into(),
                leads_to: EVIL.into(),
            }],
            action: EVIL.into(),
            csrf: EVIL.into(),
        }
    }

    fn evil_decided() -> DecidedView {
        DecidedView {
            runbook: EVIL.into(),
            cycle: EVIL.into(),
            step: EVIL.into(),
            outcome: EVIL.into(),
            actor: EVIL.into(),
            at: at(8, 14, 0),
            comment: Some(EVIL.into()),
            run_id: EVIL.into(),
            seen: Seen::Now,
        }
    }

    /// No trace of the payload survives unescaped: no tag, no quote that could end an attribute.
    fn assert_escaped(html: &str) {
        assert!(!html.contains("<script"), "raw <script> in:\n{html}");
        assert!(!html.contains("alert(\""), "raw quote in:\n{html}");
        assert!(!html.contains("y\")"), "raw quote in:\n{html}");
        assert!(!html.contains("</script>'"), "raw apostrophe in:\n{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;'"));
    }

    #[test]
    fn every_page_escapes_every_value() {
        assert_escaped(&confirmation_page(&evil_confirmation()));
        assert_escaped(&decided_page(&evil_decided()));
        assert_escaped(&error_page(404, EVIL));
    }

    #[test]
    fn a_script_in_a_step_description_appears_escaped() {
        let view = ConfirmationView {
            step_description: Some("<script>steal()</script>".into()),
            ..approval_view()
        };
        let html = confirmation_page(&view);
        assert!(html.contains("&lt;script&gt;steal()&lt;/script&gt;"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn the_layout_has_no_referrer_and_no_javascript() {
        let html = confirmation_page(&approval_view());
        assert!(html.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
        assert!(
            !html.contains("<script") && !html.contains("onclick") && !html.contains("javascript:")
        );
        assert!(html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn confirmation_has_one_post_form_per_choice_each_with_the_csrf() {
        let view = approval_view();
        let html = confirmation_page(&view);
        let forms: Vec<&str> = html.split("<form ").skip(1).collect();
        assert_eq!(forms.len(), view.choices.len());
        for (form, choice) in forms.iter().zip(&view.choices) {
            let form = &form[..form.find("</form>").unwrap()];
            assert!(form.starts_with("method=\"post\" action=\"/l/AQEAAAAAaVn3cBpMDFKRlE\""));
            let csrf = format!("name=\"csrf\" value=\"{}\"", view.csrf);
            assert!(form.contains(&csrf), "{form}");
            let value = format!("name=\"choice\" value=\"{}\"", choice.value);
            assert!(form.contains(&value), "{form}");
            assert!(
                form.contains(&format!(">{}</button>", choice.label)),
                "{form}"
            );
        }
        assert_eq!(html.matches("<form").count(), view.choices.len());
        assert!(!html.to_ascii_lowercase().contains("method=\"get\""));
    }

    #[test]
    fn confirmation_has_no_link_that_could_decide() {
        let view = approval_view();
        let html = confirmation_page(&view);
        let hrefs: Vec<&str> = html
            .split("href=\"")
            .skip(1)
            .map(|h| &h[..h.find('"').unwrap()])
            .collect();
        assert_eq!(
            hrefs,
            ["/", "/calendar", "/audit"],
            "only the header's links"
        );
        assert!(
            !hrefs
                .iter()
                .any(|h| h.contains(&view.action) || h.contains("/l/"))
        );
    }

    #[test]
    fn confirmation_shows_what_is_decided() {
        let html = confirmation_page(&approval_view());
        for expected in [
            "<h1>Approve patch cycle 2026-12 of monthly-windows?</h1>",
            "cab-approval",
            "Change Advisory Board approves the December patches",
            "web-01.example.com",
            "web-02.example.com",
            "4f2a9c1e7b0d3a5f8e6c2b1a9d7f5e3c1b0a8d6f",
            "9b1e0c7d5a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d",
            "CVE-2026-1234",
            "bob@example.com",
            "2026-12-08 14:12 UTC",
            "Looks fine.",
            "1 of 2 needed.",
            "alice.cab@example.com",
            "2026-12-10 17:00 UTC",
        ] {
            assert!(html.contains(expected), "missing {expected:?}");
        }
    }

    /// Issue 15: what a CAB needs on the page: the patch window, the params, the quorum so far,
    /// what each choice leads to, a comment with every choice, and the step's own heading.
    #[test]
    fn the_confirmation_page_shows_what_a_cab_needs() {
        let html = confirmation_page(&approval_view());
        assert!(html.contains("<h2>The patch window</h2>"), "{html}");
        assert!(html.contains(">Sat 2026-12-12 22:00 EST</time>"), "{html}");
        assert!(html.contains("<code>patch-node1</code>"));
        assert!(
            html.contains("<th>kb_list</th><td><code class=\"wrap\">KB5048667 KB5048685</code>")
        );
        assert!(
            html.contains("<p class=\"quorum\">1 of 2 needed.</p>"),
            "{html}"
        );
        assert!(html.contains("<p class=\"leads-to\">the step succeeds; next: patch</p>"));
        assert_eq!(html.matches("<textarea name=\"comment\"").count(), 2);
        let emergency = confirmation_page(&ConfirmationView {
            heading: Some("CVE-2026-1 (critical): patch tomorrow morning?".into()),
            message: Some("CVE-2026-1 (critical): patch tomorrow morning?".into()),
            ..approval_view()
        });
        assert!(emergency.contains("<h1>CVE-2026-1 (critical): patch tomorrow morning?</h1>"));
        assert!(!emergency.contains("Approve patch cycle"), "{emergency}");
        assert!(
            !emergency.contains("class=\"lead\""),
            "the heading is not repeated"
        );
    }

    #[test]
    fn task_forms_have_a_comment_box() {
        let task = ConfirmationView {
            purpose: Purpose::Task,
            choices: vec![
                ChoiceView {
                    value: "done".into(),
                    label: "Done".into(),
                    leads_to: String::new(),
                },
                ChoiceView {
                    value: "failed".into(),
                    label: "Failed".into(),
                    leads_to: String::new(),
                },
            ],
            ..approval_view()
        };
        let html = confirmation_page(&task);
        assert_eq!(html.matches("<textarea name=\"comment\"").count(), 2);
        assert!(html.contains(
            "<h1>Manual task “cab-approval” in patch cycle 2026-12 of monthly-windows</h1>"
        ));
        assert!(html.contains("class=\"danger\">Failed</button>"));
    }

    #[test]
    fn nobody_decided_yet_is_said() {
        let view = ConfirmationView {
            decisions: vec![],
            quorum: None,
            ..approval_view()
        };
        let html = confirmation_page(&view);
        assert!(html.contains("Nobody has decided yet."));
        assert!(!html.contains("approvals."));
    }

    #[test]
    fn decided_page_says_who_what_and_when() {
        let view = DecidedView {
            runbook: "monthly-windows".into(),
            cycle: "2026-12".into(),
            step: "cab-approval".into(),
            outcome: "Approved".into(),
            actor: "alice.cab@example.com".into(),
            at: at(8, 15, 3),
            comment: None,
            run_id: "r 1".into(),
            seen: Seen::Now,
        };
        let html = decided_page(&view);
        let time = "<time datetime=\"2026-12-08T15:03:00Z\">2026-12-08 15:03 UTC</time>";
        assert!(html.contains(&format!(
            "Approved by you (alice.cab@example.com) at {time}"
        )));
        assert!(html.contains("<title>Approved by you · patchday</title>"));
        assert!(html.contains("href=\"/runs/r%201\""));
        // Opened again by its owner: what they chose and when, and the run, not an error.
        let again = decided_page(&DecidedView {
            seen: Seen::Earlier,
            ..view.clone()
        });
        assert!(
            again.contains("<h1>You already decided: approved</h1>"),
            "{again}"
        );
        assert!(again.contains(&format!(
            "Approved by you (alice.cab@example.com) at {time}"
        )));
        assert!(again.contains("href=\"/runs/r%201\""));
        assert!(!again.contains("notice error"));
        // Opened by someone else asked, after others settled the step.
        let others = decided_page(&DecidedView {
            seen: Seen::Others,
            ..view
        });
        assert!(
            others.contains("<h1>Your decision is no longer needed</h1>"),
            "{others}"
        );
        assert!(others.contains(&format!("Approved by alice.cab@example.com at {time}")));
        assert!(others.contains("Nothing more is asked of you for this step."));
    }

    #[test]
    fn rejected_link_pages_give_the_reason_and_what_to_do() {
        let cases = [
            (
                LinkError::Expired { at: at(10, 17, 0) },
                "This link has expired",
            ),
            (LinkError::AlreadyUsed, "This link was already used"),
            (LinkError::OtherRecipient, "This link is for someone else"),
            (LinkError::OtherStep, "This link does not match this step"),
            (LinkError::BadSignature, "This link is not valid"),
            (LinkError::Malformed("truncated"), "This link is not valid"),
            (LinkError::BadCsrf, "This form has expired"),
        ];
        for (reason, title) in cases {
            let html = rejected_link_page(&reason);
            assert!(html.contains(&format!("<h1>{title}</h1>")), "{reason:?}");
            assert!(html.contains(reason.code()), "{reason:?}");
            if matches!(reason, LinkError::Expired { .. }) {
                assert!(html.contains("It expired at 2026-12-10 17:00 UTC."));
            }
            assert!(html.contains("Nothing was changed."));
            assert!(html.contains("new link"));
            assert!(!html.contains("<form"));
        }
    }

    #[test]
    fn error_page_has_status_and_text() {
        let html = error_page(404, "No run 42.");
        assert!(html.contains("<h1>404 Not Found</h1>"));
        assert!(html.contains("No run 42."));
        assert!(error_page(599, "x").contains("<h1>599 Error</h1>"));
    }

    #[test]
    fn the_waiting_section_says_who_is_waited_on_and_for_what() {
        assert_eq!(waiting_section(&[]).into_string(), "");
        let section = waiting_section(&[WaitView {
            step: "patch".into(),
            host: "web-01.example.com".into(),
            who: "an operator (told: ops@example.com)".into(),
            what: "a decision after an interruption".into(),
            command: Some("patchday retry R --step patch --reason <TEXT>".into()),
            interrupted: true,
            expires_at: None,
        }])
        .into_string();
        assert!(section.starts_with("<h2>Waiting for</h2>"), "{section}");
        assert!(
            section.contains("an operator (told: ops@example.com)"),
            "{section}"
        );
        assert!(section.contains("patchday retry R --step patch --reason &lt;TEXT&gt;"));
    }

    #[test]
    fn run_paths_percent_encode_the_id() {
        assert_eq!(run_path("01JFQ3Z8"), "/runs/01JFQ3Z8");
        assert_eq!(run_path("a/b c?\"<"), "/runs/a%2Fb%20c%3F%22%3C");
        assert_eq!(run_path("ü"), "/runs/%C3%BC");
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style() {
        let policy = content_security_policy();
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
        assert!(policy.contains(&format!("style-src 'sha256-{hash}'")));
        assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"));
        assert!(layout("t", "").contains(&format!("<style>{STYLE}</style>")));
    }

    /// Writes example pages to `<target>/pages-preview/` for a look in a browser.
    #[test]
    fn write_previews() {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let dir = target.join("pages-preview");
        std::fs::create_dir_all(&dir).unwrap();
        let task = ConfirmationView {
            purpose: Purpose::Task,
            step: "patch-db".into(),
            step_description: Some("Patch the database cluster by hand (vendor tool)".into()),
            hosts: vec!["db-01.example.com".into()],
            message: Some("Use the vendor's patch tool; see the wiki page DB-17.".into()),
            quorum: None,
            decisions: vec![],
            choices: vec![
                ChoiceView {
                    value: "done".into(),
                    label: "Done".into(),
                    leads_to: String::new(),
                },
                ChoiceView {
                    value: "failed".into(),
                    label: "Failed".into(),
                    leads_to: String::new(),
                },
            ],
            ..approval_view()
        };
        let decided = DecidedView {
            outcome: "Approved".into(),
            actor: "alice.cab@example.com".into(),
            at: at(8, 15, 3),
            comment: None,
            run_id: "01JFQ3Z8K2M4N6P8R0T2V4X6Z8".into(),
            ..evil_decided()
        };
        let pages = [
            ("confirmation.html", confirmation_page(&approval_view())),
            ("task.html", confirmation_page(&task)),
            (
                "decided.html",
                decided_page(&DecidedView {
                    runbook: "monthly-windows".into(),
                    cycle: "2026-12".into(),
                    step: "cab-approval".into(),
                    ..decided
                }),
            ),
            (
                "rejected.html",
                rejected_link_page(&LinkError::Expired { at: at(10, 17, 0) }),
            ),
        ];
        for (name, html) in pages {
            std::fs::write(dir.join(name), html).unwrap();
        }
    }
}
