//! The server-rendered HTML pages people see (DESIGN §7): the confirmation page behind an email
//! link, the page after a decision, the page for a refused link, error pages, the index and the
//! run page's "Waiting for" section (the run page itself is [`crate::dashboard::run`]'s, in maud;
//! these pages are still built as strings and move to maud with the dashboard's next pages).
//!
//! Pure functions from plain view structs to `String`; no framework, no JavaScript. Every page is
//! one function that builds its body and hands it to [`layout`], which adds the document shell
//! and the inline CSS. Every interpolated value goes through [`escape_html`] (the `e` helper);
//! links to runs are built here from ids ([`run_path`]), never taken from data.
//!
//! Only a `POST` of a confirmation-page form decides: the page has one `<form method="post">`
//! per choice, each with the CSRF field, and no link that decides. The HTTP layer should send
//! [`content_security_policy`] with every page.

pub mod signin;

use std::fmt::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, Utc};
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

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by entities: safe in element content and in
/// quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Short alias for [`escape_html`], used at every interpolation.
fn e(text: &str) -> String {
    escape_html(text)
}

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

/// The document shell around `body` (markup, already escaped): title, no referrer, no
/// indexing, the inline CSS and a header linking to the index.
pub fn layout(title: &str, body: &str) -> String {
    layout_with_head(title, "", body)
}

/// [`layout`] with `head` (markup) added to the document's head.
pub fn layout_with_head(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n{head}\
         <title>{title} · patchday</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><a href=\"/\">patchday</a> <a class=\"nav\" href=\"/audit\">Audit log</a></header>\n<main>\n{body}</main>\n</body>\n</html>\n",
        title = e(title),
    )
}

/// An instant as people read it: `2026-12-08 14:03 UTC`.
fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An instant as markup: a `<time>` element (kept on one line by the CSS).
fn time_html(at: &DateTime<Utc>) -> String {
    let machine = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!("<time datetime=\"{machine}\">{}</time>", e(&when(at)))
}

fn time_opt_html(at: &Option<DateTime<Utc>>) -> String {
    at.as_ref().map(time_html).unwrap_or_else(|| "—".to_owned())
}

/// A hash or commit id, allowed to break anywhere.
fn hash_html(text: &str) -> String {
    format!("<code class=\"hash\">{}</code>", e(text))
}

/// A state as a coloured badge; the CSS class comes from a fixed list, never from the data.
fn state_badge(state: &str) -> String {
    let class = match state {
        "succeeded" | "done" | "approved" => "ok",
        "failed" | "cancelled" | "interrupted" | "rejected" => "bad",
        "running" => "busy",
        "waiting" | "awaiting_input" | "pending" => "wait",
        _ => "",
    };
    format!("<span class=\"badge {class}\">{}</span>", e(state))
}

/// A two-column table of label / markup rows.
fn facts_table(rows: &[(&str, String)]) -> String {
    let mut html = String::from("<table class=\"facts\">\n");
    for (label, value) in rows {
        let _ = writeln!(html, "<tr><th>{}</th><td>{value}</td></tr>", e(label));
    }
    html.push_str("</table>\n");
    html
}

/// A table with a header row; every cell is markup, already escaped.
fn data_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = String::from("<table>\n<thead><tr>");
    for header in headers {
        let _ = write!(html, "<th>{}</th>", e(header));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{cell}</td>");
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
    html
}

fn list(items: &[String]) -> String {
    let items: String = items.iter().map(|i| format!("<li>{}</li>", e(i))).collect();
    format!("<ul class=\"plain\">{items}</ul>")
}

