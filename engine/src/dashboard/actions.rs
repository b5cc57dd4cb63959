//! The dashboard's actions (issue #13 item 6, issue #11 item 2) as maud views: the run page's
//! action buttons, the trigger form generated from a runbook's `params`, and the confirm page
//! of each action (trigger, decide, retry / skip / abort, cancel). The handlers are
//! `daemon::http::actions`; nothing here reads the store or a clock.
//!
//! Pages work without JavaScript: the run page's buttons are `GET` forms that open a confirm
//! page, which changes nothing; only its `POST` form (carrying the session's CSRF value) acts.
//! Secret params are never entered in the browser: they come from the daemon's environment
//! (`PATCHDAY_SECRET_<NAME>`, DESIGN §3), so the form names the variable and the confirm page
//! shows them masked; no page ever holds a secret's value.

use maud::{Markup, html};

use crate::pages::{FIELD_CHOICE, FIELD_COMMENT, FIELD_CSRF, NO_CYCLE};

/// Which row a form acts on: its step and host (`""` for a step's own row).
pub const FIELD_STEP: &str = "step";
pub const FIELD_HOST: &str = "host";
/// An operator's decision on an interrupted step: `retry`, `skip` or `abort`.
pub const FIELD_DECISION: &str = "decision";
/// The operator's written reason (required to settle an interrupted step).
pub const FIELD_REASON: &str = "reason";
/// The trigger form's cycle (`YYYY-MM`, a day for a cron schedule; empty: a manual run).
pub const FIELD_CYCLE: &str = "cycle";
/// Why a cycle that has a run already runs again (the API's `rerun`).
pub const FIELD_RERUN: &str = "rerun";
/// What the trigger form's button asks: [`DO_REVIEW`], [`DO_EDIT`] or [`DO_START`].
pub const FIELD_DO: &str = "do";
pub const DO_REVIEW: &str = "review";
pub const DO_EDIT: &str = "edit";
pub const DO_START: &str = "start";
/// A param's field is `param.<name>`.
pub const PARAM_PREFIX: &str = "param.";
/// The longest comment or reason a form takes (the API keeps as much).
const MAX_TEXT: u32 = 2000;

/// What the signed-in person may do on a run page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunActions {
    /// The run page's path (`/runs/<id>`); the confirm pages are under it.
    pub path: String,
    /// Rows awaiting this person's own decision.
    pub decide: Vec<DecideOffer>,
    /// Interrupted rows an operator settles.
    pub resume: Vec<RowRef>,
    /// Whether they may cancel the run (an operator, the run running).
    pub cancel: bool,
}

/// A row (step, host) awaiting the person's decision, and the choices it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecideOffer {
    pub row: RowRef,
    /// What is asked, in the step's words.
    pub heading: String,
    /// (value, label) per choice, the one that lets the run go on first.
    pub choices: Vec<(String, String)>,
}

/// A step row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRef {
    pub step: String,
    pub host: String,
}

/// The run page's "Actions": empty for someone who may do nothing here (a viewer who is not
/// one of a waiting step's people).
pub fn run_actions(view: &RunActions) -> Markup {
    if view.decide.is_empty() && view.resume.is_empty() && !view.cancel {
        return html! {};
    }
    let (decide, resume, cancel) = (
        format!("{}/decide", view.path),
        format!("{}/resume", view.path),
        format!("{}/cancel", view.path),
    );
    html! {
        section.actions aria-labelledby="actions" {
            h2 #actions { "Actions" }
            @for offer in &view.decide {
                div.notice.decide {
                    p { "Your decision: " strong { (offer.heading) } " — step " code { (offer.row.step) }
                        @if !offer.row.host.is_empty() { " on " (offer.row.host) } }
                    div.choices {
                        @for (value, label) in &offer.choices {
                            form method="get" action=(decide) {
                                (row_fields(&offer.row))
                                input type="hidden" name=(FIELD_CHOICE) value=(value);
                                button type="submit" class=[is_negative(value).then_some("danger")] { (label) "…" }
                            }
                        }
                    }
                }
            }
            @for row in &view.resume {
                div.notice.resume {
                    p { "Step " code { (row.step) } @if !row.host.is_empty() { " on " (row.host) }
                        " was interrupted: an operator decides what happens to it." }
                    div.choices {
                        @for (decision, label) in RESOLUTIONS {
                            form method="get" action=(resume) {
                                (row_fields(row))
                                input type="hidden" name=(FIELD_DECISION) value=(decision);
                                button type="submit" class=[(decision == "abort").then_some("danger")] { (label) "…" }
                            }
                        }
                    }
                }
            }
            @if view.cancel {
                form.cancel method="get" action=(cancel) {
                    button.danger type="submit" { "Cancel this run…" }
                }
            }
        }
    }
}