fn code_opt(text: &Option<String>) -> String {
    match text {
        Some(text) => hash_html(text),
        None => "<span class=\"muted\">not a git work tree</span>".to_owned(),
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
    let mut body = format!("<h1>{}</h1>\n", e(&heading));
    if let Some(message) = view.message.as_ref().filter(|m| m.trim() != heading) {
        let _ = writeln!(body, "<p class=\"lead\">{}</p>", e(message));
    }
    body.push_str(&confirmation_facts(view));
    body.push_str(&window_section(&view.window));
    body.push_str(&params_section(&view.params));
    body.push_str(&decisions_section(view));
    body.push_str(&choice_forms(view));
    let _ = writeln!(
        body,
        "<p class=\"muted\">Opening this page changed nothing: only a button decides. \
         The link works once, for {recipient}, until {expiry}.</p>",
        recipient = e(&view.recipient),
        expiry = time_html(&view.expires_at),
    );
    layout(&heading, &body)
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
fn cycle_html(cycle: &str) -> String {
    match cycle {
        "" => format!("<span class=\"muted\">{NO_CYCLE}</span>"),
        cycle => e(cycle),
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

fn confirmation_facts(view: &ConfirmationView) -> String {
    let step = match &view.step_description {
        Some(text) => format!("<code>{}</code> — {}", e(&view.step), e(text)),
        None => format!("<code>{}</code>", e(&view.step)),
    };
    let hosts = if view.hosts.is_empty() {
        "<span class=\"muted\">none</span>".to_owned()
    } else {
        list(&view.hosts)
    };
    let version = format!(
        "commit {}<br>content {}",
        code_opt(&view.runbook_commit),
        hash_html(&view.runbook_hash)
    );
    facts_table(&[
        ("Runbook", e(&view.runbook)),
        ("Cycle", cycle_html(&view.cycle)),
        ("Step", step),
        ("Hosts", hosts),
        ("Runbook version", version),
        ("Deciding as", e(&view.recipient)),
        ("Link expires", time_html(&view.expires_at)),
    ])
}

/// "The patch window": when the steps after this one are planned.
fn window_section(window: &[WindowView]) -> String {
    if window.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = window
        .iter()
        .map(|w| {
            vec![
                format!(
                    "<time datetime=\"{}\">{}</time>",
                    w.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    e(&w.local)
                ),
                format!("<code>{}</code>", e(&w.step)),
                e(w.description.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    format!(
        "<h2>The patch window</h2>\n<p>What follows this decision, as planned:</p>\n{}",
        data_table(&["When", "Step", "What"], &rows)
    )
}

/// The run's params (a KB list, a CVE, …).
fn params_section(params: &[(String, String)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let rows: Vec<(&str, String)> = params
        .iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                format!("<code class=\"wrap\">{}</code>", e(value)),
            )
        })
        .collect();
    format!("<h2>Params</h2>\n{}", facts_table(&rows))
}

/// The most decisions that share one choice: how far the quorum is.
fn quorum_so_far(decisions: &[DecisionView]) -> usize {
    decisions
        .iter()
        .map(|d| decisions.iter().filter(|o| o.choice == d.choice).count())
        .max()
        .unwrap_or(0)
}

fn decisions_section(view: &ConfirmationView) -> String {
    let mut html = String::from("<h2>Decisions so far</h2>\n");
    if let Some(quorum) = view.quorum {
        let _ = writeln!(
            html,
            "<p class=\"quorum\">{} of {quorum} needed.</p>",
            quorum_so_far(&view.decisions)
        );
    }
    if view.decisions.is_empty() {
        html.push_str("<p class=\"muted\">Nobody has decided yet.</p>\n");
        return html;
    }
    let rows: Vec<Vec<String>> = view
        .decisions
        .iter()
        .map(|d| {
            vec![
                e(&d.name),
                e(&d.choice),
                time_html(&d.at),
                e(d.comment.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    html.push_str(&data_table(&["Who", "Choice", "When", "Comment"], &rows));
    html
}

/// One `POST` form per choice, each with the CSRF field, a comment box, and what it leads to.
fn choice_forms(view: &ConfirmationView) -> String {
    let mut html = String::from("<h2>Your decision</h2>\n<div class=\"choices\">\n");
    for choice in &view.choices {
        html.push_str(&choice_form(view, choice));
    }
    html.push_str("</div>\n");
    html
}

fn choice_form(view: &ConfirmationView, choice: &ChoiceView) -> String {
    let comment = format!(
        "<label>Comment (optional, recorded with your decision)<textarea \
         name=\"{FIELD_COMMENT}\" maxlength=\"2000\"></textarea></label>\n"
    );
    let leads_to = match choice.leads_to.as_str() {
        "" => String::new(),
        text => format!("<p class=\"leads-to\">{}</p>\n", e(text)),
    };
    let class = if is_negative(&choice.value) {
        " class=\"danger\""
    } else {
        ""
    };
    format!(
        "<form method=\"post\" action=\"{action}\">\n\
         <input type=\"hidden\" name=\"{FIELD_CSRF}\" value=\"{csrf}\">\n\
         <input type=\"hidden\" name=\"{FIELD_CHOICE}\" value=\"{value}\">\n\
         {comment}<button type=\"submit\"{class}>{label}</button>\n{leads_to}</form>\n",
        action = e(&view.action),
        csrf = e(&view.csrf),
        value = e(&choice.value),
        label = e(&choice.label),
    )
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
    let by = match view.seen {
        Seen::Others => e(&view.actor),
        _ => format!("you ({})", e(&view.actor)),
    };
    let mut notice = format!(
        "<p><strong>{outcome} by {by} at {at}</strong>: step <code>{step}</code> of \
         {run}.</p>\n",
        outcome = e(&view.outcome),
        at = time_html(&view.at),
        step = e(&view.step),
        run = e(&run_phrase(&view.cycle, &view.runbook)),
    );
    match (&view.comment, view.seen) {
        (Some(comment), Seen::Others) => {
            let _ = writeln!(notice, "<p>Their comment: {}</p>", e(comment));
        }
        (Some(comment), _) => {
            let _ = writeln!(notice, "<p>Your comment: {}</p>", e(comment));
        }
        (None, _) => {}
    }
    let closing = match view.seen {
        Seen::Others => "Nothing more is asked of you for this step.",
        _ => "This link is now used up.",
    };
    let body = format!(
        "<h1>{title}</h1>\n<div class=\"notice done\">\n{notice}</div>\n\
         <p>{closing} <a href=\"{run}\">See the run</a>.</p>\n",
        title = e(&title),
        run = e(&run_path(&view.run_id)),
    );
    layout(&title, &body)
}

/// The page for a link that cannot decide: what happened and what to do.
pub fn rejected_link_page(reason: &LinkError) -> String {
    let (title, explanation) = rejection_text(reason);
    let explanation = match reason {
        LinkError::Expired { at } => format!("{explanation} It expired at {}.", when(at)),
        _ => explanation.to_owned(),
    };
    let body = format!(
        "<h1>{title}</h1>\n<div class=\"notice error\">\n<p>{explanation}</p>\n\
         <p><strong>Nothing was changed.</strong> Ask the person or team who runs patchday for a \
         new link, or decide from the dashboard.</p>\n</div>\n\
         <p class=\"muted\">Reason code: <code>{code}</code></p>\n",
        title = e(title),
        explanation = e(&explanation),
        code = e(reason.code()),
    );
    layout(title, &body)
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
    let body = format!(
        "<h1>{title}</h1>\n<div class=\"notice error\"><p>{text}</p></div>\n\
         <p><a href=\"/\">Back to the overview</a></p>\n",
        title = e(&title),
        text = e(text),
    );
    layout(&title, &body)
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
// The index and the run page's waiting section

/// The overview: runbooks with their next cycles, and recent runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexView {
    pub runbooks: Vec<RunbookRow>,
    pub runs: Vec<RunRow>,
    /// Who is signed in: the bar with the sign-out form (markup from [`signin::signed_in_bar`]).
    pub signed_in: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookRow {
    pub name: String,
    pub description: Option<String>,
    pub next_cycles: Vec<NextCycle>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextCycle {
    pub cycle: String,
    pub at: DateTime<Utc>,
    /// The blackout that skips it, if one does (shown, not hidden).
    pub blackout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: String,
    pub runbook: String,
    pub cycle: String,
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The index page.
pub fn index_page(view: &IndexView) -> String {
    let mut body = String::from(
        "<h1>Patch runbooks</h1>\n<p><a href=\"/calendar\">The month's patch calendar</a></p>\n",
    );
    body.push_str(&runbooks_section(&view.runbooks));
    body.push_str("<h2>Recent runs</h2>\n");
    body.push_str(&runs_table(&view.runs));
    body.push_str(&view.signed_in);
    layout("Overview", &body)
}

fn runbooks_section(runbooks: &[RunbookRow]) -> String {
    if runbooks.is_empty() {
        return "<p class=\"muted\">No runbooks loaded.</p>\n".to_owned();
    }
    let rows: Vec<Vec<String>> = runbooks
        .iter()
        .map(|r| {
            let cycles: Vec<String> = r
                .next_cycles
                .iter()
                .map(|c| match &c.blackout {
                    None => format!("{} — {}", e(&c.cycle), when(&c.at)),
                    Some(reason) => format!(
                        "<s>{} — {}</s> <span class=\"muted\">skipped: {}</span>",
                        e(&c.cycle),
                        when(&c.at),
                        e(reason)
                    ),
                })
                .collect();
            let next = if cycles.is_empty() {
                format!(
                    "<span class=\"muted\">no schedule: started by hand \
                     (<code>patchday trigger {}</code>) or through the API</span>",
                    e(&r.name)
                )
            } else {
                let items: String = cycles.iter().map(|c| format!("<li>{c}</li>")).collect();
                format!("<ul class=\"plain\">{items}</ul>")
            };
            vec![
                format!("<strong>{}</strong>", e(&r.name)),
                e(r.description.as_deref().unwrap_or("")),
                next,
            ]
        })
        .collect();
    data_table(&["Runbook", "Description", "Next cycles"], &rows)
}

fn runs_table(runs: &[RunRow]) -> String {
    if runs.is_empty() {
        return "<p class=\"muted\">No runs yet.</p>\n".to_owned();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                format!(
                    "<a href=\"{}\"><code>{}</code></a>",
                    e(&run_path(&r.id)),
                    e(&r.id)
                ),
                e(&r.runbook),
                cycle_html(&r.cycle),
                state_badge(&r.state),
                time_html(&r.started_at),
                time_opt_html(&r.finished_at),
            ]
        })
        .collect();
    data_table(
        &["Run", "Runbook", "Cycle", "State", "Started", "Finished"],
        &rows,
    )
}

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
}

/// "Waiting for": who the run waits on and for what.
pub fn waiting_section(waiting: &[WaitView]) -> String {
    if waiting.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = waiting
        .iter()
        .map(|w| {
            let command = w
                .command
                .as_ref()
                .map(|c| format!("<br><code class=\"wrap\">{}</code>", e(c)))
                .unwrap_or_default();
            vec![
                format!("<code>{}</code>", e(&w.step)),
                format!("<span class=\"nowrap\">{}</span>", e(&w.host)),
                e(&w.who),
                format!("{}{command}", e(&w.what)),
            ]
        })
        .collect();
    format!(
        "<h2>Waiting for</h2>\n{}",
        data_table(&["Step", "Host", "Who", "For what"], &rows)
    )
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

    fn evil_index() -> IndexView {
        IndexView {
            runbooks: vec![RunbookRow {
                name: EVIL.into(),
                description: Some(EVIL.into()),
                next_cycles: vec![NextCycle {
                    cycle: EVIL.into(),
                    at: at(8, 14, 0),
                    blackout: Some(EVIL.into()),
                }],
            }],
            runs: vec![RunRow {
                id: EVIL.into(),
                runbook: EVIL.into(),
                cycle: EVIL.into(),
                state: EVIL.into(),
                started_at: at(8, 14, 0),
                finished_at: Some(at(8, 16, 0)),
            }],
            signed_in: String::new(),
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
        assert!(html.contains("&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"));
    }

    #[test]
    fn escape_html_escapes_the_five_characters() {
        assert_eq!(
            escape_html("<script>a & \"b\" 'c'</script>"),
            "&lt;script&gt;a &amp; &quot;b&quot; &#39;c&#39;&lt;/script&gt;"
        );
        assert_eq!(escape_html("&amp;"), "&amp;amp;");
        assert_eq!(escape_html("plain — ünïcode"), "plain — ünïcode");
        assert_eq!(escape_html(""), "");
    }

    #[test]
    fn every_page_escapes_every_value() {
        assert_escaped(&confirmation_page(&evil_confirmation()));
        assert_escaped(&index_page(&evil_index()));
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
        assert_eq!(hrefs, ["/", "/audit"], "only the header's links");
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
    fn a_runbook_without_a_schedule_says_how_it_starts() {
        let view = IndexView {
            runbooks: vec![RunbookRow {
                name: "emergency-zero-day".into(),
                description: None,
                next_cycles: Vec::new(),
            }],
            runs: Vec::new(),
            signed_in: String::new(),
        };
        assert!(index_page(&view).contains(
            "no schedule: started by hand (<code>patchday trigger emergency-zero-day</code>) \
             or through the API"
        ));
    }

    #[test]
    fn index_page_lists_runbooks_cycles_and_runs() {
        let view = IndexView {
            runbooks: vec![RunbookRow {
                name: "monthly-windows".into(),
                description: Some("Patch Tuesday for the Windows fleet".into()),
                next_cycles: vec![
                    NextCycle {
                        cycle: "2027-01".into(),
                        at: at(8, 14, 0),
                        blackout: None,
                    },
                    NextCycle {
                        cycle: "2027-02".into(),
                        at: at(8, 14, 0),
                        blackout: Some("year-end freeze".into()),
                    },
                ],
            }],
            runs: vec![RunRow {
                id: "run/1".into(),
                runbook: "monthly-windows".into(),
                cycle: "2026-12".into(),
                state: "succeeded".into(),
                started_at: at(8, 14, 0),
                finished_at: Some(at(8, 18, 30)),
            }],
            signed_in: String::new(),
        };
        let html = index_page(&view);
        for expected in [
            "monthly-windows",
            "Patch Tuesday for the Windows fleet",
            "2027-01 — 2026-12-08 14:00 UTC",
            "<s>2027-02 — 2026-12-08 14:00 UTC</s> <span class=\"muted\">skipped: year-end freeze</span>",
            "href=\"/runs/run%2F1\"",
            "<span class=\"badge ok\">succeeded</span>",
            "2026-12-08 18:30 UTC",
        ] {
            assert!(html.contains(expected), "missing {expected:?}");
        }
        let empty = index_page(&IndexView::default());
        assert!(empty.contains("No runbooks loaded.") && empty.contains("No runs yet."));
    }

    #[test]
    fn the_waiting_section_says_who_is_waited_on_and_for_what() {
        assert_eq!(waiting_section(&[]), "");
        let section = waiting_section(&[WaitView {
            step: "patch".into(),
            host: "web-01.example.com".into(),
            who: "an operator (told: ops@example.com)".into(),
            what: "a decision after an interruption".into(),
            command: Some("patchday retry R --step patch --reason <TEXT>".into()),
        }]);
        assert!(section.starts_with("<h2>Waiting for</h2>"), "{section}");
        assert!(
            section.contains("an operator (told: ops@example.com)"),
            "{section}"
        );
        assert!(section.contains("patchday retry R --step patch --reason &lt;TEXT&gt;"));
    }

    #[test]
    fn state_classes_come_from_a_fixed_list() {
        assert_eq!(
            state_badge("x\" onmouseover=\"y"),
            "<span class=\"badge \">x&quot; onmouseover=&quot;y</span>"
        );
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