/// An interrupted step's decisions and their buttons' labels.
const RESOLUTIONS: [(&str, &str); 3] = [
    ("retry", "Retry the step"),
    ("skip", "Skip the step"),
    ("abort", "Abort the run"),
];

fn row_fields(row: &RowRef) -> Markup {
    html! {
        input type="hidden" name=(FIELD_STEP) value=(row.step);
        input type="hidden" name=(FIELD_HOST) value=(row.host);
    }
}

/// A choice that stops or fails something (shown as a red button).
fn is_negative(choice: &str) -> bool {
    let choice = choice.to_ascii_lowercase();
    ["reject", "deny", "fail", "no", "cancel", "postpone"]
        .iter()
        .any(|word| choice.starts_with(word))
}

/// The facts of the run an action acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub id: String,
    pub runbook: String,
    /// The cycle, or `""` for a manual run.
    pub cycle: String,
    pub path: String,
}

fn run_table(run: &RunFacts, rows: Markup) -> Markup {
    html! {
        table.facts {
            tr { th { "Run" } td { a href=(run.path) { code { (run.id) } } } }
            tr { th { "Runbook" } td { (run.runbook) } }
            tr { th { "Cycle" } td { (cycle_text(&run.cycle)) } }
            (rows)
        }
    }
}

fn cycle_text(cycle: &str) -> &str {
    if cycle.is_empty() { NO_CYCLE } else { cycle }
}

fn back(path: &str) -> Markup {
    html! { p { a href=(path) { "Back to the run" } " (nothing changes)." } }
}

fn errors(errors: &[String]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.notice.error role="alert" {
                p { "Nothing was done:" }
                ul.plain { @for e in errors { li { (e) } } }
            }
        }
    }
}

/// The confirm page of a person's decision on their approval or task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecideConfirm {
    pub run: RunFacts,
    pub row: RowRef,
    /// What is asked (the step's words) and the step's message, if it has one.
    pub heading: String,
    pub message: Option<String>,
    /// The signed-in person, who decides.
    pub email: String,
    pub choice: String,
    pub label: String,
    /// What choosing it leads to.
    pub leads_to: String,
    /// For an approval: (matching decisions so far, quorum).
    pub quorum: Option<(usize, u32)>,
    pub csrf: String,
}

/// "Approve …?": what the decision does, a comment box and the button that decides.
pub fn decide_confirm(view: &DecideConfirm) -> Markup {
    html! {
        h1 { (view.label) ": " (view.heading) }
        @if let Some(message) = view.message.as_ref().filter(|m| m.trim() != view.heading) {
            p.lead { (message) }
        }
        (run_table(&view.run, html! {
            tr { th { "Step" } td { code { (view.row.step) } } }
            @if !view.row.host.is_empty() { tr { th { "Host" } td { (view.row.host) } } }
            tr { th { "Deciding as" } td { (view.email) } }
        }))
        @if !view.leads_to.is_empty() { p.leads-to { (view.leads_to) } }
        @if let Some((so_far, quorum)) = view.quorum {
            p.quorum { (so_far) " of " (quorum) " needed so far. Your decision counts once, \
                whether you give it here or by the link in your email." }
        }
        form method="post" action=(format!("{}/decide", view.run.path)) {
            input type="hidden" name=(FIELD_CSRF) value=(view.csrf);
            (row_fields(&view.row))
            input type="hidden" name=(FIELD_CHOICE) value=(view.choice);
            label { "Comment (optional, recorded with your decision)"
                textarea name=(FIELD_COMMENT) maxlength=(MAX_TEXT) {} }
            button type="submit" class=[is_negative(&view.choice).then_some("danger")] { (view.label) }
        }
        (back(&view.run.path))
    }
}

/// The confirm page of an operator's decision on an interrupted step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeConfirm {
    pub run: RunFacts,
    pub row: RowRef,
    /// `retry`, `skip` or `abort`.
    pub decision: String,
    /// The reason typed so far (shown again after an error).
    pub reason: String,
    pub errors: Vec<String>,
    pub csrf: String,
}

/// What an interrupted step's decision does, in words.
pub fn resume_effect(decision: &str) -> &'static str {
    match decision {
        "retry" => {
            "The step runs again: its connector is called once more. It was interrupted while \
             running, so it may have done part of its work already."
        }
        "skip" => {
            "The step is marked skipped and the run goes on with the steps after it, as if it \
             had done nothing."
        }
        _ => "The run is aborted: it ends cancelled and no further step runs.",
    }
}

/// "Retry step …?": what it does, the required reason and the button.
pub fn resume_confirm(view: &ResumeConfirm) -> Markup {
    let label = RESOLUTIONS
        .iter()
        .find(|(d, _)| *d == view.decision)
        .map_or("Decide", |(_, label)| label);
    html! {
        h1 { (label) "?" }
        (errors(&view.errors))
        (run_table(&view.run, html! {
            tr { th { "Step" } td { code { (view.row.step) } " (interrupted)" } }
            @if !view.row.host.is_empty() { tr { th { "Host" } td { (view.row.host) } } }
        }))
        p.lead { (resume_effect(&view.decision)) }
        form method="post" action=(format!("{}/resume", view.run.path)) {
            input type="hidden" name=(FIELD_CSRF) value=(view.csrf);
            (row_fields(&view.row))
            input type="hidden" name=(FIELD_DECISION) value=(view.decision);
            label { "Reason (required, recorded in the audit log under your name)"
                textarea name=(FIELD_REASON) required maxlength=(MAX_TEXT) { (view.reason) } }
            button type="submit" class=[(view.decision == "abort").then_some("danger")] { (label) }
        }
        (back(&view.run.path))
    }
}

/// The confirm page of cancelling a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelConfirm {
    pub run: RunFacts,
    pub csrf: String,
}

/// "Cancel run …?": what cancelling does and the button.
pub fn cancel_confirm(view: &CancelConfirm) -> Markup {
    html! {
        h1 { "Cancel this run?" }
        (run_table(&view.run, html! {}))
        p.lead { "Cancelling stops the steps in flight (their attempts are cancelled), starts no \
            further step, and ends the run cancelled. People waiting on it are told their \
            decision is no longer needed. It cannot be undone." }
        form method="post" action=(format!("{}/cancel", view.run.path)) {
            input type="hidden" name=(FIELD_CSRF) value=(view.csrf);
            button.danger type="submit" { "Cancel the run" }
        }
        (back(&view.run.path))
    }
}

/// One declared param as the trigger form shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamField {
    pub name: String,
    pub description: Option<String>,
    /// The value typed so far (never a secret's).
    pub value: String,
    pub default: Option<String>,
    /// The values it accepts, when limited (a select).
    pub choices: Option<Vec<String>>,
    /// A secret: taken from the daemon's environment variable `env`, never entered here.
    pub secret: bool,
    pub env: String,
}

/// The trigger form of a runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerForm {
    pub runbook: String,
    pub description: Option<String>,
    /// The runbook has a schedule (its cycles may be named); else it only runs by hand.
    pub scheduled: bool,
    pub params: Vec<ParamField>,
    pub cycle: String,
    pub rerun: String,
    pub errors: Vec<String>,
    pub csrf: String,
}

/// The runbook page of `runbook` (`/runbooks/{name}`, the name percent-encoded).
pub fn runbook_path(runbook: &str) -> String {
    format!("/runbooks/{}", super::run::query_value(runbook))
}

/// Where the trigger form of `runbook` lives (and posts).
pub fn trigger_path(runbook: &str) -> String {
    format!("{}/trigger", runbook_path(runbook))
}

/// The form generated from the runbook's `params`: a select for a param with `choices`, a
/// text field otherwise (required when it has no default, the default filled in), a note
/// naming the environment variable for a secret.
pub fn trigger_form(view: &TriggerForm) -> Markup {
    html! {
        h1 { "Start a run of " (view.runbook) }
        @if let Some(description) = &view.description { p.lead { (description) } }
        (errors(&view.errors))
        form.trigger method="post" action=(trigger_path(&view.runbook)) {
            input type="hidden" name=(FIELD_CSRF) value=(view.csrf);
            @if view.params.is_empty() { p.muted { "This runbook declares no params." } }
            @else {
                h2 { "Params" }
                table.facts {
                    @for param in &view.params { (param_row(param)) }
                }
            }
            h2 { "Cycle" }
            table.facts {
                tr { th { label for="f-cycle" { "Cycle" } }
                    td { input #f-cycle type="text" name=(FIELD_CYCLE) value=(view.cycle)
                            placeholder="YYYY-MM" aria-describedby="f-cycle-help";
                        p.muted #f-cycle-help { @if view.scheduled {
                            "Empty: a manual run outside the schedule. A cycle (YYYY-MM, or \
                             YYYY-MM-DD for a daily schedule) runs that cycle now."
                        } @else { "Empty: a manual run (this runbook has no schedule)." } } } }
                tr { th { label for="f-rerun" { "Re-run reason" } }
                    td { input #f-rerun type="text" name=(FIELD_RERUN) value=(view.rerun)
                            maxlength=(MAX_TEXT) aria-describedby="f-rerun-help";
                        p.muted #f-rerun-help { "Only to run a cycle that has a run already: why \
                            (recorded in the audit log)." } } }
            }
            p { button type="submit" name=(FIELD_DO) value=(DO_REVIEW) { "Review…" } }
            p.muted { "Nothing starts yet: the next page shows what will run." }
        }
    }
}

fn param_row(param: &ParamField) -> Markup {
    let id = format!("f-param-{}", param.name);
    let name = format!("{PARAM_PREFIX}{}", param.name);
    let help = format!("{id}-help");
    // What the field holds: the value given, else the default.
    let current = match (param.value.as_str(), &param.default) {
        ("", Some(default)) => default.as_str(),
        (value, _) => value,
    };
    html! {
        tr {
            th { @if param.secret { (param.name) } @else { label for=(id) { (param.name) } } }
            td {
                @if param.secret {
                    p.muted { "Secret: taken from the daemon's environment variable "
                        code { (param.env) } ", never entered or shown here." }
                } @else if let Some(choices) = &param.choices {
                    select #(id) name=(name) required[param.default.is_none()] aria-describedby=(help) {
                        @if param.default.is_none() && param.value.is_empty() { option value="" { "— choose —" } }
                        @for choice in choices {
                            option value=(choice) selected[*choice == current] { (choice) }
                        }
                    }
                    (param_help(param, &help))
                } @else {
                    input #(id) type="text" name=(name) value=(param.value)
                        required[param.default.is_none()] aria-describedby=(help);
                    (param_help(param, &help))
                }
            }
        }
    }
}

fn param_help(param: &ParamField, id: &str) -> Markup {
    html! {
        p.muted id=(id) {
            @if let Some(description) = &param.description {
                (description) @if !description.trim_end().ends_with(['.', '!', '?']) { "." } " "
            }
            @match &param.default {
                Some(default) => { "Default: " code { (default) } "." }
                None => "Required.",
            }
        }
    }
}

/// What a confirmed trigger starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfirm {
    pub runbook: String,
    /// The cycle as typed (`""`: a manual run).
    pub cycle: String,
    pub rerun: String,
    /// The params the run will store (defaults filled in), in declaration order.
    pub params: Vec<(String, String)>,
    /// The secret params: (name, environment variable), shown masked.
    pub secrets: Vec<(String, String)>,
    /// The params as given (posted again with the confirmation).
    pub given: Vec<(String, String)>,
    pub csrf: String,
}

/// "Start …?": the runbook, the cycle or "manual run", the params (secrets masked), and the
/// buttons that start it or go back to the form.
pub fn trigger_confirm(view: &TriggerConfirm) -> Markup {
    html! {
        h1 { "Start a run of " (view.runbook) "?" }
        table.facts {
            tr { th { "Runbook" } td { (view.runbook) } }
            tr { th { "Cycle" } td { (cycle_text(&view.cycle)) } }
            @if !view.rerun.is_empty() { tr { th { "Re-run reason" } td { (view.rerun) } } }
        }
        h2 { "Params" }
        @if view.params.is_empty() && view.secrets.is_empty() { p.muted { "None." } }
        @else {
            table.facts {
                @for (name, value) in &view.params { tr { th { (name) } td { code.wrap { (value) } } } }
                @for (name, env) in &view.secrets {
                    tr { th { (name) } td { "•••••• (secret, from " code { (env) } ")" } }
                }
            }
        }
        form method="post" action=(trigger_path(&view.runbook)) {
            input type="hidden" name=(FIELD_CSRF) value=(view.csrf);
            input type="hidden" name=(FIELD_CYCLE) value=(view.cycle);
            input type="hidden" name=(FIELD_RERUN) value=(view.rerun);
            @for (name, value) in &view.given {
                input type="hidden" name=(format!("{PARAM_PREFIX}{name}")) value=(value);
            }
            p.muted { "The run starts now, recorded in the audit log under your name." }
            div.choices {
                button type="submit" name=(FIELD_DO) value=(DO_START) { "Start the run" }
                button.danger type="submit" name=(FIELD_DO) value=(DO_EDIT) { "Change something" }
            }
        }
    }
}

/// The overview's "Start a run" links (for operators): one per loaded runbook.
pub fn trigger_links(runbooks: &[String]) -> Markup {
    html! {
        @if !runbooks.is_empty() {
            nav.trigger aria-label="Start a run" {
                h2 { "Start a run" }
                ul.plain { @for name in runbooks { li { a href=(trigger_path(name)) { (name) } } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "<script>alert('x')</script>&";

    fn facts() -> RunFacts {
        RunFacts {
            id: "r-1".into(),
            runbook: EVIL.into(),
            cycle: String::new(),
            path: "/runs/r-1".into(),
        }
    }

    #[test]
    fn nothing_to_do_renders_nothing_and_buttons_open_confirm_pages_by_get() {
        assert_eq!(run_actions(&RunActions::default()).into_string(), "");
        let row = RowRef {
            step: "cab".into(),
            host: String::new(),
        };
        let html = run_actions(&RunActions {
            path: "/runs/r-1".into(),
            decide: vec![DecideOffer {
                row: row.clone(),
                heading: EVIL.into(),
                choices: vec![
                    ("approve".into(), "Approve".into()),
                    ("reject".into(), "Reject".into()),
                ],
            }],
            resume: vec![row],
            cancel: true,
        })
        .into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("method=\"post\""), "{html}");
        for action in ["decide", "resume", "cancel"] {
            assert!(
                html.contains(&format!("action=\"/runs/r-1/{action}\"")),
                "{html}"
            );
        }
        assert!(html.contains("class=\"danger\">Reject…"), "{html}");
    }

    #[test]
    fn the_trigger_form_follows_the_declarations_and_holds_no_secret() {
        let param = |name: &str, default: Option<&str>, choices: Option<Vec<String>>| ParamField {
            name: name.into(),
            description: Some(EVIL.into()),
            value: String::new(),
            default: default.map(str::to_string),
            choices,
            secret: false,
            env: String::new(),
        };
        let view = TriggerForm {
            runbook: "emergency".into(),
            description: None,
            scheduled: false,
            params: vec![
                param("cve", None, None),
                param("change", Some("CHG-1"), None),
                param(
                    "env",
                    Some("test"),
                    Some(vec!["prod".into(), "test".into()]),
                ),
                ParamField {
                    secret: true,
                    env: "PATCHDAY_SECRET_TOKEN".into(),
                    ..param("token", None, None)
                },
            ],
            cycle: String::new(),
            rerun: String::new(),
            errors: vec![EVIL.into()],
            csrf: "c".into(),
        };
        let html = trigger_form(&view).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("name=\"param.cve\" value=\"\" required"),
            "{html}"
        );
        assert!(html.contains("<select id=\"f-param-env\" name=\"param.env\""));
        assert!(html.contains("<option value=\"test\" selected>test</option>"));
        assert!(!html.contains("name=\"param.token\""), "{html}");
        assert!(html.contains("PATCHDAY_SECRET_TOKEN"));
        let confirm = trigger_confirm(&TriggerConfirm {
            runbook: "emergency".into(),
            cycle: String::new(),
            rerun: String::new(),
            params: vec![("cve".into(), EVIL.into())],
            secrets: vec![("token".into(), "PATCHDAY_SECRET_TOKEN".into())],
            given: vec![("cve".into(), EVIL.into())],
            csrf: "c".into(),
        })
        .into_string();
        assert!(confirm.contains(NO_CYCLE) && confirm.contains("••••••"));
        assert!(!confirm.contains("<script>"));
    }

    #[test]
    fn confirm_pages_post_with_the_csrf_value() {
        let row = RowRef {
            step: "patch".into(),
            host: "web-1".into(),
        };
        let resume = resume_confirm(&ResumeConfirm {
            run: facts(),
            row: row.clone(),
            decision: "abort".into(),
            reason: EVIL.into(),
            errors: vec![],
            csrf: "tok".into(),
        })
        .into_string();
        assert!(resume.contains("method=\"post\" action=\"/runs/r-1/resume\""));
        assert!(resume.contains("name=\"csrf\" value=\"tok\""));
        assert!(resume.contains("required") && !resume.contains("<script>"));
        let cancel = cancel_confirm(&CancelConfirm {
            run: facts(),
            csrf: "tok".into(),
        })
        .into_string();
        assert!(cancel.contains("action=\"/runs/r-1/cancel\""));
        let decide = decide_confirm(&DecideConfirm {
            run: facts(),
            row,
            heading: "Patch?".into(),
            message: None,
            email: "alice@example.com".into(),
            choice: "approve".into(),
            label: "Approve".into(),
            leads_to: String::new(),
            quorum: Some((1, 2)),
            csrf: "tok".into(),
        })
        .into_string();
        assert!(decide.contains("1 of 2 needed"), "{decide}");
        assert!(decide.contains("name=\"choice\" value=\"approve\""));
    }
}
